"""
The ``twisted-hooks`` command's arguments: its parser (with every option's help, and
examples for every command), and the errors a command reports.

The global options, ``--database`` and ``--config``, are accepted before the command and
after it (``twisted-hooks --database X token create NAME`` and ``twisted-hooks token
create NAME --database X``); given in both places, the one after the command wins.
"""

from __future__ import annotations

import argparse
import textwrap
from typing import Any

from twisted_hooks._numbers import argument_decimal, argument_whole
from twisted_hooks._version import __version__
from twisted_hooks.service._database import DATABASE_ENV
from twisted_hooks.service.config import DEFAULT_DATABASE
from twisted_hooks.store.tokens import SCOPES
from twisted_hooks.webhooks.delivery import STATUSES
from twisted_hooks.webhooks.encoding import FORM, JSON
from twisted_hooks.webhooks.signing import DEFAULT_TOLERANCE, DIGEST_METHODS

__all__ = ["PROG", "CommandError", "UsageError", "build_parser"]

PROG = "twisted-hooks"


class CommandError(Exception):
    """A command failed; the message says why (printed on standard error, exit 1)."""


class UsageError(Exception):
    """Bad arguments or configuration (exit 2)."""


class _Parser(argparse.ArgumentParser):
    """Reports usage errors by raising, so :func:`main` returns 2 instead of exiting."""

    def error(self, message: str) -> Any:
        raise UsageError(f"{message}\n{self.format_usage().rstrip()}")


_FORMATTER = argparse.RawDescriptionHelpFormatter

_DATABASE_HELP = (
    f"the database: sqlite:PATH or postgresql://... (default: ${DATABASE_ENV}, else "
    f"[hooks] database of --config, else {DEFAULT_DATABASE} in the current directory); "
    "the path used is printed on standard error"
)
_CONFIG_HELP = "the service's configuration file (INI), for [hooks] database and [validators]"


def _global_options(parser: argparse.ArgumentParser, hidden: bool = False) -> None:
    """
    ``--database`` and ``--config``, accepted before the command (on the main parser) and
    after it (on each command's parser, where an option not given leaves the main
    parser's value alone). ``hidden``: accepted, unused and not listed.
    """
    suppress = argparse.SUPPRESS
    parser.add_argument(
        "--database",
        metavar="URL",
        default=suppress,
        help=suppress if hidden else _DATABASE_HELP,
    )
    parser.add_argument(
        "--config", metavar="FILE", default=suppress, help=suppress if hidden else _CONFIG_HELP
    )


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


_MAIN_EPILOG = f"""\
The service ('twist hooks') and this command must use the same database: run
both in the same directory, or give both the same --database or
${DATABASE_ENV}.

{
    _examples(
        "TOKEN=$(twisted-hooks token create alice --scopes publish,subscribe)",
        "twisted-hooks receive --port 9000 --secret whsec_...",
        "twisted-hooks --database sqlite:/var/lib/hooks/hooks.db deliveries --status dead",
        "twisted-hooks token create --help",
    )
}

exit status: 0 success, 1 the command failed (the reason is on standard
error), 2 usage error.
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command (for the documentation and the tests)."""
    parser = _Parser(
        prog=PROG,
        description=textwrap.fill(
            "Manage the twisted_hooks service's database (API tokens, subscribers, events "
            "and deliveries), receive deliveries while developing, and verify a delivery's "
            "signatures."
        ),
        epilog=_MAIN_EPILOG,
        formatter_class=_FORMATTER,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.set_defaults(database=None, config=None)
    _global_options(parser)
    commands = parser.add_subparsers(
        dest="command",
        metavar="COMMAND",
        parser_class=_Parser,
        title="commands",
        help="'twisted-hooks COMMAND --help' describes one",
    )
    commands.required = True

    def add(
        group: Any,
        name: str,
        help: str,
        details: str,
        examples: tuple[str, ...],
        database: bool = True,
    ) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = group.add_parser(
            name,
            help=help,
            description=f"{textwrap.fill(help[0].upper() + help[1:])}.\n\n{details}",
            epilog=_examples(*examples),
            formatter_class=_FORMATTER,
        )
        _global_options(sub, hidden=not database)
        return sub

    token = commands.add_parser(
        "token",
        help="create, list or revoke API tokens",
        description="Create, list or revoke the API's bearer tokens.",
        epilog=_examples(
            "twisted-hooks token create alice --scopes publish,subscribe",
            "twisted-hooks token list",
            "twisted-hooks token revoke alice",
        ),
        formatter_class=_FORMATTER,
    )
    _global_options(token)
    token_commands = token.add_subparsers(
        dest="token_command",
        metavar="ACTION",
        parser_class=_Parser,
        title="actions",
        help="'twisted-hooks token ACTION --help' describes one",
    )
    token_commands.required = True
    create = add(
        token_commands,
        "create",
        "make a token and print it (only the token: it is shown once)",
        "The database keeps only the token's hash: a lost token cannot be shown again;\n"
        "revoke it and make another.",
        (
            "TOKEN=$(twisted-hooks token create alice)",
            "twisted-hooks token create shop --scopes publish --owner shop",
        ),
    )
    create.add_argument("name", help="the token's unique name")
    create.add_argument(
        "--scopes",
        default="publish,subscribe",
        help=f"comma-separated, some of {', '.join(sorted(SCOPES))} (default: publish,subscribe)",
    )
    create.add_argument("--owner", help="the user its subscriptions belong to (default: NAME)")
    add(
        token_commands,
        "list",
        "list the tokens (never their text)",
        "Shows each token's name, owner, scopes, creation time and state.",
        ("twisted-hooks token list",),
    )
    revoke = add(
        token_commands,
        "revoke",
        "revoke a token by name",
        "The API answers 401 to it from now on.",
        ("twisted-hooks token revoke alice",),
    )
    revoke.add_argument("name", help="the token's name, as 'token list' shows it")

    add(
        commands,
        "migrate",
        "create the database, or bring its schema up to date",
        "The service migrates at start too; run this where the schema is managed apart.",
        ("twisted-hooks migrate", "twisted-hooks --database postgresql://hooks@db/hooks migrate"),
    )

    subscribe = add(
        commands,
        "subscribe",
        "add a subscriber (prints it as JSON, with its secret)",
        "The URL is checked against [validators] of the configuration, as the API checks\n"
        "it; a receiver on this machine needs --allow-network.",
        (
            "twisted-hooks subscribe 'order.*' https://shop.example/hooks --owner alice",
            "twisted-hooks subscribe 'order.*' http://127.0.0.1:9000/ --allow-network 127.0.0.0/8",
        ),
    )
    subscribe.add_argument("event", help="an event pattern: name, '*', 'topic.*', '*.rest'")
    subscribe.add_argument("url", help="where deliveries are POSTed")
    subscribe.add_argument("--owner", help="the user it belongs to (receives only their events)")
    subscribe.add_argument(
        "--content-type",
        default=JSON,
        choices=(JSON, FORM),
        metavar="TYPE",
        help=f"how bodies are encoded: {JSON} (the default) or {FORM}",
    )
    subscribe.add_argument(
        "--digest",
        default="sha256",
        choices=sorted(DIGEST_METHODS),
        help="the Hook-HMAC digest (default: sha256)",
    )
    subscribe.add_argument("--secret", help="the signing secret (default: a new whsec_ secret)")
    subscribe.add_argument(
        "--allow-network",
        action="append",
        metavar="CIDR",
        help="accept a URL in this internal network, on any port, as the service started "
        "with the same --allow-network delivers to it (127.0.0.0/8); repeatable; added to "
        "[validators] allowed_networks",
    )

    unsubscribe = add(
        commands,
        "unsubscribe",
        "remove a subscriber",
        "Its pending deliveries end, dead, at their next attempt.",
        ("twisted-hooks unsubscribe 3f1c0e9a-5f7d-4b8e-9d41-2b6f0c7a1e55",),
    )
    unsubscribe.add_argument("id", help="the subscriber's id, as 'list' shows it")

    listed = add(
        commands,
        "list",
        "list the subscribers",
        "Shows each subscriber's id, event pattern, URL, owner and state.",
        ("twisted-hooks list", "twisted-hooks list --owner alice"),
    )
    listed.add_argument("--owner", help="only this user's")

    send = add(
        commands,
        "send",
        "publish an event; the running service delivers it",
        "The deliveries are stored; the service, which polls the database, attempts them.",
        (
            "twisted-hooks send order.paid --data '{\"order\": 42}'",
            "twisted-hooks send order.paid --data '{\"order\": 42}' --id order-42-paid",
        ),
    )
    send.add_argument("event", help="the event name")
    send.add_argument("--data", default="{}", help="the payload, as JSON (default: {})")
    send.add_argument("--sender", help="who sends it (owned subscribers receive their own)")
    send.add_argument("--id", help="the event id; publishing an id again delivers nothing")

    deliveries = add(
        commands,
        "deliveries",
        "list deliveries, newest first",
        "Shows each delivery's id, status, event, attempts, creation time, URL and last\nerror.",
        ("twisted-hooks deliveries", "twisted-hooks deliveries --status dead --limit 10"),
    )
    deliveries.add_argument(
        "--status", choices=STATUSES, help="only the deliveries in this status"
    )
    deliveries.add_argument("--hook", metavar="ID", help="only this subscriber's")
    deliveries.add_argument(
        "--limit", type=argument_whole, default=50, help="show at most this many (default: 50)"
    )

    retry = add(
        commands,
        "retry",
        "attempt a dead delivery again",
        "It keeps its id and its attempt history; the running service attempts it.",
        ("twisted-hooks retry 8d0b8f4e-6a43-4f3c-9b1e-0c2d7e5a9f10",),
    )
    retry.add_argument("id", help="the delivery's id, as 'deliveries' shows it")

    receive = add(
        commands,
        "receive",
        "receive deliveries on 127.0.0.1 and print them (a receiver for development)",
        "Prints each delivery (event, delivery id, attempt number counted here, both\n"
        "signatures checked, the body as indented JSON) and answers it with --status, so\n"
        "that retries can be watched. Ctrl-C stops it. The service delivers to it when\n"
        "started with --allow-network 127.0.0.0/8.",
        (
            "twisted-hooks receive --secret whsec_...",
            "twisted-hooks receive --port 9001 --status 503",
        ),
        database=False,
    )
    receive.add_argument(
        "--port",
        type=argument_whole,
        default=9000,
        help="the port on 127.0.0.1 (default: 9000; 0: any free port)",
    )
    receive.add_argument(
        "--secret",
        help="the subscription's secret: checks Hook-HMAC and the webhook-signature v1 "
        "entries (without it, they are not checked)",
    )
    receive.add_argument(
        "--public-key",
        metavar="KEY",
        help="a whpk_ Ed25519 public key: checks the webhook-signature v1a entries",
    )
    receive.add_argument(
        "--status",
        type=argument_whole,
        default=204,
        help="the status every delivery is answered with (default: 204; 500 makes the "
        "service retry)",
    )
    _signature_options(receive)

    check = add(
        commands,
        "verify",
        "check a delivery's Hook-HMAC and webhook-signature (a receiver's helper)",
        "Checks the raw body received against the headers received, with the\n"
        "subscription's secret.",
        (
            "curl -s -D headers.txt -o body ...   # or save them in your receiver",
            "twisted-hooks verify --secret whsec_... --headers headers.txt --body body",
        ),
        database=False,
    )
    check.add_argument("--secret", required=True, help="the subscription's secret")
    check.add_argument(
        "--headers",
        required=True,
        metavar="FILE",
        help="the request's headers: 'Name: value' lines (as curl -D writes them) or a "
        "JSON object",
    )
    check.add_argument("--body", required=True, metavar="FILE", help="the raw request body")
    _signature_options(check)
    return parser


def _signature_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--digest",
        default="sha256",
        choices=sorted(DIGEST_METHODS),
        help="the subscription's Hook-HMAC digest (default: sha256)",
    )
    parser.add_argument(
        "--tolerance",
        type=argument_decimal,
        default=DEFAULT_TOLERANCE,
        metavar="SECONDS",
        help=f"how far webhook-timestamp may be from now (default: {DEFAULT_TOLERANCE}); "
        "widen it to check an old delivery",
    )
