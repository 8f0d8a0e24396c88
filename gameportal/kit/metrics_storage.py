"""prometheus_client's multiprocess storage with the process id cached.

In multiprocess mode (PROMETHEUS_MULTIPROC_DIR, as `serve` runs) every increment of every
metric checks whether the process forked by asking `os.getpid()`, a system call; a
request increments three values (its counter, its histogram's sum and bucket): about 3%
of a small request's time, profiled. The id here is read once and again in a child
after each fork (`os.register_at_fork`), so the check sees every fork as before."""

from __future__ import annotations

import os

from prometheus_client import values

_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


def current_process_id() -> int:
    return _pid


def use_cached_process_id() -> None:
    """Make metrics created from now on keep their values in the multiprocess files, with
    the cached id. Call before they are created (gameportal/__init__.py does)."""
    if getattr(values.ValueClass, "_cached_process_id", False):
        return
    value_class = values.MultiProcessValue(  # type: ignore[no-untyped-call]
        process_identifier=current_process_id
    )
    value_class._cached_process_id = True
    values.ValueClass = value_class


os.register_at_fork(after_in_child=_forked)
