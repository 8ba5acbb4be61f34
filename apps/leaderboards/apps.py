from django.apps import AppConfig


class LeaderboardsConfig(AppConfig):
    name = "apps.leaderboards"
    label = "leaderboards"
    verbose_name = "Leaderboards"

    def ready(self) -> None:
        from apps.benchmarks.hooks import JOB_FINISHED_HOOKS

        from . import receivers
        from .services import leaderboard_record_jobs

        # The engine tells us when a result is written or its verification changes; we keep the summary
        # table (LeaderboardEntry) up to date so that reads never aggregate over jobs. The hook takes a batch
        # of job ids and works on the set (a constant number of queries per batch).
        if leaderboard_record_jobs not in JOB_FINISHED_HOOKS:
            JOB_FINISHED_HOOKS.append(leaderboard_record_jobs)
        receivers.connect()
