from django.apps import AppConfig


class TransfersConfig(AppConfig):
    name = "apps.transfers"
    label = "transfers"
    verbose_name = "Downloads and resumable uploads"

    def ready(self) -> None:
        from . import tasks  # noqa: F401 - registers the beat tasks (download counts, expired uploads) with Celery
