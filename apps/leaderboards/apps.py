from django.apps import AppConfig


class LeaderboardsConfig(AppConfig):
    name = "apps.leaderboards"
    label = "leaderboards"
    verbose_name = "Leaderboards"

    def ready(self) -> None:
        # The engine's, the registry's and the benchmark definitions' changes reach the read model only through
        # the subscribers (the lower layers never import the leaderboards).
        from . import subscribers

        subscribers.register()
