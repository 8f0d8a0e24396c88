"""Content over HTTP: editors write under `/api/v1/content`; anyone reads what is
published, from an in-process cache, with ETags."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request, Response, status
from starlette.convertors import Convertor, register_url_convertor

from gameportal.content import repository as repo
from gameportal.content import service
from gameportal.content.cache import (
    Cached,
    PublicCache,
    app_path,
    cache_key,
    cached_headers,
    etag_matches,
)
from gameportal.content.locales import candidate_locales
from gameportal.content.media.storage import media_route_base
from gameportal.content.public import digest_etag, public_item, read_item, to_json
from gameportal.content.rendering import search_config
from gameportal.content.schemas import (
    ContentCreate,
    ContentRead,
    ContentType,
    ContentUpdate,
    PublicContent,
    PublishRequest,
    RevisionRead,
    Tag,
    TagCount,
    TagList,
    normalize_tag,
)
from gameportal.db import DbReadSession, DbSession
from gameportal.errors import InvalidField, NotFound, problem_responses
from gameportal.identity.deps import EditorUser
from gameportal.kit.openapi import headers
from gameportal.kit.pagination import MAX_LIMIT, Page, Pagination, encode_cursor
from gameportal.kit.schemas import LANGUAGE_TAG_DESCRIPTION, LANGUAGE_TAG_PATTERN, QueryText
from gameportal.models import Content


class ContentTypeConvertor(Convertor[str]):
    """`game`, `news`, `announcement`, `faq` in any case: the public slug route then never
    swallows `/content/{id}/revisions`."""

    regex = "(?i:game|news|announcement|faq)"

    def convert(self, value: str) -> str:
        return value.upper()

    def to_string(self, value: str) -> str:
        return value.lower()


register_url_convertor("content_type", ContentTypeConvertor())

content_router = APIRouter(
    prefix="/api/v1/content", tags=["content"], responses=problem_responses(500)
)

# Every editor's answer with the item carries its ETag, for the next If-Match.
_WITH_ETAG: dict[int | str, dict[str, Any]] = {200: {"headers": headers("ETag")}}
_PUBLIC: dict[int | str, dict[str, Any]] = {
    200: {"headers": headers("ETag", "Cache-Control")},
    304: {
        "description": "Not modified (If-None-Match)",
        "headers": headers("ETag", "Cache-Control"),
    },
}

IfMatch = Annotated[
    str | None,
    Header(max_length=200, description="The ETag you last read; 412 if it changed since"),
]


async def _media_base(request: Request) -> str:
    return media_route_base(request.app.state.settings)


# Where media links in rendered HTML point: from settings, never from the request.
MediaBase = Annotated[str, Depends(_media_base)]


def _editor_view(item: Content, response: Response) -> ContentRead:
    response.headers["ETag"] = service.etag(item)
    return ContentRead.model_validate(item)


# --- editors -------------------------------------------------------------------------------


@content_router.post(
    "",
    operation_id="content_create",
    response_model=ContentRead,
    status_code=status.HTTP_201_CREATED,
    responses={
        201: {"headers": headers("ETag", "Location")},
        **problem_responses(401, 403, 409, 413, 422),
    },
    summary="Create a draft (editor)",
)
async def create_content(
    body: ContentCreate,
    principal: EditorUser,
    session: DbSession,
    response: Response,
    media_base: MediaBase,
) -> ContentRead:
    item = await service.create(session, principal.user_id, body, media_base=media_base)
    response.headers["Location"] = f"/api/v1/content/{item.id}"
    return _editor_view(item, response)


@content_router.get(
    "/{content_id}",
    operation_id="content_get",
    response_model=ContentRead,
    responses={**_WITH_ETAG, **problem_responses(401, 403, 404, 422)},
    summary="Any content, in any status, with its ETag (editor)",
)
async def get_content(
    content_id: uuid.UUID, _: EditorUser, session: DbReadSession, response: Response
) -> ContentRead:
    return _editor_view(await service.get(session, content_id), response)


@content_router.patch(
    "/{content_id}",
    operation_id="content_update",
    response_model=ContentRead,
    responses={**_WITH_ETAG, **problem_responses(401, 403, 404, 409, 412, 413, 422, 428)},
    summary="Change fields; needs If-Match (editor)",
)
async def update_content(
    content_id: uuid.UUID,
    body: ContentUpdate,
    principal: EditorUser,
    session: DbSession,
    response: Response,
    media_base: MediaBase,
    if_match: IfMatch = None,
) -> ContentRead:
    item = await service.update(
        session, principal.user_id, content_id, body, if_match, media_base=media_base
    )
    return _editor_view(item, response)


@content_router.post(
    "/{content_id}/publish",
    operation_id="content_publish",
    response_model=ContentRead,
    responses={**_WITH_ETAG, **problem_responses(401, 403, 404, 412, 422)},
    summary="Publish now, or schedule for `publishAt` (editor)",
)
async def publish_content(
    content_id: uuid.UUID,
    principal: EditorUser,
    session: DbSession,
    response: Response,
    body: Annotated[PublishRequest | None, Body()] = None,
    if_match: IfMatch = None,
) -> ContentRead:
    when = body.publish_at if body is not None else None
    item = await service.publish(session, principal.user_id, content_id, when, if_match)
    return _editor_view(item, response)


@content_router.post(
    "/{content_id}/unpublish",
    operation_id="content_unpublish",
    response_model=ContentRead,
    responses={**_WITH_ETAG, **problem_responses(401, 403, 404, 409, 412, 422)},
    summary="Back to draft (editor)",
)
async def unpublish_content(
    content_id: uuid.UUID,
    principal: EditorUser,
    session: DbSession,
    response: Response,
    if_match: IfMatch = None,
) -> ContentRead:
    item = await service.unpublish(session, principal.user_id, content_id, if_match)
    return _editor_view(item, response)


@content_router.delete(
    "/{content_id}",
    operation_id="content_archive",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404, 412, 422),
    summary="Archive: no longer public, kept with its revisions (editor)",
)
async def archive_content(
    content_id: uuid.UUID, principal: EditorUser, session: DbSession, if_match: IfMatch = None
) -> Response:
    await service.archive(session, principal.user_id, content_id, if_match)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@content_router.get(
    "/{content_id}/revisions",
    operation_id="content_revisions_list",
    response_model=Page[RevisionRead],
    responses=problem_responses(400, 401, 403, 404, 422),
    summary="Every save, newest first: who, when, what (editor)",
)
async def list_revisions(
    content_id: uuid.UUID,
    _: EditorUser,
    session: DbReadSession,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,9}$")] = None,
) -> Page[RevisionRead]:
    before = int(cursor) if cursor else None
    rows = await service.revisions(session, content_id, before=before, limit=limit + 1)
    items = [RevisionRead.model_validate(r) for r in rows[:limit]]
    more = len(rows) > limit and items
    return Page[RevisionRead](items=items, next_cursor=str(items[-1].number) if more else None)


@content_router.post(
    "/{content_id}/revisions/{number}/restore",
    operation_id="content_revisions_restore",
    response_model=ContentRead,
    responses={**_WITH_ETAG, **problem_responses(401, 403, 404, 409, 412, 422)},
    summary="Bring back what a revision said, as a new save (editor)",
)
async def restore_revision(
    content_id: uuid.UUID,
    number: Annotated[int, Path(ge=1, le=1_000_000_000)],
    principal: EditorUser,
    session: DbSession,
    response: Response,
    media_base: MediaBase,
    if_match: IfMatch = None,
) -> ContentRead:
    item = await service.restore(
        session, principal.user_id, content_id, number, if_match, media_base=media_base
    )
    return _editor_view(item, response)


# --- public --------------------------------------------------------------------------------


async def _public(request: Request, build: Callable[[], Awaitable[Cached]]) -> Response:
    """Answer from the process's cache, or build the answer and keep it. The fast path
    (fastpath.py) serves later hits of the same key before they get here."""
    cache: PublicCache = request.app.state.content_cache
    key = cache_key(
        app_path(request.scope),
        request.scope["query_string"],
        request.headers.get("accept-language"),
    )
    hit = cache.get(key) if key is not None else None
    if hit is None:
        generation = cache.generation
        hit = await build()
        if key is not None:
            cache.put(key, hit, generation)
    headers = cached_headers(hit, cache.cache_control)
    if etag_matches(request.headers.get("if-none-match"), hit.etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(hit.body, media_type="application/json", headers=headers)


# Registered before the editors' routes: `/content/news/revisions` is the published item
# with the slug `revisions`, never the editors' revision list of an item called `news`.
public_content_router = APIRouter(
    prefix="/api/v1/content", tags=["content"], responses=problem_responses(500)
)


@public_content_router.get(
    "/{content_type:content_type}/{slug}",
    operation_id="content_published_get",
    response_model=PublicContent,
    responses={**_PUBLIC, **problem_responses(404, 422)},
    summary="A published item by type and slug, in the best locale (anyone)",
)
async def read_published(
    request: Request,
    content_type: Annotated[
        str,
        Path(
            description="game, news, announcement or faq (any case)",
            json_schema_extra={"enum": ["game", "news", "announcement", "faq"]},
        ),
    ],
    slug: str,
    locale: Annotated[
        str | None,
        Query(pattern=LANGUAGE_TAG_PATTERN, description=LANGUAGE_TAG_DESCRIPTION),
    ] = None,
) -> Response:
    locales = candidate_locales(locale, request.headers.get("accept-language"))

    async def build() -> Cached:
        found = await read_item(request.app.state.db.pool, content_type, slug, locales)
        if found is None:
            raise NotFound("no such published content")
        return found

    return await _public(request, build)


@public_content_router.get(
    "",
    operation_id="content_published_list",
    response_model=Page[PublicContent],
    responses={**_PUBLIC, **problem_responses(400, 422)},
    summary="Published content, newest first or best match for `q` (anyone)",
)
async def list_published(
    request: Request,
    page: Pagination,
    type: ContentType | None = None,
    tag: Annotated[list[Tag] | None, Query(max_length=10)] = None,
    locale: Annotated[
        str | None,
        Query(pattern=LANGUAGE_TAG_PATTERN, description=LANGUAGE_TAG_DESCRIPTION),
    ] = None,
    q: Annotated[QueryText | None, Query(min_length=1, max_length=200)] = None,
) -> Response:
    try:
        tags = sorted({normalize_tag(t) for t in tag or []})
    except ValueError as exc:
        raise InvalidField("tag", str(exc), location="query") from None
    if locale is not None:
        locale = candidate_locales(locale, None)[0]

    async def build() -> Cached:
        rows = await repo.published_list(
            request.app.state.db.pool,
            repo.ListFilter(
                type=type,
                tags=tags,
                locale=locale,
                q=q,
                search_config=search_config(locale or "en"),
            ),
            after=page.after,
            limit=page.limit + 1,
        )
        shown = rows[: page.limit]
        next_cursor = encode_cursor(shown[-1]["id"]) if len(rows) > page.limit else None
        body = to_json({"items": [public_item(r) for r in shown], "nextCursor": next_cursor})
        return Cached(etag=digest_etag(body), body=body, vary=False)

    return await _public(request, build)


tags_router = APIRouter(prefix="/api/v1/tags", tags=["content"], responses=problem_responses(500))


@tags_router.get(
    "",
    operation_id="tags_list",
    response_model=TagList,
    responses={**_PUBLIC, **problem_responses(422)},
    summary="Tags of published content with their counts, most used first (anyone)",
)
async def list_tags(
    request: Request,
    type: ContentType | None = None,
    locale: Annotated[
        str | None,
        Query(pattern=LANGUAGE_TAG_PATTERN, description=LANGUAGE_TAG_DESCRIPTION),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    if locale is not None:
        locale = candidate_locales(locale, None)[0]

    async def build() -> Cached:
        rows = await repo.tag_counts(
            request.app.state.db.pool, type=type, locale=locale, limit=limit
        )
        body = TagList(items=[TagCount(tag=r["tag"], count=r["count"]) for r in rows])
        encoded = body.model_dump_json(by_alias=True).encode()
        return Cached(etag=digest_etag(encoded), body=encoded, vary=False)

    return await _public(request, build)
