"""
Tests for :mod:`twisted_hooks.webhooks.validators` and :mod:`twisted_hooks.webhooks.safe_agent`:
Thorn's recipient validators, the internal-network list, the allow-list, and the
connection-time check of every resolved address with the connection pinned to a vetted one.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import Any

import pytest
import treq
from hypothesis import given
from hypothesis import strategies as st
from treq.client import HTTPClient
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionRefusedError, DNSLookupError
from twisted.internet.interfaces import (
    IAddress,
    IHostnameResolver,
    IHostResolution,
    IOpenSSLClientConnectionCreator,
    IResolutionReceiver,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import optionsForClientTLS
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import URI, Agent, HTTPConnectionPool
from twisted.web.iweb import IAgentEndpointFactory, IPolicyForHTTPS
from twisted.web.resource import Resource
from twisted.web.server import Request, Site
from zope.interface import implementer
from zope.interface.verify import verifyObject

from twisted_hooks.webhooks.safe_agent import (
    RecipientLookupError,
    SafeEndpointFactory,
    _Collector,
    resolve_recipient,
    safe_agent,
)
from twisted_hooks.webhooks.validators import (
    DEFAULT_RECIPIENT_VALIDATORS,
    IRecipientValidator,
    Recipient,
    RecipientPolicy,
    RefusalAdvice,
    SecurityError,
    block_cidr_network,
    block_internal_ips,
    ensure_port,
    ensure_protocol,
    internal_range,
    is_internal,
)

# The five addresses the issue names, and what block_internal_ips calls them.
REQUIRED_INTERNAL = {
    "127.0.0.1": "loopback",
    "::1": "loopback",
    "::ffff:127.0.0.1": "IPv4-mapped",
    "169.254.169.254": "link-local",
    "100.64.0.1": "carrier-grade NAT",
}

PUBLIC = ["93.184.215.14", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001::1"]


def _url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


# ---------------------------------------------------------------------------------------
# Validators, one by one (Thorn's calling convention: validator(url))


def test_default_validators_are_thorns() -> None:
    """The defaults are Thorn's: block_internal_ips, http/https, ports 80 and 443."""
    names = [v.name for v in DEFAULT_RECIPIENT_VALIDATORS]
    assert names == ["block_internal_ips", "ensure_protocol", "ensure_port"]
    policy = RecipientPolicy()
    policy("http://hooks.example.com/x")
    policy("https://hooks.example.com/x")
    with pytest.raises(SecurityError):
        policy("ftp://hooks.example.com/x")
    with pytest.raises(SecurityError):
        policy("https://hooks.example.com:8443/x")
    with pytest.raises(SecurityError):
        policy("http://127.0.0.1/x")


@pytest.mark.parametrize("url", ["http://a.example/", "https://a.example/", "HTTPS://A.example/"])
def test_ensure_protocol_allows(url: str) -> None:
    """ensure_protocol lets the listed schemes through, whatever their case."""
    ensure_protocol("http", "https")(url)


@pytest.mark.parametrize(
    "url", ["ftp://a.example/", "file://a.example/etc/passwd", "gopher://a.example:80/"]
)
def test_ensure_protocol_refuses(url: str) -> None:
    """ensure_protocol refuses other schemes, naming the scheme and the rule."""
    with pytest.raises(SecurityError) as info:
        ensure_protocol("http", "https")(url)
    assert info.value.rule == "ensure_protocol"
    assert "not allowed (ensure_protocol allows http, https)" in str(info.value)


def test_ensure_protocol_thorn_spellings() -> None:
    """As in Thorn, 'http://' means 'http', and case does not matter."""
    validator = ensure_protocol("HTTPS", "http://")
    validator("http://a.example/")
    validator("https://a.example/")
    with pytest.raises(SecurityError):
        validator("ws://a.example/")
    with pytest.raises(ValueError, match="at least one scheme"):
        ensure_protocol()


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("http://a.example/", True),
        ("https://a.example/", True),
        ("http://a.example:443/", True),
        ("https://a.example:80/", True),
        ("http://a.example:8080/", False),
        ("https://a.example:22/", False),
        ("http://a.example:6379/", False),
        ("http://[2001:db8::1]:8000/", False),
    ],
)
def test_ensure_port(url: str, ok: bool) -> None:
    """ensure_port(80, 443) checks the given port, or the scheme's default."""
    validator = ensure_port(80, 443)
    if ok:
        validator(url)
    else:
        with pytest.raises(SecurityError) as info:
            validator(url)
        assert info.value.rule == "ensure_port"
        assert "ensure_port allows 80, 443" in str(info.value)


def test_ensure_port_arguments() -> None:
    """ensure_port refuses to be built without ports or with impossible ones."""
    with pytest.raises(ValueError, match="at least one port"):
        ensure_port()
    with pytest.raises(ValueError, match="not TCP ports"):
        ensure_port(0, 443, 70000)
    ensure_port("8080")("http://a.example:8080/")


@pytest.mark.parametrize("address", sorted(REQUIRED_INTERNAL))
def test_block_internal_ips_literal(address: str) -> None:
    """block_internal_ips refuses the issue's internal addresses given literally in a URL."""
    with pytest.raises(SecurityError) as info:
        block_internal_ips()(f"http://{_url_host(address)}/hook")
    assert info.value.rule == "block_internal_ips"
    assert info.value.address == address
    assert REQUIRED_INTERNAL[address] in str(info.value)
    assert "allowed_networks=[" in str(info.value)


@pytest.mark.parametrize("address", PUBLIC)
def test_block_internal_ips_public(address: str) -> None:
    """block_internal_ips lets public addresses, and host names (not resolved), through."""
    block_internal_ips()(f"https://{_url_host(address)}/hook")
    block_internal_ips()("https://localhost.example/hook")


def test_block_cidr_network() -> None:
    """block_cidr_network refuses addresses in its networks, also in IPv4-mapped form."""
    validator = block_cidr_network("203.0.113.0/24", "2001:db8:1::/48")
    for url in (
        "http://203.0.113.7/",
        "http://[::ffff:203.0.113.7]/",
        "http://[64:ff9b::cb00:7107]/",
        "http://[2001:db8:1::5]/",
    ):
        with pytest.raises(SecurityError) as info:
            validator(url)
        assert info.value.rule == "block_cidr_network"
        assert "inside the blocked network" in str(info.value)
    validator("http://198.51.100.7/")
    validator("http://hooks.example/")
    with pytest.raises(ValueError, match="CIDR"):
        block_cidr_network("10.0.0.0/33")


def test_block_cidr_network_at_connection_time() -> None:
    """block_cidr_network checks an address a host name resolves to."""
    policy = RecipientPolicy(validators=[block_cidr_network("8.8.8.0/24")])
    recipient = policy.check_url("https://dns.example/")
    with pytest.raises(SecurityError, match=r"dns\.example resolves to 8\.8\.8\.8"):
        policy.check_address(recipient, "8.8.8.8")
    policy.check_address(recipient, "1.1.1.1")


def test_validators_provide_the_interface() -> None:
    """Every validator provides IRecipientValidator."""
    for validator in (
        ensure_protocol("http"),
        ensure_port(80),
        block_internal_ips(),
        block_cidr_network("10.0.0.0/8"),
    ):
        assert verifyObject(IRecipientValidator, validator)


# ---------------------------------------------------------------------------------------
# The policy: the allow-list, messages, URL parsing


def test_allow_list_opens_internal_network() -> None:
    """An allow-listed internal network is let through block_internal_ips."""
    policy = RecipientPolicy(allowed_networks=["10.20.0.0/16", "127.0.0.0/8"])
    policy.check_url("http://10.20.3.4/")
    policy.check_url("http://127.0.0.2/")
    policy.check_url("http://[::ffff:127.0.0.1]/")
    with pytest.raises(SecurityError):
        policy.check_url("http://10.21.0.1/")
    with pytest.raises(SecurityError):
        policy.check_url("http://[::1]/")


def test_allow_list_keeps_other_rules() -> None:
    """The allow-list opens block_internal_ips and ensure_port only: schemes and blocked
    CIDRs stay, and so does the port rule for the addresses outside it."""
    policy = RecipientPolicy(
        validators=[*DEFAULT_RECIPIENT_VALIDATORS, block_cidr_network("10.20.9.0/24")],
        allowed_networks=["10.20.0.0/16"],
    )
    policy.check_url("http://10.20.3.4/")
    policy.check_url("http://10.20.3.4:8080/")
    with pytest.raises(SecurityError, match="ensure_port"):
        policy.check_url("http://93.184.215.14:8080/")
    with pytest.raises(SecurityError, match="ensure_protocol"):
        policy.check_url("gopher://10.20.3.4:80/")
    with pytest.raises(SecurityError, match="block_cidr_network"):
        policy.check_url("http://10.20.9.1/")


def test_message_names_origin_not_path() -> None:
    """A refusal names origin, address and rule, but not the path or query (secrets)."""
    with pytest.raises(SecurityError) as info:
        RecipientPolicy().check_url("http://169.254.169.254/latest?token=s3cret")
    message = str(info.value)
    assert info.value.recipient == "http://169.254.169.254:80"
    assert "http://169.254.169.254:80" in message
    assert "169.254.0.0/16" in message
    assert "s3cret" not in message
    assert "latest" not in message


@pytest.mark.parametrize("url", ["not a url", "http:///path", "mailto:a@example.com", "://x"])
def test_unusable_url(url: str) -> None:
    """A URL with no host is refused for good (SecurityError, rule 'url')."""
    with pytest.raises(SecurityError) as info:
        RecipientPolicy().check_url(url)
    assert info.value.rule in ("url", "ensure_protocol")


def test_recipient_parsing() -> None:
    """Recipient takes scheme, host and port in the forms the agent will use."""
    assert Recipient.from_url("HTTPS://Hooks.Example.COM/x") == Recipient(
        "https", "hooks.example.com", 443
    )
    assert Recipient.from_url(b"http://[::1]:8080/x") == Recipient("http", "::1", 8080)
    assert Recipient.from_url("http://[::1]:8080/").origin == "http://[::1]:8080"
    uri = URI.fromBytes(b"https://[2001:db8::1]/x")
    assert Recipient.from_url(uri) == Recipient("https", "2001:db8::1", 443)
    assert Recipient.from_url(uri).literal_address == ipaddress.ip_address("2001:db8::1")
    assert Recipient.from_url("http://a.example/").literal_address is None


# ---------------------------------------------------------------------------------------
# Hosts that name their address without DNS: every inet_aton() form, localhost


LOOPBACK_ALIASES = [
    "127.1",
    "0x7f000001",
    "2130706433",
    "0177.0.0.1",
    "0x7f.1",
    "127.0.1",
    "0X7F.0.0.01",
    "0177.0x0.0.1",
    "127.0.0.1.",
]


@pytest.mark.parametrize("host", LOOPBACK_ALIASES)
def test_inet_aton_forms_name_their_address(host: str) -> None:
    """Every form inet_aton() reads is the address it names, without DNS."""
    recipient = Recipient.from_url(f"http://{host}:8080/")
    assert recipient.literal_address == ipaddress.IPv4Address("127.0.0.1")
    assert recipient.named_addresses == (ipaddress.IPv4Address("127.0.0.1"),)


@pytest.mark.parametrize("host", [*LOOPBACK_ALIASES, "0", "localhost", "api.localhost"])
def test_loopback_aliases_refused_when_subscribing(host: str) -> None:
    """A loopback alias, ``0`` (0.0.0.0) or ``localhost`` is refused by the URL check (no
    DNS) as the internal address it names, with the fix worded for Python."""
    with pytest.raises(SecurityError) as info:
        RecipientPolicy().check_url(f"http://{host}/hook")
    error = info.value
    assert error.rule == "block_internal_ips"
    expected = "0.0.0.0" if host == "0" else "127.0.0.1"
    assert error.address == expected
    assert f"{host.lower()} names {expected}" in str(error)
    assert error.network == ("0.0.0.0/8" if host == "0" else "127.0.0.0/8")
    assert f"allowed_networks=['{error.network}']" in str(error)


def test_zero_stays_refused_with_loopback_allowed() -> None:
    """``0`` names 0.0.0.0 (which reaches the local machine on Linux): allowing the loopback
    networks does not open it."""
    policy = RecipientPolicy(allowed_networks=["127.0.0.0/8", "::1/128"])
    for host in ("0", "0.0.0.0", "0x0", "00"):
        with pytest.raises(SecurityError, match="this network / unspecified"):
            policy.check_url(f"http://{host}:8080/")


@given(st.text(alphabet="0123456789xXaAfF.", min_size=1, max_size=16))
def test_inet_aton_reading_covers_the_c_library(host: str) -> None:
    """Whatever the C library's inet_aton() reads as an address (what the system resolver
    would connect to), the URL check reads as the same address."""
    import socket

    try:
        expected = ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return
    assert Recipient("http", host, 80).literal_address == expected


@pytest.mark.parametrize(
    "host", ["127.0.0.256", "08.0.0.1", "1.2.3.4.5", "4294967296", "0x100.1", "1..2", "a.09"]
)
def test_hosts_ending_in_a_number_must_be_addresses(host: str) -> None:
    """A host whose last label is a number but that is no IPv4 address is refused (rule
    'url'), instead of being handed to a resolver that may read it some other way."""
    with pytest.raises(SecurityError) as info:
        RecipientPolicy(allowed_networks=["0.0.0.0/0"]).check_url(f"http://{host}/")
    assert info.value.rule == "url"
    assert "is not an IPv4 address" in str(info.value)
    assert "dotted decimal" in str(info.value)


@pytest.mark.parametrize("host", ["1.example", "example.0xg", "localhost.example", "x0", "1e3"])
def test_names_with_digits_are_host_names(host: str) -> None:
    """Host names with digits that do not end in a number are names, resolved later."""
    recipient = RecipientPolicy().check_url(f"https://{host}/")
    assert recipient.named_addresses == ()


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST", "localhost.", "a.b.localhost"])
def test_localhost_names_the_loopback_addresses(host: str) -> None:
    """``localhost`` and ``*.localhost`` name 127.0.0.1 and ::1 (RFC 6761), never DNS."""
    assert Recipient.from_url(f"http://{host}/").named_addresses == (
        ipaddress.IPv4Address("127.0.0.1"),
        ipaddress.IPv6Address("::1"),
    )


def test_localhost_accepted_when_one_loopback_is_allowed() -> None:
    """``localhost`` is accepted when either loopback address is allowed."""
    for allowed in (["127.0.0.0/8"], ["::1/128"]):
        RecipientPolicy(allowed_networks=allowed).check_url("http://localhost:3000/")
    with pytest.raises(SecurityError):
        RecipientPolicy(allowed_networks=["10.0.0.0/8"]).check_url("http://localhost:3000/")


def test_full_width_hosts_are_read_as_sent() -> None:
    """A host in full-width characters is checked as the ASCII host it is sent as (IDNA)."""
    for url, address in (
        ("http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/", "127.0.0.1"),
        ("http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/", "127.0.0.1"),
    ):
        with pytest.raises(SecurityError) as info:
            RecipientPolicy().check_url(url)
        assert info.value.address == address


# ---------------------------------------------------------------------------------------
# Credentials in the URL


@pytest.mark.parametrize(
    "url",
    [
        "http://user:s3cret@hooks.example.com/",
        "http://user@hooks.example.com/",
        "http://@hooks.example.com/",
        "http://:@hooks.example.com/",
        "https://user:s3cret@[2606:4700:4700::1111]:443/",
        "http://user:s3cret@127.0.0.1:8080/",
        b"http://user:s3cret@hooks.example.com/",
    ],
)
def test_credentials_in_the_url_refused(url: str | bytes) -> None:
    """A URL with userinfo is refused whatever the host (rule 'url'): credentials belong
    in headers, and the message never repeats them."""
    with pytest.raises(SecurityError) as info:
        RecipientPolicy(allowed_networks=["127.0.0.0/8"]).check_url(url)
    assert info.value.rule == "url"
    assert "Credentials belong in headers" in str(info.value)
    assert "s3cret" not in str(info.value)


def test_at_sign_after_the_host_is_fine() -> None:
    """An ``@`` in the path, query or fragment is no credential."""
    RecipientPolicy().check_url("https://hooks.example.com/a@b?c=d@e#f@g")


# ---------------------------------------------------------------------------------------
# Allowed networks take any port; the port rule is for public addresses


def test_allowed_networks_take_any_port() -> None:
    """Inside an allowed network any port is accepted; outside, ports 80 and 443 only."""
    policy = RecipientPolicy(allowed_networks=["127.0.0.0/8", "::1/128", "10.20.0.0/16"])
    for url in (
        "http://127.0.0.1:8080/",
        "http://[::1]:8080/",
        "http://10.20.3.4:5432/",
        "https://localhost:8443/",
        "http://127.1:1/",
        "http://[::ffff:127.0.0.1]:9000/",
    ):
        policy.check_url(url)
    for url in ("http://93.184.215.14:8080/", "http://[2606:4700:4700::1111]:8080/"):
        with pytest.raises(SecurityError) as info:
            policy.check_url(url)
        assert info.value.rule == "ensure_port"
        assert info.value.port == 8080
    assert ensure_port(80).opened_by_allow_list
    assert not ensure_protocol("http").opened_by_allow_list


def test_host_name_port_waits_for_its_addresses() -> None:
    """For a host name, a policy with allowed networks leaves the port to the connection
    time check, address by address; without allowed networks it refuses it at once."""
    with pytest.raises(SecurityError, match="ensure_port"):
        RecipientPolicy().check_url("http://hooks.example:8080/")
    policy = RecipientPolicy(allowed_networks=["10.20.0.0/16"])
    recipient = policy.check_url("http://hooks.example:8080/")
    policy.check_address(recipient, "10.20.0.7")
    with pytest.raises(SecurityError) as info:
        policy.check_address(recipient, "93.184.215.14")
    assert info.value.rule == "ensure_port"
    with pytest.raises(SecurityError, match="ensure_protocol"):
        policy.check_url("ftp://hooks.example:8080/")


def test_internal_address_is_named_before_the_port() -> None:
    """A refused internal address on another port says to allow the network (which opens
    the port too), not to add the port."""
    with pytest.raises(SecurityError) as info:
        RecipientPolicy().check_url("http://127.0.0.1:19202/hook")
    assert info.value.rule == "block_internal_ips"
    assert "ensure_port" not in str(info.value)
    assert "reachable on any port" in str(info.value)


def test_hooks_allowed_networks_is_the_local_mode() -> None:
    """``Hooks(allowed_networks=...)`` adds to the settings' allow-list: a receiver on the
    local machine, any port, is accepted by ``subscribe``; others stay refused."""
    from twisted_hooks.webhooks import Hooks, Settings

    reactor = MemoryReactorClock()
    settings = Settings(policy=RecipientPolicy(allowed_networks=["10.0.0.0/8"]))
    hooks = Hooks(reactor, settings=settings, allowed_networks=["127.0.0.0/8", "::1/128"])
    assert [str(n) for n in hooks.settings.policy.allowed_networks] == [
        "10.0.0.0/8",
        "127.0.0.0/8",
        "::1/128",
    ]
    for url in ("http://127.0.0.1:19202/", "http://[::1]:19202/", "http://localhost:3000/"):
        assert hooks.subscribe("order.*", url).called
    with pytest.raises(SecurityError, match=re.escape("allowed_networks=['192.168.0.0/16']")):
        hooks.subscribe("order.*", "http://192.168.1.2:8080/")
    assert Hooks(reactor, allowed_networks="127.0.0.0/8").settings.policy.is_allowed("127.0.0.9")
    with pytest.raises(ValueError, match="CIDR"):
        Hooks(reactor, allowed_networks=["localhost"])


# ---------------------------------------------------------------------------------------
# Refusal advice: each interface words the fix


def test_advice_words_each_fix() -> None:
    """The policy's advice words the fix of every rule; explain() words it for another
    interface; a refusal keeps its structured reason."""
    advice = RefusalAdvice(
        allow_network="ALLOW {network}",
        allow_list="LIST",
        add_port="PORT {port}",
        add_protocol="SCHEME {scheme}",
        unblock_network="UNBLOCK {network}",
    )
    policy = RecipientPolicy(
        validators=[*DEFAULT_RECIPIENT_VALIDATORS, block_cidr_network("198.51.100.0/24")],
        advice=advice,
    )
    cases = {
        "http://10.1.2.3/": ("block_internal_ips", "ALLOW 10.0.0.0/8; it is then reachable"),
        "http://93.184.215.14:81/": ("ensure_port", "or PORT 81; a network in LIST is"),
        "gopher://93.184.215.14:80/": ("ensure_protocol", "or SCHEME gopher."),
        "http://[::ffff:192.168.0.1]/": ("block_internal_ips", "ALLOW 192.168.0.0/16;"),
        "http://user@93.184.215.14/": ("url", "Credentials belong in headers"),
    }
    for url, (rule, words) in cases.items():
        with pytest.raises(SecurityError) as info:
            policy.check_url(url)
        assert info.value.rule == rule
        assert words in str(info.value), str(info.value)
        assert str(info.value).startswith(info.value.problem)
    unblocked = RecipientPolicy(validators=[block_cidr_network("93.184.215.0/24")])
    with pytest.raises(SecurityError) as info:
        unblocked.check_url("http://93.184.215.14/")
    error = info.value
    assert error.network == "93.184.215.0/24"
    assert "take 93.184.215.0/24 out of block_cidr_network()" in str(error)
    assert "UNBLOCK 93.184.215.0/24" in error.explain(advice)
    assert str(error.reworded(advice)) == error.explain(advice)
    custom = SecurityError("Refused: mine.", recipient="http://a:80", rule="my_rule")
    assert str(custom) == custom.explain(advice) == "Refused: mine."
    assert RecipientPolicy(advice=advice) == RecipientPolicy()
    with pytest.raises(TypeError, match="RefusalAdvice"):
        RecipientPolicy(advice="pass allowed_networks")  # type: ignore[arg-type]


def test_policy_refuses_non_validators() -> None:
    """A policy is built from validators only, and says so."""
    with pytest.raises(TypeError, match="not a recipient validator"):
        RecipientPolicy(validators=[lambda url: None])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="CIDR"):
        RecipientPolicy(allowed_networks=["localhost"])


# ---------------------------------------------------------------------------------------
# is_internal


INTERNAL_EXAMPLES = [
    "0.0.0.0",
    "0.1.2.3",
    "10.0.0.1",
    "100.64.0.1",
    "100.127.255.254",
    "100.100.100.200",  # Alibaba Cloud metadata
    "127.0.0.1",
    "127.255.255.254",
    "169.254.169.254",
    "172.16.0.1",
    "172.31.255.255",
    "192.0.0.170",
    "192.0.2.1",
    "192.168.1.1",
    "198.18.0.1",
    "198.51.100.1",
    "203.0.113.1",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "::",
    "::1",
    "::ffff:127.0.0.1",
    "::ffff:8.8.8.8",
    "::ffff:0:a00:1",
    "::127.0.0.1",
    "64:ff9b::7f00:1",
    "64:ff9b::808:808",
    "64:ff9b:1::1",
    "100::1",
    "2001::1",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    "2001:db8::1",
    "2002:7f00:1::1",
    "2002:a9fe:a9fe::1",
    "3fff::1",
    "fc00::1",
    "fd00:ec2::254",  # AWS metadata over IPv6
    "fe80::1",
    "fe80::1%eth0",
    "fec0::1",
    "ff02::1",
    "4000::1",
]


@pytest.mark.parametrize("address", INTERNAL_EXAMPLES)
def test_is_internal(address: str) -> None:
    """Each of these addresses is internal."""
    assert is_internal(address)
    assert internal_range(address) is not None


@pytest.mark.parametrize("address", [*PUBLIC, "2002:808:808::1", "100.63.255.255", "172.32.0.1"])
def test_is_not_internal(address: str) -> None:
    """Globally reachable unicast addresses are not internal."""
    assert not is_internal(address)
    assert not is_internal(ipaddress.ip_address(address))


# Written out from the IANA special-purpose registries, independently of the module.
EXPECTED_V4 = [
    ipaddress.IPv4Network(n)
    for n in [
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
    ]
]

v4_addresses = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)
v6_addresses = st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)


@given(v4_addresses)
def test_v4_property(address: ipaddress.IPv4Address) -> None:
    """An IPv4 address is internal exactly when it is in one of the expected networks."""
    assert is_internal(address) == any(address in n for n in EXPECTED_V4)


@given(st.one_of(v4_addresses, v6_addresses))
def test_stricter_than_python(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    """What Python's ipaddress says is not global (or is private) is internal here too."""
    if not address.is_global or address.is_private:
        assert is_internal(address)


@given(v4_addresses)
def test_v4_forms_property(address: ipaddress.IPv4Address) -> None:
    """Mapped, NAT64 and compatible forms are always internal; 6to4 follows its IPv4."""
    n = int(address)
    assert is_internal(ipaddress.IPv6Address((0xFFFF << 32) | n))
    assert is_internal(ipaddress.IPv6Address((0x64FF9B << 96) | n))
    assert is_internal(ipaddress.IPv6Address(n))
    six_to_four = ipaddress.IPv6Address((0x2002 << 112) | (n << 80) | 1)
    assert is_internal(six_to_four) == is_internal(address)


@given(v6_addresses)
def test_v6_outside_global_unicast(address: ipaddress.IPv6Address) -> None:
    """Every IPv6 address outside 2000::/3 is internal."""
    if address not in ipaddress.IPv6Network("2000::/3"):
        assert is_internal(address)


# ---------------------------------------------------------------------------------------
# Connection time: fakes


@implementer(IHostResolution)
class FakeResolution:
    def __init__(self, name: str) -> None:
        self.name = name
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


@implementer(IHostnameResolver)
class FakeResolver:
    """
    Resolves names from a table, at once, or later when ``pending`` holds the name.
    """

    def __init__(self, table: dict[str, list[str]], pending: Sequence[str] = ()) -> None:
        self.table = table
        self.pending = set(pending)
        self.calls: list[tuple[str, int]] = []
        self.waiting: list[tuple[IResolutionReceiver, FakeResolution]] = []

    def resolveHostName(
        self,
        resolutionReceiver: IResolutionReceiver,
        hostName: str,
        portNumber: int = 0,
        addressTypes: Sequence[type[IAddress]] | None = None,
        transportSemantics: str = "TCP",
    ) -> IHostResolution:
        self.calls.append((hostName, portNumber))
        resolution = FakeResolution(hostName)
        resolutionReceiver.resolutionBegan(resolution)
        if hostName in self.pending:
            self.waiting.append((resolutionReceiver, resolution))
            return resolution
        for host in self.table.get(hostName, []):
            kind = IPv6Address if ":" in host else IPv4Address
            resolutionReceiver.addressResolved(kind("TCP", host, portNumber))
        resolutionReceiver.resolutionComplete()
        return resolution


@implementer(IPolicyForHTTPS)
class RecordingTLSPolicy:
    def __init__(self) -> None:
        self.netlocs: list[tuple[bytes, int]] = []

    def creatorForNetloc(self, hostname: bytes, port: int) -> IOpenSSLClientConnectionCreator:
        self.netlocs.append((hostname, port))
        return optionsForClientTLS(hostname.decode("ascii"))


def _setup(
    table: dict[str, list[str]], policy: RecipientPolicy | None = None, **kw: Any
) -> tuple[MemoryReactorClock, FakeResolver, SafeEndpointFactory]:
    reactor = MemoryReactorClock()
    resolver = FakeResolver(table, **kw)
    reactor.installNameResolver(resolver)
    factory = SafeEndpointFactory(reactor=reactor, policy=policy or RecipientPolicy())
    return reactor, resolver, factory


def _connect(factory: SafeEndpointFactory, url: bytes) -> Deferred[Any]:
    endpoint = factory.endpointForURI(URI.fromBytes(url))
    return endpoint.connect(Factory.forProtocol(Protocol))


class ConnectionTimeTests(SynchronousTestCase):
    """
    SafeEndpointFactory resolves, vets every address, and connects to a vetted one.
    """

    def test_interfaces(self) -> None:
        """The factory and its endpoints provide the interfaces the Agent uses."""
        _, _, factory = _setup({})
        verifyObject(IAgentEndpointFactory, factory)
        verifyObject(IStreamClientEndpoint, factory.endpointForURI(URI.fromBytes(b"http://a/")))
        verifyObject(IResolutionReceiver, _Collector())

    def test_host_resolving_to_internal_refused(self) -> None:
        """A host resolving to any of the issue's internal addresses is refused, unconnected."""
        for address, description in REQUIRED_INTERNAL.items():
            reactor, resolver, factory = _setup({"hooks.example.com": [address]})
            failure = self.failureResultOf(
                _connect(factory, b"https://hooks.example.com/hook"), SecurityError
            )
            error = failure.value
            assert isinstance(error, SecurityError)
            self.assertEqual(error.rule, "block_internal_ips")
            self.assertEqual(error.address, address)
            self.assertIn(f"hooks.example.com resolves to {address}", str(error))
            self.assertIn(description, str(error))
            self.assertEqual(resolver.calls, [("hooks.example.com", 443)])
            self.assertEqual(reactor.tcpClients, [])

    def test_one_internal_among_public_refused(self) -> None:
        """A host with one public and one internal address is refused altogether."""
        reactor, _, factory = _setup({"mixed.example": ["93.184.215.14", "10.0.0.5"]})
        failure = self.failureResultOf(_connect(factory, b"http://mixed.example/"))
        failure.trap(SecurityError)
        self.assertIn("10.0.0.5", str(failure.value))
        self.assertEqual(reactor.tcpClients, [])

    def test_connects_to_vetted_address(self) -> None:
        """A public host is connected to at the address checked; DNS is asked once."""
        reactor, resolver, factory = _setup({"hooks.example.com": ["93.184.215.14"]})
        d = _connect(factory, b"http://hooks.example.com/hook")
        self.assertNoResult(d)
        [(host, port, _, timeout, _)] = reactor.tcpClients
        self.assertEqual((host, port, timeout), ("93.184.215.14", 80, 30.0))
        self.assertEqual(len(resolver.calls), 1)

    def test_connection_completes(self) -> None:
        """The endpoint's Deferred fires with the protocol once TCP is up."""
        reactor, _, factory = _setup({"hooks.example.com": ["93.184.215.14"]})
        d = _connect(factory, b"http://hooks.example.com/hook")
        protocol = reactor.tcpClients[0][2].buildProtocol(None)
        protocol.makeConnection(StringTransport())
        self.assertIsInstance(self.successResultOf(d), Protocol)

    def test_allow_list_pins_vetted_address(self) -> None:
        """With 127.0.0.0/8 allow-listed, a loopback host is delivered to, at exactly that IP."""
        policy = RecipientPolicy(allowed_networks=["127.0.0.0/8"])
        reactor, _, factory = _setup({"local.example": ["127.0.0.7"]}, policy)
        _connect(factory, b"http://local.example/")
        self.assertEqual([c[:2] for c in reactor.tcpClients], [("127.0.0.7", 80)])

    def test_allow_list_is_exact(self) -> None:
        """Allow-listing 127.0.0.0/8 does not open ::1, 10/8, nor the metadata service."""
        policy = RecipientPolicy(allowed_networks=["127.0.0.0/8"])
        for address in ("::1", "10.0.0.1", "169.254.169.254"):
            reactor, _, factory = _setup({"h.example": ["127.0.0.1", address]}, policy)
            self.failureResultOf(_connect(factory, b"http://h.example/"), SecurityError)
            self.assertEqual(reactor.tcpClients, [])

    def test_next_address_after_refusal(self) -> None:
        """When a vetted address refuses the connection, the next vetted one is tried."""
        reactor, _, factory = _setup({"two.example": ["93.184.215.14", "2606:4700::6810:84e5"]})
        d = _connect(factory, b"http://two.example/")
        connector = reactor.connectors[0]
        reactor.tcpClients[0][2].clientConnectionFailed(
            connector, Failure(ConnectionRefusedError())
        )
        self.assertEqual(
            [c[:2] for c in reactor.tcpClients],
            [("93.184.215.14", 80), ("2606:4700::6810:84e5", 80)],
        )
        reactor.tcpClients[1][2].clientConnectionFailed(
            reactor.connectors[1], Failure(ConnectionRefusedError())
        )
        self.failureResultOf(d, ConnectionRefusedError)

    def test_literal_addresses_skip_dns(self) -> None:
        """A literal IP (IPv4, or IPv6 in brackets) is checked and used without DNS."""
        reactor, resolver, factory = _setup({})
        _connect(factory, b"http://93.184.215.14/")
        _connect(factory, b"https://[2606:4700:4700::1111]/")
        self.assertEqual(
            [c[:2] for c in reactor.tcpClients],
            [("93.184.215.14", 80), ("2606:4700:4700::1111", 443)],
        )
        self.assertEqual(resolver.calls, [])
        for url in (b"http://127.0.0.1/", b"http://[::1]/", b"http://[::ffff:127.0.0.1]/"):
            self.failureResultOf(_connect(factory, url), SecurityError)
        self.assertEqual(len(reactor.tcpClients), 2)

    def test_url_rules_before_dns(self) -> None:
        """A refused scheme or port fails before any name is resolved."""
        _, resolver, factory = _setup({"a.example": ["93.184.215.14"]})
        f = self.failureResultOf(_connect(factory, b"http://a.example:8080/"), SecurityError)
        self.assertEqual(f.value.rule, "ensure_port")
        f = self.failureResultOf(_connect(factory, b"ftp://a.example:80/"), SecurityError)
        self.assertEqual(f.value.rule, "ensure_protocol")
        self.assertEqual(resolver.calls, [])

    def test_https_verifies_hostname_over_pinned_ip(self) -> None:
        """For https the TCP connection goes to the IP; TLS is set up for the host name."""
        reactor = MemoryReactorClock()
        reactor.installNameResolver(FakeResolver({"hooks.example.com": ["93.184.215.14"]}))
        tls = RecordingTLSPolicy()
        factory = SafeEndpointFactory(reactor=reactor, tls_policy=tls, connect_timeout=5)
        _connect(factory, b"https://hooks.example.com/hook")
        [(host, port, wire_factory, timeout, _)] = reactor.tcpClients
        self.assertEqual((host, port, timeout), ("93.184.215.14", 443, 5))
        self.assertIsInstance(wire_factory._wrappedFactory, TLSMemoryBIOFactory)
        self.assertEqual(tls.netlocs, [(b"hooks.example.com", 443)])

    def test_no_address_is_retryable_error(self) -> None:
        """A name that resolves to nothing fails with RecipientLookupError, not SecurityError."""
        _, _, factory = _setup({})
        failure = self.failureResultOf(_connect(factory, b"http://nowhere.example/"))
        self.assertTrue(failure.check(RecipientLookupError, DNSLookupError))
        self.assertFalse(failure.check(SecurityError))
        self.assertIn("resolves to no address", str(failure.value))

    def test_resolution_timeout(self) -> None:
        """A resolution that does not finish in time fails with RecipientLookupError."""
        reactor, resolver, factory = _setup({}, pending=["slow.example"])
        factory = SafeEndpointFactory(reactor=reactor, resolve_timeout=5)
        d = _connect(factory, b"http://slow.example/")
        self.assertNoResult(d)
        reactor.advance(5)
        self.failureResultOf(d, RecipientLookupError)
        self.assertTrue(resolver.waiting[0][1].cancelled)

    def test_cancel_during_resolution(self) -> None:
        """Cancelling the connection attempt cancels the resolution."""
        reactor, resolver, factory = _setup({}, pending=["slow.example"])
        d = _connect(factory, b"http://slow.example/")
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertTrue(resolver.waiting[0][1].cancelled)
        self.assertEqual(reactor.tcpClients, [])

    def test_credentials_refused(self) -> None:
        """A stored URL with credentials (accepted before they were refused) is refused
        when connecting: ``user:pw@host`` is never resolved, nothing is connected."""
        reactor, resolver, factory = _setup({"hooks.example.com": ["93.184.215.14"]})
        for url in (b"http://user:pw@hooks.example.com/", b"http://user@93.184.215.14/"):
            failure = self.failureResultOf(_connect(factory, url), SecurityError)
            self.assertEqual(failure.value.rule, "url")
            self.assertIn("Credentials belong in headers", str(failure.value))
        self.assertEqual(resolver.calls, [])
        self.assertEqual(reactor.tcpClients, [])

    def test_named_addresses_are_pinned(self) -> None:
        """Every inet_aton() form and ``localhost`` connect to the address they name, on
        any port of an allowed network, without asking the resolver; what the policy
        refuses is never connected to."""
        policy = RecipientPolicy(allowed_networks=["127.0.0.0/8", "::1/128"])
        reactor, resolver, factory = _setup({}, policy)
        for host in [*LOOPBACK_ALIASES, "localhost", "api.localhost"]:
            _connect(factory, f"http://{host}:8080/".encode())
        self.assertEqual({c[:2] for c in reactor.tcpClients}, {("127.0.0.1", 8080)})
        self.assertEqual(len(reactor.tcpClients), len(LOOPBACK_ALIASES) + 2)
        for url in (b"http://0:8080/", b"http://0x0a000001:8080/"):
            self.failureResultOf(_connect(factory, url), SecurityError)
        self.assertEqual(resolver.calls, [])
        self.assertEqual(len(reactor.tcpClients), len(LOOPBACK_ALIASES) + 2)

    def test_localhost_tries_only_allowed_loopbacks(self) -> None:
        """``localhost`` is tried at 127.0.0.1 then ::1, skipping the one not allowed; with
        neither allowed it is refused unconnected."""
        for allowed, expected in (
            (["127.0.0.0/8", "::1/128"], [("127.0.0.1", 3000)]),
            (["::1/128"], [("::1", 3000)]),
        ):
            reactor, _, factory = _setup({}, RecipientPolicy(allowed_networks=allowed))
            _connect(factory, b"http://localhost:3000/")
            self.assertEqual([c[:2] for c in reactor.tcpClients], expected)
        reactor, _, factory = _setup({}, RecipientPolicy(allowed_networks=["127.0.0.0/8"]))
        d = _connect(factory, b"http://localhost:3000/")
        reactor.tcpClients[0][2].clientConnectionFailed(
            reactor.connectors[0], Failure(ConnectionRefusedError())
        )
        self.failureResultOf(d, ConnectionRefusedError)
        self.assertEqual(len(reactor.tcpClients), 1)
        reactor, _, factory = _setup({})
        self.failureResultOf(_connect(factory, b"http://localhost/"), SecurityError)
        self.assertEqual(reactor.tcpClients, [])

    def test_host_name_port_checked_per_address(self) -> None:
        """With allowed networks, a host name on another port is connected to when it
        resolves into an allowed network, and refused when it resolves to a public
        address (the port rule is for public addresses)."""
        policy = RecipientPolicy(allowed_networks=["10.20.0.0/16"])
        reactor, _, factory = _setup(
            {"inside.example": ["10.20.0.7"], "outside.example": ["93.184.215.14"]}, policy
        )
        _connect(factory, b"http://inside.example:8080/")
        self.assertEqual([c[:2] for c in reactor.tcpClients], [("10.20.0.7", 8080)])
        f = self.failureResultOf(_connect(factory, b"http://outside.example:8080/"))
        f.trap(SecurityError)
        self.assertEqual(f.value.rule, "ensure_port")
        self.assertEqual(len(reactor.tcpClients), 1)

    def test_https_ipv6_literal_verified_for_the_address(self) -> None:
        """For https to an IPv6 address, TLS is set up for the address without brackets
        (an IDNA encoding of ``[::1]`` would fail)."""
        reactor = MemoryReactorClock()
        reactor.installNameResolver(FakeResolver({}))
        tls = RecordingTLSPolicy()
        factory = SafeEndpointFactory(reactor=reactor, tls_policy=tls)
        _connect(factory, b"https://[2606:4700:4700::1111]/hook")
        self.assertEqual(tls.netlocs, [(b"2606:4700:4700::1111", 443)])
        self.assertEqual(reactor.tcpClients[0][:2], ("2606:4700:4700::1111", 443))

    def test_through_agent(self) -> None:
        """An Agent on the factory fails the request with SecurityError."""
        reactor, _, factory = _setup({"hooks.example.com": ["169.254.169.254"]})
        agent = Agent.usingEndpointFactory(reactor, factory)
        d = agent.request(b"POST", b"http://hooks.example.com/hook")
        self.failureResultOf(d, SecurityError)

    def test_resolve_recipient(self) -> None:
        """resolve_recipient checks a URL now, as a delivery would, without connecting."""
        reactor, _, _ = _setup({"ok.example": ["8.8.8.8"], "bad.example": ["10.1.1.1"]})
        self.assertEqual(
            self.successResultOf(resolve_recipient(reactor, "https://ok.example/")),
            ["8.8.8.8"],
        )
        self.failureResultOf(resolve_recipient(reactor, "https://bad.example/"), SecurityError)
        self.failureResultOf(resolve_recipient(reactor, "https://ok.example:1/"), SecurityError)
        self.assertEqual(reactor.tcpClients, [])


# ---------------------------------------------------------------------------------------
# The real thing: real reactor, real resolver, real HTTP server on 127.0.0.1


class Collect(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[bytes] = []

    def render_POST(self, request: Request) -> bytes:
        assert request.content is not None
        self.bodies.append(request.content.read())
        return b"ok"


class RealReactorTests(TestCase):
    """
    Deliveries with treq through the safe agent, to a real server on 127.0.0.1.
    """

    def setUp(self) -> None:
        from twisted.internet import reactor

        self.reactor: Any = reactor
        self.resource = Collect()
        self.port = reactor.listenTCP(0, Site(self.resource), interface="127.0.0.1")  # type: ignore[attr-defined]
        self.addCleanup(self.port.stopListening)
        self.number = self.port.getHost().port
        self.pool = HTTPConnectionPool(reactor)
        self.addCleanup(self.pool.closeCachedConnections)

    def client(self, policy: RecipientPolicy) -> HTTPClient:
        return HTTPClient(safe_agent(self.reactor, policy, pool=self.pool, connect_timeout=5))

    def policy(self, allowed: Sequence[str] = ()) -> RecipientPolicy:
        return RecipientPolicy(
            validators=[
                block_internal_ips(),
                ensure_protocol("http", "https"),
                ensure_port(80, 443, self.number),
            ],
            allowed_networks=allowed,
        )

    async def _refused(self, url: str, policy: RecipientPolicy) -> SecurityError:
        try:
            await self.client(policy).post(url, data=b"x", timeout=10, reactor=self.reactor)
        except SecurityError as e:
            return e
        raise AssertionError(f"{url} was not refused")

    def test_loopback_refused_by_default(self) -> Deferred[None]:
        """http://127.0.0.1:<port>/ is refused by Thorn's defaults and by the internal rule."""

        async def run() -> None:
            url = f"http://127.0.0.1:{self.number}/hook"
            error = await self._refused(url, RecipientPolicy())
            self.assertEqual(error.rule, "block_internal_ips")
            self.assertIn("allowed_networks=['127.0.0.0/8']", str(error))
            error = await self._refused(url, self.policy())
            self.assertEqual(error.rule, "block_internal_ips")
            self.assertEqual(self.resource.bodies, [])

        return Deferred.fromCoroutine(run())

    def test_allow_listed_loopback_delivered(self) -> Deferred[None]:
        """With 127.0.0.0/8 allow-listed, the POST reaches the server."""

        async def run() -> None:
            client = self.client(self.policy(["127.0.0.0/8"]))
            response = await client.post(
                f"http://127.0.0.1:{self.number}/hook",
                data=b'{"event": "x"}',
                timeout=10,
                reactor=self.reactor,
            )
            self.assertEqual(response.code, 200)
            self.assertEqual(await treq.content(response), b"ok")
            self.assertEqual(self.resource.bodies, [b'{"event": "x"}'])

        return Deferred.fromCoroutine(run())

    def test_localhost_refused(self) -> Deferred[None]:
        """'localhost', which names the loopback addresses, is refused."""

        async def run() -> None:
            error = await self._refused(f"http://localhost:{self.number}/hook", self.policy())
            self.assertEqual(error.address, "127.0.0.1")
            self.assertIn("localhost names 127.0.0.1", str(error))
            self.assertEqual(self.resource.bodies, [])

        return Deferred.fromCoroutine(run())

    def test_localhost_allowed_when_both_loopbacks_are(self) -> Deferred[None]:
        """Allow-listing both loopback networks lets 'localhost' through to the server."""

        async def run() -> None:
            client = self.client(self.policy(["127.0.0.0/8", "::1/128"]))
            response = await client.post(
                f"http://localhost:{self.number}/hook", data=b"y", timeout=10, reactor=self.reactor
            )
            await treq.content(response)
            self.assertEqual(self.resource.bodies, [b"y"])

        return Deferred.fromCoroutine(run())

    def test_numeric_host_forms_refused(self) -> Deferred[None]:
        """Hosts the resolver turns into 127.0.0.1 (2130706433, 0x7f.1) are refused."""

        async def run() -> None:
            for host in ("2130706433", "0x7f.1", "127.1"):
                try:
                    error = await self._refused(f"http://{host}:{self.number}/", self.policy())
                except DNSLookupError:
                    continue  # a resolver that does not know the form: nothing was sent
                self.assertEqual(error.address, "127.0.0.1")
            self.assertEqual(self.resource.bodies, [])

        return Deferred.fromCoroutine(run())
