"""
A fake of the HTTP side of delivery: :class:`FakeSender` and the :class:`Outcome` values
it answers attempts with.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, Final, NamedTuple, TypeAlias

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import Clock
from zope.interface import implementer

from twisted_hooks.interfaces import IWebhookSender
from twisted_hooks.testing._receiver import RecordedRequest, RecordingReceiver, Reply, _phrase
from twisted_hooks.webhooks.delivery import Attempt, Delivery, ErrorKind
from twisted_hooks.webhooks.retry import parse_retry_after
from twisted_hooks.webhooks.sender import EXCERPT_SIZE, delivery_headers
from twisted_hooks.webhooks.subscribers import Subscriber

__all__ = ["HOLD", "Answer", "FakeSender", "HeldAttempt", "Hold", "Outcome", "SenderCall"]

#: The error kinds an attempt can end with without an HTTP answer.
_WITHOUT_ANSWER: frozenset[str] = frozenset(
    {
        ErrorKind.TIMEOUT,
        ErrorKind.CONNECTION,
        ErrorKind.DNS,
        ErrorKind.SECURITY,
        ErrorKind.INTERNAL,
    }
)
#: Every kind an attempt may carry (``subscriber`` is the application's, not a sender's).
_KINDS: frozenset[str] = _WITHOUT_ANSWER | {ErrorKind.STATUS, ErrorKind.REDIRECT, ErrorKind.GONE}


def _check_status(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    problem = None if value is None else _status_problem(value)
    if problem is not None:
        raise ValueError(f"status_code must be {problem}")


def _check_kind(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and value not in _KINDS:
        raise ValueError(f"error_kind must be None or one of {sorted(_KINDS)!r}, got {value!r}")


def _default_message(kind: str, delivery: Delivery) -> str:
    """The real sender's sentence for a failure of ``kind`` without an answer."""
    if kind == ErrorKind.TIMEOUT:
        return f"no complete answer within {delivery.timeout:g} s"
    return {
        ErrorKind.CONNECTION: "ConnectionRefusedError: Connection was refused",
        ErrorKind.DNS: "DNSLookupError: the host name did not resolve",
        ErrorKind.SECURITY: "the recipient was refused by the recipient validators",
    }.get(kind, "an unexpected error in the sender")


def _status_problem(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
        return f"an HTTP status from 100 to 599, got {value!r}"
    return None


@attrs.frozen
class Outcome:
    """
    How a :class:`FakeSender` ends one attempt: the fields of the
    :class:`~twisted_hooks.webhooks.delivery.Attempt` it makes (its delivery id, number
    and start time are the sender's).

    ``Outcome()`` is a ``200`` answer. :meth:`status` classifies a status code as the real
    sender does, and :meth:`error` makes a failure without an answer (a timeout, a
    refused connection, ...). Wherever an outcome is expected, a plain status code stands
    for ``Outcome.status(code)``.

    :ivar status_code: the HTTP status, or ``None`` when no answer came.
    :ivar error_kind: ``None`` for a success, else one of
        :class:`~twisted_hooks.webhooks.delivery.ErrorKind`'s values.
    :ivar error_message: what went wrong, for people.
    :ivar response_body: the start of the response body.
    :ivar retry_after: seconds asked for by ``Retry-After``.
    :ivar exception: the exception behind a failure, handed to ``on_error`` and
        ``on_timeout`` callbacks.
    :ivar duration: the attempt's duration, in seconds (a held attempt's is the time it
        was held).
    """

    status_code: int | None = attrs.field(default=200, validator=_check_status)
    error_kind: str | None = attrs.field(default=None, validator=_check_kind)
    error_message: str | None = None
    response_body: bytes = b""
    retry_after: float | None = None
    exception: BaseException | None = attrs.field(default=None, eq=False, repr=False)
    duration: float = 0.0

    def __attrs_post_init__(self) -> None:
        if self.status_code is None and self.error_kind is None:
            raise ValueError("an outcome without a status code must have an error_kind")

    @classmethod
    def status(cls, code: int, body: bytes = b"", retry_after: float | None = None) -> Outcome:
        """
        An HTTP answer, classified as :class:`~twisted_hooks.webhooks.HTTPSender` does:
        2xx succeeds; 3xx is a redirect (not followed); 410 deactivates the subscription;
        any other code is a failure to retry.

        :param body: the response body (its first 4 KiB are kept).
        :param retry_after: the seconds a ``Retry-After`` header asks for; only a 429 or
            a 503 carries one.
        :raise ValueError: for a code outside 100-599, or a ``retry_after`` with another
            code.
        """
        problem = _status_problem(code)
        if problem is not None:
            raise ValueError(f"the code must be {problem}")
        if retry_after is not None and code not in (429, 503):
            raise ValueError(
                f"retry_after is read from a 429 or 503 answer only, not from a {code}"
            )
        excerpt = body[:EXCERPT_SIZE]
        if 200 <= code < 300:
            return cls(status_code=code, response_body=excerpt)
        if 300 <= code < 400:
            kind, message = ErrorKind.REDIRECT, f"{code} redirect not followed"
        elif code == 410:
            kind, message = ErrorKind.GONE, "410 Gone: the subscription is deactivated"
        else:
            kind, message = ErrorKind.STATUS, f"{code} {_phrase(code)}".strip()
        return cls(
            status_code=code,
            error_kind=kind,
            error_message=message,
            response_body=excerpt,
            retry_after=retry_after,
        )

    @classmethod
    def error(
        cls,
        kind: str,
        message: str | None = None,
        exception: BaseException | None = None,
    ) -> Outcome:
        """
        A failure without an HTTP answer.

        :param kind: :attr:`ErrorKind.TIMEOUT <twisted_hooks.webhooks.ErrorKind.TIMEOUT>`,
            ``CONNECTION``, ``DNS``, ``SECURITY`` (refused by the recipient validators:
            not retried) or ``INTERNAL``.
        :param message: the error message; a sentence like the real sender's if ``None``
            (for a timeout, naming the delivery's timeout).
        :raise ValueError: for another kind (an answer's kinds come from :meth:`status`).
        """
        if kind not in _WITHOUT_ANSWER:
            raise ValueError(
                f"Outcome.error takes one of {sorted(_WITHOUT_ANSWER)!r}, got {kind!r}; "
                "use Outcome.status(code) for an HTTP answer"
            )
        return cls(status_code=None, error_kind=kind, error_message=message, exception=exception)

    @classmethod
    def from_reply(cls, reply: Reply, now: float) -> Outcome:
        """The outcome of an HTTP answer ``reply`` received at ``now`` (its
        ``Retry-After`` header read as the real sender reads it)."""
        retry_after = None
        if reply.code in (429, 503):
            value = next((v for k, v in reply.headers.items() if k.lower() == "retry-after"), None)
            retry_after = parse_retry_after(value, now)
        return cls.status(reply.code, reply.body, retry_after)

    @property
    def reached_receiver(self) -> bool:
        """``True`` when the request got an HTTP answer (it reached its receiver)."""
        return self.status_code is not None


class Hold(enum.Enum):
    """The type of :data:`HOLD`."""

    HOLD = "hold"


#: An answer that leaves the attempt under way: :meth:`FakeSender.attempt` returns an
#: unfired Deferred, fired by :meth:`FakeSender.finish`.
HOLD: Final = Hold.HOLD

#: What a :class:`FakeSender` may be told to answer: a status code, an :class:`Outcome`,
#: or :data:`HOLD`.
Answer: TypeAlias = "int | Outcome | Hold"


def _as_answer(answer: object) -> Outcome | Hold:
    if isinstance(answer, Outcome | Hold):
        return answer
    if isinstance(answer, int) and not isinstance(answer, bool):
        return Outcome.status(answer)
    raise TypeError(f"answer with a status code, an Outcome or HOLD, not {answer!r}")


class SenderCall(NamedTuple):
    """One call of :meth:`FakeSender.attempt`: what was to be sent, to whom."""

    #: The delivery attempted.
    delivery: Delivery
    #: The subscriber as the application gave it (its current state).
    subscriber: Subscriber


@attrs.define
class HeldAttempt:
    """
    An attempt a :class:`FakeSender` holds (it was answered :data:`HOLD`).

    :ivar delivery: the delivery attempted.
    :ivar subscriber: its subscriber.
    :ivar started_at: when the attempt started.
    :ivar deferred: the attempt's Deferred, which the application waits on.
    """

    delivery: Delivery
    subscriber: Subscriber
    started_at: float
    deferred: Deferred[Attempt]


@implementer(IWebhookSender)
class FakeSender:
    """
    An :class:`~twisted_hooks.interfaces.IWebhookSender` that sends nothing: it notes
    each attempt, answers it as told, and records each one that got an answer in its
    :attr:`receiver` with the headers and signatures the real sender would have sent.

    Each attempt's answer is, in this order: the next one :meth:`queue`\\ d for the
    subscriber's URL; the URL's :meth:`answer`; what :attr:`respond` returns; the
    ``default``; and else the receiver's reply (``200`` unless the receiver was told
    otherwise). An answer is a status code, an :class:`Outcome`, or :data:`HOLD`.

    :param clock: the time attempts start at (signature timestamps included); a new
        :class:`~twisted.internet.task.Clock` (at 0) if ``None``.
    :param receiver: where answered requests are recorded; a new
        :class:`RecordingReceiver` if ``None``.
    :param default: the answer when nothing more specific is set; ``None`` lets the
        receiver answer.

    :ivar calls: every :class:`SenderCall`, oldest first.
    :ivar attempts: the :class:`~twisted_hooks.webhooks.delivery.Attempt` of every
        answered call, in the order they ended.
    :ivar held: the :class:`HeldAttempt`\\ s not finished yet, oldest first.
    :ivar respond: ``None``, or a callable given the delivery and the subscriber that
        returns an answer, or ``None`` to pass.
    :ivar closed: how many times :meth:`close` was called (an application closes its
        sender when it stops).
    """

    def __init__(
        self,
        clock: IReactorTime | None = None,
        *,
        receiver: RecordingReceiver | None = None,
        default: Answer | None = None,
    ) -> None:
        self.clock: IReactorTime = clock if clock is not None else Clock()
        self.receiver = receiver if receiver is not None else RecordingReceiver(self.clock)
        self.default = None if default is None else _as_answer(default)
        self.respond: Callable[[Delivery, Subscriber], Answer | None] | None = None
        self.calls: list[SenderCall] = []
        self.attempts: list[Attempt] = []
        self.held: list[HeldAttempt] = []
        self.closed = 0
        self._queued: dict[str, list[Outcome | Hold]] = {}
        self._answers: dict[str, Outcome | Hold] = {}

    def __repr__(self) -> str:
        return f"<FakeSender: {len(self.calls)} call(s), {len(self.held)} held>"

    # -- telling it what to answer -----------------------------------------------------------

    def answer(self, url: str, answer: Answer) -> None:
        """Answer every attempt to ``url`` (a subscriber's URL, exactly) with ``answer``
        from now on, after any :meth:`queue`\\ d ones.

        :raise TypeError: for an answer that is not a status code, Outcome or HOLD.
        :raise ValueError: for a status code outside 100-599."""
        self._answers[url] = _as_answer(answer)

    def queue(self, url: str, *answers: Answer) -> None:
        """Answer the next attempts to ``url`` with ``answers``, one each, in order
        (after those queued before).

        :raise TypeError: for an answer that is not a status code, Outcome or HOLD.
        :raise ValueError: for a status code outside 100-599."""
        converted = [_as_answer(answer) for answer in answers]
        self._queued.setdefault(url, []).extend(converted)

    def _answer_for(self, delivery: Delivery, subscriber: Subscriber) -> Outcome | Hold | None:
        queued = self._queued.get(subscriber.url)
        if queued:
            return queued.pop(0)
        standing = self._answers.get(subscriber.url)
        if standing is not None:
            return standing
        if self.respond is not None:
            chosen = self.respond(delivery, subscriber)
            if chosen is not None:
                return _as_answer(chosen)
        return self.default

    # -- IWebhookSender ----------------------------------------------------------------------

    def attempt(self, delivery: Delivery, subscriber: Subscriber) -> Deferred[Attempt]:
        """Note the call and answer it; a :data:`HOLD` answer returns a Deferred that
        fires when :meth:`finish` is called."""
        self.calls.append(SenderCall(delivery, subscriber))
        started = self.clock.seconds()
        answer = self._answer_for(delivery, subscriber)
        if answer is HOLD:
            held: Deferred[Attempt] = Deferred()
            self.held.append(HeldAttempt(delivery, subscriber, started, held))
            return held
        assert not isinstance(answer, Hold)
        return succeed(self._end(delivery, subscriber, started, answer, None))

    def finish(self, answer: int | Outcome | None = None) -> Attempt:
        """
        End the oldest held attempt with ``answer`` (``None``: as an unheld attempt
        without a more specific answer would end: the ``default``, else the receiver's
        reply).

        :return: the attempt its Deferred fired with.
        :raise AssertionError: when no attempt is held.
        """
        if not self.held:
            raise AssertionError(
                "no attempt is held: answer an attempt with HOLD (queue, answer, respond "
                "or default) before finishing it"
            )
        held = self.held.pop(0)
        outcome = self.default if answer is None else _as_answer(answer)
        if isinstance(outcome, Hold):
            raise ValueError("finish() ends a held attempt; HOLD is not an ending")
        attempt = self._end(
            held.delivery, held.subscriber, held.started_at, outcome, self.clock.seconds()
        )
        held.deferred.callback(attempt)
        return attempt

    def _end(
        self,
        delivery: Delivery,
        subscriber: Subscriber,
        started: float,
        outcome: Outcome | None,
        ended: float | None,
    ) -> Attempt:
        try:
            headers = delivery_headers(delivery, subscriber, int(started))
        except ValueError as error:
            # As the real sender: a subscriber whose secret cannot sign is an internal error.
            outcome = Outcome.error(ErrorKind.INTERNAL, str(error), error)
            headers = None
        if headers is not None and (outcome is None or outcome.reached_receiver):
            request = RecordedRequest(
                url=subscriber.url, headers=headers, body=delivery.body, received_at=started
            )
            if outcome is None:
                outcome = Outcome.from_reply(self.receiver.receive(request), started)
            else:
                self.receiver.requests.append(request)
        assert outcome is not None
        message = outcome.error_message
        if message is None and outcome.error_kind in _WITHOUT_ANSWER:
            message = _default_message(outcome.error_kind, delivery)
        attempt = Attempt(
            delivery_id=delivery.id,
            number=delivery.attempts + 1,
            started_at=started,
            duration=outcome.duration if ended is None else ended - started,
            status_code=outcome.status_code,
            error_kind=outcome.error_kind,
            error_message=message,
            response_body=outcome.response_body,
            retry_after=outcome.retry_after,
            exception=outcome.exception,
        )
        self.attempts.append(attempt)
        return attempt

    # -- inspection --------------------------------------------------------------------------

    def urls(self) -> list[str]:
        """The subscriber URLs attempted, oldest first."""
        return [call.subscriber.url for call in self.calls]

    def close(self) -> Deferred[None]:
        """Count the call (see :attr:`closed`); fires at once."""
        self.closed += 1
        return succeed(None)
