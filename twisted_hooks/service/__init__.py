"""
The twisted_hooks service: ``twist hooks`` / ``twistd -n hooks``.

Configuration (:mod:`~twisted_hooks.service.config`), the HTTP API
(:mod:`~twisted_hooks.service.api`), the twistd plugin's service
(:mod:`~twisted_hooks.service.tap`) and the ``twisted-hooks`` command
(:mod:`~twisted_hooks.service.cli`).
"""

from twisted_hooks._extras import missing_extra

try:
    import klein  # noqa: F401
    import prometheus_client  # noqa: F401
except ImportError as _error:
    raise missing_extra(_error, "service", "the twisted_hooks service") from None
