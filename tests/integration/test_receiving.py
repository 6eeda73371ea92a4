"""
The receivers of doc/receiving.rst verify what twisted_hooks really sends.

The shared Python function (``doc/receiving/verify_webhook.py``, on the ``standardwebhooks``
package) is given deliveries made by the real sender, in memory; the Django view runs in
a child process (Django's settings are global) behind a real WSGI server on 127.0.0.1,
to which a real application delivers. Flask and FastAPI are not installed here: their
receivers are checked to hand the raw body to the shared function.
"""

from __future__ import annotations

import ast
import email.message
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any
from wsgiref.headers import Headers

import attrs
import pytest
from standardwebhooks.webhooks import WebhookVerificationError
from treq.testing import StubTreq
from twisted.internet.testing import MemoryReactorClock
from twisted.web.resource import Resource
from twisted.web.server import Request

from twisted_hooks.webhooks import Hooks, HTTPSender, Settings, generate_secret

ROOT = Path(__file__).resolve().parents[2]
RECEIVING = ROOT / "doc" / "receiving"
SECRET = generate_secret()


class Captured(Resource):
    """The subscriber's side, in memory: keeps each request's headers and raw body."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[list[tuple[str, str]], bytes]] = []

    def render_POST(self, request: Request) -> bytes:
        assert request.content is not None
        headers = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, values in request.requestHeaders.getAllRawHeaders()
            for value in values
        ]
        self.requests.append((headers, request.content.read()))
        return b""


def delivered(data: object, *, secret: str = SECRET, age: float = 0.0, **fields: Any) -> Any:
    """One delivery of ``data`` made by the real sender (in memory, signed ``age`` seconds
    ago): its headers, in the framework-like case-insensitive ``wsgiref`` mapping, and its
    raw body."""
    clock = MemoryReactorClock()
    clock.advance(time.time() - age)
    receiver = Captured()
    hooks = Hooks(
        clock,
        sender=HTTPSender(clock, client=StubTreq(receiver)),
        rng=random.Random(0),
        settings=attrs.evolve(Settings(), record_delay=0.0),
    )
    hooks.startService()
    hooks.subscribe("order.*", "https://shop.example/hooks", secret=secret, **fields)
    hooks.send("order.paid", data)
    clock.advance(0)
    [(headers, body)] = receiver.requests
    return Headers(headers), body


@pytest.fixture
def receiving(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """doc/receiving/verify_webhook.py, imported with WEBHOOK_SECRET set."""
    monkeypatch.setenv("WEBHOOK_SECRET", SECRET)
    spec = importlib.util.spec_from_file_location(
        "verify_webhook_example", RECEIVING / "verify_webhook.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DATA = {"order": 42, "total": "19.90", "note": "café"}


def test_verify_webhook_accepts_a_real_delivery(receiving: ModuleType) -> None:
    """A delivery made by the sender verifies with the Standard Webhooks library and
    gives back the data, whether the headers come as a framework's case-insensitive
    mapping or as http.server's message object."""
    headers, body = delivered(DATA)
    assert receiving.verify_webhook(body, headers) == DATA
    message = email.message.Message()
    for name, value in headers.items():
        message[name] = value
    assert receiving.verify_webhook(body, message) == DATA


def test_verify_webhook_refuses_what_is_not_the_raw_body(receiving: ModuleType) -> None:
    """The body parsed and serialised again (equal JSON, other bytes), or altered, does
    not verify: the page's warning about the raw body is true."""
    headers, body = delivered(DATA)
    reserialised = json.dumps(json.loads(body)).encode()
    assert json.loads(reserialised) == json.loads(body)
    for wrong in (reserialised, body.replace(b"42", b"43")):
        with pytest.raises(WebhookVerificationError):
            receiving.verify_webhook(wrong, headers)


def test_verify_webhook_refuses_old_unsigned_and_foreign_requests(
    receiving: ModuleType,
) -> None:
    """A delivery signed ten minutes ago, one signed with another secret, and one whose
    signature headers were dropped are refused."""
    old_headers, old_body = delivered(DATA, age=600)
    with pytest.raises(WebhookVerificationError, match="too old"):
        receiving.verify_webhook(old_body, old_headers)
    foreign_headers, foreign_body = delivered(DATA, secret=generate_secret())
    with pytest.raises(WebhookVerificationError):
        receiving.verify_webhook(foreign_body, foreign_headers)
    headers, body = delivered(DATA)
    del headers["webhook-signature"]
    with pytest.raises(WebhookVerificationError):
        receiving.verify_webhook(body, headers)


def test_thorn_hook_hmac_check(receiving: ModuleType) -> None:
    """``verify_hook_hmac`` accepts the sender's ``Hook-HMAC`` (sha256 by default, and a
    subscription's sha512 with ``digest="sha512"``) and refuses an altered body or the
    wrong digest."""
    headers, body = delivered(DATA)
    receiving.verify_hook_hmac(body, headers)
    with pytest.raises(WebhookVerificationError):
        receiving.verify_hook_hmac(body + b" ", headers)
    headers, body = delivered(DATA, digest="sha512")
    receiving.verify_hook_hmac(body, headers, "sha512")
    with pytest.raises(WebhookVerificationError):
        receiving.verify_hook_hmac(body, headers)


DJANGO_RUN = r"""
import json, os, sys, threading
from wsgiref.simple_server import WSGIRequestHandler, make_server

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="only-for-this-test",
    ALLOWED_HOSTS=["127.0.0.1", "testserver"],
    ROOT_URLCONF="receiver_app.urls",
    MIDDLEWARE=["django.middleware.csrf.CsrfViewMiddleware"],
    INSTALLED_APPS=[],
    LOGGING_CONFIG=None,
)
django.setup()
from django.core.wsgi import get_wsgi_application
from django.test import Client

from receiver_app import views
from twisted_hooks import sync
from twisted_hooks.webhooks import (
    RecipientPolicy, RetryPolicy, Settings, block_internal_ips, ensure_port, ensure_protocol,
    generate_secret,
)

seen = []
views.handle = lambda event, payload: seen.append([event, payload])


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


server = make_server("127.0.0.1", 0, get_wsgi_application(), handler_class=Quiet)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{server.server_port}/webhooks/orders/"

sync.setup()
policy = RecipientPolicy(
    validators=[block_internal_ips(), ensure_protocol("http"), ensure_port(server.server_port)],
    allowed_networks=["127.0.0.0/8"],
)
hooks = sync.BlockingHooks.create(
    settings=Settings(policy=policy, retry=RetryPolicy(delays=[])), timeout=30
)
hooks.subscribe("order.*", url, secret=os.environ["WEBHOOK_SECRET"])
hooks.subscribe("refund.*", url, secret=generate_secret())  # not the receiver's secret
good = hooks.send("order.paid", {"order": 42})
bad = hooks.send("refund.made", {"order": 42})
hooks.drain()
outcome = {}
for name, result in (("good", good), ("bad", bad)):
    [delivery_id] = result.delivery_ids
    delivery = sync.blocking_call(hooks.hooks.deliveries.get, delivery_id)
    attempts = sync.blocking_call(hooks.hooks.deliveries.attempts, delivery_id)
    outcome[name] = [delivery.status, [a.status_code for a in attempts]]
hooks.stop()
server.shutdown()

client = Client()
outcome["get"] = client.get("/webhooks/orders/").status_code
outcome["unsigned"] = client.post(
    "/webhooks/orders/", b'{"order": 1}', content_type="application/json"
).status_code
outcome["seen"] = seen
print(json.dumps(outcome))
"""


def test_django_view_receives_real_deliveries(tmp_path: Path) -> None:
    """doc/receiving/django_views.py in an app, served by a real WSGI server on
    127.0.0.1 behind Django's CSRF middleware: a delivery signed with its secret is
    handled (204, delivered) with its event name and data; one signed with another
    secret is refused (400, dead without being handled); a GET answers 405 and an
    unsigned POST 400."""
    app = tmp_path / "receiver_app"
    app.mkdir()
    (app / "__init__.py").write_text("")
    shutil.copyfile(RECEIVING / "verify_webhook.py", app / "verify_webhook.py")
    shutil.copyfile(RECEIVING / "django_views.py", app / "views.py")
    (app / "urls.py").write_text(
        "from django.urls import path\n\nfrom . import views\n\n"
        'urlpatterns = [path("webhooks/orders/", views.order_webhook)]\n'
    )
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")},
        "PYTHONPATH": str(tmp_path),
        "WEBHOOK_SECRET": SECRET,
    }
    result = subprocess.run(
        [sys.executable, "-c", DJANGO_RUN],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["good"] == ["delivered", [204]]
    assert outcome["bad"] == ["dead", [400]]
    assert outcome["get"] == 405
    assert outcome["unsigned"] == 400
    assert outcome["seen"] == [["order.paid", {"order": 42}]]


@pytest.mark.parametrize(
    ("snippet", "raw_body"),
    [
        ("flask_app.py", "request.get_data()"),
        ("fastapi_app.py", "body"),
    ],
)
def test_flask_and_fastapi_receivers_verify_the_raw_body(snippet: str, raw_body: str) -> None:
    """The Flask and FastAPI receivers (their frameworks are not installed here) are valid
    Python that import the tested ``verify_webhook`` and give it the raw body (FastAPI's
    ``body`` being ``await request.body()``) and the request's headers, and answer 400
    when it raises."""
    source = (RECEIVING / snippet).read_text(encoding="utf-8")
    tree = ast.parse(source)
    imports = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "verify_webhook"
    ]
    assert imports, f"{snippet} does not import verify_webhook"
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "verify_webhook"
    ]
    assert [ast.unparse(call) for call in calls] == [
        f"verify_webhook({raw_body}, request.headers)"
    ]
    if raw_body == "body":
        assert "body = await request.body()" in source
    assert "400" in source
