"""Leaderboard answers as the API documents them. The routes send bytes built directly
(`leaderboard_service`); tests check that those bytes are exactly these models'."""

from __future__ import annotations

import uuid
from datetime import date

from pydantic import Field

from gameportal.kit.schemas import Schema, example
from gameportal.progress.leaderboard import Period


class LeaderboardEntry(Schema):
    rank: int = Field(description="1 for the most points; ties go to whoever got there first")
    user_id: uuid.UUID
    display_name: str | None = Field(description="The player's name (null if just erased)")
    points: int = Field(description="Points gained in the period (all time: the total)")


LEADERBOARD_PAGE_EXAMPLE = {
    "gameId": "0195a0f1-2e3d-7b4c-a5d6-e7f8091a2b3c",
    "period": "week",
    "periodStart": "2026-03-16",
    "items": [
        {
            "rank": 1,
            "userId": "0195a3c2-5b1e-7c4d-8e9f-0a1b2c3d4e5f",
            "displayName": "Ada",
            "points": 1840,
        },
        {
            "rank": 2,
            "userId": "0195a3c4-0f1e-7d2c-9b3a-4c5d6e7f8091",
            "displayName": "Grace",
            "points": 1795,
        },
    ],
    "nextCursor": "cmFuazoy",
}


class LeaderboardPage(Schema):
    model_config = example(LEADERBOARD_PAGE_EXAMPLE)

    game_id: uuid.UUID
    period: Period
    period_start: date | None = Field(
        description="First day (UTC) of the ISO week or month shown; null for all time"
    )
    items: list[LeaderboardEntry]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next ranks")


MY_RANK_EXAMPLE = {
    "gameId": "0195a0f1-2e3d-7b4c-a5d6-e7f8091a2b3c",
    "period": "week",
    "periodStart": "2026-03-16",
    "rank": 2,
    "points": 1795,
    "items": [
        {
            "rank": 1,
            "userId": "0195a3c2-5b1e-7c4d-8e9f-0a1b2c3d4e5f",
            "displayName": "Ada",
            "points": 1840,
        },
        {
            "rank": 2,
            "userId": "0195a3c4-0f1e-7d2c-9b3a-4c5d6e7f8091",
            "displayName": "Grace",
            "points": 1795,
        },
    ],
}


class MyRank(Schema):
    model_config = example(MY_RANK_EXAMPLE)

    game_id: uuid.UUID
    period: Period
    period_start: date | None
    rank: int | None = Field(description="The caller's rank; null without a score here")
    points: int | None = Field(description="The caller's points; null without a score here")
    items: list[LeaderboardEntry] = Field(
        description="The caller and the `around` players just above and below, in rank order"
    )
