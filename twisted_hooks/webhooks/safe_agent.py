"""
Connections to webhook recipients that enforce the recipient validators at connection time.

:class:`SafeEndpointFactory` is an :class:`~twisted.web.iweb.IAgentEndpointFactory`: give it
to :meth:`twisted.web.client.Agent.usingEndpointFactory` (or call :func:`safe_agent`) and
put the agent in the :class:`treq.client.HTTPClient` that delivers webhooks::

    from treq.client import HTTPClient
    from twisted.web.client import HTTPConnectionPool

    from twisted_hooks.webhooks.safe_agent import safe_agent
    from twisted_hooks.webhooks.validators import RecipientPolicy

    pool = HTTPConnectionPool(reactor)
    pool.maxPersistentPerHost = 10
    pool.cachedConnectionTimeout = 50
    policy = RecipientPolicy(allowed_networks=["10.20.0.0/16"])
    client = HTTPClient(safe_agent(reactor, policy, pool=pool))

For each new connection the endpoint:

1. checks the URL with :meth:`~twisted_hooks.webhooks.validators.RecipientPolicy.check_url`
   (scheme, port, credentials, the addresses the host names);
2. resolves the host name with the reactor's
   :class:`~twisted.internet.interfaces.IReactorPluggableNameResolver` and collects
   **every** address; a host that names its addresses without DNS (an IPv6 address, an
   IPv4 address in any form ``inet_aton()`` reads, such as ``127.1``, ``localhost``; see
   :attr:`~twisted_hooks.webhooks.validators.Recipient.named_addresses`) is never given to
   the resolver: its named addresses that the policy accepts are used, as the check saw
   them;
3. refuses the delivery with :class:`~twisted_hooks.webhooks.validators.SecurityError` when
   any one of them is refused by the policy (a host answering with one public and one
   internal address is refused);
4. connects over TCP to the vetted addresses, in the resolver's order, until one accepts;
   the name is not resolved again, so the address checked is the address connected to;
5. for ``https``, runs TLS over that connection with the certificate verified for the
   *host name* (SNI and :mod:`service_identity`), by the agent's ``IPolicyForHTTPS``
   (:class:`~twisted.web.client.BrowserLikePolicyForHTTPS` by default).

A host name that resolves to nothing fails with :class:`RecipientLookupError`, a
:class:`~twisted.internet.error.DNSLookupError`: unlike a refusal it may be temporary, and
the delivery is retried. The request keeps the host name in its ``Host`` header.
"""

from __future__ import annotations

import ipaddress
from contextlib import suppress

import attrs
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.defer import TimeoutError as DeferredTimeoutError
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.error import ConnectError, DNSLookupError
from twisted.internet.interfaces import (
    IAddress,
    IHostResolution,
    IProtocol,
    IProtocolFactory,
    IReactorPluggableNameResolver,
    IReactorTCP,
    IReactorTime,
    IResolutionReceiver,
    IStreamClientEndpoint,
)
from twisted.logger import Logger
from twisted.web.client import URI, Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool
from twisted.web.error import SchemeNotSupported
from twisted.web.iweb import IAgent, IAgentEndpointFactory, IPolicyForHTTPS
from zope.interface import implementer

from twisted_hooks.webhooks.logs import QuietConnectionPool
from twisted_hooks.webhooks.validators import (
    Recipient,
    RecipientPolicy,
    SecurityError,
)

__all__ = [
    "RecipientLookupError",
    "SafeEndpointFactory",
    "resolve_recipient",
    "safe_agent",
]

log = Logger()


class RecipientLookupError(DNSLookupError):
    """
    The recipient's host name resolved to no address, or not in time.

    This may be temporary (a DNS outage, a record not published yet), so unlike
    :class:`~twisted_hooks.webhooks.validators.SecurityError` the delivery is retried.
    """


@implementer(IResolutionReceiver)
class _Collector:
    """
    Gathers every address of one resolution, then fires :attr:`done`.
    """

    def __init__(self) -> None:
        self.addresses: list[str] = []
        self.resolution: IHostResolution | None = None
        self.done: Deferred[list[str]] = Deferred(self._cancel)

    def _cancel(self, d: Deferred[list[str]]) -> None:
        if self.resolution is not None:
            # The getaddrinfo resolver cannot stop; its late answer is then ignored.
            with suppress(NotImplementedError):
                self.resolution.cancel()

    def resolutionBegan(self, resolutionInProgress: IHostResolution) -> None:
        self.resolution = resolutionInProgress

    def addressResolved(self, address: IAddress) -> None:
        if isinstance(address, IPv4Address | IPv6Address) and address.host not in self.addresses:
            self.addresses.append(address.host)

    def resolutionComplete(self) -> None:
        if not self.done.called:
            self.done.callback(self.addresses)


async def _vetted_addresses(
    reactor: IReactorTCP, policy: RecipientPolicy, recipient: Recipient, timeout: float
) -> list[str]:
    """
    Every address of ``recipient``'s host, each one accepted by ``policy``; for a host that
    names its addresses without DNS (an IP address in any form, ``localhost``), those of
    them that ``policy`` accepts, never a resolver's answer.
    """
    named = recipient.named_addresses
    if named:
        accepted: list[str] = []
        refusal: SecurityError | None = None
        for named_address in named:
            try:
                policy.check_address(recipient, named_address)
            except SecurityError as e:
                refusal = refusal or e
            else:
                accepted.append(str(named_address))
        if refusal is not None and not accepted:
            raise refusal
        return accepted
    collector = _Collector()
    resolver = IReactorPluggableNameResolver(reactor).nameResolver
    resolver.resolveHostName(
        collector, recipient.host, recipient.port, addressTypes=[IPv4Address, IPv6Address]
    )
    done = collector.done
    done.addTimeout(timeout, IReactorTime(reactor))
    try:
        addresses = await done
    except DeferredTimeoutError:
        raise RecipientLookupError(
            f"Resolving {recipient.host} (for {recipient.origin}) took more than {timeout:g} s."
        ) from None
    if not addresses:
        raise RecipientLookupError(
            f"{recipient.host} (for {recipient.origin}) resolves to no address; check the "
            "host name."
        )
    for address in addresses:
        try:
            policy.check_address(recipient, address)
        except SecurityError as e:
            log.warn(
                "refused recipient {recipient}: {host} resolves to {addresses}, "
                "{address} refused by {rule}",
                recipient=recipient.origin,
                host=recipient.host,
                addresses=addresses,
                address=address,
                rule=e.rule,
            )
            raise
        except ValueError:
            raise SecurityError(
                f"Refused recipient {recipient.origin}: {recipient.host} resolves to "
                f"{address!r}, which is not an IP address.",
                recipient=recipient.origin,
                rule="address",
                address=address,
            ) from None
    return addresses


def resolve_recipient(
    reactor: IReactorTCP,
    url: str | bytes,
    policy: RecipientPolicy | None = None,
    timeout: float = 30.0,
) -> Deferred[list[str]]:
    """
    Check a recipient URL the way a delivery will, without connecting: the URL rules, then
    every address the host resolves to now.

    Useful when a subscription is made, to tell the subscriber at once that a host name
    points inside the network. It is no substitute for the connection-time check: the
    answer may change by the time of a delivery.

    :param reactor: provides ``IReactorTCP``, ``IReactorTime`` and
        ``IReactorPluggableNameResolver``.
    :param url: the recipient URL.
    :param policy: the recipient policy; :class:`RecipientPolicy()
        <twisted_hooks.webhooks.validators.RecipientPolicy>` (Thorn's defaults) if ``None``.
    :param timeout: seconds to wait for the name resolution.
    :return: a Deferred firing with the addresses (text), in the resolver's order, or
        failing with :class:`~twisted_hooks.webhooks.validators.SecurityError` or
        :class:`RecipientLookupError`.
    """
    policy = RecipientPolicy() if policy is None else policy
    try:
        recipient = policy.check_url(url)
    except SecurityError as e:
        return Deferred.fromCoroutine(_raise(e))
    return Deferred.fromCoroutine(_vetted_addresses(reactor, policy, recipient, timeout))


async def _raise(error: Exception) -> list[str]:
    raise error


@implementer(IStreamClientEndpoint)
@attrs.frozen
class _VettedEndpoint:
    """
    Resolves, vets and connects to one recipient; made by :class:`SafeEndpointFactory`.
    """

    factory: SafeEndpointFactory
    uri: URI

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        return Deferred.fromCoroutine(self._connect(protocolFactory))

    def _endpoint(self, recipient: Recipient, address: str) -> IStreamClientEndpoint:
        factory = self.factory
        tcp: IStreamClientEndpoint
        if ipaddress.ip_address(address.split("%", 1)[0]).version == 6:
            tcp = TCP6ClientEndpoint(  # type: ignore[no-untyped-call]  # Twisted's own
                factory.reactor, address, recipient.port, timeout=factory.connect_timeout
            )
        else:
            tcp = TCP4ClientEndpoint(
                factory.reactor, address, recipient.port, timeout=factory.connect_timeout
            )
        if recipient.scheme == "https":
            # The host as the URL gives it, without the brackets of an IPv6 address: the
            # certificate is verified for that name or address.
            creator = factory.tls_policy.creatorForNetloc(
                recipient.host.encode("ascii"), recipient.port
            )
            return wrapClientTLS(creator, tcp)
        return tcp

    async def _connect(self, protocolFactory: IProtocolFactory) -> IProtocol:
        factory = self.factory
        recipient = factory.policy.check_url(self.uri)
        if recipient.scheme not in ("http", "https"):
            raise SchemeNotSupported(
                f"Unsupported scheme {recipient.scheme!r} for {recipient.origin}: webhooks "
                f"are delivered over http and https only."
            )
        addresses = await _vetted_addresses(
            factory.reactor, factory.policy, recipient, factory.resolve_timeout
        )
        error: ConnectError | None = None
        for address in addresses:
            try:
                return await self._endpoint(recipient, address).connect(protocolFactory)
            except CancelledError:
                raise
            except ConnectError as e:
                log.info(
                    "could not connect to {recipient} at {address}: {error}",
                    recipient=recipient.origin,
                    address=address,
                    error=e,
                )
                error = e
        assert error is not None
        raise error


@implementer(IAgentEndpointFactory)
@attrs.frozen
class SafeEndpointFactory:
    """
    Endpoints that connect only to recipients, and addresses, that the policy accepts.

    :ivar reactor: provides ``IReactorTCP``, ``IReactorTime`` and
        ``IReactorPluggableNameResolver`` (any reactor does, and
        :class:`~twisted.internet.testing.MemoryReactorClock`).
    :ivar policy: the :class:`~twisted_hooks.webhooks.validators.RecipientPolicy`; Thorn's
        defaults if not given.
    :ivar tls_policy: makes the TLS settings for ``https`` recipients from the host name
        and port; certificates are verified for the host name with the system's trust
        roots by default.
    :ivar connect_timeout: seconds allowed for each TCP connection attempt.
    :ivar resolve_timeout: seconds allowed for the name resolution.
    """

    reactor: IReactorTCP
    policy: RecipientPolicy = attrs.field(factory=RecipientPolicy)
    tls_policy: IPolicyForHTTPS = attrs.field(factory=BrowserLikePolicyForHTTPS)
    connect_timeout: float = 30.0
    resolve_timeout: float = 30.0

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:
        """
        An endpoint that vets ``uri``'s recipient and its addresses when it connects.

        Nothing is checked or resolved here: a refusal is the failure of the endpoint's
        ``connect()``, and so of the request's Deferred.

        :param uri: the request's URI, as parsed by :class:`~twisted.web.client.Agent`.
        """
        return _VettedEndpoint(factory=self, uri=uri)


def safe_agent(
    reactor: IReactorTCP,
    policy: RecipientPolicy | None = None,
    *,
    pool: HTTPConnectionPool | None = None,
    tls_policy: IPolicyForHTTPS | None = None,
    connect_timeout: float = 30.0,
    resolve_timeout: float = 30.0,
) -> IAgent:
    """
    An :class:`~twisted.web.client.Agent` whose connections go through a
    :class:`SafeEndpointFactory`.

    :param reactor: the reactor (see :attr:`SafeEndpointFactory.reactor`).
    :param policy: the recipient policy; Thorn's defaults if ``None``.
    :param pool: the connection pool; a non-persistent
        :class:`~twisted_hooks.webhooks.logs.QuietConnectionPool` if ``None``.
    :param tls_policy: the ``IPolicyForHTTPS``;
        :class:`~twisted.web.client.BrowserLikePolicyForHTTPS` if ``None``.
    :param connect_timeout: seconds allowed for each TCP connection attempt.
    :param resolve_timeout: seconds allowed for the name resolution.
    """
    factory = SafeEndpointFactory(
        reactor=reactor,
        policy=RecipientPolicy() if policy is None else policy,
        tls_policy=(
            BrowserLikePolicyForHTTPS()  # Twisted's own
            if tls_policy is None
            else tls_policy
        ),
        connect_timeout=connect_timeout,
        resolve_timeout=resolve_timeout,
    )
    if pool is None:
        pool = QuietConnectionPool(IReactorTime(reactor), persistent=False)
    agent: IAgent = Agent.usingEndpointFactory(  # Twisted's
        reactor, factory, pool=pool
    )
    return agent
