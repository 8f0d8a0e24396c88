"""Scores changed: what a progress write tells the leaderboards' rank caches.

Every write that changes a player's points (a progress update, an achievement's reward)
calls `notify_scores` in its own transaction, so the message goes out at commit and only
if it commits. The payload is `<gameId>:<userId>`; each API process LISTENs on
`LEADERBOARD_CHANNEL` and reloads that player's scores. The progress hot path issues the same
`pg_notify`, with the same payload, inside its one statement (repository.py).
"""

from __future__ import annotations

import uuid

import asyncpg

LEADERBOARD_CHANNEL = "leaderboard"


def payload(game_id: uuid.UUID, user_id: uuid.UUID) -> str:
    return f"{game_id}:{user_id}"


def parse(text: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """The game and player a payload names, or None for one this module did not write."""
    game, _, user = text.partition(":")
    try:
        return uuid.UUID(game), uuid.UUID(user)
    except ValueError:
        return None


async def notify_scores(conn: asyncpg.Connection, game_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Tell every API process, at commit, that this player's scores in this game moved."""
    await conn.execute("SELECT pg_notify($1, $2)", LEADERBOARD_CHANNEL, payload(game_id, user_id))
