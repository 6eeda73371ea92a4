"""
A newcomer's first hour, through the real programs: ``twist hooks`` and
``twisted-hooks`` (the installed scripts, next to this interpreter) in child processes,
run from temporary directories, on real SQLite files, with real sockets on 127.0.0.1.

- which database each one uses, and saying so (the service in its log, the command on
  standard error), ``TWISTED_HOOKS_DATABASE`` for both;
- ``--listen PORT`` and bad endpoints;
- the help of both programs;
- ``twisted-hooks receive`` receiving from the service;
- ``--database`` before the command.

Every child process is stopped when its test ends; every wait has a deadline.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._service import DEADLINE, Program, Service, free_port, wait_for
from twisted_hooks.webhooks.signing import generate_secret

BIN = Path(sys.executable).parent
TWIST = BIN / "twist"
TWISTED_HOOKS = BIN / "twisted-hooks"

#: Deliveries to any port of 127.0.0.1, retried after a second, polled often.
CONFIG = """\
[hooks]
timeout = 3
poll_interval = 0.2
shutdown_timeout = 1

[retry]
schedule = 1, 1, 1, 1, 1
jitter = 0

[validators]
ports =
allowed_networks = 127.0.0.0/8
"""


def environment(**extra: str) -> dict[str, str]:
    """This process's environment without any TWISTED_HOOKS_* variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWISTED_HOOKS_")}
    env.update(extra)
    return env


def command(
    *argv: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``twisted-hooks ARGV`` in ``cwd``."""
    assert TWISTED_HOOKS.exists(), f"{TWISTED_HOOKS} is missing: pip install -e ."
    return subprocess.run(
        [str(TWISTED_HOOKS), *argv],
        cwd=cwd,
        env=environment() if env is None else env,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )


def start_service(cwd: Path, *argv: str, env: dict[str, str] | None = None) -> Service:
    """``twist hooks ARGV`` (the installed script) started in ``cwd``, once it listens;
    killed if it does not."""
    assert TWIST.exists(), f"{TWIST} is missing: pip install Twisted"
    service = Service(
        cwd,
        bare=True,
        twist=[str(TWIST)],
        flags=argv,
        cwd=cwd,
        env=environment() if env is None else env,
    )
    try:
        service.start()
    except BaseException:
        service.kill()
        raise
    return service


@pytest.fixture
def programs() -> Iterator[list[Program]]:
    """The programs a test started, killed at its end whatever happened."""
    started: list[Program] = []
    yield started
    for program in started:
        program.kill()


# -- one database, visibly -------------------------------------------------------------------


def test_service_and_command_name_their_database(tmp_path: Path, programs: list[Program]) -> None:
    """Started in a directory with no options, the service logs the absolute path of its
    database there. The command run elsewhere names the file it looked for instead of
    creating one; with ``TWISTED_HOOKS_DATABASE`` set to the service's file it makes a
    token the service accepts."""
    served = tmp_path / "served"
    served.mkdir()
    service = start_service(served, "--listen", "tcp:0:interface=127.0.0.1")
    programs.append(service)
    database = served / "twisted_hooks.sqlite3"
    assert f"starting with the database {database} (from the default, " in service.log()
    assert f"(database {database})" in service.log()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    listed = command("token", "list", cwd=elsewhere)
    assert listed.returncode == 1
    assert listed.stdout == ""
    lines = listed.stderr.splitlines()
    assert len(lines) == 1, listed.stderr
    assert lines[0].startswith(
        f"twisted-hooks: no database at {elsewhere / 'twisted_hooks.sqlite3'} (the default"
    )
    assert list(elsewhere.iterdir()) == []

    env = environment(TWISTED_HOOKS_DATABASE=f"sqlite:{database}")
    made = command("token", "create", "alice", cwd=elsewhere, env=env)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert re.fullmatch(r"thk_\S+", token), made.stdout
    assert made.stderr == f"twisted-hooks: database {database} (TWISTED_HOOKS_DATABASE)\n"
    status, _, hooks = service.request("GET", "/hooks/", token)
    assert (status, hooks) == (200, [])
    assert list(elsewhere.iterdir()) == []


def test_service_reads_the_database_variable(tmp_path: Path, programs: list[Program]) -> None:
    """``TWISTED_HOOKS_DATABASE`` names the service's database too; ``--database`` wins
    over it; the log says which was used and why."""
    chosen = tmp_path / "chosen.db"
    env = environment(TWISTED_HOOKS_DATABASE=f"sqlite:{chosen}")
    service = start_service(tmp_path, "--listen", "tcp:0:interface=127.0.0.1", env=env)
    programs.append(service)
    assert f"starting with the database {chosen} (from TWISTED_HOOKS_DATABASE)" in service.log()
    assert chosen.exists()
    assert not (tmp_path / "twisted_hooks.sqlite3").exists()
    assert service.terminate() in (0, -signal.SIGTERM)

    option = start_service(
        tmp_path, "--listen", "tcp:0:interface=127.0.0.1", "--database", "sqlite:opt.db", env=env
    )
    programs.append(option)
    assert f"starting with the database {tmp_path / 'opt.db'} (from --database)" in option.log()


# -- --listen --------------------------------------------------------------------------------


def test_listen_port_number(tmp_path: Path, programs: list[Program]) -> None:
    """``twist hooks --listen PORT`` serves the API on that port of 127.0.0.1."""
    port = free_port()
    service = start_service(tmp_path, "--listen", str(port))
    programs.append(service)
    assert service.base == f"http://127.0.0.1:{port}/"
    assert service.request("GET", "/healthz")[0] == 200


@pytest.mark.parametrize("listen", ["nope:1", "localhost:8000", "tcp:http", "99999"])
def test_bad_listen_is_one_clear_line(tmp_path: Path, listen: str) -> None:
    """A bad ``--listen`` stops ``twist hooks`` before anything starts, with one error
    line quoting it and naming the valid forms, and no traceback."""
    result = subprocess.run(
        [str(TWIST), "hooks", "--listen", listen],
        cwd=tmp_path,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    output = result.stdout + result.stderr
    assert result.returncode not in (0, None), output
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert errors == [errors[0]], output
    assert errors[0].startswith(f"Error: --listen {listen!r}")
    assert "PORT (e.g. 8000: 127.0.0.1 only), tcp:PORT:interface=ADDR" in errors[0]
    assert "unix:PATH" in errors[0]
    assert "Traceback" not in output
    assert list(tmp_path.iterdir()) == []


# -- help ------------------------------------------------------------------------------------


def test_twist_hooks_help(tmp_path: Path) -> None:
    """``twist hooks --help`` describes every option, each with help text."""
    result = subprocess.run(
        [str(TWIST), "hooks", "--help"],
        cwd=tmp_path,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert result.returncode == 0, result.stderr
    options = re.findall(r"^\s+(?:-\w, )?(--[\w-]+)=?\s*(.*)$", result.stdout, re.MULTILINE)
    names = {name for name, _ in options}
    assert {"--listen", "--database", "--config", "--allow-network", "--help"} <= names
    for name, text in options:
        assert text.strip(), f"{name} has no help:\n{result.stdout}"
    assert "TWISTED_HOOKS_DATABASE" in result.stdout


def test_twisted_hooks_help(tmp_path: Path) -> None:
    """``twisted-hooks --help`` and ``twisted-hooks receive --help`` print their options
    with help and their examples; exit 0."""
    for argv in (["--help"], ["receive", "--help"]):
        result = command(*argv, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "examples:" in result.stdout
    assert "--public-key KEY" in result.stdout
    assert "--status STATUS" in result.stdout


# -- receive ---------------------------------------------------------------------------------


class Receive(Program):
    """``twisted-hooks receive --port 0 ARGV``; :attr:`url` once it listens."""

    def __init__(self, cwd: Path, *argv: str) -> None:
        super().__init__(cwd, "receive", cwd=cwd, env=environment())
        self.launch([str(TWISTED_HOOKS), "receive", "--port", "0", *argv])
        try:
            found = self.wait_for_log(r"listening on (http://127\.0\.0\.1:\d+/)", "the receiver")
        except BaseException:
            self.kill()
            raise
        self.url = found.group(1)


def test_receive_prints_a_signed_delivery(tmp_path: Path, programs: list[Program]) -> None:
    """``twisted-hooks receive --secret S`` prints a delivery from the real service: the
    event, the delivery id with attempt 1, Hook-HMAC and webhook-signature valid, the body
    as indented JSON; it answers 204 and the delivery is delivered. SIGTERM stops it with
    exit status 0."""
    secret = generate_secret()
    receiver = Receive(tmp_path, "--secret", secret)
    programs.append(receiver)
    config = tmp_path / "hooks.ini"
    config.write_text(CONFIG)
    service = start_service(
        tmp_path, "--listen", "tcp:0:interface=127.0.0.1", "--config", str(config)
    )
    programs.append(service)

    subscribed = command(
        "subscribe",
        "order.*",
        receiver.url,
        "--secret",
        secret,
        "--config",
        str(config),
        cwd=tmp_path,
    )
    assert subscribed.returncode == 0, subscribed.stderr
    sent = command("send", "order.paid", "--data", '{"order": 42, "total": "19.90"}', cwd=tmp_path)
    assert json.loads(sent.stdout)["deliveries"] == 1

    receiver.wait_for_log(r"answered 204 No Content", "the delivery")
    printed = receiver.log()
    assert re.search(r"POST /  order\.paid\n  delivery \S+ \(attempt 1 here\)\n", printed)
    assert "  Hook-HMAC: valid (sha256)\n" in printed
    assert "  webhook-signature (v1): valid\n" in printed
    assert '    {\n      "order": 42,\n      "total": "19.90"\n    }\n' in printed

    def delivered() -> bool:
        listed = command("deliveries", "--status", "delivered", cwd=tmp_path)
        return len(listed.stdout.splitlines()) == 2

    wait_for(delivered, "the delivery log to say delivered")
    assert receiver.terminate() == 0
    assert "Traceback" not in receiver.log()


def test_receive_status_shows_retries(tmp_path: Path, programs: list[Program]) -> None:
    """``--status 500`` makes the service retry: the receiver prints the same delivery
    again as attempt 2 and 3, and with the wrong secret says both signatures are
    invalid."""
    receiver = Receive(tmp_path, "--status", "500", "--secret", generate_secret())
    programs.append(receiver)
    config = tmp_path / "hooks.ini"
    config.write_text(CONFIG)
    service = start_service(
        tmp_path, "--listen", "tcp:0:interface=127.0.0.1", "--config", str(config)
    )
    programs.append(service)
    subscribed = command("subscribe", "job.*", receiver.url, "--config", str(config), cwd=tmp_path)
    assert subscribed.returncode == 0, subscribed.stderr
    # The retry schedule of [retry] is the sending process's: send with the configuration.
    sent = command("send", "job.done", "--config", str(config), cwd=tmp_path)
    assert sent.returncode == 0, sent.stderr

    found = receiver.wait_for_log(r"delivery (\S+) \(attempt 3 here\)", "the third attempt")
    delivery = found.group(1)
    printed = receiver.log()
    assert f"delivery {delivery} (attempt 1 here)" in printed
    assert f"delivery {delivery} (attempt 2 here)" in printed
    assert printed.count("answered 500 Internal Server Error") >= 3
    assert "Hook-HMAC: invalid: it does not match the body" in printed
    assert "webhook-signature (v1): invalid: no v1 entry" in printed


def test_receive_port_taken(tmp_path: Path) -> None:
    """A port already taken: one line saying so and what to do; exit status 1."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = command("receive", "--port", str(port), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith(f"twisted-hooks: cannot listen on 127.0.0.1:{port}")
    assert "--port" in result.stderr
    assert result.stderr.count("\n") == 1


# -- global options --------------------------------------------------------------------------


def test_database_before_the_command(tmp_path: Path) -> None:
    """``twisted-hooks --database X token create NAME`` works (exit 0), as does the option
    after the command."""
    database = f"sqlite:{tmp_path / 'hooks.db'}"
    made = command("--database", database, "token", "create", "alice", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("thk_")
    listed = command("token", "list", "--database", database, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "alice" in listed.stdout
