"""
What delivery logs may show, and HTTP connections that do not chatter.

Recipient URLs carry secrets more often than not: a password in the user information
(``https://user:password@host/``), an API key in the query string (``?api_key=...``), a
token in the fragment. Every log line of twisted_hooks that names a recipient names it
through :func:`loggable_url`, which keeps the scheme, the host, the port and the path.

:class:`QuietConnectionPool` is the connection pool of the webhook sender: Twisted's own
logs two lines, "Starting factory ..." and "Stopping factory ...", for every connection
it opens.

This module depends on nothing else of twisted_hooks, so every other module may use it.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from twisted.internet.interfaces import IReactorTime
from twisted.web.client import HTTPConnectionPool, _HTTP11ClientFactory

__all__ = ["UNPARSABLE_URL", "QuietConnectionPool", "loggable_url"]

#: What :func:`loggable_url` gives for a URL it cannot take apart.
UNPARSABLE_URL = "<unparsable URL>"


def loggable_url(url: str | bytes) -> str:
    """
    ``url`` as it may appear in a log: ``scheme://host[:port]/path``.

    The user name and password, the query string and the fragment are left out; the port
    is kept when the URL names one. A URL that cannot be taken apart (a bracket left open,
    a port that is not a number, such as ``http://user:pass#word@host/``) gives
    :data:`UNPARSABLE_URL`, so that no piece of it is logged::

        >>> loggable_url("https://user:pw@hooks.example.com:8443/in/?api_key=s3cret#frag")
        'https://hooks.example.com:8443/in/'

    :param url: the URL, as text or as UTF-8 bytes.
    """
    text = url.decode("utf-8", "replace") if isinstance(url, bytes) else str(url)
    try:
        parts = urlsplit(text.strip())
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return UNPARSABLE_URL
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class _QuietHTTP11ClientFactory(_HTTP11ClientFactory):
    """Twisted's HTTP/1.1 client factory, without its start and stop log lines."""

    noisy = False


class QuietConnectionPool(HTTPConnectionPool):
    """
    A :class:`~twisted.web.client.HTTPConnectionPool` whose connections are opened
    without logging "Starting factory ..." and "Stopping factory ..." for each one (the
    factory's representation names the whole endpoint, hundreds of characters). It is
    otherwise Twisted's pool, with the same arguments.

    :param reactor: the reactor whose timers close idle connections.
    :param persistent: ``True`` keeps idle connections open for reuse.
    """

    _factory = _QuietHTTP11ClientFactory

    def __init__(self, reactor: IReactorTime, persistent: bool = True) -> None:
        super().__init__(reactor, persistent)  # type: ignore[no-untyped-call]
