"""Shapes of the marketers' API: A/B rules (variants) and campaigns, in and out.

What a schema can say is said here (types, bounds, the country list); what needs the
database (ids that exist, weights across a campaign's variants, the window once a PATCH
meets the stored row) is the service's."""

from __future__ import annotations

import ipaddress
import json
import uuid
from typing import Annotated, Any, Literal

import langcodes
import orjson
import pycountry
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    StrictBool,
    StringConstraints,
    field_validator,
)
from pydantic_core import PydanticCustomError

from gameportal.kit.schemas import (
    PRINTABLE_PATTERN,
    InputSchema,
    Schema,
    UtcDatetime,
    example,
    printable,
)
from gameportal.progress.schemas import KEY_PATTERN, MAX_COUNTER, MAX_LEVEL

MAX_PAYLOAD_BYTES = 16 * 1024
MAX_PAYLOAD_DEPTH = 8
MAX_WEIGHT = 1_000_000
MAX_RULE_CONTENT = 50
MAX_CAMPAIGN_CONTENT = 100
MAX_VARIANTS = 20
MAX_IP_RANGES = 10_000
MAX_COUNTRIES = 250
MAX_LANGUAGES = 100

DeviceType = Literal["MOBILE", "DESKTOP", "OTHER"]

# ISO 3166-1 alpha-2 as pycountry keeps it (the ISO list, maintained), plus `EU`: the
# regional registries' code for addresses assigned Europe-wide, which the IP database
# (iptocc) answers for some addresses, so a campaign may target it too.
COUNTRY_CODES: frozenset[str] = frozenset(c.alpha_2 for c in pycountry.countries) | {"EU"}

Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200),
    AfterValidator(printable),
    Field(json_schema_extra={"pattern": PRINTABLE_PATTERN}),
]
Description = Annotated[str, StringConstraints(max_length=2000)]
# In URLs, logs and unique indexes: a plain alphabet.
GROUP_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
ExclusionGroup = Annotated[str, StringConstraints(pattern=GROUP_PATTERN)]
HashSeed = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64),
    AfterValidator(printable),
    Field(json_schema_extra={"pattern": PRINTABLE_PATTERN}),
]


def _unique(values: list[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


# --- examples (the OpenAPI document shows them; tests/test_openapi_clients.py checks them) ----

_RULE_ID = "0193b0a1-5c2e-7d41-9a6f-2b8c0d4e6f10"
_CAMPAIGN_ID = "0193b0a2-1f00-7a3c-8e55-6a7b8c9d0e1f"
_GAME_ID = "0193a7f0-2c4d-7e8f-9a0b-1c2d3e4f5a6b"
_MARKETER_ID = "0193a000-0000-7000-8000-000000000042"
_AT = "2030-02-20T09:30:00Z"

RULE_CREATE_EXAMPLE = {
    "name": "Half price",
    "description": "Spring offer at 4.99 instead of 9.99",
    "startAt": "2030-03-01T00:00:00Z",
    "endAt": None,
    "active": True,
    "rule": {"weight": 1, "payload": {"price": 4.99, "banner": "spring-50"}, "contentIds": []},
}
RULE_UPDATE_EXAMPLE = {"rule": {"weight": 2}}
RULE_EXAMPLE = {
    "id": _RULE_ID,
    **RULE_CREATE_EXAMPLE,
    "rule": {"weight": 1.0, "payload": {"price": 4.99, "banner": "spring-50"}, "contentIds": []},
    "createdBy": _MARKETER_ID,
    "createdAt": _AT,
    "updatedAt": _AT,
    "version": 1,
}
_TARGETING_EXAMPLE = {
    "countries": ["US", "CA"],
    "ipRanges": ["198.51.100.0/24", "2001:db8::/32"],
    "deviceTypes": ["MOBILE"],
    "languages": ["en"],
    "segment": {"gameId": _GAME_ID, "minLevel": 5},
}
CAMPAIGN_CREATE_EXAMPLE = {
    "name": "Spring promo",
    "description": "Spring marketing campaign",
    "startAt": "2030-03-01T00:00:00Z",
    "endAt": "2030-06-01T00:00:00Z",
    "active": False,
    "targetingRules": _TARGETING_EXAMPLE,
    "contentIds": [_GAME_ID],
    "abVariants": ["0193b0a1-5c2e-7d41-9a6f-2b8c0d4e6f0f", _RULE_ID],
    "coverage": 0.5,
    "exclusionGroup": "spring-offers",
}
CAMPAIGN_UPDATE_EXAMPLE = {"coverage": 1, "targetingRules": {"languages": None}}
CAMPAIGN_EXAMPLE = {
    "id": _CAMPAIGN_ID,
    **CAMPAIGN_CREATE_EXAMPLE,
    "targetingRules": {
        **_TARGETING_EXAMPLE,
        "segment": {
            "gameId": _GAME_ID,
            "minLevel": 5,
            "maxLevel": None,
            "minPoints": None,
            "hasAchievement": None,
        },
    },
    "hashSeed": _CAMPAIGN_ID,
    "createdBy": _MARKETER_ID,
    "createdAt": _AT,
    "updatedAt": _AT,
    "version": 1,
}


# --- rules (variants) ------------------------------------------------------------------------


def _depth(value: Any, level: int = 0) -> int:
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def check_payload(value: Any) -> Any:
    try:
        json.dumps(value, allow_nan=False)
        encoded = orjson.dumps(value)
    except (ValueError, TypeError, orjson.JSONEncodeError) as exc:
        raise PydanticCustomError(
            "payload_invalid", "must be plain JSON: {why}", {"why": str(exc)}
        ) from None
    if len(encoded) > MAX_PAYLOAD_BYTES:
        raise PydanticCustomError(
            "payload_too_large",
            "must be at most {limit} bytes as JSON (it is {size})",
            {"limit": MAX_PAYLOAD_BYTES, "size": len(encoded)},
        )
    if _depth(value) > MAX_PAYLOAD_DEPTH:
        raise PydanticCustomError(
            "payload_too_deep",
            "must nest at most {limit} levels deep",
            {"limit": MAX_PAYLOAD_DEPTH},
        )
    return value


Payload = Annotated[Any, AfterValidator(check_payload)]
# Strict: a number, never `true` or `"1"` read as one (pydantic's lax mode would).
Weight = Annotated[float, Field(ge=0, le=MAX_WEIGHT, allow_inf_nan=False, strict=True)]
Coverage = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False, strict=True)]


def _whole_number(value: object) -> object:
    # A JSON number without a fraction, as JSON Schema's `integer` reads it (2467.0 is
    # 2467); never `true` or `"1"`, which pydantic's lax mode would take.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise PydanticCustomError(
                "int_from_float", "Input should be a valid integer, got a number with a fraction"
            )
        return int(value)
    return value


Level = Annotated[int, Field(ge=1, le=MAX_LEVEL), BeforeValidator(_whole_number)]
Points = Annotated[int, Field(ge=0, le=MAX_COUNTER), BeforeValidator(_whole_number)]
PAYLOAD_DESCRIPTION = (
    f"Any JSON handed to the client as it is (a price, a banner, a text): at most "
    f"{MAX_PAYLOAD_BYTES} bytes serialized and {MAX_PAYLOAD_DEPTH} levels deep"
)
WEIGHT_DESCRIPTION = (
    "Relative share of the campaign's players this variant gets (weights are divided by "
    "their sum across the campaign's variants, which must be above 0)"
)


class RuleBody(InputSchema):
    """The seed's `rule`: what a variant is worth and what it hands out."""

    weight: Weight = Field(description=WEIGHT_DESCRIPTION)
    payload: Payload = Field(default=None, description=PAYLOAD_DESCRIPTION)
    content_ids: Annotated[list[uuid.UUID], Field(max_length=MAX_RULE_CONTENT)] = Field(
        default_factory=list, description="Content items shown with this variant (must exist)"
    )

    @field_validator("content_ids")
    @classmethod
    def _no_repeats(cls, value: list[uuid.UUID]) -> list[uuid.UUID]:
        return _unique(value)


class RulePatch(InputSchema):
    """Only the keys sent change."""

    weight: Weight | None = Field(default=None, description=WEIGHT_DESCRIPTION)
    payload: Payload = Field(default=None, description=PAYLOAD_DESCRIPTION)
    content_ids: Annotated[list[uuid.UUID], Field(max_length=MAX_RULE_CONTENT)] | None = None

    @field_validator("content_ids")
    @classmethod
    def _no_repeats(cls, value: list[uuid.UUID] | None) -> list[uuid.UUID] | None:
        return None if value is None else _unique(value)


class ABRuleCreate(InputSchema):
    model_config = example(RULE_CREATE_EXAMPLE)

    name: Name
    description: Description = ""
    start_at: UtcDatetime | None = Field(
        default=None, description="No new players before this (null: no start)"
    )
    end_at: UtcDatetime | None = Field(
        default=None, description="No new players from this on (null: no end); after startAt"
    )
    active: StrictBool = Field(default=True, description="An inactive variant gets no new players")
    rule: RuleBody


class ABRuleUpdate(InputSchema):
    """Only the fields sent change (in `rule`, only the keys sent). Send with
    `If-Match: <ETag>`."""

    model_config = example(RULE_UPDATE_EXAMPLE)

    name: Name | None = None
    description: Description | None = None
    start_at: UtcDatetime | None = None
    end_at: UtcDatetime | None = None
    active: StrictBool | None = None
    rule: RulePatch | None = None


class RuleRead(Schema):
    weight: float
    payload: Any = None
    content_ids: list[uuid.UUID] = Field(default_factory=list)


class ABRuleRead(Schema):
    model_config = example(RULE_EXAMPLE)

    id: uuid.UUID
    name: str
    description: str
    start_at: UtcDatetime | None
    end_at: UtcDatetime | None
    active: bool
    rule: RuleRead
    created_by: uuid.UUID | None
    created_at: UtcDatetime
    updated_at: UtcDatetime
    version: int = Field(description="Bumped by every change; the ETag is derived from it")


# --- targeting -------------------------------------------------------------------------------


def check_country(value: str) -> str:
    if value not in COUNTRY_CODES:
        hint = f"; did you mean {value.upper()}?" if value.upper() in COUNTRY_CODES else ""
        raise PydanticCustomError(
            "country_unknown",
            "'{value}' is not an ISO 3166-1 alpha-2 country code (two upper-case letters, "
            "e.g. US, DE, BR){hint}",
            {"value": value, "hint": hint},
        )
    return value


Country = Annotated[
    str,
    AfterValidator(check_country),
    Field(json_schema_extra={"enum": sorted(COUNTRY_CODES)}),
]


def canonical_cidr(value: str) -> str:
    """The network's canonical text (`10.0.0.0/8`, `2001:db8::/32`; a bare address is its
    /32 or /128). Refused: anything that is not a network, host bits set (`10.0.0.1/8`
    names no network: the answer says which was meant), IPv4-mapped IPv6 ranges (players'
    IPv4-mapped addresses are matched as IPv4: write the IPv4 range)."""
    try:
        if "%" in value:  # a scope (fe80::1%eth0) means one host's link, no network
            raise ValueError
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise PydanticCustomError(
            "cidr_invalid",
            "'{value}' is not an IPv4 or IPv6 network in CIDR notation (e.g. 203.0.113.0/24 "
            "or 2001:db8::/32)",
            {"value": value},
        ) from None
    if network.network_address != ipaddress.ip_address(value.partition("/")[0]):
        raise PydanticCustomError(
            "cidr_not_canonical",
            "'{value}' has host bits set: write {canonical} for the network it falls in, "
            "or {host} for that one address",
            {
                "value": value,
                "canonical": str(network),
                "host": str(ipaddress.ip_network(value.partition("/")[0])),
            },
        )
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(
        ipaddress.IPv6Network("::ffff:0:0/96")
    ):
        raise PydanticCustomError(
            "cidr_ipv4_mapped",
            "'{value}' is an IPv4-mapped IPv6 range: write it as the IPv4 range, which also "
            "matches IPv4-mapped addresses",
            {"value": value},
        )
    return str(network)


Cidr = Annotated[
    str,
    StringConstraints(min_length=2, max_length=64),
    AfterValidator(canonical_cidr),
    Field(
        description="An IPv4 or IPv6 network in CIDR notation, host bits zero",
        # For the document: the characters a network is written with (the validator
        # decides, and says what is wrong).
        json_schema_extra={"pattern": r"^[0-9A-Fa-f:.]+(/[0-9]{1,3})?$"},
    ),
]


def check_language(value: str) -> str:
    standard = langcodes.standardize_tag(value) if langcodes.tag_is_valid(value) else None
    if standard is None or value in ("und", "mul", "zxx", "mis"):
        raise PydanticCustomError(
            "language_unknown",
            "'{value}' is not a language registered with IANA (a primary subtag such as "
            "en, pt, zh)",
            {"value": value},
        )
    if standard != value:
        raise PydanticCustomError(
            "language_not_canonical",
            "'{value}' is a deprecated tag; write {standard}",
            {"value": value, "standard": standard},
        )
    return value


Language = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z]{2,3}$"),
    AfterValidator(check_language),
    Field(
        description="A BCP 47 primary language subtag in lower case (`en`, `pt`): matches "
        "every regional variant a client asks for (`pt-BR`, `pt-PT`)"
    ),
]


class Segment(InputSchema):
    """Players of a game by their progress; every bound given must hold."""

    game_id: uuid.UUID = Field(description="A content item of type GAME")
    min_level: Level | None = None
    max_level: Level | None = None
    min_points: Points | None = None
    has_achievement: Annotated[str, StringConstraints(pattern=KEY_PATTERN)] | None = Field(
        default=None, description="The key of one of the game's achievements"
    )


class TargetingRules(InputSchema):
    """Who a campaign is for. An absent or empty list matches everyone for its kind; within
    a list any entry matches; across kinds all must match."""

    countries: Annotated[list[Country], Field(max_length=MAX_COUNTRIES)] = Field(
        default_factory=list,
        description="ISO 3166-1 alpha-2, upper case, of the country the player's IP is in",
    )
    ip_ranges: Annotated[list[Cidr], Field(max_length=MAX_IP_RANGES)] = Field(
        default_factory=list,
        description=f"IPv4 and IPv6 networks (CIDR), at most {MAX_IP_RANGES}; stored in "
        "canonical form (`2001:DB8::/32` → `2001:db8::/32`, `10.0.0.1` → `10.0.0.1/32`)",
    )
    device_types: Annotated[list[DeviceType], Field(max_length=3)] = Field(
        default_factory=list, description="From the User-Agent: MOBILE, DESKTOP, OTHER"
    )
    languages: Annotated[list[Language], Field(max_length=MAX_LANGUAGES)] = Field(
        default_factory=list, description="Any of the player's Accept-Language primary tags"
    )
    segment: Segment | None = None

    @field_validator("countries", "ip_ranges", "device_types", "languages")
    @classmethod
    def _no_repeats(cls, value: list[str]) -> list[str]:
        return _unique(value)


class TargetingPatch(InputSchema):
    """The kinds sent replace the stored ones (null empties a list or removes the segment);
    the kinds not sent stay."""

    countries: Annotated[list[Country], Field(max_length=MAX_COUNTRIES)] | None = None
    ip_ranges: Annotated[list[Cidr], Field(max_length=MAX_IP_RANGES)] | None = None
    device_types: Annotated[list[DeviceType], Field(max_length=3)] | None = None
    languages: Annotated[list[Language], Field(max_length=MAX_LANGUAGES)] | None = None
    segment: Segment | None = None

    @field_validator("countries", "ip_ranges", "device_types", "languages")
    @classmethod
    def _no_repeats(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _unique(value)


class SegmentRead(Schema):
    game_id: uuid.UUID
    min_level: int | None = None
    max_level: int | None = None
    min_points: int | None = None
    has_achievement: str | None = None


class TargetingRulesRead(Schema):
    countries: list[str] = Field(default_factory=list)
    ip_ranges: list[str] = Field(default_factory=list)
    device_types: list[DeviceType] = Field(default_factory=list)
    languages: list[str] = Field(default_factory=list)
    segment: SegmentRead | None = None


# --- campaigns -------------------------------------------------------------------------------

VARIANTS_DESCRIPTION = (
    "A/B rule ids in order, the first is the control; at least one, no repeats, and their "
    "weights must sum above 0. Changing them (or hashSeed) later is allowed, but players "
    "already assigned keep their variant (assignment is sticky); only new players see the "
    "new split"
)
SEED_DESCRIPTION = (
    "Mixed into the assignment hash (default: the campaign's id). Changing it reshuffles "
    "new players only: players already assigned keep their variant"
)
GROUP_DESCRIPTION = "Campaigns in one exclusion group never share a player"
COVERAGE_DESCRIPTION = "Share of the matching players entered into the campaign, 0..1"


class CampaignCreate(InputSchema):
    model_config = example(CAMPAIGN_CREATE_EXAMPLE)

    name: Name
    description: Description = ""
    start_at: UtcDatetime | None = None
    end_at: UtcDatetime | None = Field(default=None, description="After startAt")
    active: StrictBool = Field(default=False, description="Created inactive unless said otherwise")
    targeting_rules: TargetingRules = Field(default_factory=TargetingRules)
    content_ids: Annotated[list[uuid.UUID], Field(max_length=MAX_CAMPAIGN_CONTENT)] = Field(
        default_factory=list, description="Content items the campaign promotes (must exist)"
    )
    ab_variants: Annotated[list[uuid.UUID], Field(min_length=1, max_length=MAX_VARIANTS)] = Field(
        description=VARIANTS_DESCRIPTION
    )
    coverage: Coverage = Field(default=1, description=COVERAGE_DESCRIPTION)
    hash_seed: HashSeed | None = Field(default=None, description=SEED_DESCRIPTION)
    exclusion_group: ExclusionGroup | None = Field(default=None, description=GROUP_DESCRIPTION)

    @field_validator("content_ids")
    @classmethod
    def _no_repeats(cls, value: list[uuid.UUID]) -> list[uuid.UUID]:
        return _unique(value)


class CampaignUpdate(InputSchema):
    """Only the fields sent change (in `targetingRules`, only the kinds sent). Send with
    `If-Match: <ETag>`. `hashSeed: null` goes back to the default (the campaign's id)."""

    model_config = example(CAMPAIGN_UPDATE_EXAMPLE)

    name: Name | None = None
    description: Description | None = None
    start_at: UtcDatetime | None = None
    end_at: UtcDatetime | None = None
    active: StrictBool | None = None
    targeting_rules: TargetingPatch | None = None
    content_ids: Annotated[list[uuid.UUID], Field(max_length=MAX_CAMPAIGN_CONTENT)] | None = None
    ab_variants: Annotated[list[uuid.UUID], Field(min_length=1, max_length=MAX_VARIANTS)] | None = (
        Field(default=None, description=VARIANTS_DESCRIPTION)
    )
    coverage: Coverage | None = None
    hash_seed: HashSeed | None = Field(default=None, description=SEED_DESCRIPTION)
    exclusion_group: ExclusionGroup | None = None

    @field_validator("content_ids")
    @classmethod
    def _no_repeats(cls, value: list[uuid.UUID] | None) -> list[uuid.UUID] | None:
        return None if value is None else _unique(value)


class CampaignRead(Schema):
    model_config = example(CAMPAIGN_EXAMPLE)

    id: uuid.UUID
    name: str
    description: str
    start_at: UtcDatetime | None
    end_at: UtcDatetime | None
    active: bool
    targeting_rules: TargetingRulesRead
    content_ids: list[uuid.UUID]
    ab_variants: list[uuid.UUID] = Field(description=VARIANTS_DESCRIPTION)
    coverage: float = Field(description=COVERAGE_DESCRIPTION)
    hash_seed: str = Field(description=SEED_DESCRIPTION)
    exclusion_group: str | None = Field(description=GROUP_DESCRIPTION)
    created_by: uuid.UUID | None
    created_at: UtcDatetime
    updated_at: UtcDatetime
    version: int = Field(description="Bumped by every change; the ETag is derived from it")
