"""Organizations end to end, over HTTP and through a real `celery worker`: a member of the demo lab runs the digits
benchmark on the lab's draft, an outsider cannot see it, the lab's admin transfers the variant out, and its job,
result and leaderboard row follow it while the old name answers 308."""

from __future__ import annotations

import pytest

from tests.test_flow_jobs import ENGINE_ENV, engine_settings, wait_terminal  # noqa: F401 - a fixture

pytestmark = [pytest.mark.flow, pytest.mark.django_db(transaction=True)]

LAB_VARIANT = "harbour-lab/digits-mlp-harbour-int8"


def test_a_lab_member_benchmarks_the_labs_draft_and_the_admin_moves_it(
    digits_world, engine_processes, client_for, make_user
):
    users = digits_world["users"]
    alice, bob = users["alice"], users["bob"]
    member, admin, outsider = client_for(bob), client_for(alice), client_for(make_user("carol"))
    worker = engine_processes.worker(env=ENGINE_ENV)

    # the lab's draft: its members see it and queue jobs on it; everyone else gets 404
    assert member.get(f"/api/v1/variants/{LAB_VARIANT}/").status_code == 200
    assert outsider.get(f"/api/v1/variants/{LAB_VARIANT}/").status_code == 404
    refused = outsider.post("/api/v1/jobs/", {"variant": LAB_VARIANT, "benchmark": "digits"}, format="json")
    assert refused.status_code in (400, 404), refused.content
    queued = admin.post(
        "/api/v1/jobs/", {"variant": LAB_VARIANT, "benchmark": "digits", "config": {"batch_size": 50}}, format="json"
    )
    assert queued.status_code == 201, queued.content
    job = wait_terminal(admin, queued.json()["id"], worker)
    assert job["status"] == "succeeded", (job, worker.output()[-3000:])
    assert job["variant"] == LAB_VARIANT and 0.9 < job["result"]["metrics"]["accuracy"] <= 1.0
    # bob (a member) sees the job alice ran on the lab's draft; carol does not
    assert member.get(f"/api/v1/jobs/{job['id']}/").status_code == 200
    assert outsider.get(f"/api/v1/jobs/{job['id']}/").status_code == 404

    # a member may not move the lab's variant; its admin moves it to her own namespace
    denied = member.post(f"/api/v1/variants/{LAB_VARIANT}/transfer/", {"to": "bob"}, format="json")
    assert denied.status_code == 403, denied.content
    moved = admin.post(f"/api/v1/variants/{LAB_VARIANT}/transfer/", {"to": "alice"}, format="json")
    assert moved.status_code == 200 and moved.json()["full_name"] == "alice/digits-mlp-harbour-int8"

    # the job and its result follow; the old name answers 308 to the new one, with the rest of the path
    assert admin.get(f"/api/v1/jobs/{job['id']}/").json()["variant"] == "alice/digits-mlp-harbour-int8"
    old = admin.get(f"/api/v1/variants/{LAB_VARIANT}/revisions/1/")
    assert old.status_code == 308
    assert old["Location"] == "/api/v1/variants/alice/digits-mlp-harbour-int8/revisions/1/"
    # bob was an insider as a lab member; now the draft is alice's alone
    assert member.get("/api/v1/variants/alice/digits-mlp-harbour-int8/").status_code == 404
    assert member.get(f"/api/v1/variants/{LAB_VARIANT}/").status_code == 404
    # the lab owns nothing now, so it can be deleted
    assert admin.delete("/api/v1/orgs/harbour-lab/").status_code == 204
