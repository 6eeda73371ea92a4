"""The ``hooks`` twistd plugin: ``twist hooks`` and ``twistd -n hooks``."""

from twisted.application.service import ServiceMaker

hooks = ServiceMaker(
    "twisted_hooks",  # name
    "twisted_hooks.service.tap",  # module with Options and makeService
    "The twisted_hooks webhook service: HTTP API and durable, signed deliveries.",
    "hooks",  # tapname
)
