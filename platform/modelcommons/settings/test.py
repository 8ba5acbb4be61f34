"""Test settings: `make test`. DATABASE_URL / CELERY_BROKER_URL point at real servers in CI."""

import os

from .base import *  # noqa: F403
from .base import REST_FRAMEWORK, env

os.environ.setdefault("HF_HUB_OFFLINE", "1")
DEBUG = False
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MC_WEBHOOKS_ALLOW_PRIVATE = True
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {
        "anon": "100000/min",
        "user": "100000/min",
        "tokens": "100000/min",
        "jobs": "100000/min",
    },
}
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
