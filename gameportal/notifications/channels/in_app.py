"""In-app messages: delivered means visible in the inbox (the message is SENT), and
announced on a NOTIFY channel that live streams listen to."""

from __future__ import annotations

import orjson

from gameportal.notifications.registry import ClaimedMessage, Delivery

INBOX_CHANNEL = "gameportal_inbox"


async def deliver_in_app(message: ClaimedMessage, delivery: Delivery) -> None:
    recipient = str(message.recipient_user_id) if message.recipient_user_id else None
    announcement = orjson.dumps({"id": str(message.id), "to": recipient}).decode()
    await delivery.pool.execute("SELECT pg_notify($1, $2)", INBOX_CHANNEL, announcement)
