"""Chunks of short jobs: dispatched several ids per message, claimed in one statement, recorded in bulk."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.services import audit_chain_verify
from apps.benchmarks import dispatch, hooks, services
from apps.benchmarks.choices import FailureReason, JobStatus
from apps.benchmarks.models import BenchmarkJob, JobResult
from apps.benchmarks.tests import runners
from apps.core.testing import count_queries
from workers import execution
from workers.runners.base import RunResult

pytestmark = pytest.mark.django_db


def submit_many(user, make_variant, benchmark, n, prefix="m"):  # type: ignore[no-untyped-def]
    """n jobs of `user`, each on its own variant (as a real queue's would be spread)."""
    jobs = []
    for i in range(n):
        variant = make_variant(user, f"{prefix}-{i}")
        job, created = services.job_submit(
            actor=user, revision=variant.current_revision, benchmark=benchmark, config={"steps": 1}
        )
        assert created
        jobs.append(job)
    return jobs


def backlog(settings, user, make_variant, benchmark, n, *, buffer, chunk=None, room=50):  # type: ignore[no-untyped-def]
    """n undispatched short jobs of `user` (who may hold `room` active jobs), with the lane's buffer and chunk
    size set: what the dispatcher finds under a backlog."""
    settings.MC_DISPATCH_QUICK_BUFFER = buffer
    if chunk is not None:
        settings.MC_DISPATCH_CHUNK = chunk
    user.max_active_jobs = room
    user.save()
    jobs = submit_many(user, make_variant, benchmark, n)
    BenchmarkJob.objects.update(dispatched_at=None)
    return jobs


def lone_job_sent(settings, user, make_variant, benchmark, *, claim=False):  # type: ignore[no-untyped-def]
    """With a short-job lane of 8 (chunks of 4), one job of `user` submitted and dispatched (nothing was in
    flight: it goes at once), and claimed if `claim`: the work in flight the hold waits for."""
    settings.MC_DISPATCH_QUICK_BUFFER = 8
    user.max_active_jobs = 50
    user.save()
    [job] = submit_many(user, make_variant, benchmark, 1, prefix="a")
    assert dispatch.jobs_dispatch(queue="bench.cpu") == 1
    if claim:
        [job] = services.jobs_claim(job_ids=[job.pk], worker="w1@h")
    return job


def completion(job, attempt=None, progress=None, **run):  # type: ignore[no-untyped-def]
    fields = {
        "metrics": {"ok": 1.0},
        "stderr": {},
        "samples": 1,
        "duration_s": 0.01,
        "runner": "noop",
        "runner_version": "1",
        "environment": {"python": "3.11"},
    }
    fields.update(run)
    return services.Completion(
        job_id=job.pk,
        attempt=job.attempts if attempt is None else attempt,
        result=RunResult(**fields),
        progress=progress,
    )


class TestDispatchChunks:
    def test_short_jobs_go_out_in_chunks_of_half_the_buffer(self, alice, make_variant, noop, sent, chunks, settings):
        jobs = backlog(settings, alice, make_variant, noop, 12, buffer=8, chunk=16)
        sent.clear()
        chunks.clear()
        assert dispatch.jobs_dispatch(queue="bench.cpu") == 8
        # the buffer counts jobs: 8 of them, in two messages of 4 (half the buffer), in dispatch order
        assert [ids for ids, _ in chunks] == [[j.pk for j in jobs[:4]], [j.pk for j in jobs[4:8]]]
        assert [job_id for job_id, _ in sent] == [j.pk for j in jobs[:8]]
        assert BenchmarkJob.objects.buffered("bench.cpu").count() == 8

    def test_chunk_size_is_capped_by_the_setting(self, alice, make_variant, noop, sent, chunks, settings):
        backlog(settings, alice, make_variant, noop, 8, buffer=8, chunk=3)
        sent.clear()
        chunks.clear()
        dispatch.jobs_dispatch(queue="bench.cpu")
        assert [len(ids) for ids, _ in chunks] == [3, 3, 2]
        assert len(sent) == 8

    def test_chunk_of_one_means_one_message_per_job(self, alice, make_variant, noop, sent, chunks, settings):
        settings.MC_DISPATCH_QUICK_BUFFER = 8
        settings.MC_DISPATCH_CHUNK = 1
        submit_many(alice, make_variant, noop, 4)
        dispatch.jobs_dispatch(queue="bench.cpu")
        assert chunks == [] and len(sent) == 4

    def test_sandboxed_runners_get_a_message_per_job(self, alice, make_variant, make_benchmark, sent, chunks, settings):
        settings.MC_DISPATCH_QUICK_BUFFER = 8
        slow = make_benchmark(slug="slow", runner=f"{runners.MODULE}:ConstantRunner")
        jobs = submit_many(alice, make_variant, slow, 4)
        dispatch.jobs_dispatch(queue="bench.cpu")
        assert chunks == []
        assert [job_id for job_id, _ in sent] == [j.pk for j in jobs]

    def test_the_two_lanes_have_their_own_buffers(
        self, alice, make_variant, make_benchmark, noop, sent, chunks, settings
    ):
        settings.MC_DISPATCH_BUFFER = 2
        settings.MC_DISPATCH_QUICK_BUFFER = 8
        settings.MC_DISPATCH_HOLD_S = 0  # the buffers alone (a partial chunk is held while work is in flight)
        alice.max_active_jobs = 50
        alice.save()
        slow = make_benchmark(slug="slow", runner=f"{runners.MODULE}:ConstantRunner")
        slow_jobs = submit_many(alice, make_variant, slow, 5, prefix="s")
        quick_jobs = submit_many(alice, make_variant, noop, 10, prefix="q")
        BenchmarkJob.objects.update(dispatched_at=None)
        sent.clear()
        chunks.clear()
        assert dispatch.jobs_dispatch(queue="bench.cpu") == 10
        # two sandboxed jobs, one per message; eight short ones in two chunks; each lane in fair-share order
        assert [job_id for job_id, _ in sent] == [j.pk for j in slow_jobs[:2]] + [j.pk for j in quick_jobs[:8]]
        assert [ids for ids, _ in chunks] == [[j.pk for j in quick_jobs[:4]], [j.pk for j in quick_jobs[4:8]]]
        # a claim in one lane refills that lane only
        services.jobs_claim(job_ids=[j.pk for j in quick_jobs[:4]], worker="w1@h")
        sent.clear()
        dispatch.jobs_dispatch(queue="bench.cpu")
        assert [job_id for job_id, _ in sent] == [j.pk for j in quick_jobs[8:]]
        services.job_claim(job_id=slow_jobs[0].pk, worker="w1@h")
        sent.clear()
        dispatch.jobs_dispatch(queue="bench.cpu")
        assert [job_id for job_id, _ in sent] == [slow_jobs[2].pk]

    def test_a_lane_is_refilled_only_once_drained_to_half(self, alice, make_variant, noop, sent, chunks, settings):
        # Regression: the empty sandboxed lane always "needed" a refill, and the short lane was topped up after
        # every claim, so its chunks halved each time down to single ids.
        settings.MC_DISPATCH_QUICK_BUFFER = 8
        alice.max_active_jobs = 50
        alice.save()
        submit_many(alice, make_variant, noop, 30)
        BenchmarkJob.objects.update(dispatched_at=None)
        dispatch.jobs_dispatch(queue="bench.cpu")
        assert [len(ids) for ids, _ in chunks] == [4, 4]
        chunks.clear()
        services.jobs_claim(job_ids=[job_id for job_id, _ in sent[:2]], worker="w1@h")  # 6 left: more than half
        assert dispatch.jobs_dispatch(queue="bench.cpu") == 0 and chunks == []
        services.jobs_claim(job_ids=[job_id for job_id, _ in sent[2:4]], worker="w1@h")  # 4 left: half
        # the refill is one chunk of half the buffer: the other consumer's message is still out
        assert dispatch.jobs_dispatch(queue="bench.cpu") == 4 and [len(ids) for ids, _ in chunks] == [4]

    def test_refills_keep_full_chunks(self, alice, make_variant, noop, sent, chunks, settings):
        # Regression: a refill split the room in two, so with a backlog the chunks after the first two were half
        # the size (16 of the default 32), and every job paid twice the per-message cost.
        backlog(settings, alice, make_variant, noop, 60, buffer=16, chunk=8, room=80)
        dispatch.jobs_dispatch(queue="bench.cpu")
        assert [len(ids) for ids, _ in chunks] == [8, 8]
        outstanding = [ids for ids, _ in chunks]
        for _ in range(4):
            chunks.clear()
            services.jobs_claim(job_ids=outstanding.pop(0), worker="w1@h")  # a consumer takes the oldest message
            dispatch.jobs_dispatch(queue="bench.cpu")
            assert [len(ids) for ids, _ in chunks] == [8]
            outstanding += [ids for ids, _ in chunks]
            assert BenchmarkJob.objects.buffered("bench.cpu").count() == 16

    def test_a_partial_chunk_waits_for_the_work_in_flight_then_goes_in_one_message(
        self, alice, make_variant, noop, sent, chunks, settings
    ):
        # Nagle's rule: one job per submission used to give messages of one to three ids, each paying a claim, a
        # bulk write and the hooks; the jobs that arrive while work is in flight now share the next message.
        first = lone_job_sent(settings, alice, make_variant, noop)  # nothing was in flight: it went at once
        later = submit_many(alice, make_variant, noop, 3, prefix="b")
        assert dispatch.jobs_dispatch(queue="bench.cpu") == 0  # held: the first is sent and unclaimed
        assert not BenchmarkJob.objects.filter(pk__in=[j.pk for j in later], dispatched_at__isnull=False).exists()
        [claimed] = services.jobs_claim(job_ids=[first.pk], worker="w1@h")
        assert dispatch.jobs_dispatch(queue="bench.cpu") == 0  # still held: it runs
        services.jobs_complete([completion(claimed)])
        chunks.clear()
        assert dispatch.jobs_dispatch(queue="bench.cpu") == 3
        assert [ids for ids, _ in chunks] == [[j.pk for j in later]]

    def test_a_full_chunk_is_never_held(self, alice, make_variant, noop, sent, chunks, settings):
        lone_job_sent(settings, alice, make_variant, noop, claim=True)
        later = submit_many(alice, make_variant, noop, 3, prefix="b")
        assert dispatch.jobs_dispatch(queue="bench.cpu") == 0
        later += submit_many(alice, make_variant, noop, 1, prefix="c")
        # a chunk's worth waits: it goes while the first still runs
        assert dispatch.jobs_dispatch(queue="bench.cpu") == 4
        assert [ids for ids, _ in chunks] == [[j.pk for j in later]]

    def test_work_in_flight_longer_than_the_hold_holds_nothing(self, alice, make_variant, noop, sent, settings):
        # a worker that died mid-chunk, a lost message, a slow runner: the lane does not wait for them
        settings.MC_DISPATCH_HOLD_S = 0.5
        first = lone_job_sent(settings, alice, make_variant, noop, claim=True)
        [second] = submit_many(alice, make_variant, noop, 1, prefix="b")
        assert dispatch.jobs_dispatch(queue="bench.cpu") == 0
        BenchmarkJob.objects.filter(pk=first.pk).update(started_at=timezone.now() - timedelta(seconds=1))
        assert dispatch.jobs_dispatch(queue="bench.cpu") == 1 and sent[-1][0] == second.pk
        # and a message sent longer ago than the hold and never claimed (lost) holds nothing either
        [third] = submit_many(alice, make_variant, noop, 1, prefix="c")
        assert dispatch.jobs_dispatch(queue="bench.cpu") == 0
        BenchmarkJob.objects.filter(pk=second.pk).update(dispatched_at=timezone.now() - timedelta(seconds=1))
        assert dispatch.jobs_dispatch(queue="bench.cpu") == 1 and sent[-1][0] == third.pk

    def test_a_zero_hold_sends_at_once(self, alice, make_variant, noop, sent, settings):
        settings.MC_DISPATCH_QUICK_BUFFER = 8
        settings.MC_DISPATCH_HOLD_S = 0
        alice.max_active_jobs = 50
        alice.save()
        for i in range(3):
            [job] = submit_many(alice, make_variant, noop, 1, prefix=f"m{i}")
            assert dispatch.jobs_dispatch(queue="bench.cpu") == 1 and sent[-1][0] == job.pk

    def test_sandboxed_jobs_are_never_held(self, alice, make_variant, make_benchmark, noop, sent, settings):
        quick = lone_job_sent(settings, alice, make_variant, noop)
        slow = make_benchmark(slug="slow", runner=f"{runners.MODULE}:ConstantRunner")
        slow_jobs = submit_many(alice, make_variant, slow, 2, prefix="s")
        more = submit_many(alice, make_variant, noop, 1, prefix="r")
        assert dispatch.jobs_dispatch(queue="bench.cpu") == 2  # the sandboxed ones; the short one is held
        assert [j for j, _ in sent] == [quick.pk] + [j.pk for j in slow_jobs]
        assert BenchmarkJob.objects.get(pk=more[0].pk).dispatched_at is None

    def test_the_worker_sends_the_held_jobs_when_its_message_is_done(
        self, alice, make_variant, noop, sent, chunks, settings, monkeypatch
    ):
        from workers import tasks

        monkeypatch.setattr(tasks, "close_old_connections", lambda: None)  # the test's connection stays open
        first = lone_job_sent(settings, alice, make_variant, noop)
        later = submit_many(alice, make_variant, noop, 2, prefix="b")
        assert dispatch.jobs_dispatch(queue="bench.cpu") == 0
        tasks._claim_and_run("w1@h", [first.pk])  # claims, dispatches (held: it runs), runs, dispatches again
        assert BenchmarkJob.objects.get(pk=first.pk).status == JobStatus.SUCCEEDED
        assert [ids for ids, _ in chunks] == [[j.pk for j in later]]

    def test_a_newcomer_waits_for_the_buffered_jobs_only(self, alice, bob, make_variant, noop, sent, settings):
        settings.MC_DISPATCH_QUICK_BUFFER = 4
        alice.max_active_jobs = 50
        alice.save()
        submit_many(alice, make_variant, noop, 20)
        dispatch.jobs_dispatch(queue="bench.cpu")
        buffered_before = BenchmarkJob.objects.buffered("bench.cpu").count()
        assert buffered_before == 4
        [bobs] = submit_many(bob, make_variant, noop, 1, prefix="b")
        dispatch.jobs_dispatch(queue="bench.cpu")
        # the buffer is full: Bob's job is the next one sent when a slot frees, whatever Alice's backlog
        assert BenchmarkJob.objects.get(pk=bobs.pk).dispatched_at is None
        claimed = services.jobs_claim(job_ids=[j for j, _ in sent[:2]], worker="w1@h")
        assert len(claimed) == 2
        sent.clear()
        dispatch.jobs_dispatch(queue="bench.cpu")
        assert sent[0][0] == bobs.pk

    def test_a_failed_chunk_publish_puts_its_jobs_back(self, alice, make_variant, noop, monkeypatch, settings):
        settings.MC_DISPATCH_QUICK_BUFFER = 8

        def broker_down(job_ids, queue):  # type: ignore[no-untyped-def]
            raise ConnectionError("broker down")

        monkeypatch.setattr(dispatch, "send_run_chunk", broker_down)
        alice.max_active_jobs = 50
        alice.save()
        jobs = submit_many(alice, make_variant, noop, 6)
        BenchmarkJob.objects.update(dispatched_at=None)
        assert dispatch.jobs_dispatch(queue="bench.cpu") == 0
        assert not BenchmarkJob.objects.filter(pk__in=[j.pk for j in jobs], dispatched_at__isnull=False).exists()


class TestClaimMany:
    def test_claims_the_queued_ones_in_one_statement_and_one_audit_append(self, alice, make_variant, noop):
        alice.max_active_jobs = 50
        alice.save()
        jobs = submit_many(alice, make_variant, noop, 6)
        services.job_cancel(job=jobs[1], actor=alice)  # cancelled: not claimable
        taken = services.job_claim(job_id=jobs[2].pk, worker="other@h")  # already someone else's
        assert taken is not None
        claimed = services.jobs_claim(job_ids=[j.pk for j in jobs], worker="w1@h")
        assert [j.pk for j in claimed] == [jobs[0].pk, jobs[3].pk, jobs[4].pk, jobs[5].pk]
        assert all(j.status == JobStatus.RUNNING and j.attempts == 1 and j.worker_host == "w1@h" for j in claimed)
        assert claimed[0].benchmark.slug == "noop"  # loaded with the job
        assert AuditEvent.objects.filter(verb="job.start", target_id__in=[str(j.pk) for j in claimed]).count() == 4
        assert BenchmarkJob.objects.get(pk=jobs[2].pk).worker_host == "other@h"
        assert audit_chain_verify().ok

    def test_query_count_does_not_grow_with_the_chunk(self, alice, make_variant, noop):
        alice.max_active_jobs = 50
        alice.save()
        counts = []
        for n, prefix in ((2, "a"), (12, "b")):
            jobs = submit_many(alice, make_variant, noop, n, prefix=prefix)
            with count_queries() as ctx:
                assert len(services.jobs_claim(job_ids=[j.pk for j in jobs], worker="w1@h")) == n
            counts.append(len(ctx.captured_queries))
        assert counts[0] == counts[1], counts

    def test_a_stale_running_job_in_a_chunk_is_taken_over(self, alice, make_variant, noop, settings):
        jobs = submit_many(alice, make_variant, noop, 2)
        services.job_claim(job_id=jobs[0].pk, worker="dead@h")
        BenchmarkJob.objects.filter(pk=jobs[0].pk).update(
            heartbeat_at=timezone.now() - timedelta(seconds=settings.MC_JOB_STALE_AFTER_S + 5)
        )
        claimed = services.jobs_claim(job_ids=[jobs[0].pk, jobs[1].pk], worker="w1@h")
        assert [(j.pk, j.attempts) for j in claimed] == [(jobs[0].pk, 2), (jobs[1].pk, 1)]
        assert AuditEvent.objects.filter(verb="job.takeover", target_id=str(jobs[0].pk)).exists()

    def test_duplicate_delivery_of_a_chunk_claims_nothing(self, alice, make_variant, noop):
        jobs = submit_many(alice, make_variant, noop, 3)
        ids = [j.pk for j in jobs]
        assert len(services.jobs_claim(job_ids=ids, worker="w1@h")) == 3
        assert services.jobs_claim(job_ids=ids, worker="w2@h") == []
        assert set(BenchmarkJob.objects.filter(pk__in=ids).values_list("attempts", flat=True)) == {1}


class TestCompleteMany:
    def test_results_statuses_and_audit_in_bulk_then_one_hook_call(
        self, alice, make_variant, noop, monkeypatch, django_capture_on_commit_callbacks
    ):
        calls: list[list[int]] = []
        monkeypatch.setattr(hooks, "JOB_FINISHED_HOOKS", [calls.append])
        alice.max_active_jobs = 50
        alice.save()
        jobs = submit_many(alice, make_variant, noop, 5)
        claimed = services.jobs_claim(job_ids=[j.pk for j in jobs], worker="w1@h")
        services.job_cancel(job=claimed[3], actor=alice)  # cancel arrives during the last batch
        stale = completion(claimed[4], attempt=claimed[4].attempts + 7)  # not the current attempt: fenced off
        with django_capture_on_commit_callbacks(execute=True):
            done = services.jobs_complete([completion(j, progress=(3, 3)) for j in claimed[:4]] + [stale])
        assert {pk: j.status for pk, j in done.items()} == {
            claimed[0].pk: JobStatus.SUCCEEDED,
            claimed[1].pk: JobStatus.SUCCEEDED,
            claimed[2].pk: JobStatus.SUCCEEDED,
            claimed[3].pk: JobStatus.CANCELLED,
        }
        rows = {j.pk: j for j in BenchmarkJob.objects.filter(pk__in=[j.pk for j in jobs])}
        assert rows[claimed[0].pk].progress_done == 3 and rows[claimed[0].pk].finished_at is not None
        assert rows[claimed[4].pk].status == JobStatus.RUNNING
        assert JobResult.objects.filter(job__in=jobs).count() == 3
        assert AuditEvent.objects.filter(verb="job.succeed").count() == 3
        assert audit_chain_verify().ok
        # the cancelled one when it ended, then the three results in one call
        assert calls == [[claimed[3].pk], sorted(j.pk for j in claimed[:3])]

    def test_a_second_completion_writes_nothing(self, alice, make_variant, noop):
        jobs = submit_many(alice, make_variant, noop, 2)
        claimed = services.jobs_claim(job_ids=[j.pk for j in jobs], worker="w1@h")
        first = services.jobs_complete([completion(j) for j in claimed])
        assert len(first) == 2
        assert services.jobs_complete([completion(j, metrics={"ok": 0.0}) for j in claimed]) == {}
        assert list(JobResult.objects.filter(job__in=jobs).values_list("metrics", flat=True)) == [{"ok": 1.0}] * 2

    def test_query_count_does_not_grow_with_the_chunk(self, alice, make_variant, noop, monkeypatch):
        monkeypatch.setattr(hooks, "JOB_FINISHED_HOOKS", [])
        alice.max_active_jobs = 50
        alice.save()
        counts = []
        for n, prefix in ((2, "a"), (12, "b")):
            jobs = submit_many(alice, make_variant, noop, n, prefix=prefix)
            claimed = services.jobs_claim(job_ids=[j.pk for j in jobs], worker="w1@h")
            with count_queries() as ctx:
                assert len(services.jobs_complete([completion(j) for j in claimed])) == n
            counts.append(len(ctx.captured_queries))
        assert counts[0] == counts[1], counts

    def test_spot_checks_are_decided_per_job(self, alice, make_variant, noop, settings):
        settings.MC_SPOT_CHECKS = True  # a new submitter: every result is re-run
        jobs = submit_many(alice, make_variant, noop, 3)
        claimed = services.jobs_claim(job_ids=[j.pk for j in jobs], worker="w1@h")
        services.jobs_complete([completion(j) for j in claimed])
        assert BenchmarkJob.objects.filter(verifies__in=jobs, is_spot_check=True).count() == 3


class TestHeartbeatMany:
    def test_returns_the_jobs_that_must_stop(self, alice, make_variant, noop):
        jobs = submit_many(alice, make_variant, noop, 3)
        claimed = services.jobs_claim(job_ids=[j.pk for j in jobs], worker="w1@h")
        services.job_cancel(job=claimed[0], actor=alice)
        attempts = {j.pk: j.attempts for j in claimed}
        attempts[claimed[1].pk] += 1  # fenced off
        before = BenchmarkJob.objects.get(pk=claimed[2].pk).heartbeat_at
        assert services.jobs_heartbeat(attempts=attempts) == {claimed[0].pk, claimed[1].pk}
        assert BenchmarkJob.objects.get(pk=claimed[2].pk).heartbeat_at > before


class TestExecuteChunk:
    def test_a_chunk_runs_in_process_and_records_every_outcome(self, alice, make_variant, noop, settings):
        settings.MC_RESULT_FLUSH_S = 0  # a write after every job: still one result each
        alice.max_active_jobs = 50
        alice.save()
        jobs = submit_many(alice, make_variant, noop, 3)
        failing, _ = services.job_submit(actor=alice, revision=jobs[0].revision, benchmark=noop, config={"fail": True})
        claimed = services.jobs_claim(job_ids=[j.pk for j in jobs] + [failing.pk], worker="w1@h")
        outcomes = execution.execute_jobs(claimed)
        assert {pk: j.status for pk, j in outcomes.items()} == {
            **{j.pk: JobStatus.SUCCEEDED for j in jobs},
            failing.pk: JobStatus.QUEUED,
        }
        # the failure was recorded at once (and the job requeued with a backoff: attempts remain)
        failed = BenchmarkJob.objects.get(pk=failing.pk)
        assert failed.failure_reason == FailureReason.RUNNER_ERROR and failed.not_before is not None
        assert JobResult.objects.filter(job__in=jobs).count() == 3

    def test_a_job_cancelled_before_its_turn_does_not_run(self, alice, make_variant, noop):
        jobs = submit_many(alice, make_variant, noop, 2)
        claimed = services.jobs_claim(job_ids=[j.pk for j in jobs], worker="w1@h")
        heartbeat = execution._Heartbeat({j.pk: j.attempts for j in claimed}, 60)
        services.job_cancel(job=claimed[1], actor=alice)
        heartbeat.stopped |= services.jobs_heartbeat(attempts=heartbeat.attempts)
        outcome = execution._run(claimed[1], heartbeat)
        assert outcome is not None and outcome.status == JobStatus.CANCELLED
        assert not JobResult.objects.filter(job=claimed[1]).exists()
