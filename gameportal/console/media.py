"""The media library: upload (drag and drop with progress, or a plain form), processing
followed until the file is READY or refused (and why), renditions, where each file is
used, delete (and, when published content shows it, why not).

Uploads and deletes go through gameportal.content.media.service, as the API's do: files
judged by their bytes, images queued for processing, nothing half-written."""

from __future__ import annotations

import contextlib
import uuid
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import UploadFile
from starlette.responses import Response

from gameportal.console import _editorial as ed
from gameportal.console.frame import (
    NavEntry,
    console_form,
    console_router,
    form_text,
    render,
    require_console_role,
    safe_next,
    see_other,
)
from gameportal.content.media import service as media_service
from gameportal.content.media.storage import Storage
from gameportal.db import DbReadSession, DbSession
from gameportal.errors import InvalidField, PayloadTooLarge, PortalError
from gameportal.identity.service import Principal
from gameportal.models import MediaAsset

router = console_router(
    "/media", nav=NavEntry("Media library", "/console/media", roles=("editor",), order=30)
)
Editor = Annotated[Principal, Depends(require_console_role("editor"))]

# How a piece of a page shows one media item, each polling while it is processing.
VIEWS = ("row", "tile", "panel")


def _storage(request: Request) -> Storage:
    storage: Storage = request.app.state.storage
    return storage


async def _fragment(
    request: Request,
    session: AsyncSession,
    item: MediaAsset,
    view: str,
    *,
    attached: bool = False,
    status_code: int = 200,
) -> Response:
    """One media item as `view` shows it: a library row, a picker tile or the detail
    page's panel; while it is processing, it asks for itself again in a second."""
    people = await ed.people(session, [item.uploaded_by]) if view == "row" else {}
    return render(
        request,
        f"console/media/_{view}.html",
        status_code=status_code,
        headers=ed.image_csp(request),
        item=item,
        attached=attached,
        uploader=people.get(item.uploaded_by) if item.uploaded_by else None,
        **ed.media_helpers(request),
    )


@router.get("")
async def library(
    request: Request,
    editor: Editor,
    session: DbReadSession,
    kind: Annotated[str, Query(max_length=10)] = "",
    status: Annotated[str, Query(max_length=16)] = "",
    q: Annotated[str, Query(max_length=255)] = "",
    after: uuid.UUID | None = None,
) -> Response:
    kind = kind if kind in ed.MEDIA_KINDS else ""
    status = status.upper() if status.upper() in ed.MEDIA_STATUSES else ""
    items, more = await ed.media_page(
        session,
        ed.MediaFilter(kind=kind or None, status=status or None, q=q.strip() or None),
        after=after,
    )
    filters = {"kind": kind, "status": status, "q": q}
    query = urlencode({k: v for k, v in filters.items() if v})
    people = await ed.people(session, [i.uploaded_by for i in items])
    return render(
        request,
        "console/media/list.html",
        headers=ed.image_csp(request),
        items=items,
        people=people,
        filters=filters,
        query=query,
        filtered=bool(query),
        next_after=more,
        paged=after is not None,
        kinds=ed.MEDIA_KINDS,
        statuses=ed.MEDIA_STATUSES,
        **ed.media_helpers(request),
    )


@router.post("/upload")
async def upload(request: Request, editor: Editor, session: DbSession) -> Response:
    """A file from the library's drop zone or form, or the editor's picker. From a script
    (htmx's `HX-Request` header), the answer is the new item's row or tile; from a plain
    form, a redirect to the item (or back to the page it came from)."""
    form = await console_form(request)
    file = form.get("file")
    view = form_text(form, "view")
    view = view if view in ("row", "tile") else "row"
    back = safe_next(form_text(form, "next") or "/console/media")
    if not isinstance(file, UploadFile) or not file.filename:
        return _upload_refused(request, back, "Choose a file to upload.", 422)
    related: uuid.UUID | None = None
    with contextlib.suppress(ValueError):  # an item's editor uploads for that item
        related = uuid.UUID(form_text(form, "related_content_id"))
    try:
        item = await media_service.upload(
            session,
            _storage(request),
            request.app.state.settings,
            uploader=editor.user_id,
            file_name=file.filename,
            declared_type=file.content_type,
            read=file.read,
            related_content_id=related,
        )
    except (InvalidField, PayloadTooLarge, media_service.StorageUnavailable,
            media_service.StorageFull) as exc:  # fmt: skip
        await session.rollback()
        return _upload_refused(request, back, _refusal(file.filename, exc), exc.status)
    finally:
        await file.close()
    if ed.is_htmx(request):
        return await _fragment(request, session, item, view, attached=True, status_code=201)
    if back != "/console/media":
        return see_other(
            request, back, flash_message=f"Uploaded {item.file_name}: it is being processed."
        )
    return see_other(request, f"/console/media/{item.id}", flash_message="Uploaded.")


def _refusal(name: str, exc: PortalError) -> str:
    reason = exc.detail or exc.title
    return f"{name} was not accepted: {reason[:1].lower()}{reason[1:]}."


def _upload_refused(request: Request, back: str, message: str, status: int) -> Response:
    if ed.is_htmx(request):
        # The script shows it beside the file's progress bar.
        return Response(message, status_code=status, media_type="text/plain; charset=utf-8")
    return see_other(request, back, flash_message=message, flash_kind="error")


async def _media_page(
    request: Request,
    session: AsyncSession,
    item: MediaAsset,
    *,
    refused: str | None = None,
    status_code: int = 200,
) -> Response:
    usage = await ed.media_usage(session, item.id)
    people = await ed.people(session, [item.uploaded_by])
    return render(
        request,
        "console/media/detail.html",
        status_code=status_code,
        headers=ed.image_csp(request),
        item=item,
        usage=usage,
        blocking=[u for u in usage if u.blocks_delete],
        drafts_listing=[u for u in usage if u.listed and not u.blocks_delete],
        uploader=people.get(item.uploaded_by) if item.uploaded_by else None,
        refused=refused,
        attached=False,
        **ed.media_helpers(request),
    )


@router.get("/{media_id:uuid}")
async def media_item(
    media_id: uuid.UUID, request: Request, editor: Editor, session: DbReadSession
) -> Response:
    item = await media_service.get(session, media_id)
    return await _media_page(request, session, item)


@router.get("/{media_id:uuid}/status")
async def media_status(
    media_id: uuid.UUID,
    request: Request,
    editor: Editor,
    session: DbReadSession,
    view: Annotated[str, Query(max_length=8)] = "row",
    media: Annotated[list[str] | None, Query(max_length=60)] = None,
) -> Response:
    """The status fragment a processing item polls: itself again, in `view`'s shape (in
    the picker, still ticked if it was: its checkbox comes along as `media`)."""
    item = await media_service.get(session, media_id)
    return await _fragment(
        request,
        session,
        item,
        view if view in VIEWS else "row",
        attached=str(media_id) in (media or []),
    )


@router.post("/{media_id:uuid}/delete")
async def delete_media(
    media_id: uuid.UUID, request: Request, editor: Editor, session: DbSession
) -> Response:
    item = await media_service.get(session, media_id)
    name = item.file_name
    try:
        await media_service.delete(session, _storage(request), media_id)
    except media_service.MediaInUse:
        await session.rollback()
        item = await media_service.get(session, media_id)
        return await _media_page(
            request,
            session,
            item,
            refused="Published content shows this file, so deleting it would break that "
            "content for players.",
            status_code=409,
        )
    return see_other(request, "/console/media", flash_message=f"Deleted {name}.")
