"""
Which database the service and the ``twisted-hooks`` command use, and saying so.

Both choose it the same way, first found wins:

1. the command line, ``--database URL``;
2. the environment variable ``TWISTED_HOOKS_DATABASE`` (:data:`DATABASE_ENV`), then
   ``TWISTED_HOOKS_HOOKS_DATABASE`` (the general ``[hooks] database`` override);
3. ``[hooks] database`` of the configuration file (``--config``);
4. the default, ``sqlite:twisted_hooks.sqlite3``: a file in the **current directory**.

A relative SQLite path is made absolute once, against the current directory, and the
absolute path is what both print: the service in its start log, the command on standard
error. A password in a PostgreSQL URL is never shown.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from twisted_hooks.service.config import DEFAULT_DATABASE, ServiceConfig, env_name

__all__ = [
    "DATABASE_ENV",
    "absolute_database",
    "database_override",
    "database_source",
    "describe_database",
    "sqlite_path",
]

#: The environment variable naming the database, for the service and the command alike.
DATABASE_ENV = "TWISTED_HOOKS_DATABASE"

_SQLITE = "sqlite:"


def database_override(option: str | None, environ: Mapping[str, str]) -> str | None:
    """
    The database URL that replaces ``[hooks] database``: the ``--database`` option, else
    :data:`DATABASE_ENV`; ``None`` when neither is given (an empty variable is not given).
    """
    if option is not None:
        return option
    return environ.get(DATABASE_ENV) or None


def database_source(option: str | None, environ: Mapping[str, str], config: ServiceConfig) -> str:
    """
    Where the database of ``config`` was chosen, in words: ``"--database"``, an
    environment variable, the configuration file, or the default.
    """
    if option is not None:
        return "--database"
    if environ.get(DATABASE_ENV):
        return DATABASE_ENV
    general = env_name("hooks", "database")
    if environ.get(general):
        return general
    if config.database != DEFAULT_DATABASE and config.path is not None:
        return f"[hooks] database in {config.path}"
    return f"the default, {DEFAULT_DATABASE} in the current directory"


def sqlite_path(url: str) -> str | None:
    """
    The file path of an SQLite store URL (``sqlite:PATH`` or ``sqlite:///PATH``), as given
    (relative or absolute); ``None`` for any other URL.
    """
    if not url.startswith(_SQLITE):
        return None
    rest = url[len(_SQLITE) :]
    if rest.startswith("//"):
        return unquote(urlsplit(url).path) or None
    return rest or None


def absolute_database(url: str, directory: str | None = None) -> str:
    """
    ``url`` with a relative SQLite path made absolute against ``directory`` (the current
    directory if ``None``); any other URL unchanged.
    """
    path = sqlite_path(url)
    if path is None or path == ":memory:" or os.path.isabs(path):
        return url
    base = os.getcwd() if directory is None else directory
    return _SQLITE + os.path.normpath(os.path.join(base, path))


def describe_database(url: str) -> str:
    """
    The database for people: an SQLite file's absolute path, a PostgreSQL URL without its
    password, ``memory:`` said to keep nothing.
    """
    path = sqlite_path(url)
    if path is not None:
        return path if path == ":memory:" else os.path.abspath(path)
    if url == "memory:":
        return "memory: (in memory; nothing is kept)"
    if "://" in url:
        parts = urlsplit(url)
        if parts.password is not None:
            netloc = f"{parts.username}:***@{parts.hostname}"
            if parts.port is not None:
                netloc += f":{parts.port}"
            parts = parts._replace(netloc=netloc)
        if "password=" in parts.query:
            query = [
                (key, "***" if key == "password" else value)
                for key, value in parse_qsl(parts.query, keep_blank_values=True)
            ]
            parts = parts._replace(query=urlencode(query, safe="*"))
        return urlunsplit(parts)
    # A libpq "key=value" string.
    return " ".join(
        "password=***" if word.startswith("password=") else word for word in url.split()
    )
