"""
The optional parts of twisted_hooks and the extras that install what they need.

``EventDispatcher`` and the webhook engine need none of them; the service needs
``[service]`` (klein, prometheus-client), the Redis listener ``[redis]`` and the blocking
facade (:mod:`twisted_hooks.sync`) ``[sync]`` (crochet). A module that needs a missing one
raises the :class:`ImportError` :func:`missing_extra` makes, naming the extra to install.
"""

from __future__ import annotations

__all__ = ["EXTRAS", "missing_extra"]

#: Each extra and the import names of the packages it installs.
EXTRAS: dict[str, tuple[str, ...]] = {
    "service": ("klein", "prometheus_client"),
    "redis": ("redis",),
    "sync": ("crochet",),
}


def missing_extra(error: ImportError, extra: str, what: str) -> ImportError:
    """
    The error to raise when ``what`` cannot be imported because a package of ``extra``
    is missing.

    :param error: the :class:`ImportError` (or :class:`ModuleNotFoundError`) raised.
    :param extra: the extra that installs the package (a key of :data:`EXTRAS`).
    :param what: what needs it, for people (``"the twisted_hooks service"``).
    :return: an :class:`ImportError` whose message names the package, the extra and the
        command that installs it.
    """
    package = error.name or "a package"
    message = (
        f"{what} needs {package}, which is not installed: install the [{extra}] extra, "
        f"as in pip install 'twisted_hooks[{extra}]'"
    )
    return ImportError(message, name=error.name)
