"""A no-op handler for measuring the queue itself: `--import benchmarks.noop_handler`."""

from gameportal.notifications.registry import ClaimedMessage, Delivery, register_handler


async def noop(message: ClaimedMessage, _: Delivery) -> None:
    return None


register_handler("IN_APP", noop)
