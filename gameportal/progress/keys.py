"""Game API keys: 256 random bits behind a recognisable prefix, kept only as SHA-256.

A key is a random secret, not a password: nobody can guess 256 bits, so one fast hash is
as safe as argon2 here and costs microseconds on every game-server request."""

from __future__ import annotations

import base64
import hashlib
import secrets

PREFIX = "gpk_"
RANDOM_BYTES = 32
KEY_LENGTH = len(PREFIX) + 43  # 32 bytes in unpadded base64url
SHOWN_PREFIX = len(PREFIX) + 8  # what lists show to tell keys apart


def new_key() -> str:
    raw = secrets.token_bytes(RANDOM_BYTES)
    return PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def key_hash(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def looks_like_key(value: str) -> bool:
    return value.startswith(PREFIX) and len(value) == KEY_LENGTH
