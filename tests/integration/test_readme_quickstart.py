"""
The README's service quick start, followed as a reader follows it.

The commands are read from the ``console`` blocks of the section "Quick start: the
service" of README.md and run in order, in a temporary directory whose ``.venv/bin`` is
this interpreter's: the two long-running ones (``twist hooks`` and ``twisted-hooks
receive``) in terminals of their own (pseudo-terminals, so that ``twist`` logs text as
it does for a person), the others in one ``bash`` session, so that ``TOKEN=$(...)`` is
seen by the commands after it. What each block shows under a command must be what the
command printed, once ids, times, secrets, the version and the database's directory are
masked (the README shows one real run).

Two things differ from a reader's run, on purpose: the service and the receiver listen on
free ports instead of 8000 and 9000 (another program on this machine may hold those;
``TWISTED_HOOKS_HOOKS_LISTEN`` moves the service, ``--port`` the receiver, and the URLs
follow), and the receiver is given the secret the subscription answered with, as the
reader copies it from the answer shown above the command.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._service import DEADLINE, ROOT, free_port, wait_for

_SECTION = "## Quick start: the service"
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


# -- reading the README ----------------------------------------------------------------------


class Step:
    """A command of a console block, and the lines the README shows under it; or a text
    block (``command`` is ``None``): what the receiver prints."""

    def __init__(self, command: str | None, shown: list[str]) -> None:
        self.command = command
        self.shown = shown

    @property
    def long_running(self) -> bool:
        return self.command is not None and (
            " hooks" in self.command.split("--")[0] or " receive" in self.command
        )


def quick_start() -> list[Step]:
    """The steps of the section, in order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(_SECTION)
    end = text.index("\n## ", start + len(_SECTION))
    steps: list[Step] = []
    for language, body in _BLOCK.findall(text[start:end]):
        lines = body.splitlines()
        if language == "text":
            steps.append(Step(None, lines))
            continue
        if language != "console":
            continue
        for line in lines:
            if line.startswith("$ "):
                steps.append(Step(line[2:], []))
            elif steps and steps[-1].command is not None and steps[-1].command.endswith("\\"):
                steps[-1].command += "\n" + line
            else:
                steps[-1].shown.append(line)
    return steps


def mask(text: str) -> str:
    """What may differ between two runs, replaced by placeholders; runs of spaces (table
    columns) as one."""
    rules = [
        (r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<id>"),
        (r"whsec_[A-Za-z0-9+/=]+", "<secret>"),
        (r"thk_[A-Za-z0-9_-]+", "<token>"),
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d{4})", "<time>"),
        (r"\b\d\d:\d\d:\d\d\b", "<time>"),
        (r"(/[^\s()]+)?/twisted_hooks\.sqlite3", "<database>"),
        (r"twisted_hooks \d+\.\d+\.\d+\S*", "twisted_hooks <version>"),
        (r"127\.0\.0\.1:\d+", "127.0.0.1:<port>"),
        (r" +", " "),
    ]
    for pattern, placeholder in rules:
        text = re.sub(pattern, placeholder, text)
    return text.strip()


def assert_shown(step: Step, printed: str) -> None:
    """Every line the README shows for ``step`` is a line ``printed`` printed."""
    got = [mask(line) for line in printed.replace("\r", "").splitlines()]
    for line in step.shown:
        assert mask(line) in got, (
            f"README shows, for {step.command or 'the receiver'}:\n  {line}\nbut it printed:"
            f"\n{printed}"
        )


# -- running it ------------------------------------------------------------------------------


class Terminal:
    """A long-running command in a pseudo-terminal of its own."""

    def __init__(self, command: str, cwd: Path, env: dict[str, str]) -> None:
        master, slave = pty.openpty()
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc", "-c", f"exec {command}"],
            cwd=cwd,
            env=env,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
        )
        os.close(slave)
        self._master = master
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self._master, 65536)
            except OSError:
                return
            if not chunk:
                return
            self._chunks.append(chunk)

    def output(self) -> str:
        return b"".join(self._chunks).decode("utf-8", errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=DEADLINE)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=DEADLINE)
        self._reader.join(timeout=5)
        with contextlib.suppress(OSError):
            os.close(self._master)


class Shell:
    """One ``bash`` session: commands run one after the other, sharing variables."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.append(line)

    def run(self, command: str) -> str:
        """Run ``command``; its output (standard output and error); fail if it fails."""
        assert self.process.stdin is not None
        first = len(self._lines)
        marker = f"__done_{time.monotonic_ns()}__"
        self.process.stdin.write(f"{command}\necho; echo {marker} $?\n")
        self.process.stdin.flush()

        def finished() -> str | None:
            for line in self._lines[first:]:
                if line.startswith(marker):
                    return line
            return None

        status = int(wait_for(finished, f"the command {command!r}").split()[1])
        output = "".join(self._lines[first:]).split(marker)[0]
        assert status == 0, f"{command!r} failed ({status}):\n{output}"
        return output[:-1] if output.endswith("\n") else output

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=DEADLINE)


def wait_for_printed(terminal: Terminal, text: str, what: str) -> None:
    """Wait until ``terminal`` has printed ``text``; fail at once if it exits."""

    def printed() -> bool:
        if terminal.process.poll() is not None:
            raise AssertionError(f"{what} exited:\n{terminal.output()}")
        return text in terminal.output()

    wait_for(printed, f"{what} to print {text!r}")


def shows_all(printed: str, step: Step) -> str | None:
    """``printed`` if it holds every line the README shows for ``step``, else ``None``."""
    got = [mask(line) for line in printed.splitlines()]
    return printed if all(mask(line) in got for line in step.shown) else None


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    started: list[Terminal] = []
    yield started
    for terminal in started:
        terminal.stop()


def test_readme_service_quick_start(tmp_path: Path, terminals: list[Terminal]) -> None:
    """The README's service quick start, run command by command: the service starts and
    names its database, the token and the subscription are made, ``twisted-hooks
    receive`` prints the published event with both signatures valid, and the delivery log
    says delivered; everything the README shows under each command is what it printed."""
    steps = quick_start()
    commands = [step.command for step in steps if step.command is not None]
    assert any(c.startswith(".venv/bin/twist hooks --allow-network") for c in commands)
    assert any(c.startswith(".venv/bin/twisted-hooks receive") for c in commands)
    assert not any("receiver.py" in c or "dev.ini" in c for c in commands)

    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "bin").symlink_to(Path(sys.executable).parent)
    api, hooks = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWISTED_HOOKS_")}
    env["TWISTED_HOOKS_HOOKS_LISTEN"] = str(api)

    def ports(command: str) -> str:
        return command.replace("127.0.0.1:8000", f"127.0.0.1:{api}").replace(
            "127.0.0.1:9000", f"127.0.0.1:{hooks}"
        )

    shell = Shell(tmp_path, env)
    secret: str | None = None
    receiver: Terminal | None = None
    try:
        for step in steps:
            if step.command is None:  # what the receiver prints
                assert receiver is not None, "the README shows a receiver's output first"
                wait_for_printed(receiver, "answered 204", "the receiver to print the delivery")
                assert_shown(step, receiver.output())
                continue
            command = ports(step.command)
            if step.long_running:
                if " receive" in command:
                    assert secret is not None, "the README subscribes before receiving"
                    command = re.sub(r"'whsec_[^']*'", f"'{secret}'", command)
                    command += f" --port {hooks}"
                terminal = Terminal(command, tmp_path, env)
                terminals.append(terminal)
                wait_for_printed(terminal, "listening on http://127.0.0.1:", f"{command!r}")
                if " receive" in command:
                    receiver = terminal
                assert_shown(step, terminal.output())
                continue
            if "twisted-hooks deliveries" in command:
                # The receiver has printed the delivery; the service records it a moment
                # later: what the README shows is what this command prints once it has.
                printed = wait_for(
                    lambda command=command, step=step: shows_all(shell.run(command), step),
                    "the delivery log to say delivered",
                )
            else:
                printed = shell.run(command)
            assert_shown(step, printed)
            if '"hmac_secret"' in printed:
                secret = json.loads(printed.splitlines()[-1])["hmac_secret"]
    finally:
        shell.close()
    assert receiver is not None
    received = receiver.output()
    assert "Hook-HMAC: valid (sha256)" in received
    assert "webhook-signature (v1): valid" in received


# -- the README's Python programs ------------------------------------------------------------


def python_blocks() -> list[str]:
    """The README's ``python`` code blocks, in order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, re.S)


def run_program(source: str, cwd: Path) -> str:
    """Run ``source`` as a program of its own from ``cwd``; its standard output."""
    program = cwd / "program.py"
    program.write_text(source, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(program)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_readme_first_look_runs_as_copied(tmp_path: Path) -> None:
    """The README's first Python program, pasted into a file, runs and prints each
    handler's outcome."""
    first = python_blocks()[0]
    assert "EventDispatcher" in first
    printed = run_program(first, tmp_path)
    assert "audit susan created" in printed
    assert "notify admins of susan created" in printed
    assert "during __main__.main.<locals>.notify_admins True" in printed


def test_readme_webhooks_program_delivers_to_the_development_receiver(
    tmp_path: Path, terminals: list[Terminal]
) -> None:
    """The README's webhooks program, pasted into a file with only the receiver's port
    changed to a free one, delivers to ``twisted-hooks receive`` on 127.0.0.1 through
    ``allowed_networks`` (no configuration file, no validator to write)."""
    program = python_blocks()[1]
    assert "allowed_networks" in program
    port = free_port()
    program = program.replace("127.0.0.1:9000", f"127.0.0.1:{port}")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    receiver = Terminal(
        f"{Path(sys.executable).parent / 'twisted-hooks'} receive --port {port}", tmp_path, env
    )
    terminals.append(receiver)
    wait_for_printed(receiver, "listening on", "twisted-hooks receive")
    printed = run_program(program, tmp_path)
    delivered = re.search(r"^delivered (\S+)$", printed, re.M)
    assert delivered, printed
    wait_for_printed(receiver, f"delivery {delivered.group(1)}", "twisted-hooks receive")
    assert '"order": 42' in receiver.output()
