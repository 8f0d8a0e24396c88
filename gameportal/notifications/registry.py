"""Handlers by message type: a domain registers what it processes, the worker stays as is."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg


class PermanentError(Exception):
    """The message can never succeed (an invalid address, a gone push endpoint, a payload
    that makes no sense): it fails at once instead of being retried."""


class RetryLater(Exception):
    """A temporary failure on the handler's own schedule (SMTP's, which lasts days): the
    message is tried again after `delay`, and the attempt does not use up one of its
    `max_attempts` (the handler raises PermanentError when its schedule is over)."""

    def __init__(self, reason: str, *, delay: timedelta) -> None:
        super().__init__(reason)
        self.delay = delay


@dataclass(frozen=True)
class ClaimedMessage:
    id: uuid.UUID
    type: str
    recipient_user_id: uuid.UUID | None
    payload: dict[str, Any]
    priority: int
    retry_count: int
    max_attempts: int
    scheduled_at: datetime
    created_at: datetime


@dataclass(frozen=True)
class Delivery:
    """What a handler may use besides its message: the database, and who holds it."""

    pool: asyncpg.Pool
    worker: str


Handler = Callable[[ClaimedMessage, Delivery], Awaitable[None]]

_handlers: dict[str, Handler] = {}


def register_handler(message_type: str, handler: Handler) -> None:
    _handlers[message_type] = handler


def unregister_handler(message_type: str) -> None:
    _handlers.pop(message_type, None)


def handler_for(message_type: str) -> Handler | None:
    return _handlers.get(message_type)


# A handler may also have `on_final_failure(conn, message, error)`: it runs in the
# transaction that marks its message FAILED for good (a permanent error, the last attempt
# failed, or the last lease ran out), so that what the message was for can be marked failed
# with it (media left PROCESSING otherwise). If it raises, the message is FAILED all the same.
FinalFailureHook = Callable[[asyncpg.Connection, ClaimedMessage, str], Awaitable[None]]


def final_failure_hook(message_type: str) -> FinalFailureHook | None:
    hook: FinalFailureHook | None = getattr(_handlers.get(message_type), "on_final_failure", None)
    return hook


def registered_types() -> list[str]:
    return sorted(_handlers)


Periodic = Callable[[asyncpg.Pool], Awaitable[None]]


@dataclass(frozen=True)
class PeriodicTask:
    """Housekeeping every worker runs now and then (publishing scheduled content,
    cleaning abandoned uploads). It must be safe to run in many workers at once."""

    name: str
    every_seconds: float
    run: Periodic


_periodic: dict[str, PeriodicTask] = {}


def register_periodic(name: str, every_seconds: float, run: Periodic) -> None:
    _periodic[name] = PeriodicTask(name, every_seconds, run)


def unregister_periodic(name: str) -> None:
    _periodic.pop(name, None)


def periodic_tasks() -> list[PeriodicTask]:
    return list(_periodic.values())


async def close_handlers() -> None:
    """Let handlers that hold connections (an HTTP client) close them on shutdown."""
    for handler in _handlers.values():
        aclose = getattr(handler, "aclose", None)
        if aclose is not None:
            await aclose()
