"""Application-generated, time-ordered ids (UUIDv7)."""

import functools
import uuid

import uuid_utils


def new_id() -> uuid.UUID:
    return uuid.UUID(bytes=uuid_utils.uuid7().bytes)


def first_id_at(unix_seconds: float) -> uuid.UUID:
    """The smallest UUIDv7 of that millisecond: every id made from then on sorts above it
    (the first 48 bits are the time in milliseconds, then the version and variant)."""
    millis = int(unix_seconds * 1000)
    return uuid.UUID(int=(millis << 80) | (0x7 << 76) | (0b10 << 62))


def id_time(value: uuid.UUID) -> float | None:
    """When a UUIDv7 was made (Unix seconds, to the millisecond); None for other ids."""
    if value.version != 7:
        return None
    return (value.int >> 80) / 1000


# Bounded: ids from clients. The same few ids (a game's) come in request after request,
# and parsing one costs about 1.5 µs, a lookup here a tenth of that.
@functools.lru_cache(maxsize=4096)
def plain_uuid(text: str) -> uuid.UUID | None:
    """A path segment in the canonical 36-character form, as a UUID; None for anything
    else (the declared route then parses it, and refuses what it must, as ever)."""
    if len(text) != 36:
        return None
    try:
        return uuid.UUID(text)
    except ValueError:
        return None
