"""Quotas and fair share per namespace (issue 14): which namespace a job is charged to, an organization's limits
(its own, else MC_ORG_*), the 429 messages naming it, batches, re-runs, and namespaces taking turns in dispatch."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.benchmarks import dispatch, services
from apps.benchmarks.models import BenchmarkJob, SubmitterProfile
from apps.benchmarks.selectors import queue_positions, quota_status
from apps.core.errors import QuotaExceeded
from apps.orgs import services as org_services
from apps.orgs.tests.factories import add_member, make_org
from workers.runners.base import RunResult

pytestmark = pytest.mark.django_db


def submit(user, variant, benchmark, **config):  # type: ignore[no-untyped-def]
    return services.job_submit(actor=user, revision=variant.current_revision, benchmark=benchmark, config=config)


def finish(job, worker="w1@h", compute_seconds=None):  # type: ignore[no-untyped-def]
    claimed = services.job_claim(job_id=job.pk, worker=worker)
    assert claimed is not None
    services.job_complete(
        job_id=job.pk,
        attempt=claimed.attempts,
        result=RunResult(
            metrics={"ok": 1.0},
            stderr={},
            samples=1,
            duration_s=0.1,
            runner="noop",
            runner_version="1",
            environment={},
        ),
    )
    if compute_seconds is not None:
        BenchmarkJob.objects.filter(pk=job.pk).update(compute_seconds=compute_seconds)


@pytest.fixture
def lab(alice, bob, make_user, make_variant):  # type: ignore[no-untyped-def]
    """harbour-lab: alice admin, bob member, its variant lab-model; carol is an outsider with a variant of her own."""
    org = make_org(alice, "harbour-lab")
    add_member(org, bob, by=alice)
    carol = make_user("carol")
    return {
        "org": org,
        "account": org.account,
        "variant": make_variant(org.account, "lab-model"),
        "carol": carol,
        "carol_variant": make_variant(carol, "carols"),
        "bob_variant": make_variant(bob, "bobs"),
    }


# --- which namespace pays -----------------------------------------------------------------------------------


def test_members_jobs_on_the_orgs_variant_are_charged_to_the_org(lab, alice, bob, noop):
    by_admin, _ = submit(alice, lab["variant"], noop, steps=1)
    by_member, _ = submit(bob, lab["variant"], noop, steps=2)
    assert by_admin.charged_to_id == by_member.charged_to_id == lab["account"].pk
    assert by_member.submitted_by_id == bob.pk
    event = AuditEvent.objects.get(verb="job.submit", target_id=str(by_member.pk))
    assert event.after["charged_to"] == "harbour-lab"
    # the org's account has its own profile row, the one the quota check locks
    assert SubmitterProfile.objects.filter(user=lab["account"]).exists()


def test_an_outsider_on_the_orgs_public_variant_pays_themself(lab, noop):
    job, _ = submit(lab["carol"], lab["variant"], noop, steps=1)
    assert job.charged_to_id == lab["carol"].pk


def test_own_variants_are_charged_to_their_owner_even_for_org_members(lab, bob, noop):
    job, _ = submit(bob, lab["bob_variant"], noop, steps=1)
    assert job.charged_to_id == bob.pk
    mine, _ = submit(lab["carol"], lab["carol_variant"], noop, steps=1)
    assert mine.charged_to_id == lab["carol"].pk
    assert services.job_namespace(bob, lab["variant"]) == lab["account"]
    assert services.job_namespace(lab["carol"], lab["variant"]) == lab["carol"]


def test_a_former_member_pays_themself(lab, alice, bob, noop):
    org_services.member_remove(org=lab["org"], username="bob", actor=alice)
    job, _ = submit(bob, lab["variant"], noop, steps=1)
    assert job.charged_to_id == bob.pk


# --- the organization's quota --------------------------------------------------------------------------------


def test_org_quota_uses_the_platform_default_then_the_orgs_own(lab, alice, bob, maintainer, noop, settings):
    settings.MC_ORG_MAX_QUEUED_JOBS = 3
    settings.MC_DEFAULT_MAX_ACTIVE_JOBS = 100
    submit(alice, lab["variant"], noop, steps=1)
    submit(bob, lab["variant"], noop, steps=2)
    submit(bob, lab["variant"], noop, steps=3)
    with pytest.raises(QuotaExceeded) as refused:
        submit(alice, lab["variant"], noop, steps=4)
    assert refused.value.detail.startswith("harbour-lab has 3 jobs queued or running; its limit is 3.")
    assert refused.value.extra["limit"] == "max_active_jobs" and refused.value.extra["charged_to"] == "harbour-lab"
    assert refused.value.retry_after >= 1
    # the members' own quotas are untouched, and so is an outsider's use of the org's variant
    assert quota_status(user=bob)["active_jobs"] == 0
    assert submit(bob, lab["bob_variant"], noop, steps=1)[1]
    assert submit(lab["carol"], lab["variant"], noop, steps=9)[1]
    # a maintainer raises the org's own limit
    org_services.org_quota_set(org=lab["org"], actor=maintainer, max_queued_jobs=4)
    assert submit(alice, lab["variant"], noop, steps=4)[1]
    with pytest.raises(QuotaExceeded, match="harbour-lab has 4 jobs queued or running; its limit is 4"):
        submit(bob, lab["variant"], noop, steps=5)


def test_a_users_message_still_speaks_to_them(alice, alice_variant, noop, settings):
    settings.MC_DEFAULT_MAX_ACTIVE_JOBS = 1
    submit(alice, alice_variant, noop, steps=1)
    with pytest.raises(QuotaExceeded, match="^You have 1 jobs queued or running; the limit is 1") as refused:
        submit(alice, alice_variant, noop, steps=2)
    assert refused.value.extra["charged_to"] == "alice"


def test_org_compute_budget_counts_every_members_jobs(lab, alice, bob, maintainer, noop, settings):
    org_services.org_quota_set(org=lab["org"], actor=maintainer, daily_compute_seconds=100)
    first, _ = submit(alice, lab["variant"], noop, steps=1)
    finish(first, compute_seconds=60)
    second, _ = submit(bob, lab["variant"], noop, steps=2)
    finish(second, compute_seconds=50)
    with pytest.raises(QuotaExceeded) as refused:
        submit(bob, lab["variant"], noop, steps=3)
    assert refused.value.detail == "harbour-lab used 110 of its 100 compute seconds in the last 24 hours."
    assert refused.value.extra["limit"] == "daily_compute_seconds"
    # frees when the first job leaves the rolling day: (finished_at + 1 day - now), about a day
    assert 23 * 3600 < refused.value.retry_after <= 24 * 3600
    BenchmarkJob.objects.filter(pk=first.pk).update(finished_at=timezone.now() - timedelta(days=2))
    assert submit(bob, lab["variant"], noop, steps=3)[1]


def test_quota_usage_counts_the_namespaces_active_jobs_and_its_rolling_days_compute(lab, alice, bob, noop):
    """What /api/v1/me/ and an org's detail show (one statement of SQL): queued or running jobs charged to the
    namespace, and the compute of its jobs finished in the last 24 hours; nothing else counts."""
    from apps.benchmarks.selectors import org_quota_usage, quota_usage

    account = lab["account"]
    assert quota_usage(account) == (0, 0.0) and quota_usage(account.pk) == (0, 0.0)
    recent, _ = submit(alice, lab["variant"], noop, steps=1)
    finish(recent, compute_seconds=12.25)
    old, _ = submit(alice, lab["variant"], noop, steps=2)
    finish(old, compute_seconds=100)
    BenchmarkJob.objects.filter(pk=old.pk).update(finished_at=timezone.now() - timedelta(days=1, minutes=1))
    queued, _ = submit(bob, lab["variant"], noop, steps=3)
    running, _ = submit(bob, lab["variant"], noop, steps=4)
    assert services.job_claim(job_id=running.pk, worker="w1@h") is not None
    exempt, _ = submit(bob, lab["variant"], noop, steps=5)
    BenchmarkJob.objects.filter(pk=exempt.pk).update(counts_against_quota=False)
    submit(bob, lab["bob_variant"], noop, steps=6)  # bob's own namespace pays for this one
    assert quota_usage(account) == (2, 12.25)
    assert org_quota_usage(account.pk) == {"queued_or_running": 2, "compute_seconds_used": 12.25}
    assert quota_usage(bob) == (1, 0.0)
    assert quota_status(user=bob)["active_jobs"] == 1


def test_org_quota_is_maintainers_business_and_audited(lab, alice, maintainer):
    from apps.core.errors import PermissionDenied, ValidationFailed

    with pytest.raises(PermissionDenied):
        org_services.org_quota_set(org=lab["org"], actor=alice, max_queued_jobs=100)
    with pytest.raises(ValidationFailed) as bad:
        org_services.org_quota_set(org=lab["org"], actor=maintainer, max_queued_jobs=-1, daily_compute_seconds="x")
    assert set(bad.value.errors) == {"max_queued_jobs", "daily_compute_seconds"}
    org = org_services.org_quota_set(org=lab["org"], actor=maintainer, max_queued_jobs=7, daily_compute_seconds=60)
    assert (org.max_queued_jobs, org.daily_compute_seconds) == (7, 60)
    event = AuditEvent.objects.get(verb="org.quota")
    assert event.before == {"max_queued_jobs": None, "daily_compute_seconds": None}
    assert event.after == {"max_queued_jobs": 7, "daily_compute_seconds": 60}
    org_services.org_quota_set(org=org, actor=maintainer, max_queued_jobs=7)  # no change: no event
    org = org_services.org_quota_set(org=org, actor=maintainer, max_queued_jobs=None)
    assert org.max_queued_jobs is None and AuditEvent.objects.filter(verb="org.quota").count() == 2


# --- batches -----------------------------------------------------------------------------------------------


def test_a_batch_is_charged_item_by_item_and_names_the_org_it_would_overfill(lab, bob, maintainer, noop, settings):
    settings.MC_DEFAULT_MAX_ACTIVE_JOBS = 100
    org_services.org_quota_set(org=lab["org"], actor=maintainer, max_queued_jobs=2)
    org_rev, own_rev = lab["variant"].current_revision, lab["bob_variant"].current_revision
    with pytest.raises(QuotaExceeded) as refused:
        services.jobs_submit_batch(
            actor=bob,
            items=[(org_rev, noop, {"steps": 1}), (org_rev, noop, {"steps": 2}), (org_rev, noop, {"steps": 3})],
        )
    assert refused.value.detail == (
        "This batch adds 3 jobs to the 0 that harbour-lab has queued or running; its limit is 2 (2 would fit)."
    )
    assert not BenchmarkJob.objects.exists()  # all or nothing
    outcome = services.jobs_submit_batch(
        actor=bob, items=[(org_rev, noop, {"steps": 1}), (own_rev, noop, {"steps": 1}), (org_rev, noop, {"steps": 2})]
    )
    assert [job.charged_to_id for job, _ in outcome] == [lab["account"].pk, bob.pk, lab["account"].pk]
    assert all(created for _, created in outcome)
    # the org is now full; the same batch's own-variant items alone still fit
    with pytest.raises(QuotaExceeded, match="harbour-lab has queued or running"):
        services.jobs_submit_batch(actor=bob, items=[(own_rev, noop, {"steps": 2}), (org_rev, noop, {"steps": 3})])
    assert services.jobs_submit_batch(actor=bob, items=[(own_rev, noop, {"steps": 2})])[0][1]


def test_a_users_batch_message_is_unchanged(alice, alice_variant, noop, settings):
    settings.MC_DEFAULT_MAX_ACTIVE_JOBS = 1
    rev = alice_variant.current_revision
    with pytest.raises(QuotaExceeded, match=r"^This batch adds 2 jobs to your 0 queued or running; the limit is 1"):
        services.jobs_submit_batch(actor=alice, items=[(rev, noop, {"steps": 1}), (rev, noop, {"steps": 2})])


# --- re-runs ------------------------------------------------------------------------------------------------


def test_a_members_rerun_is_charged_to_the_org_and_spot_checks_follow_the_original(lab, bob, noop, settings):
    job, _ = submit(bob, lab["variant"], noop, steps=1)
    finish(job)
    check, created = services.job_verify(job=job, actor=bob)
    assert created and check.charged_to_id == lab["account"].pk and check.counts_against_quota
    settings.MC_SPOT_CHECKS = True
    other, _ = submit(bob, lab["variant"], noop, steps=2)
    finish(other)
    spot = BenchmarkJob.objects.get(verifies=other, is_spot_check=True)
    assert spot.charged_to_id == lab["account"].pk and not spot.counts_against_quota


# --- fair share per namespace --------------------------------------------------------------------------------


def test_members_of_one_org_share_one_turn(lab, alice, bob, noop, sent, settings):
    settings.MC_DISPATCH_BUFFER = settings.MC_DISPATCH_QUICK_BUFFER = 100
    settings.MC_DISPATCH_CHUNK = 1
    settings.MC_DEFAULT_MAX_ACTIVE_JOBS = 100
    carol = lab["carol"]
    a = [submit(alice, lab["variant"], noop, steps=i + 1)[0] for i in range(2)]
    b = [submit(bob, lab["variant"], noop, steps=i + 11)[0] for i in range(2)]
    c = [submit(carol, lab["carol_variant"], noop, steps=i + 1)[0] for i in range(2)]
    jobs = list(BenchmarkJob.objects.all())
    queue_positions(jobs)
    by_position = [j.pk for j in sorted(jobs, key=lambda j: j.queue_position)]
    # two namespaces (harbour-lab, carol) take turns; per submitter, alice and bob would have had two turns to one
    expected = [a[0].pk, c[0].pk, a[1].pk, c[1].pk, b[0].pk, b[1].pk]
    assert by_position == expected
    dispatch.jobs_dispatch(queue="bench.cpu")
    assert [j for j, _ in sent] == expected  # the dispatcher and the reported positions agree


# --- measured: fairness (issue 14) ---------------------------------------------------------------------------


def test_ten_accounts_of_one_org_get_one_share_against_an_independent_user(
    make_user, make_variant, maintainer, noop, sent, settings
):
    """10 accounts of one org and 1 independent user each submit a burst of 20 jobs (the org's accounts first);
    2 worker slots claim in the broker's order what the real dispatcher sends, each finishing its oldest job to
    free a slot. The independent user's first job starts within the first 4 starts, and the org's jobs get
    between 40% and 60% of the first 20 starts (per submitter they would get 10 of every 11)."""
    settings.MC_DISPATCH_BUFFER = settings.MC_DISPATCH_QUICK_BUFFER = 2  # a buffer as deep as the slots
    settings.MC_DISPATCH_CHUNK = 1
    settings.MC_DEFAULT_MAX_ACTIVE_JOBS = 100
    accounts = [make_user(f"lab{i}") for i in range(10)]
    org = make_org(accounts[0], "harbour-lab")
    for account in accounts[1:]:
        add_member(org, account, by=accounts[0])
    org_services.org_quota_set(org=org, actor=maintainer, max_queued_jobs=1000)
    lab_variant = make_variant(org.account, "lab-model")
    solo = make_user("solo")
    solo_variant = make_variant(solo, "solo-model")
    for i, account in enumerate(accounts):
        for j in range(20):
            submit(account, lab_variant, noop, steps=i * 100 + j + 1)
    for j in range(20):
        submit(solo, solo_variant, noop, steps=j + 1)
    assert BenchmarkJob.objects.filter(charged_to=org.account).count() == 200

    started: list[int] = []  # the namespace of each started job, in start order
    running: list[BenchmarkJob] = []
    delivered = 0
    while len(started) < 40:
        dispatch.jobs_dispatch(queue="bench.cpu")
        while len(running) < 2 and delivered < len(sent):
            job_id, _ = sent[delivered]
            delivered += 1
            claimed = services.job_claim(job_id=job_id, worker=f"w{len(running)}@h")
            assert claimed is not None
            started.append(claimed.charged_to_id)
            running.append(claimed)
        finish_job = running.pop(0)
        result = RunResult(
            metrics={"ok": 1.0}, stderr={}, samples=1, duration_s=0.1, runner="noop", runner_version="1", environment={}
        )
        services.job_complete(job_id=finish_job.pk, attempt=finish_job.attempts, result=result)

    first_solo = started.index(solo.pk) + 1
    org_share = sum(1 for ns in started[:20] if ns == org.account_id) / 20
    print(f"\nfairness: solo's first start #{first_solo}; org share of the first 20 starts {org_share:.0%}")
    assert first_solo <= 4
    assert 0.4 <= org_share <= 0.6
    # both still had work queued over those 20 starts
    assert BenchmarkJob.objects.filter(charged_to=solo, status="queued").exists()
    assert BenchmarkJob.objects.filter(charged_to=org.account, status="queued").exists()
