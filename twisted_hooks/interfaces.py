"""
The zope interfaces of twisted_hooks.

Each interface names one role. Implementations are checked with
:func:`zope.interface.verify.verifyObject` in the tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from zope.interface import Attribute, Interface

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from twisted.internet.defer import Deferred

    from twisted_hooks._values import FireResult
    from twisted_hooks.store.tokens import Token
    from twisted_hooks.webhooks._deliveries import (
        Attempt,
        Delivery,
        DeliveryStats,
        DeliveryUpdate,
    )
    from twisted_hooks.webhooks._health import EndpointHealth
    from twisted_hooks.webhooks._subscriber import Subscriber


class IEventDispatcher(Interface):
    """
    Fires events to handlers chosen by match-spec keywords, through ordered phases.

    See :class:`twisted_hooks.EventDispatcher` for the semantics.
    """

    running = Attribute("``True`` between :meth:`start` and :meth:`stop`.")

    phases = Attribute("The phase names, in the order they run, as a tuple of str.")

    allowed_match_spec_keywords = Attribute(
        "The keywords a match spec and an event's details may use, as a frozenset of str."
    )

    def add_event_handler(
        handler: Callable[[Any], object],
        phase: str,
        use_weakref: bool = True,
        times: int | None = None,
        # Typed Any rather than Callable[[Any], object] | None: callers that forward a
        # **match_spec dict of objects (twisted_hooks.sync) type-check against it.
        where: Any = None,
        **match_spec: object,
    ) -> Deferred[int]:
        """
        Register ``handler`` to be called in ``phase`` for events matching ``match_spec``.

        ``where``, when given, is called with the event for each fire the match spec
        matched, just before the handler would be; the handler is called only when it
        returns something true (a :class:`twisted_hooks.Q` is such a callable).

        :return: a :class:`~twisted.internet.defer.Deferred` firing the handler's id.
        :raise ValueError: at once, for an unknown phase or keyword.
        :raise TypeError: at once, for an unhashable match-spec value.
        """

    def remove_event_handler(handler_id: int) -> Deferred[None]:
        """
        Remove the handler registered under ``handler_id``.

        :return: a Deferred firing ``None``; it fails with :class:`KeyError` for an
            unknown id.
        """

    def fire_event(event: object, **details: object) -> Deferred[FireResult]:
        """
        Call every handler whose match spec matches ``details``, phase by phase.

        :return: a Deferred firing a :class:`twisted_hooks.FireResult`.
        :raise ValueError: at once, for a detail keyword that is not allowed.
        """

    def start() -> None:
        """
        Start dispatching events. Returns ``None``.
        """

    def stop() -> Deferred[None]:
        """
        Stop dispatching events.

        :return: a Deferred that fires once every fire in flight has finished.
        """


class ISubscriberStore(Interface):
    """
    Keeps subscribers and finds the ones an event reaches.

    Every method returns a Deferred; a missing id fails it with
    :class:`twisted_hooks.webhooks.subscribers.SubscriberNotFound` (a :class:`KeyError`).
    """

    def add(subscriber: Subscriber) -> Deferred[Subscriber]:
        """Store a new subscriber (fails for an id already stored)."""

    def get(subscriber_id: str) -> Deferred[Subscriber]:
        """The subscriber with this id."""

    def update(subscriber: Subscriber) -> Deferred[Subscriber]:
        """Replace the stored subscriber of the same id; fires the stored value."""

    def remove(subscriber_id: str) -> Deferred[None]:
        """Delete a subscriber."""

    def deactivate(subscriber_id: str) -> Deferred[Subscriber]:
        """Mark a subscriber inactive (after a 410 Gone); fires the stored value."""

    def list(owner: str | None = None) -> Deferred[Sequence[Subscriber]]:
        """Every subscriber, or those of one owner."""

    def find(subscriber_id: str) -> Subscriber | None:
        """
        The subscriber with this id as the store knows it without waiting, or ``None``.

        Used before every attempt, so it must not do I/O: a store behind a network answers
        from its in-memory index (its own writes at once, other processes' once it has
        refreshed).
        """

    def match(event: str, owner: str | None) -> Deferred[Sequence[Subscriber]]:
        """The active subscribers whose pattern matches ``event`` and who receive from
        ``owner`` (Thorn's rule: a subscriber without an owner receives from everyone)."""


class IDeliveryStore(Interface):
    """
    Keeps deliveries from their creation to their end (delivered or dead).

    The scheduler drives it: :meth:`enqueue` new deliveries, :meth:`claim` the due ones
    under a lease, attempt them, then :meth:`record` what happened (or :meth:`release` a
    delivery an endpoint's limits held back). A durable store commits in :meth:`enqueue`
    before the first attempt, so nothing accepted is lost; a claimed delivery whose lease
    expires (its claimer crashed) is claimable again, with the same id.

    Leases are fenced: each claim gives the delivery a new
    :attr:`~twisted_hooks.webhooks.Delivery.claim_token`, and :meth:`record` and
    :meth:`release` drop (and log, never fail) a write carrying a token older than the
    delivery's current one, so a claimer whose lease expired cannot overwrite the outcome
    of the claimer that took the delivery after it. A write without a token (``None``) is
    not checked. A store that does not fence leaves ``claim_token`` ``None``.
    """

    durable = Attribute("``True`` when deliveries survive the process.")

    def enqueue(
        deliveries: Sequence[Delivery], idempotency_key: str | None = None
    ) -> Deferred[bool]:
        """
        Store new deliveries, due at their ``next_attempt_at``, in one transaction.

        With an ``idempotency_key`` (a published event's id), the key is stored in the same
        transaction; when it is known already nothing is stored and the Deferred fires
        ``False``. Otherwise it fires ``True``.
        """

    def claim(now: float, limit: int, lease: float) -> Deferred[Sequence[Delivery]]:
        """
        Take up to ``limit`` deliveries due at ``now`` (including those whose lease has
        expired), earliest due first, leasing each until ``now + lease`` so no other
        claimer takes it meanwhile. Claimed deliveries are ``in_flight``, each with a new
        ``claim_token`` (one more than its last).
        """

    def record(updates: Sequence[DeliveryUpdate]) -> Deferred[Sequence[DeliveryUpdate]]:
        """
        Write the outcome of attempts, in one transaction: delivered, retry at a time,
        or dead; each attempt is kept. An update for a delivery that has already ended is
        ignored (its attempt is still kept).

        An update whose ``claim_token`` is not the delivery's current one (the delivery
        was claimed again after its lease expired) is dropped whole, attempt included,
        and logged.

        :return: a Deferred firing the updates dropped that way (empty when none). The
            scheduler also accepts ``None`` (from a store written before fencing, which
            drops nothing).
        """

    def release(delivery_id: str, due_at: float, claim_token: int | None = None) -> Deferred[None]:
        """Give back a claimed delivery without an attempt, due again at ``due_at`` (its
        endpoint's concurrency cap, rate limit or open circuit held it back, or the
        scheduler stopped before attempting it). With a ``claim_token`` that is not the
        delivery's current one, nothing is changed and the stale release is logged."""

    def next_due() -> Deferred[float | None]:
        """The earliest time a delivery becomes claimable, or ``None`` when none waits."""

    def get(delivery_id: str) -> Deferred[Delivery]:
        """A delivery by id, with its current state (fails with :class:`KeyError`)."""

    def attempts(delivery_id: str) -> Deferred[Sequence[Attempt]]:
        """The attempts made for a delivery, oldest first."""

    def list(
        status: str | None = None,
        subscriber_id: str | None = None,
        limit: int = 100,
        since: float | None = None,
        *,
        subscriber_ids: Iterable[str] | None = None,
        after: tuple[float, str] | None = None,
    ) -> Deferred[Sequence[Delivery]]:
        """
        Deliveries, newest first (by creation time, then id, both descending), filtered by
        status, subscriber, any of ``subscriber_ids`` (a caller's subscriptions) and
        creation time (``created_at >= since``); at most ``limit``.

        :param after: a ``(created_at, id)`` position in that order: only the deliveries
            after it (the next page of a listing that ended with that delivery).
        """

    def retry(delivery_id: str, now: float) -> Deferred[Delivery]:
        """
        Make a dead delivery pending again, due at ``now``, keeping its id and attempts: it
        resumes its retry schedule (one more attempt when the schedule was used up).
        Fails with :class:`KeyError` for an unknown id and :class:`ValueError` when the
        delivery is not dead.
        """

    def recover(subscriber_id: str, since: float, now: float) -> Deferred[int]:
        """Make every dead delivery of a subscriber created at or after ``since`` pending
        again, due at ``now``; fires how many."""

    def prune(before: float) -> Deferred[int]:
        """Delete delivered deliveries (with their attempts) that were delivered before
        ``before``; fires how many. Dead deliveries are kept."""

    def prune_keys(before: float) -> Deferred[int]:
        """Forget the idempotency keys stored before ``before`` (publishing again with such
        a key is accepted again); fires how many."""

    def stats(now: float) -> Deferred[DeliveryStats]:
        """Counts by status and the age of the oldest due delivery (for metrics)."""


class IHealthStore(Interface):
    """Keeps the health of endpoints (subscribers): failure streaks, circuits, disabling."""

    def load_health() -> Deferred[Sequence[EndpointHealth]]:
        """Every stored endpoint health record."""

    def save_health(records: Sequence[EndpointHealth]) -> Deferred[None]:
        """Insert or replace these records (by subscriber id), in one transaction."""


class ITokenStore(Interface):
    """Keeps the API's bearer tokens, hashed: the token itself is never stored."""

    def add_token(token: Token) -> Deferred[Token]:
        """Store a new token; fails with :class:`ValueError` when its name is taken."""

    def token_by_hash(token_hash: str) -> Deferred[Token | None]:
        """The token with this hash, revoked or not, or ``None``."""

    def tokens() -> Deferred[Sequence[Token]]:
        """Every token, oldest first."""

    def revoke_token(name: str, now: float) -> Deferred[Token]:
        """Mark a token revoked; fails with :class:`KeyError` for an unknown name."""


class IWebhookSender(Interface):
    """Makes one HTTP attempt of a delivery and says what happened; never raises."""

    def attempt(delivery: Delivery, subscriber: Subscriber) -> Deferred[Attempt]:
        """POST the delivery to the subscriber (signed now) and classify the answer."""


class IPolicySender(IWebhookSender):
    """A sender that also takes the recipient policy of one delivery (a send's own
    validators), checked for that attempt instead of its default one."""

    def attempt(
        delivery: Delivery, subscriber: Subscriber, policy: Any = None
    ) -> Deferred[Attempt]:
        """POST the delivery to the subscriber (signed now) under ``policy`` (a
        :class:`~twisted_hooks.webhooks.validators.RecipientPolicy`, or ``None`` for the
        sender's own) and classify the answer."""


class IPublisher(Interface):
    """Turns a published event into deliveries: validates and encodes it, matches the
    subscribers, makes one delivery per subscriber and enqueues them in the delivery store.
    It attempts nothing."""

    def send(
        name: str,
        data: object,
        sender: object = None,
        *,
        event_id: str | None = None,
        options: Any = None,
    ) -> Deferred[Any]:
        """Publish an event; fires a :class:`~twisted_hooks.webhooks.SendResult` once its
        deliveries are enqueued."""


class IDeliveryIntake(Interface):
    """Where the publishing side hands deliveries it has just stored, so that they are
    attempted without waiting for a poll. Data only flows this way: nothing comes back."""

    def accepted(event: Any, deliveries: Sequence[Delivery]) -> None:
        """``deliveries`` of ``event`` (a :class:`~twisted_hooks.webhooks.WebhookEvent`,
        whose send options hold its callbacks) are stored and due now."""

    def revived(delivery: Delivery) -> None:
        """``delivery`` was made due again (a retry of a dead delivery)."""

    def wake() -> None:
        """Deliveries may have become due (bulk recovery): look for them now."""


class IEndpointGate(Interface):
    """The one place an attempt is admitted: per-endpoint and per-host concurrency, rate
    limit, circuit breaker, and lease-aware waiting for a slot."""

    running = Attribute("``False`` once stopped: nothing more is admitted.")

    def admit(delivery: Delivery, subscriber: Subscriber) -> Any:
        """A slot for one attempt of ``delivery`` to ``subscriber``, a
        :class:`~twisted_hooks.webhooks.scheduler.HoldBack` (not now: give it back, due
        then), or a Deferred firing one of these once decided. A slot must be given back
        with :meth:`release` when the attempt's HTTP exchange is over."""

    def release(slot: Any) -> None:
        """The attempt holding ``slot`` is over: its endpoint's and host's places are free."""

    def stop() -> None:
        """Admit nothing more; every delivery waiting for a slot is told to go back to the
        store, unattempted, due when it was."""


class IWebhookApplication(Interface):
    """
    A webhook application as events use it (:class:`~twisted_hooks.webhooks.Hooks` is
    one): the application an :class:`~twisted_hooks.webhooks.Event` made without ``app=``
    sends through is the one registered for this role
    (:func:`twisted_hooks.registry.register_application`).
    """

    settings = Attribute("The application's :class:`~twisted_hooks.webhooks.Settings`.")

    def send(
        name: str,
        data: object,
        sender: object = None,
        *,
        event_id: str | None = None,
        options: Any = None,
    ) -> Deferred[Any]:
        """Publish an event; fires a :class:`~twisted_hooks.webhooks.SendResult` once its
        deliveries are accepted."""

    def buffer_events(flush_freq: int | None = None, flush_timeout: float | None = None) -> Any:
        """Thorn's ``buffer_events``: an :class:`~twisted_hooks.webhooks.EventBuffer`."""
