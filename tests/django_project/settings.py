"""
Django settings of the test project: SQLite in a temporary directory, the blog app, and
the webhooks delivered in process to receivers on 127.0.0.1.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from twisted_hooks.webhooks import RetryPolicy, block_internal_ips, ensure_protocol

_DIRECTORY = Path(tempfile.mkdtemp(prefix="twisted_hooks_django_"))
atexit.register(shutil.rmtree, _DIRECTORY, True)

SECRET_KEY = "not-a-secret: tests only"
DEBUG = False
USE_TZ = True
ALLOWED_HOSTS = ["testserver"]
ROOT_URLCONF = "tests.django_project.urls"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "twisted_hooks.contrib.django",
    "tests.django_project.blog",
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(_DIRECTORY / "db.sqlite3"),
    }
}

TWISTED_HOOKS = {
    "MODE": "inprocess",
    # The receivers of the tests listen on 127.0.0.1, on any port.
    "ALLOWED_NETWORKS": ["127.0.0.0/8"],
    "RECIPIENT_VALIDATORS": [block_internal_ips(), ensure_protocol("http", "https")],
    "RETRY": RetryPolicy(delays=(0.2, 0.2)),
    "BASE_URL": "https://blog.example",
}
