"""What the marketers' API checks against the database and across fields: ids that
exist, a window that is not empty, a segment's game and achievement, variant weights.
Every problem of a request is collected, so one answer lists them all."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from pydantic.alias_generators import to_camel
from sqlalchemy.ext.asyncio import AsyncSession

from gameportal.errors import FieldProblem, InvalidField
from gameportal.liveops import admin_repository as repo
from gameportal.liveops.schemas import Segment
from gameportal.models import ABRule


class Problems:
    """Every field problem of a request, reported together."""

    def __init__(self) -> None:
        self.items: list[FieldProblem] = []

    def add(self, field: str, message: str, code: str) -> None:
        self.items.append(FieldProblem(field=field, location="body", message=message, code=code))

    def raise_any(self) -> None:
        if self.items:
            raise InvalidField.many(self.items)


def check_window(problems: Problems, start: datetime | None, end: datetime | None) -> None:
    if start is not None and end is not None and start >= end:
        problems.add(
            "endAt",
            f"must be after startAt ({start.isoformat().replace('+00:00', 'Z')})",
            "window_empty",
        )


async def check_content(
    session: AsyncSession, problems: Problems, field: str, ids: Sequence[uuid.UUID]
) -> None:
    found = await repo.content_types(session, ids)
    for index, content_id in enumerate(ids):
        if content_id not in found:
            problems.add(f"{field}.{index}", f"no content item has id {content_id}", "not_found")


async def check_segment(session: AsyncSession, problems: Problems, segment: Segment) -> None:
    field = "targetingRules.segment"
    kind = (await repo.content_types(session, [segment.game_id])).get(segment.game_id)
    if kind != "GAME":
        problems.add(
            f"{field}.gameId",
            f"no game has id {segment.game_id}"
            + (f" (it is a {kind} content item)" if kind else ""),
            "not_found",
        )
    elif segment.has_achievement is not None and not await repo.achievement_exists(
        session, segment.game_id, segment.has_achievement
    ):
        problems.add(
            f"{field}.hasAchievement",
            f"the game has no achievement with the key {segment.has_achievement!r}",
            "not_found",
        )
    if (
        segment.min_level is not None
        and segment.max_level is not None
        and segment.min_level > segment.max_level
    ):
        problems.add(
            f"{field}.maxLevel", f"must be at least minLevel ({segment.min_level})", "range_empty"
        )


def weight_of(rule: ABRule) -> float:
    return float(rule.rule.get("weight", 0))


async def check_variants(
    session: AsyncSession, problems: Problems, ids: Sequence[uuid.UUID]
) -> None:
    found = await repo.rules(session, ids)
    first: dict[uuid.UUID, int] = {}
    for index, rule_id in enumerate(ids):
        if rule_id in first:
            problems.add(
                f"abVariants.{index}",
                f"repeats abVariants.{first[rule_id]}: each variant appears once",
                "repeated",
            )
        elif rule_id not in found:
            problems.add(f"abVariants.{index}", f"no A/B rule has id {rule_id}", "not_found")
        first.setdefault(rule_id, index)
    if found.keys() >= set(ids) and sum(weight_of(found[i]) for i in set(ids)) <= 0:
        problems.add(
            "abVariants",
            "the variants' weights sum to 0, so no player could be assigned: give at least "
            "one a weight above 0",
            "weights_sum_to_zero",
        )


def not_null(changes: dict[str, Any], names: Iterable[str], prefix: str = "") -> None:
    for name in names:
        if name in changes and changes[name] is None:
            raise InvalidField(prefix + to_camel(name), "cannot be null", "null")
