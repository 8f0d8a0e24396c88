"""Web Push: one message to every live device session of its recipient, encrypted for each
browser (aes128gcm, RFC 8291) and signed with the server's VAPID key (RFC 8292).

A device that already got a message is remembered when a retry is coming, so a retry
pushes only to the devices that failed. Endpoints the push service calls gone (404/410)
are deleted."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import http_ece
import httpx
import orjson
import structlog
from cryptography.hazmat.primitives.asymmetric import ec

from gameportal.config import Settings
from gameportal.notifications import push_repository as repo
from gameportal.notifications.fanout import fan_out
from gameportal.notifications.registry import ClaimedMessage, Delivery, PermanentError
from gameportal.notifications.schemas import opted_out
from gameportal.notifications.vapid import VapidSigner, b64url_decode

log = structlog.get_logger(__name__)


class TransientPushError(Exception):
    """Some devices could not be reached now; the message is retried for those only."""


@dataclass(frozen=True)
class _Outcome:
    subscription_id: uuid.UUID
    kind: str  # "sent" | "gone" | "refused" | "retry"
    detail: str = ""


class PushChannel:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.signer = (
            VapidSigner(settings.vapid_private_key, settings.vapid_subject)
            if settings.vapid_private_key
            else None
        )
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        # Created on first use, inside the worker's event loop; kept for its connections.
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.settings.push_timeout_seconds,
                follow_redirects=False,
                limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __call__(self, message: ClaimedMessage, delivery: Delivery) -> None:
        if self.signer is None:
            raise PermanentError("Web Push is not configured: set GAMEPORTAL_VAPID_PRIVATE_KEY")
        if message.recipient_user_id is None:
            await fan_out(message, delivery)
            return
        pool = delivery.pool
        opt_outs = await repo.opt_outs(pool, message.recipient_user_id)
        if opted_out(opt_outs, "PUSH", message.payload.get("category")):
            log.info("push_skipped_opted_out", message_id=str(message.id))
            return
        targets = await repo.targets(pool, message.recipient_user_id, message.id)
        if not targets:
            # Nothing to push to is not a failure: the player has no subscribed device.
            log.info("push_no_devices", message_id=str(message.id))
            return
        body = _notification(message)
        outcomes = await asyncio.gather(
            *(self._push(self.signer, row, body, message) for row in targets)
        )
        await self._record(pool, message, outcomes)

    async def _push(
        self, signer: VapidSigner, row: asyncpg.Record, body: bytes, message: ClaimedMessage
    ) -> _Outcome:
        endpoint: str = row["endpoint"]
        try:
            encrypted = http_ece.encrypt(
                body,
                private_key=ec.generate_private_key(ec.SECP256R1()),
                dh=b64url_decode(row["p256dh"]),
                auth_secret=b64url_decode(row["auth"]),
                version="aes128gcm",
            )
        except ValueError as exc:  # keys that passed validation but cannot be used
            return _Outcome(row["id"], "refused", f"cannot encrypt for this device: {exc}")
        headers = {
            "Authorization": signer.authorization(endpoint),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(self.settings.push_ttl_seconds),
            "Urgency": "high" if message.payload.get("category") == "transactional" else "normal",
            # A retry replaces an undelivered earlier copy at the push service.
            "Topic": message.id.hex,
        }
        try:
            response = await self.client.post(endpoint, content=encrypted, headers=headers)
        except httpx.InvalidURL as exc:  # stored before endpoints were checked this strictly
            return _Outcome(row["id"], "refused", f"invalid endpoint: {exc}")
        except httpx.HTTPError as exc:
            return _Outcome(row["id"], "retry", f"{type(exc).__name__}: {exc}")
        status = response.status_code
        if status in (200, 201, 202):
            return _Outcome(row["id"], "sent")
        if status in (404, 410):
            return _Outcome(row["id"], "gone", f"HTTP {status}")
        if status == 429 or status >= 500:
            return _Outcome(row["id"], "retry", f"HTTP {status}")
        # 400 (malformed), 401/403 (our VAPID key is not the one the browser subscribed
        # with), 413: sending the same again cannot help.
        return _Outcome(row["id"], "refused", f"HTTP {status}: {response.text[:200]}")

    async def _record(
        self, pool: asyncpg.Pool, message: ClaimedMessage, outcomes: list[_Outcome]
    ) -> None:
        by_kind: dict[str, list[_Outcome]] = {}
        for outcome in outcomes:
            by_kind.setdefault(outcome.kind, []).append(outcome)
        sent = [o.subscription_id for o in by_kind.get("sent", [])]
        gone = [o.subscription_id for o in by_kind.get("gone", [])]
        retry = by_kind.get("retry", [])
        refused = by_kind.get("refused", [])
        await repo.record_outcomes(
            pool, message.id, sent=sent, gone=gone, remember_sent=bool(retry)
        )
        if gone:
            log.info("push_subscriptions_removed", count=len(gone), reason="gone")
        for outcome in refused:
            log.warning(
                "push_refused",
                message_id=str(message.id),
                subscription_id=str(outcome.subscription_id),
                detail=outcome.detail,
            )
        if retry:
            raise TransientPushError(
                f"{len(retry)} device(s) not reached, will retry: {retry[0].detail}"
            )
        if refused and not sent and not gone:
            raise PermanentError(f"every device refused the push: {refused[0].detail}")


def _notification(message: ClaimedMessage) -> bytes:
    """What the service worker's `push` event reads: `event.data.json()`. The id lets it
    use `tag` so a repeated push replaces the notification instead of adding one."""
    payload: dict[str, Any] = {"id": str(message.id), **message.payload}
    return orjson.dumps(payload)
