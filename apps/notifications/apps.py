from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "apps.notifications"
    label = "notifications"
    verbose_name = "Notifications and webhooks"

    def ready(self) -> None:
        from . import subscribers, tasks  # noqa: F401 - tasks: registers the webhook tasks with Celery

        subscribers.register()
