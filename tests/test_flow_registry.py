"""Issue 3, "Done when": a new contributor, through the API alone, registers a quantized variant of
commons/digits-mlp, uploads its ONNX file, sees the lineage, submits it, finds it hidden from another
contributor, exports its card and re-imports the card into a new draft. Every refusal on the way is a
problem+json that says what to fix."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.test import APIClient

PROBLEM = "application/problem+json"
DIGITS = Path(settings.FIXTURES_DIR) / "digits"
CARD = """# digits-mlp-int8 (carol)

Dynamic int8 quantization of commons/digits-mlp with onnxruntime's `quantize_dynamic`.

## Intended use
Checking how much accuracy an 8x8 digits classifier loses when its weights are stored as int8.

## Limitations
Only 8x8 grey-level digits scaled to [0, 1], like its parent.

## Training data
None beyond the parent's: quantization does not train.

## Evaluation
The `digits` benchmark on the 450 held-out digits.
"""


def problem(resp, status):
    assert resp.status_code == status, (resp.status_code, resp.content[:500])
    assert resp["Content-Type"].startswith(PROBLEM)
    body = resp.json()
    assert {"type", "title", "status", "detail"} <= set(body) and body["status"] == status
    return body


def sign_in(username: str) -> APIClient:
    """What a script does first: trade a password for a bearer token."""
    basic = APIClient()
    creds = base64.b64encode(f"{username}:pw-Secret-123".encode()).decode()
    basic.credentials(HTTP_AUTHORIZATION=f"Basic {creds}")
    resp = basic.post("/api/v1/auth/tokens/", {"name": "flow", "scopes": ["read", "write"]}, format="json")
    assert resp.status_code == 201, resp.content
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {resp.json()['token']}")
    return client


@pytest.mark.django_db
def test_done_when_journey_through_the_api(digits_world, make_user):
    make_user("carol")
    make_user("dave")
    carol, dave = sign_in("carol"), sign_in("dave")
    manifest = json.loads((DIGITS / "manifest.json").read_text())
    onnx = next(f for f in manifest["files"] if f["path"] == "digits-mlp-int8.onnx")
    onnx_bytes = (DIGITS / "digits-mlp-int8.onnx").read_bytes()
    assert hashlib.sha256(onnx_bytes).hexdigest() == onnx["sha256"]

    # 0. The parent is public.
    parent = carol.get("/api/v1/variants/commons/digits-mlp/").json()
    assert parent["relation"] == "original" and parent["status"] == "published"

    # 1. Register a quantized variant (after two mistakes a newcomer would make).
    body = {
        "name": "digits-mlp-int8",
        "relation": "quantized",
        "parents": ["commons/digits-mlp"],
        "license": "apache2",
        "parameters": onnx["parameters"],
        "precision": "int8",
        "task": "image-classification",
        "summary": "int8 digits",
        "card": CARD,
    }
    refused = problem(carol.post("/api/v1/variants/", body, format="json"), 400)
    assert "apache-2.0" in refused["errors"]["license"][0]  # a suggestion, not just "invalid"
    refused = problem(
        carol.post("/api/v1/variants/", {**body, "license": "Apache-2.0", "parents": []}, format="json"), 400
    )
    assert "exactly one parent" in refused["errors"]["parents"][0]
    created = carol.post("/api/v1/variants/", {**body, "license": "Apache-2.0"}, format="json")
    assert created.status_code == 201, created.json()
    variant = created.json()
    assert variant["full_name"] == "carol/digits-mlp-int8" and variant["license"] == "apache-2.0"
    assert variant["status"] == "draft" and variant["current_revision"] == 1
    assert variant["license_compat"]["status"] == "compatible"
    base = "/api/v1/variants/carol/digits-mlp-int8"

    # Submitting before uploading anything says what is missing.
    early = problem(carol.post(f"{base}/revisions/1/submit/"), 409)
    assert list(early["errors"]) == ["artifacts"]

    # 2. Upload the ONNX file (a wrong declared sha256 is refused first).
    def upload(sha256: str):
        from io import BytesIO

        fh = BytesIO(onnx_bytes)
        fh.name = "digits-mlp-int8.onnx"
        return carol.post(
            f"{base}/revisions/1/artifacts/",
            {"file": fh, "path": "digits-mlp-int8.onnx", "format": "onnx", "sha256": sha256},
            format="multipart",
        )

    wrong = problem(upload("0" * 64), 400)
    assert onnx["sha256"] in wrong["errors"]["sha256"][0]
    uploaded = upload(onnx["sha256"])
    assert uploaded.status_code == 201, uploaded.json()
    artifact = uploaded.json()
    assert artifact["sha256"] == onnx["sha256"] and artifact["size_bytes"] == len(onnx_bytes)
    assert artifact["format"] == "onnx" and artifact["safe"] is True and artifact["stored"] is True

    # 3. See the lineage, from both ends.
    lineage = carol.get(f"{base}/lineage/").json()
    assert lineage["parents"] == ["commons/digits-mlp"]
    assert [(a["full_name"], a["relation"], a["depth"]) for a in lineage["ancestors"]] == [
        ("commons/digits-mlp", "original", 1)
    ]
    below = carol.get("/api/v1/variants/commons/digits-mlp/lineage/").json()["descendants"]
    assert "carol/digits-mlp-int8" in [d["full_name"] for d in below]

    # 4. Submit it; it is then frozen.
    submitted = carol.post(f"{base}/revisions/1/submit/")
    assert submitted.status_code == 200, submitted.json()
    assert submitted.json()["status"] == "submitted" and submitted.json()["submitted_at"]
    again = problem(carol.post(f"{base}/revisions/1/submit/"), 409)
    assert again["allowed"] == ["changes_requested", "approved", "rejected", "withdrawn"]
    frozen = problem(carol.patch(f"{base}/", {"summary": "changed"}, format="json"), 409)
    assert "new revision" in frozen["detail"]

    # 5. Another contributor cannot find it anywhere.
    problem(dave.get(f"{base}/"), 404)
    problem(dave.get(f"{base}/card.md"), 404)
    problem(dave.get(f"{base}/revisions/1/"), 404)
    problem(dave.post(f"{base}/revisions/1/withdraw/", {}, format="json"), 404)
    listed = dave.get("/api/v1/variants/?parent=commons/digits-mlp").json()["results"]
    assert "carol/digits-mlp-int8" not in [v["full_name"] for v in listed]
    below = dave.get("/api/v1/variants/commons/digits-mlp/lineage/").json()["descendants"]
    assert "carol/digits-mlp-int8" not in [d["full_name"] for d in below]
    problem(APIClient().get(f"{base}/"), 404)

    # 6. Export its card: a Hub README with the lineage in the front matter.
    exported = carol.get(f"{base}/card.md")
    assert exported.status_code == 200 and exported["Content-Type"].startswith("text/markdown")
    card_text = exported.content.decode()
    assert card_text.startswith(
        "---\nlicense: apache-2.0\nbase_model: commons/digits-mlp\nbase_model_relation: quantized\n"
    )
    assert card_text.endswith(CARD)

    # 7. Re-import the card into a new draft (and a name that is taken is refused clearly).
    clash = problem(
        carol.post(
            "/api/v1/variants/import-card/?name=digits-mlp-int8", card_text.encode(), content_type="text/markdown"
        ),
        409,
    )
    assert "submitted" in clash["detail"]
    copy = carol.post(
        "/api/v1/variants/import-card/?name=digits-mlp-int8-v2", card_text.encode(), content_type="text/markdown"
    )
    assert copy.status_code == 201, copy.json()
    new = copy.json()
    assert new["full_name"] == "carol/digits-mlp-int8-v2" and new["status"] == "draft"
    for key in ("relation", "parents", "license", "parameters", "precision", "task", "summary", "card", "tags"):
        assert new[key] == variant[key], key
    assert carol.get("/api/v1/variants/carol/digits-mlp-int8-v2/card.md").content.decode() == card_text


@pytest.mark.flow
@pytest.mark.django_db(transaction=True)
def test_an_uploaded_artifact_is_what_a_real_worker_runs(celery_worker_process, client_for):
    """The upload is not just a record: a worker verifies its sha256 and runs it through the digits benchmark."""
    from io import BytesIO

    from apps.accounts.models import User
    from apps.demo.seed import seed_demo
    from tests.fixtures import wait_for

    seed_demo("commons-demo")
    client = client_for(User.objects.get(username="alice"), scopes=("read", "write", "jobs"))
    created = client.post(
        "/api/v1/variants/",
        {
            "name": "digits-mlp-int8-upload",
            "relation": "quantized",
            "parents": ["commons/digits-mlp"],
            "license": "apache-2.0",
            "precision": "int8",
            "task": "image-classification",
            "card": CARD,
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    fh = BytesIO((DIGITS / "digits-mlp-int8.onnx").read_bytes())
    fh.name = "model.onnx"
    uploaded = client.post(
        "/api/v1/variants/alice/digits-mlp-int8-upload/revisions/1/artifacts/",
        {"file": fh, "format": "onnx"},
        format="multipart",
    )
    assert uploaded.status_code == 201, uploaded.json()
    job = client.post(
        "/api/v1/jobs/",
        {"variant": "alice/digits-mlp-int8-upload", "benchmark": "digits", "config": {"batch_size": 50}},
        format="json",
    )
    assert job.status_code == 201, job.json()
    job_id = job.json()["id"]

    def finished():
        body = client.get(f"/api/v1/jobs/{job_id}/").json()
        return body if body["status"] in ("succeeded", "failed", "timed_out", "cancelled") else None

    body = wait_for(finished, timeout=120, message="the job on the uploaded artifact")
    assert body["status"] == "succeeded", (body, celery_worker_process.output()[-3000:])
    assert body["result"]["metrics"]["accuracy"] > 0.9
