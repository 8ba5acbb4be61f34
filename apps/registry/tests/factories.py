"""Registry test helpers: variants built through the services, as the API would build them."""

from __future__ import annotations

import hashlib
from typing import Any

from apps.accounts.models import User
from apps.registry.models import Variant
from apps.registry.services import artifact_add, revision_transition, variant_create

CARD = (
    "# A test model\n\nA small model used by the registry tests. It exists only so that reviewers have a card "
    "long enough to read.\n\n## Intended use\nTests.\n\n## Limitations\nNone worth knowing.\n\n"
    "## Training data\nNone.\n\n## Evaluation\nNone.\n"
)


def commons_user() -> User:
    """The commons organization's namespace account (the organization is created if a flush removed it)."""
    from apps.orgs.services import commons_ensure, org_account

    return org_account(commons_ensure())


def make_original(
    maintainer: User, name: str = "base-model", license: str = "apache-2.0", publish: bool = True, **fields: Any
) -> Variant:
    """An original in the commons namespace, published (as originals are) unless told otherwise."""
    variant = variant_create(
        owner=commons_user(),
        actor=maintainer,
        name=name,
        relation="original",
        license=license,
        card=CARD,
        parameters=fields.pop("parameters", 1000),
        **fields,
    )
    if publish:
        publish_current(variant, maintainer)
        variant.refresh_from_db()
    return variant


def publish_current(variant: Variant, actor: User) -> None:
    revision = variant.current_revision
    for target in ("submitted", "approved", "published"):
        revision_transition(revision=revision, target=target, actor=actor)


def make_variant(
    owner: User,
    name: str,
    parents: list[Variant],
    relation: str = "finetune",
    license: str = "apache-2.0",
    **fields: Any,
) -> Variant:
    fields.setdefault("card", CARD)
    return variant_create(owner=owner, name=name, relation=relation, parents=parents, license=license, **fields)


def record(variant: Variant, actor: User, path: str = "model.safetensors", **kw: Any):  # type: ignore[no-untyped-def]
    revision = variant.current_revision
    return artifact_add(
        revision=revision,
        actor=actor,
        path=path,
        uri=kw.pop("uri", f"hf://org/x@main/{path}"),
        sha256=kw.pop("sha256", hashlib.sha256(path.encode()).hexdigest()),
        size_bytes=kw.pop("size_bytes", 1234),
        fmt=kw.pop("fmt", None),
    )


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def onnx_bytes(graph: bytes = b"\x0a\x00", *, ir_version: int = 8, producer: bytes = b"tests") -> bytes:
    """The framing of an ONNX ModelProto (ir_version, producer_name, graph), enough for the format check."""
    return (
        b"\x08"
        + _varint(ir_version)
        + b"\x12"
        + _varint(len(producer))
        + producer
        + b"\x3a"
        + _varint(len(graph))
        + graph
    )


def safetensors_bytes(data: bytes = b"\x00" * 8, dtype: str = "F32") -> bytes:
    """A safetensors file with one 1-D tensor over `data`."""
    import json

    width = {"F32": 4, "F16": 2, "I8": 1, "U8": 1}[dtype]
    header = json.dumps({"w": {"dtype": dtype, "shape": [len(data) // width], "data_offsets": [0, len(data)]}})
    raw = header.encode()
    return len(raw).to_bytes(8, "little") + raw + data
