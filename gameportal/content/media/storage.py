"""Where media bytes live: one small interface, a local folder or S3 behind it. Keys are
made by the server (`media/<id>/<name>`), so nothing a client sends becomes a path."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Protocol

from gameportal.config import Settings

CHUNK = 256 * 1024


class StorageError(Exception):
    """The storage itself failed (a folder that cannot be written, a full disk, S3 out of
    reach), not the file: the upload may work later. The message names no path or key,
    so it can be shown to the uploader. `full`: out of space."""

    def __init__(self, message: str, *, full: bool = False) -> None:
        super().__init__(message)
        self.full = full


_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


@contextlib.contextmanager
def local_errors(action: str) -> Iterator[None]:
    """OSError from the local folder as a StorageError, naming the reason, not the path."""
    try:
        yield
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else type(exc).__name__
        raise StorageError(
            f"the media storage cannot be {action}: {reason}", full=exc.errno in _FULL
        ) from exc


class Storage(Protocol):
    name: str  # "local" | "s3"

    async def write(self, key: str, chunks: AsyncIterator[bytes], content_type: str) -> int: ...

    async def read(self, key: str) -> bytes: ...

    async def head(self, key: str) -> int | None:
        """The object's size, or None if there is none."""
        ...

    async def read_start(self, key: str, length: int) -> bytes: ...

    async def delete(self, keys: list[str]) -> None: ...

    def url(self, key: str) -> str: ...


def media_key(media_id: object, name: str = "original") -> str:
    return f"media/{media_id}/{name}"


class LocalStorage:
    name = "local"

    def __init__(self, root: Path, public_url: str | None) -> None:
        self.root = root.resolve()
        self.public_url = public_url

    def path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):  # keys are ours, but belt and braces
            raise ValueError(f"storage key {key!r} leaves the media folder")
        return path

    async def write(self, key: str, chunks: AsyncIterator[bytes], content_type: str) -> int:
        path = self.path(key)
        partial = path.with_name(path.name + ".part")
        size = 0
        with local_errors("written"):
            await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
            handle = await asyncio.to_thread(open, partial, "wb")
            try:
                async for chunk in chunks:
                    size += len(chunk)
                    await asyncio.to_thread(handle.write, chunk)
                # Closed here, not later: buffered bytes that do not fit fail the write.
                await asyncio.to_thread(handle.close)
            except BaseException:
                with contextlib.suppress(OSError):
                    handle.close()
                partial.unlink(missing_ok=True)
                with contextlib.suppress(OSError):  # only if empty: other names may live there
                    path.parent.rmdir()
                raise
            # Readers see the whole file or none of it.
            await asyncio.to_thread(os.replace, partial, path)
        return size

    async def read(self, key: str) -> bytes:
        with local_errors("read"):
            return await asyncio.to_thread(self.path(key).read_bytes)

    async def head(self, key: str) -> int | None:
        with local_errors("read"):
            try:
                return (await asyncio.to_thread(self.path(key).stat)).st_size
            except FileNotFoundError:
                return None

    async def read_start(self, key: str, length: int) -> bytes:
        def read() -> bytes:
            with self.path(key).open("rb") as handle:
                return handle.read(length)

        with local_errors("read"):
            return await asyncio.to_thread(read)

    async def delete(self, keys: list[str]) -> None:
        def remove() -> None:
            for key in keys:
                self.path(key).unlink(missing_ok=True)
            folders = {self.path(key).parent for key in keys}
            for folder in folders:
                if folder.is_dir() and not any(folder.iterdir()):
                    shutil.rmtree(folder, ignore_errors=True)

        with local_errors("written"):
            await asyncio.to_thread(remove)

    def url(self, key: str) -> str:
        # media/<id>/<name> → /api/v1/media/<id>/file or .../renditions/<name>
        _, media_id, name = key.split("/", 2)
        tail = "file" if name == "original" else f"renditions/{name}"
        return f"{(self.public_url or '').rstrip('/')}/api/v1/media/{media_id}/{tail}"


def media_route_base(settings: Settings) -> str:
    """Where the app's media routes (/api/v1/media/...) are reached from outside: a CDN in
    front of local media (GAMEPORTAL_MEDIA_PUBLIC_URL), else the app's public base URL.
    Media URLs are absolute, taken from settings and never from a request's Host: public
    answers are cached (here and by CDNs), and a forged Host must not end up in them."""
    if settings.media_storage == "local" and settings.media_public_url:
        return settings.media_public_url
    return settings.public_base_url


def storage_from(settings: Settings) -> Storage:
    if settings.media_storage == "s3":
        from gameportal.content.media.s3 import S3Storage

        return S3Storage(settings)
    return LocalStorage(settings.media_folder, media_route_base(settings))
