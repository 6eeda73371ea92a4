"""
A FastAPI receiver of twisted_hooks deliveries, beside ``verify_webhook.py``:
``fastapi run fastapi_app.py``.
"""

import logging

from fastapi import FastAPI, HTTPException, Request, Response
from verify_webhook import WebhookVerificationError, verify_webhook

app = FastAPI()
logger = logging.getLogger(__name__)


@app.post("/webhooks/orders", status_code=204)
async def order_webhook(request: Request) -> Response:
    # The raw bytes. A pydantic model as a parameter would parse them first.
    body = await request.body()
    try:
        payload = verify_webhook(body, request.headers)
    except WebhookVerificationError:
        raise HTTPException(status_code=400, detail="invalid signature") from None
    logger.info("%s: %s", request.headers["Hook-Event"], payload)
    return Response(status_code=204)
