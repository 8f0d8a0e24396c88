"""Hearing that the server was asked to stop, before it waits for open responses.

On SIGTERM or SIGINT uvicorn stops accepting, then waits for every open response to end
(up to its graceful timeout) and only then runs the lifespan's shutdown. A response that
never ends by itself, such as a live event stream, would hold the process until that
timeout (forever without one), and the lifespan is too late to end it. So whoever serves
such responses chains a callback onto the server's own signal handler."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable
from types import FrameType

EXIT_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def on_exit_signal(callback: Callable[[], None]) -> Callable[[], None]:
    """Run `callback` on the running event loop as soon as SIGTERM or SIGINT arrives, then
    hand the signal to the handler that was there (the server's). Only signals that a
    Python handler already handles are chained: a process nobody serves keeps its default
    behaviour. Returns a function that puts the previous handlers back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None  # signal handlers belong to the main thread only
    loop = asyncio.get_running_loop()
    chained: dict[int, tuple[Callable[[int, FrameType | None], object], object]] = {}
    for signum in EXIT_SIGNALS:
        previous = signal.getsignal(signum)
        if not callable(previous):
            continue

        def handler(
            sig: int,
            frame: FrameType | None,
            previous: Callable[[int, FrameType | None], object] = previous,
        ) -> None:
            # A signal handler may interrupt the loop anywhere: hand the work to the loop.
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to end
                loop.call_soon_threadsafe(callback)
            previous(sig, frame)

        signal.signal(signum, handler)
        chained[signum] = (handler, previous)

    def restore() -> None:
        for signum, (handler, previous) in chained.items():
            if signal.getsignal(signum) is handler:  # nobody installed another since
                signal.signal(signum, previous)  # type: ignore[arg-type]

    return restore
