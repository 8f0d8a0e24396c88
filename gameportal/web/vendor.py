"""The third-party browser assets gameportal serves itself (no CDN): which npm release each
comes from and which of its files are kept, with their licences.

They are committed under `static/vendor/`, so installing gameportal needs no npm. To move
to a newer release, change its version here and run `python -m gameportal.web.vendor`
(it needs npm): it unpacks the release, copies the files listed, and rewrites
`static/vendor/SHA256SUMS`, which a test checks the committed files against."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

VENDOR_DIR = Path(__file__).parent / "static" / "vendor"
SUMS_FILE = VENDOR_DIR / "SHA256SUMS"


@dataclass(frozen=True)
class Release:
    package: str  # the npm package
    version: str
    folder: str  # under static/vendor/
    files: tuple[str, ...]  # paths inside the package; licences included


RELEASES = (
    Release(
        "swagger-ui-dist",
        "5.35.0",
        "swagger-ui",
        (
            "swagger-ui-bundle.js",
            "swagger-ui.css",
            "LICENSE",
            "NOTICE",
            "swagger-ui-bundle.js.LICENSE.txt",
        ),
    ),
    Release("redoc", "3.0.1", "redoc", ("bundles/redoc.standalone.js", "LICENSE")),
    # The operator console's (gameportal.console): htmx for partial updates, uPlot for charts.
    Release("htmx.org", "2.0.11", "htmx", ("dist/htmx.min.js", "LICENSE")),
    Release(
        "uplot", "1.6.32", "uplot", ("dist/uPlot.iife.min.js", "dist/uPlot.min.css", "LICENSE")
    ),
)


def sha256_lines() -> list[str]:
    """`sha256sum`-style lines for every vendored file, as they are on disk."""
    lines = []
    for release in RELEASES:
        for name in release.files:
            relative = f"{release.folder}/{Path(name).name}"
            digest = hashlib.sha256((VENDOR_DIR / relative).read_bytes()).hexdigest()
            lines.append(f"{digest}  {relative}")
    return lines


def update() -> None:  # pragma: no cover - a maintainer's tool, run by hand with npm
    with tempfile.TemporaryDirectory() as work:
        for release in RELEASES:
            spec = f"{release.package}@{release.version}"
            packed = subprocess.run(  # noqa: S603
                ["npm", "pack", "--silent", spec],  # noqa: S607
                cwd=work,
                check=True,
                capture_output=True,
                text=True,
            ).stdout.split()[-1]
            with tarfile.open(Path(work) / packed) as archive:
                archive.extractall(Path(work) / release.folder, filter="data")
            target = VENDOR_DIR / release.folder
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            unpacked = Path(work) / release.folder / "package"
            for name in release.files:
                shutil.copyfile(unpacked / name, target / Path(name).name)
            print(f"{spec} -> {target}")
    SUMS_FILE.write_text("\n".join(sha256_lines()) + "\n")


if __name__ == "__main__":  # pragma: no cover
    update()
    sys.exit(0)
