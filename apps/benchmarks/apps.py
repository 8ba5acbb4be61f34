from django.apps import AppConfig


class BenchmarksConfig(AppConfig):
    name = "apps.benchmarks"
    label = "benchmarks"

    def ready(self) -> None:
        from . import subscribers

        subscribers.register()
