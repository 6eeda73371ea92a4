"""
Checks a twisted_hooks delivery, for the Django, Flask and FastAPI receivers beside it.

``pip install standardwebhooks``; set ``WEBHOOK_SECRET`` to the subscription's secret
(the ``hmac_secret`` that ``POST /hooks/`` returned, or the one you gave).
"""

from __future__ import annotations

import base64
import hmac
import os
from collections.abc import Mapping
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

SECRET = os.environ["WEBHOOK_SECRET"]  # whsec_...


def verify_webhook(body: bytes, headers: Mapping[str, str]) -> Any:
    """
    The JSON payload of a genuine delivery; raise ``WebhookVerificationError`` for any
    other request (a wrong signature, a missing header, a timestamp over 5 minutes old).

    ``body`` must be the raw request body, the bytes exactly as received: JSON parsed and
    serialised again is not the same bytes, and its signature does not match.
    """
    return Webhook(SECRET).verify(body, headers)


def verify_hook_hmac(body: bytes, headers: Mapping[str, str], digest: str = "sha256") -> None:
    """
    Thorn's check, for receivers written for Thorn: ``Hook-HMAC`` is the standard base64
    of the HMAC of the raw body, keyed with the secret's UTF-8 text (``whsec_``
    included), with the subscription's digest. It has no timestamp: prefer
    :func:`verify_webhook`, which also refuses replays.
    """
    expected = base64.b64encode(hmac.new(SECRET.encode(), body, digest).digest()).decode()
    if not hmac.compare_digest(expected, headers.get("Hook-HMAC", "")):
        raise WebhookVerificationError("Hook-HMAC does not match")


__all__ = ["WebhookVerificationError", "verify_hook_hmac", "verify_webhook"]
