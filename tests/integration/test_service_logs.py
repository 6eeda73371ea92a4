"""
End-to-end tests of the service's log: the real ``twist hooks`` in a child process (as
:mod:`tests._service` runs it) on a temporary SQLite file, delivering over real
sockets to a receiver on ``127.0.0.1``; its standard output and error, which is the log,
are read back.

They pin what an operator sees: one line per delivery outcome (delivered, failed with its
retry time, dead) naming the recipient by origin and path only; no secret of a recipient
URL (a password, a query-string key, a fragment) anywhere in the log; none of Twisted's
"Starting factory"/"Stopping factory" lines for webhook connections; and the log format
twist chooses when it is not told (JSON, one record per line, when its output is not a
terminal).
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests._service import DEADLINE, Receiver, Request, Service, wait_for
from twisted_hooks.webhooks.signing import generate_secret

#: Secrets in recipient URLs; none may reach the log.
PASSWORD = "pw-e2e-Yh38Qs"
OK_KEY = "okkey-e2e-Pq02Lm"
FAIL_KEY = "failkey-e2e-Vb71Xc"
STORED_KEY = "storedkey-e2e-Ja55Rt"
FRAGMENT = "frag-e2e-Nd40Kw"
SECRETS = (PASSWORD, OK_KEY, FAIL_KEY, STORED_KEY, FRAGMENT)

#: One retry, half a second after the first failure.
CONFIG = """\
[hooks]
timeout = 3
lease = 4
poll_interval = 0.2
shutdown_timeout = 5

[retry]
schedule = 0.5
jitter = 0

[validators]
ports =
allowed_networks = 127.0.0.0/8
"""


def answer_by_path(request: Request) -> int:
    """500 for paths under ``/fail``, 204 for any other."""
    return 500 if request.path.startswith("/fail") else 204


class LoggedService(Service):
    """The service started with chosen ``twist`` options (``--log-format`` or none)."""

    def __init__(self, directory: Path, twist_options: Sequence[str]) -> None:
        super().__init__(directory, config=CONFIG, twist_options=twist_options)

    def store_subscriber(self, event: str, url: str) -> str:
        """Write a subscriber straight into the database, as one stored before its URL's
        kind was refused would be found there (the service must not be running yet)."""
        self.cli("migrate")
        subscriber_id = str(uuid.uuid4())
        now = time.time()
        connection = sqlite3.connect(self.database.removeprefix("sqlite:"))
        try:
            with connection:
                connection.execute(
                    "INSERT INTO subscribers (id, event, url, secret, digest, content_type,"
                    " owner, active, headers, previous_secrets, max_concurrency, rate_limit,"
                    " created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, 'sha256', 'application/json', NULL, 1, '[]', '[]',"
                    " NULL, NULL, ?, ?)",
                    (subscriber_id, event, url, generate_secret(), now, now),
                )
        finally:
            connection.close()
        return subscriber_id


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver(answer=answer_by_path)
    yield receiver
    receiver.close()


def deliveries(service: Service, token: str, status: str) -> list[dict[str, Any]]:
    """The deliveries the API lists with ``status``."""
    code, _, listed = service.request("GET", f"/deliveries/?status={status}", token)
    assert code == 200, listed
    return listed  # type: ignore[no-any-return]


def test_outcome_lines_and_no_secret_in_the_log(tmp_path: Path, receiver: Receiver) -> None:
    """Through the real service: a delivered, a failed-then-dead and a refused delivery
    (a stored URL with a password) each log their outcome lines, naming the recipient by
    origin and path, and after all of them the log holds no password, no query-string
    key, no fragment, and no "factory" line for webhook connections."""
    service = LoggedService(tmp_path, ["--log-format=text"])
    stored_url = (
        f"http://alice:{PASSWORD}@{receiver.base.removeprefix('http://')}/stored"
        f"?api_key={STORED_KEY}"
    )
    service.store_subscriber("order.*", stored_url)
    try:
        service.start()
        token = service.token("alice")
        for path, key in (("/ok", OK_KEY), ("/fail", FAIL_KEY)):
            url = f"{receiver.base}{path}?api_key={key}#{FRAGMENT}"
            status, _, hook = service.request(
                "POST", "/hooks/", token, {"event": "order.*", "url": url}
            )
            assert status == 201, hook
        status, _, published = service.request(
            "POST", "/events/", token, {"event": "order.created", "data": {"n": 1}}
        )
        assert (status, published["deliveries"]) == (202, 3), published

        # The stored subscriber has no owner: its delivery is not alice's to list.
        wait_for(lambda: len(deliveries(service, token, "delivered")) == 1, "one delivered")
        wait_for(lambda: len(deliveries(service, token, "dead")) == 1, "one dead")
        [delivered] = deliveries(service, token, "delivered")
        [dead] = deliveries(service, token, "dead")

        def outcome_lines() -> bool:
            found = re.findall(r"#(?:info|warn)\] (?:delivered|failed|dead) ", service.log())
            return len(found) >= 4

        wait_for(outcome_lines, "the outcome lines in the log")
        assert service.terminate() in (0, -signal.SIGTERM)
    finally:
        service.kill()

    log = service.log()
    lines = [
        line
        for line in log.splitlines()
        if re.search(r"#(info|warn)\] (delivered|failed|dead) order\.created ", line)
    ]
    for secret in SECRETS:
        assert secret not in log, (secret, log)
    assert "_HTTP11ClientFactory" not in log, log
    factory = [line for line in log.splitlines() if "factory" in line.lower()]
    # The API's own listening factory starts and stops once; no connection logs a line.
    assert all("Site" in line for line in factory), factory
    assert len(factory) <= 2, factory
    assert receiver.paths().count("/ok?api_key=" + OK_KEY) == 1
    assert not any(path.startswith("/stored") for path in receiver.paths())

    def only(pattern: str) -> str:
        found = [line for line in lines if re.search(pattern, line)]
        assert len(found) == 1, (pattern, lines)
        return found[0]

    ok = only(rf"\[twisted_hooks\.webhooks#info\] delivered order\.created {delivered['id']} ")
    assert re.search(rf" to {receiver.base}/ok in \d+ ms$", ok), ok
    fail_id = dead["id"]
    failed = only(rf"#warn\] failed order\.created {fail_id} ")
    assert re.search(
        rf" to {receiver.base}/fail on attempt 1 \(500 Internal Server Error\), "
        r"retry at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$",
        failed,
    ), failed
    gone = only(rf"#warn\] dead order\.created {fail_id} ")
    assert gone.endswith(
        f" to {receiver.base}/fail after 2 attempt(s) (500 Internal Server Error)"
    ), gone
    refused = only(rf"#warn\] dead order\.created [-0-9a-f]{{36}} to {receiver.base}/stored ")
    assert f" to {receiver.base}/stored after 1 attempt(s) (Refused recipient" in refused
    assert len(lines) == 4, lines


def test_default_format_is_json_when_the_output_is_not_a_terminal(
    tmp_path: Path, receiver: Receiver
) -> None:
    """Without ``--log-format``, twist writes JSON records (each after an ASCII record
    separator, one per line) when its output is not a terminal; a delivery's record has
    the stable fields, its URL origin and path only."""
    service = LoggedService(tmp_path, [])
    try:
        service.start()
        token = service.token("alice")
        url = f"{receiver.base}/ok?api_key={OK_KEY}"
        status, _, hook = service.request(
            "POST", "/hooks/", token, {"event": "order.*", "url": url}
        )
        assert status == 201, hook
        status, _, published = service.request(
            "POST", "/events/", token, {"event": "order.created", "data": {"n": 1}}
        )
        assert status == 202, published

        def delivered_record() -> dict[str, Any] | None:
            for text in service.log().split("\x1e"):
                if '"delivered {event}' in text:
                    record: dict[str, Any] = json.loads(text)
                    return record
            return None

        record = wait_for(delivered_record, "the delivered record", DEADLINE)
        assert service.terminate() in (0, -signal.SIGTERM)
    finally:
        service.kill()
    log = service.log()
    assert log.startswith("\x1e{"), log[:200]
    assert OK_KEY not in log
    assert record["log_format"] == "delivered {event} {delivery_id} to {url} in {elapsed:.0f} ms"
    assert record["log_level"]["name"] == "info"
    assert record["log_namespace"] == "twisted_hooks.webhooks"
    assert record["event"] == "order.created"
    assert record["url"] == f"{receiver.base}/ok"
    assert record["attempt"] == 1
    assert record["status_code"] == 204
    assert record["error_kind"] is None
    assert isinstance(record["elapsed"], float)
    uuid.UUID(record["delivery_id"])
