from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "apps.notifications"
    label = "notifications"
    verbose_name = "Notifications and webhooks"

    def ready(self) -> None:
        from . import tasks  # noqa: F401 - registers the webhook tasks with Celery
        from .events import subscribe_hooks

        subscribe_hooks()
