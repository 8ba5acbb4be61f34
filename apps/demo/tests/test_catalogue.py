"""The seeded registry: real originals with real metadata, community variants through the services."""

import pytest

from apps.registry.models import Variant

pytestmark = pytest.mark.django_db

REAL = {  # full name: (licence, parameters, architecture)
    "commons/Llama-3.1-8B": ("llama3.1", 8_030_261_248, "LlamaForCausalLM"),
    "commons/Mistral-7B-v0.3": ("apache-2.0", 7_248_023_552, "MistralForCausalLM"),
    "commons/Qwen2.5-7B": ("apache-2.0", 7_615_616_512, "Qwen2ForCausalLM"),
    "commons/gemma-2-9b": ("gemma", 9_241_705_984, "Gemma2ForCausalLM"),
    "commons/Phi-3-mini-4k-instruct": ("mit", 3_821_079_552, "Phi3ForCausalLM"),
    "commons/OLMo-2-1124-7B": ("apache-2.0", 7_298_617_344, "Olmo2ForCausalLM"),
    "commons/all-MiniLM-L6-v2": ("apache-2.0", 22_713_216, "BertModel"),
    "commons/bloom-560m": ("bigscience-bloom-rail-1.0", 559_214_592, "BloomForCausalLM"),
}


def test_seed_registers_real_originals_and_community_variants(digits_world):
    originals = Variant.objects.filter(owner__username="commons", relation="original", is_public=True)
    assert originals.count() >= 11  # 13 real models + digits-mlp
    for full_name, (license_id, parameters, architecture) in REAL.items():
        v = Variant.objects.by_full_name(full_name).get()
        assert (v.license, v.parameters, v.architecture, v.status) == (
            license_id,
            parameters,
            architecture,
            "published",
        ), full_name
        assert v.hub_id and v.current_revision.artifacts.count() == 1
    gguf = Variant.objects.by_full_name("alice/Llama-3.1-8B-Q4_K_M-GGUF").get()
    assert gguf.relation == "quantized" and gguf.status == "published" and gguf.precision == "int4"
    lora = Variant.objects.by_full_name("bob/Mistral-7B-v0.3-dolly-lora").get()
    assert lora.relation == "adapter" and lora.status == "submitted"
    merge = Variant.objects.by_full_name("alice/Mistral-7B-v0.3-ties-merge").get()
    assert merge.relation == "merge" and [p.parent.full_name for p in merge.parent_links.all()] == [
        "commons/Mistral-7B-v0.3",
        "bob/Mistral-7B-v0.3-dolly-sft",
        "alice/Mistral-7B-v0.3-code-sft",
    ]
    assert Variant.objects.by_full_name("bob/gemma-2-9b-sql-sft").get().license_compat["status"] == "incompatible"
    assert digits_world["int8"].relation == "quantized" and digits_world["pruned"].relation == "pruned"


def test_seeding_twice_changes_nothing(digits_world):
    from apps.demo.seed import seed_demo

    before = sorted(Variant.objects.values_list("pk", "updated_at"))
    seed_demo("commons-demo")
    assert sorted(Variant.objects.values_list("pk", "updated_at")) == before
