"""HTTP: card and upload bodies (issue 12, findings 8, 10 and 11): limits before parsing, the streaming upload
cap for every kind of authentication, one answer to strangers importing cards, and safe formats whose bytes
are checked."""

import hashlib
import io
import pickle

import pytest
from django.middleware.csrf import get_token
from django.test import RequestFactory
from rest_framework.test import APIClient

from apps.registry.models import Artifact
from apps.registry.tests.factories import make_original, make_variant, onnx_bytes, safetensors_bytes

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"
D = "/api/v1/variants/alice/draft"


@pytest.fixture
def world(alice, bob, maintainer, client_for):
    base = make_original(maintainer)
    make_variant(alice, "draft", [base])
    return {"base": base, "owner": client_for(alice), "other": client_for(bob)}


def problem(response, status):
    assert response.status_code == status, response.content[:800]
    assert response["Content-Type"].startswith(PROBLEM)
    return response.json()


def upload(client, content, filename="model.onnx", **fields):
    data = {"file": io.BytesIO(content), **fields}
    data["file"].name = filename
    return client.post(f"{D}/revisions/1/artifacts/", data, format="multipart")


# --- cards: size first, then YAML, never a RecursionError -----------------------------------------------


def test_card_size_is_checked_before_the_yaml_is_parsed(world, settings, monkeypatch):
    settings.MC_CARD_MAX_CHARS = 2000

    def no_parse(*args, **kwargs):
        raise AssertionError("YAML parsed before the size check")

    monkeypatch.setattr("apps.registry.cards.yaml.load", no_parse)
    card = "---\nlicense: mit\ntags: [" + ", ".join(["t"] * 2000) + "]\n---\nbody"
    for resp in (
        world["owner"].post("/api/v1/variants/import-card/?name=big", card.encode(), content_type="text/markdown"),
        world["owner"].post("/api/v1/variants/import-card/", {"name": "big", "card": card}, format="json"),
        world["owner"].patch(f"{D}/", {"card": card}, format="json"),
    ):
        body = problem(resp, 400)
        assert "2000 characters" in body["errors"]["card"][0]


DEEP_FLOW = "---\nlicense: mit\nx: " + "[" * 3000 + "]" * 3000 + "\n---\nbody text"
DEEP_BLOCK = "---\n" + "".join(" " * i + f"k{i}:\n" for i in range(200)) + " " * 200 + "v: 1\n---\nbody"


@pytest.mark.parametrize("card", [DEEP_FLOW, DEEP_BLOCK], ids=["3000-deep-flow-sequence", "200-deep-mapping"])
def test_deep_yaml_is_400_not_500(world, card):
    owner = world["owner"]
    responses = [
        owner.post("/api/v1/variants/import-card/?name=deep", card.encode(), content_type="text/markdown"),
        owner.post("/api/v1/variants/import-card/", {"name": "deep", "card": card}, format="json"),
        owner.patch(f"{D}/", {"card": card}, format="json"),
        owner.post(
            "/api/v1/variants/",
            {"name": "deep2", "relation": "finetune", "parents": ["commons/base-model"], "card": card},
            format="json",
        ),
    ]
    for resp in responses:
        body = problem(resp, 400)
        assert "card" in body["errors"] and "nested" in body["errors"]["card"][0]


@pytest.mark.parametrize(
    "card",
    ["---\nlicense: mit\n---\nbody \x00 with a NUL", '---\nx: "\\ud800"\n---\nbody'],
    ids=["NUL-in-markdown", "lone-surrogate-in-yaml"],
)
def test_card_text_the_database_cannot_hold_is_400(world, card):
    resp = world["owner"].post(
        "/api/v1/variants/import-card/?name=nul", card.encode("utf-8", "surrogatepass"), content_type="text/markdown"
    )
    assert "card" in problem(resp, 400)["errors"]


# --- import-card tells a stranger nothing (finding 10) -----------------------------------------------------


def test_import_card_answers_strangers_the_same_whether_the_name_exists(world, alice):
    make_variant(alice, "secret-draft", [world["base"]])
    card = "---\nlicense: mit\nbase_model: commons/base-model\n---\nA card."
    bob = world["other"]
    answers = []
    for name in ("secret-draft", "no-such-name"):
        for resp in (
            bob.post(
                f"/api/v1/variants/import-card/?name={name}&owner=alice", card.encode(), content_type="text/markdown"
            ),
            bob.post("/api/v1/variants/import-card/", {"name": name, "owner": "alice", "card": card}, format="json"),
        ):
            body = problem(resp, 403)
            body.pop("instance", None)
            answers.append(body)
    assert all(a == answers[0] for a in answers), answers
    assert "secret-draft" not in str(answers[0])


# --- uploads: the streaming cap for every kind of authentication (finding 8) ---------------------------------


@pytest.fixture
def handler_chunks(monkeypatch):
    """Which bytes went through the one capped upload handler, and a trap for Django's default ones."""
    from django.core.files import uploadhandler

    from apps.registry.uploads import HashingUploadHandler

    chunks: list[int] = []
    original = HashingUploadHandler.receive_data_chunk

    def counting(self, raw, start):
        chunks.append(len(raw))
        return original(self, raw, start)

    def trap(self, raw, start):
        raise AssertionError(f"{type(self).__name__} read an upload past the cap")

    monkeypatch.setattr(HashingUploadHandler, "receive_data_chunk", counting)
    monkeypatch.setattr(uploadhandler.MemoryFileUploadHandler, "receive_data_chunk", trap)
    monkeypatch.setattr(uploadhandler.TemporaryFileUploadHandler, "receive_data_chunk", trap)
    return chunks


def _session_client(user):
    """A browser-like API client: a session, and CSRF enforced (Django's CSRF check reads the form body)."""
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    request = RequestFactory().get("/")
    token = get_token(request)
    client.cookies["csrftoken"] = request.META["CSRF_COOKIE"]
    client.credentials(HTTP_X_CSRFTOKEN=token)
    return client


@pytest.mark.parametrize("auth", ["token", "session"])
def test_upload_cap_holds_while_streaming(world, alice, settings, handler_chunks, auth):
    from apps.registry.uploads import MULTIPART_OVERHEAD

    settings.MC_UPLOAD_MAX_BYTES = 1000
    client = world["owner"] if auth == "token" else _session_client(alice)
    content = onnx_bytes(b"y" * (MULTIPART_OVERHEAD // 2))  # under the early Content-Length check
    body = problem(upload(client, content), 413)
    assert body["limit_bytes"] == 1000
    assert handler_chunks, "the capped handler never saw the bytes"
    assert not Artifact.objects.filter(path="model.onnx").exists()


@pytest.mark.parametrize("auth", ["token", "session"])
def test_upload_over_the_declared_length_is_refused_unread(world, alice, settings, handler_chunks, auth):
    settings.MC_UPLOAD_MAX_BYTES = 1000
    client = world["owner"] if auth == "token" else _session_client(alice)
    problem(upload(client, onnx_bytes(b"z" * 200_000)), 413)
    assert handler_chunks == []


def test_session_upload_within_the_cap_is_hashed_by_the_handler(world, alice, handler_chunks):
    content = onnx_bytes(b"w" * 5000)
    resp = upload(_session_client(alice), content)
    assert resp.status_code == 201, resp.content
    assert resp.json()["sha256"] == hashlib.sha256(content).hexdigest() and handler_chunks


# --- safe formats are what they say (finding 11) -------------------------------------------------------------


class Payload:
    def __reduce__(self):
        return (print, ("never unpickled",))


PICKLES = {
    "protocol-0": pickle.dumps({"weights": [1, 2, 3]}, protocol=0),
    "protocol-0-reduce": pickle.dumps(Payload(), protocol=0),
    "protocol-1": pickle.dumps({"weights": [1, 2, 3]}, protocol=1),
    "protocol-2": pickle.dumps({"weights": [1, 2, 3]}, protocol=2),
    "zip": b"PK\x03\x04" + b"\x00" * 100,
}


@pytest.mark.parametrize(
    "fmt,filename", [("onnx", "model.onnx"), ("safetensors", "model.safetensors"), ("gguf", "model.gguf")]
)
@pytest.mark.parametrize("kind", list(PICKLES))
def test_a_pickle_is_not_accepted_as_a_safe_format(world, fmt, filename, kind):
    body = problem(upload(world["owner"], PICKLES[kind], filename=filename), 400)
    assert "format" in body["errors"] and f"Declared {fmt}" in body["errors"]["format"][0]
    assert not Artifact.objects.filter(path=filename).exists()


@pytest.mark.parametrize(
    "content,reason",
    [
        (b"\x08\x07", "graph"),
        (b"\x08\x07\x3a\xff\xff\x03", "longer than the file"),
        (b"\x12\x03abc\x08\x07", "starts with its ir_version"),
        (b"\x08\x07\x0b", "wire type"),
        (b"\x08\x07\x3a\x02\x0a\x00\x38\x01", "wire type"),  # graph (7) as a varint
        (b"hello world, not protobuf", "ir_version"),
    ],
    ids=["no-graph", "length-past-end", "ir-version-not-first", "group-wire-type", "graph-as-varint", "text"],
)
def test_onnx_is_a_framed_model_proto(world, content, reason):
    body = problem(upload(world["owner"], content), 400)
    assert reason in body["errors"]["format"][0]


def test_onnx_fields_newer_than_this_check_are_allowed(world):
    resp = upload(world["owner"], onnx_bytes() + b"\x98\x02\x01")  # field 35, a varint
    assert resp.status_code == 201, resp.content


def test_valid_safe_formats_are_accepted(world):
    owner = world["owner"]
    for filename, content in [
        ("a.onnx", onnx_bytes()),
        ("b.safetensors", safetensors_bytes(b"\x00" * 16)),
        ("c.gguf", b"GGUF\x03\x00\x00\x00" + b"\x00" * 32),
    ]:
        resp = upload(owner, content, filename=filename)
        assert resp.status_code == 201, resp.content
        assert resp.json()["safe"] is True


@pytest.mark.parametrize(
    "content",
    [
        safetensors_bytes(b"\x00" * 16)[:-4],  # tensors end past the file
        safetensors_bytes(b"\x00" * 16) + b"extra",  # bytes after the last tensor
        (5).to_bytes(8, "little") + b"[1,2]",  # header not an object
        (10**12).to_bytes(8, "little") + b"{}",  # header length past the end
    ],
    ids=["truncated", "trailing-bytes", "header-not-object", "huge-header-length"],
)
def test_safetensors_header_must_describe_the_file(world, content):
    resp = upload(world["owner"], content, filename="m.safetensors")
    assert "format" in problem(resp, 400)["errors"]


def test_unsafe_formats_are_not_sniffed_and_listed_unsafe(world):
    resp = upload(world["owner"], PICKLES["protocol-0"], filename="pytorch_model.bin")
    assert resp.status_code == 201 and resp.json()["safe"] is False


def test_file_uri_records_are_checked_where_the_server_can_read_them(world, settings, tmp_path):
    settings.MC_ARTIFACT_ALLOW_FILE_URIS = True
    fake = tmp_path / "model.onnx"
    fake.write_bytes(PICKLES["protocol-0-reduce"])
    record = {"path": "model.onnx", "uri": f"file://{fake}", "sha256": "a" * 64, "size_bytes": fake.stat().st_size}
    body = problem(world["owner"].post(f"{D}/revisions/1/artifacts/", record, format="json"), 400)
    assert "pickle" in body["errors"]["format"][0]
    real = tmp_path / "real.onnx"
    real.write_bytes(onnx_bytes())
    record.update(path="real.onnx", uri=f"file://{real}")
    assert world["owner"].post(f"{D}/revisions/1/artifacts/", record, format="json").status_code == 201
    record.update(path="elsewhere.onnx", uri=f"file://{tmp_path}/missing.onnx")  # the worker's disk, maybe
    assert world["owner"].post(f"{D}/revisions/1/artifacts/", record, format="json").status_code == 201
