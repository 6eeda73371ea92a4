"""
Tests of the ``twisted-hooks`` command (:mod:`twisted_hooks.service.cli`), run in
process: :func:`~twisted_hooks.service.cli.main` with an argument list, a temporary SQLite
database and captured output, checking what is printed and the exit status.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import time
from pathlib import Path

import pytest

from twisted_hooks.service.cli import build_parser, main, read_headers
from twisted_hooks.webhooks.delivery import Delivery
from twisted_hooks.webhooks.sender import delivery_headers
from twisted_hooks.webhooks.signing import generate_secret
from twisted_hooks.webhooks.subscribers import Subscriber


class Run:
    """Runs the command against one database, remembering the output of the last run."""

    def __init__(self, tmp_path: Path) -> None:
        self.database = f"sqlite:{tmp_path / 'hooks.sqlite3'}"
        self.config = tmp_path / "hooks.ini"
        self.config.write_text("[validators]\nports =\nallowed_networks = 127.0.0.0/8\n")
        self.out = ""
        self.err = ""

    def __call__(self, *argv: str, database: bool = True) -> int:
        out, err = io.StringIO(), io.StringIO()
        extra = ["--database", self.database, "--config", str(self.config)] if database else []
        status = main([*argv, *extra], stdout=out, stderr=err, environ={})
        self.out, self.err = out.getvalue(), err.getvalue()
        return status

    def json(self) -> dict[str, object]:
        loaded = json.loads(self.out)
        assert isinstance(loaded, dict)
        return loaded


@pytest.fixture
def run(tmp_path: Path) -> Run:
    return Run(tmp_path)


# -- tokens ----------------------------------------------------------------------------------


def test_token_create_prints_only_the_token(run: Run, tmp_path: Path) -> None:
    """``token create`` prints the token's text, one line, nothing else, on standard
    output (so ``TOKEN=$(...)`` captures it); the database it used is named on standard
    error only; exit 0."""
    assert run("token", "create", "alice", "--scopes", "publish,subscribe") == 0
    lines = run.out.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("thk_")
    assert len(lines[0]) > 40
    assert run.err == f"twisted-hooks: database {tmp_path / 'hooks.sqlite3'} (--database)\n"


def test_token_list_shows_tokens_never_their_text(run: Run) -> None:
    """``token list`` shows name, owner and scopes, and never the token's text."""
    run("token", "create", "alice", "--scopes", "publish,admin", "--owner", "team-a")
    text = run.out.strip()
    assert run("token", "list") == 0
    assert text not in run.out
    header, row = run.out.splitlines()
    assert header.split()[:3] == ["NAME", "OWNER", "SCOPES"]
    assert row.split()[:3] == ["alice", "team-a", "admin,publish"]
    assert "active" in row


def test_token_create_twice_fails(run: Run) -> None:
    """A second token with a taken name fails with exit 1 and says so."""
    assert run("token", "create", "alice") == 0
    assert run("token", "create", "alice") == 1
    assert run.out == ""
    assert "alice" in run.err


def test_token_create_unknown_scope_fails(run: Run) -> None:
    """An unknown scope fails with exit 1, naming the valid scopes."""
    assert run("token", "create", "alice", "--scopes", "publish,root") == 1
    assert "root" in run.err
    assert "subscribe" in run.err


def test_token_revoke(run: Run) -> None:
    """``token revoke`` marks the token revoked in the list; an unknown name exits 1."""
    run("token", "create", "alice")
    assert run("token", "revoke", "alice") == 0
    run("token", "list")
    assert "revoked" in run.out.splitlines()[1]
    assert run("token", "revoke", "bob") == 1
    assert "no token is named 'bob'" in run.err


# -- the database ----------------------------------------------------------------------------


def test_migrate(run: Run) -> None:
    """``migrate`` creates the database and reports the schema version."""
    assert run("migrate") == 0
    assert "schema version" in run.out


def test_database_that_cannot_be_opened(run: Run, tmp_path: Path) -> None:
    """A database in a missing directory fails with exit 1 and a message naming it."""
    status = main(
        ["migrate", "--database", f"sqlite:{tmp_path}/missing/x.db"],
        stdout=io.StringIO(),
        stderr=(err := io.StringIO()),
        environ={},
    )
    assert status == 1
    assert "does not exist" in err.getvalue()
    assert "Traceback" not in err.getvalue()


def test_unknown_database_url_is_a_usage_error(run: Run) -> None:
    """A store URL of no known form is a usage error (exit 2) naming the forms."""
    status = main(
        ["list", "--database", "mysql://x"],
        stdout=io.StringIO(),
        stderr=(err := io.StringIO()),
        environ={},
    )
    assert status == 2
    assert "sqlite:PATH" in err.getvalue()


def test_bad_configuration_is_a_usage_error(run: Run, tmp_path: Path) -> None:
    """A configuration file with an unknown key is a usage error (exit 2) naming it."""
    bad = tmp_path / "bad.ini"
    bad.write_text("[hooks]\ntimeuot = 3\n")
    status = main(
        ["list", "--config", str(bad)], stdout=io.StringIO(), stderr=(err := io.StringIO())
    )
    assert status == 2
    assert "timeuot" in err.getvalue()


def test_usage_errors(run: Run) -> None:
    """No command, an unknown command or a missing argument exit 2 with the usage."""
    assert run(database=False) == 2
    assert "usage:" in run.err
    assert run("bogus", database=False) == 2
    assert "invalid choice" in run.err
    assert run("subscribe", "order.*") == 2
    assert "url" in run.err


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    """``--help`` prints the commands and exits 0."""
    assert main(["--help"]) == 0
    printed = capsys.readouterr().out
    for command in ("token", "subscribe", "send", "deliveries", "verify"):
        assert command in printed


# -- subscribers -----------------------------------------------------------------------------


def test_subscribe_list_unsubscribe(run: Run) -> None:
    """``subscribe`` prints the subscriber as JSON (with its secret), ``list`` shows it,
    ``unsubscribe`` removes it."""
    assert run("subscribe", "order.*", "http://127.0.0.1:8080/hooks", "--owner", "alice") == 0
    subscriber = run.json()
    assert subscriber["event"] == "order.*"
    assert subscriber["user"] == "alice"
    assert str(subscriber["hmac_secret"]).startswith("whsec_")
    assert run("list") == 0
    assert str(subscriber["id"]) in run.out
    assert run("unsubscribe", str(subscriber["id"])) == 0
    run("list")
    assert str(subscriber["id"]) not in run.out


def test_subscribe_refused_by_the_validators(run: Run, tmp_path: Path) -> None:
    """A URL the recipient validators refuse (port 8080 with the default ports) exits 1
    and points at the [validators] section."""
    status = main(
        ["subscribe", "order.*", "http://example.com:8080/", "--database", run.database],
        stdout=io.StringIO(),
        stderr=(err := io.StringIO()),
        environ={},
    )
    assert status == 1
    assert "8080" in err.getvalue()
    assert "[validators]" in err.getvalue()


def test_subscribe_bad_pattern(run: Run) -> None:
    """An invalid event pattern exits 1 with the reason."""
    assert run("subscribe", "order..x", "http://127.0.0.1:8080/") == 1
    assert "cannot subscribe" in run.err


def test_unsubscribe_unknown(run: Run) -> None:
    """Removing an unknown subscriber exits 1."""
    run("migrate")
    assert run("unsubscribe", "00000000-0000-0000-0000-000000000000") == 1
    assert "no subscriber" in run.err


# -- events and deliveries -------------------------------------------------------------------


def test_send_enqueues_deliveries(run: Run) -> None:
    """``send`` stores one pending delivery per matching subscriber and attempts none;
    ``deliveries`` lists them."""
    run("subscribe", "order.*", "http://127.0.0.1:8080/a")
    run("subscribe", "user.*", "http://127.0.0.1:8080/b")
    assert run("send", "order.paid", "--data", '{"order": 1}') == 0
    result = run.json()
    assert result["deliveries"] == 1
    assert result["duplicate"] is False
    assert run("deliveries") == 0
    rows = run.out.splitlines()[1:]
    assert len(rows) == 1
    assert rows[0].split()[1:3] == ["pending", "order.paid"]
    assert run("deliveries", "--status", "dead") == 0
    assert run.out.splitlines()[1:] == []


def test_send_with_an_id_is_idempotent(run: Run) -> None:
    """Sending an event id a second time delivers nothing and says it is a duplicate."""
    run("subscribe", "order.*", "http://127.0.0.1:8080/a")
    assert run("send", "order.paid", "--id", "evt-1") == 0
    assert run.json()["deliveries"] == 1
    assert run("send", "order.paid", "--id", "evt-1") == 0
    assert run.json() == {"id": "evt-1", "deliveries": 0, "duplicate": True}


def test_send_respects_owners(run: Run) -> None:
    """A subscriber owned by alice receives alice's events, not bob's."""
    run("subscribe", "order.*", "http://127.0.0.1:8080/a", "--owner", "alice")
    run("send", "order.paid", "--sender", "bob")
    assert run.json()["deliveries"] == 0
    run("send", "order.paid", "--sender", "alice")
    assert run.json()["deliveries"] == 1


def test_send_bad_data(run: Run) -> None:
    """Data that is not JSON is a usage error; a bad event name exits 1."""
    assert run("send", "order.paid", "--data", "{nope") == 2
    assert "--data must be JSON" in run.err
    assert run("send", "bad name!") == 1
    assert "cannot send" in run.err


def test_retry_errors(run: Run) -> None:
    """``retry`` of an unknown delivery, or of one that is not dead, exits 1."""
    run("migrate")
    assert run("retry", "nope") == 1
    assert "no delivery has the id" in run.err
    run("subscribe", "order.*", "http://127.0.0.1:8080/a")
    run("send", "order.paid")
    run("deliveries")
    delivery_id = run.out.splitlines()[1].split()[0]
    assert run("retry", delivery_id) == 1
    assert "cannot retry" in run.err


# -- verify ----------------------------------------------------------------------------------


def signed(tmp_path: Path, secret: str, digest: str = "sha256") -> tuple[Path, Path]:
    """Headers and body of a delivery signed by the real sender, written as curl -D does."""
    subscriber = Subscriber(
        event="order.*", url="https://example.com/hooks", secret=secret, digest=digest
    )
    body = b'{"order": 42, "total": "19.90"}'
    delivery = Delivery(
        id="d2b5c3c8-6f5e-4a43-8d8b-5f0b4f3b9f10",
        event="order.paid",
        event_id="e1",
        subscriber=subscriber,
        body=body,
        created_at=time.time(),
        next_attempt_at=time.time(),
    )
    headers = delivery_headers(delivery, subscriber, int(time.time()))
    headers_file = tmp_path / "headers.txt"
    lines = ["POST /hooks HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    headers_file.write_text("\r\n".join(lines))
    body_file = tmp_path / "body.json"
    body_file.write_bytes(body)
    return headers_file, body_file


def verify_argv(secret: str, headers: Path, body: Path, *extra: str) -> list[str]:
    return ["verify", "--secret", secret, "--headers", str(headers), "--body", str(body), *extra]


@pytest.mark.parametrize("secret", [generate_secret(), "plain-secret"])
def test_verify_a_real_delivery(run: Run, tmp_path: Path, secret: str) -> None:
    """``verify`` accepts headers and body made by the sender's ``delivery_headers``,
    with a ``whsec_`` secret and with a plain one; exit 0."""
    headers, body = signed(tmp_path, secret)
    assert run(*verify_argv(secret, headers, body), database=False) == 0
    assert run.out.startswith("valid")


def test_verify_other_digest(run: Run, tmp_path: Path) -> None:
    """``--digest`` checks a Hook-HMAC made with that digest."""
    secret = generate_secret()
    headers, body = signed(tmp_path, secret, "sha512")
    assert run(*verify_argv(secret, headers, body), database=False) == 1
    assert "Hook-HMAC does not match" in run.err
    assert run(*verify_argv(secret, headers, body, "--digest", "sha512"), database=False) == 0


def test_verify_headers_as_json(run: Run, tmp_path: Path) -> None:
    """A headers file holding a JSON object is read too."""
    secret = generate_secret()
    headers, body = signed(tmp_path, secret)
    as_json = tmp_path / "headers.json"
    as_json.write_text(json.dumps(read_headers(headers.read_text())))
    assert run(*verify_argv(secret, as_json, body), database=False) == 0


def test_verify_tampered_body(run: Run, tmp_path: Path) -> None:
    """A body changed after signing is refused: exit 1 with the reason."""
    secret = generate_secret()
    headers, body = signed(tmp_path, secret)
    body.write_bytes(body.read_bytes().replace(b"42", b"43"))
    assert run(*verify_argv(secret, headers, body), database=False) == 1
    assert run.err.startswith("twisted-hooks: invalid: Hook-HMAC")
    assert run.out == ""


def test_verify_wrong_secret(run: Run, tmp_path: Path) -> None:
    """Another secret is refused: exit 1."""
    headers, body = signed(tmp_path, generate_secret())
    assert run(*verify_argv(generate_secret(), headers, body), database=False) == 1
    assert "invalid" in run.err


def test_verify_standard_signature_checked(run: Run, tmp_path: Path) -> None:
    """A valid Hook-HMAC with a forged webhook-signature is refused, naming the header."""
    secret = generate_secret()
    headers, body = signed(tmp_path, secret)
    text = headers.read_text()
    forged = "\n".join(
        "webhook-signature: v1,AAAA" if line.startswith("webhook-signature") else line
        for line in text.splitlines()
    )
    headers.write_text(forged)
    assert run(*verify_argv(secret, headers, body), database=False) == 1
    assert "webhook-signature" in run.err


def test_verify_old_timestamp(run: Run, tmp_path: Path) -> None:
    """A delivery older than the tolerance is refused; ``--tolerance`` widens it."""
    secret = generate_secret()
    subscriber = Subscriber(event="a", url="https://example.com/", secret=secret)
    delivery = Delivery(
        id="d1",
        event="a",
        event_id="e1",
        subscriber=subscriber,
        body=b"{}",
        created_at=0.0,
        next_attempt_at=0.0,
    )
    old = delivery_headers(delivery, subscriber, int(time.time()) - 3600)
    headers = tmp_path / "h.json"
    headers.write_text(json.dumps(old))
    body = tmp_path / "b"
    body.write_bytes(b"{}")
    assert run(*verify_argv(secret, headers, body), database=False) == 1
    assert "timestamp" in run.err.lower()
    found = re.search(r"widen the window with --tolerance (\d+)$", run.err.strip())
    assert found is not None, run.err
    assert 3600 < int(found.group(1)) < 3700
    assert (
        run(*verify_argv(secret, headers, body, "--tolerance", found.group(1)), database=False)
        == 0
    )
    assert run(*verify_argv(secret, headers, body, "--tolerance", "7200"), database=False) == 0


def test_verify_missing_header(run: Run, tmp_path: Path) -> None:
    """Headers without Hook-HMAC are refused, naming it."""
    headers = tmp_path / "h.txt"
    headers.write_text("Content-Type: application/json\n")
    body = tmp_path / "b"
    body.write_bytes(b"{}")
    assert run(*verify_argv("s", headers, body), database=False) == 1
    assert "Hook-HMAC header is missing" in run.err


def test_verify_unreadable_files(run: Run, tmp_path: Path) -> None:
    """A missing file, or a headers file that is not headers, is a usage error (exit 2)."""
    body = tmp_path / "b"
    body.write_bytes(b"{}")
    assert run(*verify_argv("s", tmp_path / "nope", body), database=False) == 2
    assert "cannot read" in run.err
    garbage = tmp_path / "g"
    garbage.write_text("this is not a header\n")
    assert run(*verify_argv("s", garbage, body), database=False) == 2
    assert "not 'Name: value'" in run.err


# -- which database --------------------------------------------------------------------------


def cli(argv: list[str], environ: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run the command in process: its exit status, standard output and standard error."""
    out, err = io.StringIO(), io.StringIO()
    status = main(argv, stdout=out, stderr=err, environ={} if environ is None else environ)
    return status, out.getvalue(), err.getvalue()


READ_ONLY = [
    ["token", "list"],
    ["token", "revoke", "alice"],
    ["list"],
    ["unsubscribe", "00000000-0000-0000-0000-000000000000"],
    ["deliveries"],
    ["retry", "00000000-0000-0000-0000-000000000000"],
]


@pytest.mark.parametrize("argv", READ_ONLY, ids=" ".join)
def test_commands_that_read_never_create_a_database(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run where there is no database, a command that reads or changes existing records
    fails with exit 1 and one line naming the absolute path of the file it looked for and
    why that one (the default, in the current directory), and creates no file."""
    monkeypatch.chdir(tmp_path)
    status, out, err = cli(argv)
    assert status == 1
    assert out == ""
    expected = tmp_path / "twisted_hooks.sqlite3"
    assert err.count("\n") == 1, err
    assert err.startswith(f"twisted-hooks: no database at {expected} (the default, ")
    assert "in the current directory" in err
    assert "--database" in err and "TWISTED_HOOKS_DATABASE" in err
    assert list(tmp_path.iterdir()) == []


def test_relative_database_is_shown_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative ``sqlite:`` path is the file in the current directory, and standard
    error names its absolute path; a second command elsewhere with the absolute path
    finds the same records."""
    monkeypatch.chdir(tmp_path)
    status, out, err = cli(["token", "create", "alice", "--database", "sqlite:hooks.db"])
    assert status == 0, err
    assert err == f"twisted-hooks: database {tmp_path / 'hooks.db'} (--database)\n"
    assert (tmp_path / "hooks.db").exists()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    status, out, _ = cli(["token", "list", "--database", f"sqlite:{tmp_path / 'hooks.db'}"])
    assert status == 0
    assert "alice" in out


def test_database_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``TWISTED_HOOKS_DATABASE`` names the database when ``--database`` does not, and
    standard error says it came from there."""
    monkeypatch.chdir(tmp_path)
    environ = {"TWISTED_HOOKS_DATABASE": f"sqlite:{tmp_path / 'env.db'}"}
    status, _, err = cli(["token", "create", "alice"], environ)
    assert status == 0, err
    assert err == f"twisted-hooks: database {tmp_path / 'env.db'} (TWISTED_HOOKS_DATABASE)\n"
    status, out, _ = cli(["token", "list"], environ)
    assert "alice" in out
    assert not (tmp_path / "twisted_hooks.sqlite3").exists()


def test_database_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command line wins over ``TWISTED_HOOKS_DATABASE``, which wins over
    ``TWISTED_HOOKS_HOOKS_DATABASE``, which wins over ``[hooks] database`` of the
    configuration, which wins over the default; each source is named."""
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "hooks.ini"
    config.write_text("[hooks]\ndatabase = sqlite:from-config.db\n")
    general = {"TWISTED_HOOKS_HOOKS_DATABASE": "sqlite:from-general.db"}
    short = {"TWISTED_HOOKS_DATABASE": "sqlite:from-env.db"}
    cases = [
        ([], {}, "twisted_hooks.sqlite3", "the default, sqlite:twisted_hooks.sqlite3"),
        (["--config", str(config)], {}, "from-config.db", f"[hooks] database in {config}"),
        (["--config", str(config)], general, "from-general.db", "TWISTED_HOOKS_HOOKS_DATABASE"),
        (["--config", str(config)], {**general, **short}, "from-env.db", "TWISTED_HOOKS_DATABASE"),
        (
            ["--config", str(config), "--database", "sqlite:from-option.db"],
            {**general, **short},
            "from-option.db",
            "--database",
        ),
    ]
    for extra, environ, name, source in cases:
        status, _, err = cli(["migrate", *extra], environ)
        assert status == 0, err
        assert err.startswith(f"twisted-hooks: database {tmp_path / name} ({source}"), err
        assert (tmp_path / name).exists()


def test_global_options_before_the_command(run: Run) -> None:
    """``--database`` and ``--config`` are accepted before the command (and its action)
    as after it; given in both places, the one after the command wins."""
    status, out, err = cli(
        ["--database", run.database, "--config", str(run.config), "token", "create", "alice"]
    )
    assert status == 0, err
    assert out.startswith("thk_")
    status, out, _ = cli(["--database", run.database, "token", "list"])
    assert "alice" in out
    status, out, _ = cli(["token", "list", "--database", run.database])
    assert "alice" in out
    status, out, err = cli(
        ["--database", "sqlite:/nonexistent/x.db", "token", "list", "--database", run.database]
    )
    assert status == 0, err
    assert "alice" in out
    status, _, err = cli(
        [
            "--config",
            str(run.config),
            "subscribe",
            "a.*",
            "http://127.0.0.1:9000/",
            "--database",
            run.database,
        ]
    )
    assert status == 0, err


def test_postgresql_password_is_never_printed() -> None:
    """Standard error names a PostgreSQL database by its URL without the password
    (a connection failure is the command's failure, exit 1, without the password)."""
    url = "postgresql://hooks:s3cret@127.0.0.1:1/hooks"
    status, _, err = cli(["token", "list", "--database", url])
    assert "s3cret" not in err
    assert "twisted-hooks: database postgresql://hooks:***@127.0.0.1:1/hooks (--database)" in err
    assert status == 1


@pytest.mark.skipif(
    not os.environ.get("TWISTED_HOOKS_TEST_POSTGRES"), reason="TWISTED_HOOKS_TEST_POSTGRES unset"
)
def test_postgresql_database_is_named() -> None:
    """On PostgreSQL, the command names the database by its URL."""
    url = os.environ["TWISTED_HOOKS_TEST_POSTGRES"]
    status, out, err = cli(["migrate", "--database", url])
    assert status == 0, err
    assert err.startswith("twisted-hooks: database postgresql://")
    assert "schema version" in out


# -- help ------------------------------------------------------------------------------------


def parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    """Every parser of the command, by its command line."""
    found: list[tuple[str, argparse.ArgumentParser]] = []

    def walk(name: str, parser: argparse.ArgumentParser) -> None:
        found.append((name, parser))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child, sub in action.choices.items():
                    walk(f"{name} {child}", sub)

    walk("twisted-hooks", build_parser())
    return found


@pytest.mark.parametrize(("name", "parser"), parsers(), ids=[n for n, _ in parsers()])
def test_every_option_has_help(name: str, parser: argparse.ArgumentParser) -> None:
    """Every option and argument of every command has help text, and every command a
    description and examples in an epilog kept as written."""
    for action in parser._actions:
        if action.help == argparse.SUPPRESS:
            assert action.dest in ("database", "config"), (name, action.dest)
            continue
        assert action.help and len(action.help) > 8, (name, action.dest)
    assert parser.description, name
    if isinstance(parser.formatter_class, type) and name.count(" ") >= 1:
        assert issubclass(parser.formatter_class, argparse.RawDescriptionHelpFormatter)
        assert parser.epilog is not None and "examples:" in parser.epilog, name
        assert "twisted-hooks " in parser.epilog, name
    help_text = parser.format_help()
    assert max(len(line) for line in help_text.splitlines()) <= 88, (name, help_text)


def test_verify_lists_only_its_options(run: Run, tmp_path: Path) -> None:
    """``verify --help`` lists the options verify uses, not ``--database`` or ``--config``
    (which it accepts, and ignores, after the command as every command does)."""
    parser = dict(parsers())["twisted-hooks verify"]
    text = parser.format_help()
    for option in ("--secret", "--headers", "--body", "--digest", "--tolerance"):
        assert option in text
    assert "--database" not in text and "--config" not in text
    secret = generate_secret()
    headers, body = signed(tmp_path, secret)
    assert run(*verify_argv(secret, headers, body)) == 0


def test_help_of_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    """``COMMAND --help`` prints the command's description and its examples; exit 0."""
    for argv in (["token", "create"], ["receive"], ["verify"], ["deliveries"]):
        assert main([*argv, "--help"]) == 0
        printed = capsys.readouterr().out
        assert "examples:" in printed
        assert f"twisted-hooks {argv[0]}" in printed


def test_numbers_in_options_are_ascii_digits(run: Run) -> None:
    """``--limit``, ``--port``, ``--status`` and ``--tolerance`` take ASCII digits only: other
    scripts' digits (which int() and float() read) are a usage error naming the text."""
    for argv in (
        ("deliveries", "--limit", "\u0663"),
        ("receive", "--port", "\uff19\uff10\uff10\uff10"),
        ("receive", "--status", "2\u2070\u2074"),
        ("verify", "--secret", "s", "--headers", "h", "--body", "b", "--tolerance", "\u0665"),
    ):
        assert run(*argv) == 2, argv
        assert "digits 0-9" in run.err, (argv, run.err)
