"""What `gameportal serve` runs beside the API: the queue worker as a child process, kept
running, and the folder that lets every process's Prometheus metrics be read as one."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when `serve` dies, even by SIGKILL, so no worker
    outlives the server it belongs to. Linux only; elsewhere the child outlives a kill."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class ChildProcess:
    """A command run and restarted (with backoff) until `stop()`.

    The child gets its own session, so a Ctrl-C on the terminal reaches `serve` only, and
    `serve` decides when the child stops: after the API has stopped taking requests.
    """

    def __init__(self, name: str, command: list[str], *, stop_timeout: float = 30.0) -> None:
        self.name = name
        self.command = command
        self.stop_timeout = stop_timeout
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        # The thread that starts the child must live as long as it: PDEATHSIG follows the
        # starting thread, not the process.
        self._thread = threading.Thread(target=self._keep_running, name=self.name, daemon=True)
        self._thread.start()

    def _keep_running(self) -> None:
        delay = 1.0
        while True:
            with self._lock:
                if self._stopping.is_set():
                    return
                started = time.monotonic()
                self._proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                    self.command, start_new_session=True, preexec_fn=_die_with_parent
                )
            code = self._proc.wait()
            # Imported here, not at the top: prometheus_client picks its storage when first
            # imported, and serve sets PROMETHEUS_MULTIPROC_DIR only after importing us.
            from gameportal.observability import forget_process

            forget_process(self._proc.pid)
            if self._stopping.is_set():
                return
            if time.monotonic() - started > 60:
                delay = 1.0  # it ran a good while: this is a new problem, not the same one
            log.error("child_exited", child=self.name, returncode=code, restart_in_s=delay)
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, 30.0)

    def stop(self) -> None:
        """SIGTERM (the worker finishes or gives back what it holds), then SIGKILL after
        `stop_timeout`."""
        with self._lock:
            self._stopping.set()
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                log.error("child_killed", child=self.name, after_s=self.stop_timeout)
                proc.kill()
                proc.wait()
        if self._thread is not None:
            self._thread.join(timeout=5)


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def metrics_folder() -> Iterator[Path]:
    """A folder where every process of this `serve` (uvicorn workers, queue worker) keeps
    its Prometheus samples, so /metrics in any of them reports them all.

    An operator's own PROMETHEUS_MULTIPROC_DIR is used, emptied of the last run's samples
    first as prometheus_client requires; otherwise a private one is made and removed."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        folder = Path(given)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):
            stale.unlink(missing_ok=True)
        yield folder
        return
    folder = Path(tempfile.mkdtemp(prefix="gameportal-metrics-"))
    os.environ[MULTIPROC_ENV] = str(folder)
    try:
        yield folder
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(folder, ignore_errors=True)
