"""What the platform announces, to whom: one function per event, each writing in-app notifications, queuing
e-mails and webhook deliveries. Callers run them inside the transaction of the change they announce."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.db import connections, router, transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.registry.models import Revision, Variant
from apps.registry.querysets import revision_is_public
from apps.registry.selectors import namespace_people, namespace_people_ids, namespaces_people_ids

from .choices import NotificationKind, WebhookEvent
from .models import JobAnnouncement
from .services import EventToPublish, Notice, notify, notify_many, webhook_event_publish, webhook_events_publish

if TYPE_CHECKING:
    from apps.accounts.types import Actor

logger = logging.getLogger(__name__)


def _revision_path(revision: Revision) -> str:
    return f"/api/v1/variants/{revision.variant.full_name}/revisions/{revision.number}/"


def _revision_data(revision: Revision) -> dict[str, Any]:
    variant = revision.variant
    return {
        "variant": variant.full_name,
        "revision": revision.number,
        "status": revision.status,
        "relation": variant.relation,
        "url": _revision_path(revision),
    }


def _authors(revision: Revision) -> list[User]:
    people = namespace_people(revision.variant.owner)
    if revision.created_by is not None and revision.created_by_id not in {p.pk for p in people}:
        people.append(revision.created_by)
    return people


def announce_revision_submitted(*, revision: Revision, reviewers: Iterable[User], actor: Actor | None) -> None:
    """A revision waits for review: the (assigned, or all) reviewers hear of it; webhooks get variant.submitted."""
    variant = revision.variant
    notify(
        users=reviewers,
        kind=NotificationKind.REVIEW_REQUESTED,
        title=f"Review requested: {variant.full_name} revision {revision.number}",
        body=f"{getattr(actor, 'username', 'someone')} submitted revision {revision.number} of "
        f"{variant.full_name} ({variant.relation}) for review.",
        url=_revision_path(revision),
        data=_revision_data(revision),
        exclude=_authors(revision),
    )
    webhook_event_publish(
        event=WebhookEvent.VARIANT_SUBMITTED,
        data={**_revision_data(revision), "submitted_by": getattr(actor, "username", None)},
        owner_ids=[u.pk for u in _authors(revision)],
        public=revision_is_public(revision),
        insider_ids=namespace_people_ids(variant.owner),
    )


def announce_review_assigned(*, revision: Revision, reviewer: User, actor: Actor | None) -> None:
    if actor is not None and getattr(actor, "pk", None) == reviewer.pk:
        return  # self-assignment needs no notice
    variant = revision.variant
    notify(
        users=[reviewer],
        kind=NotificationKind.REVIEW_REQUESTED,
        title=f"You were asked to review {variant.full_name} revision {revision.number}",
        body=f"Assigned by {getattr(actor, 'username', None) or 'auto-assignment'}.",
        url=_revision_path(revision),
        data=_revision_data(revision),
    )


def announce_review(*, revision: Revision, review_id: int, reviewer: User, decision: str, body: str) -> None:
    variant = revision.variant
    verb = {"approve": "approved", "request_changes": "requested changes on", "comment": "commented on"}[decision]
    notify(
        users=_authors(revision),
        kind=NotificationKind.REVIEW_DECIDED,
        title=f"{reviewer.username} {verb} {variant.full_name} revision {revision.number}",
        body=body[:4000],
        url=_revision_path(revision),
        data={**_revision_data(revision), "review": review_id, "decision": decision},
        exclude=[reviewer],
    )
    webhook_event_publish(
        event=WebhookEvent.REVIEW_DECIDED,
        data={
            **_revision_data(revision),
            "review": {"id": review_id, "reviewer": reviewer.username, "decision": decision},
        },
        owner_ids=[u.pk for u in _authors(revision)],
        public=revision_is_public(revision),
        insider_ids=namespace_people_ids(variant.owner),
    )


def announce_revision_decided(*, revision: Revision, event: str, actor: Actor | None, reason: str = "") -> None:
    """published / unpublished / rejected by a maintainer (or automatically)."""
    variant = revision.variant
    word = {
        WebhookEvent.VARIANT_PUBLISHED: "published",
        WebhookEvent.VARIANT_UNPUBLISHED: "unpublished",
        WebhookEvent.VARIANT_REJECTED: "rejected",
    }[event]  # type: ignore[index]
    by = getattr(actor, "username", None) or "the platform (the publication gate holds)"
    kind = (
        NotificationKind.REVIEW_DECIDED
        if event == WebhookEvent.VARIANT_REJECTED
        else NotificationKind.VARIANT_PUBLISHED
    )
    notify(
        users=_authors(revision),
        kind=kind,
        title=f"{variant.full_name} revision {revision.number} was {word}",
        body=f"{word.capitalize()} by {by}." + (f"\n\nReason: {reason}" if reason else ""),
        url=_revision_path(revision),
        data={**_revision_data(revision), "reason": reason},
        exclude=[actor] if isinstance(actor, User) else (),
    )
    webhook_event_publish(
        event=event,
        data={**_revision_data(revision), "by": getattr(actor, "username", None), "reason": reason},
        owner_ids=[u.pk for u in _authors(revision)],
        # An unpublished revision was public until now: its subscribers hear it went away.
        public=revision_is_public(revision) or event == WebhookEvent.VARIANT_UNPUBLISHED,
        insider_ids=namespace_people_ids(variant.owner),
    )


def announce_flag_resolved(
    *,
    flag_id: int,
    variant: Variant,
    kind: str,
    action: str,
    status: str,
    reason: str,
    reporter: User | None,
    actor: Actor | None,
) -> None:
    """A moderator dismissed, confirmed or unpublished on a flag, or asked the author to answer."""
    if action == "ask_author":
        notify(
            users=namespace_people(variant.owner),
            kind=NotificationKind.FLAG_RESOLVED,
            title=f"A moderator asks you about a {kind.replace('_', ' ')} flag on {variant.full_name}",
            body=f"{reason}\n\nAnswer with POST /api/v1/flags/{flag_id}/respond/.",
            url=f"/api/v1/flags/{flag_id}/",
            data={"flag": flag_id, "variant": variant.full_name, "action": action},
        )
    else:
        notify(
            users=[*namespace_people(variant.owner), reporter],
            kind=NotificationKind.FLAG_RESOLVED,
            title=f"Flag on {variant.full_name} resolved: {action}",
            body=f"The {kind.replace('_', ' ')} flag was resolved ({action}).\n\nReason: {reason}",
            url=f"/api/v1/flags/{flag_id}/",
            data={"flag": flag_id, "variant": variant.full_name, "action": action},
            exclude=[actor] if isinstance(actor, User) else (),
        )
    webhook_event_publish(
        event=WebhookEvent.FLAG_RESOLVED,
        data={
            "flag": flag_id,
            "variant": variant.full_name,
            "kind": kind,
            "action": action,
            "status": status,
            "reason": reason,
        },
        owner_ids=namespace_people_ids(variant.owner),
        public=variant.is_public,
    )


TERMINAL_JOB_STATES = ("succeeded", "failed", "cancelled", "timed_out")


def _announce_once(jobs: list[Any]) -> set[int]:
    """Mark these jobs' finishes announced; return the ids of those not announced before.

    One `INSERT ... ON CONFLICT DO NOTHING RETURNING` per 200 jobs (PostgreSQL, SQLite >= 3.35): the unique
    constraint on (job, finished_at) decides, so a hook that runs twice at the same moment announces once (the
    second insert waits for the first transaction and then inserts nothing)."""
    meta = JobAnnouncement._meta
    by_name = {field.name: field for field in meta.concrete_fields}
    fields = [by_name[name] for name in ("job_id", "finished_at", "status", "created_at")]
    connection = connections[router.db_for_write(JobAnnouncement)]
    job_column, finished_column, *_ = columns = [connection.ops.quote_name(str(field.column)) for field in fields]
    now = timezone.now()
    # Only quoted identifiers from the model's meta are formatted in; every value is a parameter.
    sql = (
        f"INSERT INTO {connection.ops.quote_name(meta.db_table)} ({', '.join(columns)}) VALUES {{rows}} "  # noqa: S608
        f"ON CONFLICT ({job_column}, {finished_column}) DO NOTHING RETURNING {job_column}"
    )
    fresh: set[int] = set()
    with connection.cursor() as cursor:
        for start in range(0, len(jobs), 200):
            chunk = jobs[start : start + 200]
            params = [
                field.get_db_prep_save(value, connection)
                for job in chunk
                for field, value in zip(fields, (job.pk, job.finished_at, job.status, now), strict=True)
            ]
            cursor.execute(sql.format(rows=", ".join(["(%s, %s, %s, %s)"] * len(chunk))), params)
            fresh.update(int(row[0]) for row in cursor.fetchall())
    return fresh


def _job_finished_messages(job: Any, people_of: dict[int, list[int]]) -> tuple[Notice, EventToPublish]:
    """The notice and the webhook event of a finished job; `people_of` maps the variant's owner to the people who
    speak for its namespace (`namespaces_people_ids`)."""
    variant = job.revision.variant
    result = getattr(job, "result", None)
    data: dict[str, Any] = {
        "job": job.pk,
        "status": job.status,
        "variant": variant.full_name,
        "revision": job.revision.number,
        "benchmark": job.benchmark.slug,
        "benchmark_version": job.benchmark_version,
        "metrics": result.metrics if result is not None else None,
        "failure": {"reason": job.failure_reason, "message": job.failure_message[:1000]}
        if job.failure_reason
        else None,
        "url": f"/api/v1/jobs/{job.pk}/",
    }
    summary = (
        ", ".join(f"{k}={v:.4g}" for k, v in sorted((result.metrics or {}).items()) if isinstance(v, int | float))
        if result is not None
        else f"{job.failure_reason}: {job.failure_message[:500]}"
    )
    notice = Notice(
        users=(job.submitted_by,),
        kind=NotificationKind.JOB_FINISHED,
        title=f"Job {job.pk} {job.status}: {job.benchmark.slug} on {variant.full_name}@{job.revision.number}",
        body=summary,
        url=f"/api/v1/jobs/{job.pk}/",
        data=data,
    )
    # A job is visible iff its revision is: on a draft, only the variant's insiders (and staff) hear of it, even
    # when someone else submitted it while the revision was public.
    people = tuple(people_of[variant.owner_id])
    event = EventToPublish(
        event=WebhookEvent.JOB_FINISHED,
        data=data,
        owner_ids=(job.submitted_by_id, *people),
        public=revision_is_public(job.revision),
        insider_ids=people,
    )
    return notice, event


# The columns a job-finished announcement reads (the job, its benchmark's slug, the submitter as a recipient, the
# revision and variant it names, the owner whose namespace hears of it, the result's metrics). A column left out
# would be read by one query per job: test_job_announcements' flat query count catches it.
_ANNOUNCED_JOB_FIELDS = (
    "id",
    "status",
    "finished_at",
    "verifies",
    "benchmark_version",
    "failure_reason",
    "failure_message",
    "benchmark__slug",
    "submitted_by__username",
    "submitted_by__email",
    "submitted_by__is_active",
    "revision__number",
    "revision__status",
    "revision__variant__name",
    "revision__variant__owner__username",
    "revision__variant__owner__is_organization",
    "result__metrics",
)


def announce_jobs_finished(job_ids: list[int]) -> None:
    """JOB_FINISHED_HOOKS subscriber: each submitter hears how their job ended; webhooks get job.finished.

    Set-based: a batch costs the same few queries whatever its size (the jobs with what the messages need, the
    announcement marks, the preferences, the notifications, the subscriptions, the deliveries). Each finish is
    announced once however often the hooks run; verification re-runs and unknown or unfinished jobs are skipped."""
    from apps.benchmarks.models import BenchmarkJob

    ids = sorted({int(pk) for pk in job_ids})
    if not ids:
        return
    jobs = [
        job
        for job in BenchmarkJob.objects.select_related(
            "benchmark", "submitted_by", "revision__variant__owner", "result"
        )
        # Only what the messages read: loading every column of five tables was most of the hook's time in a
        # worker (issue 16), and a variant's card (up to MC_CARD_MAX_CHARS) would travel once per finished job.
        .only(*_ANNOUNCED_JOB_FIELDS)
        .filter(pk__in=ids)
        .order_by("pk")
        # A verification re-run's outcome shows on the original result, not as a job of its own.
        if job.status in TERMINAL_JOB_STATES and job.finished_at is not None and job.verifies_id is None
    ]
    if not jobs:
        return
    with transaction.atomic():
        fresh = _announce_once(jobs)
        announced = [job for job in jobs if job.pk in fresh]
        people_of = namespaces_people_ids(
            {job.revision.variant.owner_id: job.revision.variant.owner for job in announced}.values()
        )
        messages = [_job_finished_messages(job, people_of) for job in announced]
        if not messages:
            return  # every finish was announced already (hooks may run more than once)
        notify_many(notice for notice, _ in messages)
        webhook_events_publish(event for _, event in messages)
