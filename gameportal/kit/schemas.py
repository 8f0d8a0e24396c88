"""Base schemas: camelCase JSON, snake_case Python, unknown input fields refused."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, PlainSerializer
from pydantic.alias_generators import to_camel

from gameportal.kit.time import UTC


def _as_utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


# ISO 8601 in UTC with a `Z`, whatever zone the database driver handed us.
UtcDatetime = Annotated[
    datetime,
    AfterValidator(_as_utc),
    PlainSerializer(
        lambda v: _as_utc(v).isoformat().replace("+00:00", "Z"),
        return_type=str,
        when_used="json",
    ),
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
