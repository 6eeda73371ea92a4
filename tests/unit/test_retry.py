"""
Tests for :mod:`twisted_hooks.webhooks.retry` (the retry schedule, jitter, ``Retry-After``,
Thorn's ``retry``/``retry_max``/``retry_delay``) and for
:func:`twisted_hooks.webhooks.delivery.decide`, which applies it to an attempt.
"""

from __future__ import annotations

import email.utils
import functools
import random
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from twisted_hooks import testing
from twisted_hooks.webhooks.delivery import (
    DEAD,
    DELIVERED,
    RETRYING,
    Attempt,
    ErrorKind,
    decide,
)
from twisted_hooks.webhooks.retry import (
    DEFAULT_SCHEDULE,
    MAX_RETRIES,
    MAX_RETRY_DELAY,
    THORN_RETRY_DELAY,
    THORN_RETRY_MAX,
    RetryPolicy,
    parse_retry_after,
)
from twisted_hooks.webhooks.subscribers import Subscriber

NOW = 1_700_000_000.0


class ScheduleTests(SynchronousTestCase):
    def test_default_schedule(self) -> None:
        """The default delays are 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, with 20 %
        jitter and a one-hour Retry-After cap: eight attempts in all."""
        self.assertEqual(DEFAULT_SCHEDULE, (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0))
        policy = RetryPolicy()
        self.assertEqual(policy.delays, DEFAULT_SCHEDULE)
        self.assertEqual(policy.jitter, 0.2)
        self.assertEqual(policy.retry_after_cap, 3600.0)
        self.assertEqual(policy.max_attempts, 8)

    def test_max_attempts(self) -> None:
        """max_attempts is one more than the number of delays."""
        self.assertEqual(RetryPolicy(delays=()).max_attempts, 1)
        self.assertEqual(RetryPolicy(delays=[1, 2, 3]).max_attempts, 4)

    def test_without_jitter_exact(self) -> None:
        """With jitter 0 each delay is exactly the schedule's, whatever the random source."""
        policy = RetryPolicy(jitter=0)
        rng = random.Random(7)
        delays = [policy.next_delay(n, rng) for n in range(1, 8)]
        self.assertEqual(delays, list(DEFAULT_SCHEDULE))

    def test_exhausted(self) -> None:
        """After the last retry there is no next delay."""
        policy = RetryPolicy()
        rng = random.Random(0)
        self.assertIsNotNone(policy.next_delay(7, rng))
        self.assertIsNone(policy.next_delay(8, rng))
        self.assertIsNone(policy.next_delay(100, rng))
        self.assertIsNone(RetryPolicy(delays=()).next_delay(1, rng))
        self.assertIsNone(RetryPolicy(delays=()).next_delay(1, rng, retry_after=5))

    def test_attempts_made_at_least_one(self) -> None:
        """next_delay refuses attempts_made below 1, saying so."""
        with self.assertRaises(ValueError) as raised:
            RetryPolicy().next_delay(0, random.Random(0))
        self.assertIn("attempts_made must be at least 1", str(raised.exception))

    @given(seed=st.integers(min_value=0, max_value=2**64), jitter=st.floats(0, 0.99))
    def test_jitter_bounds(self, seed: int, jitter: float) -> None:
        """Every jittered delay lies within [base * (1 - jitter), base * (1 + jitter)]."""
        policy = RetryPolicy(jitter=jitter)
        rng = random.Random(seed)
        for number, base in enumerate(DEFAULT_SCHEDULE, start=1):
            delay = policy.next_delay(number, rng)
            assert delay is not None
            self.assertGreaterEqual(delay, base * (1 - jitter) - 1e-9)
            self.assertLessEqual(delay, base * (1 + jitter) + 1e-9)

    def test_jitter_spreads(self) -> None:
        """Jitter really varies the delays (a seeded source gives several values)."""
        policy = RetryPolicy()
        rng = random.Random(42)
        delays = {policy.next_delay(2, rng) for _ in range(20)}
        self.assertGreater(len(delays), 10)

    def test_same_seed_same_delays(self) -> None:
        """The jitter comes only from the random source given."""
        policy = RetryPolicy()
        first = [policy.next_delay(n, random.Random(3)) for n in range(1, 8)]
        again = [policy.next_delay(n, random.Random(3)) for n in range(1, 8)]
        self.assertEqual(first, again)


class RetryAfterTests(SynchronousTestCase):
    def test_raises_the_delay(self) -> None:
        """A Retry-After longer than the scheduled delay becomes the delay."""
        policy = RetryPolicy(jitter=0)
        self.assertEqual(policy.next_delay(1, random.Random(0), retry_after=120), 120)

    def test_capped(self) -> None:
        """A Retry-After beyond retry_after_cap is held to the cap."""
        policy = RetryPolicy(jitter=0, retry_after_cap=600)
        self.assertEqual(policy.next_delay(1, random.Random(0), retry_after=10**9), 600)

    def test_never_lower_than_the_schedule(self) -> None:
        """A Retry-After shorter than the scheduled delay does not shorten it; nor does a
        cap below the schedule."""
        policy = RetryPolicy(jitter=0, retry_after_cap=10)
        self.assertEqual(policy.next_delay(3, random.Random(0), retry_after=1), 1800)
        self.assertEqual(policy.next_delay(3, random.Random(0), retry_after=10**6), 1800)
        self.assertEqual(policy.next_delay(1, random.Random(0), retry_after=0), 5)

    @given(
        seed=st.integers(min_value=0, max_value=2**32),
        number=st.integers(min_value=1, max_value=7),
        retry_after=st.floats(min_value=0, max_value=1e7),
        cap=st.floats(min_value=0, max_value=1e6),
    )
    def test_bounds(self, seed: int, number: int, retry_after: float, cap: float) -> None:
        """With Retry-After the delay is max(jittered delay, min(retry_after, cap))."""
        policy = RetryPolicy(retry_after_cap=cap)
        jittered = policy.next_delay(number, random.Random(seed))
        delay = policy.next_delay(number, random.Random(seed), retry_after=retry_after)
        assert jittered is not None
        self.assertEqual(delay, max(jittered, min(retry_after, cap)))


class FromThornTests(SynchronousTestCase):
    def test_nothing_given(self) -> None:
        """Without Thorn's arguments the default policy applies (or the one given)."""
        self.assertEqual(RetryPolicy.from_thorn(), RetryPolicy())
        self.assertEqual(RetryPolicy.from_thorn(retry=True), RetryPolicy())
        custom = RetryPolicy(delays=[1], jitter=0.1)
        self.assertIs(RetryPolicy.from_thorn(default=custom), custom)

    def test_no_retry(self) -> None:
        """retry=False gives one attempt and no retry, whatever else is given."""
        policy = RetryPolicy.from_thorn(retry=False)
        self.assertEqual(policy.delays, ())
        self.assertEqual(policy.max_attempts, 1)
        policy = RetryPolicy.from_thorn(retry=False, retry_max=5, retry_delay=10)
        self.assertEqual(policy.max_attempts, 1)

    def test_fixed_schedule(self) -> None:
        """retry_max and retry_delay give retry_max retries retry_delay seconds apart,
        keeping the default's jitter and cap."""
        default = RetryPolicy(jitter=0.05, retry_after_cap=99)
        policy = RetryPolicy.from_thorn(retry_max=3, retry_delay=30, default=default)
        self.assertEqual(policy, RetryPolicy(delays=(30.0,) * 3, jitter=0.05, retry_after_cap=99))
        self.assertEqual(RetryPolicy.from_thorn(retry_max=0, retry_delay=30).delays, ())

    def test_only_one_given(self) -> None:
        """With only retry_max or only retry_delay, Thorn's defaults (10 retries, 60 s)
        fill in the other."""
        self.assertEqual((THORN_RETRY_MAX, THORN_RETRY_DELAY), (10, 60.0))
        self.assertEqual(RetryPolicy.from_thorn(retry_max=2).delays, (60.0, 60.0))
        self.assertEqual(RetryPolicy.from_thorn(retry_delay=5).delays, (5.0,) * 10)

    def test_invalid(self) -> None:
        """A negative or non-whole retry_max, a bool, a negative or infinite retry_delay
        are refused with a message naming the value."""
        cases: list[tuple[dict[str, Any], str]] = [
            ({"retry_max": -1}, "retry_max must be a whole number from 0 to 100, got -1"),
            ({"retry_max": 10**9}, "retry_max must be a whole number from 0 to 100"),
            ({"retry_max": 2.5}, "retry_max must be a whole number"),
            ({"retry_max": True}, "retry_max must be a whole number"),
            ({"retry_max": "3"}, "retry_max must be a whole number"),
            ({"retry_delay": -1}, "retry delays must be finite and not negative, got -1"),
            ({"retry_delay": float("inf")}, "finite and not negative"),
            ({"retry_delay": True}, "retry delays must be numbers of seconds, got True"),
            ({"retry_delay": "60"}, "retry delays must be numbers of seconds, got '60'"),
            ({"retry_delay": 1e300}, "retry delays must be at most 2.592e+06 seconds"),
        ]
        for kwargs, message in cases:
            with self.assertRaises(ValueError, msg=kwargs) as raised:
                RetryPolicy.from_thorn(**kwargs)
            self.assertIn(message, str(raised.exception))


class ValidationTests(SynchronousTestCase):
    def assertRefused(self, message: str, **kwargs: Any) -> None:
        with self.assertRaises(ValueError, msg=kwargs) as raised:
            RetryPolicy(**kwargs)
        self.assertIn(message, str(raised.exception))

    def test_delays(self) -> None:
        """Negative, infinite, NaN, bool or non-numeric delays, and a delays value that is
        not a sequence of numbers, are refused with a message."""
        self.assertRefused("finite and not negative, got -1", delays=[5, -1])
        self.assertRefused("finite and not negative, got inf", delays=[float("inf")])
        self.assertRefused("finite and not negative, got nan", delays=[float("nan")])
        self.assertRefused("numbers of seconds, got True", delays=[True])
        self.assertRefused("numbers of seconds, got '5'", delays=["5"])
        self.assertRefused("a sequence of numbers of seconds, got '5'", delays="5")
        self.assertRefused("a sequence of numbers of seconds, got 5", delays=5)

    def test_delays_converted(self) -> None:
        """Delays are kept as a tuple of floats."""
        self.assertEqual(RetryPolicy(delays=[1, 2.5]).delays, (1.0, 2.5))

    def test_jitter(self) -> None:
        """Jitter must be at least 0 and below 1, and a number."""
        self.assertRefused("jitter must be at least 0 and below 1, got 1", jitter=1)
        self.assertRefused("jitter must be at least 0 and below 1, got 1.5", jitter=1.5)
        self.assertRefused("jitter must be at least 0 and below 1, got -0.1", jitter=-0.1)
        self.assertRefused("got nan", jitter=float("nan"))
        self.assertRefused("jitter must be a number", jitter=False)
        self.assertRefused("jitter must be a number", jitter="0.2")
        self.assertEqual(RetryPolicy(jitter=0).jitter, 0)
        self.assertEqual(RetryPolicy(jitter=0.99).jitter, 0.99)

    def test_ranges(self) -> None:
        """A delay or cap over 30 days, or more than 100 delays, are refused, naming the
        range; the limits themselves are accepted."""
        self.assertRefused("retry delays must be at most 2.592e+06 seconds", delays=[5, 1e300])
        self.assertRefused("at most 100 delays", delays=[1] * (MAX_RETRIES + 1))
        self.assertRefused("retry_after_cap must be at most", retry_after_cap=1e300)
        policy = RetryPolicy(
            delays=[MAX_RETRY_DELAY] * MAX_RETRIES, retry_after_cap=MAX_RETRY_DELAY
        )
        self.assertEqual(policy.max_attempts, MAX_RETRIES + 1)
        delay = policy.next_delay(1, random.Random(0), retry_after=1e300)
        assert delay is not None
        self.assertLessEqual(delay, MAX_RETRY_DELAY * 1.2)

    def test_retry_after_cap(self) -> None:
        """The Retry-After cap must be a finite, non-negative number."""
        self.assertRefused("retry_after_cap must be finite and not negative", retry_after_cap=-1)
        self.assertRefused("got inf", retry_after_cap=float("inf"))
        self.assertRefused("retry_after_cap must be a number", retry_after_cap=True)
        self.assertEqual(RetryPolicy(retry_after_cap=0).retry_after_cap, 0)


class SerializationTests(SynchronousTestCase):
    def test_as_dict(self) -> None:
        """as_dict gives JSON-ready data."""
        policy = RetryPolicy(delays=[1, 2], jitter=0.1, retry_after_cap=30)
        self.assertEqual(
            policy.as_dict(), {"delays": [1.0, 2.0], "jitter": 0.1, "retry_after_cap": 30}
        )

    @given(
        delays=st.lists(st.floats(min_value=0, max_value=MAX_RETRY_DELAY), max_size=12),
        jitter=st.floats(min_value=0, max_value=0.99),
        cap=st.floats(min_value=0, max_value=MAX_RETRY_DELAY),
    )
    def test_round_trip(self, delays: list[float], jitter: float, cap: float) -> None:
        """from_dict(as_dict()) gives an equal policy."""
        policy = RetryPolicy(delays=delays, jitter=jitter, retry_after_cap=cap)
        self.assertEqual(RetryPolicy.from_dict(policy.as_dict()), policy)

    def test_default_round_trip(self) -> None:
        """The default policy survives the round trip."""
        self.assertEqual(RetryPolicy.from_dict(RetryPolicy().as_dict()), RetryPolicy())

    def test_from_dict_brings_stored_values_into_range(self) -> None:
        """A stored policy outside the ranges (written before them, or by hand) is read
        back within them rather than refused: huge, negative, infinite and non-numeric
        delays, too many delays, a jitter of 1 or more and a huge cap."""
        policy = RetryPolicy.from_dict(
            {
                "delays": [1e300, -5, float("inf"), "x", 7] + [1] * 200,
                "jitter": 5,
                "retry_after_cap": 1e99,
            }
        )
        self.assertEqual(policy.delays[:5], (MAX_RETRY_DELAY, 0.0, MAX_RETRY_DELAY, 0.0, 7.0))
        self.assertEqual(len(policy.delays), MAX_RETRIES)
        self.assertLess(policy.jitter, 1)
        self.assertEqual(policy.retry_after_cap, MAX_RETRY_DELAY)
        self.assertEqual(RetryPolicy.from_dict({"jitter": float("nan")}).jitter, 0.2)


class ParseRetryAfterTests(SynchronousTestCase):
    def test_seconds(self) -> None:
        """A number of seconds is read as such, surrounding white space allowed."""
        self.assertEqual(parse_retry_after("120", NOW), 120.0)
        self.assertEqual(parse_retry_after(" 0 ", NOW), 0.0)

    def test_date_in_the_future(self) -> None:
        """An HTTP date is the seconds from now until then."""
        when = email.utils.formatdate(NOW + 3600, usegmt=True)
        self.assertEqual(parse_retry_after(when, NOW), 3600.0)
        self.assertEqual(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412400), 80.0)

    def test_date_in_the_past(self) -> None:
        """A date already past gives 0."""
        when = email.utils.formatdate(NOW - 3600, usegmt=True)
        self.assertEqual(parse_retry_after(when, NOW), 0.0)

    def test_absent(self) -> None:
        """No header gives None."""
        self.assertIsNone(parse_retry_after(None, NOW))

    def test_garbage(self) -> None:
        """Anything unreadable gives None rather than an error: empty, negative, fractional,
        words, half a date, non-ASCII digits."""
        for value in (
            "",
            "   ",
            "-5",
            "1.5",
            "soon",
            "Wed, 21 Oct",
            "Wed, 99 Foo 2015 07:28:00 GMT",
            "\u0663",  # ARABIC-INDIC DIGIT THREE
            "\xb2",  # SUPERSCRIPT TWO, as a latin-1 header byte decodes
            "1\xb9",
        ):
            self.assertIsNone(parse_retry_after(value, NOW), repr(value))


#: The delivery d1 of event e1, made and due at NOW.
make_delivery = functools.partial(
    testing.make_delivery,
    "d1",
    NOW,
    subscriber=Subscriber(event="order.created", url="https://hooks.example.com/"),
    event_id="e1",
    created_at=NOW,
)


def make_attempt(number: int = 1, **kwargs: Any) -> Attempt:
    return Attempt(delivery_id="d1", number=number, started_at=NOW, duration=0.5, **kwargs)


class DecideTests(SynchronousTestCase):
    def test_delivered(self) -> None:
        """A successful attempt is DELIVERED, with no next attempt."""
        attempt = make_attempt(status_code=200)
        update = decide(make_delivery(), attempt, NOW, random.Random(0))
        self.assertEqual(update.status, DELIVERED)
        self.assertIs(update.attempt, attempt)
        self.assertEqual(update.delivery_id, "d1")
        self.assertIsNone(update.next_attempt_at)

    def test_permanent_kinds_dead_at_once(self) -> None:
        """GONE, SECURITY and SUBSCRIBER are DEAD on the first attempt, retries left or
        not."""
        for kind in (ErrorKind.GONE, ErrorKind.SECURITY, ErrorKind.SUBSCRIBER):
            update = decide(make_delivery(), make_attempt(error_kind=kind), NOW, random.Random(0))
            self.assertEqual((update.status, update.next_attempt_at), (DEAD, None), kind)

    def test_retrying(self) -> None:
        """Other failures are RETRYING at now + the policy's delay."""
        delivery = make_delivery(retry=RetryPolicy(jitter=0))
        for kind in (
            ErrorKind.TIMEOUT,
            ErrorKind.CONNECTION,
            ErrorKind.DNS,
            ErrorKind.STATUS,
            ErrorKind.REDIRECT,
            ErrorKind.INTERNAL,
        ):
            update = decide(delivery, make_attempt(2, error_kind=kind), NOW, random.Random(0))
            self.assertEqual(update.status, RETRYING, kind)
            self.assertEqual(update.next_attempt_at, NOW + 300, kind)

    def test_retrying_with_jitter(self) -> None:
        """The delay is the jittered one the same random source gives the policy."""
        policy = RetryPolicy()
        delivery = make_delivery(retry=policy)
        attempt = make_attempt(1, error_kind=ErrorKind.STATUS, status_code=500)
        update = decide(delivery, attempt, NOW, random.Random(9))
        self.assertEqual(update.next_attempt_at, NOW + policy.next_delay(1, random.Random(9)))

    def test_retry_after_honoured(self) -> None:
        """The attempt's retry_after pushes the next attempt back, up to the cap."""
        delivery = make_delivery(retry=RetryPolicy(jitter=0, retry_after_cap=1000))
        attempt = make_attempt(1, error_kind=ErrorKind.STATUS, status_code=429, retry_after=600)
        self.assertEqual(
            decide(delivery, attempt, NOW, random.Random(0)).next_attempt_at, NOW + 600
        )
        attempt = make_attempt(1, error_kind=ErrorKind.STATUS, status_code=429, retry_after=9999)
        self.assertEqual(
            decide(delivery, attempt, NOW, random.Random(0)).next_attempt_at, NOW + 1000
        )

    def test_dead_when_exhausted(self) -> None:
        """The last allowed attempt failing makes the delivery DEAD."""
        delivery = make_delivery(retry=RetryPolicy(delays=[10, 20]))
        attempt = make_attempt(2, error_kind=ErrorKind.TIMEOUT)
        self.assertEqual(decide(delivery, attempt, NOW, random.Random(0)).status, RETRYING)
        attempt = make_attempt(3, error_kind=ErrorKind.TIMEOUT)
        update = decide(delivery, attempt, NOW, random.Random(0))
        self.assertEqual((update.status, update.next_attempt_at), (DEAD, None))

    def test_no_retry_policy(self) -> None:
        """With retry=False's policy the first failure is DEAD."""
        delivery = make_delivery(retry=RetryPolicy.from_thorn(retry=False))
        attempt = make_attempt(1, error_kind=ErrorKind.CONNECTION)
        self.assertEqual(decide(delivery, attempt, NOW, random.Random(0)).status, DEAD)
