"""
A Flask receiver of twisted_hooks deliveries, beside ``verify_webhook.py``:
``flask --app flask_app run``.
"""

from flask import Flask, abort, request
from verify_webhook import WebhookVerificationError, verify_webhook

app = Flask(__name__)


@app.post("/webhooks/orders")
def order_webhook():
    try:
        # get_data(): the raw bytes. Not request.json, which is parsed already.
        payload = verify_webhook(request.get_data(), request.headers)
    except WebhookVerificationError:
        abort(400, "invalid signature")
    app.logger.info("%s: %s", request.headers["Hook-Event"], payload)
    return "", 204
