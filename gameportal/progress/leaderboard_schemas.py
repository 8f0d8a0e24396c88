"""Leaderboard answers as the API documents them. The routes send bytes built directly
(`leaderboard_service`); tests check that those bytes are exactly these models'."""

from __future__ import annotations

import uuid
from datetime import date

from pydantic import Field

from gameportal.kit.schemas import Schema
from gameportal.progress.leaderboard import Period


class LeaderboardEntry(Schema):
    rank: int = Field(description="1 for the most points; ties go to whoever got there first")
    user_id: uuid.UUID
    display_name: str | None = Field(description="The player's name (null if just erased)")
    points: int = Field(description="Points gained in the period (all time: the total)")


class LeaderboardPage(Schema):
    game_id: uuid.UUID
    period: Period
    period_start: date | None = Field(
        description="First day (UTC) of the ISO week or month shown; null for all time"
    )
    items: list[LeaderboardEntry]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next ranks")


class MyRank(Schema):
    game_id: uuid.UUID
    period: Period
    period_start: date | None
    rank: int | None = Field(description="The caller's rank; null without a score here")
    points: int | None = Field(description="The caller's points; null without a score here")
    items: list[LeaderboardEntry] = Field(
        description="The caller and the `around` players just above and below, in rank order"
    )
