"""
Fakes for testing code that sends webhooks, as :mod:`treq.testing` is for code that
makes HTTP requests: no socket, no thread, no real time.

- :class:`HooksHarness` builds a started :class:`~twisted_hooks.webhooks.Hooks` on a
  :class:`~twisted.internet.task.Clock` with memory stores and a :class:`FakeSender`;
  :meth:`~HooksHarness.flush` moves the clock until every delivery is delivered or dead.
- :class:`RecordingReceiver` records every request sent (:class:`RecordedRequest`: URL,
  headers, body, payload, event name, delivery id, signatures to check) and answers
  them; :meth:`~RecordingReceiver.assert_sent` says whether an event was sent, and where,
  with what.
- :class:`FakeSender` stands in for the HTTP sender: it notes each attempt and answers
  it with a status code, an :class:`Outcome` (a timeout, a refused connection, ...), or
  :data:`HOLD` (under way until :meth:`~FakeSender.finish`), per URL, in a queue, or from
  a callable.
- :class:`MemoryHealthStore`, :class:`MemoryDeliveryStore`, :class:`MemorySubscriberStore`
  and :class:`MemoryStore` are stores in memory; :func:`make_delivery` makes a delivery.

Each fake provides the interface it stands in for (checked with
:func:`zope.interface.verify.verifyObject` in twisted_hooks' own tests, which use them).
See :doc:`/testing` for a whole example.
"""

from __future__ import annotations

from twisted_hooks.store._memory_deliveries import MemoryDeliveryStore
from twisted_hooks.store._memory_subscribers import MemorySubscriberStore
from twisted_hooks.store.memory import MemoryStore
from twisted_hooks.testing._harness import HooksHarness, result_of
from twisted_hooks.testing._receiver import RecordedRequest, RecordingReceiver, Reply
from twisted_hooks.testing._sender import (
    HOLD,
    Answer,
    FakeSender,
    HeldAttempt,
    Hold,
    Outcome,
    SenderCall,
)
from twisted_hooks.testing._stores import EXAMPLE_SUBSCRIBER, MemoryHealthStore, make_delivery

__all__ = [
    "EXAMPLE_SUBSCRIBER",
    "HOLD",
    "Answer",
    "FakeSender",
    "HeldAttempt",
    "Hold",
    "HooksHarness",
    "MemoryDeliveryStore",
    "MemoryHealthStore",
    "MemoryStore",
    "MemorySubscriberStore",
    "Outcome",
    "RecordedRequest",
    "RecordingReceiver",
    "Reply",
    "SenderCall",
    "make_delivery",
    "result_of",
]
