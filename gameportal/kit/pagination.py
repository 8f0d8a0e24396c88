"""Cursor pagination over time-ordered ids: `?limit=&cursor=` → `{items, nextCursor}`."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence
from typing import Annotated, Any, Generic, Protocol, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from gameportal.errors import PortalError
from gameportal.kit.schemas import Schema

T = TypeVar("T")

MAX_LIMIT = 200


class InvalidCursor(PortalError):
    status = 400
    slug = "invalid-cursor"
    title = "Invalid pagination cursor"


# What encode_cursor writes: a UUID's 16 bytes, URL-safe base64 without padding. Any such
# text decodes to some id, so the schema's pattern is exactly what the API takes.
CURSOR_PATTERN = r"^[A-Za-z0-9_-]{22}$"


def encode_cursor(last_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(last_id.bytes).decode().rstrip("=")


def decode_cursor(cursor: str) -> uuid.UUID:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return uuid.UUID(bytes=raw)
    except (binascii.Error, ValueError):
        raise InvalidCursor("the cursor is not one this API returned") from None


class PageParams(BaseModel):
    limit: int
    after: uuid.UUID | None


async def _page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page")] = 50,
    cursor: Annotated[
        str | None,
        Query(
            pattern=CURSOR_PATTERN,
            description="`nextCursor` of the previous page, as it came (22 URL-safe base64 "
            "characters)",
        ),
    ] = None,
) -> PageParams:
    return PageParams(limit=limit, after=decode_cursor(cursor) if cursor else None)


Pagination = Annotated[PageParams, Depends(_page_params)]


def _page_example(schema: dict[str, Any], cls: type[BaseModel]) -> None:
    """A page's example in the document: one item, its model's own example."""
    args = cls.__pydantic_generic_metadata__["args"]
    config = getattr(args[0], "model_config", {}) if args else {}
    extra = config.get("json_schema_extra")
    if isinstance(extra, dict) and extra.get("examples"):
        schema["examples"] = [
            {"items": [extra["examples"][0]], "nextCursor": "AZWj015vcGGbjJ0OHyo7TA"}
        ]


class Page(Schema, Generic[T]):
    model_config = ConfigDict(json_schema_extra=_page_example)

    items: list[T]
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page")


class HasId(Protocol):
    @property
    def id(self) -> uuid.UUID: ...


R = TypeVar("R", bound=HasId)


def split_page(rows: Sequence[R], limit: int) -> tuple[list[R], str | None]:
    """Rows fetched with `limit + 1` → this page and the cursor of the next, if any."""
    page = list(rows[:limit])
    more = len(rows) > limit
    return page, encode_cursor(page[-1].id) if more and page else None
