"""Shapes of the player-facing live-ops routes: active campaigns, conversions, preview."""

from __future__ import annotations

import ipaddress
import math
import uuid
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
)

from gameportal.kit.schemas import InputSchema, Schema, UtcDatetime

_CAMPAIGN = "0193a5c2-7d2e-7c4b-9a57-3f1e2d3c4b5a"
_VARIANT = "0193a5c1-1111-7aaa-8bbb-0123456789ab"
_PLAYER = "0193a5b0-2222-7ccc-8ddd-0123456789ab"
_ITEM: dict[str, Any] = {
    "id": "0193a590-3333-7eee-8fff-0123456789ab",
    "type": "NEWS",
    "title": "Spring sale",
    "slug": "spring-sale",
    "locale": "en",
}


class ContentItem(Schema):
    """A published content item a campaign promotes (its page: `GET
    /api/v1/content/{type}/{slug}`)."""

    id: uuid.UUID
    type: str
    title: str
    slug: str
    locale: str


class ActiveCampaign(Schema):
    id: uuid.UUID = Field(description="The campaign")
    variant_id: uuid.UUID = Field(description="The caller's variant (A/B rule), kept for good")
    payload: Any = Field(description="The variant's payload, as the marketer wrote it")
    content: list[ContentItem] = Field(
        description="The campaign's published content, then the variant's"
    )
    end_at: UtcDatetime | None = Field(description="When the campaign ends, if it does")


class ActiveCampaigns(Schema):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {
                            "id": _CAMPAIGN,
                            "variantId": _VARIANT,
                            "payload": {"price": 4.99, "banner": "spring-b"},
                            "content": [_ITEM],
                            "endAt": "2027-04-01T00:00:00Z",
                        }
                    ]
                }
            ]
        }
    )

    items: list[ActiveCampaign]


_VALUE_BOUND = 99_999_999_999_999  # numeric(18, 4)


def _value(value: object) -> Decimal:
    """A JSON number within numeric(18, 4), rounded to 4 decimal places (half to even)."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError("must be a number")
    number: int | float | Decimal = value
    if isinstance(number, float) and not math.isfinite(number):
        raise ValueError("must be a finite number")
    if not -_VALUE_BOUND <= number <= _VALUE_BOUND:
        raise ValueError(f"must be between -{_VALUE_BOUND} and {_VALUE_BOUND}")
    return Decimal(str(number)).quantize(Decimal("0.0001"))


ConversionValue = Annotated[
    Decimal,
    PlainValidator(_value),
    WithJsonSchema({"type": "number", "minimum": -_VALUE_BOUND, "maximum": _VALUE_BOUND}),
    PlainSerializer(float, return_type=float, when_used="json"),
]


def _address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError("must be an IPv4 or IPv6 address") from None


IpAddressText = Annotated[
    str,
    AfterValidator(_address),
    Field(json_schema_extra={"anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}),
]


class ConversionCreate(InputSchema):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"event": "purchase", "value": 4.99}]}
    )

    event: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$",
        description="What the player did (`purchase`, `signup`…)",
    )
    value: ConversionValue | None = Field(
        default=None, description="What it was worth (a price), rounded to 4 decimal places"
    )


class ConversionRead(Schema):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "campaignId": _CAMPAIGN,
                    "userId": _PLAYER,
                    "variantId": _VARIANT,
                    "assignedAt": "2027-03-02T10:00:00Z",
                    "conversionEvent": "2027-03-02T10:05:00Z",
                    "event": "purchase",
                    "value": 4.99,
                }
            ]
        }
    )

    campaign_id: uuid.UUID
    user_id: uuid.UUID
    variant_id: uuid.UUID
    assigned_at: UtcDatetime
    conversion_event: UtcDatetime = Field(description="When the conversion was first recorded")
    event: str | None
    value: ConversionValue | None


class PreviewRequest(InputSchema):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "ip": "81.2.69.160",
                    "userAgent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)",
                    "userId": _PLAYER,
                    "language": "en-GB,en;q=0.8",
                }
            ]
        }
    )

    ip: IpAddressText = Field(description="The client address to try (IPv4 or IPv6)")
    user_agent: str = Field(default="", max_length=512, description="A User-Agent header")
    user_id: uuid.UUID | None = Field(
        default=None, description="A player whose progress (segments) and assignment to use"
    )
    language: str | None = Field(
        default=None,
        max_length=512,
        description="A language tag (`pt-BR`) or a whole Accept-Language header",
    )


class RuleVerdictRead(Schema):
    kind: str = Field(
        description="active, schedule, countries, ipRanges, deviceTypes, languages or segment"
    )
    matched: bool
    detail: str


class PreviewFacts(Schema):
    ip: str
    country: str | None = Field(description="What the address resolved to (offline database)")
    device_type: str = Field(description="MOBILE, DESKTOP or OTHER, from the User-Agent")
    languages: list[str]


class PreviewAssignment(Schema):
    variant_id: uuid.UUID | None = Field(
        description="The player's variant; null when they would fall outside coverage"
    )
    logged: bool = Field(description="Whether the player already has it (sticky)")


class PreviewRead(Schema):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "matched": False,
                    "rules": [
                        {"kind": "active", "matched": True, "detail": "campaign is active"},
                        {
                            "kind": "countries",
                            "matched": False,
                            "detail": "IP 81.2.69.160 resolved to GB, not one of DE, FR",
                        },
                    ],
                    "facts": {
                        "ip": "81.2.69.160",
                        "country": "GB",
                        "deviceType": "MOBILE",
                        "languages": ["en"],
                    },
                    "assignment": {"variantId": _VARIANT, "logged": False},
                }
            ]
        }
    )

    matched: bool
    rules: list[RuleVerdictRead]
    facts: PreviewFacts
    assignment: PreviewAssignment | None = Field(
        description="With `userId`: the variant that player has or would get (exclusion "
        "groups aside)"
    )
