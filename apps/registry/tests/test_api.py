"""HTTP: the authorization matrix, 404-not-403, problem+json refusals, ETags, uploads, lists and query counts."""

import hashlib
import io

import pytest
from rest_framework.test import APIClient

from apps.core.testing import count_queries
from apps.registry import services
from apps.registry.models import Variant
from apps.registry.tests.factories import CARD, commons_user, make_original, make_variant, onnx_bytes, record

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


@pytest.fixture
def world(alice, bob, reviewer, maintainer, client_for):
    """commons/base-model (published) and alice/draft (a draft with one artifact), plus a client per role."""
    base = make_original(maintainer)
    draft = make_variant(alice, "draft", [base])
    record(draft, alice)
    clients = {
        "anonymous": APIClient(),
        "owner": client_for(alice),
        "other": client_for(bob),
        "reviewer": client_for(reviewer),
        "maintainer": client_for(maintainer),
    }
    return {
        "base": base,
        "draft": draft,
        "clients": clients,
        "users": {"owner": alice, "other": bob, "reviewer": reviewer, "maintainer": maintainer},
    }


ROLES = ["anonymous", "owner", "other", "reviewer", "maintainer"]
D = "/api/v1/variants/alice/draft"
# What each role gets on each endpoint of alice's draft. Anyone who may not see the draft gets 404 (not
# 403); those who see it but may not change it get 403; anonymous writes need authentication first.
MATRIX = [
    ("get", f"{D}/", None, {"anonymous": 404, "owner": 200, "other": 404, "reviewer": 200, "maintainer": 200}),
    ("get", f"{D}/lineage/", None, {"anonymous": 404, "owner": 200, "other": 404, "reviewer": 200, "maintainer": 200}),
    ("get", f"{D}/card.md", None, {"anonymous": 404, "owner": 200, "other": 404, "reviewer": 200, "maintainer": 200}),
    (
        "get",
        f"{D}/revisions/",
        None,
        {"anonymous": 404, "owner": 200, "other": 404, "reviewer": 200, "maintainer": 200},
    ),
    (
        "get",
        f"{D}/revisions/1/",
        None,
        {"anonymous": 404, "owner": 200, "other": 404, "reviewer": 200, "maintainer": 200},
    ),
    (
        "patch",
        f"{D}/",
        {"summary": "changed"},
        {"anonymous": 401, "owner": 200, "other": 404, "reviewer": 403, "maintainer": 403},
    ),
    ("post", f"{D}/revisions/", {}, {"anonymous": 401, "owner": 409, "other": 404, "reviewer": 403, "maintainer": 403}),
    (
        "post",
        f"{D}/revisions/1/artifacts/",
        {"path": "b.safetensors", "uri": "hf://o/m@1/b.safetensors", "sha256": "a" * 64, "size_bytes": 1},
        {"anonymous": 401, "owner": 201, "other": 404, "reviewer": 403, "maintainer": 403},
    ),
    (
        "post",
        f"{D}/revisions/1/submit/",
        None,
        {"anonymous": 401, "owner": 200, "other": 404, "reviewer": 403, "maintainer": 403},
    ),
    (
        "post",
        f"{D}/revisions/1/withdraw/",
        {},
        {"anonymous": 401, "owner": 200, "other": 404, "reviewer": 403, "maintainer": 403},
    ),
    ("delete", f"{D}/", None, {"anonymous": 401, "owner": 204, "other": 404, "reviewer": 403, "maintainer": 403}),
]


@pytest.mark.parametrize("method,url,body,expected", MATRIX, ids=[f"{m} {u[len(D) :] or '/'}" for m, u, _, _ in MATRIX])
@pytest.mark.parametrize("role", ROLES)
def test_authorization_matrix_on_a_draft(world, role, method, url, body, expected):
    client = world["clients"][role]
    resp = getattr(client, method)(url, body, format="json") if body is not None else getattr(client, method)(url)
    assert resp.status_code == expected[role], (resp.status_code, getattr(resp, "data", resp.content))
    if resp.status_code >= 400:
        assert resp["Content-Type"].startswith(PROBLEM)
    if resp.status_code == 404:
        assert "alice/draft" not in resp.content.decode() or "No variant" in resp.json()["detail"]


def test_published_variants_are_public_but_still_only_their_owner_edits(world):
    clients = world["clients"]
    for role in ROLES:
        assert clients[role].get("/api/v1/variants/commons/base-model/").status_code == 200
        assert clients[role].get("/api/v1/variants/commons/base-model/card.md").status_code == 200
    expected = {"anonymous": 401, "owner": 403, "other": 403, "reviewer": 403, "maintainer": 409}
    for role in ROLES:
        # the maintainers act for commons; the published revision itself is immutable (409)
        resp = clients[role].patch("/api/v1/variants/commons/base-model/", {"summary": "x"}, format="json")
        assert resp.status_code == expected[role], role


def test_lists_show_drafts_only_to_those_who_may_see_them(world):
    for role, sees in {"anonymous": False, "owner": True, "other": False, "reviewer": True, "maintainer": True}.items():
        names = [v["full_name"] for v in world["clients"][role].get("/api/v1/variants/").json()["results"]]
        assert ("alice/draft" in names) is sees, role
        assert "commons/base-model" in names


def test_anonymous_and_other_users_cannot_see_draft_revisions_of_a_published_variant(world, alice, maintainer):
    variant = make_variant(alice, "pub", [world["base"]])
    record(variant, alice)
    services.revision_submit(revision=variant.current_revision, actor=alice)
    for target in ("approved", "published"):
        services.revision_transition(revision=variant.current_revision, target=target, actor=maintainer)
    services.revision_create(variant=variant, actor=alice)
    for role, numbers in {"anonymous": [1], "other": [1], "owner": [1, 2], "reviewer": [1, 2]}.items():
        listed = world["clients"][role].get("/api/v1/variants/alice/pub/revisions/").json()["results"]
        got = [r["number"] for r in listed]
        assert got == numbers, role
    assert world["clients"]["anonymous"].get("/api/v1/variants/alice/pub/revisions/2/").status_code == 404


def test_token_scopes_apply(world, alice, client_for):
    reader = client_for(alice, scopes=("read",))
    assert reader.get(f"{D}/").status_code == 200
    resp = reader.patch(f"{D}/", {"summary": "x"}, format="json")
    assert resp.status_code == 403 and "write" in resp.json()["detail"]
    assert reader.post(f"{D}/revisions/1/submit/").status_code == 403


# --- create ---------------------------------------------------------------------------------------


def test_create_a_variant_as_the_spec_example(world):
    owner = world["clients"]["owner"]
    resp = owner.post(
        "/api/v1/variants/",
        {
            "name": "base-model-int8",
            "relation": "quantized",
            "parents": ["commons/base-model"],
            "license": "Apache-2.0",
            "parameters": 4810,
            "precision": "int8",
            "task": "image-classification",
            "summary": "int8",
            "card": CARD,
        },
        format="json",
    )
    assert resp.status_code == 201, resp.json()
    body = resp.json()
    for key in (
        "full_name",
        "owner",
        "name",
        "relation",
        "parents",
        "license",
        "parameters",
        "precision",
        "task",
        "architecture",
        "tags",
        "summary",
        "status",
        "current_revision",
        "created_at",
        "updated_at",
    ):
        assert key in body
    assert body["full_name"] == "alice/base-model-int8" and body["parents"] == ["commons/base-model"]
    assert body["license"] == "apache-2.0" and body["status"] == "draft" and body["current_revision"] == 1
    assert body["license_compat"]["status"] == "compatible"
    assert resp["Location"] == "/api/v1/variants/alice/base-model-int8/" and resp["ETag"]


@pytest.mark.parametrize(
    "payload,status,field",
    [
        (
            {"name": "x", "relation": "finetune", "parents": ["commons/base-model"], "license": "apache2"},
            400,
            "license",
        ),
        ({"name": "x", "relation": "finetune", "parents": ["nobody/nothing"]}, 400, "parents"),
        ({"name": "x", "relation": "merge", "parents": ["commons/base-model"]}, 400, "parents"),
        ({"name": "x", "relation": "original"}, 403, "relation"),
        ({"name": "-x", "relation": "finetune", "parents": ["commons/base-model"]}, 400, "name"),
        (
            {"name": "x", "relation": "finetune", "parents": ["commons/base-model"], "task": "text-generaton"},
            400,
            "task",
        ),
        ({"name": "x", "relation": "finetune", "parents": ["commons/base-model"], "parameters": 0}, 400, "parameters"),
        ({"name": "x", "relation": "sideways", "parents": ["commons/base-model"]}, 400, "relation"),
        ({"name": "x", "parents": ["commons/base-model"]}, 400, "relation"),
        ({"name": "x", "relation": "finetune", "parents": "commons/base-model"}, 400, "parents"),
        ({"name": "x", "relation": "finetune", "parents": ["commons/base-model"], "owner": "bob"}, 403, "owner"),
    ],
)
def test_create_refusals_are_problems_with_field_errors(world, payload, status, field):
    resp = world["clients"]["owner"].post("/api/v1/variants/", payload, format="json")
    assert resp.status_code == status, resp.json()
    assert resp["Content-Type"].startswith(PROBLEM)
    assert field in resp.json()["errors"], resp.json()


def test_unknown_licence_suggests_close_ids(world):
    resp = world["clients"]["owner"].post(
        "/api/v1/variants/",
        {"name": "x", "relation": "finetune", "parents": ["commons/base-model"], "license": "apache2"},
        format="json",
    )
    assert "apache-2.0" in resp.json()["errors"]["license"][0]


def test_duplicate_names_ignore_case(world):
    resp = world["clients"]["owner"].post(
        "/api/v1/variants/", {"name": "DRAFT", "relation": "finetune", "parents": ["commons/base-model"]}, format="json"
    )
    assert resp.status_code == 400 and "already has" in resp.json()["errors"]["name"][0]


def test_maintainers_register_originals_in_commons(world):
    resp = world["clients"]["maintainer"].post(
        "/api/v1/variants/",
        {"name": "new-original", "owner": "commons", "relation": "original", "license": "mit"},
        format="json",
    )
    assert resp.status_code == 201 and resp.json()["full_name"] == "commons/new-original"


def test_mass_assignment_is_ignored(world, alice):
    owner = world["clients"]["owner"]
    resp = owner.post(
        "/api/v1/variants/",
        {
            "name": "sneaky",
            "relation": "finetune",
            "parents": ["commons/base-model"],
            "status": "published",
            "is_public": True,
            "current_revision": 9,
            "license_compat": {"status": "compatible"},
        },
        format="json",
    )
    assert resp.status_code == 201
    body = resp.json()
    assert body["status"] == "draft" and body["is_public"] is False and body["current_revision"] == 1
    resp = owner.patch(
        "/api/v1/variants/alice/sneaky/",
        {
            "owner": "bob",
            "status": "published",
            "is_public": True,
            "current_revision": 7,
            "full_name": "bob/x",
            "created_at": "2000-01-01T00:00:00Z",
            "license_compat": {"status": "compatible", "issues": []},
            "summary": "still mine",
        },
        format="json",
    )
    assert resp.status_code == 200
    variant = Variant.objects.get(owner=alice, name="sneaky")
    assert variant.owner == alice and variant.status == "draft" and not variant.is_public
    assert variant.current_revision.number == 1 and variant.summary == "still mine"
    assert variant.created_at.year > 2000


# --- detail, ETag, PATCH ---------------------------------------------------------------------------


def test_etag_and_if_match(world):
    owner = world["clients"]["owner"]
    first = owner.get(f"{D}/")
    etag = first["ETag"]
    assert etag and owner.get(f"{D}/", HTTP_IF_NONE_MATCH=etag).status_code == 304
    ok = owner.patch(f"{D}/", {"summary": "one"}, format="json", HTTP_IF_MATCH=etag)
    assert ok.status_code == 200 and ok["ETag"] != etag and ok.json()["summary"] == "one"
    stale = owner.patch(f"{D}/", {"summary": "two"}, format="json", HTTP_IF_MATCH=etag)
    assert stale.status_code == 412 and stale["Content-Type"].startswith(PROBLEM)
    assert owner.get(f"{D}/").json()["summary"] == "one"
    assert stale.json()["etag"] == ok["ETag"]
    weak = owner.patch(f"{D}/", {"summary": "two"}, format="json", HTTP_IF_MATCH=f"W/{ok['ETag']}")
    assert weak.status_code == 412 and weak["Content-Type"].startswith(PROBLEM)
    assert owner.patch(f"{D}/", {"summary": "three"}, format="json", HTTP_IF_MATCH=ok["ETag"]).status_code == 200
    assert owner.get(f"{D}/revisions/1/")["ETag"]


def test_patch_parents_refuses_cycles_with_a_problem(world, alice):
    make_variant(alice, "child", [world["draft"]])
    resp = world["clients"]["owner"].patch(f"{D}/", {"parents": ["alice/child"]}, format="json")
    assert resp.status_code == 400 and "derive" in resp.json()["errors"]["parents"][0]


def test_patch_with_card_front_matter_updates_fields(world):
    card = "---\nlicense: MIT\ntags: [a, b]\ndatasets: [imdb]\n---\n# Body\n\nText.\n"
    resp = world["clients"]["owner"].patch(f"{D}/", {"card": card}, format="json")
    assert resp.status_code == 200, resp.json()
    body = resp.json()
    assert body["license"] == "mit" and body["tags"] == ["a", "b"] and body["card"] == "# Body\n\nText.\n"
    assert body["card_data"]["datasets"] == ["imdb"] and body["card_data"]["base_model"] == "commons/base-model"


def test_put_is_not_allowed(world):
    assert world["clients"]["owner"].put(f"{D}/", {"summary": "x"}, format="json").status_code == 405


# --- lineage ----------------------------------------------------------------------------------------


def test_lineage_endpoint(world, alice):
    child = make_variant(alice, "child", [world["draft"]], relation="quantized")
    assert child
    body = world["clients"]["owner"].get(f"{D}/lineage/").json()
    assert body["variant"] == "alice/draft" and body["parents"] == ["commons/base-model"]
    assert [(n["full_name"], n["relation"], n["depth"]) for n in body["ancestors"]] == [
        ("commons/base-model", "original", 1)
    ]
    assert [(n["full_name"], n["relation"]) for n in body["descendants"]] == [("alice/child", "quantized")]
    assert {"child": "alice/child", "parent": "alice/draft", "relation": "quantized"} in body["edges"]
    # bob sees the published base, but not alice's drafts below it
    assert world["clients"]["other"].get("/api/v1/variants/commons/base-model/lineage/").json()["descendants"] == []


# --- revisions and lifecycle ---------------------------------------------------------------------


def test_submit_refusals_explain_themselves(world, alice):
    make_variant(alice, "empty", [world["base"]], card="")
    resp = world["clients"]["owner"].post("/api/v1/variants/alice/empty/revisions/1/submit/")
    assert resp.status_code == 409 and resp["Content-Type"].startswith(PROBLEM)
    assert set(resp.json()["errors"]) == {"artifacts", "card"}
    owner = world["clients"]["owner"]
    assert owner.post(f"{D}/revisions/1/submit/").json()["status"] == "submitted"
    again = owner.post(f"{D}/revisions/1/submit/")
    assert again.status_code == 409
    body = again.json()
    assert body["current"] == "submitted" and body["allowed"] == [
        "changes_requested",
        "approved",
        "rejected",
        "withdrawn",
    ]
    assert "Allowed from 'submitted'" in body["detail"]
    frozen = owner.patch(f"{D}/", {"summary": "x"}, format="json")
    assert frozen.status_code == 409 and "new revision" in frozen.json()["detail"]
    art = owner.post(
        f"{D}/revisions/1/artifacts/",
        {"path": "c.onnx", "uri": "hf://o/m@1/c.onnx", "sha256": "a" * 64, "size_bytes": 1},
        format="json",
    )
    assert art.status_code == 409
    assert owner.post(f"{D}/revisions/99/submit/").status_code == 404


def test_withdraw_then_new_revision(world):
    owner = world["clients"]["owner"]
    assert owner.post(f"{D}/revisions/1/withdraw/", {"reason": "oops"}, format="json").json()["status"] == "withdrawn"
    resp = owner.post(f"{D}/revisions/", {"notes": "second try"}, format="json")
    assert resp.status_code == 201 and resp.json()["number"] == 2 and len(resp.json()["artifacts"]) == 1
    assert owner.get(f"{D}/").json()["current_revision"] == 2
    listed = owner.get(f"{D}/revisions/").json()["results"]
    assert [(r["number"], r["status"]) for r in listed] == [(1, "withdrawn"), (2, "draft")]
    assert listed[1]["allowed_transitions"] == ["submitted", "withdrawn"]


# --- artifacts -----------------------------------------------------------------------------------


def _upload(client, content, **fields):
    data = {"file": io.BytesIO(content), **fields}
    data["file"].name = fields.pop("filename", "model.onnx")
    return client.post(f"{D}/revisions/1/artifacts/", data, format="multipart")


def test_multipart_upload_streams_and_hashes(world, monkeypatch):
    from apps.registry.uploads import HashingUploadHandler

    chunks = []
    original = HashingUploadHandler.receive_data_chunk

    def counting(self, raw, start):
        chunks.append(len(raw))
        return original(self, raw, start)

    monkeypatch.setattr(HashingUploadHandler, "receive_data_chunk", counting)
    content = onnx_bytes(bytes(range(256)) * 12_000)  # ~3 MB, framed as an ONNX ModelProto
    digest = hashlib.sha256(content).hexdigest()
    resp = _upload(world["clients"]["owner"], content, path="onnx/model.onnx", format="onnx", sha256=digest)
    assert resp.status_code == 201, resp.json()
    body = resp.json()
    assert body["sha256"] == digest and body["size_bytes"] == len(content) and body["safe"] is True
    assert body["stored"] is True and body["uri"] == ""
    assert len(chunks) >= 3 and max(chunks) <= HashingUploadHandler.chunk_size  # streamed, chunk by chunk
    from apps.registry.models import Artifact

    stored = Artifact.objects.get(path="onnx/model.onnx")
    with open(stored.local_path(), "rb") as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == digest


def test_upload_refusals(world, settings):
    owner = world["clients"]["owner"]
    wrong = _upload(owner, b"\x08\x01abc", sha256="0" * 64)
    assert wrong.status_code == 400 and "sha256" in wrong.json()["errors"]
    pickled = _upload(owner, b"\x80\x04abc", filename="model.pt", format="safetensors")
    assert pickled.status_code == 400 and "format" in pickled.json()["errors"]
    unsafe = _upload(owner, b"\x80\x04abc", filename="pytorch_model.bin")
    assert unsafe.status_code == 201 and unsafe.json()["safe"] is False and unsafe.json()["format"] == "bin"
    settings.MC_UPLOAD_MAX_BYTES = 1000
    big = _upload(owner, b"\x08\x01" + b"x" * 5000, filename="big.onnx")
    assert big.status_code == 413 and big["Content-Type"].startswith(PROBLEM)
    no_file = owner.post(f"{D}/revisions/1/artifacts/", {"path": "x.onnx"}, format="multipart")
    assert no_file.status_code == 400 and "file" in no_file.json()["errors"]
    text = owner.post(f"{D}/revisions/1/artifacts/", "hello", content_type="text/plain")
    assert text.status_code == 415


def test_upload_limit_is_enforced_while_streaming(world, settings):
    """Content-Length may be absent or lie; the handler counts the bytes as they come."""
    from apps.registry.uploads import MULTIPART_OVERHEAD

    settings.MC_UPLOAD_MAX_BYTES = 10
    content = b"\x08\x01" + b"y" * (MULTIPART_OVERHEAD // 2)  # under the early Content-Length check
    resp = _upload(world["clients"]["owner"], content, filename="m.onnx")
    assert resp.status_code == 413


def test_json_artifact_records(world):
    owner = world["clients"]["owner"]
    resp = owner.post(
        f"{D}/revisions/1/artifacts/",
        {
            "path": "model-Q4_K_M.gguf",
            "uri": "hf://org/m-GGUF@abc123/model-Q4_K_M.gguf",
            "sha256": "A" * 64,
            "size_bytes": 4_920_734_016,
        },
        format="json",
    )
    assert resp.status_code == 201, resp.json()
    body = resp.json()
    assert body["format"] == "gguf" and body["sha256"] == "a" * 64 and body["safe"] is True and not body["stored"]
    dup = owner.post(
        f"{D}/revisions/1/artifacts/",
        {"path": "model-Q4_K_M.gguf", "uri": "hf://org/m@1/x.gguf", "sha256": "b" * 64, "size_bytes": 1},
        format="json",
    )
    assert dup.status_code == 409
    bad = owner.post(
        f"{D}/revisions/1/artifacts/",
        {"path": "../x.gguf", "uri": "ftp://x", "sha256": "zz", "size_bytes": -2},
        format="json",
    )
    assert bad.status_code == 400 and {"sha256", "size_bytes"} <= set(bad.json()["errors"])


# --- lists --------------------------------------------------------------------------------------


def test_filters_search_and_ordering(world, alice, bob, maintainer):
    base = world["base"]
    make_variant(alice, "q4", [base], relation="quantized", license="mit", task="text-generation")
    make_variant(bob, "lora", [base], relation="adapter", license="cc-by-nc-4.0", summary="a LoRA for chat")
    client = world["clients"]["maintainer"]

    def names(query):
        resp = client.get(f"/api/v1/variants/?{query}")
        assert resp.status_code == 200, resp.json()
        return sorted(v["full_name"] for v in resp.json()["results"])

    assert names("owner=ALICE") == ["alice/draft", "alice/q4"]
    assert names("relation=adapter") == ["bob/lora"]
    assert names("license=CC-BY-NC-4.0") == ["bob/lora"]
    assert names("task=text-generation") == ["alice/q4"]
    assert names("status=published") == ["commons/base-model"]
    assert names("parent=commons/base-model") == ["alice/draft", "alice/q4", "bob/lora"]
    assert names("search=chat") == ["bob/lora"]
    ordered = [v["name"] for v in client.get("/api/v1/variants/?ordering=name").json()["results"]]
    assert ordered == sorted(ordered)
    assert client.get("/api/v1/variants/?relation=sideways").status_code == 400
    too_many = client.get("/api/v1/variants/?page_size=101")  # the schema's maximum is 100: refused, not clamped
    assert too_many.status_code == 400 and "page_size" in too_many.json()["errors"]


def _populate(owner, base, count):
    for i in range(count):
        make_variant(owner, f"bulk-{i:03d}", [base], tags=["bulk"])


@pytest.mark.parametrize("role", ["anonymous", "other", "maintainer"])
def test_variant_list_query_count_is_the_same_at_1_and_100_rows(world, bob, role):
    base = world["base"]
    _populate(bob, base, 100)
    for v in Variant.objects.filter(owner=bob):  # make them public so every role sees 100 rows
        Variant.objects.filter(pk=v.pk).update(is_public=True)
    client = world["clients"][role]
    client.get("/api/v1/variants/?page_size=1")  # warm the token (first use writes last_used_at)
    counts = {}
    for size in (1, 100):
        with count_queries() as ctx:
            resp = client.get(f"/api/v1/variants/?page_size={size}")
        assert resp.status_code == 200 and len(resp.json()["results"]) == size
        counts[size] = len(ctx)
    assert counts[1] == counts[100], counts
    print(f"variant list queries ({role}): {counts}")


def test_revision_list_query_count_is_the_same_at_1_and_12_rows(world, alice, maintainer):
    variant = make_variant(alice, "many", [world["base"]])
    record(variant, alice)
    for _ in range(11):
        services.revision_withdraw(revision=variant.current_revision, actor=alice)
        services.revision_create(variant=variant, actor=alice)
        variant.refresh_from_db()
    client = world["clients"]["owner"]
    client.get("/api/v1/variants/alice/many/revisions/?page_size=1")
    counts = {}
    for size in (1, 12):
        with count_queries() as ctx:
            resp = client.get(f"/api/v1/variants/alice/many/revisions/?page_size={size}")
        assert len(resp.json()["results"]) == size
        counts[size] = len(ctx)
    assert counts[1] == counts[12], counts


def test_lineage_endpoint_query_count_does_not_grow_with_depth(world, alice, maintainer):
    client = world["clients"]["maintainer"]
    node = world["base"]
    counts = {}
    for depth in range(1, 11):
        node = make_variant(alice, f"gen-{depth}", [node])
        if depth in (1, 10):
            client.get(f"/api/v1/variants/alice/gen-{depth}/lineage/")
            with count_queries() as ctx:
                resp = client.get(f"/api/v1/variants/alice/gen-{depth}/lineage/")
            assert len(resp.json()["ancestors"]) == depth
            counts[depth] = len(ctx)
    assert counts[1] == counts[10], counts


def test_commons_user_exists_for_originals(world):
    assert commons_user().variants.count() == 1
    assert make_original(world["users"]["maintainer"], "second").owner.username == "commons"
