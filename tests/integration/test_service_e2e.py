"""
End-to-end tests of the service: the real ``twist hooks`` in a child process (run as
``python -m twisted hooks`` from the repository, so the dropin in ``twisted/plugins`` is
found however the project is installed), on a temporary SQLite file, with tokens made by
the real ``twisted-hooks`` command (another child process), a real receiver on
``127.0.0.1`` and requests over real sockets.

The HTTP API is tested in depth in process by its own suite; here each error status is met
once, through the running service. Every child process is killed when its test ends, and
every wait has a deadline.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook
from twisted.internet import reactor
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Factory
from twisted.python import usage
from twisted.trial.unittest import TestCase

from tests._service import Receiver, Service, run_failing, service_config, wait_for
from twisted_hooks.registry import get_dispatcher
from twisted_hooks.service.config import load_config
from twisted_hooks.service.tap import HooksService, Options
from twisted_hooks.webhooks.signing import verify


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


# -- delivery --------------------------------------------------------------------------------


def test_subscribe_publish_deliver_signed(service: Service, receiver: Receiver) -> None:
    """A token made with the command subscribes a local receiver through the API; a
    published event reaches it with every header, a valid Hook-HMAC and a Standard
    Webhooks signature the standardwebhooks package accepts, and the command's
    ``verify`` accepts it too."""
    token = service.token("alice")
    status, headers, hook = service.request(
        "POST", "/hooks/", token, {"event": "order.*", "url": receiver.url}
    )
    assert status == 201, hook
    assert headers["Location"] == hook["subscription"]
    status, _, published = service.request(
        "POST", "/events/", token, {"event": "order.paid", "data": {"order": 42}}
    )
    assert status == 202, published
    assert published["deliveries"] == 1

    wait_for(lambda: receiver.received, "the delivery")
    received, body = receiver.received[0]
    assert json.loads(body) == {"order": 42}
    assert received["hook-event"] == "order.paid"
    assert received["hook-subscription"] == hook["id"]
    assert received["hook-delivery"] == received["webhook-id"]
    assert received["user-agent"].startswith("twisted_hooks/")
    assert received["content-type"] == "application/json"
    secret = hook["hmac_secret"]
    assert verify(received["hook-hmac"], "sha256", secret, body)
    Webhook(secret).verify(body, received)

    headers_file = service.directory / "headers.json"
    headers_file.write_text(json.dumps(received))
    body_file = service.directory / "body"
    body_file.write_bytes(body)
    checked = service.cli(
        "verify", "--secret", secret, "--headers", str(headers_file), "--body", str(body_file)
    )
    assert checked.stdout.startswith("valid")
    body_file.write_bytes(body.replace(b"42", b"24"))
    tampered = service.cli(
        "verify",
        "--secret",
        secret,
        "--headers",
        str(headers_file),
        "--body",
        str(body_file),
        check=False,
    )
    assert tampered.returncode == 1
    assert "invalid" in tampered.stderr

    def delivered() -> bool:
        _, _, log = service.request("GET", "/deliveries/?status=delivered", token)
        return len(log) == 1

    wait_for(delivered, "the delivery log to say delivered")


def test_command_send_is_delivered_by_the_running_service(
    service: Service, receiver: Receiver
) -> None:
    """``twisted-hooks subscribe`` and ``send`` write to the database; the running
    service sees the new subscriber and the new delivery (it polls) and delivers it."""
    service.cli("subscribe", "user.*", receiver.url)
    sent = json.loads(service.cli("send", "user.created", "--data", '{"user": 7}').stdout)
    assert sent["deliveries"] == 1
    wait_for(lambda: receiver.bodies() == [{"user": 7}], "the delivery")


def test_users_are_isolated(service: Service, receiver: Receiver) -> None:
    """Two tokens with different owners: bob sees none of alice's subscriptions (404 for
    her id, never 403), and bob's events do not reach alice's subscription."""
    alice = service.token("alice", owner="alice")
    bob = service.token("bob", owner="bob")
    _, _, hook = service.request("POST", "/hooks/", alice, {"event": "*", "url": receiver.url})
    assert service.request("GET", "/hooks/", bob)[2] == []
    assert [h["id"] for h in service.request("GET", "/hooks/", alice)[2]] == [hook["id"]]
    assert service.request("GET", f"/hooks/{hook['id']}/", bob)[0] == 404
    assert service.request("DELETE", f"/hooks/{hook['id']}/", bob)[0] == 404
    status, _, published = service.request("POST", "/events/", bob, {"event": "a.b", "data": 1})
    assert (status, published["deliveries"]) == (202, 0)
    status, _, published = service.request("POST", "/events/", alice, {"event": "a.b", "data": 2})
    assert (status, published["deliveries"]) == (202, 1)
    wait_for(lambda: receiver.bodies() == [2], "alice's delivery")
    assert service.request("GET", "/deliveries/", bob)[2] == []


def test_error_statuses(service: Service, receiver: Receiver) -> None:
    """Each error status of the API, once, through the running service, as JSON naming
    the problem: 400, 401 (no, bad and revoked token), 403, 404, 405, 413, 415."""
    token = service.token("alice")
    publisher = service.token("publisher", scopes="publish")
    revoked = service.token("gone")
    service.cli("token", "revoke", "gone")

    status, _, error = service.request("POST", "/hooks/", token, {"event": "a.*"})
    assert (status, error["error"], error["field"]) == (400, "invalid", "url")
    status, _, error = service.request(
        "POST", "/hooks/", token, {"event": "a.*", "url": "ftp://127.0.0.1/x"}
    )
    assert (status, error.get("field")) == (400, "url")

    for bad in (None, "thk_not-a-token", revoked):
        status, headers, error = service.request("GET", "/hooks/", bad)
        assert status == 401, (bad, error)
        assert headers["WWW-Authenticate"].startswith("Bearer")
    status, _, error = service.request(
        "POST", "/hooks/", publisher, {"event": "a.*", "url": receiver.url}
    )
    assert status == 403
    assert "subscribe" in error["detail"]
    status, _, error = service.request(
        "GET", "/hooks/00000000-0000-0000-0000-000000000000/", token
    )
    assert status == 404
    status, headers, error = service.request("PUT", "/events/", token, {"event": "a"})
    assert status == 405
    assert "POST" in headers["Allow"]
    status, _, error = service.request("POST", "/events/", token, raw=b"{" + b" " * 5000 + b"}")
    assert status == 413
    status, _, error = service.request(
        "POST", "/events/", token, raw=b"event=a", content_type="text/plain"
    )
    assert status == 415


def test_health_metrics_openapi(service: Service) -> None:
    """``/healthz``, ``/metrics`` and ``/openapi.json`` answer without a token."""
    assert service.request("GET", "/healthz")[0] == 200
    status, _, metrics = service.request("GET", "/metrics")
    assert status == 200
    assert "twisted_hooks_" in metrics
    status, _, spec = service.request("GET", "/openapi.json")
    assert status == 200
    assert "/hooks/" in spec["paths"]


# -- starting and stopping -------------------------------------------------------------------


def test_sigterm_with_deliveries_pending_then_restart(tmp_path: Path, receiver: Receiver) -> None:
    """SIGTERM while a slow receiver holds attempts open: the service stops within its
    shutdown_timeout, saying the unfinished attempts stay in the store; restarted on the
    same SQLite file, it delivers every event (at least once, same delivery ids)."""
    service = Service(tmp_path, config=service_config(shutdown_timeout=0.5))
    try:
        service.start()
        token = service.token("alice")
        _, _, hook = service.request(
            "POST", "/hooks/", token, {"event": "job.*", "url": receiver.url}
        )
        receiver.delay = 2.0
        for number in range(5):
            status, _, _ = service.request(
                "POST", "/events/", token, {"event": "job.done", "data": {"n": number}}
            )
            assert status == 202
        wait_for(lambda: receiver.started >= 1, "an attempt to be under way")
        began = time.monotonic()
        status = service.terminate()
        assert time.monotonic() - began < 10
        assert status in (0, -signal.SIGTERM), status
        log = service.log()
        assert "stopped listening" in log
        assert "the store is closed" in log
        assert "stay in the store under their lease" in log
        assert "Unhandled error" not in log

        receiver.delay = 0.0
        service.start()
        wanted = [{"n": n} for n in range(5)]

        def all_delivered() -> bool:
            bodies = receiver.bodies()
            return all(body in bodies for body in wanted)

        wait_for(all_delivered, "every delivery after the restart")
        with receiver.lock:
            ids = {headers["hook-delivery"] for headers, _ in receiver.received}
        assert len(ids) == 5

        def log_says_delivered() -> bool:
            _, _, log = service.request("GET", f"/deliveries/?hook={hook['id']}", token)
            return sorted(d["status"] for d in log) == ["delivered"] * 5

        wait_for(log_says_delivered, "the delivery log to say delivered")
        assert service.terminate() in (0, -signal.SIGTERM)
    finally:
        service.kill()


def test_port_taken(tmp_path: Path, receiver: Receiver) -> None:
    """A port already taken stops the service with exit status 1 and one critical line
    saying what to do, without a traceback."""
    host, port = receiver.server.server_address[:2]
    result = run_failing(
        ["--listen", f"tcp:{port}:interface={host}", "--database", f"sqlite:{tmp_path}/db"]
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"cannot listen on 'tcp:{port}:interface={host}'" in result.stdout
    assert "choose another with --listen" in result.stdout
    assert "Traceback" not in result.stdout


def test_database_cannot_be_opened(tmp_path: Path) -> None:
    """A database that cannot be opened stops the service with exit status 1, naming it."""
    missing = tmp_path / "missing" / "hooks.sqlite3"
    result = run_failing(
        ["--listen", "tcp:0:interface=127.0.0.1", "--database", f"sqlite:{missing}"]
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "cannot start" in result.stdout
    assert "does not exist" in result.stdout
    assert "Traceback" not in result.stdout


def test_bad_configuration_is_a_usage_error(tmp_path: Path) -> None:
    """A configuration error is reported before anything starts, as a usage error."""
    config = tmp_path / "bad.ini"
    config.write_text("[hooks]\ntimeout = soon\n")
    result = run_failing(["--config", str(config)])
    assert result.returncode not in (0, 1)
    assert "timeout" in result.stdout + result.stderr


# -- the service object, in process ----------------------------------------------------------


class HooksServiceTests(TestCase):
    """:class:`HooksService` on the real reactor, with the memory store: what ``twist``
    does, without the child process."""

    def service(self, **overrides: str) -> tuple[HooksService, list[str]]:
        config = load_config(
            None,
            environ={},
            overrides={"listen": "tcp:0:interface=127.0.0.1", "database": "memory:", **overrides},
        )
        failures: list[str] = []
        return HooksService(config, reactor, on_failure=failures.append), failures

    async def test_start_registers_the_dispatcher_and_listens_last(self) -> None:
        """Once started, the application's dispatcher is the registry's, the application
        runs and the API listens; stopping closes the port first, then the store."""
        service, failures = self.service()
        service.startService()
        await service.when_started()
        assert service.hooks is not None and service.port is not None
        assert get_dispatcher(service.registry) is service.hooks.dispatcher
        assert service.hooks.running
        hooks = service.hooks
        await service.stopService()
        assert service.port is None and service.store is None
        assert not hooks.running
        assert failures == []

    async def test_port_taken_reports_a_failure(self) -> None:
        """A port already taken fails ``started`` and calls ``on_failure`` with a sentence
        naming the endpoint; what was started is stopped again."""
        taken = reactor.listenTCP(0, Factory(), interface="127.0.0.1")
        self.addCleanup(taken.stopListening)
        port = taken.getHost().port
        service, failures = self.service(listen=f"tcp:{port}:interface=127.0.0.1")
        service.startService()
        with pytest.raises(CannotListenError):
            await service.when_started()
        await service.stopService()
        assert len(failures) == 1
        assert f"cannot listen on 'tcp:{port}:interface=127.0.0.1'" in failures[0]
        assert service.hooks is None and service.store is None


def test_options_errors_are_usage_errors(tmp_path: Path) -> None:
    """A bad --allow-network, database URL or configuration file is a UsageError from
    the plugin's options, before anything starts."""
    for argv in (
        ["--allow-network", "not-a-network"],
        ["--database", "mysql://x"],
        ["--config", str(tmp_path / "missing.ini")],
    ):
        with pytest.raises(usage.UsageError):
            Options().parseOptions(argv)
    options = Options()
    options.parseOptions(["--allow-network", "127.0.0.0/8", "--database", "memory:"])
    assert options.service_config is not None
    assert options.service_config.database == "memory:"
