"""
The package as it is published, met as a newcomer meets it.

``python -m build`` makes the sdist and, from the sdist, the wheel; the wheel is installed
with its runtime dependencies alone (no extra) into a fresh virtual environment, made once
for the session. There, from temporary directories (so that the checkout is not on
``sys.path``), the tests run every file of ``doc/examples/`` and compare what each program
prints with what its page says; run ``twist hooks --help`` and ``twisted-hooks --help``;
and deliver one webhook through the installed service. A second environment gets the wheel
with the ``docs`` extra only and builds the documentation with ``-W``.

Each step has a deadline. pip may reach the package index (it needs the dependencies);
a wheel cache configured for pip only makes it faster.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from tests._service import DEADLINE, LISTENING, ROOT, Program, Receiver, wait_for
from twisted_hooks.webhooks import verify, verify_standard

DOC = ROOT / "doc"
EXAMPLES = DOC / "examples"

#: The longest one pip or build command lasts, in seconds.
INSTALL_DEADLINE = 600.0

#: Names and folders of the checkout that are no part of a source tree to build from.
NOT_SOURCE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    "_build",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
    "_trial_temp",
    "dropin.cache",
    "*.sqlite3*",
    "tests.*",
)


def clean_environment(**extra: str) -> dict[str, str]:
    """This process's environment without what would reach into the checkout or its
    virtual environment."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONSTARTUP")
        and not name.startswith("TWISTED_HOOKS_")
    }
    environment.update(extra)
    return environment


def run(
    argv: list[str], cwd: Path, timeout: float = INSTALL_DEADLINE, **extra_env: str
) -> subprocess.CompletedProcess[str]:
    """Run a command to its end; fail the test, with its output, if it fails."""
    result = subprocess.run(
        argv,
        cwd=cwd,
        env=clean_environment(**extra_env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"{argv} failed:\n{result.stdout}\n{result.stderr}"
    return result


@attrs.frozen
class Built:
    """What ``python -m build`` made."""

    sdist: Path
    wheel: Path


@attrs.frozen
class Venv:
    """A virtual environment made by ``python -m venv``."""

    path: Path

    def bin(self, name: str) -> str:
        return str(self.path / "bin" / name)

    @property
    def python(self) -> str:
        return self.bin("python")

    def pip_install(self, *requirements: str) -> None:
        run([self.python, "-m", "pip", "install", "-q", *requirements], cwd=self.path)

    @classmethod
    def create(cls, path: Path) -> Venv:
        run([sys.executable, "-m", "venv", str(path)], cwd=path.parent)
        return cls(path)


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The sdist, and the wheel built from it, of a copy of the working tree."""
    work = tmp_path_factory.mktemp("build")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    tools = Venv.create(work / "tools")
    tools.pip_install("build")
    dist = work / "dist"
    run([tools.python, "-m", "build", "--outdir", str(dist), str(source)], cwd=work)
    [sdist] = dist.glob("*.tar.gz")
    [wheel] = dist.glob("*.whl")
    return Built(sdist=sdist, wheel=wheel)


@pytest.fixture(scope="session")
def venv(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """A fresh virtual environment with the wheel, its service, sync and redis extras (the
    examples use all three) and their dependencies only."""
    venv = Venv.create(tmp_path_factory.mktemp("wheel") / "venv")
    venv.pip_install(f"twisted_hooks[service,sync,redis] @ {built.wheel.as_uri()}")
    return venv


# -- the sdist and the wheel -----------------------------------------------------------------


def test_sdist_and_wheel_carry_what_an_install_needs(built: Built) -> None:
    """The sdist has the package's sources, its ``py.typed`` and the twistd dropin (the
    wheel was built from it, so it is enough to build from); the wheel has both too, and no
    ``__init__.py`` in ``twisted/`` or ``twisted/plugins/`` that would hide Twisted's
    own."""
    with tarfile.open(built.sdist) as sdist:
        top = sdist.getnames()[0].split("/")[0]
        names = {name.removeprefix(top + "/") for name in sdist.getnames()}
    for needed in (
        "pyproject.toml",
        "README.md",
        "twisted_hooks/__init__.py",
        "twisted_hooks/py.typed",
        "twisted/plugins/twisted_hooks_plugin.py",
    ):
        assert needed in names, f"the sdist lacks {needed}"
    with zipfile.ZipFile(built.wheel) as wheel:
        files = set(wheel.namelist())
    assert "twisted_hooks/py.typed" in files
    assert "twisted/plugins/twisted_hooks_plugin.py" in files
    assert "twisted/__init__.py" not in files
    assert "twisted/plugins/__init__.py" not in files
    assert not any(name.endswith("dropin.cache") for name in files)


def test_installed_commands_answer_help(venv: Venv, tmp_path: Path) -> None:
    """``twist hooks --help`` (the dropin is found where pip put it) and
    ``twisted-hooks --help`` run from the installed wheel, outside the checkout."""
    twist = run([venv.bin("twist"), "hooks", "--help"], cwd=tmp_path, timeout=DEADLINE)
    assert "--listen" in twist.stdout
    assert "--allow-network" in twist.stdout
    cli = run([venv.bin("twisted-hooks"), "--help"], cwd=tmp_path, timeout=DEADLINE)
    assert "token" in cli.stdout


def test_checkout_is_not_importable_in_the_venv(venv: Venv, tmp_path: Path) -> None:
    """The programs below run against the installed wheel, not the checkout: the
    environment's ``twisted_hooks`` lives in its own site-packages, and packages only the
    test extra brings (``standardwebhooks``) are absent."""
    where = run(
        [venv.python, "-c", "import twisted_hooks; print(twisted_hooks.__file__)"],
        cwd=tmp_path,
        timeout=DEADLINE,
    ).stdout.strip()
    assert Path(where).is_relative_to(venv.path), where
    missing = subprocess.run(
        [venv.python, "-c", "import standardwebhooks"],
        cwd=tmp_path,
        env=clean_environment(),
        capture_output=True,
        timeout=DEADLINE,
    )
    assert missing.returncode != 0


# -- a receiver and the installed service ----------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


class InstalledService(Program):
    """``twist hooks`` of a virtual environment, in a child process, in ``directory``
    (which is also its ``PYTHONPATH``, for listener modules)."""

    def __init__(self, venv: Venv, directory: Path, *options: str) -> None:
        # Listener modules are found on PYTHONPATH, as the service guide says.
        environment = clean_environment(PYTHONPATH=str(directory))
        super().__init__(directory, "service", cwd=directory, env=environment)
        self.venv = venv
        self.launch(
            [
                venv.bin("twist"),
                "--log-format=text",
                "hooks",
                *options,
                "--listen",
                "tcp:0:interface=127.0.0.1",
            ]
        )
        try:
            self.base = self.wait_for_log(LISTENING, "the service to listen").group(1)
        except BaseException:
            self.stop()
            raise

    def cli(self, *argv: str) -> str:
        """The venv's ``twisted-hooks ARGV``, in the service's directory; its output."""
        return run(
            [self.venv.bin("twisted-hooks"), *argv], cwd=self.directory, timeout=DEADLINE
        ).stdout

    def request(self, method: str, path: str, token: str, body: object) -> tuple[int, Any]:
        request = urllib.request.Request(
            self.base + path.lstrip("/"),
            data=json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=DEADLINE) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)

    def stop(self) -> None:
        """SIGTERM, and wait for the end (a kill if it does not come)."""
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.terminate()


@pytest.fixture
def start_service(venv: Venv) -> Iterator[Callable[..., InstalledService]]:
    started: list[InstalledService] = []

    def start(directory: Path, *options: str) -> InstalledService:
        service = InstalledService(venv, directory, *options)
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


LOCAL_CONFIG = """\
[validators]
ports =
allowed_networks = 127.0.0.0/8
"""


def test_one_delivery_through_the_installed_service(
    start_service: Callable[..., InstalledService], receiver: Receiver, tmp_path: Path
) -> None:
    """The installed ``twist hooks``, on a temporary SQLite file, with a configuration
    that allows 127.0.0.0/8 on any port: a token made with the installed
    ``twisted-hooks token create`` subscribes a receiver through the API, a published
    event arrives there signed with both signatures, and the delivery log says
    delivered."""
    (tmp_path / "local.ini").write_text(LOCAL_CONFIG)
    database = f"sqlite:{tmp_path / 'hooks.sqlite3'}"
    service = start_service(tmp_path, "--database", database, "--config", "local.ini")
    token = service.cli("token", "create", "alice", "--database", database).strip()

    status, hook = service.request(
        "POST", "/hooks/", token, {"event": "order.*", "url": receiver.url}
    )
    assert status == 201, hook
    status, published = service.request(
        "POST", "/events/", token, {"event": "order.paid", "data": {"order": 42}}
    )
    assert (status, published["deliveries"]) == (202, 1), published

    [(headers, body)] = wait_for(lambda: receiver.received, "the delivery")
    assert json.loads(body) == {"order": 42}
    assert headers["hook-event"] == "order.paid"
    verify_standard(hook["hmac_secret"], headers, body)
    assert verify(headers["hook-hmac"], "sha256", hook["hmac_secret"], body)

    def delivered() -> bool:
        _, log = service.request("GET", "/deliveries/?status=delivered", token, None)
        return len(log) == 1

    wait_for(delivered, "the delivery log to say delivered")


def test_refused_recipient_through_the_installed_service(
    start_service: Callable[..., InstalledService], receiver: Receiver, tmp_path: Path
) -> None:
    """Without a configuration, the installed service refuses a receiver on 127.0.0.1
    when it is subscribed (400, naming the url field), before anything is sent."""
    database = f"sqlite:{tmp_path / 'hooks.sqlite3'}"
    service = start_service(tmp_path, "--database", database)
    token = service.cli("token", "create", "alice", "--database", database).strip()
    status, error = service.request(
        "POST", "/hooks/", token, {"event": "order.*", "url": receiver.url}
    )
    assert (status, error.get("field")) == (400, "url"), error
    assert receiver.received == []


# -- the documentation's programs ------------------------------------------------------------


def printed_block(page: str, index: int) -> str:
    """The ``index``-th literal block that follows "It prints::" in ``doc/<page>.rst``."""
    text = (DOC / f"{page}.rst").read_text(encoding="utf-8")
    blocks = re.findall(r"It prints::\n\n((?:   .*\n|\n)+)", text)
    assert len(blocks) > index, f"doc/{page}.rst has no 'It prints::' block number {index}"
    lines = [line[3:] for line in blocks[index].rstrip().splitlines()]
    return "\n".join(lines) + "\n"


#: Each program of doc/examples/, the page that shows it and what it prints there.
PROGRAMS = [
    ("first_dispatcher.py", "quickstart", 0),
    ("quickstart_webhooks.py", "quickstart", 1),
    ("quickstart_blocking.py", "quickstart", 2),
    ("blocking_script.py", "sync", 0),
    ("webhooks_twisted.py", "webhooks", 0),
    ("webhooks_blocking.py", "webhooks", 1),
    ("durable_sqlite.py", "stores", 0),
    ("testing_webhooks.py", "testing", 0),
]
#: The files of doc/examples/ the service runs rather than Python: a configuration file,
#: a listener module, and a client that needs a running service.
SERVICE_FILES = ["twisted_hooks.ini", "tally_listener.py", "quickstart_service.py"]


def self_checking_programs() -> list[str]:
    """The other programs of doc/examples/: each checks itself (its tests, say) and says
    so with its exit status."""
    known = {script for script, _, _ in PROGRAMS} | set(SERVICE_FILES)
    return sorted(path.name for path in EXAMPLES.glob("*.py") if path.name not in known)


def test_every_example_is_run_by_the_suite() -> None:
    """Every file of doc/examples/ is run below: a program listed with its page, a file
    the service runs, or any other Python program, run for its exit status. A new file of
    another kind cannot be left out, and the lists name only files that exist."""
    present = {path.name for path in EXAMPLES.iterdir() if path.is_file()}
    listed = {script for script, _, _ in PROGRAMS} | set(SERVICE_FILES)
    assert listed <= present, f"listed but missing: {sorted(listed - present)}"
    assert present <= listed | set(self_checking_programs()), sorted(present - listed)


def copy_example(name: str, directory: Path) -> Path:
    """``doc/examples/<name>`` copied into ``directory``, as a reader would save it."""
    copy = directory / name
    shutil.copyfile(EXAMPLES / name, copy)
    return copy


@pytest.mark.parametrize(("script", "page", "block"), PROGRAMS)
def test_example_prints_what_its_page_says(
    venv: Venv, tmp_path: Path, script: str, page: str, block: int
) -> None:
    """Each program of doc/examples/, saved alone in an empty directory and run with the
    installed wheel's Python (the real reactor, a real receiver on 127.0.0.1 for the
    webhook programs), succeeds and prints what its page says it prints, line for
    line."""
    copy = copy_example(script, tmp_path)
    result = subprocess.run(
        [venv.python, str(copy)],
        cwd=tmp_path,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == printed_block(page, block)


def test_self_checking_examples_succeed(venv: Venv, tmp_path: Path) -> None:
    """Every other program of doc/examples/, saved alone in an empty directory and run with
    the installed wheel's Python, exits with status 0."""
    for script in self_checking_programs():
        copy = copy_example(script, tmp_path)
        result = subprocess.run(
            [venv.python, str(copy)],
            cwd=tmp_path,
            env=clean_environment(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"{script}:\n{result.stdout}\n{result.stderr}"


def quickstart_commands() -> list[str]:
    """The commands of the quick start's service section, in order, without ``$ ``."""
    text = (DOC / "quickstart.rst").read_text(encoding="utf-8")
    section = text.split("\nThe service\n-----------\n", 1)[1].split("\nIt prints::", 1)[0]
    return [line.strip()[2:] for line in section.splitlines() if line.strip().startswith("$ ")]


def test_quickstart_service_section_as_written(
    venv: Venv, start_service: Callable[..., InstalledService], tmp_path: Path
) -> None:
    """The quick start's service section, followed command by command in one directory
    with the installed wheel: the service starts with the options the page gives, the
    token command's output is the token, and quickstart_service.py prints what the page
    shows (a delivery to a receiver on 127.0.0.1, signature checked)."""
    commands = quickstart_commands()
    assert [command.split()[:2] for command in commands] == [
        ["twist", "hooks"],
        ["export", "TWISTED_HOOKS_TOKEN=$(twisted-hooks"],
        ["python", "quickstart_service.py"],
    ], commands
    options = commands[0].split()[2:]
    service = start_service(tmp_path, *options)
    token_command = re.fullmatch(r"export TWISTED_HOOKS_TOKEN=\$\((.*)\)", commands[1])
    assert token_command is not None, commands[1]
    token = service.cli(*token_command.group(1).split()[1:]).strip()
    assert re.fullmatch(r"\S+", token), token
    copy_example("quickstart_service.py", tmp_path)
    result = run(
        [venv.python, "quickstart_service.py"],
        cwd=tmp_path,
        timeout=60,
        TWISTED_HOOKS_TOKEN=token,
        TWISTED_HOOKS_URL=service.base,
    )
    assert result.stdout == printed_block("quickstart", 3)


def test_quickstart_service_client_errors(venv: Venv, tmp_path: Path) -> None:
    """quickstart_service.py without a token, with an address that is not a URL, or with
    no service listening, exits with one line saying what to do, not a traceback."""
    copy_example("quickstart_service.py", tmp_path)
    cases = [
        ({}, "set TWISTED_HOOKS_TOKEN"),
        ({"TWISTED_HOOKS_TOKEN": "t", "TWISTED_HOOKS_URL": "localhost:8000"}, "http://"),
        (
            {"TWISTED_HOOKS_TOKEN": "t", "TWISTED_HOOKS_URL": "http://127.0.0.1:9/"},
            "is it running?",
        ),
    ]
    for environment, said in cases:
        result = subprocess.run(
            [venv.python, "quickstart_service.py"],
            cwd=tmp_path,
            env=clean_environment(**environment),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 1, (environment, result.stderr)
        assert said in result.stderr
        assert "Traceback" not in result.stderr


def test_service_configuration_and_listener_examples(
    venv: Venv, start_service: Callable[..., InstalledService], tmp_path: Path
) -> None:
    """The installed service starts with doc/examples/twisted_hooks.ini (every section
    and key) plus a ``[listener:tally]`` section using doc/examples/tally_listener.py,
    and the tally listener counts a published event."""
    copy_example("tally_listener.py", tmp_path)
    config = tmp_path / "twisted_hooks.ini"
    config.write_text(
        (EXAMPLES / "twisted_hooks.ini").read_text(encoding="utf-8")
        + "\n[listener:tally]\nuse = tally_listener\nmatch.name = order.paid\nevery = 1\n"
    )
    database = f"sqlite:{tmp_path / 'hooks.sqlite3'}"
    service = start_service(tmp_path, "--database", database, "--config", str(config))
    token = service.cli("token", "create", "alice", "--database", database).strip()
    status, published = service.request(
        "POST", "/events/", token, {"event": "order.paid", "data": {"order": 1}}
    )
    assert status == 202, published
    wait_for(lambda: "tally: {'order.paid': 1}" in service.log(), "the tally listener's line")


# -- the documentation, with the docs extra only ---------------------------------------------


@pytest.fixture(scope="session")
def docs_venv(venv: Venv, built: Built) -> Venv:
    """The wheel's environment with the ``docs`` extra added, and nothing else. (The tests
    of this environment that need it without the extra come first in this file.)"""
    venv.pip_install(f"twisted_hooks[docs] @ {built.wheel.as_uri()}")
    return venv


def test_documentation_builds_with_only_the_docs_extra(docs_venv: Venv, tmp_path: Path) -> None:
    """With the ``docs`` extra alone (no Django, no test extra), the documentation builds
    with warnings as errors, its new pages and the data-flow picture are there, and the
    Django integration's API reference is complete: every public name of its modules has
    an entry."""
    from tests.integration.test_docs import API_MODULES, public_names

    no_django = subprocess.run(
        [docs_venv.python, "-c", "import django"],
        cwd=tmp_path,
        env=clean_environment(),
        capture_output=True,
        timeout=DEADLINE,
    )
    assert no_django.returncode != 0, "Django is installed: the build would not show much"
    html = tmp_path / "html"
    argv = [docs_venv.python, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html"]
    run([*argv, str(DOC), str(html)], cwd=tmp_path)
    for page in ("quickstart", "architecture", "troubleshooting", "faq", "receiving"):
        assert (html / f"{page}.html").exists(), page
    assert "data-flow.svg" in (html / "architecture.html").read_text(encoding="utf-8")
    api = (html / "api.html").read_text(encoding="utf-8")
    # A name is documented in its module, or where its package exports it
    # (twisted_hooks.contrib.django.webhook_model), or, for Q, with twisted_hooks itself.
    missing = [
        f"{module}.{name}"
        for module in API_MODULES
        if module.startswith("twisted_hooks.contrib.django")
        for name in public_names(module)
        if not any(
            f'id="{where}.{name}"' in api
            for where in (module, "twisted_hooks.contrib.django", "twisted_hooks")
        )
    ]
    assert not missing, f"not in the API reference built without Django: {missing}"
