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
    Only these ports (``ensure_port(80, 443)``).
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
  itself when the host is a literal IP address. It is synchronous and does no DNS.
* At connection time, for every delivery, the host name is resolved and **every** address
  it resolves to is checked with :meth:`RecipientPolicy.check_address`; if any one is
  refused, the delivery is refused. The TCP connection then goes to one of the vetted
  addresses, never to a second resolution of the name, so a DNS answer that changes between
  the check and the connection (DNS rebinding) cannot reach an internal address. This is
  :class:`twisted_hooks.webhooks.safe_agent.SafeEndpointFactory`.

Opening an internal network on purpose (a receiver inside your own network, or a test
server on ``127.0.0.1``) is done with the allow-list; it opens only the networks named and
only for :func:`block_internal_ips`, while the scheme and port rules and any
:func:`block_cidr_network` still apply::

    from twisted_hooks.webhooks.validators import (
        RecipientPolicy, block_internal_ips, ensure_port, ensure_protocol,
    )

    policy = RecipientPolicy(allowed_networks=["10.20.0.0/16"])
    policy.check_url("http://10.20.3.4/hooks")  # allowed now

    local = RecipientPolicy(
        validators=[
            block_internal_ips(),
            ensure_protocol("http", "https"),
            ensure_port(80, 443, 8080),
        ],
        allowed_networks=["127.0.0.0/8", "::1/128"],
    )

Every validator is also callable with a URL, as Thorn's are: ``ensure_port(80, 443)(url)``
raises :class:`SecurityError` or returns ``None``. Called this way a validator checks the URL
and a literal IP host, but cannot see the addresses a host name will resolve to; the
connection-time check is what makes the protection complete.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import TypeAlias

import attrs
from hyperlink import URL, DecodedURL
from twisted.web.client import URI
from zope.interface import Attribute, Interface, implementer

__all__ = [
    "DEFAULT_RECIPIENT_VALIDATORS",
    "IPAddress",
    "IPNetwork",
    "IRecipientValidator",
    "Recipient",
    "RecipientPolicy",
    "SecurityError",
    "block_cidr_network",
    "block_internal_ips",
    "ensure_port",
    "ensure_protocol",
    "internal_range",
    "is_internal",
]

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
"""An IPv4 or IPv6 address from the :mod:`ipaddress` module."""

IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
"""An IPv4 or IPv6 network from the :mod:`ipaddress` module."""

_DEFAULT_PORTS = {"http": 80, "https": 443}


class SecurityError(Exception):
    """
    A recipient was refused by a recipient validator.

    The delivery fails at once and is not retried: the same URL would be refused again.
    ``str(error)`` says which recipient, address and rule refused it, and what to change.
    The message names the recipient by its origin (scheme, host and port) only, never its
    path or query, which may carry a secret token.

    :ivar recipient: the origin refused, such as ``"https://hooks.example.com:443"``.
    :ivar rule: the name of the rule that refused it, such as ``"block_internal_ips"``.
    :ivar address: the IP address refused, as text, or ``None`` when the URL itself was.
    """

    def __init__(
        self, message: str, *, recipient: str, rule: str, address: str | None = None
    ) -> None:
        super().__init__(message)
        self.recipient = recipient
        self.rule = rule
        self.address = address


@attrs.frozen
class Recipient:
    """
    The parts of a recipient URL that the validators look at.

    :ivar scheme: the scheme, in lower case (``"https"``).
    :ivar host: the host name in lower case, or an IP address without brackets.
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
        :raise SecurityError: when the URL cannot be parsed or has no host (rule ``"url"``).
        """
        if isinstance(url, URI):
            return cls._from_uri(url)
        try:
            if isinstance(url, bytes):
                url = url.decode("utf-8")
            if isinstance(url, str):
                url = DecodedURL.from_text(url.strip())
            scheme = url.scheme.lower()
            host = url.host.lower()
            port = url.port if url.port is not None else _DEFAULT_PORTS.get(scheme)
        except (ValueError, UnicodeDecodeError) as e:
            raise _bad_url(f"the URL cannot be parsed ({e})") from None
        if not host:
            raise _bad_url("the URL has no host")
        return cls(scheme=scheme, host=host, port=0 if port is None else port)

    @classmethod
    def _from_uri(cls, uri: URI) -> Recipient:
        try:
            scheme = uri.scheme.decode("ascii").lower()
            host = uri.host.decode("ascii").lower()
        except UnicodeDecodeError:
            raise _bad_url("the URL's scheme or host is not ASCII") from None
        if not host:
            raise _bad_url("the URL has no host")
        return cls(scheme=scheme, host=host, port=int(uri.port))

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
        The host as an IP address when it is a literal one (``127.0.0.1``, ``[::1]``),
        else ``None`` (a host name, resolved at connection time).
        """
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None


def _bad_url(problem: str) -> SecurityError:
    return SecurityError(
        f"Refused recipient: {problem}. Give an absolute http:// or https:// URL with a host.",
        recipient="",
        rule="url",
    )


# ---------------------------------------------------------------------------------------
# Internal networks


def _nets(*pairs: tuple[str, str]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(cidr), name) for cidr, name in pairs)


# IANA IPv4 Special-Purpose Address Registry (RFC 6890 and successors) entries that are not
# globally reachable, plus multicast and the reserved 240.0.0.0/4. First match names it.
_INTERNAL_V4 = _nets(
    ("0.0.0.0/8", "this network / unspecified"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "carrier-grade NAT shared address space"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local, home of the cloud metadata service"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "deprecated 6to4 relay anycast"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("255.255.255.255/32", "limited broadcast"),
    ("240.0.0.0/4", "reserved"),
)

# IPv6: the special-purpose ranges by name, then anything outside global unicast 2000::/3.
_INTERNAL_V6 = _nets(
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::ffff:0:0/96", "IPv4-mapped"),
    ("::ffff:0:0:0/96", "IPv4-translated"),
    ("::/96", "deprecated IPv4-compatible"),
    ("64:ff9b::/96", "NAT64 well-known prefix"),
    ("64:ff9b:1::/48", "NAT64 local-use prefix"),
    ("::/8", "reserved"),
    ("100::/64", "discard-only"),
    ("2001::/32", "Teredo"),
    ("2001:db8::/32", "documentation"),
    ("2001::/23", "IETF protocol assignments"),
    ("3fff::/20", "documentation"),
    ("5f00::/16", "SRv6 SIDs"),
    ("fc00::/7", "unique local (private)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "deprecated site-local"),
    ("ff00::/8", "multicast"),
)
_GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")


def _plain(address: IPAddress | str) -> IPAddress:
    if isinstance(address, str):
        # A resolver may give a link-local IPv6 address with its zone: fe80::1%eth0.
        address = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        address = ipaddress.IPv6Address(address.packed)
    return address


def internal_range(address: IPAddress | str) -> tuple[str, str] | None:
    """
    Say why ``address`` is internal, or that it is not.

    :param address: an IPv4 or IPv6 address, as an :mod:`ipaddress` object or text.
    :return: ``(network, description)`` for an internal address, such as
        ``("127.0.0.0/8", "loopback")``, or ``None`` for a globally reachable one.
    :raise ValueError: if ``address`` is text that is not an IP address.
    """
    address = _plain(address)
    if isinstance(address, ipaddress.IPv4Address):
        for network, name in _INTERNAL_V4:
            if address in network:
                return str(network), name
        return None
    for network, name in _INTERNAL_V6:
        if address in network:
            return str(network), name
    if address not in _GLOBAL_UNICAST_V6:
        return str(_GLOBAL_UNICAST_V6), "outside IPv6 global unicast"
    if address in _SIX_TO_FOUR:
        embedded = address.sixtofour
        if embedded is not None and internal_range(embedded) is not None:
            return str(_SIX_TO_FOUR), f"6to4 form of the internal address {embedded}"
    return None


def is_internal(address: IPAddress | str) -> bool:
    """
    Whether ``address`` is internal, that is not a globally reachable unicast address.

    Internal IPv4: ``0.0.0.0/8``, private ``10.0.0.0/8``, ``172.16.0.0/12`` and
    ``192.168.0.0/16``, carrier-grade NAT ``100.64.0.0/10``, loopback ``127.0.0.0/8``,
    link-local ``169.254.0.0/16`` (the cloud metadata service ``169.254.169.254``),
    ``192.0.0.0/24``, documentation ``192.0.2.0/24``, ``198.51.100.0/24`` and
    ``203.0.113.0/24``, ``192.88.99.0/24``, benchmarking ``198.18.0.0/15``, multicast
    ``224.0.0.0/4``, reserved ``240.0.0.0/4`` and broadcast.

    Internal IPv6: unspecified ``::``, loopback ``::1``, all of ``::/8`` (IPv4-mapped
    ``::ffff:0:0/96``, whatever IPv4 address it carries, IPv4-compatible, IPv4-translated),
    NAT64 ``64:ff9b::/96`` and ``64:ff9b:1::/48``, discard ``100::/64``, ``2001::/23``
    (Teredo, benchmarking, ORCHID), documentation ``2001:db8::/32`` and ``3fff::/20``,
    unique-local ``fc00::/7`` (and so AWS's ``fd00:ec2::254``), link-local ``fe80::/10``,
    site-local ``fec0::/10``, multicast ``ff00::/8``, everything outside global unicast
    ``2000::/3``, and a 6to4 ``2002::/16`` address whose embedded IPv4 address is internal.

    :param address: an IPv4 or IPv6 address, as an :mod:`ipaddress` object or text.
    :raise ValueError: if ``address`` is text that is not an IP address.
    """
    return internal_range(address) is not None


def _network(value: str | IPNetwork) -> IPNetwork:
    if isinstance(value, str):
        try:
            return ipaddress.ip_network(value.strip(), strict=False)
        except ValueError as e:
            raise ValueError(
                f"{value!r} is not a network in CIDR notation, such as '10.0.0.0/8' or "
                f"'fd00::/8' ({e})"
            ) from None
    return value


def _networks(values: Iterable[str | IPNetwork]) -> tuple[IPNetwork, ...]:
    if isinstance(values, str):
        values = [values]
    return tuple(_network(v) for v in values)


def _in_any(address: IPAddress, networks: Iterable[IPNetwork]) -> IPNetwork | None:
    for network in networks:
        if address.version == network.version and address in network:
            return network
    return None


def _forms(address: IPAddress) -> list[IPAddress]:
    """
    The address and the IPv4 addresses it embeds (mapped, NAT64, 6to4, compatible).
    """
    address = _plain(address)
    forms: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        packed = address.packed
        if address.ipv4_mapped is not None:
            forms.append(address.ipv4_mapped)
        elif address.sixtofour is not None:
            forms.append(address.sixtofour)
        elif address in ipaddress.IPv6Network("64:ff9b::/96") or address in (
            ipaddress.IPv6Network("::/96")
        ):
            forms.append(ipaddress.IPv4Address(packed[-4:]))
    return forms


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
        "bool: ``True`` when an address inside the policy's allow-list is not checked by "
        "this rule (as for :func:`block_internal_ips`), ``False`` when the rule always "
        "applies (as for :func:`block_cidr_network`)."
    )

    def check_url(recipient: Recipient) -> None:
        """
        Check the scheme, host and port of a recipient, without resolving anything.

        :raise SecurityError: to refuse the recipient.
        """

    def check_address(recipient: Recipient, address: IPAddress) -> None:
        """
        Check one address that ``recipient``'s host resolves to (or is, when literal).

        :raise SecurityError: to refuse the recipient.
        """

    def __call__(url: str | bytes | URL | DecodedURL) -> None:
        """
        Check a URL, and its host when it is a literal IP address, as Thorn does.

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
    if recipient.literal_address is not None:
        return f"the address {_text(address)}"
    return f"{recipient.host} resolves to {_text(address)}, and {_text(address)}"


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
        literal = recipient.literal_address
        if literal is not None:
            self.check_address(recipient, literal)


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
                f"not allowed (ensure_protocol allows {allowed}). Use one of those schemes, "
                f"or add {recipient.scheme!r} to ensure_protocol() in the recipient "
                f"validators.",
                recipient=recipient.origin,
                rule=self.name,
            )


@implementer(IRecipientValidator)
@attrs.frozen
class _EnsurePort(_Validator):
    ports: frozenset[int]
    name = "ensure_port"
    opened_by_allow_list = False

    def check_url(self, recipient: Recipient) -> None:
        if recipient.port not in self.ports:
            allowed = ", ".join(str(p) for p in sorted(self.ports))
            raise SecurityError(
                f"Refused recipient {recipient.origin}: the port {recipient.port} is not "
                f"allowed (ensure_port allows {allowed}). Use one of those ports, or add "
                f"{recipient.port} to ensure_port() in the recipient validators.",
                recipient=recipient.origin,
                rule=self.name,
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
                f"internal ({description}, {network}; block_internal_ips). If webhooks "
                f"should reach that network, add it to the recipient allow-list "
                f"(RecipientPolicy(allowed_networks=[...])).",
                recipient=recipient.origin,
                rule=self.name,
                address=_text(address),
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
                    f"inside the blocked network {network} (block_cidr_network). Take "
                    f"{network} out of block_cidr_network() if webhooks should go there.",
                    recipient=recipient.origin,
                    rule=self.name,
                    address=_text(address),
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
    Only allow recipient URLs whose port (given, or the scheme's default) is ``allowed``.

    ::

        ensure_port(80, 443)

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
    (see :class:`twisted_hooks.webhooks.safe_agent.SafeEndpointFactory`). Networks in a
    :class:`RecipientPolicy`'s ``allowed_networks`` are open to this rule.

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
only, ports 80 and 443 only.
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


@attrs.frozen
class RecipientPolicy:
    """
    The recipient validators of a deployment (or an event), with an allow-list.

    :ivar validators: the rules, in the order they are checked; by default
        :data:`DEFAULT_RECIPIENT_VALIDATORS`.
    :ivar allowed_networks: networks (CIDR text or :mod:`ipaddress` networks) that
        :func:`block_internal_ips` lets through, such as ``["10.20.0.0/16"]``; by default
        none. An IPv4-mapped IPv6 address ``::ffff:a.b.c.d`` is let through when
        ``a.b.c.d`` is. The other rules still apply to these networks.
    """

    validators: tuple[IRecipientValidator, ...] = attrs.field(
        default=DEFAULT_RECIPIENT_VALIDATORS, converter=_validators
    )
    allowed_networks: tuple[IPNetwork, ...] = attrs.field(default=(), converter=_networks)

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
        Check a recipient URL without resolving its host: every validator's URL rule, and
        :meth:`check_address` for a literal IP host. Use it when a URL is accepted (when a
        subscription is made) to refuse what can be refused early.

        :return: the :class:`Recipient`, for the connection-time checks.
        :raise SecurityError: when a rule refuses it.
        """
        recipient = url if isinstance(url, Recipient) else Recipient.from_url(url)
        for validator in self.validators:
            validator.check_url(recipient)
        literal = recipient.literal_address
        if literal is not None:
            self.check_address(recipient, literal)
        return recipient

    def check_address(self, recipient: Recipient, address: IPAddress | str) -> None:
        """
        Check one address the recipient's host resolves to: every validator's address
        rule, except that rules opened by the allow-list skip an allowed address.

        :raise SecurityError: when a rule refuses it.
        """
        address = _plain(address)
        allowed = self.is_allowed(address)
        for validator in self.validators:
            if allowed and validator.opened_by_allow_list:
                continue
            validator.check_address(recipient, address)

    def __call__(self, url: str | bytes | URL | DecodedURL) -> None:
        """
        Thorn's validator calling convention: :meth:`check_url`, returning ``None``.

        :raise SecurityError: when a rule refuses the URL.
        """
        self.check_url(url)
