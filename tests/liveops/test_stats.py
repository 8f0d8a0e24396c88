"""Experiment statistics (gameportal/liveops/stats.py) against GrowthBook's gbstats on known
data, and the edges where a figure cannot be computed.

gbstats pins numpy and pandas below 2, so it is not a dependency of the project; the
figures below were produced once in a throwaway environment:

    python3 -m venv /tmp/gbvenv && /tmp/gbvenv/bin/pip install gbstats
    # gbstats==0.8.0, numpy==1.26.4, pandas==1.5.3, scipy==1.17.1, Python 3.11
    /tmp/gbvenv/bin/python ref.py

with ref.py:

    from gbstats.bayesian.tests import EffectBayesianABTest
    from gbstats.frequentist.tests import SequentialTwoSidedTTest, TwoSidedTTest
    from gbstats.models.statistics import ProportionStatistic
    from gbstats.utils import check_srm

    DATASETS = {  # (assigned, conversions) per variant, the control first
        "ten_vs_eleven": [(10000, 1000), (10000, 1100)],
        "small_negative": [(1200, 50), (1150, 38)],
        "large_win": [(50000, 5000), (50000, 5600)],
        "three_arms": [(40000, 3200), (40500, 3350), (39000, 2950)],
        "tiny": [(30, 3), (31, 9)],
    }
    for name, arms in DATASETS.items():
        a = ProportionStatistic(n=arms[0][0], sum=arms[0][1])
        for n, x in arms[1:]:
            b = ProportionStatistic(n=n, sum=x)
            f = TwoSidedTTest(a, b).compute_result()
            s = SequentialTwoSidedTTest(a, b).compute_result()
            y = EffectBayesianABTest(a, b).compute_result()
            print(f"({name!r}, {n}, {x}, {f.expected!r}, ({f.ci[0]!r}, {f.ci[1]!r}), "
                  f"{f.p_value!r}, {y.chance_to_win!r}, ({s.ci[0]!r}, {s.ci[1]!r}), "
                  f"{s.p_value!r}),")
    for users, weights in [([5000, 5400], [1, 1]), ([40000, 40500, 39000], [1, 1, 1]),
                           ([5030, 2460, 2510], [0.5, 0.25, 0.25]),
                           ([900, 1100], [0.5, 0.5])]:
        print(f"({users!r}, {weights!r}, {check_srm(users, weights)!r}),")

Every engine at its defaults: relative uplift, alpha 0.05, the Bayesian engine's improper
prior, the sequential tuning parameter 5000. Ours agree to about 1e-15; the tolerance
below is 1e-9 relative. (Ours computes the two-sided p-value as 2 * sf rather than
2 * (1 - cdf): equal here, and still exact where gbstats' rounds to 0.)
"""

from __future__ import annotations

import math

import pytest

from gameportal.liveops.stats import (
    SRM_THRESHOLD,
    Arm,
    Interval,
    compare,
    rate_interval,
    srm_p_value,
)

CONTROLS = {
    "ten_vs_eleven": Arm(10000, 1000),
    "small_negative": Arm(1200, 50),
    "large_win": Arm(50000, 5000),
    "three_arms": Arm(40000, 3200),
    "tiny": Arm(30, 3),
}

# dataset, variant assigned, conversions, uplift, 95% interval, p-value, chance to beat
# control, sequential interval, sequential p-value: the output of the script above.
GBSTATS = [
    ('ten_vs_eleven', 10000, 1100, 0.09999999999999995, (0.010864708144846927, 0.189135291855153), 0.027889528764600602, 0.9860609494573318, (-0.04220635376208545, 0.24220635376208535), 0.5490379443452079),  # noqa: E501
    ('small_negative', 1150, 38, -0.20695652173913043, (-0.53542996057329, 0.12151691709502915), 0.21675894202375323, 0.10831737848704615, (-0.7250930612227859, 0.31118001774452514), 1.0),  # noqa: E501
    ('large_win', 50000, 5600, 0.11999999999999997, (0.07960789036631014, 0.1603921096336898), 5.801761737700417e-09, 0.9999999971079491, (0.05123287930742168, 0.18876712069257826), 6.098071588733134e-07),  # noqa: E501
    ('three_arms', 40500, 3350, 0.03395061728395064, (-0.014062308253386759, 0.08196354282128804), 0.16576935938652415, 0.9171172399243531, (-0.04705244845385452, 0.1149536830217558), 1.0),  # noqa: E501
    ('three_arms', 39000, 2950, -0.05448717948717957, (-0.0999129515841419, -0.009061407390217234), 0.018727077754758792, 0.009362317012910274, (-0.13106511724454314, 0.022090758270184002), 0.7247200845616428),  # noqa: E501
    ('tiny', 31, 9, 1.903225806451613, (-1.6822656937167775, 5.4887173066200035), 0.29175110975913676, 0.856575630420608, (-12.931839752057424, 16.738291364960652), 0.9961483798049917),  # noqa: E501
]  # fmt: skip

GBSTATS_SRM = [
    ([5000, 5400], [1, 1], 8.769942375590228e-05),
    ([40000, 40500, 39000], [1, 1, 1], 4.365550012565259e-07),
    ([5030, 2460, 2510], [0.5, 0.25, 0.25], 0.6505090947233165),
    ([900, 1100], [0.5, 0.5], 7.744216431044088e-06),
]


def close(value: float | None, expected: float) -> bool:
    return value is not None and math.isclose(value, expected, rel_tol=1e-9, abs_tol=1e-15)


def same_interval(value: Interval | None, expected: tuple[float, float]) -> bool:
    return value is not None and close(value.low, expected[0]) and close(value.high, expected[1])


@pytest.mark.parametrize(
    ("dataset", "assigned", "conversions", "uplift", "ci", "p", "chance", "seq_ci", "seq_p"),
    GBSTATS,
)
def test_a_comparison_gives_gbstats_figures(
    dataset: str,
    assigned: int,
    conversions: int,
    uplift: float,
    ci: tuple[float, float],
    p: float,
    chance: float,
    seq_ci: tuple[float, float],
    seq_p: float,
) -> None:
    got = compare(CONTROLS[dataset], Arm(assigned, conversions))
    assert got.unavailable is None
    assert close(got.uplift, uplift), got
    assert same_interval(got.interval, ci), got
    assert close(got.p_value, p), got
    assert close(got.chance_to_beat_control, chance), got
    assert same_interval(got.sequential_interval, seq_ci), got
    assert close(got.sequential_p_value, seq_p), got


@pytest.mark.parametrize(("assigned", "weights", "p"), GBSTATS_SRM)
def test_the_sample_ratio_check_gives_gbstats_p_value(
    assigned: list[int], weights: list[float], p: float
) -> None:
    assert close(srm_p_value(assigned, weights), p)


def test_the_mismatch_flag_threshold_is_growthbooks() -> None:
    assert SRM_THRESHOLD == 0.001
    flagged = srm_p_value([5000, 5400], [1, 1])
    balanced = srm_p_value([5030, 2460, 2510], [0.5, 0.25, 0.25])
    assert flagged is not None and flagged < SRM_THRESHOLD
    assert balanced is not None and balanced > SRM_THRESHOLD


def test_the_sequential_interval_is_wider_than_the_fixed_one_and_always_contains_it() -> None:
    # The price of looking every day: at every sample size the always-valid interval
    # covers the fixed-horizon one.
    for n in (100, 1_000, 10_000, 100_000, 1_000_000):
        got = compare(Arm(n, n // 10), Arm(n, n // 9))
        assert got.interval is not None and got.sequential_interval is not None
        assert got.sequential_interval.low < got.interval.low
        assert got.sequential_interval.high > got.interval.high
        assert got.sequential_p_value is not None and got.p_value is not None
        assert got.sequential_p_value >= got.p_value


def test_a_huge_effect_gives_p_zero_not_an_overflow() -> None:
    got = compare(Arm(10_000_000, 100_000), Arm(10_000_000, 900_000))
    assert got.sequential_p_value == 0.0
    assert got.p_value == 0.0
    assert got.chance_to_beat_control == 1.0


# Wilson score intervals from R. G. Newcombe, "Two-sided confidence intervals for the
# single proportion", Statistics in Medicine 17 (1998), table I, method 3 (to 4 places).
@pytest.mark.parametrize(
    ("conversions", "assigned", "low", "high"),
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611),
     (1, 29, 0.0061, 0.1718)],
)  # fmt: skip
def test_the_rate_interval_is_wilsons(
    conversions: int, assigned: int, low: float, high: float
) -> None:
    got = rate_interval(Arm(assigned, conversions))
    assert got is not None
    assert round(got.low, 4) == low and round(got.high, 4) == high


def test_rates_of_zero_and_all_have_intervals_inside_zero_one() -> None:
    none = rate_interval(Arm(50, 0))
    every = rate_interval(Arm(50, 50))
    assert none is not None and none.low == 0.0 and 0 < none.high < 0.1
    assert every is not None and 0.9 < every.low < 1 and every.high == 1.0
    assert rate_interval(Arm(0, 0)) is None


# Where gbstats answers placeholders (p 1, chance 0.5, interval [0, 0]), ours answers None
# and says why.


def test_no_players_gives_no_figures() -> None:
    got = compare(Arm(0, 0), Arm(0, 0))
    assert got.uplift is None and got.p_value is None and got.interval is None
    assert got.unavailable == "no players in the control yet"
    assert compare(Arm(10, 1), Arm(0, 0)).unavailable == "no players in this variant yet"


def test_a_control_without_conversions_gives_no_uplift() -> None:
    got = compare(Arm(500, 0), Arm(500, 7))
    assert got.uplift is None and got.chance_to_beat_control is None
    assert got.unavailable is not None and "no conversions in the control" in got.unavailable


def test_a_variant_without_conversions_has_an_uplift_but_no_interval() -> None:
    got = compare(Arm(500, 50), Arm(500, 0))
    assert got.uplift == -1.0
    assert got.interval is None and got.p_value is None and got.sequential_interval is None
    assert got.unavailable == (
        "this variant converts at 0%: no interval until it has both converted and "
        "unconverted players"
    )


def test_a_variant_where_everyone_converted_has_an_uplift_but_no_interval() -> None:
    got = compare(Arm(500, 50), Arm(20, 20))
    assert got.uplift == pytest.approx(9.0)
    assert got.interval is None and got.chance_to_beat_control is None
    assert got.unavailable is not None and "converts at 100%" in got.unavailable


def test_the_sample_ratio_check_needs_two_variants_players_and_weights() -> None:
    assert srm_p_value([1000], [1]) is None
    assert srm_p_value([0, 0], [1, 1]) is None
    assert srm_p_value([10, 12], [0, 0]) is None
    # A variant of weight 0 adds nothing to the statistic but counts in the degrees of
    # freedom, as in gbstats: check_srm([500, 500, 3], [1, 1, 0]) = 0.9955235091086609.
    assert close(srm_p_value([500, 500, 3], [1, 1, 0]), 0.9955235091086609)
