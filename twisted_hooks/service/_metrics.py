"""
The service's Prometheus metrics (:class:`HooksMetrics`), served at ``/metrics``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from twisted.internet.defer import Deferred, succeed

from twisted_hooks.webhooks.app import OPERATIONAL, Hooks, OperationalEvent
from twisted_hooks.webhooks.delivery import (
    DEAD,
    DELIVERED,
    STATUSES,
    Attempt,
    Delivery,
    DeliveryUpdate,
)
from twisted_hooks.webhooks.health import OPEN

__all__ = ["HooksMetrics"]

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HooksMetrics:
    """
    The service's Prometheus metrics, in a :class:`~prometheus_client.CollectorRegistry` of
    their own (never the global one), fed by the application.

    Attempt outcomes come from :meth:`~twisted_hooks.webhooks.app.Hooks.observe_updates`
    (every recorded attempt, successes included); endpoint health changes (circuits opened
    and recovered, endpoints disabled) from the application's operational events, observed
    by a handler on ``hooks.dispatcher`` (``kind="operational"``). Queue depth, the oldest
    due delivery's age and open circuits are read at scrape time (:meth:`refresh`).

    Metrics (every name prefixed ``twisted_hooks_``): ``deliveries_total{outcome}``
    (``delivered``, ``dead``), ``attempts_total{outcome}`` (``succeeded`` or the
    :class:`~twisted_hooks.webhooks.delivery.ErrorKind`), ``attempt_duration_seconds``
    (a histogram, ``outcome`` ``succeeded`` or ``failed``), ``endpoint_events_total{event}``
    (``opened``, ``recovered``, ``disabled``), ``queue_depth{status}`` (deliveries held in
    each status), ``oldest_due_age_seconds``, ``open_circuits``,
    ``api_requests_total{method,code}``.

    :param hooks: the application to observe.
    :ivar registry: the registry to expose.
    """

    #: The histogram's buckets, in seconds: from a fast local receiver to the 10 s deadline.
    BUCKETS: tuple[float, ...] = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

    def __init__(self, hooks: Hooks) -> None:
        self._hooks = hooks
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.deliveries = Counter(
            "twisted_hooks_deliveries",
            "Deliveries that ended, by outcome (delivered or dead).",
            ["outcome"],
            registry=registry,
        )
        self.attempts = Counter(
            "twisted_hooks_attempts",
            "HTTP attempts made, by outcome (succeeded, or the kind of failure).",
            ["outcome"],
            registry=registry,
        )
        self.attempt_duration = Histogram(
            "twisted_hooks_attempt_duration_seconds",
            "Duration of HTTP attempts, from start to the end of the body or the failure.",
            ["outcome"],
            buckets=self.BUCKETS,
            registry=registry,
        )
        self.endpoint_events = Counter(
            "twisted_hooks_endpoint_events",
            "Endpoint health changes: circuits opened and recovered, endpoints disabled.",
            ["event"],
            registry=registry,
        )
        self.queue = Gauge(
            "twisted_hooks_queue_depth",
            "Deliveries held by the delivery store, by status (at the last scrape).",
            ["status"],
            registry=registry,
        )
        self.oldest_due = Gauge(
            "twisted_hooks_oldest_due_age_seconds",
            "Seconds since the oldest claimable delivery became due (0 when none is due).",
            registry=registry,
        )
        self.open_circuits = Gauge(
            "twisted_hooks_open_circuits",
            "Endpoints whose circuit breaker is open.",
            registry=registry,
        )
        self.requests = Counter(
            "twisted_hooks_api_requests",
            "HTTP API requests answered, by method and status code.",
            ["method", "code"],
            registry=registry,
        )
        for status in STATUSES:
            self.queue.labels(status=status)
        for outcome in (DELIVERED, DEAD):
            self.deliveries.labels(outcome=outcome)
        self.attempts.labels(outcome="succeeded")
        self._handler_id: int | None = None
        self._unobserve: Callable[[], None] | None = None

    def start(self) -> Deferred[None]:
        """Observe the application's recorded attempts, and its operational events (a
        handler on its dispatcher, in its last phase)."""
        self._unobserve = self._hooks.observe_updates(self.observe)
        dispatcher = self._hooks.dispatcher
        added: Deferred[int] = dispatcher.add_event_handler(
            self._operational, dispatcher.phases[-1], use_weakref=False, kind=OPERATIONAL
        )

        def store(handler_id: int) -> None:
            self._handler_id = handler_id

        return added.addCallback(store)

    def stop(self) -> Deferred[None]:
        """Stop observing the application's attempts and events."""
        unobserve, self._unobserve = self._unobserve, None
        if unobserve is not None:
            unobserve()
        handler_id, self._handler_id = self._handler_id, None
        if handler_id is None:
            return succeed(None)
        removed: Deferred[None] = self._hooks.dispatcher.remove_event_handler(handler_id)
        return removed

    def _operational(self, event: OperationalEvent) -> None:
        if event.name.startswith("webhook.endpoint."):
            self.endpoint_events.labels(event=event.name.rsplit(".", 1)[1]).inc()

    def _attempt(self, attempt: Attempt) -> None:
        outcome = "succeeded" if attempt.succeeded else (attempt.error_kind or "internal")
        self.attempts.labels(outcome=outcome).inc()
        self.attempt_duration.labels(
            outcome="succeeded" if attempt.succeeded else "failed"
        ).observe(max(0.0, attempt.duration))

    def observe(self, delivery: Delivery, update: DeliveryUpdate) -> None:
        """Count one recorded attempt, and the delivery's end if it ended (an observer of
        :meth:`~twisted_hooks.webhooks.app.Hooks.observe_updates`)."""
        self._attempt(update.attempt)
        if update.status in (DELIVERED, DEAD):
            self.deliveries.labels(outcome=update.status).inc()

    def request(self, method: bytes, code: int) -> None:
        """Count one answered API request."""
        name = method.decode("ascii", "replace").upper()
        self.requests.labels(method=name if name in _METHODS else "other", code=str(code)).inc()

    def refresh(self, now: float) -> Deferred[None]:
        """
        Read what is measured at scrape time: the delivery store's counts by status and its
        oldest due age, and the open circuits of the application's endpoint health.

        :return: a Deferred firing once the gauges are set; it fails when the store does.
        """
        circuits = sum(1 for h in self._hooks.endpoint_health.records() if h.circuit == OPEN)
        self.open_circuits.set(circuits)

        def got(stats: Any) -> None:
            for status, count in stats.counts.items():
                self.queue.labels(status=status).set(count)
            self.oldest_due.set(stats.oldest_due_age or 0.0)

        return self._hooks.deliveries.stats(now).addCallback(got)

    def render(self) -> bytes:
        """The registry in the Prometheus text exposition format."""
        return generate_latest(self.registry)
