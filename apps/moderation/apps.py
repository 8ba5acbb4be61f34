from django.apps import AppConfig


class ModerationConfig(AppConfig):
    name = "apps.moderation"
    label = "moderation"
    verbose_name = "Moderation console"

    def ready(self) -> None:
        # Runs after the admin has autodiscovered every app's admin.py, so it only fills gaps.
        from .registration import complete_admin

        complete_admin()
