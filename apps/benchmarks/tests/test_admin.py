"""The engine in the moderation console: lists with filters and search, bulk actions through the services."""

from __future__ import annotations

import pytest

from apps.audit.models import AuditEvent
from apps.benchmarks import services
from apps.benchmarks.choices import JobStatus
from apps.benchmarks.models import Benchmark, BenchmarkJob, BenchmarkVersion

pytestmark = pytest.mark.django_db

BENCHMARK_FORM = {
    "slug": "adm",
    "name": "Adm",
    "version": "1",
    "description": "",
    "task": "",
    "runner": "noop",
    "dataset_uri": "",
    "dataset_sha256": "",
    "dataset_license": "",
    "dataset_size_bytes": "",
    "metrics": '[{"name": "ok", "primary": true}]',
    "config_schema": '{"type": "object"}',
    "default_config": "{}",
    "resource_class": "cpu",
    "timeout_s": "60",
    "max_attempts": "3",
    "tolerance": "0.01",
    "is_active": "on",
    "versions-TOTAL_FORMS": "0",
    "versions-INITIAL_FORMS": "0",
    "versions-MIN_NUM_FORMS": "0",
    "versions-MAX_NUM_FORMS": "1000",
}


@pytest.mark.parametrize(
    "model",
    [
        "benchmark",
        "benchmarkjob",
        "jobresult",
        "resultverification",
        "blockedvariant",
        "workernode",
        "submitterprofile",
    ],
)
def test_changelists_render_with_filters_and_search(admin_client, model, alice, alice_variant, noop):
    services.job_submit(actor=alice, revision=alice_variant.current_revision, benchmark=noop)
    resp = admin_client.get(f"/admin/benchmarks/{model}/?q=alice")
    assert resp.status_code == 200


def test_job_changelist_shows_the_queue_overview(admin_client, alice, alice_variant, noop):
    services.job_submit(actor=alice, revision=alice_variant.current_revision, benchmark=noop)
    page = admin_client.get("/admin/benchmarks/benchmarkjob/").content.decode()
    assert "Queue overview" in page and "bench.cpu" in page


def test_bulk_cancel_and_retry_go_through_the_services(admin_client, alice, alice_variant, noop):
    queued, _ = services.job_submit(
        actor=alice, revision=alice_variant.current_revision, benchmark=noop, config={"steps": 1}
    )
    failed, _ = services.job_submit(
        actor=alice, revision=alice_variant.current_revision, benchmark=noop, config={"steps": 2}
    )
    services.job_claim(job_id=failed.pk, worker="w@h")
    services.job_fail(job_id=failed.pk, attempt=1, reason="out_of_memory", message="oom")
    url = "/admin/benchmarks/benchmarkjob/"
    admin_client.post(url, {"action": "cancel_jobs", "_selected_action": [queued.pk, failed.pk]})
    queued.refresh_from_db()
    assert queued.status == JobStatus.CANCELLED  # the failed one was refused, not touched
    assert AuditEvent.objects.filter(verb="job.cancel", target_id=str(queued.pk)).exists()
    admin_client.post(url, {"action": "retry_jobs", "_selected_action": [failed.pk]})
    failed.refresh_from_db()
    assert failed.status == JobStatus.QUEUED
    assert BenchmarkJob.objects.get(pk=failed.pk).max_attempts == 1 + noop.max_attempts


def test_benchmark_form_runs_the_service_rules(admin_client):
    resp = admin_client.post("/admin/benchmarks/benchmark/add/", {**BENCHMARK_FORM, "runner": "nope"})
    assert resp.status_code == 200 and "is not a registered runner" in resp.content.decode()
    assert not Benchmark.objects.filter(slug="adm").exists()
    resp = admin_client.post("/admin/benchmarks/benchmark/add/", BENCHMARK_FORM)
    assert resp.status_code == 302
    benchmark = Benchmark.objects.get(slug="adm")
    assert BenchmarkVersion.objects.filter(benchmark=benchmark, version="1").exists()
    resp = admin_client.post(
        f"/admin/benchmarks/benchmark/{benchmark.pk}/change/", {**BENCHMARK_FORM, "default_config": '{"steps": 2}'}
    )
    assert resp.status_code == 302
    benchmark.refresh_from_db()
    assert benchmark.version == "2" and benchmark.default_config == {"steps": 2}


def test_non_numeric_versions_are_asked_for_in_the_form(admin_client, make_benchmark):
    benchmark = make_benchmark(slug="adm", version="2024-a")
    resp = admin_client.post(
        f"/admin/benchmarks/benchmark/{benchmark.pk}/change/",
        {**BENCHMARK_FORM, "version": "2024-a", "default_config": '{"steps": 2}'},
    )
    assert resp.status_code == 200 and "give a new version" in resp.content.decode()


def test_compute_usage_is_shown_read_only_with_its_namespace_and_hour(admin_client, alice, alice_variant, noop):
    from datetime import UTC, datetime

    job, _ = services.job_submit(actor=alice, revision=alice_variant.current_revision, benchmark=noop)
    finished = datetime(2026, 12, 4, 15, 42, tzinfo=UTC)
    BenchmarkJob.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED, finished_at=finished, compute_seconds=12)
    page = admin_client.get("/admin/benchmarks/computeusage/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "alice" in body and "2026-12-04 15:00" in body and "12.0" in body
    assert admin_client.get("/admin/benchmarks/computeusage/add/").status_code == 403


def test_compute_usage_page_is_for_superusers_like_the_rest_of_the_engines_admin(admin_client, alice, make_user):
    from django.test import Client

    url = "/admin/benchmarks/computeusage/"
    assert Client().get(url).status_code == 302  # anonymous: to the admin login
    seen = {}
    for name, user in {
        "contributor": alice,
        "reviewer": make_user("rev", roles=("reviewer",)),
        "plain staff": make_user("clerk", is_staff=True),
        "staff maintainer": make_user("mod", roles=("maintainer",), is_staff=True),
    }.items():
        client = Client()
        client.force_login(user)
        seen[name] = client.get(url).status_code
    # The engine's admin pages (jobs, workers, profiles, usage) use Django's model permissions: superusers see them;
    # non-staff go to the admin login; staff without the permission, maintainers included, are refused.
    assert seen == {"contributor": 302, "reviewer": 302, "plain staff": 403, "staff maintainer": 403}
    assert admin_client.get(url).status_code == 200
    assert admin_client.get("/admin/benchmarks/benchmarkjob/").status_code == 200


def test_compute_usage_page_costs_the_same_queries_for_one_namespace_as_for_many(
    admin_client, make_user, make_variant, noop
):
    from datetime import UTC, datetime

    from apps.core.testing import get_counted

    def finish_a_job_of(username: str, hour: int) -> None:
        user = make_user(username, max_active_jobs=10)
        job, _ = services.job_submit(
            actor=user, revision=make_variant(user, f"{username}-model").current_revision, benchmark=noop
        )
        BenchmarkJob.objects.filter(pk=job.pk).update(
            status=JobStatus.SUCCEEDED, finished_at=datetime(2026, 12, 4, hour, 5, tzinfo=UTC), compute_seconds=3
        )

    url = "/admin/benchmarks/computeusage/"
    finish_a_job_of("u0", 1)
    admin_client.get(url)  # warm the session
    one_page, one = get_counted(admin_client, url)
    for i in range(1, 9):
        finish_a_job_of(f"u{i}", 1 + i)
    many_page, many = get_counted(admin_client, url)
    assert "u0" in one_page.content.decode() and all(f"u{i}" in many_page.content.decode() for i in range(9))
    assert one == many
