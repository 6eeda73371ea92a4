"""
When a failed delivery is tried again.

The default schedule is close to the Standard Webhooks recommendation: after the first
attempt fails, retries come 5 seconds, 5 minutes, 30 minutes, 2 hours, 5 hours, 10 hours
and 10 hours later (eight attempts in all, about 27.5 hours), each delay spread by
±20 % jitter so that a recovering endpoint is not hit by every retry at once.

Thorn's ``retry``, ``retry_max`` and ``retry_delay`` map onto the same policy
(:meth:`RetryPolicy.from_thorn`): ``retry=False`` gives one attempt and no retry;
``retry_max=N, retry_delay=D`` gives N retries D seconds apart (with the same jitter).

A ``Retry-After`` answer (to a 429 or 503) delays the next attempt to at least that many
seconds, capped by :attr:`RetryPolicy.retry_after_cap`, so a hostile or confused endpoint
cannot park a delivery for a year.

Every number has a range (:data:`MAX_RETRY_DELAY`, :data:`MAX_RETRIES`): a policy outside
it is refused when it is made, so that no delivery can be parked further away than a
month. A policy read back from a store (:meth:`RetryPolicy.from_dict`) is brought into the
ranges instead, so a row written by an older version stays readable.
"""

from __future__ import annotations

import email.utils
import math
import random
from collections.abc import Iterable

import attrs

from twisted_hooks._fields import RULE, Rule, field

__all__ = [
    "DEFAULT_SCHEDULE",
    "MAX_RETRIES",
    "MAX_RETRY_DELAY",
    "THORN_RETRY_DELAY",
    "THORN_RETRY_MAX",
    "RetryPolicy",
    "parse_retry_after",
]

#: The default delays, in seconds, before each retry.
DEFAULT_SCHEDULE: tuple[float, ...] = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)

#: Thorn's default ``retry_max`` (``THORN_RETRY_MAX``), used when only ``retry_delay`` is given.
THORN_RETRY_MAX = 10
#: Thorn's default ``retry_delay`` (``THORN_RETRY_DELAY``), used when only ``retry_max`` is given.
THORN_RETRY_DELAY = 60.0

#: The longest delay before one retry, and the largest ``retry_after_cap``, in seconds:
#: 30 days. A delivery is never parked further away than that.
MAX_RETRY_DELAY = 30 * 86400.0
#: The most retries a policy may have (the default schedule has 7).
MAX_RETRIES = 100


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _delays(value: Iterable[float]) -> tuple[float, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ValueError(f"retry delays must be a sequence of numbers of seconds, got {value!r}")
    delays: list[float] = []
    for delay in value:
        if not _is_number(delay):
            raise ValueError(f"retry delays must be numbers of seconds, got {delay!r}")
        if not math.isfinite(delay) or delay < 0:
            raise ValueError(f"retry delays must be finite and not negative, got {delay!r}")
        if delay > MAX_RETRY_DELAY:
            raise ValueError(
                f"retry delays must be at most {MAX_RETRY_DELAY:g} seconds (30 days), "
                f"got {delay!r}"
            )
        if len(delays) == MAX_RETRIES:
            raise ValueError(f"a retry schedule may have at most {MAX_RETRIES} delays")
        delays.append(float(delay))
    return tuple(delays)


def _clamped(value: object, low: float, high: float, default: float) -> float:
    """``value`` brought into ``[low, high]``; ``default`` if it is not a number at all."""
    if not _is_number(value) or math.isnan(value):  # type: ignore[arg-type]
        return default
    return min(max(float(value), low), high)  # type: ignore[arg-type]


@attrs.frozen
class RetryPolicy:
    """
    The retry schedule of a delivery.

    :ivar delays: the delay in seconds before each retry (each from 0 to
        :data:`MAX_RETRY_DELAY`); its length is the number of retries (at most
        :data:`MAX_RETRIES`), so a delivery gets ``len(delays) + 1`` attempts.
    :ivar jitter: each delay is multiplied by a random factor in ``[1 - jitter, 1 + jitter]``.
    :ivar retry_after_cap: the most a ``Retry-After`` answer may delay the next attempt
        (from 0 to :data:`MAX_RETRY_DELAY`).

    :raise ValueError: for a value outside its range, naming it.
    """

    delays: tuple[float, ...] = attrs.field(
        default=DEFAULT_SCHEDULE,
        converter=_delays,
        metadata={
            RULE: Rule(
                minimum=0.0,
                maximum=MAX_RETRY_DELAY,
                unit="seconds",
                section="retry",
                key="schedule",
                help="the delay before each retry; as many retries as delays",
            )
        },
    )
    jitter: float = field(
        0.2,
        minimum=0.0,
        below=1.0,
        config=("retry", "jitter"),
        help="each delay is multiplied by a random factor in [1 - jitter, 1 + jitter]",
    )
    retry_after_cap: float = field(
        3600.0,
        minimum=0.0,
        maximum=MAX_RETRY_DELAY,
        unit="seconds",
        config=("retry", "retry_after_cap"),
        help="the most a Retry-After answer may delay the next attempt",
    )

    @property
    def max_attempts(self) -> int:
        """How many attempts a delivery gets in all."""
        return len(self.delays) + 1

    @classmethod
    def from_thorn(
        cls,
        retry: bool | None = None,
        retry_max: int | None = None,
        retry_delay: float | None = None,
        default: RetryPolicy | None = None,
    ) -> RetryPolicy:
        """
        The policy Thorn's event arguments describe.

        With none of them given, ``default`` (or the default schedule). ``retry=False``:
        no retries. Otherwise ``retry_max`` retries (Thorn's default 10) every
        ``retry_delay`` seconds (Thorn's default 60), keeping ``default``'s jitter and cap.

        :raise ValueError: for a ``retry_max`` or ``retry_delay`` outside its range
            (``retry_max`` from 0 to :data:`MAX_RETRIES`, ``retry_delay`` from 0 to
            :data:`MAX_RETRY_DELAY`).
        """
        base = default if default is not None else cls()
        if retry is False:
            return attrs.evolve(base, delays=())
        if retry_max is None and retry_delay is None:
            return base
        count = THORN_RETRY_MAX if retry_max is None else retry_max
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_RETRIES:
            raise ValueError(
                f"retry_max must be a whole number from 0 to {MAX_RETRIES}, got {count!r}"
            )
        delay = THORN_RETRY_DELAY if retry_delay is None else retry_delay
        return attrs.evolve(base, delays=(delay,) * count)

    def next_delay(
        self,
        attempts_made: int,
        rng: random.Random,
        retry_after: float | None = None,
    ) -> float | None:
        """
        Seconds to wait before the next attempt, or ``None`` when none is left.

        :param attempts_made: attempts already made, the failed one included (1 or more).
        :param rng: the source of jitter (inject a seeded one in tests).
        :param retry_after: seconds asked for by a ``Retry-After`` header, if any.
        """
        if attempts_made < 1:
            raise ValueError(f"attempts_made must be at least 1, got {attempts_made!r}")
        if attempts_made > len(self.delays):
            return None
        delay = self.delays[attempts_made - 1]
        if self.jitter:
            delay *= rng.uniform(1 - self.jitter, 1 + self.jitter)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.retry_after_cap))
        # Jitter may stretch the longest delay a little past the range: never further.
        return min(delay, MAX_RETRY_DELAY * (1 + self.jitter))

    def as_dict(self) -> dict[str, object]:
        """The policy as JSON-ready data (for durable stores)."""
        return {
            "delays": list(self.delays),
            "jitter": self.jitter,
            "retry_after_cap": self.retry_after_cap,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> RetryPolicy:
        """
        The inverse of :meth:`as_dict`, for policies read back from a store: values outside
        their ranges (written before the ranges existed, or by hand) are brought into them
        rather than refused, so that the delivery holding them can still be read, listed
        and attempted.
        """
        delays = data.get("delays", DEFAULT_SCHEDULE)
        if isinstance(delays, list | tuple):
            delays = [_clamped(d, 0.0, MAX_RETRY_DELAY, 0.0) for d in delays[:MAX_RETRIES]]
        return cls(
            delays=delays,  # type: ignore[arg-type]
            jitter=_clamped(data.get("jitter", 0.2), 0.0, math.nextafter(1.0, 0.0), 0.2),
            retry_after_cap=_clamped(
                data.get("retry_after_cap", 3600.0), 0.0, MAX_RETRY_DELAY, 3600.0
            ),
        )


def parse_retry_after(value: str | None, now: float) -> float | None:
    """
    Seconds asked for by a ``Retry-After`` header value, or ``None`` if it is absent or
    unreadable.

    Both forms of RFC 9110 are read: a number of seconds, or an HTTP date (compared with
    ``now``, seconds since the epoch). A date in the past gives 0.
    """
    if value is None:
        return None
    text = value.strip()
    # Only ASCII digits: str.isdigit() also accepts "²" (a latin-1 header byte) and other
    # Unicode digits, which float() refuses or which no HTTP server means.
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)
