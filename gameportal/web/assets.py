"""The pages' static files (`static/`: the site's CSS, the docs' start-up script, vendored
Swagger UI and ReDoc), served by the app under /static.

Pages link each file with its content hash (`asset_url`: `/static/site.css?v=1f2e...`):
asked for with the current hash, a file may be cached for a year, since a change gives it
a new URL; asked for otherwise (no or an old `v`), it must be revalidated (`ETag`)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).parent / "static"
STATIC_PREFIX = "/static"
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"

# Set here rather than guessed from the machine's MIME table (which varies: a script
# served as anything but JavaScript is refused under `nosniff`).
_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}


class Assets:
    """The static folder's files and their content hashes (read once per process)."""

    def __init__(self, directory: Path = STATIC_DIR, prefix: str = STATIC_PREFIX) -> None:
        self.directory = directory
        self.prefix = prefix
        self._digests: dict[str, str] = {}

    def digest(self, name: str) -> str:
        found = self._digests.get(name)
        if found is None:
            path = (self.directory / name).resolve()
            if not path.is_relative_to(self.directory.resolve()) or not path.is_file():
                raise FileNotFoundError(f"no static asset {name!r} in {self.directory}")
            found = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
            self._digests[name] = found
        return found

    def url(self, name: str) -> str:
        """The URL of static/`name`, with its content hash."""
        return f"{self.prefix}/{name}?v={self.digest(name)}"


class StaticAssets(StaticFiles):
    """Starlette's StaticFiles (paths confined to the folder, ETag, 304, HEAD) with the
    cache policy above and fixed content types."""

    def __init__(self, assets: Assets) -> None:
        super().__init__(directory=assets.directory)
        self.assets = assets

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code not in (200, 304):
            return response
        name = path.replace(os.sep, "/")
        kind = _TYPES.get(Path(name).suffix.lower())
        if kind and response.status_code == 200:
            response.headers["content-type"] = kind
        wanted = _query_value(scope, b"v")
        current = self.assets.digest(name)
        response.headers["cache-control"] = IMMUTABLE if wanted == current else REVALIDATE
        return response


def _query_value(scope: Scope, key: bytes) -> str | None:
    query: bytes = scope.get("query_string", b"")
    for pair in query.split(b"&"):
        name, _, value = pair.partition(b"=")
        if name == key:
            return value.decode("latin-1")
    return None
