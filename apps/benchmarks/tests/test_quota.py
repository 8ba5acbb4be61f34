"""Races, with real threads and real transactions: the database enforces quotas, dedupe and idempotency keys."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connection

from apps.benchmarks import services
from apps.benchmarks.models import BenchmarkJob, IdempotencyRecord
from apps.core.errors import QuotaExceeded

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 50


def in_parallel(fn: Any, n: int) -> list[Any]:
    barrier = threading.Barrier(n)

    def run(i: int) -> Any:
        try:
            barrier.wait(timeout=30)
            return fn(i)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))


def test_fifty_parallel_submissions_against_a_quota_of_five_admit_exactly_five(alice, alice_variant, noop, settings):
    settings.MC_DEFAULT_MAX_ACTIVE_JOBS = 5

    def submit(i: int) -> str:
        try:
            _, created = services.job_submit(
                actor=alice, revision=alice_variant.current_revision, benchmark=noop, config={"steps": i + 1}
            )
        except QuotaExceeded as exc:
            return str(exc.extra["limit"])
        return "created" if created else "existing"

    outcomes = in_parallel(submit, THREADS)
    assert outcomes.count("created") == 5
    assert outcomes.count("max_active_jobs") == THREADS - 5
    assert BenchmarkJob.objects.filter(submitted_by=alice).count() == 5


def test_fifty_parallel_submissions_from_five_members_against_an_org_quota_of_five_admit_exactly_five(
    make_user, make_variant, maintainer, noop, settings
):
    """Issue 14, measured: the five members' submissions are charged to the organization and serialize on its
    namespace's row, whoever sends them."""
    from apps.orgs import services as org_services
    from apps.orgs.tests.factories import add_member, make_org

    settings.MC_DEFAULT_MAX_ACTIVE_JOBS = 100  # each member alone could queue them all
    members = [make_user(f"member{i}") for i in range(5)]
    org = make_org(members[0], "harbour-lab")
    for member in members[1:]:
        add_member(org, member, by=members[0])
    org_services.org_quota_set(org=org, actor=maintainer, max_queued_jobs=5)
    variant = make_variant(org.account, "lab-model")

    def submit(i: int) -> str:
        try:
            _, created = services.job_submit(
                actor=members[i % 5], revision=variant.current_revision, benchmark=noop, config={"steps": i + 1}
            )
        except QuotaExceeded as exc:
            assert exc.detail.startswith("harbour-lab has 5 jobs queued or running; its limit is 5.")
            return str(exc.extra["limit"])
        return "created" if created else "existing"

    outcomes = in_parallel(submit, THREADS)
    assert outcomes.count("created") == 5
    assert outcomes.count("max_active_jobs") == THREADS - 5
    assert BenchmarkJob.objects.filter(charged_to=org.account).count() == BenchmarkJob.objects.count() == 5


def test_fifty_parallel_http_submissions_get_five_201_and_429_for_the_rest(
    alice, alice_variant, noop, client_for, settings
):
    settings.MC_DEFAULT_MAX_ACTIVE_JOBS = 5
    token = client_for(alice).raw_token

    def post(i: int) -> tuple[int, str | None]:
        from rest_framework.test import APIClient

        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        resp = client.post(
            "/api/v1/jobs/",
            {"variant": "alice/alice-model", "benchmark": "noop", "config": {"steps": i + 1}},
            format="json",
        )
        return resp.status_code, resp.headers.get("Retry-After")

    outcomes = in_parallel(post, THREADS)
    codes = [code for code, _ in outcomes]
    assert codes.count(201) == 5 and codes.count(429) == THREADS - 5
    assert all(retry_after and int(retry_after) >= 1 for code, retry_after in outcomes if code == 429)


def test_parallel_identical_submissions_by_different_users_make_one_job(make_user, alice_variant, noop):
    users = [make_user(f"racer{i}") for i in range(10)]

    def submit(i: int) -> tuple[int, bool]:
        job, created = services.job_submit(
            actor=users[i], revision=alice_variant.current_revision, benchmark=noop, config={"steps": 3}
        )
        return job.pk, created

    outcomes = in_parallel(submit, len(users))
    assert len({pk for pk, _ in outcomes}) == 1
    assert sum(created for _, created in outcomes) == 1
    assert BenchmarkJob.objects.count() == 1


def test_parallel_retries_with_one_idempotency_key_make_one_job(alice, alice_variant, noop, client_for):
    token = client_for(alice).raw_token

    def post(i: int) -> tuple[int, int]:
        from rest_framework.test import APIClient

        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        resp = client.post(
            "/api/v1/jobs/",
            {"variant": "alice/alice-model", "benchmark": "noop", "config": {"steps": 2}},
            format="json",
            headers={"Idempotency-Key": "same-key"},
        )
        return resp.status_code, resp.json()["id"]

    outcomes = in_parallel(post, 10)
    assert {code for code, _ in outcomes} <= {200, 201}
    assert len({job_id for _, job_id in outcomes}) == 1
    assert BenchmarkJob.objects.count() == 1 and IdempotencyRecord.objects.count() == 1


def test_migration_0005_charges_every_earlier_job_to_its_submitter(alice, alice_variant, noop):
    """Issue 14: jobs from before namespaces are charged to their submitter."""
    from django.db.migrations.executor import MigrationExecutor

    before = ("benchmarks", "0004_job_failure_reason_sandbox")
    executor = MigrationExecutor(connection)
    executor.migrate([before])
    try:
        old_apps = executor.loader.project_state([before]).apps
        OldJob = old_apps.get_model("benchmarks", "BenchmarkJob")  # noqa: N806 - a model class
        revision = alice_variant.current_revision
        for steps in (1, 2):
            OldJob.objects.create(
                revision_id=revision.pk,
                benchmark_id=noop.pk,
                benchmark_version="1",
                config={"steps": steps},
                config_hash=f"h{steps}",
                submitted_by_id=alice.pk,
            )
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    assert list(BenchmarkJob.objects.values_list("charged_to_id", flat=True)) == [alice.pk, alice.pk]
