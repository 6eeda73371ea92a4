"""
End-to-end tests of the durable store's hardening, through the real service: ``twist
hooks`` in a child process on a real SQLite file, tokens made by the real ``twisted-hooks``
command, a real receiver on ``127.0.0.1``.

- the SQLite file (and its ``-wal`` and ``-shm`` files) is created readable by its owner
  only, whatever the umask, and an existing file other users may read is warned about;
- SIGTERM gives back at once the deliveries claimed but not yet attempted, so a restart
  delivers them without waiting for their lease.

The service, receiver and ``wait_for`` helpers are those of ``tests/test_service_e2e.py``.
Every child process is killed when its test ends; every wait has a deadline.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_service_e2e import Receiver, Service, wait_for


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
