from django.apps import AppConfig


class OrgsConfig(AppConfig):
    name = "apps.orgs"
    label = "orgs"
    verbose_name = "Organizations"

    def ready(self) -> None:
        # Join the accounts app's extension points (lists, not signals): accounts never imports us.
        from . import subscribers

        subscribers.register()
