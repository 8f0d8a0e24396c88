"""A real `gameportal worker` process through database outages and shutdowns: PostgreSQL
stopped or crashed under it with mail in flight (tests/faults.py), started while the
database is down, an outcome the database refuses to record, SIGTERM with deliveries
running or hung. Mail goes to an SMTP server on loopback that counts what it receives per
message, so a message sent twice shows."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.faults import StoppablePostgres
from tests.net import free_port
from tests.notifications.worker_process import (
    CountingSmtp,
    children,
    counting_smtp,
    log_events,
    named,
    queue_mail,
    start_worker,
    statuses,
    until,
)


@pytest.fixture
def smtp() -> Iterator[tuple[CountingSmtp, int]]:
    with counting_smtp(delay=0.15) as server:
        yield server


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _no_tracebacks(log: Path) -> None:
    raw = [e["raw"] for e in log_events(log) if "raw" in e]
    assert not raw, "\n".join(raw)


async def _overdue(url: str, slack: float) -> int:
    """Messages PROCESSING more than `slack` seconds past their lease."""
    conn = await asyncpg.connect(url)
    try:
        found: int = await conn.fetchval(
            "SELECT count(*) FROM messages WHERE status = 'PROCESSING' "
            "AND lease_expires_at < now() - make_interval(secs => $1)",
            slack,
        )
        return found
    finally:
        await conn.close()


@pytest.mark.parametrize("how", ["stop", "kill"])
async def test_the_worker_rides_out_an_outage_with_mail_in_flight(
    how: str,
    stoppable_pg: StoppablePostgres,
    stoppable_database_url: str,
    smtp: tuple[CountingSmtp, int],
    tmp_path: Path,
) -> None:
    url, (server, port) = stoppable_database_url, smtp
    ids = await queue_mail(url, 60)
    log = tmp_path / "worker.log"
    # A lease shorter than the outage: held messages' leases run out while it lasts.
    proc = start_worker(url, log, "--types", "EMAIL", "--lease-seconds", "3", smtp_port=port)
    try:
        await until(lambda: server.total >= 10, within=30)
        (stoppable_pg.kill if how == "kill" else stoppable_pg.stop)()
        try:
            await asyncio.sleep(4)
            assert proc.poll() is None, log.read_text()
        finally:
            stoppable_pg.start()

        async def all_sent() -> bool:
            return await statuses(url) == {"SENT": 60}

        # Messages whose handler met the outage are retried 2.5-5 s later (backoff).
        await until(all_sent, within=30, every=0.2)
        assert proc.poll() is None, log.read_text()
    finally:
        _stop(proc)
    # Each message reached the mail server once: those delivered before or during the
    # outage were recorded afterwards, not sent again.
    assert server.received == {str(i): 1 for i in ids}
    assert len(named(log, "database_unavailable")) == 1, log.read_text()
    [back] = named(log, "database_available")
    assert back["outage_s"] >= 4 and back["failed_attempts"] >= 2
    _no_tracebacks(log)


async def test_the_worker_of_serve_rides_out_an_outage_without_a_restart(
    stoppable_pg: StoppablePostgres,
    stoppable_database_url: str,
    smtp: tuple[CountingSmtp, int],
    tmp_path: Path,
) -> None:
    url, (server, port) = stoppable_database_url, smtp
    log = tmp_path / "serve.log"
    proc = start_worker(
        url, log, "--port", str(free_port()), smtp_port=port, command="serve",
        GAMEPORTAL_DATA_DIR=str(tmp_path / "data"),
    )  # fmt: skip

    def worker() -> int | None:
        found = [pid for pid, cmd in children(proc.pid).items() if "worker" in cmd]
        return found[0] if found else None

    try:
        await until(worker, within=30)
        first = worker()
        ids = await queue_mail(url, 30)
        await until(lambda: server.total >= 5, within=30)
        stoppable_pg.kill()
        try:
            await asyncio.sleep(3)
        finally:
            stoppable_pg.start()

        async def all_sent() -> bool:
            return await statuses(url) == {"SENT": 30}

        await until(all_sent, within=30, every=0.2)
        assert worker() == first  # the same process all along: it never exited
    finally:
        _stop(proc)
    assert server.received == {str(i): 1 for i in ids}
    assert not named(log, "child_exited"), log.read_text()


async def test_a_worker_started_while_the_database_is_down_waits_for_it(
    stoppable_pg: StoppablePostgres,
    stoppable_database_url: str,
    smtp: tuple[CountingSmtp, int],
    tmp_path: Path,
) -> None:
    url, (server, port) = stoppable_database_url, smtp
    ids = await queue_mail(url, 5)
    log = tmp_path / "worker.log"
    stoppable_pg.stop()
    try:
        proc = start_worker(url, log, "--types", "EMAIL", smtp_port=port)
        try:
            await until(lambda: named(log, "database_unavailable"), within=30)
            await asyncio.sleep(1.5)  # retrying all along, quietly
            assert proc.poll() is None, log.read_text()
        finally:
            stoppable_pg.start()

        async def all_sent() -> bool:
            return await statuses(url) == {"SENT": 5}

        await until(all_sent, within=30, every=0.2)
    finally:
        _stop(proc)
    assert proc.returncode == 0
    assert server.received == {str(i): 1 for i in ids}
    [waiting] = named(log, "database_unavailable")
    assert waiting["action"] == "waiting for it"
    [connected] = named(log, "database_available")
    assert connected["failed_attempts"] >= 2
    _no_tracebacks(log)


# One slot: if the unrecorded message kept it, nothing else would be delivered. Eight: the
# outcomes are written together, and the one refused must not take the others with it
# (they would run out their leases and be delivered twice).
@pytest.mark.parametrize("slots", ["1", "8"])
async def test_an_outcome_the_database_refuses_frees_the_slot_and_lets_the_lease_run_out(
    stoppable_database_url: str, smtp: tuple[CountingSmtp, int], tmp_path: Path, slots: str
) -> None:
    url, (server, port) = stoppable_database_url, smtp
    ids = await queue_mail(url, 8)
    poisoned = ids[0]
    conn = await asyncpg.connect(url)
    # The database is up, but refuses to mark this one message SENT (a real error of a
    # real statement, as a failing disk or a broken trigger would give).
    await conn.execute(
        f"""
        CREATE FUNCTION refuse_sent() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'cannot record this outcome'; END $$;
        CREATE TRIGGER refuse_sent BEFORE UPDATE ON messages FOR EACH ROW
        WHEN (OLD.id = '{poisoned}' AND NEW.status = 'SENT') EXECUTE FUNCTION refuse_sent();
        """
    )
    log = tmp_path / "worker.log"
    proc = start_worker(
        url, log, "--types", "EMAIL", "--concurrency", slots, "--batch", slots,
        "--lease-seconds", "2", smtp_port=port,
    )  # fmt: skip
    try:

        async def others_sent_and_poisoned_taken_back() -> bool:
            assert await _overdue(url, slack=5 + 1) == 0  # the reaper runs every 5 s
            counts = await statuses(url)
            retried = await conn.fetchval(
                "SELECT retry_count FROM messages WHERE id = $1", poisoned
            )
            return counts.get("SENT", 0) == 7 and retried >= 1

        await until(others_sent_and_poisoned_taken_back, within=30, every=0.2)
        await conn.execute("DROP TRIGGER refuse_sent ON messages")

        async def all_sent() -> bool:
            assert await _overdue(url, slack=5 + 1) == 0
            return await statuses(url) == {"SENT": 8}

        await until(all_sent, within=30, every=0.2)
        assert proc.poll() is None
    finally:
        _stop(proc)
        await conn.close()
    # Its lease was let run out, so it was delivered again: the cost of an outcome that
    # cannot be written. Every other message once.
    assert server.received[str(poisoned)] >= 2
    assert {i: server.received[str(i)] for i in ids[1:]} == {i: 1 for i in ids[1:]}
    assert [e["message_id"] for e in named(log, "outcome_not_recorded")][:1] == [str(poisoned)]
    assert not named(log, "database_unavailable")  # the database was up all along
    _no_tracebacks(log)


async def test_sigterm_lets_running_deliveries_finish_and_starts_no_new_ones(
    database_url: str, tmp_path: Path
) -> None:
    with counting_smtp(delay=1.0) as (server, port):
        ids = await queue_mail(database_url, 10)
        log = tmp_path / "worker.log"
        proc = start_worker(
            database_url, log, "--types", "EMAIL", "--concurrency", "2", smtp_port=port,
            GAMEPORTAL_WORKER_SHUTDOWN_GRACE_SECONDS="5",
        )  # fmt: skip
        try:
            await until(lambda: server.conversations == 2, within=30)
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(proc.wait, 20) == 0
        finally:
            _stop(proc)
        started = server.conversations
    assert started == 2  # the eight it held and had not started were not started
    assert sum(server.received.values()) == 2
    counts = await statuses(database_url)
    assert counts == {"SENT": 2, "PENDING": 8}, counts
    conn = await asyncpg.connect(database_url)
    try:
        given_back = await conn.fetch(
            "SELECT id, retry_count FROM messages WHERE status = 'PENDING'"
        )
    finally:
        await conn.close()
    assert {r["id"] for r in given_back} <= set(ids)
    assert all(r["retry_count"] == 0 for r in given_back)  # given back, not counted as tries


async def test_sigterm_with_a_hung_mail_server_exits_within_the_grace_and_loses_nothing(
    database_url: str, tmp_path: Path
) -> None:
    grace = 2.0
    with counting_smtp() as (server, port):
        server.hang = True  # never answers the end of a message
        await queue_mail(database_url, 4)
        log = tmp_path / "worker.log"
        proc = start_worker(
            database_url, log, "--types", "EMAIL", "--concurrency", "2", smtp_port=port,
            GAMEPORTAL_WORKER_SHUTDOWN_GRACE_SECONDS=str(grace),
            GAMEPORTAL_SMTP_TIMEOUT_SECONDS="20",
        )  # fmt: skip
        try:
            await until(lambda: server.conversations == 2, within=30)
            await asyncio.sleep(0.3)  # both are waiting for the server's answer
            asked = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(proc.wait, 30)
            took = time.monotonic() - asked
        finally:
            _stop(proc)
        assert server.conversations == 2
    assert code == 0
    # The grace, and a second for the process to end (under a loaded test machine).
    assert took < grace + 1.0, f"the worker took {took:.1f} s to stop"
    # The two cut short are given back with the others, to be sent later.
    assert await statuses(database_url) == {"PENDING": 4}
    assert [e["count"] for e in named(log, "deliveries_cancelled")] == [2]
