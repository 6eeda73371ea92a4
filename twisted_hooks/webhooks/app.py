"""
The webhook application: :class:`Hooks`, a :class:`~twisted.application.service.MultiService`
composing the two halves of the engine::

    Hooks.send ──> Publisher: validate, encode once ──> EventDispatcher.fire_event
      ──> Publisher.handle (the webhook handler, in a phase): match the subscribers,
          one Delivery per subscriber ──> delivery store: enqueue
      ──> DeliveryService (told the deliveries are due): Scheduler claims them
      ──> EndpointGate admits each attempt ──> sender ──> record
      ──> update observers, send callbacks, health, operational events on the dispatcher

Data moves one way. The :class:`~twisted_hooks.webhooks._publisher.Publisher` attempts
nothing (``twisted-hooks send`` uses it alone: its deliveries wait in the store for a
running service); the :class:`~twisted_hooks.webhooks._delivery_service.DeliveryService`
learns of outcomes from the results of its own attempts and tells the rest of the world
through the dispatcher.

Webhook events are fired on the application's dispatcher with the details ``name`` (the
event name), ``kind`` (``"webhook"``) and ``owner`` (the sender's identity), so
in-process handlers can subscribe to them like to any event. The application's own
operational events (:class:`OperationalEvent`: ``webhook.delivery.failed``,
``webhook.delivery.dead``, ``webhook.endpoint.disabled``, ``webhook.endpoint.opened``,
``webhook.endpoint.recovered``) are fired with ``kind="operational"``; the webhook handler
ignores them, so they never become webhooks themselves.

Before each attempt the :class:`~twisted_hooks.webhooks._gate.EndpointGate` is asked
whether it may go: the per-host cap, a subscriber's ``max_concurrency`` and
``rate_limit``, and its circuit breaker hold a delivery back (released to the store, due
again later, no attempt counted) rather than fail it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTCP, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_hooks.dispatcher import EventDispatcher
from twisted_hooks.interfaces import (
    IDeliveryStore,
    IHealthStore,
    ISubscriberStore,
    IWebhookApplication,
    IWebhookSender,
)
from twisted_hooks.store._memory_deliveries import MemoryDeliveryStore
from twisted_hooks.store._memory_subscribers import MemorySubscriberStore
from twisted_hooks.webhooks._delivery_service import DeliveryService
from twisted_hooks.webhooks._kinds import (
    KEYWORDS,
    OPERATIONAL,
    WEBHOOK,
    HooksNotRunning,
    OperationalEvent,
)
from twisted_hooks.webhooks._publisher import Publisher, _Held
from twisted_hooks.webhooks._settings import BACKENDS, Settings
from twisted_hooks.webhooks.buffer import EventBuffer
from twisted_hooks.webhooks.delivery import (
    Attempt,
    Delivery,
    DeliveryUpdate,
)
from twisted_hooks.webhooks.events import Event, SendOptions, SendResult, WebhookEvent
from twisted_hooks.webhooks.health import EndpointHealthTracker
from twisted_hooks.webhooks.scheduler import Scheduler
from twisted_hooks.webhooks.sender import HTTPSender
from twisted_hooks.webhooks.signing import generate_secret
from twisted_hooks.webhooks.subscribers import (
    Subscriber,
    parse_subscribers,
)
from twisted_hooks.webhooks.validators import IPNetwork

__all__ = [
    "BACKENDS",
    "KEYWORDS",
    "OPERATIONAL",
    "WEBHOOK",
    "Hooks",
    "HooksNotRunning",
    "OperationalEvent",
    "Settings",
    "WebhookHandler",
]

_log = Logger(namespace="twisted_hooks.webhooks")


class WebhookHandler:
    """
    A dispatcher handler that turns webhook events into deliveries through an
    application's publisher (:attr:`Hooks.publisher`'s
    :meth:`~twisted_hooks.webhooks.Publisher.handle`, which the application registers
    itself; this class is kept for code that registers it on a dispatcher of its own).

    :param hooks: the application it works for.
    """

    def __init__(self, hooks: Hooks) -> None:
        self._hooks = hooks

    def __call__(self, event: WebhookEvent) -> Deferred[SendResult]:
        """Find the subscribers of ``event``, make and enqueue its deliveries."""
        result = self._hooks.publisher.handle(event)
        return result if isinstance(result, Deferred) else succeed(result)


@implementer(IWebhookApplication)
class Hooks(MultiService):
    """
    The webhook application: send events, manage subscribers, deliver.

    :param reactor: the reactor; the global one if ``None`` (looked up now).
    :param settings: defaults; see :class:`Settings`.
    :param dispatcher: the dispatcher to fire events on; a new one if ``None``. It must
        allow the keywords :data:`KEYWORDS` and have the phase ``settings.phase``.
    :param subscribers: the subscriber store; in memory if ``None``.
    :param deliveries: the delivery store; in memory (the ``default`` backend) if ``None``.
    :param sender: makes HTTP attempts; an :class:`HTTPSender` from the settings if ``None``.
    :param static_subscribers: subscribers in Thorn's ``THORN_SUBSCRIBERS`` shapes.
    :param default_secret: the secret of static subscribers given without one; a random
        one (readable as :attr:`default_secret`) if ``None``.
    :param rng: the source of retry jitter.
    :param health: where endpoint health (failure streaks, circuits, disabling) is kept
        across restarts; in memory only if ``None``. See :attr:`endpoint_health`.
    :param allowed_networks: internal networks (CIDR text or :mod:`ipaddress` networks)
        webhooks may reach, on any port, added to ``settings.policy``'s allow-list. Local
        development is ``Hooks(reactor, allowed_networks=["127.0.0.0/8", "::1/128"])``.

    It is an :class:`~twisted.application.service.IService`: start it (``startService``,
    or as part of a service tree) before sending; stopping it lets attempts under way
    finish.
    """

    def __init__(
        self,
        reactor: Any = None,
        *,
        settings: Settings | None = None,
        dispatcher: EventDispatcher | None = None,
        subscribers: ISubscriberStore | None = None,
        deliveries: IDeliveryStore | None = None,
        sender: IWebhookSender | None = None,
        static_subscribers: Mapping[str, object] | None = None,
        default_secret: str | None = None,
        rng: random.Random | None = None,
        health: IHealthStore | None = None,
        allowed_networks: Iterable[str | IPNetwork] = (),
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        self._reactor: IReactorTime = reactor
        settings = settings if settings is not None else Settings()
        if isinstance(allowed_networks, str):
            allowed_networks = [allowed_networks]
        allowed = tuple(allowed_networks)
        if allowed:
            policy = settings.policy
            settings = attrs.evolve(
                settings,
                policy=attrs.evolve(policy, allowed_networks=(*policy.allowed_networks, *allowed)),
            )
        self.settings = settings
        if dispatcher is None:
            dispatcher = EventDispatcher(KEYWORDS, reactor=reactor)
        self.dispatcher = dispatcher
        self.subscribers: ISubscriberStore = (
            subscribers if subscribers is not None else MemorySubscriberStore()
        )
        self.deliveries: IDeliveryStore = (
            deliveries if deliveries is not None else MemoryDeliveryStore()
        )
        if sender is None:
            tcp: IReactorTCP = reactor
            sender = HTTPSender(
                tcp,
                settings.policy,
                max_concurrency=settings.max_concurrency,
                max_per_host=settings.max_per_host,
                max_response_body=settings.max_response_body,
            )
        self.sender = sender
        self.default_secret = default_secret if default_secret is not None else generate_secret()
        static, callables = parse_subscribers(static_subscribers or {}, self.default_secret)
        self._static = MemorySubscriberStore(static)
        #: The live health of every endpoint: limits, circuits, disabling.
        self.endpoint_health = EndpointHealthTracker(
            reactor,
            health,
            circuit_failures=settings.circuit_failures,
            circuit_cooldown=settings.circuit_cooldown,
            disable_failures=settings.disable_failures,
            disable_period=settings.disable_period,
            busy_retry=settings.busy_retry,
            probe_timeout=settings.lease,
            save_delay=settings.health_save_delay,
        )
        #: The delivering half: scheduler, endpoint gate, sender, outcomes.
        self.delivery_service = DeliveryService(
            reactor,
            settings,
            deliveries=self.deliveries,
            subscribers=self.subscribers,
            static=self._static,
            sender=sender,
            health=self.endpoint_health,
            dispatcher=dispatcher,
            rng=rng,
        )
        #: The publishing half: the dispatcher's webhook handler, from a send to stored
        #: deliveries, which it hands to :attr:`delivery_service`.
        self.publisher = Publisher(
            reactor,
            settings,
            dispatcher=dispatcher,
            subscribers=self.subscribers,
            deliveries=self.deliveries,
            static=self._static,
            static_callables=callables,
            default_secret=self.default_secret,
            intake=self.delivery_service,
        )
        self.delivery_service.setServiceParent(self)  # type: ignore[no-untyped-call]
        self._pruning: LoopingCall | None = None

    @property
    def scheduler(self) -> Scheduler:
        """The :class:`~twisted_hooks.webhooks.scheduler.Scheduler` of
        :attr:`delivery_service`."""
        return self.delivery_service.scheduler

    # -- lifecycle -------------------------------------------------------------------------

    def startService(self) -> None:
        """Start the dispatcher and the delivery service; sends are accepted from now on."""
        self.dispatcher.start()
        self.publisher.startService()
        super().startService()  # type: ignore[no-untyped-call]
        self._pruning = LoopingCall(self._prune_logged)
        self._pruning.clock = self._reactor
        self._pruning.start(self.settings.prune_interval, now=False)

    def stopService(self) -> Deferred[None]:
        """
        Refuse new sends, let the attempts under way finish and be recorded, save the
        endpoints' health, close idle connections, then stop the dispatcher. Deliveries
        not yet attempted stay in the delivery store (lost with the process for the
        in-memory store): those claimed but still waiting for a connection slot are given
        back to it at once, due when they were, rather than left to their leases.
        """
        self.publisher.stopService()
        if self._pruning is not None and self._pruning.running:
            self._pruning.stop()
        d: Deferred[Any] = super().stopService()  # type: ignore[no-untyped-call]
        d.addCallback(lambda _: self.dispatcher.stop())
        return d.addCallback(lambda _: None)

    def drain(self) -> Deferred[None]:
        """
        A Deferred that fires once every delivery this application made (by
        :meth:`send`) or revived (by :meth:`retry`) has ended, delivered or dead.

        Deliveries of other runs or processes sharing the store, and those revived in bulk
        by :meth:`recover`, are not waited for: watch the store's
        :meth:`~twisted_hooks.interfaces.IDeliveryStore.stats` for those.
        """
        return self.delivery_service.drain()

    @property
    def unfinished(self) -> int:
        """How many of the deliveries :meth:`drain` waits for have not ended yet."""
        return self.delivery_service.unfinished

    # -- replay and retention ----------------------------------------------------------------

    def retry(self, delivery_id: str) -> Deferred[Delivery]:
        """
        Attempt a dead delivery again, now, with its id (``Hook-Delivery``, ``webhook-id``)
        and attempt history: it resumes its retry schedule, and gets one more attempt when
        the schedule was used up.

        :return: a Deferred firing the revived delivery; it fails with
            :class:`KeyError` for an unknown id and :class:`ValueError` for a delivery
            that is not dead.
        """
        revived = self.deliveries.retry(delivery_id, self._reactor.seconds())
        return revived.addCallback(self._revived)

    def recover(self, subscriber_id: str, since: float) -> Deferred[int]:
        """
        Attempt again every dead delivery of a subscriber made at or after ``since``
        (seconds since the epoch), as :meth:`retry` does one.

        :return: a Deferred firing how many deliveries were revived.
        """
        recovered = self.deliveries.recover(subscriber_id, since, self._reactor.seconds())
        return recovered.addCallback(self._recovered)

    def _revived(self, delivery: Delivery) -> Delivery:
        self.delivery_service.revived(delivery)
        return delivery

    def _recovered(self, count: int) -> int:
        if count:
            self.delivery_service.wake()
        return count

    def reactivate(self, subscriber_id: str) -> Deferred[Subscriber]:
        """
        Make a deactivated subscriber active again (after a 410, or after it was disabled
        for sustained failure) and forget its endpoint's failure streak and circuit.
        Deliveries that died meanwhile stay dead: :meth:`recover` them.
        """
        store = self.subscribers if self._static.find(subscriber_id) is None else self._static

        def activate(subscriber: Subscriber) -> Deferred[Subscriber]:
            self.endpoint_health.reset(subscriber_id, self._reactor.seconds())
            if subscriber.active:
                return succeed(subscriber)
            return store.update(attrs.evolve(subscriber, active=True))

        return store.get(subscriber_id).addCallback(activate)

    def prune(self) -> Deferred[tuple[int, int]]:
        """
        Delete delivered deliveries older than ``settings.keep_delivered`` (dead ones are
        kept) and idempotency keys older than ``settings.keep_keys``. The running
        application does this every ``settings.prune_interval`` seconds.

        :return: a Deferred firing ``(deliveries deleted, keys deleted)``.
        """
        now = self._reactor.seconds()
        keep = self.settings.keep_delivered
        pruned: Deferred[int] = (
            self.deliveries.prune(now - keep) if keep is not None else succeed(0)
        )

        def keys(deliveries: int) -> Deferred[tuple[int, int]]:
            forgotten = self.deliveries.prune_keys(now - self.settings.keep_keys)
            return forgotten.addCallback(lambda count: (deliveries, count))

        return pruned.addCallback(keys)

    def _prune_logged(self) -> Deferred[None]:
        def done(counts: tuple[int, int]) -> None:
            if any(counts):
                _log.info(
                    "pruned {deliveries} delivered deliveries and {keys} idempotency keys",
                    deliveries=counts[0],
                    keys=counts[1],
                )

        def failed(failure: Failure) -> None:
            _log.failure("pruning the delivery store failed; trying again later", failure)

        return self.prune().addCallbacks(done, failed)

    # -- subscribers -------------------------------------------------------------------------

    def subscribe(self, event: str, url: str, **fields: Any) -> Deferred[Subscriber]:
        """
        Add a subscriber of ``event`` (a pattern) at ``url``.

        :param fields: other :class:`Subscriber` fields (``secret``, ``digest``,
            ``content_type``, ``owner``, ``headers``, ...).
        :raise ValueError: at once, for an invalid field.
        :raise twisted_hooks.webhooks.validators.SecurityError: at once, for a URL the
            recipient validators refuse without resolving it (scheme, port, literal
            internal address).
        """
        subscriber = Subscriber(event=event, url=url, **fields)
        self.settings.policy.check_url(url)
        return self.subscribers.add(subscriber)

    def unsubscribe(self, subscriber_id: str) -> Deferred[None]:
        """Remove a subscriber; its pending deliveries end dead at their next attempt."""
        return self.subscribers.remove(subscriber_id)

    def get_subscriber(self, subscriber_id: str) -> Deferred[Subscriber]:
        """
        A stored subscriber (static subscribers are not among them: see
        :meth:`static_subscribers`).

        :return: a Deferred firing the :class:`Subscriber`; it fails with
            :class:`~twisted_hooks.webhooks.subscribers.SubscriberNotFound` for an unknown
            id.
        """
        return self.publisher.get_subscriber(subscriber_id)

    def list_subscribers(self, owner: str | None = None) -> Deferred[Sequence[Subscriber]]:
        """
        The stored subscribers, or only those of ``owner`` (a sender identity, as
        :class:`Subscriber`'s ``owner``), in no particular order.
        """
        return self.publisher.list_subscribers(owner)

    def update_subscriber(
        self, subscriber: Subscriber | str, **changes: Any
    ) -> Deferred[Subscriber]:
        """
        Change some fields of a stored subscriber, by the rules :meth:`subscribe` applies:
        the field rules of :class:`Subscriber`, and the recipient policy for a new ``url``.

        ``active=False`` deactivates an active subscriber (its deliveries end dead at
        their next attempt); ``active=True`` makes a deactivated one active again as
        :meth:`reactivate` does, forgetting its endpoint's failures. The other fields are
        stored first.

        :param subscriber: the subscriber, or its id (then it is read first).
        :param changes: :class:`Subscriber` fields and their new values; ``id`` cannot
            change.
        :return: a Deferred firing the stored subscriber; it fails with
            :class:`~twisted_hooks.webhooks.subscribers.SubscriberNotFound` for an unknown
            one.
        :raise ValueError: for an invalid field, a change of ``id`` or a non-bool
            ``active`` (:class:`TypeError` for an unknown field,
            :class:`~twisted_hooks.webhooks.validators.SecurityError` for a refused URL):
            at once given a :class:`Subscriber`, failing the Deferred given an id.
        """
        if isinstance(subscriber, Subscriber):
            return self._update(subscriber, changes)
        return self.get_subscriber(subscriber).addCallback(self._update, changes)

    def _update(self, subscriber: Subscriber, changes: dict[str, Any]) -> Deferred[Subscriber]:
        changes = dict(changes)
        active = changes.pop("active", None)
        if active is not None and not isinstance(active, bool):
            raise ValueError(f"active must be true or false, not {active!r}")
        stored: Deferred[Subscriber] = (
            self.publisher.update_subscriber(subscriber, **changes)
            if changes
            else succeed(subscriber)
        )
        if active is True and not subscriber.active:
            return stored.addCallback(lambda s: self.reactivate(s.id))
        if active is False and subscriber.active:
            return stored.addCallback(lambda s: self.publisher.deactivate_subscriber(s.id))
        return stored

    def event(self, name: str, **kwargs: Any) -> Event:
        """An :class:`~twisted_hooks.webhooks.events.Event` bound to this application."""
        return Event(name, app=self, **kwargs)

    # -- sending -----------------------------------------------------------------------------

    def send(
        self,
        name: str,
        data: object,
        sender: object = None,
        *,
        event_id: str | None = None,
        options: SendOptions | None = None,
    ) -> Deferred[SendResult]:
        """
        Publish an event: fire it on the dispatcher, whose webhook handler makes one
        delivery per subscriber.

        :param name: the event name.
        :param data: the payload.
        :param sender: who sends it (subscribers with an owner receive only their own).
        :param event_id: the event's id; a new UUID if ``None``. An id given here is the
            send's idempotency key: when the delivery store already knows it (the event
            was published before, by this process or another sharing the store), nothing
            is delivered and the result says :attr:`~SendResult.duplicate`. Keys are
            remembered for ``settings.keep_keys`` seconds (24 hours by default; a memory
            store also forgets the oldest beyond 100,000).
        :param options: per-send settings.
        :return: a Deferred firing a :class:`SendResult` once the deliveries are accepted.
            Inside :meth:`buffer_events` it fires when the buffer is flushed.
        :raise ValueError: at once, for an invalid name or backend, or a per-send timeout
            that is not shorter than ``settings.lease`` (a lease must outlast the attempt,
            or another claimer could attempt the same delivery meanwhile).
        :raise twisted_hooks.webhooks.encoding.EncodingError: at once, for data that cannot
            be encoded as JSON.
        """
        return self.publisher.send(name, data, sender, event_id=event_id, options=options)

    def build_event(
        self,
        name: str,
        data: object,
        sender: object = None,
        *,
        event_id: str | None = None,
        options: SendOptions | None = None,
    ) -> WebhookEvent:
        """
        Validate a send and encode its data, once, without publishing it: the
        :class:`~twisted_hooks.webhooks.events.WebhookEvent` :meth:`send_event` takes.
        ``send(...)`` is ``send_event(build_event(...))``. It reads only the settings and
        the clock, so any thread may call it.

        :raise ValueError: for an invalid name, backend or per-send timeout.
        :raise twisted_hooks.webhooks.encoding.EncodingError: for data that cannot be
            encoded as JSON.
        """
        return self.publisher.build(name, data, sender, event_id=event_id, options=options)

    def send_event(self, event: WebhookEvent) -> Deferred[SendResult]:
        """
        Publish an event made by :meth:`build_event`, as :meth:`send` does, without
        validating or encoding it again.

        :return: a Deferred firing a :class:`SendResult` once the deliveries are accepted.
        """
        return self.publisher.publish(event)

    def buffer_events(
        self, flush_freq: int | None = None, flush_timeout: float | None = None
    ) -> EventBuffer[_Held]:
        """
        Thorn's ``buffer_events``: hold sends until the outermost context exits.

        Use it in the reactor thread (synchronous code uses
        :meth:`twisted_hooks.sync.BlockingHooks.buffer_events`)::

            with hooks.buffer_events(flush_freq=100, flush_timeout=2.0) as buffer:
                for thing in things:
                    hooks.send("thing.done", thing)
                    buffer.maybe_flush()

        Each held send's Deferred fires when its flush has made its deliveries; ``flush()``
        returns a Deferred firing the list of :class:`SendResult` (or failures).
        """
        return self.publisher.buffer_events(flush_freq, flush_timeout)

    def observe_updates(
        self, observer: Callable[[Delivery, DeliveryUpdate], object]
    ) -> Callable[[], None]:
        """
        Call ``observer(delivery, update)`` for every attempt outcome once it is recorded
        (successes included, which no operational event announces): for metrics and
        audit trails. An observer that raises is logged and does not disturb delivery.

        :return: a function that stops the observing.
        """
        return self.delivery_service.observe_updates(observer)

    # -- inspection ------------------------------------------------------------------------------

    def get_delivery(self, delivery_id: str) -> Deferred[Delivery]:
        """
        One delivery of the delivery log, with its current state.

        :return: a Deferred firing the :class:`~twisted_hooks.webhooks.delivery.Delivery`;
            it fails with :class:`KeyError` for an unknown id.
        """
        return self.delivery_service.get_delivery(delivery_id)

    def list_deliveries(
        self,
        status: str | None = None,
        subscriber_id: str | None = None,
        limit: int = 100,
        since: float | None = None,
        *,
        subscriber_ids: Iterable[str] | None = None,
        after: tuple[float, str] | None = None,
    ) -> Deferred[Sequence[Delivery]]:
        """
        A page of the delivery log, newest first (by creation time, then id), filtered by
        ``status``, subscriber, any of ``subscriber_ids`` (an owner's, from
        :meth:`list_subscribers`) and creation time (at or after ``since``); at most
        ``limit``; only those after the ``(created_at, id)`` position ``after`` (the last
        of the previous page). The arguments of
        :meth:`~twisted_hooks.interfaces.IDeliveryStore.list`.
        """
        return self.delivery_service.list_deliveries(
            status, subscriber_id, limit, since, subscriber_ids=subscriber_ids, after=after
        )

    def delivery_attempts(self, delivery_id: str) -> Deferred[Sequence[Attempt]]:
        """
        The attempts made for a delivery, oldest first.

        :return: a Deferred firing the :class:`~twisted_hooks.webhooks.delivery.Attempt`
            values; it fails with :class:`KeyError` for an unknown id.
        """
        return self.delivery_service.delivery_attempts(delivery_id)

    def static_subscribers(self) -> Deferred[Sequence[Subscriber]]:
        """The static subscribers (from configuration)."""
        return self._static.list()
