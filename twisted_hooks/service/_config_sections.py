"""
The sections of the service's configuration that make values of the webhook layer:
``[hooks]``, ``[retry]``, ``[validators]`` and ``[health]`` make its
:class:`~twisted_hooks.webhooks.Settings`, ``[subscribers]`` its static subscribers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from twisted_hooks.service._config_reader import (
    ConfigError,
    Reader,
    Value,
    cidr,
    fail,
    port,
    protocol,
    read_fields,
)
from twisted_hooks.webhooks.app import Settings
from twisted_hooks.webhooks.retry import MAX_RETRIES, RetryPolicy
from twisted_hooks.webhooks.subscribers import parse_subscribers
from twisted_hooks.webhooks.validators import (
    IRecipientValidator,
    RecipientPolicy,
    RefusalAdvice,
    SecurityError,
    block_cidr_network,
    block_internal_ips,
    ensure_port,
    ensure_protocol,
)

__all__ = ["SUBSCRIBERS", "settings", "subscribers"]

#: The name of the section of static subscribers.
SUBSCRIBERS = "subscribers"


def settings(reader: Reader, extra_networks: tuple[str, ...], advice: RefusalAdvice) -> Settings:
    """
    The application's settings, from ``[hooks]``, ``[retry]``, ``[validators]`` and
    ``[health]``, with ``extra_networks`` allowed besides ``[validators]
    allowed_networks``; refusals of recipients word their fix with ``advice``.
    """
    protocols = reader.items("validators", "protocols", protocol)
    if not protocols:
        raise fail(
            "validators",
            "protocols",
            reader.get("validators", "protocols"),
            "http, https, or both separated by a comma",
        )
    ports = reader.items("validators", "ports", port)
    blocked = reader.items("validators", "blocked_networks", cidr)
    validators: list[IRecipientValidator] = []
    if reader.boolean("validators", "block_internal"):
        validators.append(block_internal_ips())
    validators.append(ensure_protocol(*protocols))
    if ports:
        validators.append(ensure_port(*ports))
    if blocked:
        validators.append(block_cidr_network(*blocked))
    allowed = [*reader.items("validators", "allowed_networks", cidr), *extra_networks]
    policy = RecipientPolicy(validators=validators, allowed_networks=allowed, advice=advice)

    schedule = reader.items("retry", "schedule", reader.delay)
    if len(schedule) > MAX_RETRIES:
        raise fail(
            "retry",
            "schedule",
            reader.get("retry", "schedule"),
            f"at most {MAX_RETRIES} delays (it has {len(schedule)})",
        )
    retry = RetryPolicy(
        delays=tuple(schedule),
        **read_fields(reader, RetryPolicy),
    )

    values = read_fields(reader, Settings)
    timeout, lease = values["timeout"], values["lease"]
    if not lease > timeout:
        raise fail(
            "hooks",
            "lease",
            reader.get("hooks", "lease"),
            f"a number of seconds longer than [hooks] timeout ({timeout:g}), or a delivery "
            "could be claimed twice",
        )
    return Settings(retry=retry, policy=policy, **values)


#: Stands for "no secret given" while static subscribers are checked.
_NO_SECRET = "whsec_bm8tc2VjcmV0LWdpdmVu"


def subscribers(
    reader: Reader,
    section: Mapping[str, Value],
    policy: RecipientPolicy,
    secret: str | None,
) -> dict[str, object]:
    """
    The ``[subscribers]`` section in Thorn's ``THORN_SUBSCRIBERS`` shapes, each entry
    checked (and its URL against ``policy``); ``secret`` is ``[hooks] secret``, or
    ``None`` when it is empty.
    """
    expected = (
        "one or more URLs separated by spaces, or a JSON object or list in Thorn's "
        'THORN_SUBSCRIBERS shapes, such as {"url": "https://example.com/e", '
        '"content_type": "application/json"}'
    )
    result: dict[str, object] = {}
    for pattern, value in section.items():
        text = value.text.strip()
        entry: object
        if not text:
            raise fail(SUBSCRIBERS, pattern, value, expected)
        if text[0] in "{[":
            try:
                entry = json.loads(text)
            except ValueError as error:
                raise ConfigError(
                    f"{value.source}: [{SUBSCRIBERS}] {pattern} = {value.text!r}: not valid "
                    f"JSON ({error}); expected {expected}",
                    source=value.source,
                    section=SUBSCRIBERS,
                    key=pattern,
                ) from None
        else:
            urls = text.split()
            entry = urls[0] if len(urls) == 1 else urls
        try:
            found, _ = parse_subscribers({pattern: entry}, secret or _NO_SECRET)
            for subscriber in found:
                policy.check_url(subscriber.url)
        except (ValueError, TypeError, SecurityError) as error:
            raise ConfigError(
                f"{value.source}: [{SUBSCRIBERS}] {pattern} = {value.text!r}: {error}",
                source=value.source,
                section=SUBSCRIBERS,
                key=pattern,
            ) from None
        if any(subscriber.secret == _NO_SECRET for subscriber in found):
            # A secret made up at start would differ between processes and restarts: no
            # receiver could verify the signatures.
            raise ConfigError(
                f"{value.source}: [{SUBSCRIBERS}] {pattern} has no hmac_secret of its own "
                f"and [hooks] secret is empty: set [hooks] secret (for instance to the "
                f"output of python -c 'from twisted_hooks.webhooks import generate_secret; "
                f"print(generate_secret())'), or give the subscriber an hmac_secret",
                source=value.source,
                section=SUBSCRIBERS,
                key=pattern,
            )
        result[pattern] = entry
    return result
