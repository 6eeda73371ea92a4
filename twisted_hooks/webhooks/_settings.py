"""
The webhook application's settings: :class:`Settings`.

Each field's range, help text and configuration key live in its metadata
(:func:`twisted_hooks._fields.field`): the same rule checks ``Settings(...)`` and the
service's configuration file.
"""

from __future__ import annotations

import attrs

from twisted_hooks._fields import field
from twisted_hooks.webhooks.retry import RetryPolicy
from twisted_hooks.webhooks.validators import RecipientPolicy

__all__ = ["BACKENDS", "Settings"]

#: The backends an event may name (Thorn's ``dispatcher`` argument).
BACKENDS: frozenset[str] = frozenset({"default", "disabled"})

_DAY = 86400.0
_HOOKS = "hooks"
_HEALTH = "health"


@attrs.frozen
class Settings:
    """
    The application's defaults.

    :ivar timeout: the deadline of one attempt (connect, headers and body), in seconds.
        Thorn's default was 3 s, which slow receivers miss; we use 10 s.
    :ivar retry: the default retry policy.
    :ivar policy: the recipient policy (validators and allow-listed networks).
    :ivar max_concurrency: attempts under way at once, in all.
    :ivar max_per_host: attempts under way at once to one host.
    :ivar max_response_body: response bytes read before the connection is dropped.
    :ivar lease: seconds a claimed delivery is leased; at least the timeout plus a margin.
    :ivar batch: the most deliveries claimed at once, and the most attempt outcomes
        recorded at once.
    :ivar record_delay: the longest an attempt's outcome waits for others to share its
        write to the delivery store, in seconds (``0``: written at once). 10 ms costs
        little latency and turns a burst of outcomes into one transaction.
    :ivar poll_interval: seconds between claims for stores shared with other processes.
    :ivar phase: the dispatcher phase the webhook handler runs in.
    :ivar backend: ``"default"`` (deliver) or ``"disabled"`` (deliver nothing).
    :ivar circuit_failures: failed attempts in a row to one endpoint that open its
        circuit. 5 tells a broken endpoint from a few unlucky attempts quickly.
    :ivar circuit_cooldown: seconds an open circuit holds the endpoint's deliveries back
        before one probe is let through. 30 s spares a struggling receiver without
        delaying its recovery much.
    :ivar disable_failures: failed attempts in a row after which an endpoint is
        disabled (its subscriber deactivated, ``webhook.endpoint.disabled`` fired)...
    :ivar disable_period: ...provided they span at least this many seconds. Both must
        hold: 50 failures over 24 hours, as Svix and Hook0 disable endpoints that have
        failed for a day, so a short outage never disables anyone.
    :ivar busy_retry: seconds after which a delivery held back by its endpoint's full
        ``max_concurrency`` (or by a half-open circuit whose probe is out) is tried again.
    :ivar keep_delivered: seconds delivered deliveries are kept (with their attempts)
        before :meth:`~twisted_hooks.webhooks.Hooks.prune` deletes them; ``None`` keeps
        them. Dead ones are always kept. Default: 7 days.
    :ivar keep_keys: seconds a published event's id is remembered for idempotent
        publishing. Default: 24 hours, as most webhook APIs do.
    :ivar prune_interval: seconds between the running application's prunes.
    :ivar health_save_delay: seconds endpoint health changes are collected before they
        are written to the health store (one write for all of them).

    Every number has a range; the maxima are far beyond any useful setting, there so that
    no value makes a time the application computes overflow.

    :raise ValueError: for a value outside its range, naming it.
    """

    timeout: float = field(
        10.0,
        above=0.0,
        maximum=3600.0,
        unit="seconds",
        config=(_HOOKS, "timeout"),
        help="the deadline of one attempt (connect, headers and body)",
    )
    retry: RetryPolicy = attrs.field(factory=RetryPolicy)
    policy: RecipientPolicy = attrs.field(factory=RecipientPolicy)
    max_concurrency: int = field(
        256,
        integer=True,
        minimum=1,
        maximum=100_000,
        config=(_HOOKS, "max_concurrency"),
        help="attempts under way at once, in all",
    )
    max_per_host: int = field(
        16,
        integer=True,
        minimum=1,
        maximum=10_000,
        config=(_HOOKS, "max_per_host"),
        help="attempts under way at once to one host",
    )
    max_response_body: int = field(
        64 * 1024,
        integer=True,
        minimum=1,
        maximum=64 * 1024 * 1024,
        unit="bytes",
        config=(_HOOKS, "max_response_body"),
        help="response bytes read before the connection is dropped",
    )
    lease: float = field(
        60.0,
        above=0.0,
        maximum=_DAY,
        unit="seconds",
        config=(_HOOKS, "lease"),
        help="how long a claimed delivery is leased; longer than the timeout",
    )
    batch: int = field(
        100,
        integer=True,
        minimum=1,
        help="the most deliveries claimed, and attempt outcomes recorded, at once",
    )
    record_delay: float = field(
        0.01,
        minimum=0.0,
        unit="seconds",
        help="the longest an attempt's outcome waits to share its write",
    )
    poll_interval: float | None = field(
        None,
        above=0.01,
        maximum=3600.0,
        optional=True,
        unit="seconds",
        config=(_HOOKS, "poll_interval"),
        config_default="1.0",
        help="seconds between claims for stores shared with other processes",
    )
    phase: str = "during"
    backend: str = field(
        "default",
        choices=tuple(sorted(BACKENDS)),
        help="'default' (deliver) or 'disabled' (deliver nothing)",
    )
    circuit_failures: int = field(
        5,
        integer=True,
        minimum=1,
        maximum=1_000_000,
        config=(_HEALTH, "circuit_failures"),
        help="failed attempts in a row to one endpoint that open its circuit",
    )
    circuit_cooldown: float = field(
        30.0,
        above=0.0,
        maximum=7 * _DAY,
        unit="seconds",
        config=(_HEALTH, "circuit_cooldown"),
        help="how long an open circuit holds deliveries back before a probe",
    )
    disable_failures: int = field(
        50,
        integer=True,
        minimum=1,
        maximum=1_000_000,
        config=(_HEALTH, "disable_failures"),
        help="failed attempts in a row after which an endpoint is disabled",
    )
    disable_period: float = field(
        _DAY,
        minimum=0.0,
        maximum=365 * _DAY,
        unit="seconds",
        config=(_HEALTH, "disable_period"),
        help="the least time those failures must span",
    )
    busy_retry: float = field(
        1.0,
        above=0.0,
        unit="seconds",
        help="when a delivery held back by a busy endpoint is tried again",
    )
    health_save_delay: float = field(
        1.0,
        minimum=0.0,
        unit="seconds",
        help="how long endpoint health changes are collected before they are written",
    )
    keep_delivered: float | None = field(
        7 * _DAY,
        above=0.0,
        maximum=3650 * _DAY,
        optional=True,
        unit="seconds",
        config=(_HOOKS, "keep_delivered"),
        help="how long delivered deliveries are kept (empty: for ever)",
    )
    keep_keys: float = field(
        _DAY,
        above=0.0,
        maximum=365 * _DAY,
        unit="seconds",
        config=(_HOOKS, "keep_keys"),
        help="how long a published event's id is remembered",
    )
    prune_interval: float = field(3600.0, above=0.0, unit="seconds", help="seconds between prunes")

    def __attrs_post_init__(self) -> None:
        if self.lease <= self.timeout:
            raise ValueError(
                f"lease ({self.lease:g} s) must be longer than the attempt timeout "
                f"({self.timeout:g} s), or a delivery could be claimed twice"
            )
