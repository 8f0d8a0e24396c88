"""Who a campaign targets, compiled once per change and checked per request.

`compile_campaign` turns the stored rows (MarketingCampaign with its ABRule variants) into
an immutable `Campaign` of frozen sets and plain values; `matches` is the hot path, a few
comparisons and set lookups with no parsing or allocation; `explain` gives the same answer
rule by rule, each with a sentence a marketer can read (the preview endpoint).

Rules: an absent or empty list matches everyone for its kind; within a list any entry
matches; across kinds all must. Schedules are half-open: `startAt` inclusive, `endAt`
exclusive. Languages match on the primary subtag ("pt-BR" counts as "pt"). The IP-range
check is done by the caller against one `IpRangeIndex` for all campaigns and passed in
as `in_ip_ranges`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from gameportal.models.liveops import ABRule, MarketingCampaign

# Bounds on what an Accept-Language header may cost to read.
_MAX_ACCEPT_LANGUAGE = 512
_MAX_LANGUAGES = 16


@dataclass(frozen=True, slots=True)
class ProgressFacts:
    level: int
    points: int
    achievements: frozenset[str]  # achievement keys


@dataclass(frozen=True, slots=True)
class Facts:
    """What is known about the request: the client's address and the country it resolved
    to, the device type from its User-Agent, its languages, the time, and (logged in) its
    progress per game."""

    ip: IPv4Address | IPv6Address | None
    country: str | None
    device_type: str  # MOBILE | DESKTOP | OTHER
    languages: tuple[str, ...]  # primary tags, lower case, most preferred first
    now: datetime
    progress: Mapping[uuid.UUID, ProgressFacts]  # by game id; empty for anonymous


@dataclass(frozen=True, slots=True)
class Segment:
    """`targetingRules.segment`: the player's progress in one game must meet every bound
    given (a player with no progress in that game, or anonymous, is outside)."""

    game_id: uuid.UUID
    min_level: int | None = None
    max_level: int | None = None
    min_points: int | None = None
    has_achievement: str | None = None  # achievement key


@dataclass(frozen=True, slots=True)
class Variant:
    id: uuid.UUID
    weight: float
    payload: Any
    content_ids: tuple[uuid.UUID, ...]
    active: bool
    start_at: datetime | None
    end_at: datetime | None

    def eligible(self, now: datetime) -> bool:
        """Whether the variant may receive new players now (active, inside its window)."""
        return (
            self.active
            and (self.start_at is None or self.start_at <= now)
            and (self.end_at is None or now < self.end_at)
        )


@dataclass(frozen=True, slots=True)
class Campaign:
    """A compiled campaign: immutable, what the in-process snapshot holds. A targeting
    kind that is None matches everyone."""

    id: uuid.UUID
    name: str
    hash_seed: str
    coverage: float
    exclusion_group: str | None
    active: bool
    start_at: datetime | None
    end_at: datetime | None
    countries: frozenset[str] | None
    device_types: frozenset[str] | None
    languages: frozenset[str] | None
    has_ip_ranges: bool
    segment: Segment | None
    variants: tuple[Variant, ...]
    content_ids: tuple[uuid.UUID, ...]


@dataclass(frozen=True, slots=True)
class RuleVerdict:
    """One rule of `explain`: its kind (active, schedule, countries, ipRanges,
    deviceTypes, languages, segment), whether it matched, and why."""

    kind: str
    matched: bool
    detail: str


def primary_tag(tag: str) -> str:
    """The primary language subtag, lower case: "pt-BR" -> "pt", "zh_Hant" -> "zh"."""
    return tag.strip().replace("_", "-").split("-", 1)[0].lower()


def accept_language_tags(header: str | None) -> tuple[str, ...]:
    """The primary tags of an Accept-Language header, most preferred first (by q, then by
    order), without repeats, "*" or entries with q=0. Bounded: a long header is cut."""
    if not header:
        return ()
    entries: list[tuple[float, int, str]] = []
    for position, part in enumerate(header[:_MAX_ACCEPT_LANGUAGE].split(",")):
        tag, _, params = part.partition(";")
        primary = primary_tag(tag)
        if not primary or primary == "*" or not primary.isalpha() or len(primary) > 8:
            continue
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
                if not 0.0 <= q <= 1.0:  # also NaN
                    q = 0.0
        if q > 0:
            entries.append((-q, position, primary))
    entries.sort()
    seen: dict[str, None] = {}
    for _, _, primary in entries:
        seen.setdefault(primary, None)
    return tuple(seen)[:_MAX_LANGUAGES]


def _string_set(values: Any, normalise: Any) -> frozenset[str] | None:
    if not values:
        return None
    out = frozenset(normalise(str(v)) for v in values)
    return out or None


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _segment(raw: Any) -> Segment | None:
    if not raw:
        return None
    achievement = raw.get("hasAchievement")
    return Segment(
        game_id=uuid.UUID(str(raw["gameId"])),
        min_level=_optional_int(raw.get("minLevel")),
        max_level=_optional_int(raw.get("maxLevel")),
        min_points=_optional_int(raw.get("minPoints")),
        has_achievement=None if achievement is None else str(achievement),
    )


def compile_variant(rule: ABRule) -> Variant:
    body = rule.rule or {}
    return Variant(
        id=rule.id,
        weight=float(body.get("weight", 0) or 0),
        payload=body.get("payload"),
        content_ids=tuple(uuid.UUID(str(c)) for c in body.get("contentIds") or ()),
        active=bool(rule.active),
        start_at=rule.start_at,
        end_at=rule.end_at,
    )


def compile_campaign(
    row: MarketingCampaign, rules: Mapping[uuid.UUID, ABRule], ip_ranges_present: bool
) -> Campaign:
    """The campaign as the evaluator sees it. `rules` holds (at least) its variants; an id
    missing from it is skipped (the admin API refuses unknown ids). `ip_ranges_present`:
    whether the campaign has `campaign_ip_ranges` rows; an `ipRanges` list in the
    targeting rules counts too, so a campaign never matches everyone by mistake."""
    targeting = row.targeting_rules or {}
    return Campaign(
        id=row.id,
        name=row.name,
        hash_seed=row.hash_seed or str(row.id),
        coverage=float(row.coverage if row.coverage is not None else 1.0),
        exclusion_group=row.exclusion_group or None,
        active=bool(row.active),
        start_at=row.start_at,
        end_at=row.end_at,
        countries=_string_set(targeting.get("countries"), str.upper),
        device_types=_string_set(targeting.get("deviceTypes"), str.upper),
        languages=_string_set(targeting.get("languages"), primary_tag),
        has_ip_ranges=bool(ip_ranges_present or targeting.get("ipRanges")),
        segment=_segment(targeting.get("segment")),
        variants=tuple(compile_variant(rules[v]) for v in (row.ab_variants or ()) if v in rules),
        content_ids=tuple(row.content_ids or ()),
    )


def _segment_failure(segment: Segment, progress: Mapping[uuid.UUID, ProgressFacts]) -> str | None:
    """None when the player's progress meets the segment, else which bound it fails."""
    facts = progress.get(segment.game_id)
    if facts is None:
        return f"no progress in game {segment.game_id}"
    if segment.min_level is not None and facts.level < segment.min_level:
        return f"level {facts.level} is below minLevel {segment.min_level}"
    if segment.max_level is not None and facts.level > segment.max_level:
        return f"level {facts.level} is above maxLevel {segment.max_level}"
    if segment.min_points is not None and facts.points < segment.min_points:
        return f"points {facts.points} are below minPoints {segment.min_points}"
    if segment.has_achievement is not None and segment.has_achievement not in facts.achievements:
        return f"achievement {segment.has_achievement!r} not unlocked"
    return None


def _segment_ok(segment: Segment, progress: Mapping[uuid.UUID, ProgressFacts]) -> bool:
    facts = progress.get(segment.game_id)
    return (
        facts is not None
        and (segment.min_level is None or facts.level >= segment.min_level)
        and (segment.max_level is None or facts.level <= segment.max_level)
        and (segment.min_points is None or facts.points >= segment.min_points)
        and (segment.has_achievement is None or segment.has_achievement in facts.achievements)
    )


def matches(c: Campaign, facts: Facts, in_ip_ranges: bool) -> bool:
    """Whether the request falls in the campaign (active, in schedule, every rule kind)."""
    if not c.active:
        return False
    now = facts.now
    if c.start_at is not None and now < c.start_at:
        return False
    if c.end_at is not None and now >= c.end_at:
        return False
    if c.has_ip_ranges and not in_ip_ranges:
        return False
    if c.countries is not None and facts.country not in c.countries:
        return False
    if c.device_types is not None and facts.device_type not in c.device_types:
        return False
    if c.languages is not None:
        wanted = c.languages
        for language in facts.languages:
            if language in wanted:
                break
        else:
            return False
    return c.segment is None or _segment_ok(c.segment, facts.progress)


def _listed(values: frozenset[str]) -> str:
    return ", ".join(sorted(values))


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def explain(c: Campaign, facts: Facts, in_ip_ranges: bool) -> list[RuleVerdict]:
    """Every rule kind with its verdict and a readable reason; the campaign matches when
    all are matched (the same answer as `matches`)."""
    verdicts: list[RuleVerdict] = [
        RuleVerdict(
            "active", c.active, "campaign is active" if c.active else "campaign is inactive"
        )
    ]

    now = facts.now
    if c.start_at is not None and now < c.start_at:
        verdicts.append(
            RuleVerdict("schedule", False, f"{_iso(now)} is before startAt {_iso(c.start_at)}")
        )
    elif c.end_at is not None and now >= c.end_at:
        verdicts.append(
            RuleVerdict("schedule", False, f"{_iso(now)} is at or after endAt {_iso(c.end_at)}")
        )
    elif c.start_at is None and c.end_at is None:
        verdicts.append(RuleVerdict("schedule", True, "no schedule: always on"))
    else:
        window = (
            f"[{_iso(c.start_at) if c.start_at else 'open'}, "
            f"{_iso(c.end_at) if c.end_at else 'open'})"
        )
        verdicts.append(RuleVerdict("schedule", True, f"{_iso(now)} is inside {window}"))

    if c.countries is None:
        verdicts.append(RuleVerdict("countries", True, "no country rule: matches everyone"))
    elif facts.country is None:
        where = f"IP {facts.ip}" if facts.ip is not None else "no IP address"
        verdicts.append(
            RuleVerdict(
                "countries",
                False,
                f"{where} resolved to no country; campaign targets {_listed(c.countries)}",
            )
        )
    else:
        ok = facts.country in c.countries
        verdicts.append(
            RuleVerdict(
                "countries",
                ok,
                f"IP {facts.ip} resolved to {facts.country}, "
                f"{'one of' if ok else 'not one of'} {_listed(c.countries)}",
            )
        )

    if not c.has_ip_ranges:
        verdicts.append(RuleVerdict("ipRanges", True, "no IP range rule: matches everyone"))
    elif facts.ip is None:
        verdicts.append(RuleVerdict("ipRanges", False, "no IP address to check the ranges with"))
    else:
        verdicts.append(
            RuleVerdict(
                "ipRanges",
                in_ip_ranges,
                f"IP {facts.ip} is inside one of the campaign's ranges"
                if in_ip_ranges
                else f"IP {facts.ip} is outside all of the campaign's ranges",
            )
        )

    if c.device_types is None:
        verdicts.append(RuleVerdict("deviceTypes", True, "no device rule: matches everyone"))
    else:
        ok = facts.device_type in c.device_types
        verdicts.append(
            RuleVerdict(
                "deviceTypes",
                ok,
                f"User-Agent gave device type {facts.device_type}, "
                f"{'one of' if ok else 'not one of'} {_listed(c.device_types)}",
            )
        )

    if c.languages is None:
        verdicts.append(RuleVerdict("languages", True, "no language rule: matches everyone"))
    else:
        hit = next((lang for lang in facts.languages if lang in c.languages), None)
        asked = ", ".join(facts.languages) if facts.languages else "none"
        verdicts.append(
            RuleVerdict(
                "languages",
                hit is not None,
                f"language {hit} is one of {_listed(c.languages)}"
                if hit is not None
                else f"languages ({asked}) include none of {_listed(c.languages)}",
            )
        )

    if c.segment is None:
        verdicts.append(RuleVerdict("segment", True, "no segment rule: matches everyone"))
    else:
        failure = _segment_failure(c.segment, facts.progress)
        verdicts.append(
            RuleVerdict(
                "segment",
                failure is None,
                f"progress in game {c.segment.game_id} meets the segment"
                if failure is None
                else failure,
            )
        )
    return verdicts
