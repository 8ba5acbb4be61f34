"""Hub model cards: import, export with verified results, and import -> export -> import on realistic cards."""

from pathlib import Path

import pytest
import yaml
from django.conf import settings

from apps.registry.cards import card_split
from apps.registry.choices import HUB_RELATIONS
from apps.registry.licenses import license_lookup
from apps.registry.models import Variant
from apps.registry.tests.factories import make_original, make_variant, publish_current, record

pytestmark = pytest.mark.django_db

CARDS = Path(settings.FIXTURES_DIR) / "models" / "cards"


@pytest.fixture
def lineage(alice, bob, maintainer):
    """The parents the realistic cards name, by Hub id or by full name."""
    llama = make_original(maintainer, "Llama-3.1-8B", license="llama3.1", hub_id="meta-llama/Llama-3.1-8B")
    mistral = make_original(maintainer, "Mistral-7B-v0.3", hub_id="mistralai/Mistral-7B-v0.3")
    dolly = make_variant(bob, "Mistral-7B-v0.3-dolly-sft", [mistral])
    publish_current(dolly, bob)
    code = make_variant(alice, "Mistral-7B-v0.3-code-sft", [mistral])
    return {"llama": llama, "mistral": mistral, "dolly": dolly, "code": code}


def snapshot(variant: Variant) -> dict:
    variant = Variant.objects.get(pk=variant.pk)
    return {
        "relation": variant.relation,
        "parents": [link.parent.full_name for link in variant.parent_links.all()],
        **{
            k: getattr(variant, k)
            for k in (
                "license",
                "task",
                "tags",
                "parameters",
                "precision",
                "architecture",
                "summary",
                "hub_id",
                "card",
                "card_data",
            )
        },
    }


def import_card(client, text, name=None, as_markdown=True):
    if as_markdown:
        url = "/api/v1/variants/import-card/" + (f"?name={name}" if name else "")
        return client.post(url, text.encode(), content_type="text/markdown; charset=utf-8")
    return client.post("/api/v1/variants/import-card/", {"name": name, "card": text}, format="json")


def hub_parse(text: str):
    """What the Hub's own client makes of a card (skipped where huggingface_hub is not installed)."""
    hub = pytest.importorskip("huggingface_hub")
    return hub.ModelCard(text)


@pytest.mark.parametrize(
    "filename,relation,parents",
    [
        ("Llama-3.1-8B-Q4_K_M-GGUF.md", "quantized", ["commons/Llama-3.1-8B"]),
        ("Mistral-7B-v0.3-dolly-lora.md", "adapter", ["commons/Mistral-7B-v0.3"]),
        (
            "Mistral-7B-v0.3-ties-merge.md",
            "merge",
            ["commons/Mistral-7B-v0.3", "bob/Mistral-7B-v0.3-dolly-sft", "alice/Mistral-7B-v0.3-code-sft"],
        ),
    ],
)
@pytest.mark.parametrize("as_markdown", [True, False], ids=["text/markdown", "json"])
def test_import_export_import_gives_the_same_data(lineage, alice, client_for, filename, relation, parents, as_markdown):
    client = client_for(alice)
    text = (CARDS / filename).read_text()
    name = filename.removesuffix(".md")
    first = import_card(client, text, name, as_markdown)
    assert first.status_code == 201, first.json()
    body = first.json()
    assert body["relation"] == relation and body["parents"] == parents
    original = Variant.objects.get(owner=alice, name=name)

    exported = client.get(f"/api/v1/variants/alice/{name}/card.md")
    assert exported.status_code == 200 and exported["Content-Type"].startswith("text/markdown")
    card_text = exported.content.decode()
    second = import_card(client, card_text, f"{name}-again", as_markdown)
    assert second.status_code == 201, second.json()
    again = Variant.objects.get(owner=alice, name=f"{name}-again")
    assert snapshot(again) == snapshot(original)
    # and the export of the copy is the same README
    assert client.get(f"/api/v1/variants/alice/{name}-again/card.md").content.decode() == card_text


def test_imported_fields_come_from_the_front_matter(lineage, alice, client_for):
    client = client_for(alice)
    resp = import_card(client, (CARDS / "Llama-3.1-8B-Q4_K_M-GGUF.md").read_text(), "Llama-3.1-8B-Q4_K_M-GGUF")
    body = resp.json()
    assert body["license"] == "llama3.1" and body["task"] == "text-generation"
    assert body["tags"] == ["llama", "llama-3", "gguf", "q4_k_m"]
    assert body["summary"].startswith("Built with Llama. A 4-bit")
    assert body["card"].startswith("# Llama-3.1-8B Q4_K_M GGUF")
    assert body["card_data"]["language"][:2] == ["en", "de"] and body["card_data"]["library_name"] == "gguf"
    assert body["card_data"]["base_model"] == "meta-llama/Llama-3.1-8B"
    assert body["license_compat"]["status"] == "compatible"  # the name starts with "Llama"


def test_exported_cards_are_what_the_hub_accepts(lineage, alice, client_for):
    client = client_for(alice)
    for path in sorted(CARDS.glob("*.md")):
        import_card(client, path.read_text(), path.stem)
        text = client.get(f"/api/v1/variants/alice/{path.stem}/card.md").content.decode()
        front, body = card_split(text)
        assert license_lookup(front["license"]).source == "hub"
        assert front.get("base_model_relation", "finetune") in HUB_RELATIONS
        card = hub_parse(text)
        assert card.data.license == front["license"] and card.data.base_model == front["base_model"]
        assert body.startswith("# ")


def _verified_result(variant, revision, actor, metrics, verified=True, status="succeeded"):
    from apps.benchmarks.models import Benchmark, BenchmarkJob, JobResult

    bench, _ = Benchmark.objects.get_or_create(
        slug="arc-mini",
        defaults={
            "name": "ARC mini",
            "runner": "lm-eval",
            "task": "text-generation",
            "metrics": [{"name": "acc_norm", "higher_is_better": True, "primary": True}],
        },
    )
    job = BenchmarkJob.objects.create(
        revision=revision,
        benchmark=bench,
        benchmark_version="1",
        config_hash=f"h{BenchmarkJob.objects.count()}",
        submitted_by=actor,
        status=status,
    )
    JobResult.objects.create(
        job=job, attempt=1, metrics=metrics, runner="lm-eval", runner_version="0.4", verified=verified
    )
    return job


def test_model_index_holds_verified_results_and_round_trips(lineage, alice, client_for):
    client = client_for(alice)
    text = (CARDS / "Mistral-7B-v0.3-ties-merge.md").read_text()
    import_card(client, text, "merge")
    variant = Variant.objects.get(owner=alice, name="merge")
    record(variant, alice)
    revision = variant.current_revision
    job = _verified_result(variant, revision, alice, {"acc_norm": 0.6123, "note": "text is skipped"})
    _verified_result(variant, revision, alice, {"acc_norm": 0.99}, verified=False)  # not verified: left out
    _verified_result(variant, revision, alice, {"acc_norm": 0.11}, status="failed")  # not succeeded: left out

    exported = client.get("/api/v1/variants/alice/merge/card.md").content.decode()
    front, _ = card_split(exported)
    results = front["model-index"][0]["results"]
    assert [r["source"]["name"] for r in results] == ["Self-reported (illustrative)", "Model Commons"]
    ours = results[1]
    assert ours["metrics"] == [{"type": "acc_norm", "value": 0.6123, "name": "acc_norm"}]
    assert ours["dataset"] == {"name": "ARC mini", "type": "arc-mini", "revision": "1"}
    assert ours["source"]["url"].endswith(f"/api/v1/jobs/{job.pk}/")
    evals = hub_parse(exported).data.eval_results
    assert [(e.metric_type, e.metric_value) for e in evals] == [("acc_norm", 60.1), ("acc_norm", 0.6123)]

    # Our results are regenerated on export, so importing the export keeps only the self-reported claim.
    import_card(client, exported, "merge-copy")
    copy = Variant.objects.get(owner=alice, name="merge-copy")
    assert copy.card_data["model-index"] == variant.card_data["model-index"]
    assert len(copy.card_data["model-index"][0]["results"]) == 1


def test_without_verified_results_the_model_index_is_the_cards_own(lineage, alice, client_for):
    client = client_for(alice)
    import_card(client, (CARDS / "Llama-3.1-8B-Q4_K_M-GGUF.md").read_text(), "q4")
    front, _ = card_split(client.get("/api/v1/variants/alice/q4/card.md").content.decode())
    assert "model-index" not in front


def test_spdx_only_licences_travel_as_other_with_a_name(lineage, alice, client_for):
    client = client_for(alice)
    make_variant(alice, "gpl-tune", [lineage["mistral"]], license="GPL-3.0-or-later")
    text = client.get("/api/v1/variants/alice/gpl-tune/card.md").content.decode()
    front, _ = card_split(text)
    assert front["license"] == "other" and front["license_name"] == "GPL-3.0-or-later"
    import_card(client, text, "gpl-tune-copy")
    assert Variant.objects.get(owner=alice, name="gpl-tune-copy").license == "GPL-3.0-or-later"


@pytest.mark.parametrize(
    "text,field",
    [
        ("# Just markdown\n\nNo metadata.", "card"),
        ("---\nlicense: [unclosed\n---\nbody", "card"),
        ("---\n- a list\n---\nbody", "card"),
        ("---\nbase: &a [1, 2]\nmore: *a\n---\nbody", "card"),
        ("---\nlicense: mit\nbase_model: nobody/nothing\n---\nbody", "parents"),
        ("---\nlicense: apache2\nbase_model: commons/Mistral-7B-v0.3\n---\nbody", "license"),
        (
            "---\nlicense: mit\nbase_model: commons/Mistral-7B-v0.3\nbase_model_relation: pruned-ish\n---\nb",
            "card_data.base_model_relation",
        ),
        ("---\nlicense: mit\nvalue: .nan\nbase_model: commons/Mistral-7B-v0.3\n---\nbody", "card"),
    ],
)
def test_bad_cards_are_clear_problems(lineage, alice, client_for, text, field):
    resp = import_card(client_for(alice), text, "bad")
    assert resp.status_code == 400, resp.json()
    assert resp["Content-Type"].startswith("application/problem+json")
    assert field in resp.json()["errors"], resp.json()


def test_import_transport_errors(lineage, alice, client_for, api):
    client = client_for(alice)
    assert (
        client.post("/api/v1/variants/import-card/?name=x", b"\xff\xfe---", content_type="text/markdown").status_code
        == 400
    )
    assert (
        client.post("/api/v1/variants/import-card/?name=x", b"---\n---\n", content_type="text/plain").status_code == 415
    )
    no_name = import_card(client, "---\nlicense: mit\nbase_model: commons/Mistral-7B-v0.3\n---\nbody")
    assert no_name.status_code == 400 and "name" in no_name.json()["errors"]
    named = import_card(
        client,
        "---\nlicense: mit\nbase_model: commons/Mistral-7B-v0.3\nmodel-index:\n"
        "- name: org/from-index\n  results: []\n---\nbody",
    )
    assert named.status_code == 201 and named.json()["full_name"] == "alice/from-index"
    assert (
        api.post("/api/v1/variants/import-card/", {"name": "x", "card": "---\n---\n"}, format="json").status_code == 401
    )


def test_originals_are_imported_by_maintainers_only(lineage, alice, maintainer, client_for):
    card = "---\nlicense: mit\npipeline_tag: text-generation\n---\n# An original\n\nWeights from scratch.\n"
    assert import_card(client_for(alice), card, "scratch").status_code == 403
    resp = client_for(maintainer).post(
        "/api/v1/variants/import-card/?name=scratch&owner=commons", card.encode(), content_type="text/markdown"
    )
    assert resp.status_code == 201 and resp.json()["relation"] == "original"


def test_importing_an_existing_name_updates_the_draft(lineage, alice, client_for):
    client = client_for(alice)
    text = (CARDS / "Mistral-7B-v0.3-dolly-lora.md").read_text()
    assert import_card(client, text, "lora").status_code == 201
    updated = import_card(client, text.replace("license: apache-2.0", "license: mit"), "LORA")
    assert updated.status_code == 200 and updated.json()["license"] == "mit"
    variant = Variant.objects.get(owner=alice, name="lora")
    record(variant, alice)
    assert client.post("/api/v1/variants/alice/lora/revisions/1/submit/").status_code == 200
    assert import_card(client, text, "lora").status_code == 409


def test_dates_stay_strings_and_unknown_keys_survive(lineage, alice, client_for):
    client = client_for(alice)
    text = (
        "---\nlicense: mit\nbase_model: commons/Mistral-7B-v0.3\nrelease_date: 2024-07-23\n"
        "widget:\n- text: Hello\n---\n# Body\n"
    )
    assert import_card(client, text, "dated").status_code == 201
    variant = Variant.objects.get(owner=alice, name="dated")
    assert variant.card_data == {"release_date": "2024-07-23", "widget": [{"text": "Hello"}]}
    front = yaml.safe_load(client.get("/api/v1/variants/alice/dated/card.md").content.decode().split("---")[1])
    assert str(front["release_date"]) == "2024-07-23" and front["widget"] == [{"text": "Hello"}]
