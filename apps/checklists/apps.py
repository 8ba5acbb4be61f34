from django.apps import AppConfig


class ChecklistsConfig(AppConfig):
    name = "apps.checklists"
    label = "checklists"
    verbose_name = "Checklists"

    def ready(self) -> None:
        # Subscribe to the registry's and the engine's extension points (lists, not signals: the list is the
        # contract). Importing here keeps the import graph one-way: checklists -> registry/benchmarks.
        from . import subscribers

        subscribers.register()
