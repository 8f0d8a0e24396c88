"""GET /api/v1/campaigns/active: the live campaigns that match this request, each with the
caller's variant, its payload and the content it promotes.

The caller is a player (access token) or a visitor (`X-Anonymous-Id`, a UUID the client
keeps). The request's facts (country from the address, device type from the User-Agent,
languages) and the player's progress are checked against the process's snapshot
(snapshot.py); the campaigns that match are answered with the variant already logged for
the caller (sticky, whatever the weights are now) or, for a first visit, a new one
(assignment.py), logged once whatever the concurrency.

Round trips: a returning player's request is one statement, the same session check GET
/me makes, which also reads the player's assignments and progress; a returning visitor's
is one read of their assignments (none when nothing matches). Only new assignments, and
personalized offers that changed, are written: one more statement.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from ipaddress import IPv4Address, IPv6Address, ip_address

import asyncpg
import structlog

from gameportal.errors import InvalidField, Unauthorized, Unavailable
from gameportal.identity.devices import MAX_USER_AGENT, country_for, device_type
from gameportal.identity.tokens import AccessClaims, AccessTokens, InvalidAccessToken
from gameportal.kit.ids import new_id
from gameportal.kit.net import IPNetwork, client_ip
from gameportal.kit.schemas import LANGUAGE_TAG_PATTERN
from gameportal.liveops import evaluation_repository as repo
from gameportal.liveops.assignment import new_assignment, pick_in_group
from gameportal.liveops.snapshot import CampaignSnapshots, Snapshot
from gameportal.liveops.targeting import (
    Campaign,
    Facts,
    ProgressFacts,
    Variant,
    accept_language_tags,
    matches,
    primary_tag,
)

log = structlog.get_logger(__name__)

ANONYMOUS_HEADER = "X-Anonymous-Id"
Address = IPv4Address | IPv6Address
Assigned = Mapping[uuid.UUID, tuple[uuid.UUID, str | None]]  # campaign -> (variant, group)

_LANGUAGE = re.compile(LANGUAGE_TAG_PATTERN)


class CampaignsNotLoaded(Unavailable):
    slug = "campaigns-not-loaded"
    title = "Campaigns are not loaded yet"


# --- the request's facts -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestFacts:
    ip: Address | None
    country: str | None
    device_type: str
    languages: tuple[str, ...]


# Clients come back with the same few addresses and headers: each is parsed once per
# process (bounded, so a client inventing values only recycles entries).
@lru_cache(maxsize=65536)
def address_facts(ip: str | None) -> tuple[Address | None, str | None]:
    """The address (an IPv4-mapped IPv6 one as IPv4) and its country."""
    if ip is None:
        return None, None
    try:
        parsed = ip_address(ip)
    except ValueError:
        return None, None
    if isinstance(parsed, IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    return parsed, country_for(str(parsed))


@lru_cache(maxsize=4096)
def _accepted(header: str | None) -> tuple[str, ...]:
    return accept_language_tags(header)


def languages_of(explicit: str | None, accept_language: str | None) -> tuple[str, ...]:
    """`?language=` (one BCP 47 tag, 422 when it is not one), else Accept-Language."""
    if explicit is None:
        return _accepted(accept_language)
    if not _LANGUAGE.match(explicit):
        raise InvalidField(
            "language", "must be a BCP 47 language tag such as `en` or `pt-BR`", location="query"
        )
    return (primary_tag(explicit),)


def request_facts(
    *,
    peer: str | None,
    forwarded_for: str | None,
    proxies: tuple[IPNetwork, ...],
    user_agent: str | None,
    explicit_language: str | None,
    accept_language: str | None,
) -> RequestFacts:
    """X-Forwarded-For counts only from trusted proxies (kit.net.client_ip)."""
    ip, country = address_facts(client_ip(peer, forwarded_for, proxies))
    if user_agent is not None:
        user_agent = user_agent[:MAX_USER_AGENT]
    return RequestFacts(
        ip=ip,
        country=country,
        device_type=device_type(user_agent),
        languages=languages_of(explicit_language, accept_language),
    )


# The nil and max UUIDs are what a client sends whose id was never set (C#'s
# `default(Guid)`, a zeroed buffer): every such client would be one visitor, sharing one
# variant, one log row per campaign and, at the first login, its assignments.
SHARED_UUIDS = frozenset({uuid.UUID(int=0), uuid.UUID(int=(1 << 128) - 1)})


def anonymous_id(header: str | None) -> uuid.UUID:
    if header is None:
        # Neither a player nor a visitor: nobody a variant could be kept for.
        raise Unauthorized(
            "send an access token (Authorization: Bearer …) or, for a visitor who has not "
            "logged in, X-Anonymous-Id: a UUID the client keeps for this visitor"
        )
    try:
        visitor = uuid.UUID(header.strip())
    except ValueError:
        raise InvalidField(
            ANONYMOUS_HEADER, "must be a UUID", "uuid_parsing", location="header"
        ) from None
    if visitor in SHARED_UUIDS:
        raise InvalidField(
            ANONYMOUS_HEADER,
            f"{visitor} is the id of every client whose id was never set: make a random "
            "UUID (v4) once for this visitor and keep it",
            "uuid_reserved",
            location="header",
        )
    return visitor


def access_claims(tokens: AccessTokens, authorization: str) -> AccessClaims:
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send an access token as `Authorization: Bearer <token>`")
    try:
        return tokens.decode(token.strip())
    except InvalidAccessToken as exc:
        raise Unauthorized(str(exc)) from None


# --- the player's state ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlayerState:
    assigned: dict[uuid.UUID, tuple[uuid.UUID, str | None]]
    progress: dict[uuid.UUID, ProgressFacts]
    offers: dict[uuid.UUID, str]  # game -> stored offers, joined by commas


_NO_ACHIEVEMENTS: frozenset[str] = frozenset()


def assigned_from(
    campaigns: Sequence[uuid.UUID] | None,
    variants: Sequence[uuid.UUID] | None,
    groups: Sequence[str | None] | None,
) -> dict[uuid.UUID, tuple[uuid.UUID, str | None]]:
    if not campaigns or variants is None or groups is None:
        return {}
    return {c: (v, g) for c, v, g in zip(campaigns, variants, groups, strict=True)}


def player_state(row: Mapping[str, object]) -> PlayerState:
    """From the arrays `_PLAYER_SQL` (or `_PLAYERS_STATE_SQL`) returns."""
    held: dict[uuid.UUID, set[str]] = {}
    games_with = row["achievement_games"] or ()
    keys = row["achievement_keys"] or ()
    for game, key in zip(games_with, keys, strict=True):  # type: ignore[call-overload]
        held.setdefault(game, set()).add(key)
    progress: dict[uuid.UUID, ProgressFacts] = {}
    offers: dict[uuid.UUID, str] = {}
    games = row["games"]
    if games:
        for game, level, points, stored in zip(  # type: ignore[call-overload]
            games, row["levels"], row["points"], row["offers"], strict=True
        ):
            found = held.get(game)
            progress[game] = ProgressFacts(
                level, points, frozenset(found) if found else _NO_ACHIEVEMENTS
            )
            offers[game] = stored
    return PlayerState(
        assigned=assigned_from(row["campaigns"], row["variants"], row["groups"]),  # type: ignore[arg-type]
        progress=progress,
        offers=offers,
    )


# --- evaluation ------------------------------------------------------------------------------


@dataclass(slots=True)
class Outcome:
    shown: list[tuple[Campaign, Variant]]
    new: list[repo.NewAssignment]
    matched: Sequence[Campaign]


def matching(snap: Snapshot, facts: Facts) -> list[Campaign]:
    """The campaigns the request matches (before assignments and exclusion groups)."""
    in_ranges = snap.ip_index.campaigns_for(facts.ip)
    found = [c for c in snap.unranged if matches(c, facts, False)]
    if in_ranges:
        by_id = snap.by_id
        for i in in_ranges:
            c = by_id.get(i)
            if c is not None and matches(c, facts, True):
                found.append(c)
    return found


def evaluate(
    snap: Snapshot,
    facts: Facts,
    assigned: Assigned,
    player_key: str,
    *,
    assign: bool = True,
    matched: Sequence[Campaign] | None = None,
) -> Outcome:
    """The campaigns the request matches, with the caller's variant in each: the logged
    one, or (when `assign`) a new one to log. A campaign of an exclusion group the caller
    is already in through another campaign is left out; among the matching campaigns of a
    group the caller is in none of, one is picked. Outside coverage (or with no variant
    taking players now), a campaign is not shown."""
    shown: list[tuple[Campaign, Variant]] = []
    new: list[repo.NewAssignment] = []
    taken: set[str] | None = None
    open_groups: dict[str, list[Campaign]] | None = None
    if matched is None:
        matched = matching(snap, facts)
    for c in matched:
        row = assigned.get(c.id)
        if row is not None:
            variant = snap.variants[c.id].get(row[0])
            if variant is not None:  # else: dropped from the campaign since; not shown
                shown.append((c, variant))
            continue
        if not assign:
            continue
        group = c.exclusion_group
        if group is not None:
            if taken is None:
                taken = {g for _, g in assigned.values() if g is not None}
            if group not in taken:
                if open_groups is None:
                    open_groups = {}
                open_groups.setdefault(group, []).append(c)
            continue
        _new(c, player_key, facts.now, shown, new)
    if open_groups:
        for group, members in open_groups.items():
            _new(pick_in_group(group, player_key, members), player_key, facts.now, shown, new)
    if len(shown) > 1:
        position = snap.position
        shown.sort(key=lambda pair: position[pair[0].id])
    return Outcome(shown, new, matched)


def _new(
    c: Campaign,
    player_key: str,
    now: datetime,
    shown: list[tuple[Campaign, Variant]],
    new: list[repo.NewAssignment],
) -> None:
    variant = new_assignment(c, player_key, now)
    if variant is not None:
        shown.append((c, variant))
        new.append(repo.NewAssignment(new_id(), c.id, variant.id, c.exclusion_group))


def render(snap: Snapshot, shown: Sequence[tuple[Campaign, Variant]]) -> bytes:
    fragments = snap.fragments
    return b'{"items":[' + b",".join(fragments[c.id, v.id] for c, v in shown) + b"]}"


# --- personalized offers ---------------------------------------------------------------------


def offers_for(
    snap: Snapshot,
    assigned: Assigned,
    progress: Mapping[uuid.UUID, ProgressFacts],
    now: datetime,
) -> dict[uuid.UUID, str]:
    """A player's offers per game they have progress in, joined by commas in id order:
    the live campaigns they are in (they matched a request of theirs once and were
    assigned a variant still in the campaign) whose segment their progress meets now;
    a campaign with a segment is offered in its segment's game, one without in every
    game. The request's own rules (country, address, device, language) are not asked
    again: they belong to the request that entered the player."""
    if not progress:
        return {}
    found: dict[uuid.UUID, list[uuid.UUID]] = {game: [] for game in progress}
    facts: Facts | None = None
    for campaign_id, (variant_id, _) in assigned.items():
        view = snap.offer_views.get(campaign_id)
        if view is None or variant_id not in snap.variants[campaign_id]:
            continue
        if facts is None:
            facts = Facts(None, None, "OTHER", (), now, progress)
        if not matches(view, facts, True):
            continue
        if view.segment is not None:
            found[view.segment.game_id].append(campaign_id)  # met: the player has that game
        else:
            for ids in found.values():
                ids.append(campaign_id)
    return {game: ",".join(str(i) for i in sorted(ids)) for game, ids in found.items()}


def changed_offers(
    computed: Mapping[uuid.UUID, str], stored: Mapping[uuid.UUID, str]
) -> list[tuple[uuid.UUID, str]]:
    return [(game, text) for game, text in computed.items() if stored.get(game) != text]


# --- the whole request -----------------------------------------------------------------------


async def for_player(
    pool: asyncpg.Pool,
    snapshots: CampaignSnapshots,
    claims: AccessClaims,
    facts_of_request: RequestFacts,
    *,
    idle: timedelta,
) -> bytes:
    snap = _snapshot(snapshots)
    row = await repo.player_state(
        pool,
        session_id=claims.session_id,
        user_id=claims.user_id,
        idle=idle,
        achievement_games=snap.achievement_games,
        achievement_keys=snap.achievement_keys,
    )
    if row is None:
        raise Unauthorized("the session has ended; log in again")
    state = player_state(row)
    now = snapshots.clock()
    facts = _facts(facts_of_request, now, state.progress)
    key = str(claims.user_id)
    outcome = evaluate(snap, facts, state.assigned, key)
    assigned: Assigned = state.assigned
    if outcome.new:
        assigned = {
            **state.assigned,
            **{a.campaign_id: (a.variant_id, a.exclusion_group) for a in outcome.new},
        }
    offers = changed_offers(offers_for(snap, assigned, state.progress, now), state.offers)
    if not outcome.new and not offers:
        return render(snap, outcome.shown)  # the returning player: nothing to write
    inserted = await _write(pool, claims.user_id, None, outcome.new, offers)
    if inserted is not None and len(inserted) == len(outcome.new):
        return render(snap, outcome.shown)
    # Another request of this player logged first (the same campaign, or another of an
    # exclusion group), or what was to be logged is gone: answer with what is logged now.
    rows = await repo.player_assignments(pool, claims.user_id)
    assigned = {r["campaign_id"]: (r["variant_id"], r["exclusion_group"]) for r in rows}
    outcome = evaluate(snap, facts, assigned, key, assign=False, matched=outcome.matched)
    stored = state.offers if inserted is None else {**state.offers, **dict(offers)}
    offers = changed_offers(offers_for(snap, assigned, state.progress, now), stored)
    if offers:
        await _write(pool, claims.user_id, None, [], offers)
    return render(snap, outcome.shown)


async def for_visitor(
    pool: asyncpg.Pool,
    snapshots: CampaignSnapshots,
    visitor: uuid.UUID,
    facts_of_request: RequestFacts,
) -> bytes:
    snap = _snapshot(snapshots)
    facts = _facts(facts_of_request, snapshots.clock(), {})
    key = "anon:" + str(visitor)
    matched = matching(snap, facts)
    if not matched:
        return render(snap, [])  # nothing matches: no need to read the log
    rows = await repo.visitor_assignments(pool, visitor)
    assigned = {r["campaign_id"]: (r["variant_id"], r["exclusion_group"]) for r in rows}
    outcome = evaluate(snap, facts, assigned, key, matched=matched)
    if not outcome.new:
        return render(snap, outcome.shown)
    inserted = await _write(pool, None, visitor, outcome.new, [])
    if inserted is not None and len(inserted) == len(outcome.new):
        return render(snap, outcome.shown)
    rows = await repo.visitor_assignments(pool, visitor)
    assigned = {r["campaign_id"]: (r["variant_id"], r["exclusion_group"]) for r in rows}
    return render(snap, evaluate(snap, facts, assigned, key, assign=False, matched=matched).shown)


async def _write(
    pool: asyncpg.Pool,
    user_id: uuid.UUID | None,
    visitor: uuid.UUID | None,
    new: Sequence[repo.NewAssignment],
    offers: Sequence[tuple[uuid.UUID, str]],
) -> set[uuid.UUID] | None:
    """The campaigns newly logged; None when nothing was written."""
    try:
        return await repo.assign(
            pool, user_id=user_id, anonymous_id=visitor, new=new, offers=offers
        )
    except asyncpg.ForeignKeyViolationError:
        # A campaign or variant deleted since this process's snapshot (its NOTIFY is on
        # the way), or the player erased: nothing is logged; answer what is.
        log.info("liveops_assignment_target_gone", user_id=str(user_id) if user_id else None)
        return None


def _snapshot(snapshots: CampaignSnapshots) -> Snapshot:
    snap = snapshots.current
    if snap is None:
        raise CampaignsNotLoaded(
            "this server has not loaded the campaigns yet; try again shortly",
            headers={"Retry-After": "1"},
        )
    return snap


def _facts(
    request: RequestFacts, now: datetime, progress: Mapping[uuid.UUID, ProgressFacts]
) -> Facts:
    return Facts(
        ip=request.ip,
        country=request.country,
        device_type=request.device_type,
        languages=request.languages,
        now=now,
        progress=progress,
    )
