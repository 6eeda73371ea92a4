"""
End-to-end tests of the recipient URL rules through the real service: ``twist hooks`` in a
child process with ``--allow-network`` flags (and no ``[validators]`` section), on a
temporary SQLite file, tokens made with the real ``twisted-hooks`` command, real receivers
on ``127.0.0.1`` and ``[::1]``, requests over real sockets.

What they pin: IPv6 literal recipients are delivered to; URLs with credentials are refused
wherever a URL enters; loopback aliases (``127.1``, ``0x7f000001``, ``localhost``...) are
refused when subscribing, or delivered to as the address they name when it is allowed;
``--allow-network`` alone is local development (any port of an allowed network); every
refusal names the fix in the service's terms. Every wait has a deadline, every child
process is killed when its test ends.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._service import DEADLINE, ROOT, Receiver, Service, wait_for
from twisted_hooks.service.tap import Options

#: The service's configuration: quick polls and retries, and no [validators] section, so
#: the recipient rules are the defaults plus the command line's --allow-network.
CONFIG = """\
[hooks]
timeout = 3
lease = 4
poll_interval = 0.2

[retry]
schedule = 1, 1
jitter = 0
"""

LOCAL = ("127.0.0.0/8", "::1/128")


class FlagService(Service):
    """The service started with ``--allow-network`` flags and :data:`CONFIG`."""

    def __init__(self, directory: Path, networks: tuple[str, ...]) -> None:
        flags = [f"--allow-network={network}" for network in networks]
        super().__init__(directory, config=CONFIG, flags=flags)

    def subscribe(self, token: str, url: str) -> tuple[int, Any]:
        """Subscribe ``url`` to every event; the status and the answer."""
        status, _, answer = self.request("POST", "/hooks/", token, {"event": "*", "url": url})
        return status, answer

    def publish(self, token: str, data: object) -> int:
        """Publish ``a.b`` with ``data``; how many deliveries it made."""
        status, _, answer = self.request("POST", "/events/", token, {"event": "a.b", "data": data})
        assert status == 202, answer
        return int(answer["deliveries"])


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


requires_ipv6 = pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback (::1) here")


@pytest.fixture
def v4() -> Iterator[Receiver]:
    receiver = Receiver("127.0.0.1")
    yield receiver
    receiver.close()


@pytest.fixture
def v6() -> Iterator[Receiver]:
    receiver = Receiver("::1")
    yield receiver
    receiver.close()


@pytest.fixture
def local(tmp_path: Path) -> Iterator[FlagService]:
    """The service for local development: ``--allow-network`` for both loopbacks."""
    service = FlagService(tmp_path, LOCAL)
    service.start()
    yield service
    service.kill()


@pytest.fixture
def strict(tmp_path: Path) -> Iterator[FlagService]:
    """The service with the default recipient rules: no network allowed."""
    service = FlagService(tmp_path, ())
    service.start()
    yield service
    service.kill()


def _delivered(service: FlagService, token: str, count: int) -> bool:
    _, _, log = service.request("GET", "/deliveries/?status=delivered", token)
    return len(log) == count


# -- local development is one flag, IPv4 and IPv6 ---------------------------------------------


@requires_ipv6
def test_allow_network_flags_alone_reach_any_local_port(
    local: FlagService, v4: Receiver, v6: Receiver
) -> None:
    """``twist hooks --allow-network 127.0.0.0/8 --allow-network ::1/128`` (no
    [validators] ports) subscribes and delivers to receivers on 127.0.0.1 and [::1] on
    ports other than 80 and 443; an IPv6 literal URL is delivered with its address in
    brackets in ``Host``."""
    assert v4.port not in (80, 443) and v6.port not in (80, 443)
    token = local.token("dev")
    for receiver in (v4, v6):
        status, hook = local.subscribe(token, receiver.url)
        assert status == 201, hook
    assert local.publish(token, {"n": 1}) == 2
    wait_for(lambda: v4.bodies() == [{"n": 1}], "the delivery to 127.0.0.1")
    wait_for(lambda: v6.bodies() == [{"n": 1}], "the delivery to [::1]")
    assert v6.hosts() == [v6.netloc]
    wait_for(lambda: _delivered(local, token, 2), "the delivery log to say delivered")


def test_public_ports_and_other_networks_still_refused(local: FlagService) -> None:
    """The flags open the loopback networks only: a public address keeps the 80/443 port
    rule, another internal network stays refused, and each 400 names the fix in the
    service's terms (its configuration key, its flag)."""
    token = local.token("dev")
    status, error = local.subscribe(token, "http://93.184.215.14:8080/hooks")
    assert (status, error["error"], error["field"]) == (400, "refused_url", "url")
    assert "the port 8080 is not allowed" in error["detail"]
    assert "add 8080 to [validators] ports" in error["detail"]
    assert "ensure_port()" not in error["detail"]
    status, error = local.subscribe(token, "http://10.1.2.3:8080/hooks")
    assert (status, error["error"]) == (400, "refused_url")
    assert "--allow-network 10.0.0.0/8" in error["detail"]
    assert "RecipientPolicy" not in error["detail"]


# -- IPv6 literals -----------------------------------------------------------------------------


@requires_ipv6
def test_ipv6_literal_recipient_delivered(tmp_path: Path, v6: Receiver) -> None:
    """With ``--allow-network ::1/128`` only, ``http://[::1]:PORT/`` is accepted by the API
    and by ``twisted-hooks subscribe``, and both subscriptions are delivered to over
    IPv6; the 127.0.0.0/8 network stays refused."""
    service = FlagService(tmp_path, ("::1/128",))
    # The command's subscription is made before the service starts, which loads it: made
    # while it runs, it would be seen only at the service's next refresh of its subscribers.
    token = service.token("dev")
    added = service.cli("subscribe", "a.*", v6.url + "/cli", "--allow-network", "::1/128")
    assert json.loads(added.stdout)["url"] == v6.url + "/cli"
    service.start()
    try:
        status, hook = service.subscribe(token, v6.url)
        assert status == 201, hook
        assert hook["url"] == v6.url
        status, error = service.subscribe(token, "http://127.0.0.1:9/")
        assert status == 400, error
        assert service.publish(token, {"six": True}) == 2
        wait_for(lambda: len(v6.received) == 2, "both deliveries to [::1]")
        assert v6.bodies() == [{"six": True}] * 2
        # The API shows the token's own subscription; the command's belongs to no user.
        wait_for(lambda: _delivered(service, token, 1), "the delivery log to say delivered")
    finally:
        service.kill()


# -- credentials in the URL --------------------------------------------------------------------


def test_credentials_refused_wherever_a_url_enters(local: FlagService, v4: Receiver) -> None:
    """``user:pass@`` and ``user@`` are refused by the API (POST and PATCH: 400 naming
    headers, never echoing the password), by ``twisted-hooks subscribe`` (exit 1) and in
    the configuration's static subscribers (the service does not start); nothing is
    delivered."""
    token = local.token("dev")
    with_password = f"http://alice:s3cret@{v4.netloc}/hooks"
    for url in (with_password, f"http://alice@{v4.netloc}/hooks"):
        status, error = local.subscribe(token, url)
        assert (status, error["error"], error["field"]) == (400, "refused_url", "url"), error
        assert "Credentials belong in headers" in error["detail"]
        assert "s3cret" not in json.dumps(error)
    status, hook = local.subscribe(token, v4.url)
    assert status == 201, hook
    status, _, error = local.request(
        "PATCH", f"/hooks/{hook['id']}/", token, {"url": with_password}
    )
    assert (status, error["error"]) == (400, "refused_url"), error
    assert local.request("GET", f"/hooks/{hook['id']}/", token)[2]["url"] == v4.url

    command = local.cli(
        "subscribe", "a.*", with_password, "--allow-network", "127.0.0.0/8", check=False
    )
    assert command.returncode == 1, command.stdout
    assert "Credentials belong in headers" in command.stderr
    assert "s3cret" not in command.stderr
    assert local.cli("list").stdout.count("alice") == 0

    bad = local.directory / "static.ini"
    bad.write_text(
        CONFIG.replace("[hooks]\n", "[hooks]\nsecret = whsec_c2VjcmV0c2VjcmV0\n")
        + f"\n[subscribers]\na.* = {with_password}\n"
    )
    started = subprocess.run(
        [
            sys.executable,
            "-m",
            "twisted",
            "hooks",
            "--config",
            str(bad),
            "--database",
            local.database,
            "--allow-network",
            "127.0.0.0/8",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    output = started.stdout + started.stderr
    assert started.returncode not in (0, 1), output
    assert "[subscribers] a.*" in output
    assert "Credentials belong in headers" in output
    assert v4.received == []


# -- loopback aliases --------------------------------------------------------------------------

ALIASES = ["127.1", "0x7f000001", "2130706433", "0177.0.0.1", "localhost", "api.localhost"]


def test_loopback_aliases_refused_when_subscribing(strict: FlagService, v4: Receiver) -> None:
    """Without an allowed network, every loopback alias, and ``0``, gets a 400 at once
    naming the address it stands for and the flag that would open it; the command
    refuses them the same way, naming its own flag."""
    token = strict.token("dev")
    for host in [*ALIASES, "0"]:
        status, error = strict.subscribe(token, f"http://{host}:{v4.port}/hooks")
        assert (status, error.get("error")) == (400, "refused_url"), (host, error)
        address, network = (
            ("0.0.0.0", "0.0.0.0/8") if host == "0" else ("127.0.0.1", "127.0.0.0/8")
        )
        assert f"{host} names {address}" in error["detail"], error
        assert f"start the service with --allow-network {network}" in error["detail"]
    command = strict.cli("subscribe", "a.*", f"http://127.1:{v4.port}/", check=False)
    assert command.returncode == 1
    assert "127.1 names 127.0.0.1" in command.stderr
    assert "pass --allow-network 127.0.0.0/8 to this command" in command.stderr
    assert strict.request("GET", "/hooks/", token)[2] == []


def test_allowed_loopback_aliases_delivered_to_the_address_they_name(
    local: FlagService, v4: Receiver
) -> None:
    """With the loopback networks allowed, each alias is accepted and delivered to the
    receiver on 127.0.0.1 (the address it names, never another name resolution); ``0``
    (0.0.0.0) stays refused."""
    token = local.token("dev")
    for host in ALIASES:
        status, hook = local.subscribe(token, f"http://{host}:{v4.port}/hooks")
        assert status == 201, (host, hook)
    status, error = local.subscribe(token, f"http://0:{v4.port}/hooks")
    assert (status, error["error"]) == (400, "refused_url")
    assert local.publish(token, {"alias": 1}) == len(ALIASES)
    wait_for(lambda: len(v4.received) == len(ALIASES), "a delivery per alias")
    assert sorted(v4.hosts()) == sorted(f"{host}:{v4.port}" for host in ALIASES)
    wait_for(lambda: _delivered(local, token, len(ALIASES)), "the log to say delivered")


# -- the plugin's options ----------------------------------------------------------------------


def test_allow_network_is_repeatable() -> None:
    """``--allow-network`` may be given many times; every network is allowed, after those
    of the configuration."""
    options = Options()
    options.parseOptions(
        ["--database", "memory:", "--allow-network", "127.0.0.0/8", "--allow-network=::1/128"]
    )
    assert options.service_config is not None
    policy = options.service_config.settings.policy
    assert [str(n) for n in policy.allowed_networks] == ["127.0.0.0/8", "::1/128"]
    policy.check_url("http://127.0.0.1:8080/")
    policy.check_url("http://[::1]:8080/")
