"""What a file really is (from its bytes), and the image work the worker does: verify
under a pixel limit, apply and strip EXIF, write WebP renditions. Pure functions that
run in a thread; every way an image can be bad ends in `Rejected` with a reason."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import puremagic
from PIL import Image, ImageOps, UnidentifiedImageError

# `process` checks the pixel count itself, before decoding; Pillow's warning for the
# same thing would only be noise in the worker's log.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

IMAGE_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP", "image/gif": "GIF"}
SNIFF_BYTES = 8192


class Rejected(Exception):
    """The file is not acceptable; the message says why, for the uploader."""


def sniff(head: bytes) -> str | None:
    """The MIME type the bytes say, or None when they say nothing recognisable."""
    if not head:
        return None
    try:
        mime: str = puremagic.from_string(head, mime=True)
    except (puremagic.PureError, ValueError):
        return None
    return mime or None


def check_type(head: bytes, declared: str | None, allowed: set[str]) -> str:
    """The real type, if allowed and (when a type was declared) the same as declared."""
    real = sniff(head)
    if real is None:
        raise Rejected("the file's content is not a recognisable type")
    if real not in allowed:
        raise Rejected(
            f"the file is {real}, which is not accepted (allowed: {', '.join(sorted(allowed))})"
        )
    if declared is not None and declared != real:
        raise Rejected(f"the file says it is {declared} but its content is {real}")
    return real


@dataclass(frozen=True)
class Rendition:
    name: str
    width: int
    height: int
    data: bytes
    mime_type: str = "image/webp"


@dataclass(frozen=True)
class Processed:
    original: bytes  # re-encoded without EXIF (no GPS position leaves the server)
    width: int
    height: int
    renditions: list[Rendition]


def process(data: bytes, mime_type: str, *, max_pixels: int, widths: list[int]) -> Processed:
    fmt = IMAGE_FORMATS.get(mime_type)
    if fmt is None:
        raise Rejected(f"{mime_type} is not an image this server processes")
    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as probe:
            width, height = probe.size
            frames = getattr(probe, "n_frames", 1)
            # Before decoding a pixel: the header is all a decompression bomb needs.
            if width * height > max_pixels or width * height * frames > 4 * max_pixels:
                raise Rejected(
                    f"the image is {width}×{height} px ({frames} frame(s)), over the limit of "
                    f"{max_pixels:,} px"
                )
            probe.verify()
        with Image.open(io.BytesIO(data), formats=[fmt]) as image:
            image.load()
            upright = ImageOps.exif_transpose(image) or image
            original = _reencode(image, upright, fmt, animated=frames > 1)
            renditions = [_rendition(upright, w) for w in sorted(set(widths)) if w < upright.width]
            return Processed(original, upright.width, upright.height, renditions)
    except Rejected:
        raise
    except Image.DecompressionBombError as exc:
        raise Rejected(f"the image is a decompression bomb: {exc}") from None
    except (UnidentifiedImageError, SyntaxError) as exc:
        raise Rejected(f"the image cannot be read: {exc}") from None
    except (OSError, ValueError, EOFError) as exc:  # truncated or corrupt data
        raise Rejected(f"the image is damaged or truncated: {exc}") from None


def _reencode(source: Image.Image, upright: Image.Image, fmt: str, *, animated: bool) -> bytes:
    out = io.BytesIO()
    if animated:
        # Frames as they are; GIF and WebP animations carry no EXIF position data.
        source.save(out, format=fmt, save_all=True)
    elif fmt == "JPEG":
        upright.convert("RGB").save(out, format="JPEG", quality=90, optimize=True)
    else:
        upright.save(out, format=fmt)  # no exif= argument: no EXIF written
    return out.getvalue()


def _rendition(image: Image.Image, width: int) -> Rendition:
    height = max(1, round(image.height * width / image.width))
    mode = "RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB"
    resized = image.convert(mode).resize((width, height), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    resized.save(out, format="WEBP", quality=80, method=4)
    return Rendition(name=f"w{width}", width=width, height=height, data=out.getvalue())
