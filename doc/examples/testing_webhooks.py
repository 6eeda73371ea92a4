"""
Tests of code that sends webhooks, with twisted_hooks.testing: no socket, no thread, no
waiting. Run them with ``python -m twisted.trial testing_webhooks``, with
``pytest testing_webhooks.py``, or as a program: ``python testing_webhooks.py``.
"""

from __future__ import annotations

import sys
import unittest
from decimal import Decimal

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from twisted_hooks.testing import HooksHarness, Outcome
from twisted_hooks.webhooks import ErrorKind, Hooks, SendResult

# -- the code under test -------------------------------------------------------------------


class Shop:
    """Tells the world, by webhook, when an order is paid."""

    def __init__(self, hooks: Hooks) -> None:
        self.hooks = hooks

    def pay(self, order_id: int, total: Decimal) -> Deferred[SendResult]:
        return self.hooks.send("order.paid", {"order": order_id, "total": total})


# -- its tests -----------------------------------------------------------------------------

CRM = "https://crm.example.com/hooks"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class OrderWebhookTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.harness = HooksHarness()
        self.addCleanup(self.harness.stop)
        self.harness.subscribe("order.*", CRM, secret=SECRET)
        self.shop = Shop(self.harness.hooks)

    def test_paid_order_is_sent(self) -> None:
        """Paying an order sends order.paid to the CRM, once, signed, with the total."""
        self.shop.pay(42, Decimal("9.99"))
        self.harness.flush()
        request = self.harness.receiver.assert_sent(
            "order.paid", url=CRM, data={"order": 42, "total": "9.99"}, count=1
        )
        request.verify(SECRET)

    def test_retried_until_delivered(self) -> None:
        """A 503 and a timeout are retried; the third attempt delivers."""
        self.harness.sender.queue(CRM, 503, Outcome.error(ErrorKind.TIMEOUT))
        self.shop.pay(43, Decimal("1.00"))
        self.harness.flush()
        (delivery,) = self.harness.delivered()
        codes = [attempt.status_code for attempt in self.harness.attempts(delivery.id)]
        self.assertEqual(codes, [503, None, 200])

    def test_dead_when_the_crm_is_down(self) -> None:
        """A CRM that always fails: the delivery dies after its eighth attempt, a day
        later by the harness's clock, a blink by the test's."""
        self.harness.receiver.answer(CRM, 500)
        self.shop.pay(44, Decimal("5.00"))
        self.harness.flush()
        (dead,) = self.harness.dead()
        self.assertEqual(dead.attempts, 8)


if __name__ == "__main__":
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(OrderWebhookTests)
    failed = 0
    for test in suite:
        result = unittest.TestResult()
        test.run(result)
        for _, trace in result.failures + result.errors:
            print(trace, file=sys.stderr)
        failed += not result.wasSuccessful()
        print(f"{test.id().rsplit('.', 1)[1]}: {'ok' if result.wasSuccessful() else 'FAILED'}")
    sys.exit(1 if failed else 0)
