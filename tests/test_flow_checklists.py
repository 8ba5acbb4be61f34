"""The checklist as a new contributor meets it, end to end through the API and a real `celery worker`:

alice submits her int8 quantization and finds the automatic items answered (safe format, hashes, licence met;
benchmark unknown); she answers the manual items and is refused where evidence is missing; her digits job runs
on the worker and "benchmark succeeded" turns met by itself; a reviewer verifies what needs verifying; the badge
says "passing". Then a pickle artifact on bob's revision makes "safe serialization" unmet, and the publication
gate names that item."""

from __future__ import annotations

import pytest

from tests.fixtures import wait_for

pytestmark = [pytest.mark.flow, pytest.mark.django_db(transaction=True)]

INT8 = "/api/v1/variants/alice/digits-mlp-int8"
PRUNED = "/api/v1/variants/bob/digits-mlp-pruned"


def items(client, url):  # type: ignore[no-untyped-def]
    resp = client.get(f"{url}/checklist/")
    assert resp.status_code == 200, resp.content
    return resp.json(), {i["key"]: i for i in resp.json()["items"]}


def test_checklist_flow_through_a_real_worker(celery_worker_process, client_for):
    from apps.accounts.models import User
    from apps.demo.seed import seed_demo

    seed_demo("commons-demo")
    users = {u.username: u for u in User.objects.all()}
    alice, reviewer, bob, maintainer = (client_for(users[n]) for n in ("alice", "reviewer1", "bob", "maintainer"))
    rev = f"{INT8}/revisions/1"

    # 1. Submitting creates the checklist with the automatic items already answered, with explanations.
    assert alice.get(f"{rev}/checklist/").status_code == 404  # a draft has none yet
    resp = alice.post(f"{rev}/submit/", {}, format="json")
    assert resp.status_code == 200, resp.content
    body, by_key = items(alice, rev)
    assert (body["template"], body["version"], body["level"]) == ("open-model-practices", 1, "in_progress")
    for key, status in (
        ("safe-serialization", "met"),
        ("artifact-hashes", "met"),
        ("license-valid", "met"),
        ("license-compatible", "met"),
        ("card-sections", "met"),
        ("benchmark-succeeded", "unknown"),
    ):
        assert by_key[key]["status"] == status, (key, by_key[key])
        assert by_key[key]["justification"].startswith("Automatic check"), by_key[key]
    assert "no benchmark job has run" in by_key["benchmark-succeeded"]["justification"].lower()

    # 2. She answers the manual items and is refused where the evidence is missing.
    refused = alice.patch(f"{rev}/checklist/reproducibility-recipe/", {"status": "met"}, format="json")
    assert refused.status_code == 400 and refused.json()["rules"] == ["met_needs_url"]
    refused = alice.patch(f"{rev}/checklist/training-data-disclosed/", {"status": "n/a"}, format="json")
    assert refused.status_code == 400 and refused.json()["rules"] == ["na_needs_justification"]
    answers = {
        "training-data-disclosed": {
            "status": "n/a",
            "justification": "A dynamic int8 quantization of commons/digits-mlp: no new training data.",
        },
        "contamination-statement": {
            "status": "met",
            "justification": "The digits benchmark scores the held-out 25% split the parent never saw.",
        },
        "reproducibility-recipe": {
            "status": "met",
            "evidence_url": "https://github.com/example/model-commons/blob/main/fixtures/digits/build.py",
        },
    }
    for key, answer in answers.items():
        resp = alice.patch(f"{rev}/checklist/{key}/", answer, format="json")
        assert resp.status_code == 200, resp.content
        assert resp.json()["answered_by"] == "alice"

    # 3. Her digits job runs on the worker; "benchmark succeeded" turns met without anyone touching it.
    resp = alice.post(
        "/api/v1/jobs/",
        {"variant": "alice/digits-mlp-int8", "benchmark": "digits", "config": {"batch_size": 50}},
        format="json",
    )
    assert resp.status_code == 201, resp.content
    job_id = resp.json()["id"]

    def benchmark_met():  # type: ignore[no-untyped-def]
        job = alice.get(f"/api/v1/jobs/{job_id}/").json()
        assert job["status"] not in ("failed", "cancelled", "timed_out"), (job, celery_worker_process.output()[-3000:])
        return items(alice, rev)[1]["benchmark-succeeded"]["status"] == "met"

    wait_for(benchmark_met, timeout=120, message="the digits job to flip 'benchmark succeeded'")
    item = items(alice, rev)[1]["benchmark-succeeded"]
    assert f"job {job_id} (digits)" in item["justification"] and item["answered_by"] is None
    # A new submitter's result is always re-run (adaptive verification); the agreement flips "result verified".
    wait_for(
        lambda: items(alice, rev)[1]["result-verified"]["status"] == "met",
        timeout=120,
        message="the verification re-run to flip 'result verified'",
    )
    body, _ = items(alice, rev)
    assert body["level"] == "in_progress"  # two items still wait for a reviewer
    assert {u.split(" (")[1].split(")")[0] for u in body["gate"]["unmet"]} == {
        "training-data-disclosed",
        "contamination-statement",
    }

    # 4. A reviewer verifies the items that need it (the owner may not).
    assert (
        alice.patch(f"{rev}/checklist/contamination-statement/", {"verified": True}, format="json").status_code == 403
    )
    for key in ("training-data-disclosed", "contamination-statement"):
        resp = reviewer.patch(f"{rev}/checklist/{key}/", {"verified": True}, format="json")
        assert resp.status_code == 200 and resp.json()["verified_by"] == "reviewer1", resp.content
    body, _ = items(alice, rev)
    assert body["level"] == "passing" and body["progress"]["passing"] == 100 and body["gate"]["holds"]

    # 5. The badge says "passing".
    badge = alice.get(f"{rev}/checklist/badge.svg")
    assert badge.status_code == 200 and badge["Content-Type"].startswith("image/svg+xml")
    assert ">passing" in badge.content.decode() and badge["ETag"]
    assert alice.get(f"{INT8}/badge.svg").content == badge.content

    # 6. A pickle artifact on another revision: "safe serialization" is unmet and the gate names it.
    pruned = f"{PRUNED}/revisions/1"
    resp = client_for(users["bob"]).post(
        f"{pruned}/artifacts/",
        {
            "path": "pytorch_model.bin",
            "format": "bin",
            "uri": "https://example.org/digits/pytorch_model.bin",
            "sha256": "ab" * 32,
            "size_bytes": 7844,
        },
        format="json",
    )
    assert resp.status_code == 201, resp.content
    assert bob.post(f"{pruned}/submit/", {}, format="json").status_code == 200
    _, by_key = items(bob, pruned)
    assert by_key["safe-serialization"]["status"] == "unmet"
    assert "pytorch_model.bin (bin)" in by_key["safe-serialization"]["justification"]
    refused = maintainer.post(f"{pruned}/publish/", {}, format="json")
    assert refused.status_code == 409, refused.content
    gate = refused.json()["errors"]["gate"]
    assert any("safe-serialization" in reason and "pytorch_model.bin" in reason for reason in gate), gate


def test_approved_before_the_checklist_was_finished_still_gets_published(celery_worker_process, client_for):
    """Issue 12, finding 12: two reviewers approve before the author has finished the checklist. The author
    still answers it on the approved revision (no 409), the approvals stand, the items a reviewer must verify
    still need a reviewer, and the same revision is published once the gate holds."""
    from apps.accounts.models import User
    from apps.demo.seed import seed_demo

    seed_demo("commons-demo")
    users = {u.username: u for u in User.objects.all()}
    alice, r1, r2, boss = (client_for(users[n]) for n in ("alice", "reviewer1", "reviewer2", "maintainer"))
    rev = f"{INT8}/revisions/1"

    assert alice.post(f"{rev}/submit/", {}, format="json").status_code == 200
    resp = alice.post(
        "/api/v1/jobs/",
        {"variant": "alice/digits-mlp-int8", "benchmark": "digits", "config": {"batch_size": 50}},
        format="json",
    )
    assert resp.status_code == 201, resp.content
    job_url = f"/api/v1/jobs/{resp.json()['id']}/"
    done = wait_for(
        lambda: (lambda j: j if j["status"] in ("succeeded", "failed", "timed_out") else None)(
            alice.get(job_url).json()
        ),
        timeout=120,
        message="the digits job to finish",
    )
    assert done["status"] == "succeeded", (done, celery_worker_process.output()[-3000:])

    for client in (r1, r2):
        resp = client.post(f"{rev}/reviews/", {"decision": "approve", "body": "LGTM"}, format="json")
        assert resp.status_code == 201, resp.content
    assert alice.get(f"{rev}/").json()["status"] == "approved"
    refused = boss.post(f"{rev}/publish/", {}, format="json")
    assert refused.status_code == 409, refused.content
    assert all(u.startswith("Checklist: ") for u in refused.json()["errors"]["gate"]), refused.json()

    answers = {
        "training-data-disclosed": {
            "status": "n/a",
            "justification": "A dynamic int8 quantization of commons/digits-mlp: no new training data.",
        },
        "contamination-statement": {
            "status": "met",
            "justification": "The digits benchmark scores the held-out 25% split the parent never saw.",
        },
        "reproducibility-recipe": {
            "status": "met",
            "evidence_url": "https://github.com/example/model-commons/blob/main/fixtures/digits/build.py",
        },
    }
    for key, answer in answers.items():
        resp = alice.patch(f"{rev}/checklist/{key}/", answer, format="json")
        assert resp.status_code == 200, resp.content
    gate = alice.get(f"{rev}/gate/").json()
    assert alice.get(f"{rev}/").json()["status"] == "approved"
    assert gate["approvals"] == ["reviewer1", "reviewer2"] and not gate["met"], gate
    assert all("verif" in u for u in gate["unmet"]), gate
    assert boss.post(f"{rev}/publish/", {}, format="json").status_code == 409

    for key in ("training-data-disclosed", "contamination-statement"):
        resp = r1.patch(f"{rev}/checklist/{key}/", {"verified": True}, format="json")
        assert resp.status_code == 200, resp.content
    published = boss.post(f"{rev}/publish/", {"reason": "gate holds"}, format="json")
    assert published.status_code == 200, published.content
    assert published.json()["status"] == "published" and published.json()["number"] == 1
    closed = alice.patch(
        f"{rev}/checklist/compute-energy/",
        {"status": "met", "justification": "Quantization took 2 CPU-seconds on a laptop: about 0.00002 kWh."},
        format="json",
    )
    assert closed.status_code == 409 and closed["Content-Type"].startswith("application/problem+json")
