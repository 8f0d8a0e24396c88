"""Signed one-click unsubscribe links (RFC 8058) for mail a player may opt out of. The
link names the player, channel and category, and is signed with the secret key: it works
without logging in and cannot be forged for someone else."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeSerializer

_SALT = "gameportal.unsubscribe"


@dataclass(frozen=True)
class Unsubscribe:
    user_id: uuid.UUID
    channel: str
    category: str


def _serializer(secret_key: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret_key, salt=_SALT)


def sign(secret_key: str, target: Unsubscribe) -> str:
    return str(
        _serializer(secret_key).dumps([str(target.user_id), target.channel, target.category])
    )


def verify(secret_key: str, token: str) -> Unsubscribe | None:
    try:
        user_id, channel, category = _serializer(secret_key).loads(token)
        return Unsubscribe(user_id=uuid.UUID(user_id), channel=str(channel), category=str(category))
    except (BadSignature, ValueError, TypeError):
        return None
