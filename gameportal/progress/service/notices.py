"""What a player is told of their progress: an unlock, a level-up."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from gameportal.notifications.schemas import opted_out
from gameportal.notifications.service import enqueue_on
from gameportal.progress import rules
from gameportal.progress.repository import updates as repo

CATEGORY = "achievements"
_SHORT = 300  # the longest subject or push text the queue takes


def _short(text: str) -> str:
    return text if len(text) <= _SHORT else text[: _SHORT - 1] + "…"


async def tell_player(
    conn: asyncpg.Connection, user_id: uuid.UUID, outcome: rules.Outcome, *, game_title: str
) -> None:
    """One in-app message per unlock and per level-up (and a push where the player has a
    device subscribed), unless they opted out of achievements on that channel. Queued in
    this transaction: they exist only if the unlock does."""
    notes: list[tuple[str, str | None]] = []
    for rule in outcome.unlocked:
        reward = f"+{rule.points} points" if rule.points else None
        body = " ".join(part for part in (rule.description, reward) if part) or None
        notes.append((f"Achievement unlocked: {rule.title}", body))
    if outcome.levelled_up:
        notes.append((f"Level {outcome.state.level} reached in {game_title}", None))
    if not notes:
        return
    reach = await repo.notification_reach(conn, user_id)
    opt_outs = list(reach["opt_outs"])
    in_app = not opted_out(opt_outs, "IN_APP", CATEGORY)
    push = reach["has_push"] and not opted_out(opt_outs, "PUSH", CATEGORY)
    for subject, body in notes:
        if in_app:
            payload: dict[str, Any] = {"subject": _short(subject), "category": CATEGORY}
            if body:
                payload["body"] = body
            await enqueue_on(
                conn, message_type="IN_APP", payload=payload, recipient_user_id=user_id
            )
        if push:
            payload = {"title": _short(subject), "category": CATEGORY}
            if body:
                payload["body"] = _short(body)
            await enqueue_on(conn, message_type="PUSH", payload=payload, recipient_user_id=user_id)
