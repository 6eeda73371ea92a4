"""
A Kinto-style listener for the twisted_hooks service: it counts the events it is given,
by name, and the failed attempts the application reports, and logs a summary every
``every`` events.

Configure it with a ``[listener:NAME]`` section (this module must be importable: on
``PYTHONPATH``, or installed)::

    [listener:tally]
    use = tally_listener
    match.name = order.paid     ; only these events (any name if absent)
    every = 100                 ; log a summary every 100 events (default 100)
"""

from collections import Counter

from twisted.logger import Logger

from twisted_hooks import get_dispatcher
from twisted_hooks.listeners import check_settings

log = Logger(namespace="tally_listener")


class Tally:
    """Counts events by name; the handler the dispatcher calls."""

    def __init__(self, name, every):
        self.name = name
        self.every = every
        self.counts = Counter()
        self.failed_attempts = 0

    def __call__(self, event):
        # A WebhookEvent: .name, .data, .sender, .id, .timestamp. It runs on the reactor
        # thread: do nothing here that blocks.
        self.counts[event.name] += 1
        if sum(self.counts.values()) % self.every == 0:
            log.info("{listener}: {counts}", listener=self.name, counts=dict(self.counts))

    def attempt_failed(self, event):
        # An OperationalEvent: webhook.delivery.failed, .delivery, .attempt, .reason.
        self.failed_attempts += 1


def load_from_config(config, prefix=""):
    """Make the handler from the settings under ``prefix`` (``listener.tally.``)."""
    check_settings(config, prefix, ("every",))  # a misspelt key is an error
    settings = config.get_settings()
    every = int(settings.get(prefix + "every", "100"))
    if every < 1:
        raise ValueError(f"every = {every}: expected a whole number of at least 1")
    tally = Tally(prefix.removeprefix("listener.").rstrip("."), every)
    # The service registered its dispatcher in config.registry: a listener may add more
    # handlers to it, here one for the failed attempts the application reports.
    dispatcher = get_dispatcher(config.registry)
    dispatcher.add_event_handler(
        tally.attempt_failed,
        "after",
        use_weakref=False,
        name="webhook.delivery.failed",
        kind="operational",
    )
    return tally
