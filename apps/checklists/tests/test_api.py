"""Checklist HTTP API: the authorization matrix (404 for what you may not see, 403 for what you may see but not
do), token scopes, problem+json errors naming the rule, ETags, the badges, components, templates, query counts."""

from __future__ import annotations

import re

import pytest

from apps.checklists import services
from apps.core.testing import get_counted

pytestmark = pytest.mark.django_db

BASE = "/api/v1/variants/alice/digits-mlp-int8"
REV = f"{BASE}/revisions/1"


def publish(revision, actor):  # type: ignore[no-untyped-def]
    from apps.registry.services import revision_transition

    for target in ("approved", "published"):
        revision_transition(revision=revision, target=target, actor=actor)
    revision.refresh_from_db()
    return revision


@pytest.fixture
def users(digits_world):  # type: ignore[no-untyped-def]
    return digits_world["users"]


@pytest.fixture
def clients(users, client_for):  # type: ignore[no-untyped-def]
    return {name: client_for(users[name]) for name in ("alice", "bob", "reviewer1", "reviewer2", "maintainer")}


# --- GET the checklist ----------------------------------------------------------------------------------


def test_checklist_representation(int8_submitted, clients):
    resp = clients["alice"].get(f"{REV}/checklist/")
    assert resp.status_code == 200, resp.json()
    body = resp.json()
    for field in ("template", "version", "level", "progress", "items"):
        assert field in body
    assert (body["template"], body["version"], body["level"]) == ("open-model-practices", 1, "in_progress")
    # weights-match-declaration is n/a here (ONNX weights have no header the platform reads).
    assert body["progress"] == {"passing": 54, "silver": 50, "gold": 0}
    assert body["variant"] == "alice/digits-mlp-int8" and body["revision"] == 1
    assert body["gate"]["holds"] is False and len(body["gate"]["unmet"]) == 4
    assert body["openness"]["mof_class"] == "III" and body["openness"]["conditional"] is True
    item = next(i for i in body["items"] if i["key"] == "safe-serialization")
    spec_fields = [
        "key",
        "title",
        "guidance",
        "required",
        "level",
        "kind",
        "needs_evidence",
        "na_allowed",
        "reviewer_verifies",
        "status",
        "justification",
        "evidence_url",
        "answered_by",
        "verified_by",
    ]
    assert all(f in item for f in spec_fields)
    assert (item["status"], item["kind"], item["source"], item["confidence"]) == ("met", "auto", "auto", 5)
    assert item["justification"].startswith("Automatic check (confidence 5/5): All 1 artifact(s)")
    assert item["answered_by"] is None and item["verified_by"] is None and item["evidence_url"] is None
    assert resp["ETag"]
    again = clients["alice"].get(f"{REV}/checklist/", HTTP_IF_NONE_MATCH=resp["ETag"])
    assert again.status_code == 304


@pytest.mark.parametrize(
    ("who", "expected"), [("anon", 404), ("alice", 200), ("bob", 404), ("reviewer1", 200), ("maintainer", 200)]
)
def test_who_sees_a_checklist_under_review(int8_submitted, clients, api, who, expected):
    client = api if who == "anon" else clients[who]
    for url in (
        f"{REV}/checklist/",
        f"{REV}/checklist/license-valid/",
        f"{REV}/checklist/badge.svg",
        f"{REV}/components/",
        f"{BASE}/badge.svg",
    ):
        resp = client.get(url)
        assert resp.status_code == expected, (url, resp.content[:300])
        if expected == 404:
            assert resp["Content-Type"].startswith("application/problem+json")


def test_a_published_checklist_is_public_and_its_badge_cacheable(int8_submitted, clients, api, users):
    publish(int8_submitted, users["maintainer"])
    assert api.get(f"{REV}/checklist/").status_code == 200
    resp = api.get(f"{REV}/checklist/badge.svg")
    assert resp.status_code == 200 and resp["Content-Type"].startswith("image/svg+xml")
    assert resp["Cache-Control"] == "public, max-age=300" and resp["ETag"]
    svg = resp.content.decode()
    assert svg.startswith("<svg") and "in progress 54%" in svg and "checklist" in svg
    assert api.get(f"{REV}/checklist/badge.svg", HTTP_IF_NONE_MATCH=resp["ETag"]).status_code == 304
    stable = api.get(f"{BASE}/badge.svg", HTTP_ACCEPT="image/svg+xml")
    assert stable.status_code == 200 and stable.content == resp.content and stable["X-Checklist-Revision"] == "1"


def test_the_stable_badge_follows_the_current_revision_the_reader_may_see(int8_submitted, clients, api, users):
    from apps.registry.services import revision_create

    publish(int8_submitted, users["maintainer"])
    variant = int8_submitted.variant
    variant.refresh_from_db()
    revision_create(variant=variant, actor=users["alice"])  # revision 2: a private draft, now current
    resp = api.get(f"{BASE}/badge.svg")
    assert resp.status_code == 200 and resp["X-Checklist-Revision"] == "1"
    assert api.get(f"{BASE}/revisions/2/checklist/badge.svg").status_code == 404
    # The owner sees revision 2, which has no checklist until it is submitted: its badge is 404.
    assert clients["alice"].get(f"{BASE}/revisions/2/checklist/badge.svg").status_code == 404
    assert clients["alice"].get(f"{BASE}/badge.svg")["X-Checklist-Revision"] == "1"


def test_a_variant_without_a_submitted_revision_gets_a_placeholder_badge(digits_world, clients):
    resp = clients["alice"].get(f"{BASE}/badge.svg")
    assert resp.status_code == 200 and "not submitted" in resp.content.decode()
    assert resp["Cache-Control"] == "private, no-cache"
    assert clients["alice"].get(f"{REV}/checklist/").status_code == 404  # a draft has no checklist yet


def test_badge_svg_says_passing_once_the_gate_holds(int8_submitted, clients, digits_world, users):
    from apps.checklists.tests.factories import finished_job, job_finished
    from apps.checklists.tests.test_services import _answer_manual_items

    _answer_manual_items(int8_submitted, users["reviewer1"])
    job_finished(finished_job(int8_submitted, digits_world["benchmark"], users["alice"]).pk)
    svg = clients["alice"].get(f"{REV}/checklist/badge.svg").content.decode()
    assert re.search(r">passing · silver 50%<", svg), svg
    assert "private" in clients["alice"].get(f"{REV}/checklist/badge.svg")["Cache-Control"]


# --- PATCH an item: who may answer, who may verify ------------------------------------------------------

ANSWER = {"status": "n/a", "justification": "A dynamic int8 quantization: no new training data."}


@pytest.mark.parametrize(
    ("who", "expected"), [("anon", 401), ("bob", 404), ("reviewer1", 403), ("maintainer", 403), ("alice", 200)]
)
def test_who_may_answer_under_review(int8_submitted, clients, api, who, expected):
    client = api if who == "anon" else clients[who]
    resp = client.patch(f"{REV}/checklist/training-data-disclosed/", ANSWER, format="json")
    assert resp.status_code == expected, resp.content
    if expected == 200:
        body = resp.json()
        assert (body["status"], body["answered_by"], body["source"]) == ("n/a", "alice", "human")
        assert body["human_justification"] == ANSWER["justification"] and resp["ETag"]


def test_someone_who_can_see_but_not_answer_gets_403(int8_submitted, clients, users):
    from apps.registry.services import revision_transition

    revision_transition(revision=int8_submitted, target="approved", actor=users["maintainer"])
    revision_transition(revision=int8_submitted, target="published", actor=users["maintainer"])
    resp = clients["bob"].patch(f"{REV}/checklist/training-data-disclosed/", ANSWER, format="json")
    assert resp.status_code == 403 and resp["Content-Type"].startswith("application/problem+json")
    # The owner may see it, but a published checklist is closed.
    assert clients["alice"].patch(f"{REV}/checklist/training-data-disclosed/", ANSWER, format="json").status_code == 409


@pytest.mark.parametrize(("who", "expected"), [("alice", 403), ("bob", 404), ("reviewer1", 200), ("maintainer", 200)])
def test_who_may_verify(int8_submitted, clients, who, expected):
    assert clients["alice"].patch(f"{REV}/checklist/training-data-disclosed/", ANSWER, format="json").status_code == 200
    resp = clients[who].patch(f"{REV}/checklist/training-data-disclosed/", {"verified": True}, format="json")
    assert resp.status_code == expected, resp.content
    if expected == 200:
        assert resp.json()["verified_by"] == who and resp.json()["verified"] is True


def test_token_scopes(int8_submitted, users, client_for):
    read_only = client_for(users["alice"], scopes=("read",))
    assert read_only.get(f"{REV}/checklist/").status_code == 200
    assert read_only.patch(f"{REV}/checklist/training-data-disclosed/", ANSWER, format="json").status_code == 403
    assert (
        client_for(users["alice"]).patch(f"{REV}/checklist/training-data-disclosed/", ANSWER, format="json").status_code
        == 200
    )
    no_read = client_for(users["alice"], scopes=("write",))
    assert no_read.get(f"{REV}/checklist/").status_code == 403
    verify = {"verified": True}
    writer = client_for(users["reviewer1"], scopes=("read", "write"))
    assert writer.patch(f"{REV}/checklist/training-data-disclosed/", verify, format="json").status_code == 403
    reviewer = client_for(users["reviewer1"], scopes=("read", "review"))
    assert reviewer.patch(f"{REV}/checklist/training-data-disclosed/", verify, format="json").status_code == 200
    # Answering and verifying in one PATCH needs both scopes (it needed only `write`).
    both = {"verified": True, "justification": "see the card"}
    resp = writer.patch(f"{REV}/checklist/training-data-disclosed/", both, format="json")
    assert resp.status_code == 403 and "'review' scope" in resp.json()["detail"]
    resp = reviewer.patch(f"{REV}/checklist/training-data-disclosed/", both, format="json")
    assert resp.status_code == 403 and "'write' scope" in resp.json()["detail"]


def test_rule_failures_are_400_problems_naming_the_rule(int8_submitted, clients):
    client = clients["alice"]
    resp = client.patch(f"{REV}/checklist/training-data-disclosed/", {"status": "met"}, format="json")
    assert resp.status_code == 400 and resp["Content-Type"].startswith("application/problem+json")
    body = resp.json()
    assert body["rules"] == ["met_needs_url"] and body["errors"]["evidence_url"][0].startswith("met_needs_url:")
    resp = client.patch(f"{REV}/checklist/contamination-statement/", {"status": "n/a"}, format="json")
    assert set(resp.json()["rules"]) == {"na_not_allowed", "na_needs_justification"}
    resp = client.patch(f"{REV}/checklist/safe-serialization/", {"status": "unmet"}, format="json")
    assert resp.json()["rules"] == ["automatic_only"]
    for bad in ({"status": "maybe"}, {"verified": "perhaps"}, {}, {"justification": 3}, ["status"]):
        resp = client.patch(f"{REV}/checklist/contamination-statement/", bad, format="json")
        assert resp.status_code == 400, (bad, resp.content)
        assert "errors" in resp.json()
    assert client.patch(f"{REV}/checklist/no-such-item/", ANSWER, format="json").status_code == 404
    assert clients["reviewer1"].patch(
        f"{REV}/checklist/contamination-statement/", {"verified": True}, format="json"
    ).json()["rules"] == ["nothing_to_verify"]


def test_if_match_on_an_item(int8_submitted, clients):
    client = clients["alice"]
    url = f"{REV}/checklist/contamination-statement/"
    etag = client.get(url)["ETag"]
    body = {"status": "met", "justification": "The test split is held out; the parent never saw it."}
    assert client.patch(url, body, format="json", HTTP_IF_MATCH='"stale"').status_code == 412
    resp = client.patch(url, body, format="json", HTTP_IF_MATCH=etag)
    assert resp.status_code == 200 and resp["ETag"] != etag
    assert client.get(url)["ETag"] == resp["ETag"]


def test_mass_assignment_of_answer_fields_is_ignored(int8_submitted, clients):
    resp = clients["alice"].patch(
        f"{REV}/checklist/contamination-statement/",
        {
            "status": "met",
            "justification": "Held-out split; no overlap with training data.",
            "answered_by": "reviewer1",
            "verified_by": "reviewer1",
            "source": "auto",
            "confidence": 5,
        },
        format="json",
    )
    assert resp.status_code == 200
    body = resp.json()
    assert (body["answered_by"], body["verified_by"], body["source"]) == ("alice", None, "human")


# --- Components -----------------------------------------------------------------------------------------


def test_components_api(int8_submitted, clients, api, users):
    client = clients["alice"]
    url = f"{REV}/components/model-architecture/"
    assert client.get(url).status_code == 404  # not declared yet
    resp = client.put(url, {"location": "https://github.com/example/digits", "license": "mit"}, format="json")
    assert resp.status_code == 200, resp.content
    assert resp.json()["open"] is True and resp.json()["license"] == "mit"
    assert client.get(url).json()["location"] == "https://github.com/example/digits"
    body = client.get(f"{REV}/components/").json()
    assert body["openness"]["classes"][0]["progress"] == 33
    assert clients["bob"].put(url, {"location": "x"}, format="json").status_code == 404
    assert api.put(url, {"location": "x"}, format="json").status_code == 401
    assert clients["reviewer1"].put(url, {"location": "x"}, format="json").status_code == 403
    resp = client.put(url, {"location": "x", "license": "apache2"}, format="json")
    assert resp.status_code == 400 and "apache-2.0" in resp.json()["errors"]["license"][0]
    assert client.put(f"{REV}/components/nope/", {"location": "x"}, format="json").status_code == 404
    assert client.delete(url).status_code == 204
    assert client.get(url).status_code == 404
    assert client.delete(url).status_code == 404
    publish(int8_submitted, users["maintainer"])
    assert clients["bob"].put(url, {"location": "x"}, format="json").status_code == 403
    assert client.put(url, {"location": "x"}, format="json").status_code == 409


# --- Templates ------------------------------------------------------------------------------------------

ITEMS = [
    {"key": "hashes", "title": "Every artifact has a sha256", "kind": "auto", "detective": "artifact-hashes"},
    {"key": "paper", "title": "Paper linked", "needs_evidence": "url", "reviewer_verifies": True},
]


def test_templates_are_read_by_anyone_and_managed_by_maintainers(digits_world, clients, api, users):
    services.template_default()
    assert api.get("/api/v1/checklist-templates/").json()["count"] == 1
    assert (
        api.post("/api/v1/checklist-templates/", {"slug": "x", "name": "X", "items": ITEMS}, format="json").status_code
        == 401
    )
    assert (
        clients["alice"]
        .post("/api/v1/checklist-templates/", {"slug": "x", "name": "X", "items": ITEMS}, format="json")
        .status_code
        == 403
    )
    from rest_framework.test import APIClient

    from apps.accounts.services import token_create

    _, raw = token_create(user=users["maintainer"], name="no-admin", scopes=["read", "write"])
    no_admin = APIClient()
    no_admin.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert (
        no_admin.post(
            "/api/v1/checklist-templates/", {"slug": "x", "name": "X", "items": ITEMS}, format="json"
        ).status_code
        == 403
    )
    resp = clients["maintainer"].post(
        "/api/v1/checklist-templates/", {"slug": "x", "name": "X", "items": ITEMS}, format="json"
    )
    assert resp.status_code == 201, resp.content
    assert resp.json()["version"] == 1 and [i["key"] for i in resp.json()["items"]] == ["hashes", "paper"]
    assert api.get(resp["Location"]).status_code == 200
    bad = clients["maintainer"].post(
        "/api/v1/checklist-templates/",
        {"slug": "y", "name": "Y", "items": [{"key": "a", "title": "A", "kind": "auto", "detective": "nope"}]},
        format="json",
    )
    assert bad.status_code == 400 and "items.0.detective" in bad.json()["errors"]
    dup = clients["maintainer"].post(
        "/api/v1/checklist-templates/", {"slug": "x", "name": "X", "items": ITEMS}, format="json"
    )
    assert dup.status_code == 409
    assert clients["alice"].patch("/api/v1/checklist-templates/x/", {"name": "Y"}, format="json").status_code == 403


def test_patching_a_template_in_use_makes_a_new_version(int8_submitted, clients, api):
    url = "/api/v1/checklist-templates/open-model-practices/"
    before = api.get(url).json()
    assert (before["version"], before["in_use"], before["instances"]) == (1, True, 1)
    items = before["items"]
    items[-1]["guidance"] = "Report the hardware, the hours and the kWh."
    resp = clients["maintainer"].patch(url, {"items": items}, format="json")
    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert (body["version"], body["based_on"], body["in_use"], body["is_default"]) == (2, 1, False, True)
    assert api.get(f"{url}versions/1/").json()["items"][-1]["guidance"].startswith("Report the hardware, the")
    assert api.get(f"{url}versions/1/").json()["is_default"] is False
    assert api.get(f"{url}versions/9/").status_code == 404
    # The existing instance keeps version 1.
    assert clients["alice"].get(f"{REV}/checklist/").json()["version"] == 1
    assert api.get("/api/v1/checklist-templates/?slug=open-model-practices").json()["count"] == 2


# --- Query counts ---------------------------------------------------------------------------------------


def test_template_list_query_count_is_flat(digits_world, clients, users):
    client = clients["alice"]
    services.template_default()
    client.get("/api/v1/me/")  # the first use of a token writes last_used_at
    one = get_counted(client, "/api/v1/checklist-templates/?page_size=100")[1]
    for n in range(11):
        services.template_create(actor=users["maintainer"], slug=f"t{n}", name=f"T{n}", items=ITEMS)
    many = get_counted(client, "/api/v1/checklist-templates/?page_size=100")[1]
    assert one == many


def test_checklist_and_components_query_counts_do_not_grow_with_items(digits_world, submit, clients, users):
    client = clients["alice"]
    client.get("/api/v1/me/")
    services.template_default()
    services.template_create(actor=users["maintainer"], slug="tiny", name="Tiny", is_default=True, items=ITEMS[:1])
    submit(digits_world["int8"])
    small = get_counted(client, f"{REV}/checklist/")[1]
    components_small = get_counted(client, f"{REV}/components/")[1]
    # bob's variant gets the 14-item default template and 6 declared components.
    services.template_update(slug="open-model-practices", actor=users["maintainer"], is_default=True)
    pruned = submit(digits_world["pruned"])
    for key in ("model-architecture", "model-card", "data-card", "technical-report", "evaluation-results", "datasets"):
        services.component_set(
            revision=pruned, component=key, location="https://example.org/x", license="mit", actor=users["bob"]
        )
    bob = clients["bob"]
    bob.get("/api/v1/me/")
    large = get_counted(bob, "/api/v1/variants/bob/digits-mlp-pruned/revisions/1/checklist/")[1]
    components_large = get_counted(bob, "/api/v1/variants/bob/digits-mlp-pruned/revisions/1/components/")[1]
    assert small == large
    assert components_small == components_large
