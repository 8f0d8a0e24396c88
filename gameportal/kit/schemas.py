"""Base schemas: camelCase JSON, snake_case Python, unknown input fields refused."""

from __future__ import annotations

import math
import unicodedata
import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)
from pydantic.alias_generators import to_camel

from gameportal.kit.time import UTC


def _as_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    except OverflowError:  # 0001-01-01 at +01:00 has no UTC time; pydantic wants ValueError
        raise ValueError("is out of the range of dates this API handles") from None


def uuid_as_text(value: Any) -> str:
    """orjson's `default` for rows from asyncpg: its UUID type is a subclass of the standard
    one, which orjson serialises natively, but orjson only knows the exact type. Without
    this a hand-built answer falls back to its model (or fails)."""
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def utc_text(value: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, whatever zone the database driver handed us."""
    return _as_utc(value).isoformat().replace("+00:00", "Z")


def _not_a_number(value: object) -> object:
    # pydantic reads a number as seconds since 1970; the schema says an ISO 8601 string,
    # and `"publishAt": 0` is far more likely a client's bug than the epoch.
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError("must be an ISO 8601 date-time string, e.g. 2030-01-01T12:00:00Z")
    return value


UtcDatetime = Annotated[
    datetime,
    BeforeValidator(_not_a_number),
    AfterValidator(_as_utc),
    PlainSerializer(utc_text, return_type=str, when_used="json"),
    # What clients read is still a date-time (generators type it so), not any string.
    WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization"),
]

# The BCP 47 tags this API takes (language, optional script, optional region: `en`,
# `pt-BR`, `zh-Hant-TW`), any case; which languages exist the validators check against
# the IANA registry, which no pattern can list.
LANGUAGE_TAG_PATTERN = r"^[A-Za-z]{2,3}(-[A-Za-z]{4})?(-([A-Za-z]{2}|[0-9]{3}))?$"
LANGUAGE_TAG_DESCRIPTION = (
    "A BCP 47 language tag: a language registered with IANA, optionally a script and a "
    "region (`en`, `pt-BR`, `zh-Hant-TW`); stored in its standard case"
)

# asyncpg hands `inet` back as an ipaddress object; the API speaks strings.
IpAddress = Annotated[str, BeforeValidator(lambda v: v if v is None else str(v))]


# FastAPI drops every None from the OpenAPI document it builds, examples included: a null
# in an example travels as this marker, which gameportal.kit.openapi turns back into null.
NULL_IN_EXAMPLE = "\x00null\x00"


def _marked_nulls(value: Any) -> Any:
    if value is None:
        return NULL_IN_EXAMPLE
    if isinstance(value, dict):
        return {key: _marked_nulls(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_marked_nulls(item) for item in value]
    return value


def example(value: dict[str, Any]) -> ConfigDict:
    """A model's example, as the OpenAPI document shows it on every request body and answer
    that uses the model (tests/test_openapi_clients.py checks each against the schema):
    `model_config = example({...})`, in the JSON the API speaks (camelCase)."""
    return ConfigDict(json_schema_extra={"examples": [_marked_nulls(value)]})


class Schema(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        from_attributes=True,
    )


# Free-form JSON (jsonb fields such as template variables) may nest this deep: far more
# than any real document needs, well under what the JSON encoders accept (orjson: 254).
MAX_JSON_DEPTH = 32
_INT64 = (-(2**63), 2**64 - 1)  # what orjson, and so the jsonb codec, can write


def _where(path: tuple[str | int, ...]) -> str:
    # Keys are shown as the client would write them in JSON: a NUL or surrogate escaped.
    shown = (
        f"[{p}]" if isinstance(p, int) else "." + p.encode("utf-8", "backslashreplace").decode()
        for p in path
    )
    return "".join(shown).lstrip(".").replace("\x00", "\\u0000")


def unstorable(value: object, path: tuple[str | int, ...] = ()) -> str | None:
    """Why `value` could not be stored as it came (None when it can): PostgreSQL keeps no
    NUL in text or jsonb, UTF-8 has no unpaired surrogates (`"\\ud800"` is valid JSON,
    and pydantic lets it through plain `str` and `Any`), the jsonb codec writes neither
    integers past 64 bits nor nesting past its limit, and NaN is not JSON (it would be
    stored as null). Nested models are skipped: they check their own fields."""
    if isinstance(value, str):
        if "\x00" in value:
            problem = "must not contain NUL characters"
        elif value.isascii():
            return None
        else:
            try:
                value.encode("utf-8")
                return None
            except UnicodeEncodeError:
                problem = "must not contain unpaired UTF-16 surrogates (not valid Unicode)"
    elif isinstance(value, bool) or value is None or isinstance(value, BaseModel):
        return None
    elif isinstance(value, int):
        if _INT64[0] <= value <= _INT64[1]:
            return None
        problem = "integers must fit in 64 bits"
    elif isinstance(value, float):
        if math.isfinite(value):
            return None
        problem = "numbers must be finite (NaN and Infinity are not JSON)"
    elif isinstance(value, dict | list | tuple | set | frozenset):
        if len(path) >= MAX_JSON_DEPTH:
            problem = f"must not nest more than {MAX_JSON_DEPTH} levels deep"
        elif isinstance(value, dict):
            for key, item in value.items():
                inner = (*path, str(key))
                found = unstorable(key, inner) or unstorable(item, inner)
                if found:
                    return found
            return None
        else:
            for index, item in enumerate(value):
                found = unstorable(item, (*path, index))
                if found:
                    return found
            return None
    else:
        return None  # typed values (UUIDs, dates, enums) were parsed from valid input
    return f"{problem} (at `{_where(path)}`)" if path else problem


class InputSchema(Schema):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: object) -> object:
        # Whatever a client sends must be storable as it came: refused here as a field
        # error, not later as a database or encoder error (a 500).
        problem = unstorable(value)
        if problem:
            raise ValueError(problem)
        return value


# The control (Cc) and format (Cf) code points of Unicode 14 (Python 3.11's unicodedata),
# spelled out: schema-driven generators do not all read `\p{Cc}` in a negated class.
_CONTROL_OR_FORMAT = (
    (0x0, 0x1F), (0x7F, 0x9F), (0xAD, 0xAD), (0x600, 0x605), (0x61C, 0x61C), (0x6DD, 0x6DD),
    (0x70F, 0x70F), (0x890, 0x891), (0x8E2, 0x8E2), (0x180E, 0x180E), (0x200B, 0x200F),
    (0x202A, 0x202E), (0x2060, 0x2064), (0x2066, 0x206F), (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB), (0x110BD, 0x110BD), (0x110CD, 0x110CD), (0x13430, 0x13438),
    (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0001, 0xE0001), (0xE0020, 0xE007F),
)  # fmt: skip


def _in_class(code_point: int) -> str:
    # Outside the BMP, the character itself: `\u` escapes cannot name it in every dialect.
    return f"\\u{code_point:04x}" if code_point <= 0xFFFF else chr(code_point)


_UNPRINTABLE = "".join(
    _in_class(low) if low == high else f"{_in_class(low)}-{_in_class(high)}"
    for low, high in _CONTROL_OR_FORMAT
)
# `printable` as a JSON Schema pattern, for the document (the validator decides); the
# second also needs one character that is not a space (what is left once stripped).
PRINTABLE_PATTERN = f"^[^{_UNPRINTABLE}]*$"
PRINTABLE_NOT_BLANK_PATTERN = f"^[^{_UNPRINTABLE}]*[^\\s{_UNPRINTABLE}][^{_UNPRINTABLE}]*$"


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
