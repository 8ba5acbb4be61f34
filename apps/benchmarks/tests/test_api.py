"""HTTP: benchmarks, jobs, blocklist — auth, roles, scopes, 404-not-403, problems, idempotency, query counts."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.audit.models import AuditEvent
from apps.audit.services import audit_chain_verify
from apps.benchmarks import services
from apps.benchmarks.choices import JobStatus
from apps.benchmarks.models import BenchmarkJob, JobResult
from apps.core.testing import assert_same_query_count, count_queries
from workers.runners.base import RunResult

pytestmark = pytest.mark.django_db

NEW_BENCHMARK = {
    "slug": "tiny",
    "name": "Tiny",
    "runner": "noop",
    "task": "text-classification",
    "metrics": [{"name": "ok", "higher_is_better": True, "primary": True}],
    "config_schema": {"type": "object", "properties": {"steps": {"type": "integer", "minimum": 1}}},
    "default_config": {"steps": 1},
    "dataset": {"uri": "fixtures/none.jsonl", "sha256": "a" * 64, "license": "cc-by-4.0", "size_bytes": 10},
    "resource_class": "cpu",
    "timeout_s": 60,
    "max_attempts": 2,
    "tolerance": 0.02,
}


def post_job(client, variant, benchmark="noop", headers=None, **extra):  # type: ignore[no-untyped-def]
    return client.post(
        "/api/v1/jobs/", {"variant": variant.full_name, "benchmark": benchmark, **extra}, format="json", headers=headers
    )


def finish(job, metrics=None, worker="w1@h"):  # type: ignore[no-untyped-def]
    claimed = services.job_claim(job_id=job["id"] if isinstance(job, dict) else job.pk, worker=worker)
    return services.job_complete(
        job_id=claimed.pk,
        attempt=claimed.attempts,
        result=RunResult(
            metrics=metrics or {"ok": 1.0},
            stderr={"ok": 0.0},
            samples=1,
            duration_s=0.1,
            runner="noop",
            runner_version="1.0.0",
            environment={"python": "3.11.9"},
        ),
    )


# --- benchmarks -------------------------------------------------------------------------------------------


class TestBenchmarksApi:
    def test_anyone_reads_benchmarks(self, api, noop):
        body = api.get("/api/v1/benchmarks/").json()
        assert [b["slug"] for b in body["results"]] == ["noop"]
        detail = api.get("/api/v1/benchmarks/noop/")
        assert detail.status_code == 200 and detail["ETag"]
        data = detail.json()
        assert data["versions"] == ["1"] and data["queue"] == "bench.cpu"
        assert set(data["dataset"]) == {"uri", "sha256", "license", "size_bytes"}
        assert api.get("/api/v1/benchmarks/nope/").status_code == 404

    def test_maintainer_creates_with_every_field(self, maintainer, client_for):
        resp = client_for(maintainer).post("/api/v1/benchmarks/", NEW_BENCHMARK, format="json")
        assert resp.status_code == 201, resp.json()
        body = resp.json()
        assert body["version"] == "1" and body["dataset"]["sha256"] == "a" * 64 and body["tolerance"] == 0.02
        assert body["default_config"] == {"steps": 1} and body["max_attempts"] == 2

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"runner": "missing-runner"}, "runner"),
            ({"config_schema": {"type": "object", "properties": {"x": {"type": 5}}}}, "config_schema"),
            ({"config_schema": "not a schema"}, "config_schema"),
            ({"default_config": {"steps": 0}}, "default_config"),
            ({"metrics": []}, "metrics"),
            ({"resource_class": "tpu"}, "resource_class"),
            ({"tolerance": -0.1}, "tolerance"),
            ({"slug": "Not A Slug"}, "slug"),
        ],
    )
    def test_invalid_definitions_are_400_with_the_field(self, maintainer, client_for, change, field):
        resp = client_for(maintainer).post("/api/v1/benchmarks/", {**NEW_BENCHMARK, **change}, format="json")
        assert resp.status_code == 400, resp.json()
        assert resp["Content-Type"].startswith("application/problem+json")
        assert any(key.startswith(field) for key in resp.json()["errors"])

    def test_contributors_and_anonymous_cannot_write(self, api, alice, client_for, noop):
        assert api.post("/api/v1/benchmarks/", NEW_BENCHMARK, format="json").status_code == 401
        assert client_for(alice).post("/api/v1/benchmarks/", NEW_BENCHMARK, format="json").status_code == 403
        assert client_for(alice).patch("/api/v1/benchmarks/noop/", {"name": "x"}, format="json").status_code == 403

    def test_maintainer_token_needs_the_admin_scope(self, maintainer, client_for):
        client = client_for(maintainer, scopes=("read", "write"))
        # client_for adds `admin` for maintainers; take it away again
        from apps.accounts.models import PersonalAccessToken

        PersonalAccessToken.objects.filter(user=maintainer).update(scopes=["read", "write"])
        assert client.post("/api/v1/benchmarks/", NEW_BENCHMARK, format="json").status_code == 403

    def test_patch_bumps_the_version_and_honours_if_match(self, maintainer, client_for, noop):
        client = client_for(maintainer)
        etag = client.get("/api/v1/benchmarks/noop/")["ETag"]
        stale = client.patch("/api/v1/benchmarks/noop/", {"description": "x"}, format="json", HTTP_IF_MATCH='"stale"')
        assert stale.status_code == 412 and stale.json()["etag"] == etag
        weak = client.patch("/api/v1/benchmarks/noop/", {"description": "x"}, format="json", HTTP_IF_MATCH=f"W/{etag}")
        assert weak.status_code == 412  # If-Match compares strongly (RFC 9110 §13.1.1)
        resp = client.patch(
            "/api/v1/benchmarks/noop/", {"default_config": {"steps": 2}}, format="json", HTTP_IF_MATCH=etag
        )
        assert resp.status_code == 200, resp.json()
        assert resp.json()["version"] == "2" and resp.json()["versions"] == ["2", "1"]
        assert resp["ETag"] != etag
        cosmetic = client.patch("/api/v1/benchmarks/noop/", {"description": "better words"}, format="json")
        assert cosmetic.json()["version"] == "2"
        assert client.patch("/api/v1/benchmarks/noop/", {"slug": "other"}, format="json").status_code == 400

    def test_patch_dataset_keeps_the_fields_not_given(self, maintainer, client_for):
        client = client_for(maintainer)
        client.post("/api/v1/benchmarks/", NEW_BENCHMARK, format="json")
        resp = client.patch("/api/v1/benchmarks/tiny/", {"dataset": {"license": "mit"}}, format="json")
        assert resp.status_code == 200
        assert resp.json()["dataset"] == {**NEW_BENCHMARK["dataset"], "license": "mit"}
        assert resp.json()["version"] == "1"

    def test_list_query_count_is_flat(self, api, make_benchmark):
        make_benchmark(slug="b0")
        with count_queries() as one:
            api.get("/api/v1/benchmarks/")
        for i in range(1, 12):
            make_benchmark(slug=f"b{i}")
        with count_queries() as many:
            assert len(api.get("/api/v1/benchmarks/").json()["results"]) == 12
        assert_same_query_count(one, many)


# --- jobs -------------------------------------------------------------------------------------------------


class TestJobsApi:
    def test_submit_returns_the_job_and_dedupes(self, alice, client_for, alice_variant, noop):
        client = client_for(alice)
        resp = post_job(client, alice_variant, config={"steps": 2})
        assert resp.status_code == 201, resp.json()
        job = resp.json()
        assert job["status"] == "queued" and job["variant"] == "alice/alice-model" and job["revision"] == 1
        assert job["progress"] == {"done": 0, "total": 0, "percent": 0.0, "eta_s": None}
        assert job["queue_position"] == 1 and job["attempts"] == 0 and job["result"] is None
        assert job["submitted_by"] == "alice" and job["benchmark_version"] == "1"
        again = post_job(client, alice_variant, config={"steps": 2})
        assert again.status_code == 200 and again.json()["id"] == job["id"]

    def test_a_new_job_answers_as_its_detail_read_does(self, alice, client_for, alice_variant, noop):
        """The submission serializes the row it wrote (no read back): the same body as GET /jobs/{id}/."""
        client = client_for(alice)
        resp = post_job(client, alice_variant, config={"steps": 2})
        assert resp.status_code == 201, resp.json()
        assert client.get(f"/api/v1/jobs/{resp.json()['id']}/").json() == resp.json()

    def test_queue_etas_follow_recent_run_times_and_busy_slots(self, alice, client_for, make_variant, noop):
        from datetime import timedelta

        from django.utils import timezone

        from apps.benchmarks.selectors import queue_positions, recent_mean_duration_s

        alice.max_active_jobs = 100
        alice.save()
        jobs = [
            services.job_submit(actor=alice, revision=make_variant(alice, f"m{i}").current_revision, benchmark=noop)[0]
            for i in range(7)
        ]
        now = timezone.now()
        for seconds, job in zip((2.0, 4.5), jobs[:2], strict=True):  # two successes: a mean of 3.25 s
            BenchmarkJob.objects.filter(pk=job.pk).update(
                status="succeeded",
                started_at=now - timedelta(seconds=seconds + 1),
                finished_at=now - timedelta(seconds=1),
            )
        BenchmarkJob.objects.filter(pk__in=[j.pk for j in jobs[2:4]]).update(status="running", started_at=now)
        waiting = list(BenchmarkJob.objects.filter(pk__in=[j.pk for j in jobs[4:]]).order_by("pk"))
        queue_positions(waiting)
        mean = recent_mean_duration_s("bench.cpu")
        assert mean == pytest.approx(3.25)
        assert [j.queue_position for j in waiting] == [1, 2, 3]
        # two slots busy: positions 1 and 2 start after one round, 3 after two
        assert [j.queue_eta_s for j in waiting] == [round(mean * r, 1) for r in (1, 2, 2)]

    def test_noop_jobs_are_for_maintainers(self, alice, maintainer, client_for, alice_variant, noop, settings):
        settings.MC_MAINTAINER_ONLY_RUNNERS = ["noop"]
        resp = post_job(client_for(alice), alice_variant, config={"sleep_s": 30})
        assert resp.status_code == 403, resp.json()
        assert resp["Content-Type"].startswith("application/problem+json")
        assert "maintainers only" in resp.json()["detail"]
        assert post_job(client_for(maintainer), alice_variant, config={"sleep_s": 30}).status_code == 201
        too_long = post_job(client_for(maintainer), alice_variant, config={"sleep_s": 31})
        assert too_long.status_code == 400 and "config" in str(too_long.json()["errors"])

    def test_submission_needs_the_jobs_scope(self, alice, client_for, alice_variant, noop, api):
        assert post_job(api, alice_variant).status_code == 401
        assert post_job(client_for(alice, scopes=("read", "write")), alice_variant).status_code == 403

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"variant": "alice/nope", "benchmark": "noop"}, "variant"),
            ({"variant": "alice/alice-model", "benchmark": "nope"}, "benchmark"),
            ({"variant": "alice/alice-model", "benchmark": "noop", "revision": 7}, "revision"),
            ({"variant": "alice/alice-model", "benchmark": "noop", "config": {"steps": "two"}}, "config"),
            ({"variant": "alice/alice-model", "benchmark": "noop", "config": []}, "config"),
            ({"variant": "alice/alice-model"}, "benchmark"),
        ],
    )
    def test_bad_submissions_are_400_with_errors(self, alice, client_for, alice_variant, noop, body, field):
        resp = client_for(alice).post("/api/v1/jobs/", body, format="json")
        assert resp.status_code == 400, resp.json()
        assert any(key.startswith(field) for key in resp.json()["errors"])

    def test_someone_elses_draft_is_unknown(self, bob, client_for, make_variant, alice, noop):
        draft = make_variant(alice, "secret", public=False)
        resp = post_job(client_for(bob), draft)
        assert resp.status_code == 400 and resp.json()["errors"]["variant"] == ["No variant 'alice/secret'."]

    def test_submission_checks_give_each_reason(self, alice, client_for, make_variant, maintainer, noop):
        bad = make_variant(alice, "bad", card="short", license="")
        services.blocklist_add(variant=bad, reason="spam", actor=maintainer)
        resp = post_job(client_for(alice), bad)
        assert resp.status_code == 400
        body = resp.json()
        assert set(body["errors"]) == {"card", "license", "variant"}
        assert body["checks"] == ["card_too_short", "license_missing", "variant_blocked"]

    def test_over_quota_is_429_naming_the_limit_with_retry_after(
        self, alice, client_for, alice_variant, noop, settings
    ):
        settings.MC_DEFAULT_MAX_ACTIVE_JOBS = 1
        client = client_for(alice)
        assert post_job(client, alice_variant, config={"steps": 1}).status_code == 201
        resp = post_job(client, alice_variant, config={"steps": 2})
        assert resp.status_code == 429
        assert int(resp["Retry-After"]) >= 1
        body = resp.json()
        assert body["limit"] == "max_active_jobs" and body["retry_after"] == int(resp["Retry-After"])

    def test_priority_is_ignored_for_contributors(self, alice, maintainer, client_for, alice_variant, noop):
        assert post_job(client_for(alice), alice_variant, priority=50).json()["priority"] == 0
        resp = post_job(client_for(maintainer), alice_variant, priority=50, config={"steps": 3})
        assert resp.json()["priority"] == 50

    def test_mass_assignment_of_status_and_owner_is_ignored(self, alice, client_for, alice_variant, noop):
        resp = post_job(
            client_for(alice),
            alice_variant,
            status="succeeded",
            submitted_by="bob",
            attempts=9,
            result={"metrics": {"ok": 1}},
        )
        assert resp.status_code == 201
        job = BenchmarkJob.objects.get(pk=resp.json()["id"])
        assert job.status == JobStatus.QUEUED and job.submitted_by == alice and job.attempts == 0
        assert not JobResult.objects.filter(job=job).exists()

    def test_idempotency_key_replays_the_first_response(self, alice, client_for, alice_variant, noop):
        client = client_for(alice)
        first = post_job(client, alice_variant, config={"steps": 4}, headers={"Idempotency-Key": "k-1"})
        assert first.status_code == 201 and first["Idempotent-Replayed"] == "false"
        BenchmarkJob.objects.filter(pk=first.json()["id"]).update(status=JobStatus.CANCELLED)
        replay = post_job(client, alice_variant, config={"steps": 4}, headers={"Idempotency-Key": "k-1"})
        # the first response, not a new job (without the key, a new job would be made: the old one is cancelled)
        assert replay.status_code == 201 and replay.json() == first.json() and replay["Idempotent-Replayed"] == "true"
        assert BenchmarkJob.objects.count() == 1
        other_body = post_job(client, alice_variant, config={"steps": 5}, headers={"Idempotency-Key": "k-1"})
        assert other_body.status_code == 422 and other_body.json()["type"].endswith("idempotency-key-reused")

    def test_idempotency_keys_belong_to_their_user_and_errors_are_not_stored(
        self, alice, bob, client_for, alice_variant, make_variant, noop
    ):
        bad = post_job(client_for(alice), alice_variant, config={"steps": 0}, headers={"Idempotency-Key": "k"})
        assert bad.status_code == 400
        good = post_job(client_for(alice), alice_variant, config={"steps": 1}, headers={"Idempotency-Key": "k"})
        assert good.status_code == 201
        bobs = post_job(client_for(bob), make_variant(bob, "bobs"), headers={"Idempotency-Key": "k"})
        assert bobs.status_code == 201 and bobs.json()["id"] != good.json()["id"]
        too_long = post_job(client_for(alice), alice_variant, headers={"Idempotency-Key": "x" * 300})
        assert too_long.status_code == 400

    def test_visibility_of_jobs_404_not_403(self, alice, bob, reviewer, api, client_for, make_variant, noop):
        draft = make_variant(alice, "secret", public=False)
        job, _ = services.job_submit(actor=alice, revision=draft.current_revision, benchmark=noop)
        url = f"/api/v1/jobs/{job.pk}/"
        assert api.get(url).status_code == 404
        assert client_for(bob).get(url).status_code == 404
        assert client_for(bob).post(url + "cancel/").status_code == 404
        assert client_for(alice).get(url).status_code == 200
        assert client_for(reviewer).get(url).status_code == 200
        assert api.get("/api/v1/jobs/abc/").status_code == 404

    def test_cancel_by_owner_or_maintainer_only(self, alice, bob, maintainer, client_for, alice_variant, noop):
        job = post_job(client_for(alice), alice_variant).json()
        assert client_for(bob).post(f"/api/v1/jobs/{job['id']}/cancel/").status_code == 403
        resp = client_for(alice).post(f"/api/v1/jobs/{job['id']}/cancel/")
        assert resp.status_code == 200 and resp.json()["status"] == "cancelled"
        assert resp.json()["failure"]["reason"] == "cancelled"
        again = client_for(maintainer).post(f"/api/v1/jobs/{job['id']}/cancel/")
        assert again.status_code == 409 and "allowed" in again.json()

    def test_retry_rules(self, alice, maintainer, client_for, alice_variant, noop):
        job = post_job(client_for(alice), alice_variant).json()
        claimed = services.job_claim(job_id=job["id"], worker="w1@h")
        BenchmarkJob.objects.filter(pk=job["id"]).update(max_attempts=1)
        services.job_fail(job_id=job["id"], attempt=claimed.attempts, reason="worker_lost", message="gone")
        failed = client_for(alice).get(f"/api/v1/jobs/{job['id']}/").json()
        assert failed["failure"] == {"reason": "worker_lost", "message": "gone", "infrastructure": True}
        resp = client_for(alice).post(f"/api/v1/jobs/{job['id']}/retry/")
        assert resp.status_code == 200 and resp.json()["status"] == "queued"
        assert resp.json()["counts_against_quota"] is False
        assert client_for(alice).post(f"/api/v1/jobs/{job['id']}/retry/").status_code == 409

    def test_verify_and_bundle(self, alice, bob, api, client_for, alice_variant, noop):
        client = client_for(alice)
        job = post_job(client, alice_variant, config={"steps": 1, "seed": 7}).json()
        assert api.get(f"/api/v1/jobs/{job['id']}/bundle.json").status_code == 409
        assert client.post(f"/api/v1/jobs/{job['id']}/verify/").status_code == 409
        finish(job)
        done = api.get(f"/api/v1/jobs/{job['id']}/").json()
        assert done["result"]["metrics"] == {"ok": 1.0} and done["result"]["verified"] is False
        assert done["result"]["bundle"] == f"/api/v1/jobs/{job['id']}/bundle.json"
        bundle = api.get(done["result"]["bundle"])
        assert bundle.status_code == 200 and "attachment" in bundle["Content-Disposition"]
        data = bundle.json()
        assert data["runner"] == {"key": "noop", "name": "noop", "version": "1.0.0"}
        assert data["config"] == {"steps": 1, "seed": 7} and data["seed"] == 0
        assert data["dataset"]["sha256"] is None and data["benchmark"]["version"] == "1"
        assert data["artifacts"] == [
            {"path": "model.onnx", "format": "onnx", "sha256": "0" * 64, "size_bytes": 1, "uri": ""}
        ]
        assert data["environment"] == {"python": "3.11.9"} and data["variant"] == "alice/alice-model"
        assert client_for(bob).post(f"/api/v1/jobs/{job['id']}/verify/").status_code == 403
        check = client.post(f"/api/v1/jobs/{job['id']}/verify/")
        assert check.status_code == 201 and check.json()["verifies"] == job["id"]
        assert client.post(f"/api/v1/jobs/{job['id']}/verify/").status_code == 200
        finish(check.json(), worker="w2@h")
        verified = api.get(f"/api/v1/jobs/{job['id']}/").json()["result"]
        assert verified["verified"] is True and verified["verification_status"] == "verified"
        assert api.get(f"/api/v1/jobs/{job['id']}/bundle.json").json()["verifications"][0]["agreed"] is True

    def test_bundle_of_a_private_job_is_hidden_and_its_query_count_is_flat(
        self, alice, bob, api, client_for, make_variant, noop
    ):
        one = make_variant(alice, "private-one", public=False)
        many = make_variant(
            alice,
            "private-many",
            public=False,
            artifacts=tuple((f"shard-{i}.safetensors", "safetensors") for i in range(12)),
        )
        client = client_for(alice)
        jobs = [post_job(client, variant).json() for variant in (one, many)]
        for job in jobs:
            finish(job)
        url = f"/api/v1/jobs/{jobs[0]['id']}/bundle.json"
        assert api.get(url).status_code == 404 and client_for(bob).get(url).status_code == 404
        assert api.get("/api/v1/jobs/999999/bundle.json").status_code == 404
        client.get(url)  # warm the token (first use writes last_used_at)
        with count_queries() as few:
            assert len(client.get(url).json()["artifacts"]) == 1
        with count_queries() as lots:
            assert len(client.get(f"/api/v1/jobs/{jobs[1]['id']}/bundle.json").json()["artifacts"]) == 12
        assert_same_query_count(few, lots)

    def test_filters(self, alice, bob, client_for, alice_variant, make_variant, noop):
        post_job(client_for(alice), alice_variant)
        post_job(client_for(bob), make_variant(bob, "bobs"))
        client = client_for(alice)
        assert len(client.get("/api/v1/jobs/?mine=true").json()["results"]) == 1
        assert len(client.get("/api/v1/jobs/?variant=bob/bobs").json()["results"]) == 1
        assert len(client.get("/api/v1/jobs/?status=queued&benchmark=noop").json()["results"]) == 2
        assert client.get("/api/v1/jobs/?status=bogus").status_code == 400

    def test_list_query_count_is_flat_and_positions_follow_fair_share(
        self, alice, bob, api, client_for, alice_variant, make_variant, noop
    ):
        alice.max_active_jobs = 100
        alice.save()
        services.job_submit(actor=alice, revision=alice_variant.current_revision, benchmark=noop, config={"steps": 1})
        client = client_for(alice)
        client.get("/api/v1/jobs/")  # warm the token (first use writes last_used_at)
        with count_queries() as one:
            assert len(client.get("/api/v1/jobs/").json()["results"]) == 1
        for i in range(2, 13):
            services.job_submit(
                actor=alice, revision=alice_variant.current_revision, benchmark=noop, config={"steps": i}
            )
        bobs, _ = services.job_submit(actor=bob, revision=make_variant(bob, "bobs").current_revision, benchmark=noop)
        finish(BenchmarkJob.objects.get(config={"steps": 12}))
        with count_queries() as many:
            results = client.get("/api/v1/jobs/").json()["results"]
        assert len(results) == 13
        assert_same_query_count(one, many)
        positions = {r["id"]: r["queue_position"] for r in results}
        # Bob's single job is second in line: after Alice's first, before the rest of her backlog
        assert positions[bobs.pk] == 2 and sorted(p for p in positions.values() if p) == list(range(1, 13))
        eta = [r["progress"]["eta_s"] for r in results if r["status"] == "queued"]
        assert eta and all(e is not None and e >= 0 for e in eta)


# --- blocklist --------------------------------------------------------------------------------------------


class TestBlocklistApi:
    def test_maintainers_manage_the_blocklist(self, maintainer, alice, client_for, alice_variant):
        client = client_for(maintainer)
        resp = client.post("/api/v1/blocklist/", {"variant": "alice/alice-model", "reason": "spam"}, format="json")
        assert resp.status_code == 201 and resp.json()["variant"] == "alice/alice-model"
        entry = resp.json()["id"]
        assert (
            client.post(
                "/api/v1/blocklist/", {"variant": "alice/alice-model", "reason": "x"}, format="json"
            ).status_code
            == 409
        )
        assert (
            client.post("/api/v1/blocklist/", {"variant": "alice/none", "reason": "x"}, format="json").status_code
            == 400
        )
        assert client_for(alice).get("/api/v1/blocklist/").status_code == 403
        # A contributor's token cannot have the `admin` scope the blocklist needs: 403 for every id alike.
        assert client_for(alice).get(f"/api/v1/blocklist/{entry}/").status_code == 403
        assert client_for(alice).delete(f"/api/v1/blocklist/{entry}/").status_code == 403
        session = APIClient()
        session.force_login(alice)
        assert session.get(f"/api/v1/blocklist/{entry}/").status_code == 404
        assert session.delete(f"/api/v1/blocklist/{entry}/").status_code == 404
        assert client.get(f"/api/v1/blocklist/{entry}/").status_code == 200
        assert client.delete(f"/api/v1/blocklist/{entry}/").status_code == 204

    def test_a_maintainers_token_needs_the_admin_scope(self, maintainer, alice, api, alice_variant, make_variant):
        from apps.accounts.services import token_create
        from apps.benchmarks.models import BlockedVariant

        entry = services.blocklist_add(variant=alice_variant, reason="spam", actor=maintainer)
        other = make_variant(alice, "other-model")
        _, raw = token_create(user=maintainer, name="no-admin", scopes=["read", "write", "jobs", "review"])
        auth = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
        for resp in [
            api.get("/api/v1/blocklist/", **auth),
            api.get(f"/api/v1/blocklist/{entry.pk}/", **auth),
            api.post("/api/v1/blocklist/", {"variant": other.full_name, "reason": "x"}, format="json", **auth),
            api.delete(f"/api/v1/blocklist/{entry.pk}/", **auth),
        ]:
            assert resp.status_code == 403, resp.content
            assert "'admin' scope" in resp.json()["detail"]
        assert list(BlockedVariant.objects.values_list("variant_id", flat=True)) == [alice_variant.pk]
        _, raw = token_create(user=maintainer, name="admin", scopes=["admin"])
        assert api.get("/api/v1/blocklist/", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 200

    def test_list_query_count_is_flat(self, maintainer, alice, client_for, make_variant):
        client = client_for(maintainer)
        services.blocklist_add(variant=make_variant(alice, "v0"), reason="r", actor=maintainer)
        client.get("/api/v1/blocklist/")
        with count_queries() as one:
            client.get("/api/v1/blocklist/")
        for i in range(1, 12):
            services.blocklist_add(variant=make_variant(alice, f"v{i}"), reason="r", actor=maintainer)
        with count_queries() as many:
            assert len(client.get("/api/v1/blocklist/").json()["results"]) == 12
        assert_same_query_count(one, many)


# --- batch submission -------------------------------------------------------------------------------------


class TestBatchApi:
    def test_a_batch_queues_every_job_with_the_single_submission_rules(
        self, alice, client_for, alice_variant, make_variant, noop, settings
    ):
        settings.MC_DEFAULT_MAX_ACTIVE_JOBS = 10
        client = client_for(alice)
        existing = post_job(client, alice_variant, config={"steps": 1}).json()
        second = make_variant(alice, "second")
        items = [
            {"variant": "alice/alice-model", "benchmark": "noop", "config": {"steps": 1}},
            {"variant": "alice/alice-model", "benchmark": "noop", "config": {"steps": 2}},
            {"variant": "alice/second", "benchmark": "noop"},
            {"variant": "alice/alice-model", "benchmark": "noop", "config": {"steps": 2}},
        ]
        resp = client.post("/api/v1/jobs/batch/", {"jobs": items}, format="json")
        assert resp.status_code == 201, resp.json()
        body = resp.json()
        assert body["created"] == [False, True, True, False]
        ids = [job["id"] for job in body["jobs"]]
        assert ids[0] == existing["id"] and ids[1] == ids[3] and len(set(ids)) == 3
        assert body["jobs"][2]["variant"] == second.full_name and body["jobs"][1]["queue_position"] >= 1
        # new jobs are answered from the rows just written, existing ones from a read: both as a GET shows them
        for job in body["jobs"]:
            assert job == client.get(f"/api/v1/jobs/{job['id']}/").json()
        again = client.post("/api/v1/jobs/batch/", {"jobs": items}, format="json")
        assert again.status_code == 200 and again.json()["created"] == [False] * 4
        assert BenchmarkJob.objects.count() == 3

    def test_one_bad_item_refuses_the_whole_batch_naming_it(self, alice, client_for, alice_variant, make_variant, noop):
        make_variant(alice, "short", card="short")
        client = client_for(alice)
        resp = client.post(
            "/api/v1/jobs/batch/",
            {
                "jobs": [
                    {"variant": "alice/alice-model", "benchmark": "noop", "config": {"steps": 1}},
                    {"variant": "alice/alice-model", "benchmark": "noop", "config": {"steps": "x"}},
                    {"variant": "alice/short", "benchmark": "noop"},
                ]
            },
            format="json",
        )
        assert resp.status_code == 400
        errors = resp.json()["errors"]
        assert "jobs.1.config.steps" in errors and errors["jobs.2.card"][0].startswith("card_too_short")
        unknown = client.post(
            "/api/v1/jobs/batch/", {"jobs": [{"variant": "alice/none", "benchmark": "noop"}]}, format="json"
        )
        assert unknown.status_code == 400 and "jobs.0.variant" in unknown.json()["errors"]
        assert client.post("/api/v1/jobs/batch/", {"jobs": []}, format="json").status_code == 400
        assert not BenchmarkJob.objects.exists()

    def test_the_quota_holds_for_the_whole_batch(self, alice, client_for, alice_variant, noop, settings):
        settings.MC_DEFAULT_MAX_ACTIVE_JOBS = 3
        client = client_for(alice)
        post_job(client, alice_variant, config={"steps": 9})
        resp = client.post(
            "/api/v1/jobs/batch/",
            {
                "jobs": [
                    {"variant": "alice/alice-model", "benchmark": "noop", "config": {"steps": i}} for i in range(1, 4)
                ]
            },
            format="json",
        )
        assert resp.status_code == 429 and resp.json()["limit"] == "max_active_jobs" and resp["Retry-After"]
        assert "2 would fit" in resp.json()["detail"]
        assert BenchmarkJob.objects.count() == 1

    @pytest.mark.parametrize("by_number", [False, True])
    def test_batch_queries_do_not_grow_with_its_variants_and_the_audit_is_one_append(
        self, alice, client_for, make_variant, noop, settings, by_number
    ):
        settings.MC_DEFAULT_MAX_ACTIVE_JOBS = 100
        client = client_for(alice)
        names = [make_variant(alice, f"m{i}").full_name for i in range(21)]
        # a name in another case is the same variant, as for a single submission
        names[7] = names[7].upper()

        def batch(variants, steps):  # type: ignore[no-untyped-def]
            return {
                "jobs": [
                    {
                        "variant": v,
                        "benchmark": "noop",
                        "config": {"steps": steps},
                        **({"revision": 1} if by_number else {}),
                    }
                    for v in variants
                ]
            }

        assert client.post("/api/v1/jobs/batch/", batch(names[:1], 50), format="json").status_code == 201  # warm
        with count_queries() as one:
            assert client.post("/api/v1/jobs/batch/", batch(names[1:2], 1), format="json").status_code == 201
        with count_queries() as many:
            resp = client.post("/api/v1/jobs/batch/", batch(names[1:21], 2), format="json")
            assert resp.status_code == 201
        assert [job["variant"] for job in resp.json()["jobs"]] == [f"alice/m{i}" for i in range(1, 21)]
        # the batch's variants (and revisions) are read in one query each, their blocklist entries with them; the
        # 20 audit events are one append
        assert len(many) == len(one)
        audit_inserts = [q for q in many.captured_queries if q["sql"].startswith('INSERT INTO "audit_auditevent"')]
        assert len(audit_inserts) == 1
        assert AuditEvent.objects.filter(verb="job.submit").count() == 22
        assert audit_chain_verify().ok

    def test_batch_needs_the_jobs_scope_and_is_idempotent(self, alice, api, client_for, alice_variant, noop):
        items = {"jobs": [{"variant": "alice/alice-model", "benchmark": "noop"}]}
        assert api.post("/api/v1/jobs/batch/", items, format="json").status_code == 401
        assert (
            client_for(alice, scopes=("read", "write")).post("/api/v1/jobs/batch/", items, format="json").status_code
            == 403
        )
        client = client_for(alice)
        first = client.post("/api/v1/jobs/batch/", items, format="json", headers={"Idempotency-Key": "b1"})
        BenchmarkJob.objects.update(status=JobStatus.CANCELLED)
        replay = client.post("/api/v1/jobs/batch/", items, format="json", headers={"Idempotency-Key": "b1"})
        assert replay.json() == first.json() and replay["Idempotent-Replayed"] == "true"
        assert BenchmarkJob.objects.count() == 1
