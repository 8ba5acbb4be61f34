"""The moderation console has no tables of its own: the overview page hangs off a proxy of BenchmarkJob so it
appears in the admin index with the other consoles."""

from apps.benchmarks.models import BenchmarkJob


class ModerationOverview(BenchmarkJob):
    class Meta:
        proxy = True
        verbose_name = "moderation overview"
        verbose_name_plural = "moderation overview"
