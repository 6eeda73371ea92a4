"""
IP addresses and networks as the recipient policy reads them: the host forms
``inet_aton()`` reads, ``localhost``, and the internal networks no webhook may reach
unless allowed. :mod:`twisted_hooks.webhooks.validators` re-exports the public names.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import TypeAlias

__all__ = [
    "LOOPBACK_ADDRESSES",
    "NUMERIC_LABEL",
    "IPAddress",
    "IPNetwork",
    "forms",
    "in_any",
    "inet_aton",
    "internal_range",
    "is_internal",
    "is_localhost",
    "network",
    "networks",
    "plain",
]

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
"""An IPv4 or IPv6 address from the :mod:`ipaddress` module."""

IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
"""An IPv4 or IPv6 network from the :mod:`ipaddress` module."""

#: The addresses ``localhost`` and the names ending in ``.localhost`` stand for, in the
#: order they are tried (RFC 6761: they are never looked up).
LOOPBACK_ADDRESSES: tuple[IPAddress, ...] = (
    ipaddress.IPv4Address("127.0.0.1"),
    ipaddress.IPv6Address("::1"),
)


# inet_aton() reads 1 to 4 parts, each decimal, octal (0...) or hexadecimal (0x...).
_INET_ATON_PART = re.compile(
    r"(?:0[xX](?P<hex>[0-9a-fA-F]*)|(?P<oct>0[0-7]*)|(?P<dec>[1-9][0-9]*))\Z"
)
# A last label like these makes a host an IPv4 address or a mistake (the WHATWG URL rule).
NUMERIC_LABEL = re.compile(r"(?:[0-9]+|0[xX][0-9a-fA-F]*)\Z")


def inet_aton(host: str) -> ipaddress.IPv4Address | None:
    """
    The IPv4 address ``host`` names in a form ``inet_aton()`` reads (``127.1``,
    ``0x7f000001``, ``2130706433``, ``0177.0.0.1``, ``0``; one final dot allowed), or
    ``None``.
    """
    parts = host.removesuffix(".").split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values = []
    for part in parts:
        found = _INET_ATON_PART.match(part)
        if found is None:
            return None
        if found["hex"] is not None:
            values.append(int(found["hex"] or "0", 16))
        elif found["oct"] is not None:
            values.append(int(found["oct"], 8))
        else:
            values.append(int(found["dec"]))
    *leading, last = values
    if any(value > 255 for value in leading) or last >= 256 ** (5 - len(values)):
        return None
    number = last
    for index, value in enumerate(leading):
        number += value << (8 * (3 - index))
    return ipaddress.IPv4Address(number)


def is_localhost(host: str) -> bool:
    """Whether ``host`` is ``localhost`` or a name ending in ``.localhost`` (RFC 6761)."""
    name = host.removesuffix(".")
    return name == "localhost" or name.endswith(".localhost")


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


def plain(address: IPAddress | str) -> IPAddress:
    """``address`` as an :mod:`ipaddress` object without an IPv6 zone."""
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
    address = plain(address)
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


def network(value: str | IPNetwork) -> IPNetwork:
    """``value`` as a network; text in CIDR notation, or :exc:`ValueError` saying so."""
    if isinstance(value, str):
        try:
            return ipaddress.ip_network(value.strip(), strict=False)
        except ValueError as e:
            raise ValueError(
                f"{value!r} is not a network in CIDR notation, such as '10.0.0.0/8' or "
                f"'fd00::/8' ({e})"
            ) from None
    return value


def networks(values: Iterable[str | IPNetwork]) -> tuple[IPNetwork, ...]:
    """Each of ``values`` (or the one text ``values``) as a network."""
    if isinstance(values, str):
        values = [values]
    return tuple(network(v) for v in values)


def in_any(address: IPAddress, networks: Iterable[IPNetwork]) -> IPNetwork | None:
    """The first of ``networks`` holding ``address``, or ``None``."""
    for network in networks:
        if address.version == network.version and address in network:
            return network
    return None


def forms(address: IPAddress) -> list[IPAddress]:
    """
    The address and the IPv4 addresses it embeds (mapped, NAT64, 6to4, compatible).
    """
    address = plain(address)
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
