"""Visibility and the named slices of the job table the dispatcher and the API share."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from django.db import models
from django.db.models import Q

from .choices import ACTIVE_JOB_STATUSES, JobStatus

if TYPE_CHECKING:
    from apps.accounts.types import Actor, Viewer

    from .models import Benchmark, BenchmarkJob  # noqa: F401 - named in the QuerySet generics below


class BenchmarkQuerySet(models.QuerySet["Benchmark"]):
    def visible_to(self, user: Viewer) -> BenchmarkQuerySet:
        # Benchmarks are public definitions; retired ones stay readable so old results keep their meaning.
        return self


class BenchmarkJobQuerySet(models.QuerySet["BenchmarkJob"]):
    def visible_to(self, user: Viewer) -> BenchmarkJobQuerySet:
        """A job (its result, bundle and log tail) is visible iff its revision is (apps.registry.querysets):
        jobs on published revisions for everyone, jobs on any other revision for the variant's insiders only."""
        from apps.registry.querysets import revision_visibility_q

        condition = revision_visibility_q(user, "revision__")
        return self if condition is None else self.filter(condition)

    def active(self) -> BenchmarkJobQuerySet:
        return self.filter(status__in=ACTIVE_JOB_STATUSES)

    def buffered(self, queue: str) -> BenchmarkJobQuerySet:
        """Sent to the broker and not claimed yet: the messages the dispatcher keeps few of."""
        return self.filter(queue=queue, status=JobStatus.QUEUED, dispatched_at__isnull=False)

    def in_flight(self, queue: str) -> BenchmarkJobQuerySet:
        """Buffered or running: what a submitter already holds of a queue's capacity."""
        return self.filter(queue=queue).filter(
            Q(status=JobStatus.RUNNING) | Q(status=JobStatus.QUEUED, dispatched_at__isnull=False)
        )

    def waiting(self, queue: str, now: datetime) -> BenchmarkJobQuerySet:
        """Queued, not sent yet, and past any retry backoff: what the dispatcher chooses from."""
        return self.filter(
            queue=queue, status=JobStatus.QUEUED, dispatched_at__isnull=True, cancel_requested=False
        ).filter(Q(not_before__isnull=True) | Q(not_before__lte=now))

    def counting_against_quota(self, namespace: Actor | int) -> BenchmarkJobQuerySet:
        """The jobs charged to a namespace (a user, or an organization's account) that count against its quota."""
        return self.filter(charged_to=namespace, counts_against_quota=True)
