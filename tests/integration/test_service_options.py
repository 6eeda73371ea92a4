"""
The options of ``twist hooks`` (:class:`twisted_hooks.service.tap.Options`) in process:
the listen endpoint, the database chosen and shown, and the help of every option. The
real ``twist hooks`` meets the same rules in tests/integration/test_service_cli_e2e.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.python import usage

from twisted_hooks.service._database import (
    absolute_database,
    describe_database,
    sqlite_path,
)
from twisted_hooks.service.tap import LISTEN_FORMS, Options, listen_endpoint


def parsed(*argv: str) -> Options:
    options = Options()
    options.parseOptions(list(argv))
    return options


# -- --listen --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "endpoint"),
    [
        ("8000", "tcp:8000:interface=127.0.0.1"),
        (" 9001 ", "tcp:9001:interface=127.0.0.1"),
        ("0", "tcp:0:interface=127.0.0.1"),
        ("tcp:8000:interface=0.0.0.0", "tcp:8000:interface=0.0.0.0"),
        ("tcp6:8000:interface=\\:\\:1", "tcp6:8000:interface=\\:\\:1"),
        ("unix:/run/hooks.sock", "unix:/run/hooks.sock"),
    ],
)
def test_listen_forms(given: str, endpoint: str) -> None:
    """A bare port number means that port on 127.0.0.1 only; endpoint descriptions
    Twisted parses are kept as they are."""
    assert listen_endpoint(given) == endpoint


@pytest.mark.parametrize(
    ("given", "detail"),
    [
        ("70000", "the port must be 0 to 65535"),
        ("tcp:70000", "the port must be 0 to 65535"),
        ("tcp:http", "is not an endpoint description"),
        ("foo:8000", "Unknown endpoint type: 'foo'"),
        ("", "is not an endpoint description"),
        ("tcp:8000:colour=blue", "is not an endpoint description"),
        ("localhost:8000", "(for port 8000 of localhost: tcp:8000:interface=127.0.0.1)"),
        ("192.168.1.5:8000", "(for port 8000 of 192.168.1.5: tcp:8000:interface=192.168.1.5)"),
        ("[::1]:8000", "(for port 8000 of ::1: tcp6:8000:interface=\\:\\:1)"),
    ],
)
def test_bad_listen_names_the_forms(given: str, detail: str) -> None:
    """Anything else is refused in one line that quotes the text, says what is wrong
    (with the description meant, for ``HOST:PORT``), and names the valid forms."""
    with pytest.raises(ValueError) as raised:
        listen_endpoint(given, "--listen")
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"--listen {given!r}")
    assert detail in message
    assert message.endswith(f"use {LISTEN_FORMS}")
    for form in ("PORT", "tcp:PORT:interface=ADDR", "unix:PATH"):
        assert form in message


def test_listen_option() -> None:
    """``--listen 8000`` gives the service ``tcp:8000:interface=127.0.0.1``; a bad one is
    a usage error naming the option and the forms."""
    config = parsed("--listen", "8000", "--database", "memory:").service_config
    assert config is not None
    assert config.listen == "tcp:8000:interface=127.0.0.1"
    with pytest.raises(usage.UsageError) as raised:
        parsed("--listen", "http://127.0.0.1:8000/")
    assert str(raised.value).startswith("--listen 'http://127.0.0.1:8000/' is not an endpoint")
    assert "tcp:PORT:interface=ADDR" in str(raised.value)


def test_listen_from_the_configuration(tmp_path: Path) -> None:
    """``[hooks] listen`` follows the same rules, and its errors name it."""
    config = tmp_path / "hooks.ini"
    config.write_text("[hooks]\nlisten = 8123\n")
    service_config = parsed("--config", str(config), "--database", "memory:").service_config
    assert service_config is not None
    assert service_config.listen == "tcp:8123:interface=127.0.0.1"
    config.write_text("[hooks]\nlisten = somewhere:80\n")
    with pytest.raises(usage.UsageError) as raised:
        parsed("--config", str(config))
    assert str(raised.value).startswith("[hooks] listen 'somewhere:80'")


# -- the database ----------------------------------------------------------------------------


def test_database_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default database is the file in the current directory, given to the service by
    its absolute path; the options say it is the default."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TWISTED_HOOKS_DATABASE", raising=False)
    monkeypatch.delenv("TWISTED_HOOKS_HOOKS_DATABASE", raising=False)
    options = parsed()
    assert options.service_config is not None
    assert options.service_config.database == f"sqlite:{tmp_path / 'twisted_hooks.sqlite3'}"
    assert options.database_source is not None
    assert options.database_source.startswith("the default")


def test_database_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``TWISTED_HOOKS_DATABASE`` names the service's database when ``--database`` does
    not; ``--database`` wins over it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TWISTED_HOOKS_DATABASE", "sqlite:env.db")
    options = parsed()
    assert options.service_config is not None
    assert options.service_config.database == f"sqlite:{tmp_path / 'env.db'}"
    assert options.database_source == "TWISTED_HOOKS_DATABASE"
    options = parsed("--database", "sqlite:option.db")
    assert options.service_config is not None
    assert options.service_config.database == f"sqlite:{tmp_path / 'option.db'}"
    assert options.database_source == "--database"
    monkeypatch.setenv("TWISTED_HOOKS_DATABASE", "mysql://nope")
    with pytest.raises(usage.UsageError) as raised:
        parsed()
    assert "mysql://nope" in str(raised.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("sqlite:/var/lib/hooks.db", "/var/lib/hooks.db"),
        ("sqlite:///var/lib/hooks.db", "/var/lib/hooks.db"),
        ("memory:", "memory: (in memory; nothing is kept)"),
        ("postgresql://hooks@db:5432/hooks", "postgresql://hooks@db:5432/hooks"),
        ("postgresql://hooks:s3cret@db:5432/hooks", "postgresql://hooks:***@db:5432/hooks"),
        ("postgresql://db/hooks?password=s3cret&sslmode=require", None),
        ("host=db dbname=hooks password=s3cret", "host=db dbname=hooks password=***"),
    ],
)
def test_describe_database(url: str, shown: str | None) -> None:
    """A database is shown as an absolute SQLite path or a URL without its password."""
    described = describe_database(url)
    assert "s3cret" not in described
    if shown is not None:
        assert described == shown


def test_relative_paths(tmp_path: Path) -> None:
    """Relative SQLite paths are made absolute against the directory given; absolute ones
    and other URLs are unchanged."""
    base = str(tmp_path)
    assert absolute_database("sqlite:a/b.db", base) == f"sqlite:{tmp_path / 'a' / 'b.db'}"
    assert absolute_database("sqlite:/x.db", base) == "sqlite:/x.db"
    assert absolute_database("sqlite:///x.db", base) == "sqlite:///x.db"
    assert absolute_database("memory:", base) == "memory:"
    assert absolute_database("postgresql://db/h", base) == "postgresql://db/h"
    assert sqlite_path("sqlite:///srv/h%20s.db") == "/srv/h s.db"
    assert sqlite_path("postgresql://db/h") is None


# -- help ------------------------------------------------------------------------------------


def test_every_option_has_help() -> None:
    """Every option of ``twist hooks`` has help text: the parameters and the ``opt_``
    methods, whose docstrings are their help."""
    options = Options()
    for name, _short, _default, text in options.optParameters:
        assert text and len(text) > 20, name
    for attribute in dir(options):
        if attribute.startswith("opt_"):
            doc = getattr(options, attribute).__doc__
            assert doc and doc.strip(), attribute
    printed = str(options)
    for option in ("--listen", "--database", "--config", "--allow-network", "PORT"):
        assert option in printed
