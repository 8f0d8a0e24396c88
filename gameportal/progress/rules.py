"""The rules of progress, without a database: levels from thresholds, criteria, rewards.

`advance` takes a player's locked progress and one change and gives the state after it:
deltas added, the level worked out, and every achievement unlocked on the way. A reward
adds points, which may meet a points criterion or (with points-based thresholds) raise
the level, which may meet a level criterion: it goes round until nothing more unlocks."""

from __future__ import annotations

import bisect
import uuid
from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class State:
    level: int
    experience: int
    points: int
    stats: dict[str, int]


@dataclass(frozen=True)
class Levels:
    basis: str  # "experience" | "points"
    thresholds: list[int]  # thresholds[i] is what level i + 2 needs

    def level_for(self, state: State) -> int:
        value = state.points if self.basis == "points" else state.experience
        return 1 + bisect.bisect_right(self.thresholds, value)


@dataclass(frozen=True)
class Rule:
    """An achievement as the rules see it."""

    id: uuid.UUID
    key: str
    title: str
    description: str
    points: int
    criteria: dict[str, Any] | None

    def met_by(self, state: State) -> bool:
        if self.criteria is None:
            return False
        minimum = int(self.criteria["min"])
        kind = self.criteria["type"]
        if kind == "level":
            return state.level >= minimum
        if kind == "points":
            return state.points >= minimum
        if kind == "stat":
            return state.stats.get(str(self.criteria["stat"]), 0) >= minimum
        return False


@dataclass(frozen=True)
class Change:
    points: int = 0
    experience: int = 0
    level: int | None = None  # only where the game has no thresholds
    stats: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    state: State
    unlocked: list[Rule]
    levelled_up: bool


def advance(
    current: State,
    change: Change,
    *,
    levels: Levels | None,
    rules: list[Rule],
    held: set[uuid.UUID],
    grant: Rule | None = None,
) -> Outcome:
    """The state after `change`, with `grant` (an unlock a game server asked for) and every
    criterion met, each unlocked once: `held` are the ones the player already has."""
    stats = dict(current.stats)
    for name, delta in change.stats.items():
        stats[name] = stats.get(name, 0) + delta
    state = State(
        level=current.level,
        experience=current.experience + change.experience,
        points=current.points + change.points,
        stats=stats,
    )
    have = set(held)
    unlocked: list[Rule] = []

    def settle_level(state: State) -> State:
        if levels is not None:
            return replace(state, level=levels.level_for(state))
        if change.level is not None:
            return replace(state, level=change.level)
        return state

    state = settle_level(state)
    pending = [grant] if grant is not None and grant.id not in have else []
    while True:
        pending += [r for r in rules if r.id not in have and r not in pending and r.met_by(state)]
        if not pending:
            break
        for rule in pending:
            have.add(rule.id)
            unlocked.append(rule)
            state = replace(state, points=state.points + rule.points)
        pending = []
        state = settle_level(state)
    return Outcome(state=state, unlocked=unlocked, levelled_up=state.level > current.level)
