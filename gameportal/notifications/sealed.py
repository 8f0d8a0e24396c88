"""Secrets a queued mail must carry until it is delivered (the one-time link of a password
reset or an address verification), kept so that no API answer, no database row and no
backup holds them readable.

They travel in the payload's `sealedVariables`: encrypted (AES-256-GCM) with a key derived
from GAMEPORTAL_SECRET_KEY, which the database never holds, and bound to the recipient,
so a sealed value copied into a message for someone else does not open. Only the worker
opens them, to render the mail, as often as it has to retry: every attempt sends the same
link. Admin routes show `[sealed]` instead, and the row keeps `[erased]` in their place
once the message is finished (SENT, FAILED or cancelled).
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
import uuid
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

FIELD = "sealedVariables"
# What the row keeps once the message is finished, and what admins see until then.
ERASED = "[erased]"
REDACTED = "[sealed]"

_NONCE_BYTES = 12


class Unsealable(ValueError):
    """The value was not sealed for this recipient with this secret key (changed since?)."""


@functools.lru_cache(maxsize=4)
def _cipher(secret_key: str) -> AESGCM:
    key = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=b"gameportal: sealed message variables v1",
    ).derive(secret_key.encode())
    return AESGCM(key)


def seal(secret_key: str, recipient_user_id: uuid.UUID, variables: dict[str, Any]) -> str:
    nonce = os.urandom(_NONCE_BYTES)
    sealed = _cipher(secret_key).encrypt(nonce, orjson.dumps(variables), recipient_user_id.bytes)
    return base64.urlsafe_b64encode(nonce + sealed).decode()


def unseal(secret_key: str, recipient_user_id: uuid.UUID, value: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(value.encode())
        plain = _cipher(secret_key).decrypt(
            raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], recipient_user_id.bytes
        )
        variables = orjson.loads(plain)
    except (binascii.Error, ValueError, InvalidTag, orjson.JSONDecodeError):
        raise Unsealable("the sealed variables do not open with this secret key") from None
    if not isinstance(variables, dict):
        raise Unsealable("the sealed variables are not an object")
    return variables


def redacted(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload as an API may show it."""
    if FIELD not in payload or payload[FIELD] == ERASED:
        return payload
    return {**payload, FIELD: REDACTED}


# SQL: the payload with its sealed value erased, for the statements that finish a message.
ERASE_SQL = (
    f"CASE WHEN payload ? '{FIELD}' "
    f"THEN jsonb_set(payload, '{{{FIELD}}}', to_jsonb('{ERASED}'::text)) ELSE payload END"
)
