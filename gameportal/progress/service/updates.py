"""What game servers do: report progress, unlock achievements, read a player's progress.

A progress update first tries the one-statement path (repository.updates.fast_updates,
shared by the updates that arrive together: service/batching.py), which applies it when
it only adds. When it would unlock something or raise the level, it
runs here instead, in one transaction with the player's progress row locked: the change,
the unlocks, their rewards, the level, the week and month scores, the player's
notifications and the idempotency record commit together or not at all."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import asyncpg
import orjson
import structlog

from gameportal.errors import PortalError
from gameportal.kit.ids import new_id
from gameportal.kit.schemas import utc_text
from gameportal.progress import rules
from gameportal.progress.board_events import notify_scores
from gameportal.progress.metrics import LEVEL_UPS, UNLOCKS, UPDATES
from gameportal.progress.repository import reads
from gameportal.progress.repository import updates as repo
from gameportal.progress.schemas import ProgressChange
from gameportal.progress.service.errors import (
    AchievementNotFound,
    GameNotFound,
    GameNotPublished,
    IdempotencyKeyReused,
    InvalidApiKey,
    LevelFollowsThresholds,
    PlayerBlocked,
    PlayerNotFound,
    ProgressNotFound,
)
from gameportal.progress.service.notices import tell_player
from gameportal.progress.service.runtime import ProgressRuntime

log = structlog.get_logger(__name__)


_DEADLOCK_RETRIES = 2


def request_hash(user_id: uuid.UUID, change: ProgressChange) -> bytes:
    """What an idempotency key was first used for: the player and the changes."""
    asked = [
        str(user_id),
        change.points_delta,
        change.experience_delta,
        change.level,
        sorted(change.stats.items()),
    ]
    return hashlib.sha256(orjson.dumps(asked)).digest()


def _allow(row: Mapping[str, Any], game_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """The key exists and is this game's, the game is published, the player can play."""
    if row["key_game"] is None:
        raise InvalidApiKey("the API key is unknown or was revoked")
    if row["key_game"] != game_id:
        # Another game's key: its holder learns nothing about this game, not even that
        # it exists.
        raise GameNotFound(f"no game {game_id} for this API key")
    if not row["game_live"]:
        raise GameNotPublished("progress is only kept for published games; publish it first")
    if row["blocked"] is None:
        raise PlayerNotFound(f"no player {user_id}")
    if row["blocked"]:
        raise PlayerBlocked("a blocked player's progress does not change")


def _vanished(exc: asyncpg.ForeignKeyViolationError, user_id: uuid.UUID) -> PortalError:
    """What went away between the checks and the write: the player (erased), the game or
    the achievement (deleted)."""
    constraint = exc.constraint_name or ""
    if constraint.endswith("_users"):
        return PlayerNotFound(f"no player {user_id}")
    if constraint.endswith("_achievements"):
        return AchievementNotFound("the achievement was deleted meanwhile")
    return GameNotFound("the game was deleted meanwhile")


# --- answers ---------------------------------------------------------------------------------


def _time(value: datetime | str) -> str:
    # Times stored in JSON by PostgreSQL carry the session's offset; answers are in UTC.
    return utc_text(datetime.fromisoformat(value) if isinstance(value, str) else value)


def _stored(row: Mapping[str, Any], unlocked: list[dict[str, Any]]) -> dict[str, Any]:
    """An update's result as the idempotency record keeps it (what a retry gets back)."""
    return {
        "level": row["level"],
        "experience": row["experience"],
        "points": row["points"],
        "stats": row["stats"],
        "last_activity_at": utc_text(row["last_activity_at"]),
        "unlocked": unlocked,
    }


def _unlocked(rule: rules.Rule, when: datetime) -> dict[str, Any]:
    return {
        "id": str(rule.id),
        "key": rule.key,
        "title": rule.title,
        "points": rule.points,
        "unlocked_at": utc_text(when),
    }


def answer(user_id: uuid.UUID, game_id: uuid.UUID, stored: Mapping[str, Any]) -> dict[str, Any]:
    """`ProgressUpdated` as JSON-ready values, built directly: on the hot path a dict and
    orjson cost a fraction of a model's validation and dump (a test keeps them equal)."""
    return {
        "userId": str(user_id),
        "gameId": str(game_id),
        "level": stored["level"],
        "experience": stored["experience"],
        "points": stored["points"],
        "stats": stored["stats"],
        "lastActivityAt": _time(stored["last_activity_at"]),
        "unlocked": [
            {
                "id": u["id"],
                "key": u["key"],
                "title": u["title"],
                "points": u["points"],
                "unlockedAt": _time(u["unlocked_at"]),
            }
            for u in stored["unlocked"]
        ],
    }


def _replayed(
    prior: Mapping[str, Any] | None, fingerprint: bytes, user_id: uuid.UUID, game_id: uuid.UUID
) -> bytes:
    if prior is None or bytes(prior["request_hash"]) != fingerprint:
        raise IdempotencyKeyReused()
    UPDATES.labels("replayed").inc()
    return orjson.dumps(answer(user_id, game_id, prior["result"]))


# --- progress updates ------------------------------------------------------------------------


async def report(
    pool: asyncpg.Pool,
    runtime: ProgressRuntime,
    key_hash: bytes,
    game_id: uuid.UUID,
    user_id: uuid.UUID,
    change: ProgressChange,
) -> bytes:
    """Apply a game server's update once per idempotency key; the answer's JSON."""
    fingerprint = request_hash(user_id, change)
    update = repo.FastUpdate(
        key_hash=key_hash,
        game_id=game_id,
        user_id=user_id,
        idempotency_key=change.idempotency_key,
        request_hash=fingerprint,
        points=change.points_delta,
        experience=change.experience_delta,
        level=change.level,
        stats=change.stats,
        new_id=new_id(),
    )
    try:
        for attempt in range(_DEADLOCK_RETRIES + 1):
            try:
                row = await runtime.batcher.submit(partial(repo.fast_updates, pool), update)
                break
            except asyncpg.DeadlockDetectedError:
                # Rows are locked in one order everywhere, but a key retried in two places
                # at once can still cross (one waits on the other's key, the other on its
                # row); PostgreSQL rolled this side back, nothing of it was written.
                if attempt == _DEADLOCK_RETRIES:
                    raise
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name != "pk_progress_updates":
            raise
        # The same key was being applied elsewhere and won; this attempt rolled back.
        prior = await repo.prior_update(pool, game_id, change.idempotency_key)
        return _replayed(prior, fingerprint, user_id, game_id)
    except asyncpg.ForeignKeyViolationError as exc:
        raise _vanished(exc, user_id) from None
    _allow(row, game_id, user_id)
    await runtime.key_use.used(pool, row["key_id"])
    if row["prior_hash"] is not None:
        return _replayed(
            {"request_hash": row["prior_hash"], "result": row["prior_result"]},
            fingerprint,
            user_id,
            game_id,
        )
    if change.level is not None and row["has_levels"]:
        raise LevelFollowsThresholds()
    if row["level"] is not None:
        UPDATES.labels("fast").inc()
        if row["scored"]:
            runtime.notices(pool).changed(game_id, user_id)
        return orjson.dumps(answer(user_id, game_id, _stored(row, [])))
    return await _careful_update(pool, key_hash, game_id, user_id, change, fingerprint)


def _levels(ctx: Mapping[str, Any]) -> rules.Levels | None:
    if ctx["level_basis"] is None:
        return None
    return rules.Levels(basis=ctx["level_basis"], thresholds=list(ctx["thresholds"]))


async def _careful_update(
    pool: asyncpg.Pool,
    key_hash: bytes,
    game_id: uuid.UUID,
    user_id: uuid.UUID,
    change: ProgressChange,
    fingerprint: bytes,
) -> bytes:
    try:
        async with pool.acquire() as conn, conn.transaction():
            ctx = await repo.access(conn, key_hash, game_id, user_id)
            _allow(ctx, game_id, user_id)
            levels = _levels(ctx)
            if change.level is not None and levels is not None:
                raise LevelFollowsThresholds()
            # The row first, then the key: the order the fast statement takes them in.
            current = await repo.lock_progress(conn, user_id, game_id, new_id())
            key = change.idempotency_key
            if not await repo.claim_update(conn, game_id, key, user_id, fingerprint):
                return _replayed(
                    await repo.prior_update(conn, game_id, key), fingerprint, user_id, game_id
                )
            held = await repo.held_achievements(conn, user_id, game_id)
            applied = await _apply(
                conn,
                ctx,
                user_id,
                game_id,
                current,
                held,
                rules.Change(
                    points=change.points_delta,
                    experience=change.experience_delta,
                    level=change.level,
                    stats=change.stats,
                ),
                levels=levels,
            )
            stored = _stored(applied.row, applied.unlocked)
            await repo.record_update(conn, game_id, key, stored)
    except asyncpg.ForeignKeyViolationError as exc:
        raise _vanished(exc, user_id) from None
    UPDATES.labels("careful").inc()
    return orjson.dumps(answer(user_id, game_id, stored))


@dataclass(frozen=True)
class _Applied:
    row: asyncpg.Record
    unlocked: list[dict[str, Any]]


def _rule(row: Mapping[str, Any]) -> rules.Rule:
    return rules.Rule(
        id=row["id"],
        key=row["key"],
        title=row["title"],
        description=row["description"],
        points=row["points"],
        criteria=row["criteria"],
    )


async def _apply(
    conn: asyncpg.Connection,
    ctx: Mapping[str, Any],
    user_id: uuid.UUID,
    game_id: uuid.UUID,
    current: Mapping[str, Any],
    held: dict[uuid.UUID, Any],
    change: rules.Change,
    *,
    levels: rules.Levels | None,
    grant: rules.Rule | None = None,
) -> _Applied:
    """Under the progress row's lock: work out the new state and write all it causes."""
    before = rules.State(
        level=current["level"],
        experience=current["experience"],
        points=current["points"],
        stats=dict(current["stats"]),
    )
    outcome = rules.advance(
        before,
        change,
        levels=levels,
        rules=[_rule(r) for r in await repo.criteria_rules(conn, game_id)],
        held=set(held),
        grant=grant,
    )
    after = outcome.state
    row = await repo.write_progress(
        conn,
        user_id,
        game_id,
        level=after.level,
        experience=after.experience,
        points=after.points,
        stats=after.stats,
        points_changed=after.points != before.points,
    )
    unlocked_at = (
        await repo.insert_unlocks(conn, user_id, game_id, [r.id for r in outcome.unlocked])
        if outcome.unlocked
        else {}
    )
    gained = after.points - before.points
    if gained:
        await repo.add_to_boards(conn, game_id, user_id, gained)
        await notify_scores(conn, game_id, user_id)
    await tell_player(conn, user_id, outcome, game_title=ctx["game_title"])
    for rule in outcome.unlocked:
        UNLOCKS.labels("game_server" if rule is grant else "criteria").inc()
    if outcome.levelled_up:
        LEVEL_UPS.inc()
    if outcome.unlocked or outcome.levelled_up:
        log.info(
            "progress_milestones",
            user_id=str(user_id),
            game_id=str(game_id),
            unlocked=[r.key for r in outcome.unlocked],
            level=after.level if outcome.levelled_up else None,
        )
    return _Applied(row=row, unlocked=[_unlocked(r, unlocked_at[r.id]) for r in outcome.unlocked])


# --- unlocks and reads -----------------------------------------------------------------------


async def unlock(
    pool: asyncpg.Pool,
    runtime: ProgressRuntime,
    key_hash: bytes,
    game_id: uuid.UUID,
    user_id: uuid.UUID,
    achievement_key: str,
) -> tuple[bytes, bool]:
    """Unlock an achievement for a player: the JSON answer, and whether it is new. Under
    the progress row's lock, so concurrent calls unlock, reward and notify once."""
    try:
        async with pool.acquire() as conn, conn.transaction():
            ctx = await repo.access(conn, key_hash, game_id, user_id)
            _allow(ctx, game_id, user_id)
            found = await repo.achievement_by_key(conn, game_id, achievement_key)
            if found is None:
                raise AchievementNotFound(f"the game has no achievement {achievement_key!r}")
            wanted = _rule(found)
            current = await repo.lock_progress(conn, user_id, game_id, new_id())
            held = await repo.held_achievements(conn, user_id, game_id)
            if wanted.id in held:
                row: Mapping[str, Any] = current
                achievement, unlocked, new = _unlocked(wanted, held[wanted.id]), [], False
            else:
                applied = await _apply(
                    conn,
                    ctx,
                    user_id,
                    game_id,
                    current,
                    held,
                    rules.Change(),
                    levels=_levels(ctx),
                    grant=wanted,
                )
                row, unlocked, new = applied.row, applied.unlocked, True
                achievement = next(u for u in unlocked if u["id"] == str(wanted.id))
    except asyncpg.ForeignKeyViolationError as exc:
        raise _vanished(exc, user_id) from None
    await runtime.key_use.used(pool, ctx["key_id"])
    stored = _stored(row, unlocked)
    progress = answer(user_id, game_id, stored)
    brief = answer(user_id, game_id, {**stored, "unlocked": [achievement]})["unlocked"][0]
    body = {"achievement": brief, "newlyUnlocked": new, "progress": progress}
    return orjson.dumps(body), new


async def server_progress(
    pool: asyncpg.Pool,
    runtime: ProgressRuntime,
    key_hash: bytes,
    game_id: uuid.UUID,
    user_id: uuid.UUID,
) -> tuple[asyncpg.Record, list[asyncpg.Record]]:
    """A player's progress in the key's game, with their unlocks."""
    ctx = await repo.access(pool, key_hash, game_id, user_id)
    _allow(ctx, game_id, user_id)
    await runtime.key_use.used(pool, ctx["key_id"])
    row = await reads.progress(pool, user_id, game_id)
    if row is None:
        raise ProgressNotFound("the player has no progress in this game yet")
    return row, await reads.held(pool, user_id, [game_id])
