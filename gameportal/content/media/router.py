"""Media over HTTP: editors upload (through the app, or straight to S3 with a presigned
URL) and manage; anyone reads what is READY."""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Path, Query, Request, Response, UploadFile, status
from fastapi.responses import FileResponse, RedirectResponse
from pydantic import WithJsonSchema

from gameportal.content.media import service
from gameportal.content.media.images import IMAGE_FORMATS
from gameportal.content.media.repository import listing
from gameportal.content.media.schemas import MediaRead, PublicMedia, UploadRequest, UploadTicket
from gameportal.content.media.storage import LocalStorage, Storage, media_key
from gameportal.db import DbReadSession, DbSession
from gameportal.errors import NotFound, problem_responses
from gameportal.identity.deps import EditorUser, MaybeUser
from gameportal.kit.openapi import headers
from gameportal.kit.pagination import Page, Pagination, split_page
from gameportal.models import MediaAsset

# The bytes of a file or rendition: from this server, or, with S3, a redirect to them.
_FILE_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {
        # The file's own type; generators that need one name take the first.
        "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "*/*": {"schema": {"type": "string", "format": "binary"}},
        },
        "headers": headers("Cache-Control", "Content-Disposition"),
    },
    307: {
        "description": "With S3 storage: where to fetch the file (a presigned URL)",
        "headers": headers("Location"),
    },
}

media_router = APIRouter(prefix="/api/v1/media", tags=["media"], responses=problem_responses(500))


def _storage(request: Request) -> Storage:
    storage: Storage = request.app.state.storage
    return storage


@media_router.post(
    "",
    operation_id="media_upload",
    response_model=MediaRead,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(401, 403, 413, 422, 503, 507),
    summary="Upload a file (multipart, field `file`); images are then processed (editor)",
    openapi_extra={
        "requestBody": {
            "content": {
                "multipart/form-data": {
                    "example": {
                        "file": "(the file's bytes)",
                        "relatedContentId": "0195a3d0-1a2b-7c3d-8e4f-5a6b7c8d9e0f",
                    }
                }
            }
        }
    },
)
async def upload_media(
    request: Request,
    principal: EditorUser,
    session: DbSession,
    file: Annotated[
        UploadFile,
        File(
            description="The file, not empty; its type is judged by its bytes (images, and "
            "the types `GAMEPORTAL_MEDIA_EXTRA_TYPES` adds)",
            json_schema_extra={"minLength": 1},
        ),
    ],
    related_content_id: Annotated[
        uuid.UUID | None,
        Form(alias="relatedContentId"),
        # A form field cannot be null, only left out: documented as what may be sent.
        WithJsonSchema({"type": "string", "format": "uuid"}),
    ] = None,
) -> MediaAsset:
    try:
        return await service.upload(
            session,
            _storage(request),
            request.app.state.settings,
            uploader=principal.user_id,
            file_name=file.filename,
            declared_type=file.content_type,
            read=file.read,
            related_content_id=related_content_id,
        )
    finally:
        await file.close()


@media_router.post(
    "/uploads",
    operation_id="media_uploads_create",
    response_model=UploadTicket,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(401, 403, 413, 422, 503),
    summary="Start an upload straight to S3: a presigned PUT URL and the new media (editor)",
)
async def start_upload(
    request: Request, body: UploadRequest, principal: EditorUser, session: DbSession
) -> UploadTicket:
    item, url = await service.start_presigned(
        session, _storage(request), request.app.state.settings, principal.user_id, body
    )
    assert item.upload_expires_at is not None
    return UploadTicket(
        media=MediaRead.model_validate(item),
        upload_url=url,
        upload_headers={"Content-Type": item.mime_type},
        expires_at=item.upload_expires_at,
    )


@media_router.post(
    "/{media_id}/complete",
    operation_id="media_uploads_complete",
    response_model=MediaRead,
    responses=problem_responses(401, 403, 404, 409, 422, 503),
    summary="Check a presigned upload's bytes and take it (the uploader)",
)
async def complete_upload(
    request: Request, media_id: uuid.UUID, principal: EditorUser, session: DbSession
) -> MediaAsset:
    return await service.complete(
        session,
        _storage(request),
        request.app.state.settings,
        media_id,
        user=principal.user_id,
        is_admin="admin" in principal.roles,
    )


@media_router.get(
    "",
    operation_id="media_list",
    response_model=Page[MediaRead],
    responses=problem_responses(400, 401, 403, 422),
    summary="Media, newest first (editor)",
)
async def list_media(
    _: EditorUser,
    session: DbReadSession,
    page: Pagination,
    type: Annotated[
        str | None,
        Query(max_length=127, pattern=r"^[a-z]+(/[a-z0-9.+-]+)?$", description="image, image/png…"),
    ] = None,
    uploader: uuid.UUID | None = None,
    related_content_id: Annotated[uuid.UUID | None, Query(alias="relatedContentId")] = None,
) -> Page[MediaRead]:
    prefix = None if type is None else (type if "/" in type else type + "/")
    rows = await listing(
        session,
        mime_prefix=prefix,
        uploader=uploader,
        related_content_id=related_content_id,
        after=page.after,
        limit=page.limit + 1,
    )
    items, next_cursor = split_page(rows, page.limit)
    return Page[MediaRead](
        items=[MediaRead.model_validate(i) for i in items], next_cursor=next_cursor
    )


async def _visible(session: DbReadSession, media_id: uuid.UUID, caller: MaybeUser) -> MediaAsset:
    item = await service.get(session, media_id)
    if item.status != "READY" and not (caller is not None and caller.has_role("editor")):
        raise NotFound("no such media")
    return item


# `:uuid` in the path of the routes beside /uploads: "uploads" is not an id, so GET or
# DELETE /media/uploads is a 405 for /uploads, not a 422 for a malformed id.
@media_router.get(
    "/{media_id:uuid}",
    operation_id="media_get",
    response_model=MediaRead | PublicMedia,
    responses=problem_responses(401, 404, 422),
    summary="A media asset: READY ones for anyone, any for editors",
)
async def get_media(
    media_id: uuid.UUID, session: DbReadSession, caller: MaybeUser
) -> MediaRead | PublicMedia:
    item = await _visible(session, media_id, caller)
    if caller is not None and caller.has_role("editor"):
        return MediaRead.model_validate(item)
    return PublicMedia.model_validate(item)


@media_router.delete(
    "/{media_id:uuid}",
    operation_id="media_delete",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404, 409, 422, 503),
    summary="Delete a media asset and its files; 409 while published content shows it (editor)",
)
async def delete_media(
    request: Request, media_id: uuid.UUID, _: EditorUser, session: DbSession
) -> Response:
    await service.delete(session, _storage(request), media_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _serve(request: Request, item: MediaAsset, key: str, mime_type: str) -> Response:
    storage = _storage(request)
    if not isinstance(storage, LocalStorage):
        return RedirectResponse(storage.url(key), status_code=status.HTTP_307_TEMPORARY_REDIRECT)
    path = storage.path(key)
    if not path.is_file():
        raise NotFound("the file is gone")
    disposition = "inline" if mime_type in IMAGE_FORMATS else "attachment"
    return FileResponse(
        path,
        media_type=mime_type,
        headers={
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(item.file_name)}",
            # Even a file that slipped through cannot run script on this origin.
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "public, max-age=86400",
        },
    )


@media_router.get(
    "/{media_id}/file",
    operation_id="media_file_get",
    response_class=Response,
    responses={**_FILE_ANSWERS, 200: {**_FILE_ANSWERS[200], "description": "The file"}}
    | problem_responses(404, 422),
    summary="The original file of READY media (anyone)",
)
async def media_file(
    request: Request, media_id: uuid.UUID, session: DbReadSession, caller: MaybeUser
) -> Response:
    item = await _visible(session, media_id, caller)
    return _serve(request, item, item.storage_key, item.mime_type)


@media_router.get(
    "/{media_id}/renditions/{name}",
    operation_id="media_renditions_get",
    response_class=Response,
    responses={**_FILE_ANSWERS, 200: {**_FILE_ANSWERS[200], "description": "The rendition"}}
    | problem_responses(404, 422),
    summary="A rendition of READY media (anyone)",
)
async def media_rendition(
    request: Request,
    media_id: uuid.UUID,
    name: Annotated[str, Path(max_length=32, pattern=r"^[a-z0-9]+$")],
    session: DbReadSession,
    caller: MaybeUser,
) -> Response:
    item = await _visible(session, media_id, caller)
    rendition = next((r for r in item.renditions if r["name"] == name), None)
    if rendition is None:
        raise NotFound("no such rendition")
    return _serve(request, item, media_key(item.id, name), rendition["mimeType"])
