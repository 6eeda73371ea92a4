"""
Ed25519 key pairs and requests signed with them as Standard Webhooks' asymmetric scheme
(``v1a``) signs, for the tests of :func:`twisted_hooks.webhooks.signing.verify_ed25519`
and of ``twisted-hooks receive --public-key``. Not a test module: nothing here is
collected.
"""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def key_pair() -> tuple[Ed25519PrivateKey, str]:
    """A new Ed25519 private key and its public key as ``whpk_`` text."""
    private = Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return private, "whpk_" + base64.b64encode(raw).decode("ascii")


def v1a_headers(
    private: Ed25519PrivateKey, body: bytes, *, timestamp: int, msg_id: str = "msg_1"
) -> dict[str, str]:
    """Headers signed as Standard Webhooks' asymmetric scheme signs them, after a ``v1``
    entry that is not for this key."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    signature = base64.b64encode(private.sign(content)).decode("ascii")
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": f"v1,AAAA v1a,{signature}",
    }
