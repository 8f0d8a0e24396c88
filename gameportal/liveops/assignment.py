"""A new player's variant, and a new player's campaign within an exclusion group.

Both are pure functions of their inputs: the same player, campaign and time always give
the same answer, so two processes (or two concurrent requests) agree without talking.
Stickiness is the caller's: once a player's choice is logged, the log row wins over
anything computed here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from gameportal.liveops.hashing import choose_weighted, fnv1a32, gb_hash
from gameportal.liveops.targeting import Campaign, Variant


def new_assignment(c: Campaign, player_key: str, now: datetime) -> Variant | None:
    """The variant a player not yet in the campaign gets: GrowthBook's experiment
    bucketing (hash v2 of the campaign's seed and the player's key; coverage shrinks each
    variant's range) over the variants that may receive players now, weighted by their
    weights. None when the player falls outside coverage or no variant is eligible."""
    eligible = [  # Variant.eligible, inlined: this runs per matching campaign
        v
        for v in c.variants
        if v.active
        and (v.start_at is None or v.start_at <= now)
        and (v.end_at is None or now < v.end_at)
    ]
    if not eligible:
        return None
    n = gb_hash(c.hash_seed, player_key)
    index = choose_weighted(n, [v.weight for v in eligible], c.coverage)
    return None if index is None else eligible[index]


def pick_in_group(group: str, player_key: str, candidates: Sequence[Campaign]) -> Campaign:
    """One of the matching campaigns of an exclusion group, for a player in none of them.

    Rendezvous (highest-random-weight) hashing: each candidate scores a 32-bit hash of the
    group, its id and the player, and the highest wins (ties, vanishingly rare, go to the
    smaller id). The choice does not depend on the candidates' order; each candidate wins
    for an equal share of players; and a campaign joining or leaving the group moves only
    the players it wins or had won, never one between two other campaigns."""
    if not candidates:
        raise ValueError("pick_in_group needs at least one candidate")
    best = candidates[0]
    best_score = _score(group, best, player_key)
    for c in candidates[1:]:
        score = _score(group, c, player_key)
        if score > best_score or (score == best_score and c.id < best.id):
            best, best_score = c, score
    return best


def _score(group: str, c: Campaign, player_key: str) -> int:
    # Hashed twice, as hash v2 does, so keys differing only at the end still spread.
    return fnv1a32(str(fnv1a32(f"__{group}|{c.id}|{player_key}")))
