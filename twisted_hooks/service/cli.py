"""
The ``twisted-hooks`` command: manage the service's database, and verify deliveries.

Every command takes ``--database URL`` and ``--config FILE`` (the service's
configuration file; ``[hooks] database`` names the database when ``--database`` is not
given, and the ``TWISTED_HOOKS_*`` environment variables apply as they do to the
service)::

    twisted-hooks token create NAME [--scopes publish,subscribe,admin] [--owner USER]
    twisted-hooks token list
    twisted-hooks token revoke NAME
    twisted-hooks migrate
    twisted-hooks subscribe EVENT URL [--owner USER] [--content-type TYPE]
                                      [--digest DIGEST] [--secret SECRET]
                                      [--allow-network CIDR ...]
    twisted-hooks unsubscribe ID
    twisted-hooks list [--owner USER]
    twisted-hooks send EVENT [--data JSON] [--sender USER] [--id EVENT_ID]
    twisted-hooks deliveries [--status STATUS] [--hook ID] [--limit N]
    twisted-hooks retry DELIVERY_ID
    twisted-hooks verify --secret SECRET --headers FILE --body FILE [--digest DIGEST]

``token create`` prints the token's text and nothing else (it is shown once; the database
keeps only its hash), so that ``TOKEN=$(twisted-hooks token create ...)`` works. ``send``
stores the event's deliveries; the running service (which polls the database) attempts
them. ``verify`` is a receiver's helper: it checks a delivery's ``Hook-HMAC`` and
Standard Webhooks signature against the raw body.

Exit status: 0 on success, 1 when the command failed (the reason is printed on standard
error: an unknown id, an invalid signature, a database that cannot be opened), 2 for a
usage error (bad arguments or configuration).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, TextIO

import attrs
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from twisted_hooks.service._arguments import PROG, CommandError, build_parser
from twisted_hooks.service._arguments import UsageError as _UsageError
from twisted_hooks.service._database import (
    DATABASE_ENV,
    absolute_database,
    database_override,
    database_source,
    describe_database,
    sqlite_path,
)
from twisted_hooks.service._receive import run_receiver, tolerance_hint
from twisted_hooks.service.config import (
    ConfigError,
    ServiceConfig,
    load_config,
)
from twisted_hooks.service.tokens import create_token
from twisted_hooks.store import Store, StoreError, is_postgres_url, open_store
from twisted_hooks.store._memory_subscribers import MemorySubscriberStore
from twisted_hooks.webhooks import Publisher
from twisted_hooks.webhooks.signing import (
    SignatureError,
    generate_secret,
    verify,
    verify_standard,
)
from twisted_hooks.webhooks.subscribers import (
    Subscriber,
    parse_subscribers,
)
from twisted_hooks.webhooks.validators import RefusalAdvice, SecurityError

__all__ = ["CommandError", "main"]


#: Exit statuses.
OK, FAILED, USAGE = 0, 1, 2


#: How ``twisted-hooks subscribe`` words the fix of a refused URL: its own
#: ``--allow-network``, which must match the service's, and the configuration file.
_COMMAND_ADVICE = RefusalAdvice(
    allow_network=(
        "pass --allow-network {network} to this command and start the service with the "
        "same flag, or add {network} to [validators] allowed_networks in the configuration "
        "file"
    ),
    allow_list="--allow-network or [validators] allowed_networks",
    add_port="add {port} to [validators] ports in the configuration file",
    add_protocol="add {scheme} to [validators] protocols in the configuration file",
    unblock_network=(
        "take {network} out of [validators] blocked_networks in the configuration file"
    ),
)


def main(
    argv: Sequence[str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """
    Run one command.

    :param argv: the arguments, without the program name; ``sys.argv[1:]`` if ``None``.
    :param stdout: where results go; :data:`sys.stdout` if ``None``.
    :param stderr: where errors go; :data:`sys.stderr` if ``None``.
    :param environ: the environment for the configuration; :data:`os.environ` if ``None``.
    :return: the exit status: 0, 1 (the command failed) or 2 (usage error).
    """
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    env: Mapping[str, str] = os.environ if environ is None else environ
    try:
        args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    except _UsageError as error:
        err.write(f"{PROG}: error: {error}\n")
        return USAGE
    except SystemExit as exit:  # --help and --version
        return exit.code if isinstance(exit.code, int) else OK
    try:
        if args.command == "verify":
            _verify(args, out)
            return OK
        if args.command == "receive":
            run_receiver(args, out)
            return OK
        config = _config(args, env)
        _announce_database(args, env, config, err)
        _run(lambda reactor: _command(args, config, reactor, out))
    except _UsageError as error:
        err.write(f"{PROG}: error: {error}\n")
        return USAGE
    except CommandError as error:
        err.write(f"{PROG}: {error}\n")
        return FAILED
    except KeyboardInterrupt:
        err.write(f"{PROG}: interrupted\n")
        return 130
    return OK


def _config(args: argparse.Namespace, environ: Mapping[str, str]) -> ServiceConfig:
    """The configuration, its database chosen as the service chooses it, made absolute."""
    try:
        config = load_config(
            args.config,
            environ,
            overrides={
                "database": database_override(args.database, environ),
                "allow_network": getattr(args, "allow_network", None),
            },
        )
    except ConfigError as error:
        raise _UsageError(str(error)) from None
    return attrs.evolve(config, database=absolute_database(config.database))


#: The commands that read or change what is already in the database: they never create
#: one (an empty new database would only hide that the wrong one was named).
_NEED_EXISTING = frozenset(
    {"token list", "token revoke", "unsubscribe", "list", "deliveries", "retry"}
)


def _announce_database(
    args: argparse.Namespace, environ: Mapping[str, str], config: ServiceConfig, err: TextIO
) -> None:
    """
    Say on standard error which database the command uses, and where that choice came
    from; for a command that needs an existing database, fail (one line) when its SQLite
    file does not exist.
    """
    source = database_source(args.database, environ, config)
    path = sqlite_path(config.database)
    missing = path is not None and path != ":memory:" and not os.path.exists(path)
    if missing and _name(args) in _NEED_EXISTING:
        raise CommandError(
            f"no database at {path} ({source}); run the command where the service "
            f"runs (its log names its database), or name it with --database or "
            f"{DATABASE_ENV}"
        )
    err.write(f"{PROG}: database {describe_database(config.database)} ({source})\n")
    err.flush()


# -- running Twisted code from a command ---------------------------------------------------


def _new_reactor() -> Any:
    """A reactor of our own, not installed: each command runs one (tests run many)."""
    try:
        from twisted.internet.pollreactor import PollReactor

        return PollReactor()  # type: ignore[no-untyped-call]
    except ImportError:  # pragma: no cover (Windows)
        from twisted.internet.selectreactor import SelectReactor

        return SelectReactor()


def _run(work: Callable[[Any], Coroutine[Any, Any, None]]) -> None:
    """Run ``work(reactor)`` to its end on a new reactor; raise what it raised."""
    reactor = _new_reactor()
    outcome: list[object] = []

    def start() -> None:
        d = Deferred.fromCoroutine(work(reactor))
        d.addBoth(outcome.append)
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(start)
    reactor.run(installSignalHandlers=False)
    for reader in list(reactor.getReaders()):  # the waker: close its pipe
        connection_lost = getattr(reader, "connectionLost", None)
        if connection_lost is not None:
            reactor.removeReader(reader)
            connection_lost(None)
    if not outcome:  # pragma: no cover (stopped by something else)
        raise CommandError("interrupted")
    result = outcome[0]
    if isinstance(result, Failure):
        result.raiseException()


async def _open(config: ServiceConfig, reactor: Any) -> Store:
    try:
        # A one-shot command has no subscriber cache to keep fresh: no LISTEN connection.
        options = {"listen": False} if is_postgres_url(config.database) else {}
        return await open_store(config.database, reactor, **options)
    except ValueError as error:
        raise _UsageError(str(error)) from None
    except StoreError as error:
        raise CommandError(str(error)) from None


async def _command(
    args: argparse.Namespace, config: ServiceConfig, reactor: Any, out: TextIO
) -> None:
    store = await _open(config, reactor)
    try:
        await _COMMANDS[_name(args)](args, config, store, reactor, out)
    except StoreError as error:
        raise CommandError(str(error)) from None
    finally:
        await store.close()


def _name(args: argparse.Namespace) -> str:
    if args.command == "token":
        return f"token {args.token_command}"
    return str(args.command)


# -- the commands ----------------------------------------------------------------------------


async def _token_create(
    args: argparse.Namespace, config: ServiceConfig, store: Store, reactor: Any, out: TextIO
) -> None:
    try:
        text, _ = await create_token(store, args.name, args.scopes, args.owner)
    except ValueError as error:
        raise CommandError(f"cannot create the token {args.name!r}: {error}") from None
    out.write(text + "\n")


async def _token_list(
    args: argparse.Namespace, config: ServiceConfig, store: Store, reactor: Any, out: TextIO
) -> None:
    tokens = await store.tokens()
    rows = [
        (
            token.name,
            token.owner,
            ",".join(sorted(token.scopes)),
            _when(token.created_at),
            "active" if token.active else f"revoked {_when(token.revoked_at)}",
        )
        for token in tokens
    ]
    _table(out, ("NAME", "OWNER", "SCOPES", "CREATED", "STATE"), rows)


async def _token_revoke(
    args: argparse.Namespace, config: ServiceConfig, store: Store, reactor: Any, out: TextIO
) -> None:
    try:
        await store.revoke_token(args.name, time.time())
    except KeyError:
        raise CommandError(
            f"no token is named {args.name!r}; see 'twisted-hooks token list'"
        ) from None
    out.write(f"revoked the token {args.name!r}\n")


async def _migrate(
    args: argparse.Namespace, config: ServiceConfig, store: Store, reactor: Any, out: TextIO
) -> None:
    version = getattr(store, "schema_version", None)
    if version is None:
        out.write(f"{config.database}: nothing to migrate\n")
        return
    out.write(f"{config.database}: schema version {await version()}, up to date\n")


def _subscriber_json(subscriber: Subscriber) -> dict[str, object]:
    return {
        "id": subscriber.id,
        "event": subscriber.event,
        "url": subscriber.url,
        "content_type": subscriber.content_type,
        "hmac_digest": subscriber.digest,
        "hmac_secret": subscriber.secret,
        "user": subscriber.owner,
        "active": subscriber.active,
        "created_at": subscriber.created_at.isoformat(),
    }


async def _subscribe(
    args: argparse.Namespace, config: ServiceConfig, store: Store, reactor: Any, out: TextIO
) -> None:
    fields: dict[str, Any] = {"content_type": args.content_type, "digest": args.digest}
    if args.owner is not None:
        fields["owner"] = args.owner
    if args.secret is not None:
        fields["secret"] = args.secret
    try:
        subscriber = Subscriber(event=args.event, url=args.url, **fields)
        config.settings.policy.check_url(args.url)
    except ValueError as error:
        raise CommandError(f"cannot subscribe: {error}") from None
    except SecurityError as error:
        raise CommandError(f"cannot subscribe: {error.explain(_COMMAND_ADVICE)}") from None
    added = await store.subscribers.add(subscriber)
    out.write(json.dumps(_subscriber_json(added), indent=2) + "\n")


async def _unsubscribe(
    args: argparse.Namespace, config: ServiceConfig, store: Store, reactor: Any, out: TextIO
) -> None:
    try:
        await store.subscribers.remove(args.id)
    except (KeyError, ValueError):
        raise CommandError(
            f"no subscriber has the id {args.id!r}; see 'twisted-hooks list'"
        ) from None
    out.write(f"removed the subscriber {args.id}\n")


async def _list(
    args: argparse.Namespace, config: ServiceConfig, store: Store, reactor: Any, out: TextIO
) -> None:
    subscribers = await store.subscribers.list(args.owner)
    rows = [
        (s.id, s.event, s.url, s.owner or "-", "active" if s.active else "inactive")
        for s in subscribers
    ]
    _table(out, ("ID", "EVENT", "URL", "OWNER", "STATE"), rows)


async def _send(
    args: argparse.Namespace, config: ServiceConfig, store: Store, reactor: Any, out: TextIO
) -> None:
    try:
        data = json.loads(args.data)
    except ValueError as error:
        raise _UsageError(f"--data must be JSON: {error}") from None
    secret = config.default_secret if config.default_secret is not None else generate_secret()
    static, callables = parse_subscribers(config.static_subscribers, secret)
    # Enqueue only: a publisher alone attempts nothing; the running service claims the
    # deliveries from the store.
    publisher = Publisher(
        reactor,
        config.settings,
        subscribers=store.subscribers,
        deliveries=store.deliveries,
        static=MemorySubscriberStore(static),
        static_callables=callables,
        default_secret=secret,
    )
    publisher.startService()
    try:
        result = await publisher.send(args.event, data, args.sender, event_id=args.id)
    except ValueError as error:  # a bad event name, data that cannot be encoded
        raise CommandError(f"cannot send {args.event!r}: {error}") from None
    finally:
        await publisher.stopService()
    summary = {
        "id": result.event.id,
        "deliveries": len(result.deliveries),
        "duplicate": result.duplicate,
    }
    out.write(json.dumps(summary) + "\n")


async def _deliveries(
    args: argparse.Namespace, config: ServiceConfig, store: Store, reactor: Any, out: TextIO
) -> None:
    found = await store.deliveries.list(args.status, args.hook, args.limit)
    rows = [
        (
            d.id,
            d.status,
            d.event,
            str(d.attempts),
            _when(d.created_at),
            d.subscriber.url,
            d.last_error or "",
        )
        for d in found
    ]
    _table(out, ("ID", "STATUS", "EVENT", "ATTEMPTS", "CREATED", "URL", "LAST ERROR"), rows)


async def _retry(
    args: argparse.Namespace, config: ServiceConfig, store: Store, reactor: Any, out: TextIO
) -> None:
    try:
        delivery = await store.deliveries.retry(args.id, time.time())
    except KeyError:
        raise CommandError(
            f"no delivery has the id {args.id!r}; see 'twisted-hooks deliveries'"
        ) from None
    except ValueError as error:
        raise CommandError(f"cannot retry {args.id}: {error}") from None
    out.write(f"delivery {delivery.id} is {delivery.status} again; the service attempts it\n")


_Command = Callable[
    [argparse.Namespace, ServiceConfig, Store, Any, TextIO], Coroutine[Any, Any, None]
]

_COMMANDS: dict[str, _Command] = {
    "token create": _token_create,
    "token list": _token_list,
    "token revoke": _token_revoke,
    "migrate": _migrate,
    "subscribe": _subscribe,
    "unsubscribe": _unsubscribe,
    "list": _list,
    "send": _send,
    "deliveries": _deliveries,
    "retry": _retry,
}


# -- verify ----------------------------------------------------------------------------------


def read_headers(text: str) -> dict[str, str]:
    """
    Read request headers from ``Name: value`` lines (a request or status line, and blank
    lines, are skipped; as ``curl -D`` writes them) or from a JSON object.

    :raise ValueError: for a line that is not a header, or JSON that is not an object of
        strings.
    """
    stripped = text.strip()
    if stripped.startswith("{"):
        loaded = json.loads(stripped)
        if not isinstance(loaded, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in loaded.items()
        ):
            raise ValueError("a JSON headers file must hold an object of strings")
        return loaded
    headers: dict[str, str] = {}
    for number, line in enumerate(stripped.splitlines(), 1):
        line = line.rstrip("\r")
        if not line.strip() or line.startswith(("HTTP/", "POST ", "PUT ")):
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip() or name != name.strip():
            raise ValueError(f"line {number} is not 'Name: value': {line[:60]!r}")
        headers[name] = value.strip()
    return headers


def _header(headers: dict[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None


def _verify(args: argparse.Namespace, out: TextIO) -> None:
    try:
        with open(args.headers, encoding="utf-8") as file:
            headers = read_headers(file.read())
        with open(args.body, "rb") as binary:
            body = binary.read()
    except OSError as error:
        raise _UsageError(f"cannot read {error.filename}: {error.strerror}") from None
    except ValueError as error:
        raise _UsageError(f"cannot read the headers file {args.headers}: {error}") from None
    thorn = _header(headers, "Hook-HMAC")
    if thorn is None:
        raise CommandError("invalid: the Hook-HMAC header is missing")
    if not verify(thorn, args.digest, args.secret, body):
        raise CommandError(
            f"invalid: Hook-HMAC does not match the body with this secret and digest "
            f"{args.digest} (check the secret, the digest, and that the body is the raw bytes "
            "received)"
        )
    try:
        verify_standard(args.secret, headers, body, tolerance=args.tolerance)
    except SignatureError as error:
        raise CommandError(f"invalid: webhook-signature: {error}{tolerance_hint(error)}") from None
    except ValueError as error:
        raise CommandError(f"invalid: {error}") from None
    out.write(f"valid: Hook-HMAC ({args.digest}) and webhook-signature match the body\n")


# -- output ----------------------------------------------------------------------------------


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _table(out: TextIO, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [
        max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)
    ]
    for row in (header, *rows):
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)]
        out.write("  ".join(cells).rstrip() + "\n")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
