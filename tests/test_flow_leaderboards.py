"""Leaderboards end to end: API submit -> real `celery worker` -> result -> JOB_FINISHED_HOOKS -> summary table
-> GET /api/v1/leaderboards/digits/, with the quantized child's delta against its parent."""

import pytest

from tests.fixtures import wait_for

pytestmark = [pytest.mark.flow, pytest.mark.django_db(transaction=True)]

TERMINAL = ("succeeded", "failed", "timed_out", "cancelled")


def test_digits_results_reach_the_leaderboard_with_lineage_deltas(celery_worker_process, client_for, api):
    from apps.accounts.models import User
    from apps.demo.seed import seed_demo
    from apps.leaderboards.services import suite_create
    from apps.leaderboards.tests.factories import publish
    from apps.registry.models import Variant

    seed_demo("commons-demo")
    maintainer = User.objects.get(username="maintainer")
    alice = User.objects.get(username="alice")
    int8 = Variant.objects.by_full_name("alice/digits-mlp-int8").get()
    publish(int8.current_revision, maintainer)
    suite_create(
        actor=maintainer,
        slug="digits-suite",
        name="Digits",
        benchmarks=[{"benchmark": "digits", "baseline": 0.1, "best": 1.0}],
    )  # ten classes: random is 0.1

    jobs = {}
    for user, variant in (
        (maintainer, "commons/digits-mlp"),
        (alice, "alice/digits-mlp-int8"),
        (User.objects.get(username="bob"), "bob/digits-mlp-pruned"),
    ):
        client = client_for(user)
        resp = client.post(
            "/api/v1/jobs/", {"variant": variant, "benchmark": "digits", "config": {"batch_size": 90}}, format="json"
        )
        assert resp.status_code == 201, resp.json()
        jobs[variant] = (client, resp.json()["id"])

    def finished(variant):
        client, job_id = jobs[variant]
        body = client.get(f"/api/v1/jobs/{job_id}/").json()
        return body if body["status"] in TERMINAL else None

    results = {}
    for variant in jobs:
        body = wait_for(lambda v=variant: finished(v), timeout=120, message=f"the digits job of {variant}")
        assert body["status"] == "succeeded", (body, celery_worker_process.output()[-3000:])
        results[variant] = body["result"]["metrics"]["accuracy"]

    # The worker runs the hook right after it commits the result; the board follows without a rebuild.
    def board():
        body = api.get("/api/v1/leaderboards/digits/").json()
        return body if len(body["results"]) == 2 else None

    body = wait_for(board, timeout=30, message="both published variants on the board")
    rows = {row["variant"]: row for row in body["results"]}
    assert set(rows) == {"commons/digits-mlp", "alice/digits-mlp-int8"}  # bob's pruned variant is a draft
    ranked = sorted(rows.values(), key=lambda r: r["rank"])
    assert [r["rank"] for r in ranked] == [1, 2]
    assert ranked[0]["score"] >= ranked[1]["score"]
    parent, child = rows["commons/digits-mlp"], rows["alice/digits-mlp-int8"]
    assert parent["score"] == results["commons/digits-mlp"] and child["score"] == results["alice/digits-mlp-int8"]
    assert parent["delta_vs_parents"] == {}
    assert child["delta_vs_parents"] == {
        "commons/digits-mlp": round(results["alice/digits-mlp-int8"] - results["commons/digits-mlp"], 6)
    }
    assert child["relation"] == "quantized" and child["precision"] == "int8" and child["revision"] == 1
    assert child["metrics"]["latency_p50_ms"] > 0 and child["verified"] is False
    assert [r["variant"] for r in api.get("/api/v1/leaderboards/digits/?precision=int8").json()["results"]] == [
        "alice/digits-mlp-int8"
    ]

    suite = api.get("/api/v1/leaderboards/suites/digits-suite/").json()["results"]
    by_name = {row["variant"]: row for row in suite}
    assert set(by_name) == {"commons/digits-mlp", "alice/digits-mlp-int8"}
    expected = (results["alice/digits-mlp-int8"] - 0.1) / 0.9 * 100
    assert by_name["alice/digits-mlp-int8"]["score"] == pytest.approx(expected, abs=1e-3)
    assert by_name["alice/digits-mlp-int8"]["complete"] is True
