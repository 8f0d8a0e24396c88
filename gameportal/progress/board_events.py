"""The NOTIFY that keeps every API process's leaderboards in step with the scores.

Sent in the transaction that changes a player's points (NOTIFY is transactional: it is
delivered on commit, and dropped with a rollback); each process then re-reads that
player's scores for the game and moves them on the boards it holds."""

from __future__ import annotations

import uuid

import asyncpg

LEADERBOARD_CHANNEL = "leaderboard"


async def notify_scores(conn: asyncpg.Connection, game_id: uuid.UUID, user_id: uuid.UUID) -> None:
    await conn.execute("SELECT pg_notify('leaderboard', $1)", f"{game_id}:{user_id}")
