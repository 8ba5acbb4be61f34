from typing import Any

from django.core.management.base import BaseCommand

from apps.leaderboards.services import leaderboard_rebuild


class Command(BaseCommand):
    help = "Recompute every leaderboard entry and suite score from jobs, results, variants and marks."

    def handle(self, *args: Any, **options: Any) -> None:
        counts = leaderboard_rebuild(stdout=self.stdout.write)
        self.stdout.write(
            self.style.SUCCESS(
                f"leaderboards rebuilt: {counts['entries']} entries, {counts['suites']} suites, "
                f"{counts['removed']} stale entries removed"
            )
        )
