"""Suite-wide fixtures: API clients per role, tokens, and a real Celery worker process for flow tests."""

from __future__ import annotations

import os
import uuid

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

import pytest  # noqa: E402

pytest_plugins = ["tests.fixtures", "tests.visibility_world"]


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture(autouse=True)
def _cache_namespace(settings):
    """Each test counts in a namespace of its own in the shared cache: Redis and the file or database cache outlive
    a test (and a run), so login failures and throttle hits would carry over; clear() is no way out, since on a
    Redis shared with the broker it flushes the broker's queues too."""
    settings.CACHES = {
        alias: {**conf, "KEY_PREFIX": f"{conf.get('KEY_PREFIX', '')}test-{uuid.uuid4().hex[:12]}"}
        for alias, conf in settings.CACHES.items()
    }
