"""
:class:`HooksHarness`: a real :class:`~twisted_hooks.webhooks.Hooks` on a
:class:`~twisted.internet.task.Clock`, memory stores and a :class:`FakeSender`, driven
synchronously.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from twisted_hooks.interfaces import IWebhookSender
from twisted_hooks.store._memory_deliveries import MemoryDeliveryStore
from twisted_hooks.store._memory_subscribers import MemorySubscriberStore
from twisted_hooks.testing._receiver import RecordingReceiver
from twisted_hooks.testing._sender import FakeSender
from twisted_hooks.testing._stores import MemoryHealthStore
from twisted_hooks.webhooks.app import Hooks, Settings
from twisted_hooks.webhooks.delivery import (
    DEAD,
    DELIVERED,
    IN_FLIGHT,
    PENDING,
    RETRYING,
    Attempt,
    Delivery,
)
from twisted_hooks.webhooks.events import SendResult
from twisted_hooks.webhooks.subscribers import Subscriber

__all__ = ["HooksHarness", "result_of"]

_T = TypeVar("_T")

#: The statuses of deliveries that have not ended.
_UNFINISHED = (PENDING, IN_FLIGHT, RETRYING)


def result_of(deferred: Deferred[_T], what: str = "the operation") -> _T:
    """
    The result of a Deferred that has fired, as
    :meth:`~twisted.trial.unittest.SynchronousTestCase.successResultOf` gives it.

    :param what: names the operation in the error.
    :raise AssertionError: when the Deferred has not fired (something waits: a held
        attempt, a held store call).
    :raise Exception: the Deferred's own failure, raised again.
    """
    outcome: list[Any] = []
    deferred.addBoth(outcome.append)
    if not outcome:
        raise AssertionError(
            f"{what} has not finished: something it waits for has not happened yet "
            "(an attempt held by the FakeSender? a store call held by the test?)"
        )
    value = outcome[0]
    if isinstance(value, Failure):
        value.raiseException()
    deferred.addCallback(lambda _: value)
    return value  # type: ignore[no-any-return]


class HooksHarness:
    """
    A started :class:`~twisted_hooks.webhooks.Hooks` on a
    :class:`~twisted.internet.task.Clock`, with stores in memory (subscribers, deliveries,
    endpoint health) and a :class:`FakeSender` that records what
    it sends in a :class:`RecordingReceiver`: the whole delivery engine, with no socket and
    no thread, in one call. Time moves only when :meth:`advance` or :meth:`flush` moves it.

    :param settings: the application's :class:`~twisted_hooks.webhooks.Settings`.
    :param sender: the sender; a :class:`FakeSender` on the harness's clock and
        receiver if ``None``. Another sender (``receiver.http_sender(clock)``, the real
        one in memory) works too.
    :param http: send with the real :class:`~twisted_hooks.webhooks.HTTPSender`, in
        memory, to the receiver (:meth:`RecordingReceiver.http_sender`) instead of a
        :class:`FakeSender`: every request then goes through the real sender's signing,
        encoding of headers and reading of replies, and the receiver alone answers.
    :param start: start the application now (:meth:`stop` stops it).
    :param now: the clock's first time, seconds since the epoch.
    :param hooks_kwargs: other :class:`~twisted_hooks.webhooks.Hooks` arguments
        (``static_subscribers``, ``dispatcher``, ``allowed_networks``, ``rng``, ...),
        or stores of your own whose Deferreds fire at once (``subscribers``,
        ``deliveries``, ``health``).

    :ivar clock: the :class:`~twisted.internet.task.Clock`.
    :ivar health: a :class:`MemoryHealthStore`, the application's unless another was
        given (the subscriber and delivery stores are ``hooks.subscribers`` and
        ``hooks.deliveries``).
    :ivar receiver: the :class:`RecordingReceiver`.
    :ivar sender: the sender.
    :ivar hooks: the :class:`~twisted_hooks.webhooks.Hooks`.
    """

    def __init__(
        self,
        *,
        settings: Settings | None = None,
        sender: IWebhookSender | None = None,
        http: bool = False,
        start: bool = True,
        now: float = 1_700_000_000.0,
        **hooks_kwargs: Any,
    ) -> None:
        self.clock = Clock()
        self.clock.advance(now)
        self.health = MemoryHealthStore()
        self.receiver = RecordingReceiver(self.clock)
        if sender is not None and http:
            raise ValueError("give HooksHarness a sender or http=True, not both")
        if sender is None:
            sender = (
                self.receiver.http_sender(self.clock)
                if http
                else FakeSender(self.clock, receiver=self.receiver)
            )
        self.sender: IWebhookSender = sender
        hooks_kwargs.setdefault("rng", random.Random(0))
        hooks_kwargs.setdefault("subscribers", MemorySubscriberStore())
        hooks_kwargs.setdefault("deliveries", MemoryDeliveryStore())
        hooks_kwargs.setdefault("health", self.health)
        self.hooks = Hooks(
            self.clock,
            settings=settings,
            sender=self.sender,
            **hooks_kwargs,
        )
        if start:
            self.hooks.startService()

    def __repr__(self) -> str:
        return f"<HooksHarness at {self.clock.seconds():g} s, {self.sender!r}>"

    def stop(self) -> None:
        """Stop the application (if it runs), letting attempts under way finish.

        :raise AssertionError: when an attempt held by the FakeSender keeps it from
            stopping."""
        if self.hooks.running:
            result_of(self.hooks.stopService(), "stopping the application")

    # -- doing -------------------------------------------------------------------------------

    def subscribe(self, event: str, url: str, **fields: Any) -> Subscriber:
        """:meth:`Hooks.subscribe <twisted_hooks.webhooks.Hooks.subscribe>`, synchronously:
        the stored subscriber."""
        return result_of(self.hooks.subscribe(event, url, **fields), "subscribing")

    def send(
        self, name: str, data: object = None, sender: object = None, **kwargs: Any
    ) -> SendResult:
        """:meth:`Hooks.send <twisted_hooks.webhooks.Hooks.send>`, synchronously: the
        :class:`~twisted_hooks.webhooks.SendResult` (its deliveries are made; the first
        attempt of each is made at the next :meth:`advance` or :meth:`flush`)."""
        return result_of(self.hooks.send(name, data, sender, **kwargs), f"sending {name!r}")

    def advance(self, seconds: float = 0.0) -> None:
        """
        Move the clock ``seconds`` forward, stopping at each timer on the way in order
        (a retry due in 5 s runs at 5 s, not at the end), then at the end.

        :raise ValueError: for a negative or non-finite number.
        """
        if not 0 <= seconds < float("inf"):
            raise ValueError(f"advance() takes a finite number of seconds >= 0, got {seconds!r}")
        end = self.clock.seconds() + seconds
        while True:
            due = [call.getTime() for call in self.clock.getDelayedCalls()]
            upcoming = min((t for t in due if t <= end), default=None)
            if upcoming is None:
                break
            self.clock.advance(max(0.0, upcoming - self.clock.seconds()))
        self.clock.advance(max(0.0, end - self.clock.seconds()))

    def flush(self, max_steps: int = 100_000) -> None:
        """
        Move the clock from timer to timer until every delivery in the store is delivered
        or dead, retries included (a delivery retried for 27 hours takes 27 hours of the
        clock's time, and a blink of the test's).

        :param max_steps: the most timers run before giving up.
        :raise AssertionError: when an attempt held by the :class:`FakeSender` keeps a
            delivery from ending (fire it with :meth:`FakeSender.finish`), when nothing
            is scheduled that could end them, or after ``max_steps`` timers; each names
            the unfinished deliveries.
        """
        for _ in range(max_steps):
            unfinished = self.unfinished()
            if not unfinished:
                return
            held = getattr(self.sender, "held", None)
            if held:
                raise AssertionError(
                    f"flush() cannot end {len(unfinished)} deliveries: the FakeSender holds "
                    f"{len(held)} attempt(s); end them with sender.finish(). "
                    + _listing(unfinished)
                )
            calls = self.clock.getDelayedCalls()
            if not calls:
                raise AssertionError(
                    "flush() cannot end the deliveries: nothing is scheduled (is the "
                    "application started?). " + _listing(unfinished)
                )
            upcoming = min(call.getTime() for call in calls)
            self.clock.advance(max(0.0, upcoming - self.clock.seconds()))
        raise AssertionError(
            f"flush() gave up after {max_steps} timers. " + _listing(self.unfinished())
        )

    # -- looking -----------------------------------------------------------------------------

    def deliveries(self, status: str | None = None) -> list[Delivery]:
        """Every delivery in the store (or those of ``status``), oldest first."""
        found = result_of(self.hooks.deliveries.list(status, limit=1_000_000), "listing")
        return list(reversed(found))

    def unfinished(self) -> list[Delivery]:
        """The deliveries neither delivered nor dead, oldest first."""
        return [d for d in self.deliveries() if d.status in _UNFINISHED]

    def delivered(self) -> list[Delivery]:
        """The delivered deliveries, oldest first."""
        return self.deliveries(DELIVERED)

    def dead(self) -> list[Delivery]:
        """The dead deliveries, oldest first."""
        return self.deliveries(DEAD)

    def attempts(self, delivery_id: str) -> Sequence[Attempt]:
        """The attempts of a delivery, oldest first.

        :raise KeyError: for an unknown delivery."""
        return result_of(self.hooks.deliveries.attempts(delivery_id), "listing attempts")


def _listing(deliveries: Sequence[Delivery]) -> str:
    shown = ", ".join(
        f"{d.id} ({d.event} to {d.subscriber.url}: {d.status}, {d.attempts} attempt(s))"
        for d in deliveries[:10]
    )
    more = f" and {len(deliveries) - 10} more" if len(deliveries) > 10 else ""
    return f"Unfinished: {shown}{more}."
