"""The test harness itself: a run leaves nothing in the temporary folder."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_a_test_run_leaves_nothing_in_the_temporary_folder() -> None:
    # Short: PostgreSQL's socket must fit in a Unix socket path (about 100 bytes).
    scratch = Path(tempfile.mkdtemp(prefix="h"))
    env = {**os.environ, "TMPDIR": str(scratch)}
    env.pop("PYTEST_XDIST_WORKER", None)
    # A database, media and outbox files, pytest's tmp_path: all written, all removed.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/notifications/test_outbox.py",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout.decode()[-2000:]
    assert list(scratch.iterdir()) == []
