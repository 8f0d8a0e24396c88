"""Handlers the tests load into real worker processes (`gameportal worker --import ...`)."""

import asyncio
import os

from gameportal.notifications.registry import ClaimedMessage, Delivery, register_handler

SLOW_SECONDS = float(os.environ.get("TEST_HANDLER_SECONDS", "30"))


async def slow(message: ClaimedMessage, _: Delivery) -> None:
    await asyncio.sleep(SLOW_SECONDS)


register_handler("MEDIA_PROCESSING", slow)
