"""Shapes of content in and out of the API."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any, Literal

import langcodes
import orjson
from pydantic import AfterValidator, Field, StringConstraints, field_validator

from gameportal.content.rendering import MAX_SLUG, SLUG_PATTERN
from gameportal.kit.schemas import (
    LANGUAGE_TAG_DESCRIPTION,
    LANGUAGE_TAG_PATTERN,
    PRINTABLE_NOT_BLANK_PATTERN,
    PRINTABLE_PATTERN,
    InputSchema,
    Schema,
    UtcDatetime,
    example,
    printable,
)

ContentType = Literal["GAME", "NEWS", "ANNOUNCEMENT", "FAQ"]
ContentFormat = Literal["MARKDOWN", "HTML", "JSON"]
ContentStatus = Literal["DRAFT", "SCHEDULED", "PUBLISHED", "ARCHIVED"]

MAX_TAGS = 20
MAX_MEDIA = 50
MAX_BODY = 200_000  # characters of source
MAX_ATTRIBUTES_BYTES = 16 * 1024
MAX_ATTRIBUTES_DEPTH = 6

Title = Annotated[
    str,
    StringConstraints(min_length=1, max_length=300),
    AfterValidator(printable),
    Field(json_schema_extra={"pattern": PRINTABLE_PATTERN}),
]
# What normalize_tag takes, for the document (it decides, and stores the tag lowercased).
Tag = Annotated[
    str,
    Field(
        json_schema_extra={"minLength": 1, "maxLength": 50, "pattern": PRINTABLE_NOT_BLANK_PATTERN}
    ),
]
Slug = Annotated[str, StringConstraints(min_length=1, max_length=MAX_SLUG, pattern=SLUG_PATTERN)]
Body = Annotated[str, StringConstraints(max_length=MAX_BODY)]


def normalize_tag(tag: str) -> str:
    """Lowercase, trimmed, inner whitespace collapsed to one space."""
    cleaned = " ".join(printable(tag).lower().split())
    if not cleaned:
        raise ValueError("tags must not be blank")
    if len(cleaned) > 50:
        raise ValueError("tags are at most 50 characters")
    return cleaned


def normalize_locale(value: str) -> str:
    """A BCP 47 tag in its standard form (`pt-br` → `pt-BR`)."""
    try:
        if not langcodes.tag_is_valid(value):
            raise ValueError
        tag = str(langcodes.standardize_tag(value))
    except (ValueError, langcodes.tag_parser.LanguageTagError):
        raise ValueError("must be a language tag such as en, de or pt-BR") from None
    if len(tag) > 16:
        raise ValueError("must be a language tag of at most 16 characters")
    return tag


Locale = Annotated[
    str,
    StringConstraints(min_length=2, max_length=35, pattern=LANGUAGE_TAG_PATTERN),
    AfterValidator(normalize_locale),
    Field(description=LANGUAGE_TAG_DESCRIPTION),
]


def _depth(value: Any, level: int = 0) -> int:
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def check_attributes(value: dict[str, Any]) -> dict[str, Any]:
    try:
        # NaN and Infinity are not JSON (PostgreSQL refuses them), nor are integers
        # past 64 bits to most clients; orjson refuses the second and we the first.
        json.dumps(value, allow_nan=False)
        encoded = orjson.dumps(value)
    except (ValueError, orjson.JSONEncodeError) as exc:
        raise ValueError(f"must be plain JSON: {exc}") from None
    if len(encoded) > MAX_ATTRIBUTES_BYTES:
        raise ValueError(f"must be at most {MAX_ATTRIBUTES_BYTES} bytes as JSON")
    if _depth(value) > MAX_ATTRIBUTES_DEPTH:
        raise ValueError(f"must nest at most {MAX_ATTRIBUTES_DEPTH} levels deep")
    if b"\\u0000" in encoded:  # PostgreSQL's jsonb cannot store NUL
        raise ValueError("must not contain NUL characters")
    return value


Attributes = Annotated[dict[str, Any], AfterValidator(check_attributes)]


class _ContentFields(InputSchema):
    @field_validator("tags", check_fields=False)
    @classmethod
    def _tags(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        normalized = list(dict.fromkeys(normalize_tag(tag) for tag in value))
        return normalized

    @field_validator("media", check_fields=False)
    @classmethod
    def _media(cls, value: list[uuid.UUID] | None) -> list[uuid.UUID] | None:
        return None if value is None else list(dict.fromkeys(value))


CONTENT_CREATE_EXAMPLE = {
    "type": "NEWS",
    "title": "Season 3 is live",
    "slug": "season-3",
    "locale": "en",
    "format": "MARKDOWN",
    "content": "New maps, **new rewards**, and a ranked ladder.",
    "tags": ["season 3", "patch notes"],
    "attributes": {"heroImageAlt": "The new desert map at dusk"},
}


class ContentCreate(_ContentFields):
    model_config = example(CONTENT_CREATE_EXAMPLE)

    type: ContentType
    title: Title
    slug: Slug | None = Field(default=None, description="Made from the title when absent")
    locale: Locale = "en"
    format: ContentFormat = "MARKDOWN"
    content: Body = ""
    tags: Annotated[list[Tag], Field(max_length=MAX_TAGS)] = Field(default_factory=list)
    media: Annotated[list[uuid.UUID], Field(max_length=MAX_MEDIA)] = Field(default_factory=list)
    attributes: Attributes = Field(
        default_factory=dict,
        description="Free fields per type, e.g. for a GAME genres, platforms, releaseDate",
    )
    publish_at: UtcDatetime | None = Field(
        default=None, description="When `publish` schedules it for (stored; see publish)"
    )


CONTENT_UPDATE_EXAMPLE = {
    "title": "Season 3 is live: new maps and ranked play",
    "tags": ["season 3", "patch notes", "ranked"],
}


class ContentUpdate(_ContentFields):
    """Only the fields sent change. Send with `If-Match: <ETag>`."""

    model_config = example(CONTENT_UPDATE_EXAMPLE)

    title: Title | None = None
    slug: Slug | None = None
    locale: Locale | None = None
    format: ContentFormat | None = None
    content: Body | None = None
    tags: Annotated[list[Tag], Field(max_length=MAX_TAGS)] | None = None
    media: Annotated[list[uuid.UUID], Field(max_length=MAX_MEDIA)] | None = None
    attributes: Attributes | None = None
    publish_at: UtcDatetime | None = None


PUBLISH_EXAMPLE = {"publishAt": "2030-06-01T08:00:00Z"}


class PublishRequest(InputSchema):
    model_config = example(PUBLISH_EXAMPLE)

    publish_at: UtcDatetime | None = Field(
        default=None, description="In the future: SCHEDULED until then; absent or past: now"
    )


PUBLIC_CONTENT_EXAMPLE = {
    "id": "0195a3d0-1a2b-7c3d-8e4f-5a6b7c8d9e0f",
    "type": "NEWS",
    "title": "Season 3 is live",
    "slug": "season-3",
    "locale": "en",
    "format": "MARKDOWN",
    "content": "New maps, **new rewards**, and a ranked ladder.",
    "html": "<p>New maps, <strong>new rewards</strong>, and a ranked ladder.</p>",
    "tags": ["patch notes", "season 3"],
    "media": ["0195a3d1-3c4d-7e5f-9a6b-7c8d9e0f1a2b"],
    "attributes": {"heroImageAlt": "The new desert map at dusk"},
    "publishedAt": "2026-03-15T08:00:00Z",
    "createdAt": "2026-03-14T09:30:00Z",
    "updatedAt": "2026-03-15T08:00:00Z",
}


class PublicContent(Schema):
    """What players see."""

    model_config = example(PUBLIC_CONTENT_EXAMPLE)

    id: uuid.UUID
    type: ContentType
    title: str
    slug: str
    locale: str
    format: ContentFormat
    content: str
    html: str | None = Field(description="The sanitised HTML (null for JSON content)")
    tags: list[str]
    media: list[uuid.UUID]
    attributes: dict[str, Any]
    published_at: UtcDatetime | None
    created_at: UtcDatetime
    updated_at: UtcDatetime


CONTENT_EXAMPLE = {
    **PUBLIC_CONTENT_EXAMPLE,
    "status": "PUBLISHED",
    "publishAt": None,
    "authorId": "0195a3c2-5b1e-7c4d-8e9f-0a1b2c3d4e5f",
    "version": 3,
}


class ContentRead(PublicContent):
    """What editors see."""

    model_config = example(CONTENT_EXAMPLE)

    status: ContentStatus
    publish_at: UtcDatetime | None
    author_id: uuid.UUID | None
    version: int = Field(description="Bumped by every change; the ETag is derived from it")


REVISION_EXAMPLE = {
    "number": 2,
    "editorId": "0195a3c2-5b1e-7c4d-8e9f-0a1b2c3d4e5f",
    "createdAt": "2026-03-14T11:02:00Z",
    "snapshot": {"title": "Season 3 is live", "tags": ["season 3"], "status": "DRAFT"},
}


class RevisionRead(Schema):
    model_config = example(REVISION_EXAMPLE)

    number: int
    editor_id: uuid.UUID | None
    created_at: UtcDatetime
    snapshot: dict[str, Any] = Field(description="The saved fields at this revision")


class TagCount(Schema):
    tag: str
    count: int


TAG_LIST_EXAMPLE = {"items": [{"tag": "patch notes", "count": 42}, {"tag": "season 3", "count": 7}]}


class TagList(Schema):
    model_config = example(TAG_LIST_EXAMPLE)

    items: list[TagCount]
