"""
Webhooks: events delivered to subscribers as signed HTTP POSTs, retried with backoff.

The pieces, each behind a small interface: :mod:`~twisted_hooks.webhooks.signing`
(Thorn and Standard Webhooks signatures), :mod:`~twisted_hooks.webhooks.validators`
(recipient validation against SSRF).
"""
