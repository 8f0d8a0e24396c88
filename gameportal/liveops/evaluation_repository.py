"""SQL of the player-facing side of live operations: the in-process snapshot's load, the
evaluation's one read and its writes, conversions, the anonymous-to-account carry-over and
personalized offers. Single asyncpg statements on the pool: these are hot paths, or run
beside them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import asyncpg

# --- the snapshot ----------------------------------------------------------------------------

# Every campaign that is active and not yet over, including those whose window has not
# opened: the evaluator checks the schedule per request, so a campaign starts on time
# without a reload.
_CAMPAIGNS_SQL = """
SELECT id, name, description, start_at, end_at, active, targeting_rules, content_ids,
       ab_variants, coverage, hash_seed, exclusion_group, created_by, created_at,
       updated_at, version
FROM campaigns
WHERE active AND (end_at IS NULL OR end_at > now())
ORDER BY id
"""
_RULES_SQL = """
SELECT id, name, description, start_at, end_at, active, rule, created_by, created_at,
       updated_at, version
FROM ab_rules WHERE id = ANY($1::uuid[])
"""
_RANGES_SQL = """
SELECT campaign_id, ip_range::text AS cidr FROM campaign_ip_ranges
WHERE campaign_id = ANY($1::uuid[])
"""
# What a player sees of a campaign's content: published items only.
_CONTENT_SQL = """
SELECT id, type, title, slug, locale FROM content
WHERE id = ANY($1::uuid[]) AND status = 'PUBLISHED'
"""


@dataclass(frozen=True)
class SnapshotRows:
    campaigns: list[asyncpg.Record]
    rules: list[asyncpg.Record]
    ranges: list[asyncpg.Record]
    content: list[asyncpg.Record]


async def snapshot_rows(pool: asyncpg.Pool) -> SnapshotRows:
    """The live campaigns with their variants, IP ranges and published content, read in
    one repeatable-read transaction so that they agree with one another."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        campaigns = await conn.fetch(_CAMPAIGNS_SQL)
        ids = [r["id"] for r in campaigns]
        rule_ids = list({v for r in campaigns for v in r["ab_variants"]})
        rules = await conn.fetch(_RULES_SQL, rule_ids)
        ranges = await conn.fetch(_RANGES_SQL, ids)
        content_ids = {c for r in campaigns for c in r["content_ids"]}
        for rule in rules:
            body = rule["rule"] if isinstance(rule["rule"], dict) else {}
            for cid in body.get("contentIds") or ():
                try:
                    content_ids.add(uuid.UUID(str(cid)))
                except ValueError:
                    continue
        content = await conn.fetch(_CONTENT_SQL, list(content_ids))
    return SnapshotRows(campaigns=campaigns, rules=rules, ranges=ranges, content=content)


async def campaign_rows(
    pool: asyncpg.Pool, campaign_id: uuid.UUID
) -> tuple[asyncpg.Record | None, list[asyncpg.Record], bool]:
    """One campaign whatever its state (the preview), its variants, and whether it has IP
    ranges."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        row = await conn.fetchrow(
            _CAMPAIGNS_SQL.split("FROM campaigns")[0] + "FROM campaigns WHERE id = $1",
            campaign_id,
        )
        if row is None:
            return None, [], False
        rules = await conn.fetch(_RULES_SQL, list(row["ab_variants"]))
        has_ranges = bool(
            await conn.fetchval(
                "SELECT EXISTS (SELECT FROM campaign_ip_ranges WHERE campaign_id = $1)",
                campaign_id,
            )
        )
    return row, rules, has_ranges


async def ip_in_ranges(pool: asyncpg.Pool, campaign_id: uuid.UUID, ip: str) -> bool:
    """Whether the address falls in one of the campaign's ranges: the database's own
    answer, through the GiST index (the preview shows what PostgreSQL says)."""
    found = await pool.fetchval(
        "SELECT EXISTS (SELECT FROM campaign_ip_ranges "
        "WHERE campaign_id = $1 AND ip_range >>= $2::inet)",
        campaign_id,
        ip,
    )
    return bool(found)


# --- evaluation: the one read ----------------------------------------------------------------

# What a player's evaluation needs besides the snapshot, in one round trip with the
# session check GET /me makes (identity's _LIVE_SESSION, the same conditions): the
# player's assignments, progress (with the offers stored on it) and, of the achievements
# some segment asks for, those the player holds. No row: the session has ended.
_PLAYER_SQL = """
SELECT l.campaigns, l.variants, l.groups,
       p.games, p.levels, p.points, p.offers,
       a.games AS achievement_games, a.keys AS achievement_keys
FROM sessions s JOIN users u ON u.id = s.user_id
CROSS JOIN LATERAL (
    SELECT array_agg(campaign_id) AS campaigns, array_agg(variant_id) AS variants,
           array_agg(exclusion_group) AS groups
    FROM ab_experiment_log WHERE user_id = $2
) l
CROSS JOIN LATERAL (
    SELECT array_agg(game_id) AS games, array_agg(level) AS levels, array_agg(points) AS points,
           array_agg(array_to_string(personalized_offers, ',')) AS offers
    FROM user_progress WHERE user_id = $2
) p
CROSS JOIN LATERAL (
    SELECT array_agg(x.game_id) AS games, array_agg(k.key) AS keys
    FROM achievement_unlocks x JOIN achievements k ON k.id = x.achievement_id
    WHERE x.user_id = $2 AND x.game_id = ANY($4::uuid[]) AND k.key = ANY($5::text[])
) a
WHERE s.id = $1 AND s.user_id = $2
  AND s.revoked_at IS NULL AND s.expires_at > now()
  AND s.last_used_at > now() - $3::interval
  AND NOT u.is_blocked
"""


async def player_state(
    pool: asyncpg.Pool,
    *,
    session_id: uuid.UUID,
    user_id: uuid.UUID,
    idle: timedelta,
    achievement_games: Sequence[uuid.UUID],
    achievement_keys: Sequence[str],
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await pool.fetchrow(
        _PLAYER_SQL, session_id, user_id, idle, achievement_games, achievement_keys
    )
    return row


_VISITOR_SQL = """
SELECT campaign_id, variant_id, exclusion_group FROM ab_experiment_log
WHERE anonymous_id = $1 AND user_id IS NULL
"""


async def visitor_assignments(pool: asyncpg.Pool, anonymous_id: uuid.UUID) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pool.fetch(_VISITOR_SQL, anonymous_id)
    return rows


_ASSIGNMENTS_SQL = """
SELECT campaign_id, variant_id, exclusion_group FROM ab_experiment_log WHERE user_id = $1
"""


async def player_assignments(pool: asyncpg.Pool, user_id: uuid.UUID) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pool.fetch(_ASSIGNMENTS_SQL, user_id)
    return rows


# --- evaluation: the writes ------------------------------------------------------------------

# New assignments, each logged at most once whatever the concurrency: a row that would be
# a second one for the campaign, or for the exclusion group, is not written (ON CONFLICT
# DO NOTHING on every unique index), and the caller reads the winner. Nor is one whose
# campaign is gone or no longer in the exclusion group this process's snapshot says (a
# change committed a moment ago; the row would carry the wrong group). The campaign's row
# is locked KEY SHARE, as the foreign key does anyway: a group change (which holds it FOR
# UPDATE) waits for this insert, and this insert waits for a change in progress and then
# reads the campaign as changed. Rows go in campaign order, so concurrent requests of one
# player take the index entries in one order.
# For a player, the offers stored on their progress are set in the same statement where
# they changed (an empty text is an empty list).
_ASSIGN_SQL = """
WITH q AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[])
        AS q (id, campaign_id, variant_id, grp)
),
ins AS (
    INSERT INTO ab_experiment_log (id, campaign_id, user_id, anonymous_id, variant_id,
                                   exclusion_group)
    SELECT q.id, q.campaign_id, $5, CASE WHEN $5::uuid IS NULL THEN $6::uuid END,
           q.variant_id, q.grp
    FROM q JOIN campaigns c ON c.id = q.campaign_id
    WHERE c.exclusion_group IS NOT DISTINCT FROM q.grp
    ORDER BY q.campaign_id
    FOR KEY SHARE OF c
    ON CONFLICT DO NOTHING
    RETURNING campaign_id
),
offers AS (
    UPDATE user_progress p SET personalized_offers = string_to_array(o.offers, ',')::uuid[]
    FROM unnest($7::uuid[], $8::text[]) AS o (game_id, offers)
    WHERE $5::uuid IS NOT NULL AND p.user_id = $5 AND p.game_id = o.game_id
      AND array_to_string(p.personalized_offers, ',') IS DISTINCT FROM o.offers
    RETURNING 1
)
SELECT coalesce(array_agg(campaign_id), '{}') AS inserted, (SELECT count(*) FROM offers) AS offers
FROM ins
"""


@dataclass(frozen=True)
class NewAssignment:
    id: uuid.UUID
    campaign_id: uuid.UUID
    variant_id: uuid.UUID
    exclusion_group: str | None


async def assign(
    pool: asyncpg.Pool,
    *,
    user_id: uuid.UUID | None,
    anonymous_id: uuid.UUID | None,
    new: Sequence[NewAssignment],
    offers: Sequence[tuple[uuid.UUID, str]] = (),
) -> set[uuid.UUID]:
    """Log `new` (for a player or a visitor) and store changed `offers` (game id, the
    campaign ids joined by commas); the campaigns whose row this statement wrote."""
    inserted = await pool.fetchval(
        _ASSIGN_SQL,
        [a.id for a in new],
        [a.campaign_id for a in new],
        [a.variant_id for a in new],
        [a.exclusion_group for a in new],
        user_id,
        anonymous_id,
        [g for g, _ in offers],
        [o for _, o in offers],
    )
    return set(inserted or ())


# --- conversions -----------------------------------------------------------------------------

_CONVERT_SQL = """
UPDATE ab_experiment_log
SET conversion_event = now(), conversion_name = $3, conversion_value = $4
WHERE campaign_id = $1 AND user_id = $2 AND conversion_event IS NULL
RETURNING variant_id, assigned_at, conversion_event, conversion_name, conversion_value
"""

# Why a conversion was not recorded: no such campaign, the player is not in it, or it was
# recorded before (then its first record).
_CONVERSION_SQL = """
SELECT EXISTS (SELECT FROM campaigns WHERE id = $1) AS campaign_exists,
       l.variant_id, l.assigned_at, l.conversion_event, l.conversion_name, l.conversion_value
FROM (SELECT) AS one
LEFT JOIN ab_experiment_log l ON l.campaign_id = $1 AND l.user_id = $2
"""


async def convert(
    pool: asyncpg.Pool,
    campaign_id: uuid.UUID,
    user_id: uuid.UUID,
    event: str | None,
    value: Decimal | None,
) -> asyncpg.Record | None:
    """The player's row with its conversion, if this call recorded it; else None."""
    row: asyncpg.Record | None = await pool.fetchrow(
        _CONVERT_SQL, campaign_id, user_id, event, value
    )
    return row


async def conversion(
    pool: asyncpg.Pool, campaign_id: uuid.UUID, user_id: uuid.UUID
) -> asyncpg.Record:
    row: asyncpg.Record = await pool.fetchrow(_CONVERSION_SQL, campaign_id, user_id)
    return row


# What a game server may convert for: its key's game, the player, and the campaign's
# segment game (null when the campaign has no segment, or no such campaign).
_SERVER_ACCESS_SQL = """
SELECT k.id AS key_id, k.game_id AS key_game, u.id AS user_id,
       c.id AS campaign_id, c.targeting_rules->'segment'->>'gameId' AS segment_game
FROM (SELECT) AS one
LEFT JOIN game_api_keys k ON k.key_hash = $1
LEFT JOIN users u ON u.id = $2
LEFT JOIN campaigns c ON c.id = $3
"""


async def server_access(
    pool: asyncpg.Pool, key_hash: bytes, user_id: uuid.UUID, campaign_id: uuid.UUID
) -> asyncpg.Record:
    row: asyncpg.Record = await pool.fetchrow(_SERVER_ACCESS_SQL, key_hash, user_id, campaign_id)
    return row


# --- carry-over ------------------------------------------------------------------------------

# A visitor's rows pass to the account that just logged in or registered, where the account
# has no row for that campaign nor (for a row in an exclusion group) for that group; the
# visitor's other rows are deleted: the account's own assignment wins, and one person
# counts once in the results. Returns how many passed.
_CARRY_OVER_SQL = """
WITH visitor AS (
    SELECT id, campaign_id, exclusion_group FROM ab_experiment_log
    WHERE anonymous_id = $1 AND user_id IS NULL
    ORDER BY campaign_id
    FOR UPDATE
),
kept AS (
    SELECT v.id FROM visitor v
    WHERE NOT EXISTS (
        SELECT FROM ab_experiment_log u
        WHERE u.user_id = $2
          AND (u.campaign_id = v.campaign_id
               OR (v.exclusion_group IS NOT NULL AND u.exclusion_group = v.exclusion_group)))
),
moved AS (
    UPDATE ab_experiment_log l SET user_id = $2
    FROM kept WHERE l.id = kept.id
    RETURNING l.id
),
dropped AS (
    DELETE FROM ab_experiment_log l
    USING visitor v WHERE l.id = v.id AND v.id NOT IN (SELECT id FROM kept)
)
SELECT count(*) FROM moved
"""


async def carry_over(
    executor: asyncpg.Pool | asyncpg.Connection, anonymous_id: uuid.UUID, user_id: uuid.UUID
) -> int:
    moved = await executor.fetchval(_CARRY_OVER_SQL, anonymous_id, user_id)
    return int(moved or 0)


# --- personalized offers ---------------------------------------------------------------------

# Players whose offers may be out of step with the live campaigns: those in one of the
# `changed` campaigns and, with `stale`, those holding an offer that is no longer a live
# campaign (one deactivated, deleted or over). One scan, read through a cursor.
_PLAYERS_IN_SQL = """
SELECT DISTINCT user_id FROM ab_experiment_log
WHERE campaign_id = ANY($1::uuid[]) AND user_id IS NOT NULL
"""
_PLAYERS_IN_OR_STALE_SQL = """
SELECT user_id FROM ab_experiment_log
WHERE campaign_id = ANY($1::uuid[]) AND user_id IS NOT NULL
UNION
SELECT user_id FROM user_progress
WHERE personalized_offers <> '{}' AND NOT personalized_offers <@ $2::uuid[]
"""


async def affected_players(
    pool: asyncpg.Pool,
    changed: Sequence[uuid.UUID],
    *,
    live: Sequence[uuid.UUID] | None,
    batch: int,
) -> AsyncIterator[list[uuid.UUID]]:
    """Batches of the players whose offers `changed` campaigns (and, given the `live`
    ones, offers no longer live) may have moved."""
    args: tuple[object, ...] = (changed,) if live is None else (changed, live)
    sql = _PLAYERS_IN_SQL if live is None else _PLAYERS_IN_OR_STALE_SQL
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        page: list[uuid.UUID] = []
        async for record in conn.cursor(sql, *args, prefetch=batch):
            page.append(record["user_id"])
            if len(page) >= batch:
                yield page
                page = []
        if page:
            yield page


# The same facts as _PLAYER_SQL, for many players at once (no session involved).
_PLAYERS_STATE_SQL = """
SELECT q.user_id, EXISTS (SELECT FROM users WHERE id = q.user_id) AS known,
       l.campaigns, l.variants, l.groups,
       p.games, p.levels, p.points, p.offers,
       a.games AS achievement_games, a.keys AS achievement_keys
FROM unnest($1::uuid[]) AS q (user_id)
CROSS JOIN LATERAL (
    SELECT array_agg(campaign_id) AS campaigns, array_agg(variant_id) AS variants,
           array_agg(exclusion_group) AS groups
    FROM ab_experiment_log WHERE user_id = q.user_id
) l
CROSS JOIN LATERAL (
    SELECT array_agg(game_id) AS games, array_agg(level) AS levels, array_agg(points) AS points,
           array_agg(array_to_string(personalized_offers, ',')) AS offers
    FROM user_progress WHERE user_id = q.user_id
) p
CROSS JOIN LATERAL (
    SELECT array_agg(x.game_id) AS games, array_agg(k.key) AS keys
    FROM achievement_unlocks x JOIN achievements k ON k.id = x.achievement_id
    WHERE x.user_id = q.user_id AND x.game_id = ANY($2::uuid[]) AND k.key = ANY($3::text[])
) a
"""


async def players_state(
    pool: asyncpg.Pool,
    users: Sequence[uuid.UUID],
    achievement_games: Sequence[uuid.UUID],
    achievement_keys: Sequence[str],
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pool.fetch(
        _PLAYERS_STATE_SQL, users, achievement_games, achievement_keys
    )
    return rows


_SET_OFFERS_SQL = """
UPDATE user_progress p SET personalized_offers = string_to_array(o.offers, ',')::uuid[]
FROM unnest($1::uuid[], $2::uuid[], $3::text[]) AS o (user_id, game_id, offers)
WHERE p.user_id = o.user_id AND p.game_id = o.game_id
  AND array_to_string(p.personalized_offers, ',') IS DISTINCT FROM o.offers
"""


async def set_offers(
    pool: asyncpg.Pool, changes: Sequence[tuple[uuid.UUID, uuid.UUID, str]]
) -> int:
    """(user, game, offers joined by commas) each; how many rows changed."""
    if not changes:
        return 0
    status = await pool.execute(
        _SET_OFFERS_SQL, [c[0] for c in changes], [c[1] for c in changes], [c[2] for c in changes]
    )
    return int(status.split()[-1])
