"""The Celery application. Workers are started with `celery -A modelcommons worker`."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "modelcommons.settings.dev")

app = Celery("modelcommons")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["workers"])
