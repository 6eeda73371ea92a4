"""
End-to-end tests of the durable store's hardening, through the real service: ``twist
hooks`` in a child process on a real SQLite file, tokens made by the real ``twisted-hooks``
command, a real receiver on ``127.0.0.1``.

- the SQLite file (and its ``-wal`` and ``-shm`` files) is created readable by its owner
  only, whatever the umask, and an existing file other users may read is warned about;
- SIGTERM gives back at once the deliveries claimed but not yet attempted, so a restart
  delivers them without waiting for their lease.

The service, receiver and ``wait_for`` helpers are those of ``tests/_service.py``.
Every child process is killed when its test ends; every wait has a deadline.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._service import DEADLINE, Receiver, Service, wait_for


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


def mode_of(path: Path) -> int:
    """The permission bits of ``path``."""
    return stat.S_IMODE(path.stat().st_mode)


# -- the file's modes ------------------------------------------------------------------------


def test_new_sqlite_file_is_owner_only(tmp_path: Path, receiver: Receiver) -> None:
    """The service started with an umask of 000 on a new SQLite path creates the database
    file mode 0600, and its -wal and -shm files (made by SQLite while it runs) 0600 too;
    no warning about the file's mode is logged."""
    service = Service(tmp_path)
    database = tmp_path / "hooks.sqlite3"
    assert not database.exists()
    old_umask = os.umask(0)
    try:
        service.start()  # the child inherits the umask
    finally:
        os.umask(old_umask)
    try:
        wal = Path(f"{database}-wal")
        shm = Path(f"{database}-shm")
        # A write through the API makes sure the WAL and the shared memory file exist.
        token = service.token("alice")
        status, _, _ = service.request(
            "POST", "/hooks/", token, {"event": "a.*", "url": receiver.url}
        )
        assert status == 201
        wait_for(lambda: wal.exists() and shm.exists(), "the -wal and -shm files")
        assert {p.name: oct(mode_of(p)) for p in (database, wal, shm)} == {
            database.name: "0o600",
            wal.name: "0o600",
            shm.name: "0o600",
        }
        assert "chmod 600" not in service.log()
        assert service.terminate() in (0, -signal.SIGTERM)
    finally:
        service.kill()


def test_existing_loose_file_is_warned_about(tmp_path: Path) -> None:
    """A database file other users may read (mode 0644, as older versions left it) is
    not changed, but the service says so at start, in one line naming the file and the
    command that fixes it; after that chmod, a restart says nothing."""
    service = Service(tmp_path)
    database = tmp_path / "hooks.sqlite3"
    sqlite3.connect(database).close()
    database.chmod(0o644)
    try:
        service.start()
        (line,) = [line for line in service.log().splitlines() if "chmod 600" in line]
        assert str(database) in line
        assert "mode 644" in line
        assert line.rstrip().endswith(f"chmod 600 {database}")
        assert mode_of(database) == 0o644
        assert service.terminate() in (0, -signal.SIGTERM)
        database.chmod(0o600)
        service.start()
        assert "chmod 600" not in service.log()
        assert service.terminate() in (0, -signal.SIGTERM)
    finally:
        service.kill()


# -- SIGTERM gives back what it has not started ----------------------------------------------

#: A service with few attempt slots, so that most claimed deliveries wait for a connection
#: slot to their (one) host, and a lease far longer than the test may take.
GIVE_BACK_CONFIG = """\
[hooks]
timeout = 10
lease = 120
poll_interval = 0.2
max_concurrency = 16
max_per_host = 2
shutdown_timeout = 5

[retry]
schedule = 0.5, 0.5, 0.5, 0.5, 0.5
jitter = 0

[validators]
ports =
allowed_networks = 127.0.0.0/8
"""

#: Deliveries published before the SIGTERM.
COUNT = 500


def count_in_flight(database: Path) -> int:
    """How many deliveries of the SQLite file are in flight (read while it runs, or not)."""
    connection = sqlite3.connect(database, timeout=DEADLINE)
    try:
        (count,) = connection.execute(
            "SELECT COUNT(*) FROM deliveries WHERE status = 'in_flight'"
        ).fetchone()
    finally:
        connection.close()
    return int(count)


def test_sigterm_gives_back_claimed_deliveries(tmp_path: Path, receiver: Receiver) -> None:
    """
    500 deliveries to a receiver that answers after 2 s, with 16 attempt slots, 2 per
    host, a 120 s lease and a 5 s shutdown_timeout: 16 are claimed, 2 POSTed, 14 wait
    for a slot. On SIGTERM the 2 under way finish and are recorded, no other attempt
    starts, and the 14 waiting go back to the store at once: the service stops well
    within its shutdown_timeout, saying nothing is left to a lease, and once it has
    exited no delivery of the SQLite file is in flight. Restarted, the service delivers
    its first delivery within 10 s, and every one of the 500 well within the lease.
    """
    service = Service(tmp_path)
    service.config.write_text(GIVE_BACK_CONFIG)
    database = tmp_path / "hooks.sqlite3"
    try:
        service.start()
        token = service.token("alice")
        status, _, _ = service.request(
            "POST", "/hooks/", token, {"event": "job.*", "url": receiver.url}
        )
        assert status == 201
        receiver.delay = 2.0
        for number in range(COUNT):
            status, _, _ = service.request(
                "POST", "/events/", token, {"event": "job.done", "data": {"n": number}}
            )
            assert status == 202
        wait_for(lambda: count_in_flight(database) == 16, "16 deliveries claimed")
        wait_for(lambda: receiver.started >= 1, "an attempt under way")
        with receiver.lock:
            before = len(receiver.received)
            started = receiver.started

        began = time.monotonic()
        assert service.terminate() in (0, -signal.SIGTERM)
        stopping = time.monotonic() - began
        log = service.log()
        assert "Unhandled error" not in log
        assert "Traceback" not in log
        assert "stay in the store under their lease" not in log
        assert stopping < 5, stopping
        assert count_in_flight(database) == 0
        with receiver.lock:
            delivered_before = len(receiver.received)
            # The attempts under way were let finish; none started after the SIGTERM.
            assert delivered_before > before
            assert receiver.started <= started + 2

        receiver.delay = 0.0
        restarted = time.monotonic()
        service.start()
        wait_for(
            lambda: len(receiver.received) > delivered_before,
            "the first delivery after the restart",
        )
        first = time.monotonic() - restarted
        assert first < 10, first

        def every_one() -> bool:
            return len({body["n"] for body in receiver.bodies()}) == COUNT

        wait_for(every_one, "every delivery", deadline=60)
        everything = time.monotonic() - restarted
        with receiver.lock:
            ids = {headers["hook-delivery"] for headers, _ in receiver.received}
        assert len(ids) == COUNT
        assert everything < 60
        print(
            f"\nSIGTERM: stopped in {stopping:.2f} s with {delivered_before} delivered;"
            f" after the restart the first delivery came in {first:.2f} s, all {COUNT} in"
            f" {everything:.2f} s"
        )
        assert service.terminate() in (0, -signal.SIGTERM)
    finally:
        service.kill()
