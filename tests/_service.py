"""
What the tests that run the real service share: the service in a child process
(:class:`Service`), any other long-running program (:class:`Program`), a webhook receiver
on a real socket (:class:`Receiver`), and waiting with a deadline (:func:`wait_for`).

Not a test module (no ``test_`` prefix): nothing here is collected. Every wait has a
deadline (:data:`DEADLINE` unless told), every address is 127.0.0.1 or ::1, and a test
kills what it started (:meth:`Program.kill`) whatever happens.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple

#: The checkout's root directory.
ROOT = Path(__file__).resolve().parent.parent

#: The longest any wait of these tests lasts, in seconds.
DEADLINE = 30.0

#: Where the suite's service listens: any free port of 127.0.0.1.
LISTEN = "tcp:0:interface=127.0.0.1"

#: How the service's log says where it listens: ``listening on URL`` as text, the
#: record's ``where`` field as JSON.
LISTENING = re.compile(r'(?:listening on |"where": ")(http://(?:127\.0\.0\.1|\[::1\]):\d+/)')


def service_config(shutdown_timeout: float = 15) -> str:
    """
    The suite's service configuration: short timeouts and leases, quick polls, retries
    a second apart without jitter, small request bodies, and deliveries to any port of
    127.0.0.0/8.
    """
    return f"""\
[hooks]
timeout = 3
lease = 4
poll_interval = 0.2
shutdown_timeout = {shutdown_timeout:g}
max_request_body = 4096

[retry]
schedule = 1, 1, 1, 1, 1
jitter = 0

[validators]
ports =
allowed_networks = 127.0.0.0/8
"""


#: The configuration a :class:`Service` starts with unless told otherwise.
CONFIG = service_config()


def wait_for(condition: Callable[[], Any], what: str, deadline: float = DEADLINE) -> Any:
    """Poll ``condition`` until it returns something true, and return that; fail naming
    ``what`` after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {deadline:g} s waiting for {what}")


def free_port(host: str = "127.0.0.1") -> int:
    """A port of ``host`` that nothing listens on at the time of the call."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


# -- the receiver ----------------------------------------------------------------------------


class Request(NamedTuple):
    """One request a :class:`Receiver` received."""

    #: The request's method.
    method: str
    #: The path and query string, as sent.
    path: str
    #: Every header, by its name in lower case.
    headers: dict[str, str]
    #: The raw body.
    body: bytes


class Receiver:
    """
    A webhook receiver on ``host`` (127.0.0.1 or ::1), on a free port, in threads of this
    process. It records every POST (:attr:`requests`) and answers it, ``delay`` seconds
    later, with ``answer(request)`` when an ``answer`` is given, else with ``status``.
    ``delay`` and ``status`` may be changed while it runs.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        *,
        status: int = 204,
        answer: Callable[[Request], int] | None = None,
        delay: float = 0.0,
    ) -> None:
        #: Every request received, in the order they were read.
        self.requests: list[Request] = []
        #: How many requests were read (counted before the delay, unlike :attr:`requests`).
        self.started = 0
        self.status = status
        self.answer = answer
        self.delay = delay
        #: Held while the records change; a test may hold it to read several at once.
        self.lock = threading.RLock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                request = Request(
                    "POST",
                    self.path,
                    {name.lower(): value for name, value in self.headers.items()},
                    body,
                )
                with receiver.lock:
                    receiver.started += 1
                    delay = receiver.delay
                    answer = receiver.answer
                    status = receiver.status if answer is None else answer(request)
                if delay:
                    time.sleep(delay)
                with receiver.lock:
                    receiver.requests.append(request)
                try:
                    self.send_response(status)
                    if status != 204:
                        self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender went away meanwhile

            def log_message(self, format: str, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
            daemon_threads = True

        self.server = Server((host, 0), Handler)
        self.host = host
        self.port: int = self.server.server_address[1]
        #: ``host:port``, the IPv6 address in brackets.
        self.netloc = f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"
        #: The origin, ``http://host:port``.
        self.base = f"http://{self.netloc}"
        #: The URL to subscribe: the origin and ``/hooks``.
        self.url = f"{self.base}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def received(self) -> list[tuple[dict[str, str], bytes]]:
        """The headers and the body of each request received so far."""
        with self.lock:
            return [(request.headers, request.body) for request in self.requests]

    def bodies(self) -> list[Any]:
        """The body of each request received so far, decoded as JSON."""
        with self.lock:
            return [json.loads(request.body) for request in self.requests]

    def hosts(self) -> list[str]:
        """The ``Host`` header of each request received so far."""
        with self.lock:
            return [request.headers.get("host", "") for request in self.requests]

    def paths(self) -> list[str]:
        """The path (and query string) of each request received so far."""
        with self.lock:
            return [request.path for request in self.requests]

    def close(self) -> None:
        """Stop listening."""
        self.server.shutdown()
        self.server.server_close()


# -- programs --------------------------------------------------------------------------------


class Program:
    """
    A long-running child process, run in ``cwd`` with ``env`` (this process's environment
    if ``None``), its standard output and error written to ``<name>-<run>.log`` in
    ``directory`` (a new file at each :meth:`launch`).
    """

    def __init__(
        self,
        directory: Path,
        name: str,
        *,
        cwd: Path = ROOT,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.directory = directory
        self.name = name
        self.cwd = cwd
        self.env = None if env is None else dict(env)
        self.process: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self.log_path = directory / f"{name}-0.log"

    def launch(self, argv: Sequence[str]) -> None:
        """Start ``argv``, logging to a new file."""
        self.log_path = self.directory / f"{self.name}-{self.runs}.log"
        self.runs += 1
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                list(argv), cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def log(self) -> str:
        """What the latest run wrote so far."""
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, pattern: str | re.Pattern[str], what: str) -> re.Match[str]:
        """Wait until the log matches ``pattern``; fail, showing the log, if the program
        exits first."""

        def found() -> re.Match[str] | None:
            if self.process is None or self.process.poll() is not None:
                raise AssertionError(f"{what}: the program exited:\n{self.log()}")
            return re.search(pattern, self.log())

        match: re.Match[str] = wait_for(found, what)
        return match

    def terminate(self) -> int:
        """SIGTERM, and wait for the process to end; its exit status. It is killed if it
        is still running after :data:`DEADLINE` (and the wait fails)."""
        assert self.process is not None, f"{self.name} is not running"
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=DEADLINE)
        finally:
            self.kill()

    def kill(self) -> None:
        """Kill the process if it still runs, and forget it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=DEADLINE)
        self.process = None


class Service(Program):
    """
    ``twist hooks`` in a child process, and the ``twisted-hooks`` command beside it.

    By default it is the suite's service: ``python -m twisted`` (so that the dropin in
    ``twisted/plugins`` is found however the project is installed) run from the checkout,
    listening on a free port of 127.0.0.1 (:data:`LISTEN`), on the SQLite file
    ``hooks.sqlite3`` of ``directory``, with the configuration file ``hooks.ini`` written
    there from ``config`` (:data:`CONFIG`). ``flags`` are more options of ``hooks``
    (``--allow-network``...), ``twist_options`` those of ``twist`` before it
    (``--log-format``...).

    ``bare=True`` runs ``twist hooks FLAGS`` as a person types it: no ``--listen``,
    ``--database`` or ``--config`` of the suite's (``flags`` say what they want), no
    configuration file written.

    :meth:`start` starts it (again, after :meth:`terminate`) and waits until it listens;
    :attr:`base` is then the API's URL, found in its log, text or JSON.
    """

    def __init__(
        self,
        directory: Path,
        *,
        config: str = CONFIG,
        flags: Sequence[str] = (),
        twist_options: Sequence[str] = ("--log-format=text",),
        bare: bool = False,
        twist: Sequence[str] = (sys.executable, "-m", "twisted"),
        command: Sequence[str] = (sys.executable, "-m", "twisted_hooks.service.cli"),
        cwd: Path = ROOT,
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(directory, "service", cwd=cwd, env=env)
        #: The database URL of the suite's service.
        self.database = f"sqlite:{directory / 'hooks.sqlite3'}"
        #: The configuration file of the suite's service.
        self.config = directory / "hooks.ini"
        self.flags = list(flags)
        self.twist_options = list(twist_options)
        self.bare = bare
        self.twist = list(twist)
        self.command = list(command)
        #: The API's URL, ending in ``/``, once started.
        self.base = ""
        if not bare:
            self.config.write_text(config)

    def suite_options(self) -> list[str]:
        """``--database`` and ``--config`` of the suite's service; none when bare."""
        return [] if self.bare else ["--database", self.database, "--config", str(self.config)]

    def start(self) -> None:
        """Start the service and wait until it listens."""
        listen = [] if self.bare else ["--listen", LISTEN]
        self.launch(
            [
                *self.twist,
                *self.twist_options,
                "hooks",
                *listen,
                *self.suite_options(),
                *self.flags,
            ]
        )
        self.base = self.wait_for_log(LISTENING, "the service to listen").group(1)

    def cli(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``twisted-hooks ARGV`` with the service's ``--database`` and ``--config``
        (none when bare), in the service's directory and environment; with ``check``, fail
        unless it exits 0."""
        result = subprocess.run(
            [*self.command, *argv, *self.suite_options()],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=DEADLINE,
        )
        if check:
            assert result.returncode == 0, result.stderr
        return result

    def token(self, name: str, scopes: str = "publish,subscribe", owner: str = "") -> str:
        """A new API token made with ``twisted-hooks token create``."""
        argv = ["token", "create", name, "--scopes", scopes]
        if owner:
            argv += ["--owner", owner]
        return self.cli(*argv).stdout.strip()

    def request(
        self,
        method: str,
        path: str,
        token: str | None = None,
        body: object = None,
        raw: bytes | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, dict[str, str], Any]:
        """One API request; the status, headers and decoded JSON (or text) answer."""
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path.lstrip("/"), data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", content_type)
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=DEADLINE) as response:
                status, headers, payload = response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            status, headers, payload = error.code, dict(error.headers), error.read()
        text = payload.decode("utf-8")
        try:
            return status, headers, json.loads(text) if text else None
        except ValueError:
            return status, headers, text


def run_failing(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Run ``twist hooks ARGV`` (text log) from the checkout to its end, with a one second
    ``shutdown_timeout``, for a service that is expected not to start."""
    return subprocess.run(
        [sys.executable, "-m", "twisted", "--log-format=text", "hooks", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        env={**os.environ, "TWISTED_HOOKS_HOOKS_SHUTDOWN_TIMEOUT": "1"},
    )
