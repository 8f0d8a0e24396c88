"""Login throttling, per account and per IP, and registration throttling per client
address: hot paths (asyncpg), each a single statement that commits on its own."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from gameportal.identity.tokens import DeviceClaim

# Every attempt is claimed before its password is checked, so parallel guesses cannot
# outrun the counter: a key whose claimed-and-unsettled attempts reached its limit, or
# that is locked, refuses the attempt unchecked (the WHERE below leaves it uncounted).
# Which keys: a device that brings a device token of this account (valid while the
# account's password is the one it was earned with, and the token itself not locked)
# is counted on the token alone; any other attempt on the account and the IP, as OWASP's
# device cookies have it. The account lookup rides along: one round trip.
# ($3/$4/$8: limits for account/ip/device, $5: window, $6/$7: the token's key and mark.)
_CLAIM_SQL = """
WITH u AS (
    SELECT id, password_hash, is_blocked FROM users WHERE email = $1
), trust AS (
    SELECT $6::text IS NOT NULL
           AND coalesce((SELECT left(encode(sha256(convert_to(u.password_hash, 'UTF8')), 'hex'),
                                     16) = $7::text FROM u), false)
           AND NOT EXISTS (SELECT 1 FROM login_throttle d
                           WHERE d.scope = 'device' AND d.key = $6 AND d.locked_until > now())
           AS trusted
), keys (scope, key) AS (
    SELECT v.scope, v.key
    FROM (VALUES ('account', $1::text), ('ip', $2::text), ('device', $6::text)) AS v (scope, key),
         trust
    WHERE v.key IS NOT NULL AND (v.scope = 'device') = trust.trusted
), claims AS (
    INSERT INTO login_throttle AS t (scope, key, failures, window_started_at, locked_until)
    SELECT scope, key, 1, now(), NULL FROM keys
    ON CONFLICT (scope, key) DO UPDATE SET
        failures = CASE WHEN t.window_started_at < now() - $5::interval THEN 1
                        ELSE t.failures + 1 END,
        window_started_at = CASE WHEN t.window_started_at < now() - $5::interval THEN now()
                                 ELSE t.window_started_at END
    WHERE NOT coalesce(t.locked_until > now(), false)
      AND NOT (t.window_started_at >= now() - $5::interval
               AND t.failures >= (CASE t.scope WHEN 'account' THEN $3::int
                                               WHEN 'device' THEN $8::int ELSE $4::int END))
    RETURNING t.scope
)
SELECT (SELECT count(*) FROM keys) > (SELECT count(*) FROM claims) AS refused,
       (SELECT max(t.locked_until) FROM login_throttle t JOIN keys k USING (scope, key)
        WHERE t.locked_until > now()) AS locked_until,
       u.id, u.password_hash, u.is_blocked, trust.trusted
FROM trust LEFT JOIN u ON true
"""


@dataclass(frozen=True)
class ThrottleLimits:
    account: int
    ip: int
    window: timedelta
    lockout: timedelta
    device: int = 10


@dataclass(frozen=True)
class ThrottleKeys:
    """The counters one attempt went on: the account's and the IP's, or a device token's."""

    account: str | None = None
    ip: str | None = None
    device: str | None = None


async def claim_login_attempt(
    pool: asyncpg.Pool,
    *,
    email: str,
    ip: str | None,
    limits: ThrottleLimits,
    device: DeviceClaim | None = None,
) -> asyncpg.Record:
    """Count one password attempt against the account and the IP, or against the device
    token alone when it is trusted (`trusted`). `refused`: the attempt must be answered
    429 unchecked (`locked_until` says until when, if a lock is the reason). Also the
    account's id, hash and block flag."""
    row: asyncpg.Record = await pool.fetchrow(
        _CLAIM_SQL,
        email,
        ip,
        limits.account,
        limits.ip,
        limits.window,
        device.key if device else None,
        device.password_mark if device else None,
        limits.device,
    )
    return row


# A wrong password: a key whose claimed attempts reached its limit is locked now, and
# starts a fresh count once the lock passes, so nobody is locked out for good.
_FAILED_SQL = """
UPDATE login_throttle t
SET locked_until = now() + $7::interval, failures = 0, window_started_at = now()
FROM (VALUES ('account', $1::text, $4::int), ('ip', $2::text, $5::int),
             ('device', $3::text, $6::int)) AS k (scope, key, most)
WHERE t.scope = k.scope AND t.key = k.key AND t.failures >= k.most
  AND (t.locked_until IS NULL OR t.locked_until <= now())
RETURNING t.scope, t.locked_until
"""


async def login_attempt_failed(
    pool: asyncpg.Pool, *, keys: ThrottleKeys, limits: ThrottleLimits
) -> dict[str, datetime]:
    """The keys this failure locked (`account`, `ip`, `device`), and until when."""
    rows = await pool.fetch(
        _FAILED_SQL,
        keys.account,
        keys.ip,
        keys.device,
        limits.account,
        limits.ip,
        limits.device,
        limits.lockout,
    )
    return {r["scope"]: r["locked_until"] for r in rows}


async def login_attempt_succeeded(pool: asyncpg.Pool, *, email: str, ip: str | None) -> None:
    await pool.execute(_SUCCEEDED_SQL, email, ip)


# The right password clears the account's count and gives the IP its attempt back, so a
# busy NAT of honest players does not drift into a lockout.
_SUCCEEDED_SQL = """
WITH cleared AS (
    DELETE FROM login_throttle WHERE scope = 'account' AND key = $1
)
UPDATE login_throttle SET failures = greatest(failures - 1, 0)
WHERE scope = 'ip' AND key = $2 AND (locked_until IS NULL OR locked_until <= now())
"""


# --- registration -----------------------------------------------------------------------

# Registrations per client address in a fixed window (`failures` counts attempts here).
# Claimed before anything else runs, in one statement, so a burst sent in parallel cannot
# outrun the count; an attempt over the limit is not counted. Whether it was claimed is
# what the CTE returned: the read of the window's end sees the table as it was when the
# statement began, which in a burst may be before the row existed (then: a whole window).
_REGISTER_SQL = """
WITH claimed AS (
    INSERT INTO login_throttle AS t (scope, key, failures, window_started_at, locked_until)
    VALUES ('register', $1, 1, now(), NULL)
    ON CONFLICT (scope, key) DO UPDATE SET
        failures = CASE WHEN t.window_started_at <= now() - $3::interval THEN 1
                        ELSE t.failures + 1 END,
        window_started_at = CASE WHEN t.window_started_at <= now() - $3::interval THEN now()
                                 ELSE t.window_started_at END
    WHERE t.window_started_at <= now() - $3::interval OR t.failures < $2
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM claimed) AS claimed,
       coalesce((SELECT t.window_started_at + $3::interval FROM login_throttle t
                 WHERE t.scope = 'register' AND t.key = $1),
                now() + $3::interval) AS window_ends
"""


def registration_key(ip: str) -> str:
    """The address registrations are counted under: an IPv6 client's /64, which one
    subscriber commonly holds whole, so hopping within it gains nothing."""
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


async def claim_registration(
    pool: asyncpg.Pool, *, ip: str, most: int, window: timedelta
) -> datetime | None:
    """Count one registration attempt from `ip`; when over the limit, nothing is counted
    and the answer is until when the address must wait."""
    row = await pool.fetchrow(_REGISTER_SQL, registration_key(ip), most, window)
    if row["claimed"]:
        return None
    refused_until: datetime = row["window_ends"]
    return refused_until
