"""Base schemas: camelCase JSON, snake_case Python, unknown input fields refused."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    StringConstraints,
    field_validator,
)
from pydantic.alias_generators import to_camel

from gameportal.kit.time import UTC


def _as_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    except OverflowError:  # 0001-01-01 at +01:00 has no UTC time; pydantic wants ValueError
        raise ValueError("is out of the range of dates this API handles") from None


def utc_text(value: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, whatever zone the database driver handed us."""
    return _as_utc(value).isoformat().replace("+00:00", "Z")


UtcDatetime = Annotated[
    datetime,
    AfterValidator(_as_utc),
    PlainSerializer(utc_text, return_type=str, when_used="json"),
]

# asyncpg hands `inet` back as an ipaddress object; the API speaks strings.
IpAddress = Annotated[str, BeforeValidator(lambda v: v if v is None else str(v))]


class Schema(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        from_attributes=True,
    )


class InputSchema(Schema):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        # PostgreSQL cannot store NUL in text; refuse it here as a field error, not later
        # as a database error.
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value


def printable(value: str) -> str:
    """No control or format characters (escape sequences, zero-width, bidi overrides):
    text shown to other people must look like what it is."""
    for char in value:
        if unicodedata.category(char) in ("Cc", "Cf"):
            raise ValueError(
                f"must not contain control or invisible characters (U+{ord(char):04X})"
            )
    return value


# Any query-string text: NUL cannot reach PostgreSQL.
QueryText = Annotated[str, StringConstraints(pattern=r"^[^\x00]*$")]
