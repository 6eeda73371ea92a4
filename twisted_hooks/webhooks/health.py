"""
Endpoint health: concurrency caps, rate limits, circuit breakers and automatic disabling.

An *endpoint* is a subscriber. :class:`EndpointHealth` is what is stored about one
(:class:`~twisted_hooks.interfaces.IHealthStore`); :class:`EndpointHealthTracker` keeps the
live state of every endpoint and decides, before each attempt, whether it may go now::

    closed ──circuit_failures consecutive failures──> open ──cool-down over──> half_open
      ^                                                ^                           │
      └──────────────── the probe succeeds ────────────┼───────────────────────────┤
                                                       └──── the probe fails ──────┘

Independently of the circuit, a failure streak of at least ``disable_failures`` failures
spanning at least ``disable_period`` seconds disables the endpoint (the application then
deactivates the subscriber).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from twisted_hooks._fields import check_field
from twisted_hooks.interfaces import IHealthStore
from twisted_hooks.webhooks import _health as _values
from twisted_hooks.webhooks._health import (
    EndpointHealth,
    HealthEvent,
    _log,
)
from twisted_hooks.webhooks._settings import Settings
from twisted_hooks.webhooks.delivery import Attempt
from twisted_hooks.webhooks.subscribers import MAX_RATE_LIMIT, MIN_RATE_LIMIT, Subscriber

__all__ = [
    "CIRCUITS",
    "CLOSED",
    "COUNTED_FAILURES",
    "DISABLED",
    "HALF_OPEN",
    "OPEN",
    "OPENED",
    "RECOVERED",
    "EndpointHealth",
    "EndpointHealthTracker",
    "HealthEvent",
]

#: Attempts flow normally.
CLOSED = _values.CLOSED
#: Too many consecutive failures: attempts are held back until the cool-down ends.
OPEN = _values.OPEN
#: The cool-down ended: one probe attempt decides whether the circuit closes or opens again.
HALF_OPEN = _values.HALF_OPEN
#: Every circuit state.
CIRCUITS: tuple[str, ...] = _values.CIRCUITS
#: A :class:`HealthEvent`: the circuit opened (from closed, or again after a failed probe).
OPENED = _values.OPENED
#: A :class:`HealthEvent`: the circuit closed again after being open.
RECOVERED = _values.RECOVERED
#: A :class:`HealthEvent`: the endpoint failed for long enough to be disabled.
DISABLED = _values.DISABLED
#: The kinds of failed attempt that count against an endpoint: it was reached (or should
#: have been) and did not answer 2xx. A refused recipient, a vanished subscriber or a bug
#: of ours says nothing about the endpoint; 410 Gone deactivates it on its own.
COUNTED_FAILURES: frozenset[str] = _values.COUNTED_FAILURES


@attrs.define
class _Endpoint:
    """The live state of one endpoint: its stored record plus what only lives here."""

    health: EndpointHealth
    #: Attempts admitted and not finished.
    in_use: int = 0
    #: The token bucket (meaningful with a rate limit only); starts full.
    tokens: float = -1.0
    refilled_at: float = 0.0
    #: The latest time a rate-limited attempt was told to come back at; later holds queue
    #: behind it, one token apart, so held deliveries come back one by one.
    reserved_until: float = 0.0
    #: While half-open: when the probe was let through, or ``None`` when none is out.
    probe_at: float | None = None
    #: Why the latest admit held an attempt back.
    held_for: str = ""
    #: ``True`` once the health record changed here (a loaded record no longer replaces it).
    changed: bool = False


class EndpointHealthTracker(Service):
    """
    The live health of every endpoint, and the gate each attempt goes through.

    :meth:`admit` before an attempt, :meth:`finished` when its HTTP exchange is over, and
    :meth:`observe` once its outcome is recorded. An endpoint without limits whose circuit
    is closed costs a dictionary lookup and a few comparisons per attempt.

    :param reactor: the clock of the persistence timer.
    :param store: where health records are kept across restarts, or ``None``. Records are
        loaded when the service starts (merged: an endpoint that has already changed here
        keeps its live state) and saved in batches: a change marks the endpoint, and
        ``save_delay`` seconds after the first unsaved change every marked record is
        written with one :meth:`~twisted_hooks.interfaces.IHealthStore.save_health` call.
        A failing save is logged and retried with the next batch. :meth:`stopService`
        writes what is left. Nothing waits for the store: attempts go on meanwhile.
    :param circuit_failures: consecutive counted failures that open the circuit.
    :param circuit_cooldown: seconds an open circuit holds attempts back before a probe.
    :param disable_failures: the failures a streak needs before the endpoint is disabled.
    :param disable_period: the seconds a streak must span (first to latest failure) before
        the endpoint is disabled. Both conditions must hold.
    :param busy_retry: seconds after which an attempt held back by a full concurrency cap,
        or by a half-open circuit whose probe is still out, is tried again. A freed slot
        does not call held deliveries back early: they come back after this delay.
    :param probe_timeout: seconds after which a half-open probe whose outcome never came
        (its result could not be recorded) is given up, and another probe let through.
    :param save_delay: seconds changes are collected before they are saved.
    """

    def __init__(
        self,
        reactor: IReactorTime,
        store: IHealthStore | None = None,
        *,
        circuit_failures: int = 5,
        circuit_cooldown: float = 30.0,
        disable_failures: int = 50,
        disable_period: float = 86_400.0,
        busy_retry: float = 1.0,
        probe_timeout: float = 60.0,
        save_delay: float = 1.0,
    ) -> None:
        for name, value in [
            ("circuit_failures", circuit_failures),
            ("circuit_cooldown", circuit_cooldown),
            ("disable_failures", disable_failures),
            ("disable_period", disable_period),
            ("busy_retry", busy_retry),
        ]:
            check_field(Settings, name, value)
        check_field(Settings, "health_save_delay", save_delay, name="save_delay")
        check_field(Settings, "lease", probe_timeout, name="probe_timeout")
        self._reactor = reactor
        self.store = store
        self.circuit_failures = circuit_failures
        self.circuit_cooldown = circuit_cooldown
        self.disable_failures = disable_failures
        self.disable_period = disable_period
        self.busy_retry = busy_retry
        self.probe_timeout = probe_timeout
        self.save_delay = save_delay
        self._endpoints: dict[str, _Endpoint] = {}
        self._dirty: set[str] = set()
        self._save_timer: IDelayedCall | None = None
        self._saving: Deferred[None] | None = None
        self._loaded = False

    # -- inspection ------------------------------------------------------------------------

    def health(self, subscriber_id: str) -> EndpointHealth:
        """The health record of an endpoint (a fresh one for an endpoint never seen)."""
        state = self._endpoints.get(subscriber_id)
        return state.health if state is not None else EndpointHealth(subscriber_id)

    def records(self) -> list[EndpointHealth]:
        """Every endpoint's health record."""
        return [state.health for state in self._endpoints.values()]

    def in_use(self, subscriber_id: str) -> int:
        """How many admitted attempts to an endpoint have not finished."""
        state = self._endpoints.get(subscriber_id)
        return state.in_use if state is not None else 0

    def hold_reason(self, subscriber_id: str) -> str:
        """Why the latest :meth:`admit` of an endpoint held its attempt back."""
        state = self._endpoints.get(subscriber_id)
        return state.held_for if state is not None else ""

    # -- the gate --------------------------------------------------------------------------

    def admit(self, subscriber: Subscriber, now: float) -> float | None:
        """
        May an attempt to ``subscriber`` start at ``now``?

        :return: ``None`` to go: a concurrency slot is taken (give it back with
            :meth:`finished`) and a rate-limit token spent. Otherwise the time to try again,
            the earliest the attempt could go: when an open circuit's cool-down ends, when
            the rate limit has a token for it (held attempts queue one token apart), or
            ``now + busy_retry`` for a full concurrency cap or a half-open circuit whose
            one probe is still out. :meth:`hold_reason` says which.
        """
        state = self._endpoints.get(subscriber.id)
        if state is None:
            state = self._endpoints[subscriber.id] = _Endpoint(EndpointHealth(subscriber.id))
        health = state.health
        if health.circuit != CLOSED:
            until = self._circuit_gate(state, now)
            if until is not None:
                return until
        cap = subscriber.max_concurrency
        if cap is not None and state.in_use >= cap:
            self._undo_probe(state)
            state.held_for = f"{state.in_use} attempt(s) under way, the endpoint's cap"
            return now + self.busy_retry
        rate = subscriber.rate_limit
        if rate is not None:
            # A limit stored before the range existed is brought into it: a tiny one would
            # hold the endpoint's deliveries for ever.
            rate = min(max(rate, MIN_RATE_LIMIT), MAX_RATE_LIMIT)
            until = self._take_token(state, rate, now)
            if until is not None:
                self._undo_probe(state)
                state.held_for = f"rate limit of {rate:g} attempt(s) per second"
                return until
        state.in_use += 1
        return None

    def _circuit_gate(self, state: _Endpoint, now: float) -> float | None:
        health = state.health
        if health.circuit == OPEN:
            assert health.opened_at is not None
            ends = health.opened_at + self.circuit_cooldown
            if now < ends:
                state.held_for = "the circuit is open"
                return ends
            self._set(state, attrs.evolve(health, circuit=HALF_OPEN, updated_at=now))
            state.probe_at = now
            return None
        # Half-open: one probe at a time; a probe whose outcome never came is given up.
        if state.probe_at is None or now - state.probe_at >= self.probe_timeout:
            state.probe_at = now
            return None
        state.held_for = "the circuit is half-open and its probe is under way"
        return now + self.busy_retry

    @staticmethod
    def _undo_probe(state: _Endpoint) -> None:
        # The circuit let a probe through but a limit held it: no probe is out after all.
        if state.health.circuit == HALF_OPEN:
            state.probe_at = None

    @staticmethod
    def _take_token(state: _Endpoint, rate: float, now: float) -> float | None:
        capacity = max(1.0, rate)
        if state.tokens < 0:
            state.tokens = capacity
        else:
            state.tokens = min(capacity, state.tokens + (now - state.refilled_at) * rate)
        state.refilled_at = now
        if state.tokens >= 1.0:
            state.tokens -= 1.0
            return None
        ready = now + (1.0 - state.tokens) / rate if state.tokens < 1.0 else now
        if state.reserved_until > now:
            ready = max(ready, state.reserved_until + 1.0 / rate)
        state.reserved_until = ready
        return ready

    def finished(self, subscriber_id: str) -> None:
        """An admitted attempt's HTTP exchange is over: free its concurrency slot."""
        state = self._endpoints.get(subscriber_id)
        if state is not None and state.in_use > 0:
            state.in_use -= 1

    # -- outcomes --------------------------------------------------------------------------

    def observe(self, subscriber: Subscriber, attempt: Attempt, now: float) -> list[HealthEvent]:
        """
        Learn from the outcome of an attempt to ``subscriber``.

        A success ends the failure streak, clears a disabled mark and closes the circuit
        (a :data:`RECOVERED` event when it was not closed). A counted failure
        (:data:`COUNTED_FAILURES`) lengthens the streak; it opens the circuit after
        ``circuit_failures`` in a row, or again when it ends a half-open probe
        (:data:`OPENED`), and disables the endpoint once the streak has
        ``disable_failures`` failures over at least ``disable_period`` seconds
        (:data:`DISABLED`, once per streak). Other outcomes change nothing, except that
        they end a half-open probe.

        :return: the events to announce, usually none.
        """
        state = self._endpoints.get(subscriber.id)
        kind = attempt.error_kind
        if kind is None:
            if state is None:
                return []
            health = state.health
            if health.consecutive_failures == 0 and health.circuit == CLOSED:
                if health.disabled_since is not None:
                    self._set(state, attrs.evolve(health, disabled_since=None, updated_at=now))
                return []
            return self._succeeded(state, now)
        if state is None:
            state = self._endpoints[subscriber.id] = _Endpoint(EndpointHealth(subscriber.id))
        if kind not in COUNTED_FAILURES:
            if state.health.circuit == HALF_OPEN:
                state.probe_at = None
            return []
        return self._failed(state, attempt, now)

    def _succeeded(self, state: _Endpoint, now: float) -> list[HealthEvent]:
        health = state.health
        events: list[HealthEvent] = []
        recovered = EndpointHealth(health.subscriber_id, updated_at=now)
        self._set(state, recovered)
        state.probe_at = None
        if health.circuit != CLOSED:
            events.append(
                HealthEvent(
                    RECOVERED,
                    recovered,
                    f"the endpoint answered again after {health.consecutive_failures} "
                    "failed attempt(s); its circuit is closed",
                )
            )
        return events

    def _failed(self, state: _Endpoint, attempt: Attempt, now: float) -> list[HealthEvent]:
        health = state.health
        events: list[HealthEvent] = []
        failures = health.consecutive_failures + 1
        first = health.first_failure_at if health.first_failure_at is not None else now
        circuit, opened_at = health.circuit, health.opened_at
        if circuit == HALF_OPEN or (circuit == CLOSED and failures >= self.circuit_failures):
            circuit, opened_at = OPEN, now
        disabled_since = health.disabled_since
        disabling = (
            disabled_since is None
            and failures >= self.disable_failures
            and now - first >= self.disable_period
        )
        if disabling:
            disabled_since = now
        changed = attrs.evolve(
            health,
            consecutive_failures=failures,
            first_failure_at=first,
            last_failure_at=now,
            circuit=circuit,
            opened_at=opened_at,
            disabled_since=disabled_since,
            updated_at=now,
        )
        self._set(state, changed)
        if health.circuit == HALF_OPEN:
            state.probe_at = None
        if circuit == OPEN and health.circuit != OPEN:
            again = " again: the probe failed" if health.circuit == HALF_OPEN else ""
            events.append(
                HealthEvent(
                    OPENED,
                    changed,
                    f"the circuit opened{again} after {failures} failed attempt(s) in a row "
                    f"(last: {attempt.error_message or attempt.error_kind}); attempts are "
                    f"held back for {self.circuit_cooldown:g} s",
                )
            )
        if disabling:
            events.append(
                HealthEvent(
                    DISABLED,
                    changed,
                    f"the endpoint failed {failures} attempt(s) in a row over "
                    f"{now - first:g} s (last: {attempt.error_message or attempt.error_kind}); "
                    "it is disabled",
                )
            )
        return events

    def reset(self, subscriber_id: str, now: float) -> None:
        """Forget an endpoint's failures: close its circuit and clear its disabled mark (for
        an endpoint put back into service by hand)."""
        state = self._endpoints.get(subscriber_id)
        if state is not None:
            state.probe_at = None
            self._set(state, EndpointHealth(subscriber_id, updated_at=now))

    # -- persistence -----------------------------------------------------------------------

    def _set(self, state: _Endpoint, health: EndpointHealth) -> None:
        state.health = health
        state.changed = True
        if self.store is None:
            return
        self._dirty.add(health.subscriber_id)
        if self._save_timer is None and self._saving is None and self.running:
            self._save_timer = self._reactor.callLater(self.save_delay, self._save_later)

    def startService(self) -> None:
        """Load the stored health records (in the background)."""
        super().startService()  # type: ignore[no-untyped-call]
        if self.store is not None and not self._loaded:
            self._loaded = True
            self.store.load_health().addCallbacks(self._merge, self._load_failed)

    def _merge(self, records: Sequence[EndpointHealth]) -> None:
        for record in records:
            state = self._endpoints.get(record.subscriber_id)
            if state is None:
                self._endpoints[record.subscriber_id] = _Endpoint(record)
            elif not state.changed:
                state.health = record  # seen here, but nothing happened to it yet
        if self._dirty and self._save_timer is None and self._saving is None and self.running:
            self._save_timer = self._reactor.callLater(self.save_delay, self._save_later)

    def _load_failed(self, failure: Failure) -> None:
        _log.failure("loading endpoint health failed; every endpoint starts healthy", failure)

    def _save_later(self) -> None:
        self._save_timer = None
        self.save()

    def save(self) -> Deferred[None]:
        """
        Write the changed records now, in one call; fires when they are written (or the
        write failed and was logged). A save already under way is waited for first.
        """
        if self._save_timer is not None:
            if self._save_timer.active():
                self._save_timer.cancel()
            self._save_timer = None
        if self.store is None:
            return succeed(None)
        if self._saving is not None:
            after: Deferred[None] = Deferred()

            def again(_: object) -> None:
                self.save().chainDeferred(after)

            self._saving.addCallback(again)
            return after
        if not self._dirty:
            return succeed(None)
        ids, self._dirty = self._dirty, set()
        records = [self._endpoints[i].health for i in sorted(ids) if i in self._endpoints]
        saving: Deferred[None] = Deferred()
        self._saving = saving

        def done(result: object) -> None:
            self._saving = None
            if isinstance(result, Failure):
                _log.failure(
                    "saving the health of {count} endpoint(s) failed; retrying with the next save",
                    result,
                    count=len(records),
                )
                self._dirty |= ids
            if self._dirty and self.running and self._save_timer is None:
                self._save_timer = self._reactor.callLater(self.save_delay, self._save_later)
            saving.callback(None)

        self.store.save_health(records).addBoth(done)
        return saving

    def stopService(self) -> Deferred[None]:
        """Stop the timer and write the records not saved yet."""
        super().stopService()  # type: ignore[no-untyped-call]
        return self.save()
