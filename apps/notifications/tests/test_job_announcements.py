"""The job-finished hook on batches: one call for a worker's batch writes exactly what one call per job wrote
(announcement marks, notifications and e-mails as each user's preferences say, webhook deliveries), announces each
finish once however often it runs, and costs the same few queries for 5 jobs as for 20."""

from __future__ import annotations

import threading
import time

import pytest
from django.core import mail
from django.db import connection, transaction

from apps.checklists.tests.factories import finished_job, finished_jobs, make_users, submitted_revisions
from apps.core.testing import count_queries
from apps.notifications import services
from apps.notifications.events import announce_jobs_finished
from apps.notifications.models import JobAnnouncement, Notification, WebhookDelivery

pytestmark = pytest.mark.django_db


@pytest.fixture
def dispatched(monkeypatch):  # type: ignore[no-untyped-def]
    """Delivery ids handed to Celery after commit (no broker in these tests)."""
    from celery import current_app

    sent: list[int] = []
    monkeypatch.setattr(current_app, "send_task", lambda name, args=None, **kw: sent.append(args[0]))
    return sent


def _snapshot(sent: list[int]) -> dict[str, list[tuple]]:  # type: ignore[type-arg]
    """What the hook wrote, without ids, clocks or message ids (they differ between two runs by nature)."""
    deliveries = list(WebhookDelivery.objects.all())
    return {
        "announcements": sorted(JobAnnouncement.objects.values_list("job_id", "finished_at", "status")),
        "notifications": sorted(
            (n.user_id, n.kind, n.title, n.body, n.url, repr(sorted(n.data.items())))
            # The hook writes job notices only (the demo world has others, e.g. organization invitations).
            for n in Notification.objects.filter(kind="job_finished")
        ),
        "deliveries": sorted(
            (
                d.subscription_id,
                d.event,
                d.status,
                d.max_attempts,
                d.payload["type"],
                repr(sorted(d.payload["data"].items())),
            )
            for d in deliveries
        ),
        "dispatched": [(len(sent), sorted(sent) == sorted(d.pk for d in deliveries))],
        "emails": sorted((m.subject, m.body, tuple(m.to)) for m in mail.outbox),
    }


@pytest.fixture
def mixed_batch(digits_world, make_user):  # type: ignore[no-untyped-def]
    """Jobs of every kind the engine hands over, and subscribers of every scope."""
    benchmark, reviewer = digits_world["benchmark"], digits_world["users"]["reviewer1"]
    owners = make_users(3, prefix="owner")
    quiet, mute, gone = make_user("quiet"), make_user("mute"), make_user("gone", is_active=False)
    services.notification_preferences_set(user=quiet, changes={"job_finished": {"email": False}})
    services.notification_preferences_set(user=mute, changes={"job_finished": {"in_app": False}})
    revisions = submitted_revisions(6, owners=owners)
    # revisions[0] is published: a job on it is public. The others are under review: a job on one of them is
    # visible to the variant's owner, reviewers and maintainers only (issue 12), whoever submitted it.
    type(revisions[0]).objects.filter(pk=revisions[0].pk).update(status="published")
    revisions[0].variant.is_public = True
    revisions[0].variant.save(update_fields=["is_public"])
    ok = finished_job(revisions[0], benchmark, owners[0])
    jobs = [
        ok,
        finished_job(revisions[1], benchmark, owners[1], status="failed"),
        # Not the owner, and the revision is not public: the owner hears of it on every channel; `quiet` gets its
        # notification, but its webhooks may not know (a job is visible iff its revision is).
        finished_job(revisions[2], benchmark, quiet, status="timed_out"),
        finished_job(revisions[3], benchmark, mute),
        finished_job(revisions[4], benchmark, gone, status="cancelled"),
        finished_job(revisions[5], benchmark, owners[2]),
        finished_job(revisions[0], benchmark, reviewer, verifies=ok),  # a verification re-run: not announced
        finished_job(revisions[1], benchmark, owners[1], status="running"),  # not finished: not announced
    ]
    services.webhook_create(owner=owners[0], url="http://127.0.0.1:9/own", events=["job.finished"])
    services.webhook_create(owner=owners[1], url="http://127.0.0.1:9/all", events=["*"])
    services.webhook_create(owner=owners[2], url="http://127.0.0.1:9/other", events=["variant.submitted"])
    services.webhook_create(owner=quiet, url="http://127.0.0.1:9/visible", events=["*"], scope="visible")
    services.webhook_create(owner=reviewer, url="http://127.0.0.1:9/reviewer", events=["job.finished"], scope="visible")
    return [job.pk for job in jobs] + [max(job.pk for job in jobs) + 1000]  # and an id nobody knows


def test_a_batch_writes_what_one_call_per_job_wrote(mixed_batch, dispatched, django_capture_on_commit_callbacks):
    mail.outbox.clear()
    point = transaction.savepoint()
    with django_capture_on_commit_callbacks(execute=True):
        for job_id in mixed_batch:
            announce_jobs_finished([job_id])
    one_by_one = _snapshot(dispatched)
    transaction.savepoint_rollback(point)
    mail.outbox.clear()
    dispatched.clear()
    assert not JobAnnouncement.objects.exists() and not Notification.objects.filter(kind="job_finished").exists()
    with django_capture_on_commit_callbacks(execute=True):
        announce_jobs_finished(list(reversed(mixed_batch)))
    batched = _snapshot(dispatched)
    assert batched == one_by_one
    # Six finishes announced; the re-run, the running job and the unknown id are not.
    assert len(batched["announcements"]) == 6
    assert len(batched["notifications"]) == 4  # `mute` turned in-app off, `gone` is inactive
    assert len(batched["emails"]) == 4  # `quiet` turned e-mail off, `gone` is inactive
    assert batched["dispatched"] == [(len(batched["deliveries"]), True)] and len(batched["deliveries"]) == 11


def test_deliveries_go_to_the_subscriptions_that_may_know(mixed_batch, dispatched):
    announce_jobs_finished(mixed_batch)
    got = {}
    for d in WebhookDelivery.objects.select_related("subscription"):
        got.setdefault(d.subscription.url.rsplit("/", 1)[1], set()).add(d.payload["data"]["job"])
    jobs = sorted(JobAnnouncement.objects.values_list("job_id", flat=True))
    # own: the owner's jobs only; visible (not privileged): the job on the published revision only, not the one it
    # submitted on a revision under review (issue 12); a reviewer's visible subscription: every job.
    assert got["own"] == {jobs[0], jobs[3]} and got["all"] == {jobs[1], jobs[4]}
    assert got["visible"] == {jobs[0]} and got["reviewer"] == set(jobs)
    assert "other" not in got


def test_each_finish_is_announced_once_however_often_the_hooks_run(mixed_batch, dispatched):
    announce_jobs_finished(mixed_batch[:2])
    announce_jobs_finished(mixed_batch)
    announce_jobs_finished(mixed_batch)
    counts = (JobAnnouncement.objects.count(), Notification.objects.count(), WebhookDelivery.objects.count())
    assert counts[0] == 6
    announce_jobs_finished(mixed_batch[:1])
    assert (JobAnnouncement.objects.count(), Notification.objects.count(), WebhookDelivery.objects.count()) == counts
    # A job that finishes again (a new finish time) is announced again, once.
    from django.utils import timezone

    from apps.benchmarks.models import BenchmarkJob

    BenchmarkJob.objects.filter(pk=mixed_batch[0]).update(finished_at=timezone.now())
    announce_jobs_finished(mixed_batch)
    announce_jobs_finished(mixed_batch)
    assert JobAnnouncement.objects.count() == 7 and Notification.objects.count() == counts[1] + 1


def test_nothing_to_announce_costs_one_query(digits_world, django_assert_num_queries):
    with django_assert_num_queries(1):
        announce_jobs_finished([10_000_001, 10_000_002])
    with django_assert_num_queries(0):
        announce_jobs_finished([])


@pytest.mark.parametrize("one_submitter", [False, True], ids=["distinct submitters", "one submitter"])
def test_a_batch_costs_the_same_queries_for_5_and_20_jobs(digits_world, dispatched, one_submitter):
    owners = make_users(1 if one_submitter else 20)
    for owner in owners[:3]:
        services.webhook_create(owner=owner, url="http://127.0.0.1:9/", events=["job.finished"])
    services.webhook_create(
        owner=digits_world["users"]["reviewer1"], url="http://127.0.0.1:9/r", events=["*"], scope="visible"
    )
    services.notification_preferences_set(user=owners[0], changes={"job_finished": {"email": False}})
    cost = {}
    for n in (5, 20):
        jobs = finished_jobs(n, benchmark=digits_world["benchmark"], owners=owners, prefix=f"q{n}")
        before = Notification.objects.count()
        with count_queries() as queries:
            announce_jobs_finished([job.pk for job in jobs])
        assert Notification.objects.count() == before + n
        cost[n] = len(queries)
    # The jobs, the announcement marks, preferences, notifications, subscriptions, privileged owners, deliveries
    # (and the savepoint around them).
    assert cost[5] == cost[20] == 9, cost


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs concurrent transactions (PostgreSQL)")
@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_of_the_hook_announce_once(digits_world, dispatched, monkeypatch):
    """Two processes run the hook for the same batch at the same moment: the second one's insert waits for the
    first transaction, then finds every finish announced and writes nothing."""
    from apps.notifications import events

    owners = make_users(3)
    ids = [job.pk for job in finished_jobs(3, benchmark=digits_world["benchmark"], owners=owners)]
    first_inserted, second_started = threading.Event(), threading.Event()
    real = events.notify_many

    def slow_notify_many(notices):  # type: ignore[no-untyped-def]
        if threading.current_thread().name == "first":
            first_inserted.set()
            second_started.wait(5)
            threading.Event().wait(0.5)  # the second run is now blocked on our uncommitted marks
        return real(notices)

    monkeypatch.setattr(events, "notify_many", slow_notify_many)
    errors: list[BaseException] = []
    took: dict[str, float] = {}

    def run(wait_for: threading.Event | None) -> None:
        try:
            if wait_for is not None:
                wait_for.wait(5)
                second_started.set()
            start = time.monotonic()
            announce_jobs_finished(ids)
            took[threading.current_thread().name] = time.monotonic() - start
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=run, args=(None,), name="first"),
        threading.Thread(target=run, args=(first_inserted,), name="second"),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert took["second"] >= 0.4, took  # it waited for the first run's commit
    assert JobAnnouncement.objects.filter(job_id__in=ids).count() == 3
    assert Notification.objects.filter(kind="job_finished").count() == 3


def test_the_hook_does_not_read_the_variants_cards(digits_world, dispatched):
    # a card may hold MC_CARD_MAX_CHARS; the messages only name the variant, so the card stays in the database
    from django.test.utils import CaptureQueriesContext

    from apps.registry.models import Variant

    revision = submitted_revisions(1, owners=make_users(1, prefix="carded"))[0]
    Variant.objects.filter(pk=revision.variant_id).update(card="# A long card\n\n" + "words " * 20_000)
    job = finished_job(revision, digits_world["benchmark"], revision.variant.owner)
    with CaptureQueriesContext(connection) as captured:
        announce_jobs_finished([job.pk])
    assert Notification.objects.filter(kind="job_finished", data__job=job.pk).exists()
    assert captured.captured_queries and not any("words words" in q["sql"] for q in captured.captured_queries)
    column = connection.ops.quote_name("card")
    assert not any(f".{column}" in q["sql"] for q in captured.captured_queries), captured.captured_queries[0]["sql"]


def test_jobs_on_organizations_variants_cost_the_same_queries_for_5_and_20_and_reach_their_members(
    digits_world, dispatched
):
    """The people who speak for an organization's namespace are read once for the batch, not once per job."""
    from apps.orgs.models import Membership
    from apps.orgs.services import org_create

    admins = make_users(2, prefix="orgadmin")
    members = make_users(2, prefix="orgmember")
    orgs = [org_create(name=f"lab{i}", actor=admin) for i, admin in enumerate(admins)]
    for org, member in zip(orgs, members, strict=True):
        Membership.objects.create(org=org, user=member, role="member")
    watcher = services.webhook_create(owner=members[0], url="http://127.0.0.1:9/m", events=["job.finished"])
    cost = {}
    for n in (5, 20):
        revisions = submitted_revisions(n, owners=[org.account for org in orgs], prefix=f"o{n}")
        jobs = [finished_job(revision, digits_world["benchmark"], admins[0]) for revision in revisions]
        with count_queries() as queries:
            announce_jobs_finished([job.pk for job in jobs])
        cost[n] = len(queries)
        # a draft's job reaches the organization's insiders' webhooks: the member's, for lab0's variants only
        delivered = WebhookDelivery.objects.filter(subscription=watcher, payload__data__job__in=[j.pk for j in jobs])
        assert delivered.count() == len([r for r in revisions if r.variant.owner_id == orgs[0].account_id])
    assert cost[5] == cost[20], cost
