"""The engine's rules, at the service layer."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.benchmarks import dispatch, hooks, services
from apps.benchmarks.choices import FailureReason, JobStatus, VerificationStatus, worker_queue
from apps.benchmarks.models import (
    Benchmark,
    BenchmarkJob,
    BenchmarkVersion,
    JobResult,
    ResultVerification,
    SubmitterProfile,
    WorkerNode,
)
from apps.benchmarks.services import verification
from apps.benchmarks.tests import runners
from apps.core.errors import Conflict, InvalidTransition, PermissionDenied, QuotaExceeded, ValidationFailed
from apps.core.testing import count_queries
from workers.runners.base import RunResult

pytestmark = pytest.mark.django_db


def submit(user, variant, benchmark, **config):  # type: ignore[no-untyped-def]
    return services.job_submit(actor=user, revision=variant.current_revision, benchmark=benchmark, config=config)


def run_to_success(job, worker="w1@host", metrics=None):  # type: ignore[no-untyped-def]
    claimed = services.job_claim(job_id=job.pk, worker=worker)
    assert claimed is not None
    return services.job_complete(
        job_id=job.pk,
        attempt=claimed.attempts,
        result=RunResult(
            metrics=metrics or {"ok": 1.0},
            stderr={},
            samples=1,
            duration_s=0.1,
            runner="noop",
            runner_version="1",
            environment={"python": "3.11"},
        ),
    )


# --- benchmarks -------------------------------------------------------------------------------------------


class TestBenchmarkDefinition:
    def test_create_freezes_the_first_version_and_audits(self, noop, maintainer):
        assert noop.version == "1"
        spec = BenchmarkVersion.objects.get(benchmark=noop, version="1")
        assert spec.runner == "noop" and spec.metrics == [{"name": "ok", "higher_is_better": True, "primary": True}]
        assert AuditEvent.objects.filter(verb="benchmark.create", target_id=str(noop.pk)).exists()

    def test_only_maintainers_define_benchmarks(self, alice):
        with pytest.raises(PermissionDenied):
            services.benchmark_create(actor=alice, slug="x", name="X", runner="noop", metrics=[{"name": "ok"}])

    @pytest.mark.parametrize(
        ("fields", "field"),
        [
            ({"runner": "no-such-runner"}, "runner"),
            ({"config_schema": {"type": "object", "properties": {"limit": {"type": "bogus"}}}}, "config_schema"),
            ({"config_schema": {"type": "array"}}, "config_schema"),
            (
                {
                    "config_schema": {"type": "object", "properties": {"limit": {"type": "integer"}}},
                    "default_config": {"limit": "many"},
                },
                "default_config",
            ),
            ({"metrics": [{"name": "a"}, {"name": "a"}]}, "metrics"),
            ({"metrics": [{"name": "a", "primary": True}, {"name": "b", "primary": True}]}, "metrics"),
            ({"dataset_sha256": "xyz"}, "dataset_sha256"),
            ({"tolerance": -1}, "tolerance"),
            ({"max_attempts": 0}, "max_attempts"),
        ],
    )
    def test_invalid_definitions_are_refused_with_the_field(self, make_benchmark, fields, field):
        with pytest.raises(ValidationFailed) as exc:
            make_benchmark(slug="bad", **fields)
        assert field in exc.value.errors

    def test_duplicate_slug_is_refused(self, noop, make_benchmark):
        with pytest.raises(ValidationFailed) as exc:
            make_benchmark(slug="NOOP")
        assert "slug" in exc.value.errors

    def test_first_metric_is_primary_unless_one_is_marked(self, make_benchmark):
        benchmark = make_benchmark(slug="m", metrics=[{"name": "a"}, {"name": "b"}])
        assert benchmark.primary_metric == "a"

    def test_cosmetic_change_keeps_the_version(self, noop, maintainer):
        updated = services.benchmark_update(
            benchmark=noop, actor=maintainer, changes={"description": "new words", "tolerance": 0.5}
        )
        assert updated.version == "1" and updated.tolerance == 0.5

    def test_a_change_to_what_results_mean_bumps_the_version(self, noop, maintainer, alice, alice_variant):
        old_job, _ = submit(alice, alice_variant, noop)
        updated = services.benchmark_update(benchmark=noop, actor=maintainer, changes={"default_config": {"steps": 2}})
        assert updated.version == "2"
        assert set(BenchmarkVersion.objects.filter(benchmark=noop).values_list("version", flat=True)) == {"1", "2"}
        old_job.refresh_from_db()
        # The queued job still runs what it was submitted against.
        assert old_job.benchmark_version == "1" and old_job.spec.default_config == {}
        new_job, created = submit(alice, alice_variant, updated)
        assert created and new_job.benchmark_version == "2" and new_job.config == {"steps": 2}
        assert AuditEvent.objects.filter(verb="benchmark.version", target_id=str(noop.pk)).exists()

    def test_non_numeric_versions_need_an_explicit_new_version(self, make_benchmark, maintainer):
        benchmark = make_benchmark(slug="named", version="2024-a")
        with pytest.raises(ValidationFailed) as exc:
            services.benchmark_update(benchmark=benchmark, actor=maintainer, changes={"dataset_uri": "x.npz"})
        assert "version" in exc.value.errors
        updated = services.benchmark_update(
            benchmark=benchmark, actor=maintainer, changes={"dataset_uri": "x.npz", "version": "2024-b"}
        )
        assert updated.version == "2024-b"

    def test_a_used_version_cannot_come_back(self, noop, maintainer):
        services.benchmark_update(benchmark=noop, actor=maintainer, changes={"default_config": {"steps": 2}})
        with pytest.raises(ValidationFailed):
            services.benchmark_update(
                benchmark=noop, actor=maintainer, changes={"default_config": {"steps": 3}, "version": "1"}
            )


# --- submission -------------------------------------------------------------------------------------------


class TestBenchmarkBySlug:
    def test_the_compiled_lookup_gives_what_the_orm_gives(self, noop, maintainer):
        # a submission's benchmark is read by a query compiled once: the same instance as the ORM's, with the
        # current version's frozen spec, before and after a new version
        from apps.benchmarks.selectors import benchmark_by_slug, benchmark_with_current_spec
        from apps.benchmarks.services import benchmark_update
        from apps.core.testing import instance_state

        def orm(slug):  # type: ignore[no-untyped-def]
            return benchmark_with_current_spec(Benchmark.objects.filter(slug=slug)).first()

        for steps in (2, 3):
            with count_queries() as queries:
                got = benchmark_by_slug("noop")
            assert len(queries) == 1
            assert got is not None and instance_state(got) == instance_state(orm("noop"))
            assert got.current_spec.version == got.version
            benchmark_update(benchmark=got, actor=maintainer, changes={"default_config": {"steps": steps}})
        assert benchmark_by_slug("noop").version == "3" and benchmark_by_slug("no-such") is None


class TestSubmission:
    def test_submit_queues_a_job_and_dispatches_only_its_id_after_commit(
        self, alice, alice_variant, noop, sent, django_capture_on_commit_callbacks
    ):
        with django_capture_on_commit_callbacks(execute=True):
            job, created = submit(alice, alice_variant, noop, steps=3)
        assert created and job.status == JobStatus.QUEUED and job.queue == "bench.cpu"
        assert job.spec.version == "1" and job.config == {"steps": 3}
        assert sent == [(job.pk, "bench.cpu")]
        job.refresh_from_db()
        assert job.dispatched_at is not None and job.dispatch_count == 1
        assert AuditEvent.objects.filter(verb="job.submit", target_id=str(job.pk)).exists()

    def test_nothing_is_sent_before_commit(self, alice, alice_variant, noop, sent):
        submit(alice, alice_variant, noop)
        assert sent == []  # the surrounding test transaction never commits

    def test_same_key_returns_the_existing_job_unless_it_failed(self, alice, alice_variant, noop):
        job, created = submit(alice, alice_variant, noop, steps=2)
        again, created_again = submit(alice, alice_variant, noop, steps=2)
        assert created and not created_again and again.pk == job.pk
        other, created_other = submit(alice, alice_variant, noop, steps=3)
        assert created_other and other.pk != job.pk
        BenchmarkJob.objects.filter(pk=job.pk).update(status=JobStatus.FAILED)
        fresh, created_fresh = submit(alice, alice_variant, noop, steps=2)
        assert created_fresh and fresh.pk != job.pk

    def test_defaults_are_part_of_the_key(self, alice, alice_variant, make_benchmark):
        benchmark = make_benchmark(slug="d", default_config={"steps": 1})
        job, _ = submit(alice, alice_variant, benchmark)
        same, created = submit(alice, alice_variant, benchmark, steps=1)
        assert not created and same.pk == job.pk

    def test_config_is_validated_against_the_schema_and_the_runner(self, alice, alice_variant, make_benchmark):
        benchmark = make_benchmark(
            slug="s", config_schema={"type": "object", "properties": {"steps": {"type": "integer", "minimum": 1}}}
        )
        with pytest.raises(ValidationFailed) as exc:
            submit(alice, alice_variant, benchmark, steps=0)
        assert "config.steps" in exc.value.errors
        with pytest.raises(ValidationFailed) as exc:
            submit(alice, alice_variant, benchmark, bogus=True)  # the noop runner allows no extra keys
        assert "config" in exc.value.errors

    def test_each_submission_check_refuses_with_its_reason(self, alice, make_variant, make_benchmark, maintainer):
        onnx = make_benchmark(
            slug="onnx", runner="onnx-classification", metrics=[{"name": "accuracy", "primary": True}]
        )
        pickled = make_variant(alice, "pickled", artifacts=(("model.bin", "bin"),))
        with pytest.raises(ValidationFailed) as exc:
            submit(alice, pickled, onnx)
        assert exc.value.errors["artifacts"][0].startswith("no_loadable_artifact:")
        assert "model.bin" in exc.value.errors["artifacts"][0]
        short = make_variant(alice, "short", card="too short")
        with pytest.raises(ValidationFailed) as exc:
            submit(alice, short, onnx)
        assert exc.value.errors["card"][0].startswith("card_too_short:")
        unlicensed = make_variant(alice, "unlicensed", license="")
        with pytest.raises(ValidationFailed) as exc:
            submit(alice, unlicensed, onnx)
        assert exc.value.errors["license"][0].startswith("license_missing:")
        blocked = make_variant(alice, "blocked")
        services.blocklist_add(variant=blocked, reason="benchmark contamination", actor=maintainer)
        with pytest.raises(ValidationFailed) as exc:
            submit(alice, blocked, onnx)
        assert "benchmark contamination" in exc.value.errors["variant"][0]
        assert exc.value.extra["checks"] == ["variant_blocked"]
        assert not BenchmarkJob.objects.exists()

    def test_all_failing_checks_are_reported_at_once(self, alice, make_variant, noop):
        bad = make_variant(alice, "bad", card="", license="")
        with pytest.raises(ValidationFailed) as exc:
            submit(alice, bad, noop)
        assert set(exc.value.errors) == {"card", "license"}

    def test_a_batch_reads_its_variants_blocklist_once_and_names_the_blocked_item(
        self, alice, maintainer, make_variant, noop
    ):
        from apps.core.testing import count_queries

        alice.max_active_jobs = 50
        alice.save()

        def batch(n: int, prefix: str) -> tuple[int, ValidationFailed | None]:
            variants = [make_variant(alice, f"{prefix}-{i}") for i in range(n)]
            services.blocklist_add(variant=variants[1], reason="eval set in the training data", actor=maintainer)
            revisions = [v.current_revision for v in variants]
            for variant, revision in zip(variants, revisions, strict=True):
                revision.variant = variant  # as the API hands them over: read with their variant
            items = [(revision, noop, {"steps": 1}) for revision in revisions]
            with count_queries() as queries:
                try:
                    services.jobs_submit_batch(actor=alice, items=items)
                except ValidationFailed as exc:
                    return len(queries.captured_queries), exc
            return len(queries.captured_queries), None

        few, refused = batch(3, "few")
        many, _ = batch(12, "many")
        assert few == many  # not one blocklist query per variant
        assert refused is not None and list(refused.errors) == ["jobs.1.variant"]
        assert "eval set in the training data" in refused.errors["jobs.1.variant"][0]
        assert not BenchmarkJob.objects.exists()

    def test_a_runner_that_loads_nothing_needs_no_artifact(self, alice, make_variant, noop):
        bare = make_variant(alice, "bare", artifacts=())
        _, created = submit(alice, bare, noop)
        assert created

    def test_retired_benchmarks_take_no_jobs(self, alice, alice_variant, noop, maintainer):
        services.benchmark_update(benchmark=noop, actor=maintainer, changes={"is_active": False})
        noop.refresh_from_db()
        with pytest.raises(ValidationFailed):
            submit(alice, alice_variant, noop)

    def test_maintainers_only_runners_refuse_contributors(self, alice, maintainer, alice_variant, noop, settings):
        # The production default: noop runs inside the worker and evaluates nothing, a maintainers' drill tool.
        settings.MC_MAINTAINER_ONLY_RUNNERS = ["noop"]
        with pytest.raises(PermissionDenied) as exc:
            submit(alice, alice_variant, noop)
        assert "maintainers only" in exc.value.detail
        with pytest.raises(PermissionDenied):
            services.jobs_submit_batch(actor=alice, items=[(alice_variant.current_revision, noop, {"steps": 2})])
        assert not BenchmarkJob.objects.exists()
        _, created = submit(maintainer, alice_variant, noop)
        assert created

    def test_contributors_cannot_rerun_their_old_jobs_on_maintainers_only_runners(
        self, alice, alice_variant, noop, settings
    ):
        job, _ = submit(alice, alice_variant, noop)  # before the rule (the engine's tests switch it off)
        services.job_claim(job_id=job.pk, worker="w1@h")
        services.job_fail(job_id=job.pk, attempt=1, reason=FailureReason.WORKER_LOST, message="lost")
        settings.MC_MAINTAINER_ONLY_RUNNERS = ["noop"]
        with pytest.raises(PermissionDenied):
            services.job_retry(job=job, actor=alice)

    def test_only_maintainers_set_priority(self, alice, alice_variant, noop):
        with pytest.raises(PermissionDenied):
            services.job_submit(actor=alice, revision=alice_variant.current_revision, benchmark=noop, priority=5)

    def test_blocklist_is_maintainers_only_and_needs_a_reason(self, alice, alice_variant, maintainer):
        with pytest.raises(PermissionDenied):
            services.blocklist_add(variant=alice_variant, reason="x", actor=alice)
        with pytest.raises(ValidationFailed):
            services.blocklist_add(variant=alice_variant, reason="  ", actor=maintainer)
        entry = services.blocklist_add(variant=alice_variant, reason="spam", actor=maintainer)
        with pytest.raises(Conflict):
            services.blocklist_add(variant=alice_variant, reason="again", actor=maintainer)
        services.blocklist_remove(entry=entry, actor=maintainer)
        assert AuditEvent.objects.filter(verb="benchmark.blocklist.remove").exists()


# --- quotas -----------------------------------------------------------------------------------------------


class TestQuota:
    def test_active_job_limit_names_the_limit_and_when_it_frees(self, alice, alice_variant, noop, settings):
        settings.MC_DEFAULT_MAX_ACTIVE_JOBS = 2
        submit(alice, alice_variant, noop, steps=1)
        submit(alice, alice_variant, noop, steps=2)
        with pytest.raises(QuotaExceeded) as exc:
            submit(alice, alice_variant, noop, steps=3)
        assert exc.value.extra["limit"] == "max_active_jobs" and exc.value.retry_after >= 1
        # a duplicate of an admitted job is not a new job: it comes back even at the limit
        _, created = submit(alice, alice_variant, noop, steps=2)
        assert not created

    def test_retry_after_follows_recent_run_times(self, alice, alice_variant, noop, settings, bob, make_variant):
        settings.MC_DEFAULT_MAX_ACTIVE_JOBS = 1
        now = timezone.now()
        done, _ = submit(bob, make_variant(bob, "b"), noop)
        BenchmarkJob.objects.filter(pk=done.pk).update(
            status=JobStatus.SUCCEEDED, started_at=now - timedelta(seconds=100), finished_at=now
        )
        job, _ = submit(alice, alice_variant, noop, steps=1)
        BenchmarkJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, started_at=now - timedelta(seconds=30))
        with pytest.raises(QuotaExceeded) as exc:
            submit(alice, alice_variant, noop, steps=2)
        assert 60 <= exc.value.retry_after <= 71

    def test_per_user_override(self, alice, alice_variant, noop, settings):
        settings.MC_DEFAULT_MAX_ACTIVE_JOBS = 1
        alice.max_active_jobs = 3
        alice.save()
        for steps in (1, 2, 3):
            submit(alice, alice_variant, noop, steps=steps)
        with pytest.raises(QuotaExceeded):
            submit(alice, alice_variant, noop, steps=4)

    def test_daily_compute_budget(self, alice, alice_variant, noop):
        alice.daily_compute_seconds = 100
        alice.save()
        now = timezone.now()
        old, _ = submit(alice, alice_variant, noop, steps=1)
        recent, _ = submit(alice, alice_variant, noop, steps=2)
        BenchmarkJob.objects.filter(pk=old.pk).update(
            status=JobStatus.SUCCEEDED, compute_seconds=60, finished_at=now - timedelta(hours=20)
        )
        BenchmarkJob.objects.filter(pk=recent.pk).update(
            status=JobStatus.SUCCEEDED, compute_seconds=60, finished_at=now - timedelta(hours=1)
        )
        with pytest.raises(QuotaExceeded) as exc:
            submit(alice, alice_variant, noop, steps=3)
        assert exc.value.extra["limit"] == "daily_compute_seconds"
        # 120 s used; when the 20-hour-old job leaves the window (in ~4 h) 60 s remain, under the budget
        assert 4 * 3600 - 60 <= exc.value.retry_after <= 4 * 3600 + 1
        # compute older than a day does not count
        BenchmarkJob.objects.filter(pk=old.pk).update(finished_at=now - timedelta(hours=25))
        _, created = submit(alice, alice_variant, noop, steps=3)
        assert created

    def test_infrastructure_reruns_do_not_count(self, alice, alice_variant, noop, settings):
        settings.MC_DEFAULT_MAX_ACTIVE_JOBS = 1
        job, _ = submit(alice, alice_variant, noop)
        claimed = services.job_claim(job_id=job.pk, worker="w1@h")
        BenchmarkJob.objects.filter(pk=job.pk).update(max_attempts=1)
        services.job_fail(job_id=job.pk, attempt=claimed.attempts, reason=FailureReason.WORKER_LOST, message="gone")
        rerun = services.job_retry(job=job, actor=alice)
        assert rerun.status == JobStatus.QUEUED and not rerun.counts_against_quota
        _, created = submit(alice, alice_variant, noop, steps=9)  # the re-run holds no quota slot
        assert created

    def test_the_usage_statement_agrees_with_the_querysets_it_stands_for(self, alice, alice_variant, noop):
        # namespace_usage is one SQL statement (the ORM took longer to build it than PostgreSQL to run it): its
        # totals and its dedupe match must be what counting_against_quota and _dedupe_matches select, in every
        # state a job of the key can be in.
        from apps.benchmarks.services.quota import namespace_usage
        from apps.benchmarks.services.submission import _dedupe_match, canonical_config

        alice.max_active_jobs = 50
        alice.save()
        now = timezone.now()
        revision = alice_variant.current_revision
        _, key_hash = canonical_config(noop, {**noop.default_config, "steps": 7})
        key = (revision.pk, noop.pk, noop.version, key_hash)

        def usage():  # type: ignore[no-untyped-def]
            got = namespace_usage(alice, now, dedupe=key)
            charged = BenchmarkJob.objects.counting_against_quota(alice)
            assert got["active"] == charged.filter(status__in=["queued", "running"]).count()
            window = charged.filter(finished_at__gte=now - timedelta(days=1))
            assert got["used"] == pytest.approx(sum(j.compute_seconds or 0 for j in window))
            match = _dedupe_match(revision, noop, key_hash)
            assert got["existing"] == (match.pk if match else None)
            return got

        assert usage() == {"active": 0, "used": 0.0, "existing": None}
        job, _ = submit(alice, alice_variant, noop, steps=7)
        other, _ = submit(alice, alice_variant, noop, steps=8)
        assert usage()["existing"] == job.pk and usage()["active"] == 2
        for status in ("failed", "cancelled", "timed_out"):  # ended without a result: a new submission queues
            BenchmarkJob.objects.filter(pk=job.pk).update(status=status, finished_at=now, compute_seconds=5)
            assert usage()["existing"] is None
        BenchmarkJob.objects.filter(pk=job.pk).update(status="succeeded", finished_at=now - timedelta(hours=2))
        BenchmarkJob.objects.filter(pk=other.pk).update(
            status="succeeded", finished_at=now - timedelta(hours=30), compute_seconds=40
        )
        got = usage()
        assert got["existing"] == job.pk and got["active"] == 0 and got["used"] == 5.0  # 30 h ago is outside
        BenchmarkJob.objects.filter(pk=job.pk).update(counts_against_quota=False)
        assert usage()["used"] == 0.0
        BenchmarkJob.objects.filter(pk=job.pk).update(status="queued")  # as an infrastructure re-run: no slot
        assert usage()["active"] == 0
        # a verification re-run of the key is never the match
        BenchmarkJob.objects.filter(pk=job.pk).update(status="failed")
        BenchmarkJob.objects.filter(pk=other.pk).update(config_hash=key_hash, verifies=job)
        assert usage()["existing"] is None
        assert namespace_usage(alice, now) == {"active": 0, "used": 0.0}  # no key, no match read


# --- claim, progress, completion, failure ----------------------------------------------------------------


class TestExecution:
    def test_claim_is_a_compare_and_set(self, alice, alice_variant, noop):
        job, _ = submit(alice, alice_variant, noop)
        first = services.job_claim(job_id=job.pk, worker="w1@h")
        assert first.status == JobStatus.RUNNING and first.attempts == 1 and first.worker_host == "w1@h"
        assert first.heartbeat_at is not None and first.started_at is not None
        assert services.job_claim(job_id=job.pk, worker="w2@h") is None  # duplicate delivery
        assert AuditEvent.objects.filter(verb="job.start", target_id=str(job.pk)).count() == 1

    def test_claim_refuses_cancelled_and_backoff(self, alice, alice_variant, noop):
        job, _ = submit(alice, alice_variant, noop)
        BenchmarkJob.objects.filter(pk=job.pk).update(not_before=timezone.now() + timedelta(minutes=1))
        assert services.job_claim(job_id=job.pk, worker="w1@h") is None
        services.job_cancel(job=job, actor=alice)
        assert services.job_claim(job_id=job.pk, worker="w1@h") is None
        assert services.job_claim(job_id=999999, worker="w1@h") is None

    def test_a_redelivery_takes_over_a_job_whose_worker_died(self, alice, alice_variant, noop, settings):
        job, _ = submit(alice, alice_variant, noop)
        services.job_claim(job_id=job.pk, worker="dead@h")
        assert services.job_claim(job_id=job.pk, worker="w2@h") is None  # lease still fresh
        BenchmarkJob.objects.filter(pk=job.pk).update(
            heartbeat_at=timezone.now() - timedelta(seconds=settings.MC_JOB_STALE_AFTER_S + 1)
        )
        taken = services.job_claim(job_id=job.pk, worker="w2@h")
        assert taken.attempts == 2 and taken.worker_host == "w2@h"
        # the dead attempt's late result is fenced off
        assert (
            services.job_complete(
                job_id=job.pk,
                attempt=1,
                result=RunResult(
                    metrics={"ok": 1},
                    stderr={},
                    samples=1,
                    duration_s=0,
                    runner="noop",
                    runner_version="1",
                    environment={},
                ),
            )
            is None
        )
        assert AuditEvent.objects.filter(verb="job.takeover", target_id=str(job.pk)).exists()

    def test_takeover_with_no_attempts_left_ends_the_job(self, alice, alice_variant, noop, settings):
        job, _ = submit(alice, alice_variant, noop)
        services.job_claim(job_id=job.pk, worker="dead@h")
        BenchmarkJob.objects.filter(pk=job.pk).update(
            max_attempts=1, heartbeat_at=timezone.now() - timedelta(seconds=settings.MC_JOB_STALE_AFTER_S + 1)
        )
        assert services.job_claim(job_id=job.pk, worker="w2@h") is None
        job.refresh_from_db()
        assert job.status == JobStatus.FAILED and job.failure_reason == FailureReason.WORKER_LOST

    def test_progress_heartbeat_and_cancel_between_batches(self, alice, alice_variant, noop):
        job, _ = submit(alice, alice_variant, noop)
        claimed = services.job_claim(job_id=job.pk, worker="w1@h")
        assert services.job_progress(job_id=job.pk, attempt=1, done=3, total=10) is False
        job.refresh_from_db()
        assert (job.progress_done, job.progress_total) == (3, 10)
        services.job_cancel(job=job, actor=alice)
        job.refresh_from_db()
        assert job.status == JobStatus.RUNNING and job.cancel_requested
        assert services.job_progress(job_id=job.pk, attempt=claimed.attempts, done=4, total=10) is True
        assert services.jobs_heartbeat(attempts={job.pk: claimed.attempts}) == {job.pk}
        # a running job that was cancelled writes no result, even when its last batch finished
        ended = services.job_complete(
            job_id=job.pk,
            attempt=1,
            result=RunResult(
                metrics={"ok": 1},
                stderr={},
                samples=1,
                duration_s=0,
                runner="noop",
                runner_version="1",
                environment={},
            ),
        )
        assert ended.status == JobStatus.CANCELLED and not JobResult.objects.filter(job=job).exists()

    def test_result_is_written_once_and_fenced_by_attempt(self, alice, alice_variant, noop):
        job, _ = submit(alice, alice_variant, noop)
        done = run_to_success(job)
        assert done.status == JobStatus.SUCCEEDED and done.result.metrics == {"ok": 1.0}
        assert done.compute_seconds >= 0 and done.finished_at is not None
        again = services.job_complete(
            job_id=job.pk,
            attempt=1,
            result=RunResult(
                metrics={"ok": 0.0},
                stderr={},
                samples=1,
                duration_s=0,
                runner="noop",
                runner_version="1",
                environment={},
            ),
        )
        assert again is None and JobResult.objects.get(job=job).metrics == {"ok": 1.0}

    def test_retryable_failures_requeue_with_backoff_until_attempts_run_out(self, alice, alice_variant, noop, settings):
        settings.MC_JOB_RETRY_BACKOFF_S = 10
        job, _ = submit(alice, alice_variant, noop)
        for attempt in (1, 2, 3):
            BenchmarkJob.objects.filter(pk=job.pk).update(not_before=None)
            claimed = services.job_claim(job_id=job.pk, worker="w1@h")
            assert claimed.attempts == attempt
            failed = services.job_fail(
                job_id=job.pk, attempt=attempt, reason=FailureReason.RUNNER_ERROR, message="boom", log_tail="trace"
            )
            if attempt < 3:
                assert failed.status == JobStatus.QUEUED and failed.dispatched_at is None
                wait = (failed.not_before - timezone.now()).total_seconds()
                assert 10 * 2 ** (attempt - 1) - 2 < wait <= 10 * 2 ** (attempt - 1)
        job.refresh_from_db()
        assert job.status == JobStatus.FAILED and job.failure_reason == "runner_error" and job.log_tail == "trace"

    @pytest.mark.parametrize(
        ("reason", "status"),
        [
            (FailureReason.TIMEOUT, JobStatus.TIMED_OUT),
            (FailureReason.HASH_MISMATCH, JobStatus.FAILED),
            (FailureReason.UNSAFE_FORMAT, JobStatus.FAILED),
            (FailureReason.OUT_OF_MEMORY, JobStatus.FAILED),
            (FailureReason.INVALID_CONFIG, JobStatus.FAILED),
        ],
    )
    def test_deterministic_failures_end_the_job_at_once(self, alice, alice_variant, noop, reason, status):
        job, _ = submit(alice, alice_variant, noop)
        services.job_claim(job_id=job.pk, worker="w1@h")
        failed = services.job_fail(job_id=job.pk, attempt=1, reason=reason, message="why")
        assert failed.status == status and failed.failure_reason == reason and failed.attempts == 1


# --- cancel, retry ----------------------------------------------------------------------------------------


class TestCancelRetry:
    def test_only_submitter_or_maintainer_cancels(self, alice, bob, maintainer, alice_variant, noop):
        job, _ = submit(alice, alice_variant, noop)
        with pytest.raises(PermissionDenied):
            services.job_cancel(job=job, actor=bob)
        cancelled = services.job_cancel(job=job, actor=maintainer)
        assert cancelled.status == JobStatus.CANCELLED and cancelled.failure_reason == "cancelled"
        with pytest.raises(InvalidTransition):
            services.job_cancel(job=job, actor=alice)

    def test_maintainer_retries_any_failure_with_a_fresh_budget(self, alice, maintainer, alice_variant, noop):
        job, _ = submit(alice, alice_variant, noop)
        services.job_claim(job_id=job.pk, worker="w1@h")
        services.job_fail(job_id=job.pk, attempt=1, reason=FailureReason.OUT_OF_MEMORY, message="oom")
        retried = services.job_retry(job=job, actor=maintainer)
        assert retried.status == JobStatus.QUEUED and retried.max_attempts == 1 + noop.max_attempts
        assert retried.failure_reason == "" and not retried.counts_against_quota
        assert AuditEvent.objects.filter(verb="job.retry_by_maintainer", target_id=str(job.pk)).exists()

    def test_submitter_reruns_only_infrastructure_failures(self, alice, bob, alice_variant, noop):
        job, _ = submit(alice, alice_variant, noop)
        services.job_claim(job_id=job.pk, worker="w1@h")
        services.job_fail(job_id=job.pk, attempt=1, reason=FailureReason.HASH_MISMATCH, message="bad hash")
        with pytest.raises(PermissionDenied) as exc:
            services.job_retry(job=job, actor=alice)
        assert "infrastructure" in exc.value.detail
        BenchmarkJob.objects.filter(pk=job.pk).update(failure_reason=FailureReason.ARTIFACT_UNAVAILABLE)
        with pytest.raises(PermissionDenied):
            services.job_retry(job=job, actor=bob)
        assert services.job_retry(job=job, actor=alice).status == JobStatus.QUEUED

    def test_cancelled_and_live_jobs_are_not_retried(self, alice, maintainer, alice_variant, noop):
        job, _ = submit(alice, alice_variant, noop)
        with pytest.raises(InvalidTransition):
            services.job_retry(job=job, actor=maintainer)
        services.job_cancel(job=job, actor=alice)
        with pytest.raises(InvalidTransition):
            services.job_retry(job=job, actor=maintainer)

    def test_retry_defers_to_a_newer_job_with_the_same_key(self, alice, maintainer, alice_variant, noop):
        job, _ = submit(alice, alice_variant, noop)
        services.job_claim(job_id=job.pk, worker="w1@h")
        services.job_fail(job_id=job.pk, attempt=1, reason=FailureReason.OUT_OF_MEMORY, message="oom")
        newer, created = submit(alice, alice_variant, noop)
        assert created
        with pytest.raises(Conflict) as exc:
            services.job_retry(job=job, actor=maintainer)
        assert exc.value.extra["existing_job"] == newer.pk


# --- recovery ---------------------------------------------------------------------------------------------


class TestRecovery:
    def test_stale_running_jobs_are_requeued_then_failed(self, alice, alice_variant, noop, settings):
        job, _ = submit(alice, alice_variant, noop)
        BenchmarkJob.objects.filter(pk=job.pk).update(max_attempts=2)
        for attempt in (1, 2):
            BenchmarkJob.objects.filter(pk=job.pk).update(not_before=None)
            assert services.job_claim(job_id=job.pk, worker="dead@h").attempts == attempt
            later = timezone.now() + timedelta(seconds=settings.MC_JOB_STALE_AFTER_S + 5)
            report = services.jobs_recover(now=later)
            assert report["stale"] == 1
        job.refresh_from_db()
        assert job.status == JobStatus.FAILED and job.failure_reason == FailureReason.WORKER_LOST
        assert "heartbeats" in job.failure_message

    def test_stale_cancelled_job_ends_cancelled(self, alice, alice_variant, noop, settings):
        job, _ = submit(alice, alice_variant, noop)
        services.job_claim(job_id=job.pk, worker="dead@h")
        services.job_cancel(job=job, actor=alice)
        services.jobs_recover(now=timezone.now() + timedelta(seconds=settings.MC_JOB_STALE_AFTER_S + 5))
        job.refresh_from_db()
        assert job.status == JobStatus.CANCELLED

    def test_never_sent_jobs_are_dispatched_by_the_beat(self, alice, alice_variant, noop, sent):
        job, _ = submit(alice, alice_variant, noop)
        assert sent == []
        services.jobs_recover()
        assert sent == [(job.pk, "bench.cpu")]

    def test_a_failed_publish_puts_the_job_back(self, alice, alice_variant, noop, monkeypatch):
        def broker_down(job_id, queue):  # type: ignore[no-untyped-def]
            raise ConnectionError("broker down")

        monkeypatch.setattr("apps.benchmarks.dispatch.send_run_job", broker_down)
        job, _ = submit(alice, alice_variant, noop)
        assert dispatch.jobs_dispatch(queue="bench.cpu") == 0
        job.refresh_from_db()
        assert job.dispatched_at is None

    def test_after_a_failed_publish_submissions_leave_the_broker_alone_for_a_while(
        self, alice, alice_variant, noop, monkeypatch, sent
    ):
        attempts: list[int] = []

        def broker_down(job_id, queue):  # type: ignore[no-untyped-def]
            attempts.append(job_id)
            raise ConnectionError("broker down")

        monkeypatch.setattr("apps.benchmarks.dispatch.send_run_job", broker_down)
        submit(alice, alice_variant, noop, steps=1)
        assert dispatch.jobs_dispatch(queue="bench.cpu", force=False) == 0 and len(attempts) == 1
        assert dispatch.jobs_dispatch(queue="bench.cpu", force=False) == 0 and len(attempts) == 1
        services.jobs_recover()  # the beat always tries
        assert len(attempts) == 2
        monkeypatch.setattr("apps.benchmarks.dispatch.send_run_job", lambda job_id, queue: sent.append(job_id))
        assert services.jobs_recover()["dispatched"] == 1

    def test_lost_messages_are_released_and_sent_again(self, alice, alice_variant, noop, sent, settings):
        settings.MC_DISPATCH_HOLD_S = 0  # the resend at once, not after the claimed job's run (test_chunks)
        dispatch.worker_seen(name="w1@h", queues=["bench.cpu"])
        first, _ = submit(alice, alice_variant, noop, steps=1)
        second, _ = submit(alice, alice_variant, noop, steps=2)
        dispatch.jobs_dispatch(queue="bench.cpu")
        assert [j for j, _ in sent] == [first.pk, second.pk]
        sent.clear()
        # the later message was consumed, the earlier one never arrived (a killed worker had prefetched it)
        past = timezone.now() - timedelta(seconds=settings.MC_JOB_UNDELIVERED_AFTER_S + 10)
        BenchmarkJob.objects.filter(pk=first.pk).update(dispatched_at=past)
        BenchmarkJob.objects.filter(pk=second.pk).update(dispatched_at=past + timedelta(seconds=5))
        services.job_claim(job_id=second.pk, worker="w1@h")
        dispatch.worker_seen(name="w1@h", queues=["bench.cpu"])
        report = services.jobs_recover()
        assert report["released"] == 1 and sent == [(first.pk, "bench.cpu")]

    def test_messages_of_a_queue_nobody_consumes_are_left_alone(self, alice, alice_variant, noop, sent, settings):
        job, _ = submit(alice, alice_variant, noop)
        dispatch.jobs_dispatch(queue="bench.cpu")
        past = timezone.now() - timedelta(seconds=settings.MC_JOB_UNDELIVERED_AFTER_S + 10)
        BenchmarkJob.objects.filter(pk=job.pk).update(dispatched_at=past)
        assert services.jobs_recover()["released"] == 0

    def test_idle_consumers_mean_the_message_was_lost(self, alice, alice_variant, noop, sent, settings):
        job, _ = submit(alice, alice_variant, noop)
        dispatch.jobs_dispatch(queue="bench.cpu")
        past = timezone.now() - timedelta(seconds=settings.MC_JOB_UNDELIVERED_AFTER_S + 10)
        BenchmarkJob.objects.filter(pk=job.pk).update(dispatched_at=past)
        dispatch.worker_seen(name="w1@h", queues=["bench.cpu"])
        assert services.jobs_recover()["released"] == 1

    def test_the_beat_forgets_expired_idempotency_keys_and_long_gone_workers(self, alice, settings):
        from apps.benchmarks.models import IdempotencyRecord

        now = timezone.now()
        old = IdempotencyRecord.objects.create(user=alice, key="old", request_hash="h", status_code=201, body={})
        IdempotencyRecord.objects.filter(pk=old.pk).update(
            created_at=now - timedelta(seconds=settings.MC_IDEMPOTENCY_TTL_S + 1)
        )
        IdempotencyRecord.objects.create(user=alice, key="new", request_hash="h", status_code=201, body={})
        WorkerNode.objects.create(name="gone@h", last_seen_at=now - timedelta(days=8))
        WorkerNode.objects.create(name="trusted@h", last_seen_at=now - timedelta(days=8), agreements=3)
        services.jobs_recover()
        assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]
        assert list(WorkerNode.objects.values_list("name", flat=True)) == ["trusted@h"]


# --- fair share -------------------------------------------------------------------------------------------


class TestFairShare:
    def test_one_users_backlog_does_not_delay_anothers_single_job(
        self, alice, bob, alice_variant, make_variant, noop, sent, settings
    ):
        from apps.benchmarks.selectors import queue_positions

        settings.MC_DISPATCH_BUFFER = settings.MC_DISPATCH_QUICK_BUFFER = 2  # noop jobs: the in-process lane
        alice.max_active_jobs = 1000
        alice.save()
        backlog = [submit(alice, alice_variant, noop, steps=i + 1)[0] for i in range(500)]
        dispatch.jobs_dispatch(queue="bench.cpu")
        assert [j for j, _ in sent] == [backlog[0].pk, backlog[1].pk]  # the buffer holds two messages
        single, _ = submit(bob, make_variant(bob, "bobs"), noop)
        jobs = list(BenchmarkJob.objects.filter(pk__in=[single.pk, backlog[2].pk, backlog[499].pk]))
        queue_positions(jobs)
        positions = {j.pk: j.queue_position for j in jobs}
        # behind only the two messages already sent: the next free slot is Bob's
        assert positions[single.pk] == 3
        assert positions[backlog[2].pk] == 4 and positions[backlog[499].pk] == 501
        sent.clear()
        services.job_claim(job_id=backlog[0].pk, worker="w1@h")
        dispatch.jobs_dispatch(queue="bench.cpu")
        assert sent[0] == (single.pk, "bench.cpu")

    def test_submitters_take_turns_and_priority_comes_first(
        self, alice, bob, maintainer, alice_variant, make_variant, noop, sent, settings
    ):
        from apps.benchmarks.selectors import queue_positions

        settings.MC_DISPATCH_BUFFER = settings.MC_DISPATCH_QUICK_BUFFER = 100
        settings.MC_DISPATCH_CHUNK = 1
        bob_variant = make_variant(bob, "bobs")
        a = [submit(alice, alice_variant, noop, steps=i + 1)[0] for i in range(3)]
        b = [submit(bob, bob_variant, noop, steps=i + 1)[0] for i in range(2)]
        urgent, _ = services.job_submit(
            actor=maintainer, revision=bob_variant.current_revision, benchmark=noop, config={"steps": 99}, priority=10
        )
        jobs = list(BenchmarkJob.objects.filter(status=JobStatus.QUEUED))
        queue_positions(jobs)
        expected = [urgent.pk, a[0].pk, b[0].pk, a[1].pk, b[1].pk, a[2].pk]
        by_position = [j.pk for j in sorted(jobs, key=lambda j: j.queue_position)]
        assert by_position == expected
        dispatch.jobs_dispatch(queue="bench.cpu")
        assert [j for j, _ in sent] == expected  # the dispatcher and the reported positions agree

    def test_jobs_in_backoff_wait(self, alice, alice_variant, noop, sent):
        job, _ = submit(alice, alice_variant, noop)
        BenchmarkJob.objects.filter(pk=job.pk).update(not_before=timezone.now() + timedelta(minutes=5))
        assert dispatch.jobs_dispatch(queue="bench.cpu") == 0
        assert dispatch.jobs_dispatch(queue="bench.cpu", now=timezone.now() + timedelta(minutes=6)) == 1


# --- verification -----------------------------------------------------------------------------------------


class TestVerification:
    def test_agreement_marks_the_result_verified(self, alice, alice_variant, noop):
        job, _ = submit(alice, alice_variant, noop)
        run_to_success(job, worker="w1@h", metrics={"ok": 0.900})
        check, created = services.job_verify(job=job, actor=alice)
        assert created and check.verifies_id == job.pk and check.exclude_worker == "w1@h"
        again, created_again = services.job_verify(job=job, actor=alice)
        assert not created_again and again.pk == check.pk
        run_to_success(check, worker="w2@h", metrics={"ok": 0.905})
        result = JobResult.objects.get(job=job)
        assert result.verified and result.verification_status == VerificationStatus.VERIFIED
        record = ResultVerification.objects.get(result=result)
        assert record.agreed and record.verifier_worker == "w2@h" and abs(record.delta - 0.005) < 1e-9
        assert SubmitterProfile.objects.get(user=alice).consecutive_agreements == 1

    def test_disagreement_flags_the_result(self, alice, alice_variant, noop):
        WorkerNode.objects.create(name="w1@h", last_seen_at=timezone.now(), consecutive_agreements=5)
        job, _ = submit(alice, alice_variant, noop)
        run_to_success(job, worker="w1@h", metrics={"ok": 0.9})
        check, _ = services.job_verify(job=job, actor=alice)
        run_to_success(check, worker="w2@h", metrics={"ok": 0.5})
        result = JobResult.objects.get(job=job)
        assert not result.verified and result.verification_status == VerificationStatus.DISPUTED
        assert AuditEvent.objects.filter(verb="result.disputed").exists()
        assert WorkerNode.objects.get(name="w1@h").consecutive_agreements == 0
        assert SubmitterProfile.objects.get(user=alice).disagreements == 1

    def test_a_maintainer_settles_a_dispute(self, alice, maintainer, alice_variant, noop):
        job, _ = submit(alice, alice_variant, noop)
        run_to_success(job, metrics={"ok": 0.9})
        check, _ = services.job_verify(job=job, actor=alice)
        run_to_success(check, worker="w2@h", metrics={"ok": 0.1})
        record = ResultVerification.objects.get(verifier_job=check)
        with pytest.raises(PermissionDenied):
            verification.verification_resolve(verification=record, actor=alice, accept_original=True)
        result = verification.verification_resolve(verification=record, actor=maintainer, accept_original=True)
        assert result.verified and result.verification_status == VerificationStatus.VERIFIED

    def test_who_may_ask_and_what(self, alice, bob, reviewer, alice_variant, noop):
        job, _ = submit(alice, alice_variant, noop)
        with pytest.raises(InvalidTransition):
            services.job_verify(job=job, actor=alice)  # nothing to verify yet
        run_to_success(job)
        with pytest.raises(PermissionDenied):
            services.job_verify(job=job, actor=bob)
        check, _ = services.job_verify(job=job, actor=reviewer)
        assert not check.counts_against_quota and check.submitted_by == reviewer
        with pytest.raises(Conflict):
            services.job_verify(job=check, actor=reviewer)

    def test_the_verification_goes_to_another_live_worker(self, alice, alice_variant, noop, sent):
        dispatch.worker_seen(name="w1@h", queues=["bench.cpu", worker_queue("w1@h")])
        dispatch.worker_seen(name="w2@h", queues=["bench.cpu", worker_queue("w2@h")])
        job, _ = submit(alice, alice_variant, noop)
        run_to_success(job, worker="w1@h")
        check, _ = services.job_verify(job=job, actor=alice)
        dispatch.jobs_dispatch(queue="bench.cpu")
        assert (check.pk, worker_queue("w2@h")) in sent
        check.refresh_from_db()
        assert check.target_worker == "w2@h"
        # if the original worker gets it anyway (a duplicate), it hands it back while w2 is alive
        assert services.job_claim(job_id=check.pk, worker="w1@h") is None
        check.refresh_from_db()
        assert check.status == JobStatus.QUEUED and check.dispatched_at is None
        assert services.job_claim(job_id=check.pk, worker="w2@h").worker_host == "w2@h"

    def test_with_one_worker_the_verification_runs_there_and_says_so(self, alice, alice_variant, noop, sent):
        dispatch.worker_seen(name="w1@h", queues=["bench.cpu"])
        job, _ = submit(alice, alice_variant, noop)
        run_to_success(job, worker="w1@h")
        check, _ = services.job_verify(job=job, actor=alice)
        dispatch.jobs_dispatch(queue="bench.cpu")
        assert (check.pk, "bench.cpu") in sent
        run_to_success(check, worker="w1@h")
        record = ResultVerification.objects.get(verifier_job=check)
        assert record.same_worker and "same worker" in record.note
        assert JobResult.objects.get(job=job).verified

    def test_spot_check_rate_falls_as_trust_grows(self, settings):
        settings.MC_VERIFY_TRUST_AFTER = 3
        settings.MC_VERIFY_MIN_RATE = 0.05
        assert verification.spot_check_rate(submitter_streak=None, worker_streak=50) == 1.0
        assert verification.spot_check_rate(submitter_streak=2, worker_streak=50) == 1.0
        assert verification.spot_check_rate(submitter_streak=50, worker_streak=0) == 1.0
        assert verification.spot_check_rate(submitter_streak=6, worker_streak=50) == 0.5
        assert verification.spot_check_rate(submitter_streak=1000, worker_streak=1000) == 0.05

    def test_new_submitters_are_always_spot_checked(self, alice, alice_variant, noop, settings, monkeypatch):
        settings.MC_SPOT_CHECKS = True
        job, _ = submit(alice, alice_variant, noop)
        run_to_success(job, worker="w1@h")
        spot = BenchmarkJob.objects.get(verifies=job)
        assert spot.is_spot_check and not spot.counts_against_quota and spot.exclude_worker == "w1@h"

    def test_trusted_sources_are_checked_at_their_rate(self, alice, alice_variant, noop, settings, monkeypatch):
        settings.MC_SPOT_CHECKS = True
        SubmitterProfile.objects.create(user=alice, consecutive_agreements=30)
        WorkerNode.objects.create(name="w1@h", last_seen_at=timezone.now(), consecutive_agreements=30)
        monkeypatch.setattr(verification, "spot_check_random", lambda: 0.5)  # rate is 0.1: skipped
        job, _ = submit(alice, alice_variant, noop, steps=1)
        run_to_success(job, worker="w1@h")
        assert not BenchmarkJob.objects.filter(verifies=job).exists()
        monkeypatch.setattr(verification, "spot_check_random", lambda: 0.05)  # under the rate: checked
        job2, _ = submit(alice, alice_variant, noop, steps=2)
        run_to_success(job2, worker="w1@h")
        assert BenchmarkJob.objects.filter(verifies=job2, is_spot_check=True).exists()


# --- hooks ------------------------------------------------------------------------------------------------


class TestHooks:
    def test_finished_hooks_run_after_commit_with_the_job_id(
        self, alice, alice_variant, noop, monkeypatch, django_capture_on_commit_callbacks
    ):
        seen: list[int] = []
        monkeypatch.setattr(hooks, "JOB_FINISHED_HOOKS", [seen.extend, lambda job_ids: 1 / 0])
        job, _ = submit(alice, alice_variant, noop)
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            run_to_success(job)
        assert seen == []  # nothing before the commit
        for callback in callbacks:
            callback()  # a failing hook does not stop the others
        assert seen == [job.pk]

    def test_cancel_of_a_queued_job_runs_the_hooks(
        self, alice, alice_variant, noop, monkeypatch, django_capture_on_commit_callbacks
    ):
        seen: list[int] = []
        monkeypatch.setattr(hooks, "JOB_FINISHED_HOOKS", [seen.extend])
        job, _ = submit(alice, alice_variant, noop)
        with django_capture_on_commit_callbacks(execute=True):
            services.job_cancel(job=job, actor=alice)
        assert seen == [job.pk]


def test_test_runner_module_has_no_django_imports():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(runners))
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }
    assert not any(m and m.startswith(("django", "apps.benchmarks.models")) for m in modules)
