"""Experiment statistics on per-variant counts: players assigned and players converted.

Pure functions, numbers in and numbers out; the distributions come from scipy. The
methods are GrowthBook's (its `gbstats` package, the Python stats engine behind its
results pages, 0.8.0 and its main branch as of 2026), so that a marketer sees the figures
GrowthBook would show for the same counts; tests/liveops/test_stats.py checks them against
gbstats itself. A conversion is a binomial metric: each assigned player converted (1) or
not (0), so a variant's mean is its conversion rate p and its per-player variance p(1-p).

- Conversion rate interval: the Wilson score interval (E. B. Wilson, "Probable inference,
  the law of succession, and statistical inference", JASA 22, 1927; recommended over the
  normal interval by R. G. Newcombe, Statistics in Medicine 17, 1998), which stays inside
  [0, 1] and is sound at 0% and 100%. gbstats reports no per-variant interval.
- Relative uplift over the control, (p_b - p_a) / p_a, with the variance of that ratio by
  the delta method (A. Deng, U. Knoblich, J. Lu, "Applying the Delta Method in Metric
  Analytics", KDD 2018; gbstats `frequentist_variance(..., relative=True)`), a Welch t-test
  with Welch-Satterthwaite degrees of freedom, its two-sided p-value and 95% interval
  (gbstats `TwoSidedTTest`).
- Chance to beat the control: gbstats' Bayesian engine (`EffectBayesianABTest`, the
  Gaussian effect model GrowthBook moved to in May 2024) with its default, improper flat
  prior on the relative effect: the posterior of the uplift is normal with the delta-method
  estimate as mean and its standard error as spread, and the chance to beat the control is
  P(uplift > 0) = Phi(uplift / se).
- Sequential (always-valid) interval and p-value: the normal-mixture confidence sequence
  of S. R. Howard, A. Ramdas, J. McAuliffe, J. Sekhon, "Time-uniform, nonparametric,
  nonasymptotic confidence sequences", Annals of Statistics 49(2), 2021, in the form
  gbstats' `SequentialTwoSidedTTest` uses (I. Waudby-Smith et al., "Anytime-valid
  off-policy inference for contextual bandits", arXiv:2103.06476v7: eq. 9 for the
  interval, eq. 161 for rho, eq. 155 for the p-value) with GrowthBook's default tuning
  parameter 5000 (the sample size at which the interval is tightest). The interval holds
  at every look at once, so looking every day does not inflate false positives.
- Sample-ratio mismatch: Pearson's chi-square goodness of fit of the assigned counts
  against the variants' weights (gbstats `check_srm`; A. Fabijan et al., "Diagnosing
  Sample Ratio Mismatch in Online Controlled Experiments", KDD 2019), flagged below
  p = 0.001 as GrowthBook does.

Where gbstats answers placeholders (p = 1, chance 0.5, interval [0, 0]) because a figure
cannot be computed, these functions answer None and say why, so that a marketer never
reads a placeholder as a result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from types import ModuleType


@cache
def _scipy_stats() -> ModuleType:
    # Imported when results are first asked for: scipy takes 0.7 s to import, which every
    # API process (and every test app) would otherwise pay at start.
    from scipy import stats

    module: ModuleType = stats
    return module


ALPHA = 0.05
# GrowthBook's default: the sequential interval is tightest at about this many players.
SEQUENTIAL_TUNING = 5000.0
SRM_THRESHOLD = 0.001


@dataclass(frozen=True, slots=True)
class Interval:
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class Arm:
    """A variant's counts."""

    assigned: int
    conversions: int

    @property
    def rate(self) -> float:
        return self.conversions / self.assigned if self.assigned else 0.0

    @property
    def variance(self) -> float:
        """Per-player variance of a 0/1 outcome, as gbstats' ProportionStatistic has it
        (the population form p(1-p), not n/(n-1) times it)."""
        p = self.rate
        return p * (1 - p)


@dataclass(frozen=True, slots=True)
class Comparison:
    """A variant against the control. `uplift` is relative: 0.1 is 10% more conversions.
    Every figure but `uplift` is None when `unavailable` says why."""

    uplift: float | None
    interval: Interval | None
    p_value: float | None
    chance_to_beat_control: float | None
    sequential_interval: Interval | None
    sequential_p_value: float | None
    unavailable: str | None = None


def rate_interval(arm: Arm, alpha: float = ALPHA) -> Interval | None:
    """The Wilson score interval of a conversion rate; None without players."""
    if arm.assigned <= 0:
        return None
    ci = (
        _scipy_stats()
        .binomtest(arm.conversions, arm.assigned)
        .proportion_ci(confidence_level=1 - alpha, method="wilson")
    )
    return Interval(float(ci.low), float(ci.high))


def _missing(uplift: float | None, why: str) -> Comparison:
    return Comparison(uplift, None, None, None, None, None, why)


def compare(
    control: Arm,
    variant: Arm,
    alpha: float = ALPHA,
    tuning: float = SEQUENTIAL_TUNING,
) -> Comparison:
    """The variant's relative uplift over the control with its fixed-horizon and
    sequential intervals and p-values, and its chance to beat the control."""
    if control.assigned <= 0 or variant.assigned <= 0:
        which = "the control" if control.assigned <= 0 else "this variant"
        return _missing(None, f"no players in {which} yet")
    p_a, p_b = control.rate, variant.rate
    if p_a == 0:
        return _missing(None, "no conversions in the control yet: an uplift over 0 is undefined")
    uplift = (p_b - p_a) / p_a
    if control.variance == 0 or variant.variance == 0:
        # A rate of 0% or 100% has no sampling variance under the normal approximation,
        # so the delta method gives no honest interval (gbstats refuses the same way).
        which = "the control" if control.variance == 0 else "this variant"
        return _missing(
            uplift,
            f"{which} converts at {100 * (p_a if which == 'the control' else p_b):.0f}%: "
            "no interval until it has both converted and unconverted players",
        )
    n_a, n_b = control.assigned, variant.assigned
    var_a, var_b = control.variance, variant.variance
    # Delta method for the ratio (p_b - p_a) / p_a (gbstats frequentist_variance).
    variance = var_b / (p_a**2 * n_b) + var_a * p_b**2 / (p_a**4 * n_a)
    se = math.sqrt(variance)
    # Welch-Satterthwaite degrees of freedom, as gbstats' TTest.dof.
    dof = (var_b / n_b + var_a / n_a) ** 2 / (
        var_b**2 / (n_b**2 * (n_b - 1)) + var_a**2 / (n_a**2 * (n_a - 1))
    )
    # sf rather than gbstats' 1 - cdf: the same figure, without cancellation when tiny.
    p_value = float(min(1.0, 2 * _scipy_stats().t.sf(abs(uplift) / se, dof)))
    half = float(_scipy_stats().t.ppf(1 - alpha / 2, dof)) * se
    chance = float(_scipy_stats().norm.sf(0, loc=uplift, scale=se))
    seq_interval, seq_p = _sequential(uplift, variance, n_a + n_b, alpha, tuning)
    return Comparison(
        uplift=uplift,
        interval=Interval(uplift - half, uplift + half),
        p_value=p_value,
        chance_to_beat_control=chance,
        sequential_interval=seq_interval,
        sequential_p_value=seq_p,
    )


def _sequential(
    estimate: float, variance: float, n: int, alpha: float, tuning: float
) -> tuple[Interval, float]:
    """Howard et al. (2021)'s normal-mixture confidence sequence, two-sided, as gbstats'
    SequentialTwoSidedTTest: `n` counts the players of both arms, `variance` is that of
    the estimate (so variance * n is the per-player variance)."""
    log_alpha = math.log(alpha)
    rho2 = (-2 * log_alpha + math.log(-2 * log_alpha + 1)) / tuning  # eq. 161
    s2 = variance * n
    n_rho2_1 = n * rho2 + 1
    half = math.sqrt(s2) * math.sqrt(  # eq. 9
        2 * n_rho2_1 * math.log(math.sqrt(n_rho2_1) / alpha) / (n**2 * rho2)
    )
    # eq. 155: the p-value is 1 / e-value; in logarithms so that a huge effect gives
    # p = 0 rather than an overflow.
    st2 = estimate**2 * n / variance
    log_e = rho2 * st2 / (2 * n_rho2_1) - 0.5 * math.log(n_rho2_1)
    p_value = 1.0 if log_e <= 0 else math.exp(-log_e)
    return Interval(estimate - half, estimate + half), p_value


def srm_p_value(assigned: Sequence[int], weights: Sequence[float]) -> float | None:
    """Pearson's chi-square p-value of the assigned counts against the weights (gbstats
    `check_srm`: variants of weight 0 add nothing to the statistic, the degrees of freedom
    are the number of variants less one). None when there is nothing to test: fewer than
    two variants, no players, or no positive weight."""
    total = sum(assigned)
    total_weight = sum(w for w in weights if w > 0)
    if len(assigned) < 2 or total == 0 or total_weight <= 0:
        return None
    chi2 = 0.0
    for observed, weight in zip(assigned, weights, strict=True):
        if weight <= 0:
            continue
        expected = weight / total_weight * total
        chi2 += (observed - expected) ** 2 / expected
    return float(_scipy_stats().chi2.sf(chi2, len(assigned) - 1))
