"""
Recipient validation: which URLs a webhook may be delivered to (protection against SSRF).

A webhook URL is chosen by whoever subscribes, so without checks a subscriber could make the
engine ``POST`` to the cloud metadata service, to an admin port on ``localhost`` or to a
database inside the private network. Recipient validators refuse such URLs with a
:class:`SecurityError`, which fails the delivery at once and for good: it is never retried.

The validators keep the names of Thorn's ``thorn.validators``:

:func:`ensure_protocol`
    Only these URL schemes (``ensure_protocol("http", "https")``).
:func:`ensure_port`
    Only these ports (``ensure_port(80, 443)``), except inside the allowed networks.
:func:`block_internal_ips`
    No internal address: see :func:`is_internal` for the list (private, loopback,
    link-local with the ``169.254.169.254`` metadata service, carrier-grade NAT
    ``100.64.0.0/10``, multicast, reserved, unspecified, documentation and benchmarking
    ranges, IPv6 unique-local and site-local, and the IPv4-mapped, NAT64, Teredo and
    IPv4-compatible forms, which can hide an internal IPv4 address).
:func:`block_cidr_network`
    No address inside these networks, for private networks that use public addresses
    (``block_cidr_network("203.0.113.0/24")``).

The defaults, :data:`DEFAULT_RECIPIENT_VALIDATORS`, are Thorn's
``THORN_RECIPIENT_VALIDATORS``::

    THORN_RECIPIENT_VALIDATORS = [
        validators.block_internal_ips(),
        validators.ensure_protocol('http', 'https'),
        validators.ensure_port(80, 443),
    ]

A :class:`RecipientPolicy` holds the validators and an *allow-list* of networks. Checks run
at two moments:

* At validation time (for instance when a subscription is created),
  :meth:`RecipientPolicy.check_url` looks at the URL alone: scheme, port, and the address
  itself when the host names one without DNS (see :class:`Recipient`). It is synchronous
  and does no DNS.
* At connection time, for every delivery, the host name is resolved and **every** address
  it resolves to is checked with :meth:`RecipientPolicy.check_address`; if any one is
  refused, the delivery is refused. The TCP connection then goes to one of the vetted
  addresses, never to a second resolution of the name, so a DNS answer that changes between
  the check and the connection (DNS rebinding) cannot reach an internal address. This is
  :class:`twisted_hooks.webhooks.safe_agent.SafeEndpointFactory`.

A host that names an address without DNS is taken as that address, at both moments, and
never given to a resolver: an IPv4 address in any form ``inet_aton()`` reads (``127.1``,
``0x7f000001``, ``2130706433``, ``0177.0.0.1``, ``0``), an IPv6 address in brackets, and
``localhost`` or a name ending in ``.localhost``, which name the loopback addresses
``127.0.0.1`` and ``::1`` (RFC 6761). A host whose last label is a number but that is no
IPv4 address (``127.0.0.256``) is refused. So is a URL with credentials
(``user:password@``): they belong in the subscriber's headers.

Opening an internal network on purpose (a receiver inside your own network, or a test
server on ``127.0.0.1``) is done with the allow-list. An address inside it is let through
:func:`block_internal_ips` and :func:`ensure_port` (the port rule is for public
addresses: an allowed network is reachable on any port), while the scheme rule and any
:func:`block_cidr_network` still apply::

    from twisted_hooks.webhooks.validators import RecipientPolicy

    policy = RecipientPolicy(allowed_networks=["10.20.0.0/16"])
    policy.check_url("http://10.20.3.4:8080/hooks")  # allowed now

    local = RecipientPolicy(allowed_networks=["127.0.0.0/8", "::1/128"])
    local.check_url("http://127.0.0.1:8080/hooks")
    local.check_url("http://[::1]:8080/hooks")
    local.check_url("http://localhost:8080/hooks")

For a host name, the port is checked when the URL is, unless the policy allows some
network: the name may resolve into it, so its port is then checked at connection time,
address by address.

Every validator is also callable with a URL, as Thorn's are: ``ensure_port(80, 443)(url)``
raises :class:`SecurityError` or returns ``None``. Called this way a validator checks the URL
and an address the host names, but cannot see the addresses a host name will resolve to;
the connection-time check is what makes the protection complete.

A :class:`SecurityError` says what was refused and what to change, in the terms of the
interface that refused it: a :class:`RecipientPolicy`'s ``advice``
(:data:`PYTHON_ADVICE` by default names the Python arguments; the service's policy names
its configuration keys and command-line flags).

Why one module (past 600 lines): the recipient policy and Thorn's validators are one rule set
that a security review reads as a whole; the address arithmetic it rests on is in a module
of its own.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

import attrs
from hyperlink import URL, DecodedURL
from twisted.web.client import URI
from zope.interface import Attribute, Interface, implementer

from twisted_hooks.webhooks._addresses import (
    LOOPBACK_ADDRESSES,
    IPAddress,
    IPNetwork,
    internal_range,
    is_internal,
)
from twisted_hooks.webhooks._addresses import NUMERIC_LABEL as _NUMERIC_LABEL
from twisted_hooks.webhooks._addresses import forms as _forms
from twisted_hooks.webhooks._addresses import in_any as _in_any
from twisted_hooks.webhooks._addresses import inet_aton as _inet_aton
from twisted_hooks.webhooks._addresses import is_localhost as _is_localhost
from twisted_hooks.webhooks._addresses import networks as _networks
from twisted_hooks.webhooks._addresses import plain as _plain

__all__ = [
    "DEFAULT_RECIPIENT_VALIDATORS",
    "LOOPBACK_ADDRESSES",
    "PYTHON_ADVICE",
    "IPAddress",
    "IPNetwork",
    "IRecipientValidator",
    "Recipient",
    "RecipientPolicy",
    "RefusalAdvice",
    "SecurityError",
    "block_cidr_network",
    "block_internal_ips",
    "ensure_port",
    "ensure_protocol",
    "internal_range",
    "is_internal",
]

_DEFAULT_PORTS = {"http": 80, "https": 443}


@attrs.frozen
class RefusalAdvice:
    """
    How one interface words the fixes that a :class:`SecurityError` suggests.

    Each field is a :meth:`str.format` template for a clause of the advice; the
    placeholders are given in the field's description. :data:`PYTHON_ADVICE` names the
    Python arguments; the service has its own, naming its configuration keys and flags.

    :ivar allow_network: how to let webhooks reach a network (``{network}``, in CIDR
        notation), such as ``"pass allowed_networks=['{network}'] to Hooks()"``.
    :ivar allow_list: how the allow-list is called, such as ``"allowed_networks"``.
    :ivar add_port: how to allow one more port (``{port}``).
    :ivar add_protocol: how to allow one more scheme (``{scheme}``).
    :ivar unblock_network: how to stop blocking a network (``{network}``).
    """

    allow_network: str
    allow_list: str
    add_port: str
    add_protocol: str
    unblock_network: str

    def fix(self, error: SecurityError) -> str:
        """
        What to change so that the recipient ``error`` refused is accepted, or ``""`` when
        no setting can help (a URL that is wrong, a rule this class does not know).
        """
        if error.rule == "block_internal_ips" and error.network is not None:
            allow = self.allow_network.format(network=error.network)
            return (
                f"If webhooks should reach that network, {allow}; it is then reachable on "
                f"any port."
            )
        if error.rule == "ensure_port" and error.port is not None:
            add = self.add_port.format(port=error.port)
            return (
                f"Use one of those ports, or {add}; a network in {self.allow_list} is "
                f"reachable on any port."
            )
        if error.rule == "ensure_protocol" and error.scheme is not None:
            return f"Use one of those schemes, or {self.add_protocol.format(scheme=error.scheme)}."
        if error.rule == "block_cidr_network" and error.network is not None:
            unblock = self.unblock_network.format(network=error.network)
            return f"If webhooks should go there, {unblock}."
        return ""


PYTHON_ADVICE = RefusalAdvice(
    allow_network=(
        "pass allowed_networks=['{network}'] to Hooks() (or to RecipientPolicy() when you "
        "build the policy yourself)"
    ),
    allow_list="allowed_networks",
    add_port="add {port} to ensure_port() in the recipient validators",
    add_protocol="add {scheme!r} to ensure_protocol() in the recipient validators",
    unblock_network="take {network} out of block_cidr_network()",
)
"""The advice of the Python API: :class:`Hooks() <twisted_hooks.webhooks.Hooks>`'s and
:class:`RecipientPolicy`'s arguments and the validator factories."""


class SecurityError(Exception):
    """
    A recipient was refused by a recipient validator.

    The delivery fails at once and is not retried: the same URL would be refused again.
    ``str(error)`` says which recipient, address and rule refused it (:attr:`problem`),
    then what to change, worded by a :class:`RefusalAdvice` (:meth:`explain` words it for
    another interface). The message names the recipient by its origin (scheme, host and
    port) only, never its path, query or credentials, which may carry a secret.

    :ivar problem: what was refused and why, without advice.
    :ivar recipient: the origin refused, such as ``"https://hooks.example.com:443"``.
    :ivar rule: the name of the rule that refused it, such as ``"block_internal_ips"``, or
        ``"url"`` for a URL that cannot be delivered to at all.
    :ivar address: the IP address refused, as text, or ``None`` when the URL itself was.
    :ivar network: for ``block_internal_ips``, the network (CIDR) that would have to be
        allowed; for ``block_cidr_network``, the blocked network; else ``None``.
    :ivar port: for ``ensure_port``, the port refused; else ``None``.
    :ivar scheme: for ``ensure_protocol``, the scheme refused; else ``None``.
    """

    def __init__(
        self,
        problem: str,
        *,
        recipient: str,
        rule: str,
        address: str | None = None,
        network: str | None = None,
        port: int | None = None,
        scheme: str | None = None,
        advice: RefusalAdvice | None = PYTHON_ADVICE,
    ) -> None:
        self.problem = problem
        self.recipient = recipient
        self.rule = rule
        self.address = address
        self.network = network
        self.port = port
        self.scheme = scheme
        super().__init__(self.explain(advice) if advice is not None else problem)

    def explain(self, advice: RefusalAdvice) -> str:
        """
        :attr:`problem` followed by the fix, worded by ``advice``.
        """
        fix = advice.fix(self)
        return f"{self.problem} {fix}" if fix else self.problem

    def reworded(self, advice: RefusalAdvice) -> SecurityError:
        """
        The same refusal, its message worded by ``advice``.
        """
        return SecurityError(
            self.problem,
            recipient=self.recipient,
            rule=self.rule,
            address=self.address,
            network=self.network,
            port=self.port,
            scheme=self.scheme,
            advice=advice,
        )


def _checked_host(host: str) -> str:
    """
    ``host`` when it can be delivered to; refuses a host that looks like an IPv4 address
    but is none.
    """
    if ":" not in host and _inet_aton(host) is None:
        last = host.removesuffix(".").rsplit(".", 1)[-1]
        if _NUMERIC_LABEL.match(last):
            raise _bad_url(
                f"the host {host!r} ends in a number but is not an IPv4 address",
                "Write the address in dotted decimal (such as 192.0.2.1), or give a host name.",
            )
    return host


@attrs.frozen
class Recipient:
    """
    The parts of a recipient URL that the validators look at.

    :ivar scheme: the scheme, in lower case (``"https"``).
    :ivar host: the host name in lower case (IDNA-encoded, as it is sent), or an IP address
        without brackets, as the URL writes it.
    :ivar port: the port, the scheme's default when the URL names none, or ``0`` when the
        URL names none and the scheme has no default.
    """

    scheme: str
    host: str
    port: int

    @classmethod
    def from_url(cls, url: str | bytes | URL | DecodedURL | URI) -> Recipient:
        """
        Take the recipient out of a URL.

        :param url: the URL, as text, bytes, a :class:`hyperlink.URL` or
            :class:`hyperlink.DecodedURL`, or the :class:`twisted.web.client.URI` that
            :class:`~twisted.web.client.Agent` parsed (used as is, so the check sees exactly
            the host and port the agent will connect to).
        :raise SecurityError: when the URL cannot be parsed, has no host, carries
            credentials (``user:password@``), or has a host that ends in a number but is no
            IPv4 address (rule ``"url"``).
        """
        if isinstance(url, URI):
            return cls._from_uri(url)
        try:
            if isinstance(url, bytes):
                url = url.decode("utf-8")
            text = url.strip() if isinstance(url, str) else url.to_text()
            # Any "@" before the host is refused, even with nothing before it.
            credentials = "@" in urlsplit(text).netloc
            if isinstance(url, str):
                url = DecodedURL.from_text(text)
            scheme = url.scheme.lower()
            host = url.host
            if not host.isascii():
                # As it is sent: IDNA (UTS 46) maps full-width letters and digits to ASCII.
                host = url.to_uri().host
            host = host.lower()
            port = url.port if url.port is not None else _DEFAULT_PORTS.get(scheme)
        except (ValueError, UnicodeError) as e:
            raise _bad_url(f"the URL cannot be parsed ({e})") from None
        if credentials:
            raise _credentials()
        if not host:
            raise _bad_url("the URL has no host")
        return cls(scheme=scheme, host=_checked_host(host), port=0 if port is None else port)

    @classmethod
    def _from_uri(cls, uri: URI) -> Recipient:
        if b"@" in uri.netloc:
            raise _credentials()
        try:
            scheme = uri.scheme.decode("ascii").lower()
            host = uri.host.decode("ascii").lower().strip("[]")
        except UnicodeDecodeError:
            raise _bad_url("the URL's scheme or host is not ASCII") from None
        if not host:
            raise _bad_url("the URL has no host")
        return cls(scheme=scheme, host=_checked_host(host), port=int(uri.port))

    @property
    def origin(self) -> str:
        """
        ``scheme://host:port``, with brackets around an IPv6 address; safe to log.
        """
        host = f"[{self.host}]" if ":" in self.host else self.host
        if not self.port:
            return f"{self.scheme}://{host}"
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def literal_address(self) -> IPAddress | None:
        """
        The address the host is, when it is one: an IPv6 address (``[::1]``) or an IPv4
        address in any form ``inet_aton()`` reads (``127.0.0.1``, ``127.1``,
        ``0x7f000001``); else ``None``.
        """
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return _inet_aton(self.host)

    @property
    def named_addresses(self) -> tuple[IPAddress, ...]:
        """
        The addresses the host names without DNS: :attr:`literal_address`, or
        :data:`LOOPBACK_ADDRESSES` for ``localhost`` and ``*.localhost``; empty for a host
        name, which is resolved at connection time.
        """
        literal = self.literal_address
        if literal is not None:
            return (literal,)
        if _is_localhost(self.host):
            return LOOPBACK_ADDRESSES
        return ()


def _bad_url(
    problem: str, fix: str = "Give an absolute http:// or https:// URL with a host."
) -> SecurityError:
    return SecurityError(
        f"Refused recipient: {problem}. {fix}",
        recipient="",
        rule="url",
    )


def _credentials() -> SecurityError:
    return SecurityError(
        "Refused recipient: the URL carries credentials (user:password@ before the host). "
        "Credentials belong in headers: give the URL without them, and the credentials in "
        "the subscriber's headers (such as Authorization).",
        recipient="",
        rule="url",
    )


# ---------------------------------------------------------------------------------------
# Validators


class IRecipientValidator(Interface):
    """
    One rule about where webhooks may go.

    A validator looks at the URL (:meth:`check_url`) and, at connection time, at every
    address the host resolves to (:meth:`check_address`). Both raise
    :class:`SecurityError` to refuse and return ``None`` to let the recipient through. A
    validator is also callable with a URL, as Thorn's validators are.
    """

    name = Attribute(
        "The rule's name, as Thorn names its factory (``'ensure_port'``); str. It appears "
        "in :class:`SecurityError` messages and as :attr:`SecurityError.rule`."
    )

    opened_by_allow_list = Attribute(
        "bool: ``True`` when a recipient at an address inside the policy's allow-list is "
        "not checked by this rule at all (as for :func:`block_internal_ips` and "
        ":func:`ensure_port`), ``False`` when the rule always applies (as for "
        ":func:`ensure_protocol` and :func:`block_cidr_network`). For a host name, a "
        "policy that allows some network defers such a rule's :meth:`check_url` to "
        "connection time, where it runs for each address outside the allow-list."
    )

    def check_url(recipient: Recipient) -> None:
        """
        Check the scheme, host and port of a recipient, without resolving anything.

        :raise SecurityError: to refuse the recipient.
        """

    def check_address(recipient: Recipient, address: IPAddress) -> None:
        """
        Check one address that ``recipient``'s host resolves to (or names).

        :raise SecurityError: to refuse the recipient.
        """

    def __call__(url: str | bytes | URL | DecodedURL) -> None:
        """
        Check a URL, and the addresses its host names without DNS, as Thorn does.

        :raise SecurityError: to refuse the URL.
        """


def _text(address: IPAddress) -> str:
    """
    An address as text, an IPv4-mapped one as ``::ffff:a.b.c.d`` whatever Python's version.
    """
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return f"::ffff:{address.ipv4_mapped}"
    return str(address)


def _where(recipient: Recipient, address: IPAddress) -> str:
    try:
        if ipaddress.ip_address(recipient.host) == address:
            return f"the address {_text(address)}"
    except ValueError:
        pass
    if recipient.named_addresses:
        return f"{recipient.host} names {_text(address)}, and {_text(address)}"
    return f"{recipient.host} resolves to {_text(address)}, and {_text(address)}"


def _network_to_allow(address: IPAddress, network: str) -> str:
    """
    The network to suggest allowing for an internal ``address`` found in ``network``: that
    network, or for an IPv4-mapped address the IPv4 address's own (the allow-list lets a
    mapped address through when its IPv4 address is), or the address alone when the
    network does not contain it.
    """
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        found = internal_range(address.ipv4_mapped)
        return found[0] if found is not None else f"{address.ipv4_mapped}/32"
    if address in ipaddress.ip_network(network):
        return network
    return f"{address}/{address.max_prefixlen}"


class _Validator:
    """
    What every validator shares: being callable with a URL.
    """

    __slots__ = ()

    def check_url(self, recipient: Recipient) -> None:
        pass

    def check_address(self, recipient: Recipient, address: IPAddress) -> None:
        pass

    def __call__(self, url: str | bytes | URL | DecodedURL) -> None:
        recipient = Recipient.from_url(url)
        self.check_url(recipient)
        for address in recipient.named_addresses:
            self.check_address(recipient, address)


@implementer(IRecipientValidator)
@attrs.frozen
class _EnsureProtocol(_Validator):
    protocols: frozenset[str]
    name = "ensure_protocol"
    opened_by_allow_list = False

    def check_url(self, recipient: Recipient) -> None:
        if recipient.scheme not in self.protocols:
            allowed = ", ".join(sorted(self.protocols))
            raise SecurityError(
                f"Refused recipient {recipient.origin}: the scheme {recipient.scheme!r} is "
                f"not allowed (ensure_protocol allows {allowed}).",
                recipient=recipient.origin,
                rule=self.name,
                scheme=recipient.scheme,
            )


@implementer(IRecipientValidator)
@attrs.frozen
class _EnsurePort(_Validator):
    ports: frozenset[int]
    name = "ensure_port"
    opened_by_allow_list = True

    def check_url(self, recipient: Recipient) -> None:
        if recipient.port not in self.ports:
            allowed = ", ".join(str(p) for p in sorted(self.ports))
            raise SecurityError(
                f"Refused recipient {recipient.origin}: the port {recipient.port} is not "
                f"allowed (ensure_port allows {allowed} outside the allowed networks).",
                recipient=recipient.origin,
                rule=self.name,
                port=recipient.port,
            )


@implementer(IRecipientValidator)
@attrs.frozen
class _BlockInternalIPs(_Validator):
    name = "block_internal_ips"
    opened_by_allow_list = True

    def check_address(self, recipient: Recipient, address: IPAddress) -> None:
        why = internal_range(address)
        if why is not None:
            network, description = why
            raise SecurityError(
                f"Refused recipient {recipient.origin}: {_where(recipient, address)} is "
                f"internal ({description}, {network}; block_internal_ips).",
                recipient=recipient.origin,
                rule=self.name,
                address=_text(address),
                network=_network_to_allow(address, network),
            )


@implementer(IRecipientValidator)
@attrs.frozen
class _BlockCIDRNetwork(_Validator):
    networks: tuple[IPNetwork, ...]
    name = "block_cidr_network"
    opened_by_allow_list = False

    def check_address(self, recipient: Recipient, address: IPAddress) -> None:
        for form in _forms(address):
            network = _in_any(form, self.networks)
            if network is not None:
                raise SecurityError(
                    f"Refused recipient {recipient.origin}: {_where(recipient, address)} is "
                    f"inside the blocked network {network} (block_cidr_network).",
                    recipient=recipient.origin,
                    rule=self.name,
                    address=_text(address),
                    network=str(network),
                )


def ensure_protocol(*allowed: str) -> IRecipientValidator:
    """
    Only allow recipient URLs using the ``allowed`` schemes.

    As in Thorn, ``"https://"`` is the same as ``"https"``, and case does not matter::

        ensure_protocol("https", "http://")

    :raise ValueError: at once, when no scheme is given.
    """
    protocols = frozenset(p.lower().strip().removesuffix("://") for p in allowed)
    if not protocols:
        raise ValueError("ensure_protocol() needs at least one scheme, such as 'https'")
    return _EnsureProtocol(protocols=protocols)


def ensure_port(*allowed: int | str) -> IRecipientValidator:
    """
    Only allow recipient URLs whose port (given, or the scheme's default) is ``allowed``::

        ensure_port(80, 443)

    In a :class:`RecipientPolicy`, the rule is for public addresses: an address inside the
    policy's ``allowed_networks`` is reachable on any port.

    :raise ValueError: at once, when no port is given or one is not between 1 and 65535.
    """
    ports = frozenset(int(p) for p in allowed)
    if not ports:
        raise ValueError("ensure_port() needs at least one port, such as 443")
    bad = sorted(p for p in ports if not 0 < p < 65536)
    if bad:
        raise ValueError(f"ensure_port(): {bad} are not TCP ports (1 to 65535)")
    return _EnsurePort(ports=ports)


def block_internal_ips() -> IRecipientValidator:
    """
    Refuse recipients at an internal address: one that :func:`is_internal` says is
    internal, whether the URL names it or the host name resolves to it.

    Unlike Thorn's, the check covers every address the host resolves to, at connection time
    (see :class:`twisted_hooks.webhooks.safe_agent.SafeEndpointFactory`), and the
    addresses a host names without DNS (``127.1``, ``0x7f000001``, ``localhost``) as the
    addresses they are. Networks in a :class:`RecipientPolicy`'s ``allowed_networks`` are
    open to this rule.

    Like Thorn's, it knows only the reserved ranges: private networks that use public
    addresses are blocked with :func:`block_cidr_network`.
    """
    return _BlockInternalIPs()


def block_cidr_network(*blocked_networks: str | IPNetwork) -> IRecipientValidator:
    """
    Refuse recipients at an address inside one of ``blocked_networks``::

        block_cidr_network("192.168.0.0/24", "132.34.23.0/24")

    An IPv6 address that embeds an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, NAT64,
    6to4) is refused when the embedded address is in a blocked network. The allow-list of
    a :class:`RecipientPolicy` does not open these networks.

    :param blocked_networks: networks in CIDR notation, or :mod:`ipaddress` networks.
    :raise ValueError: at once, for a network that cannot be parsed.
    """
    return _BlockCIDRNetwork(networks=_networks(blocked_networks))


DEFAULT_RECIPIENT_VALIDATORS: tuple[IRecipientValidator, ...] = (
    block_internal_ips(),
    ensure_protocol("http", "https"),
    ensure_port(80, 443),
)
"""
Thorn's ``THORN_RECIPIENT_VALIDATORS``: no internal address, ``http`` and ``https``
only, ports 80 and 443 only (outside the allowed networks).
"""


def _validators(values: Iterable[IRecipientValidator]) -> tuple[IRecipientValidator, ...]:
    result = tuple(values)
    for v in result:
        if not IRecipientValidator.providedBy(v):
            raise TypeError(
                f"{v!r} is not a recipient validator; use ensure_protocol(), ensure_port(), "
                f"block_internal_ips() or block_cidr_network()"
            )
    return result


def _check_advice(
    instance: object, attribute: attrs.Attribute[RefusalAdvice], value: object
) -> None:
    if not isinstance(value, RefusalAdvice):
        raise TypeError(f"advice must be a RefusalAdvice, got {value!r}")


@attrs.frozen
class RecipientPolicy:
    """
    The recipient validators of a deployment (or an event), with an allow-list.

    :ivar validators: the rules, in the order they are checked; by default
        :data:`DEFAULT_RECIPIENT_VALIDATORS`.
    :ivar allowed_networks: networks (CIDR text or :mod:`ipaddress` networks) that
        webhooks may reach although they are internal, on any port, such as
        ``["10.20.0.0/16"]`` or, for local development, ``["127.0.0.0/8", "::1/128"]``;
        by default none. An address inside them is let through the rules opened by the
        allow-list (:func:`block_internal_ips` and :func:`ensure_port`); the scheme rule
        and :func:`block_cidr_network` still apply. An IPv4-mapped IPv6 address
        ``::ffff:a.b.c.d`` is let through when ``a.b.c.d`` is.
    :ivar advice: how the :class:`SecurityError` messages of this policy word their fix:
        :data:`PYTHON_ADVICE` by default; the service gives its own. Two policies that
        differ only in their advice are equal.
    """

    validators: tuple[IRecipientValidator, ...] = attrs.field(
        default=DEFAULT_RECIPIENT_VALIDATORS, converter=_validators
    )
    allowed_networks: tuple[IPNetwork, ...] = attrs.field(default=(), converter=_networks)
    advice: RefusalAdvice = attrs.field(default=PYTHON_ADVICE, validator=_check_advice, eq=False)

    def is_allowed(self, address: IPAddress | str) -> bool:
        """
        Whether ``address`` is inside :attr:`allowed_networks`.
        """
        address = _plain(address)
        forms = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            forms.append(address.ipv4_mapped)
        return any(_in_any(form, self.allowed_networks) is not None for form in forms)

    def check_url(self, url: str | bytes | URL | DecodedURL | URI | Recipient) -> Recipient:
        """
        Check a recipient URL without resolving its host. Use it when a URL is accepted
        (when a subscription is made) to refuse what can be refused early.

        When the host names addresses without DNS (:attr:`Recipient.named_addresses`: an
        IP address in any form, ``localhost``), the recipient is checked at them with
        :meth:`check_address`, and accepted when one of them is. For a host name, every
        validator's URL rule runs, except, when some network is allowed, the rules the
        allow-list opens (such as the port rule): the name may resolve into an allowed
        network, so they wait for the connection-time check of each address.

        :return: the :class:`Recipient`, for the connection-time checks.
        :raise SecurityError: when a rule refuses it.
        """
        try:
            recipient = url if isinstance(url, Recipient) else Recipient.from_url(url)
        except SecurityError as error:
            raise error.reworded(self.advice) from None
        addresses = recipient.named_addresses
        if not addresses:
            deferred = bool(self.allowed_networks)
            try:
                for validator in self.validators:
                    if not (deferred and validator.opened_by_allow_list):
                        validator.check_url(recipient)
            except SecurityError as error:
                raise error.reworded(self.advice) from None
            return recipient
        refusal: SecurityError | None = None
        for address in addresses:
            try:
                self.check_address(recipient, address)
            except SecurityError as error:
                refusal = refusal or error
            else:
                return recipient
        assert refusal is not None
        raise refusal

    def check_address(self, recipient: Recipient, address: IPAddress | str) -> None:
        """
        Check the recipient at one address its host resolves to (or names): every
        validator's address rule, then its URL rule, except that the rules opened by the
        allow-list skip an allowed address.

        :raise SecurityError: when a rule refuses it.
        """
        address = _plain(address)
        allowed = self.is_allowed(address)
        rules = [v for v in self.validators if not (allowed and v.opened_by_allow_list)]
        try:
            for validator in rules:
                validator.check_address(recipient, address)
            for validator in rules:
                validator.check_url(recipient)
        except SecurityError as error:
            raise error.reworded(self.advice) from None

    def __call__(self, url: str | bytes | URL | DecodedURL) -> None:
        """
        Thorn's validator calling convention: :meth:`check_url`, returning ``None``.

        :raise SecurityError: when a rule refuses the URL.
        """
        self.check_url(url)
