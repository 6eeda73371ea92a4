"""
Stores and values for tests: :class:`MemoryHealthStore` and :func:`make_delivery`.

The memory subscriber and delivery stores are the library's own
(:class:`~twisted_hooks.webhooks.MemorySubscriberStore`,
:class:`~twisted_hooks.webhooks.MemoryDeliveryStore`, and
:class:`~twisted_hooks.store.MemoryStore` with every role); :mod:`twisted_hooks.testing`
names them again.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer

from twisted_hooks.interfaces import IHealthStore
from twisted_hooks.webhooks.delivery import Delivery
from twisted_hooks.webhooks.encoding import encode_body
from twisted_hooks.webhooks.health import EndpointHealth
from twisted_hooks.webhooks.subscribers import Subscriber

__all__ = ["EXAMPLE_SUBSCRIBER", "MemoryHealthStore", "make_delivery"]

#: The subscriber :func:`make_delivery` uses when none is given.
EXAMPLE_SUBSCRIBER = Subscriber(event="*", url="https://example.com/hook", secret="s3cret")


class _Unset:
    def __repr__(self) -> str:
        return "<not given>"


_UNSET: Any = _Unset()


def make_delivery(
    delivery_id: str | None = None,
    due: float = 0.0,
    *,
    subscriber: Subscriber = EXAMPLE_SUBSCRIBER,
    event: str = "order.created",
    event_id: str = "event-1",
    data: object = _UNSET,
    body: bytes | None = None,
    created_at: float = 0.0,
    **fields: Any,
) -> Delivery:
    """
    A pending :class:`~twisted_hooks.webhooks.Delivery`, for tests of stores, schedulers
    and senders.

    :param delivery_id: its id; a new UUID if ``None``.
    :param due: when its first attempt is due (``next_attempt_at``).
    :param subscriber: its subscriber; :data:`EXAMPLE_SUBSCRIBER` by default.
    :param data: the payload, encoded for the subscriber's content type as the
        application encodes it.
    :param body: the encoded body itself; ``b"{}"`` when neither it nor ``data`` is given.
    :param fields: any other :class:`~twisted_hooks.webhooks.Delivery` field (``retry``,
        ``timeout``, ``attempts``, ``status``, ...).
    :raise ValueError: when both ``data`` and ``body`` are given.
    """
    if data is not _UNSET:
        if body is not None:
            raise ValueError("give make_delivery data (to encode) or body (encoded), not both")
        body = encode_body(data, subscriber.content_type)
    return Delivery(
        id=delivery_id if delivery_id is not None else str(uuid.uuid4()),
        event=event,
        event_id=event_id,
        subscriber=subscriber,
        body=b"{}" if body is None else body,
        created_at=created_at,
        next_attempt_at=due,
        **fields,
    )


@implementer(IHealthStore)
class MemoryHealthStore:
    """
    An :class:`~twisted_hooks.interfaces.IHealthStore` in a dict that notes every save,
    and whose loads and saves can be made to fail or to wait for the test.

    :param records: the records it starts with.

    :ivar records: the stored :class:`~twisted_hooks.webhooks.health.EndpointHealth`
        records, by subscriber id.
    :ivar saves: the records of each :meth:`save_health` call, failed ones included.
    :ivar fail_load: when true, :meth:`load_health` fails with :class:`ConnectionError`.
    :ivar fail_saves: how many of the next saves fail with :class:`ConnectionError`
        (storing nothing).
    :ivar hold_saves: when true, each save stores its records but returns a Deferred
        kept in :attr:`held` for the test to fire.
    :ivar held: the Deferreds of held saves, oldest first.
    """

    def __init__(self, records: Sequence[EndpointHealth] = ()) -> None:
        self.records: dict[str, EndpointHealth] = {r.subscriber_id: r for r in records}
        self.saves: list[list[EndpointHealth]] = []
        self.fail_load = False
        self.fail_saves = 0
        self.hold_saves = False
        self.held: list[Deferred[None]] = []

    def __repr__(self) -> str:
        return f"<MemoryHealthStore: {len(self.records)} record(s)>"

    def load_health(self) -> Deferred[Sequence[EndpointHealth]]:
        """Every stored record (fails while :attr:`fail_load` is true)."""
        if self.fail_load:
            return fail(ConnectionError("the health store is unavailable (fail_load is set)"))
        return succeed(list(self.records.values()))

    def save_health(self, records: Sequence[EndpointHealth]) -> Deferred[None]:
        """Note the call, then store ``records`` by subscriber id (see
        :attr:`fail_saves` and :attr:`hold_saves`)."""
        self.saves.append(list(records))
        if self.fail_saves:
            self.fail_saves -= 1
            return fail(ConnectionError("the health store is unavailable (fail_saves is set)"))
        for record in records:
            self.records[record.subscriber_id] = record
        if self.hold_saves:
            held: Deferred[None] = Deferred()
            self.held.append(held)
            return held
        return succeed(None)
