"""
A Django view receiving twisted_hooks deliveries, in an app beside ``verify_webhook.py``.
Route it in ``urls.py``: ``path("webhooks/orders/", views.order_webhook)``.
"""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .verify_webhook import WebhookVerificationError, verify_webhook

logger = logging.getLogger(__name__)


@csrf_exempt  # the signature authenticates the request, not a CSRF token
@require_POST
def order_webhook(request: HttpRequest) -> HttpResponse:
    try:
        # request.body: the raw bytes. Not request.POST, not json.loads(...) first.
        payload = verify_webhook(request.body, request.headers)
    except WebhookVerificationError:
        return HttpResponse("invalid signature", status=400)
    handle(request.headers["Hook-Event"], payload)
    return HttpResponse(status=204)


def handle(event: str, payload: Any) -> None:
    """Your code. Answer within seconds: hand slow work to a task queue."""
    logger.info("%s: %s", event, payload)
