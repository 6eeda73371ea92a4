"""
End-to-end tests of the HTTP API's input and output hardening, through the real service:
``twist hooks`` in a child process on a real SQLite file, tokens made by the real
``twisted-hooks`` command, requests over real sockets on ``127.0.0.1``.

- numbers have ranges (a tiny ``rate_limit`` once wedged a delivery and made the delivery
  log answer 500), in the API and in the configuration;
- no stored row, however absurd (written into the SQLite file by hand), makes a route
  answer 5xx;
- query-string numbers are ASCII digits (``limit=²`` answered 500);
- the OpenAPI document and the API agree: schemathesis with every check;
- a path that is not UTF-8 gets the API's JSON error;
- answers never echo the request's ``Host`` header; ``[hooks] base_url`` starts their URLs.

The service, receiver and ``wait_for`` helpers are those of ``tests/_service.py``.
Every child process is killed when its test ends; every wait has a deadline.
"""

from __future__ import annotations

import datetime
import http.client
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._service import DEADLINE, ROOT, Receiver, Service, run_failing, wait_for


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    service = Service(tmp_path)
    service.start()
    yield service
    service.kill()


def raw_request(
    service: Service, method: str, path: str, headers: dict[str, str | bytes] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """A request whose path and headers are sent exactly as given (no quoting, no Host
    header of the client's own making)."""
    port = int(service.base.rsplit(":", 1)[1].strip("/"))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def get(service: Service, path: str, token: str, host: str | None = None) -> tuple[int, Any]:
    """GET with a token and, if given, a forged Host header; the status and the JSON."""
    request = urllib.request.Request(service.base + path.lstrip("/"))
    request.add_header("Authorization", f"Bearer {token}")
    if host is not None:
        request.add_header("Host", host)
    try:
        with urllib.request.urlopen(request, timeout=DEADLINE) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    return status, json.loads(body)


def strict_json(body: bytes) -> Any:
    """Parse JSON refusing NaN and Infinity, which are not JSON."""

    def refuse(name: str) -> Any:
        raise AssertionError(f"the answer holds {name}, which is not JSON")

    return json.loads(body, parse_constant=refuse)


def seconds(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# -- 1. ranges -------------------------------------------------------------------------------


def test_tiny_rate_limit_is_refused_and_the_slowest_one_holds_briefly(
    service: Service, receiver: Receiver
) -> None:
    """rate_limit 1e-300 (which held the second delivery for 1e300 s and made the delivery
    log answer 500) is a 400 naming rate_limit; at the slowest allowed, 0.001 per second,
    the first delivery goes, the second is held at most 1000 s, and the delivery log
    lists both with times it can write."""
    token = service.token("alice")
    status, _, error = service.request(
        "POST", "/hooks/", token, {"event": "job.*", "url": receiver.url, "rate_limit": 1e-300}
    )
    assert (status, error["error"], error["field"]) == (400, "invalid", "rate_limit")
    assert "0.001" in error["detail"]
    status, _, error = service.request(
        "POST", "/hooks/", token, {"event": "job.*", "url": receiver.url, "max_concurrency": 0}
    )
    assert (status, error["field"]) == (400, "max_concurrency")

    status, _, hook = service.request(
        "POST", "/hooks/", token, {"event": "job.*", "url": receiver.url, "rate_limit": 0.001}
    )
    assert status == 201, hook
    began = time.time()
    for number in (1, 2):
        status, _, _ = service.request(
            "POST", "/events/", token, {"event": "job.done", "data": number}
        )
        assert status == 202
    wait_for(lambda: receiver.bodies() == [1], "the first delivery")

    def held() -> list[Any] | None:
        status, _, log = service.request("GET", "/deliveries/", token)
        assert status == 200, log
        assert len(log) == 2, log
        later = [d for d in log if seconds(d["next_attempt_at"]) > time.time() + 60]
        return later or None

    (waiting,) = wait_for(held, "the second delivery to be held by the rate limit")
    assert waiting["status"] != "delivered"
    assert seconds(waiting["next_attempt_at"]) <= began + 1000 + 5
    status, _, detail = service.request("GET", f"/deliveries/{waiting['id']}/", token)
    assert status == 200, detail


def test_configuration_numbers_out_of_range_stop_the_service(tmp_path: Path) -> None:
    """A number outside its range, or not in ASCII digits, in the file or the environment,
    stops the service before it starts with a message naming the file or variable, the
    section and the key."""
    config = tmp_path / "bad.ini"
    for text, named in [
        ("[hooks]\ntimeout = 1e300\n", "[hooks] timeout = '1e300'"),
        ("[hooks]\nmax_per_host = ٣\n", "[hooks] max_per_host = '٣'"),
        ("[retry]\nschedule = 5, 1e300\n", "[retry] schedule = '1e300'"),
        (
            "[hooks]\nsecret = whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n[subscribers]\n"
            'a.* = {"url": "https://example.com/h", "rate_limit": 1e-300}\n',
            "[subscribers] a.*",
        ),
    ]:
        config.write_text(text, encoding="utf-8")
        result = run_failing(["--config", str(config), "--database", f"sqlite:{tmp_path}/db"])
        output = result.stdout + result.stderr
        assert result.returncode not in (0, None), output
        assert f"{config}: {named}" in output, output
    env_result = subprocess.run(
        [sys.executable, "-m", "twisted", "hooks", "--database", f"sqlite:{tmp_path}/db"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        env={**os.environ, "TWISTED_HOOKS_HOOKS_LEASE": "inf"},
    )
    output = env_result.stdout + env_result.stderr
    assert env_result.returncode != 0
    assert "environment variable TWISTED_HOOKS_HOOKS_LEASE: [hooks] lease = 'inf'" in output


# -- 1. stored rows --------------------------------------------------------------------------


def test_absurd_stored_rows_never_answer_5xx(service: Service, receiver: Receiver) -> None:
    """Huge, infinite, negative and non-numeric times, and a tiny rate limit, written into
    the real SQLite file by hand: every route that shows them (the delivery log, one
    delivery with its attempts, the subscriptions, as their owner and as admin) answers
    200 with strict JSON, times clamped to the years 1 to 9999 or null."""
    token = service.token("alice")
    admin = service.token("root", scopes="admin")
    _, _, hook = service.request("POST", "/hooks/", token, {"event": "job.*", "url": receiver.url})
    for number in range(5):
        service.request("POST", "/events/", token, {"event": "job.done", "data": number})
    wait_for(lambda: len(receiver.bodies()) == 5, "the deliveries")

    def all_delivered() -> bool:
        _, _, log = service.request("GET", "/deliveries/", token)
        return [d["status"] for d in log] == ["delivered"] * 5

    wait_for(all_delivered, "the delivery log to say delivered")
    path = service.database.removeprefix("sqlite:")
    database = sqlite3.connect(path, timeout=DEADLINE)
    try:
        ids = [row[0] for row in database.execute("SELECT id FROM deliveries ORDER BY seq")]
        absurd = [
            # created_at, next_attempt_at, finished_at
            (1e300, 1e300, -1e300),
            (9e999, -9e999, 9e999),  # SQLite reads 9e999 as infinity
            (-1e300, 253402300800.0, None),
            ("nan", "soon", "never"),  # text in REAL columns
            (0.0, 1e20, -62135596801.0),
        ]
        for delivery_id, (created, due, finished) in zip(ids, absurd, strict=True):
            database.execute(
                "UPDATE deliveries SET created_at = ?, next_attempt_at = ?, finished_at = ?,"
                " status = 'dead' WHERE id = ?",
                (created, due, finished, delivery_id),
            )
        database.execute(
            "UPDATE attempts SET started_at = 9e999, duration = 1e300, retry_after = -9e999"
            " WHERE delivery_id = ?",
            (ids[0],),
        )
        database.execute(
            "UPDATE attempts SET started_at = 'x', duration = 'y' WHERE delivery_id = ?",
            (ids[1],),
        )
        database.execute(
            "UPDATE subscribers SET rate_limit = 1e-300, created_at = -9e999,"
            " updated_at = 1e300 WHERE id = ?",
            (hook["id"],),
        )
        database.commit()
    finally:
        database.close()

    paths = [
        "/deliveries/",
        "/deliveries/?status=dead",
        f"/deliveries/?hook={hook['id']}",
        "/deliveries/?since=0",
        "/hooks/",
        f"/hooks/{hook['id']}/",
        *(f"/deliveries/{delivery_id}/" for delivery_id in ids),
    ]

    def answered() -> bool:
        _, _, hooks = service.request("GET", "/hooks/", token)
        return hooks[0]["rate_limit"] == 0.001  # the store has re-read the subscriber

    wait_for(answered, "the subscriber with its stored rate limit")
    _, _, (shown_hook,) = service.request("GET", "/hooks/", token)
    assert shown_hook["created_at"] == "0001-01-01T00:00:00Z"
    assert shown_hook["updated_at"] == "9999-12-31T23:59:59Z"
    for who in (token, admin):
        for target in paths:
            status, headers, body = raw_request(
                service, "GET", target, {"Authorization": f"Bearer {who}"}
            )
            assert status == 200, (target, body)
            assert headers["Content-Type"].startswith("application/json")
            strict_json(body)
    _, _, log = service.request("GET", "/deliveries/", token)
    shown = {d["id"]: d for d in log}
    assert shown[ids[0]]["next_attempt_at"] == "9999-12-31T23:59:59Z"
    assert shown[ids[0]]["finished_at"] == "0001-01-01T00:00:00Z"
    assert shown[ids[1]]["next_attempt_at"] == "0001-01-01T00:00:00Z"
    assert shown[ids[3]]["created_at"] is None
    assert shown[ids[3]]["next_attempt_at"] is None
    _, _, first = service.request("GET", f"/deliveries/{ids[0]}/", token)
    attempt = first["attempts"][0]
    assert attempt["started_at"] == "9999-12-31T23:59:59Z"
    assert attempt["retry_after"] is None
    assert "Traceback" not in service.log()


# -- 3. ASCII numbers ------------------------------------------------------------------------


def test_query_numbers_are_ascii(service: Service) -> None:
    """limit=² (which answered 500), ٣ and full-width 5 (which counted as numbers), and since in
    other scripts' digits are 400s naming the parameter, as JSON."""
    token = service.token("alice")
    for query, field in [
        ("limit=%C2%B2", "limit"),
        ("limit=%D9%A3", "limit"),
        ("limit=%EF%BC%95", "limit"),
        ("limit=1_0", "limit"),
        ("since=%D9%A3", "since"),
        ("since=", "since"),
        ("since=2024-01-31", "since"),
    ]:
        status, error = get(service, f"/deliveries/?{query}", token)
        assert (status, error["error"], error["field"]) == (400, "invalid", field), query
    status, listed = get(service, "/deliveries/?limit=5&since=2024-01-31T12:00:00Z", token)
    assert (status, listed) == (200, [])


# -- 9. the OpenAPI document -----------------------------------------------------------------


def test_schemathesis_every_check_against_the_service(tmp_path: Path) -> None:
    """schemathesis, driven by the running service's /openapi.json, finds nothing with
    every check (--checks all): no 5xx, answers as documented, every schema-valid request
    accepted and every invalid one refused, the cases the probe found included. (The
    service has the default body limit: a 413 for a huge invalid body is a refusal
    schemathesis does not count.)"""
    schemathesis = shutil.which("schemathesis", path=os.path.dirname(sys.executable))
    assert schemathesis is not None, "schemathesis is not installed"
    service = Service(tmp_path)
    text = service.config.read_text()
    service.config.write_text(text.replace("max_request_body = 4096\n", ""))
    service.start()
    try:
        run_schemathesis(service, schemathesis)
    finally:
        service.kill()


def run_schemathesis(service: Service, schemathesis: str) -> None:
    """Run schemathesis with every check against the service; fail with its report."""
    token = service.token("fuzz", scopes="admin")
    run = subprocess.run(
        [
            schemathesis,
            "run",
            f"{service.base}openapi.json",
            "--header",
            f"Authorization: Bearer {token}",
            "--checks",
            "all",
            "--max-examples",
            "15",
            "--seed",
            "2",
            "--workers",
            "1",
            "--generation-database",
            "none",
            "--no-color",
            "--request-timeout",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=service.directory,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    assert "Traceback" not in service.log()


# -- 10. URLs that are not UTF-8 -------------------------------------------------------------


def test_non_utf8_path_gets_the_json_error(service: Service) -> None:
    """/hooks/%ff/ (which got twisted.web's plain-text 400) and a Host that is not UTF-8
    get the API's JSON error, malformed_url, with or without a token."""
    token = service.token("alice")
    for path, headers in [
        ("/hooks/%ff/", {"Host": "127.0.0.1", "Authorization": f"Bearer {token}"}),
        ("/%c3%28", {"Host": "127.0.0.1"}),
        ("/healthz%80", {"Host": "127.0.0.1"}),
        ("/hooks/", {"Host": b"\xff.example", "Authorization": f"Bearer {token}"}),
    ]:
        status, answer_headers, body = raw_request(service, "GET", path, headers)
        assert status == 400, (path, body)
        assert answer_headers["Content-Type"].startswith("application/json"), path
        error = json.loads(body)
        assert error["error"] == "malformed_url", error
        assert error["detail"]
    assert "Traceback" not in service.log()


# -- 14b. URLs in answers --------------------------------------------------------------------


def test_forged_host_is_never_echoed(service: Service, receiver: Receiver) -> None:
    """Without base_url, Location, subscription and delivery URLs start with the address
    the service listens on, whatever Host the client sends."""
    token = service.token("alice")
    request = urllib.request.Request(
        service.base + "hooks/",
        data=json.dumps({"event": "job.*", "url": receiver.url}).encode(),
        method="POST",
    )
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Host", "evil.example")
    with urllib.request.urlopen(request, timeout=DEADLINE) as response:
        location = response.headers["Location"]
        hook = json.loads(response.read())
    assert location == hook["subscription"] == f"{service.base}hooks/{hook['id']}/"
    service.request("POST", "/events/", token, {"event": "job.done", "data": 1})
    wait_for(lambda: receiver.bodies(), "the delivery")
    for path in ("/hooks/", f"/hooks/{hook['id']}/", "/deliveries/"):
        status, answer = get(service, path, token, host="evil.example:8000")
        assert status == 200
        assert "evil" not in json.dumps(answer), path
    status, (delivery,) = get(service, "/deliveries/", token, host="evil.example")
    assert delivery["delivery"].startswith(f"{service.base}deliveries/")


def test_base_url_starts_the_urls(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TWISTED_HOOKS_HOOKS_BASE_URL (or [hooks] base_url) starts Location, subscription
    and delivery URLs; a forged Host changes nothing; a base_url with user info stops the
    service before it starts, naming the key."""
    monkeypatch.setenv("TWISTED_HOOKS_HOOKS_BASE_URL", "https://hooks.example.com/api/")
    service = Service(tmp_path)
    try:
        service.start()
        token = service.token("alice")
        status, headers, hook = service.request(
            "POST", "/hooks/", token, {"event": "job.*", "url": receiver.url}
        )
        assert status == 201
        assert headers["Location"] == f"https://hooks.example.com/api/hooks/{hook['id']}/"
        service.request("POST", "/events/", token, {"event": "job.done", "data": 1})
        status, (delivery,) = get(service, "/deliveries/", token, host="evil.example")
        assert delivery["delivery"].startswith("https://hooks.example.com/api/deliveries/")
        status, document = get(service, "/openapi.json", token)
        assert document["servers"] == [{"url": "https://hooks.example.com/api"}]
    finally:
        service.kill()
    monkeypatch.delenv("TWISTED_HOOKS_HOOKS_BASE_URL")
    config = tmp_path / "bad.ini"
    config.write_text("[hooks]\nbase_url = https://user:pw@hooks.example.com\n")
    result = run_failing(["--config", str(config), "--database", f"sqlite:{tmp_path}/db"])
    output = result.stdout + result.stderr
    assert result.returncode not in (0, 1), output
    assert "[hooks] base_url = 'https://user:pw@hooks.example.com'" in output
    assert "user name or password" in output


def test_delivery_log_pages_through_the_real_service(service: Service, receiver: Receiver) -> None:
    """The delivery log of the real service pages with Link rel=next: following the links
    from limit=2 gives each of the caller's deliveries once, newest first, the same as
    one big page, with none of another user's; a cursor that is not one is a 400 naming
    after."""
    alice = service.token("alice")
    bob = service.token("bob")
    for token in (alice, alice, bob):
        service.request("POST", "/hooks/", token, {"event": "job.*", "url": receiver.url})
    for number in range(3):
        service.request("POST", "/events/", alice, {"event": "job.done", "data": number})
        service.request("POST", "/events/", bob, {"event": "job.done", "data": number})
    wait_for(lambda: len(receiver.bodies()) == 9, "the nine deliveries")
    _, headers, every = service.request("GET", "/deliveries/?limit=1000", alice)
    assert len(every) == 6 and "Link" not in headers
    seen: list[str] = []
    path: str | None = "/deliveries/?limit=2"
    for _ in range(10):  # bounded: six deliveries, two a page
        if path is None:
            break
        status, headers, page = service.request("GET", path, alice)
        assert status == 200, page
        seen.extend(d["id"] for d in page)
        link = headers.get("Link")
        path = None
        if link is not None:
            assert link.startswith(f"<{service.base}deliveries/?") and link.endswith(
                '>; rel="next"'
            ), link
            path = "/" + link[len(service.base) + 1 : -len('>; rel="next"')]
    assert seen == [d["id"] for d in every]
    _, _, theirs = service.request("GET", "/deliveries/?limit=1000", bob)
    assert not {d["id"] for d in theirs} & set(seen)
    status, _, error = service.request("GET", "/deliveries/?after=yesterday", alice)
    assert (status, error["error"], error["field"]) == (400, "invalid", "after")
