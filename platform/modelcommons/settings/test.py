"""Test settings: `make test`. DATABASE_URL / CELERY_BROKER_URL point at real servers in CI."""

import os

from .base import *  # noqa: F403
from .base import CACHES, DATABASES, REST_FRAMEWORK, VAR_DIR, env

os.environ.setdefault("HF_HUB_OFFLINE", "1")
DEBUG = False
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MC_WEBHOOKS_ALLOW_PRIVATE = True
# Tests ping and redeliver in quick succession; the cooldown's own test sets it.
MC_WEBHOOK_PING_COOLDOWN_S = env.int("MC_WEBHOOK_PING_COOLDOWN_S", default=0)
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {
        "anon": "100000/min",
        "user": "100000/min",
        "tokens": "100000/min",
        "jobs": "100000/min",
    },
}
# SQLite tests use a file (not :memory:) so a real worker subprocess can share the test database.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
MEDIA_ROOT = env.path("MEDIA_ROOT", default=str(VAR_DIR / "test-media"))
MC_JOB_HEARTBEAT_S = env.int("MC_JOB_HEARTBEAT_S", default=1)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# The shared cache is the database cache when no Redis is configured; in tests that would add the throttles'
# queries to every API request's pinned query count. A file cache is shared across processes as well (the
# cross-process tests need that) and costs no query; tests of the database cache itself select it explicitly.
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.db.DatabaseCache":
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "test-cache"),
        }
    }
