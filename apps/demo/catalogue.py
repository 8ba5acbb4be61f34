"""The registry part of the demo world: real open models as published originals in `commons`, and community
variants of them (a GGUF quantization, fine-tunes, a LoRA adapter, a three-way merge, a licence mistake).

Everything goes through the services, as it would through the API. Idempotent: a variant that exists is
left alone. The digits family (the runnable loop) is seeded by apps/demo/seed.py.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from django.conf import settings

from apps.accounts.models import User
from apps.registry.choices import RevisionStatus
from apps.registry.models import Revision, Variant
from apps.registry.services import (
    artifact_add,
    revision_submit,
    revision_transition,
    variant_create,
    variant_import_card,
    variant_update,
)

MODELS_DIR = Path(settings.FIXTURES_DIR) / "models"
BYTES_PER_PARAMETER = {"fp32": 4, "fp16": 2, "bf16": 2, "fp8": 1, "int8": 1, "int4": 0.5}


def _placeholder_sha256(uri: str) -> str:
    """Not the file's digest (the weights are never downloaded): a stable stand-in, derived from the uri."""
    return hashlib.sha256(f"model-commons demo placeholder: {uri}".encode()).hexdigest()


def _card(title: str, summary: str, sections: dict[str, str]) -> str:
    parts = [f"# {title}", summary]
    parts += [f"## {heading}\n{text}" for heading, text in sections.items()]
    return "\n\n".join(parts) + "\n"


def _original_card(model: dict[str, Any]) -> str:
    hub = f"https://huggingface.co/{model['hub_id']}"
    return _card(
        model["name"],
        model["summary"],
        {
            "Intended use": f"A base for fine-tunes, adapters, quantizations and merges on Model Commons. The "
            f"upstream card at {hub} is the authority on use and licence terms.",
            "Limitations": "Registered from public metadata; the weights stay on the Hugging Face Hub and are not "
            "benchmarked here unless a runnable artifact is added.",
            "Training data": model["training_data"],
            "Evaluation": "See the upstream card; Model Commons results appear once verified.",
        },
    )


def advance_revision(revision: Revision, *, owner: User, maintainer: User, state: str) -> None:
    """Take a fresh draft to `state` the way the workflow would: the owner submits, a maintainer publishes."""
    if state == RevisionStatus.DRAFT:
        return
    revision = revision_submit(revision=revision, actor=owner)
    if state == RevisionStatus.SUBMITTED:
        return
    for target in (RevisionStatus.APPROVED, RevisionStatus.PUBLISHED):
        revision = revision_transition(revision=revision, target=target, actor=maintainer, reason="demo seed")


def _exists(owner: User, name: str) -> bool:
    return Variant.objects.filter(owner=owner, name__iexact=name).exists()


def _seed_originals(users: dict[str, User]) -> None:
    commons, maintainer = users["commons"], users["maintainer"]
    for model in json.loads((MODELS_DIR / "originals.json").read_text())["models"]:
        if _exists(commons, model["name"]):
            continue
        variant = variant_create(
            owner=commons,
            actor=maintainer,
            name=model["name"],
            relation="original",
            license=model["license"],
            parameters=model["parameters"],
            precision=model["precision"],
            architecture=model["architecture"],
            task=model["task"],
            tags=model["tags"],
            summary=model["summary"],
            hub_id=model["hub_id"],
            card=_original_card(model),
            card_data={"language": model["language"]},
        )
        uri = f"hf://{model['hub_id']}@main"
        revision = variant.current_revision
        assert revision is not None
        artifact_add(
            revision=revision,
            actor=maintainer,
            path="model.safetensors",
            uri=uri,
            sha256=_placeholder_sha256(uri),
            size_bytes=int(model["parameters"] * BYTES_PER_PARAMETER[model["precision"]]),
        )
        advance_revision(revision, owner=maintainer, maintainer=maintainer, state=RevisionStatus.PUBLISHED)


def _seed_community(users: dict[str, User]) -> None:
    maintainer = users["maintainer"]
    for spec in json.loads((MODELS_DIR / "community.json").read_text())["variants"]:
        owner = users[spec["owner"]]
        if _exists(owner, spec["name"]):
            continue
        if "card_file" in spec:
            text = (MODELS_DIR / spec["card_file"]).read_text()
            variant, _ = variant_import_card(owner=owner, actor=owner, text=text, name=spec["name"])
            variant = variant_update(variant=variant, actor=owner, **spec["fields"])
        else:
            fields = dict(spec["fields"])
            card = _card(spec["name"], fields["summary"], spec["card_sections"])
            variant = variant_create(
                owner=owner,
                actor=owner,
                name=spec["name"],
                relation=spec["relation"],
                parents=spec["parents"],
                card=card,
                **fields,
            )
        revision = Variant.objects.get(pk=variant.pk).current_revision
        assert revision is not None
        for artifact in spec["artifacts"]:
            uri = f"hf://{owner.username}/{spec['name']}@main/{artifact['path']}"
            artifact_add(
                revision=revision,
                actor=owner,
                path=artifact["path"],
                uri=uri,
                sha256=_placeholder_sha256(uri),
                size_bytes=artifact["size_bytes"],
            )
        advance_revision(revision, owner=owner, maintainer=maintainer, state=spec["state"])


def seed_registry_demo(users: dict[str, User]) -> None:
    """Seed the registry demo (idempotent). `users` holds at least maintainer, commons, alice and bob."""
    _seed_originals(users)
    _seed_community(users)
