from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "apps.audit"
    label = "audit"

    def ready(self) -> None:
        from . import tasks  # noqa: F401 - registers the beat's sealer with Celery
