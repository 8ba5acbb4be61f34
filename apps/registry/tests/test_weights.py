"""Weights headers (safetensors, GGUF): tensor and parameter counts, dtypes and precision, read without the
tensors; stored on the artifact when its file is uploaded."""

from __future__ import annotations

import io
import json
import struct

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.registry.services import artifact_add, revision_create
from apps.registry.tests.factories import make_original, make_variant, publish_current
from apps.registry.weights import combine, weights_header


def safetensors(tensors: dict[str, tuple[str, list[int]]], metadata: dict[str, str] | None = None) -> bytes:
    sizes = {"F32": 4, "F16": 2, "BF16": 2, "I8": 1, "U8": 1, "F8_E4M3": 1, "I64": 8}
    header: dict[str, object] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        n = sizes[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + b"\0" * offset


def _gguf_string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def gguf(tensors: list[tuple[str, list[int], int]], version: int = 3) -> bytes:
    """A GGUF file: two metadata pairs (a string and an array of strings), then the tensor infos."""
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), 3)
    out += _gguf_string("general.architecture") + struct.pack("<I", 8) + _gguf_string("llama")
    out += _gguf_string("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 3)
    out += b"".join(_gguf_string(t) for t in ("<s>", "a", "b"))
    out += _gguf_string("llama.context_length") + struct.pack("<II", 4, 4096)
    for name, dims, kind in tensors:
        out += _gguf_string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", kind, 0)
    return out + b"\0" * 64


def _read(fmt: str, data: bytes):  # type: ignore[no-untyped-def]
    return weights_header(fmt, io.BytesIO(data), len(data))


def test_safetensors_counts_and_precision():
    data = safetensors({"w": ("F16", [10, 20]), "b": ("F16", [5])}, metadata={"format": "pt"})
    assert _read("safetensors", data) == {"tensors": 2, "parameters": 205, "dtypes": {"F16": 205}, "precision": "fp16"}
    mixed = safetensors({"a": ("F32", [100]), "b": ("BF16", [100])})
    assert _read("safetensors", mixed)["precision"] == "mixed"
    mostly = safetensors({"a": ("BF16", [900]), "norm": ("F32", [100])})
    assert _read("safetensors", mostly)["precision"] == "bf16"
    quantized = safetensors({"q": ("I8", [1000]), "s": ("F16", [10])})
    assert _read("safetensors", quantized)["precision"] == "int8"


def test_gguf_counts_and_precision():
    data = gguf([("tok", [4, 8], 12), ("norm", [8], 0)])  # Q4_K and F32
    assert _read("gguf", data) == {
        "tensors": 2,
        "parameters": 40,
        "dtypes": {"F32": 8, "Q4_K": 32},
        "precision": "int4",
    }
    assert _read("gguf", gguf([("w", [16], 1)], version=2))["precision"] == "fp16"
    assert _read("gguf", gguf([("w", [16], 14), ("v", [16], 12)]))["precision"] == "mixed"  # Q6_K + Q4_K


@pytest.mark.parametrize(
    ("fmt", "data"),
    [
        ("safetensors", b""),
        ("safetensors", struct.pack("<Q", 10**12) + b"{}"),
        ("safetensors", b"\x05\0\0\0\0\0\0\0[1,2]"),
        ("safetensors", safetensors({"w": ("F16", [2])})[:12]),
        ("gguf", b"GGUF" + struct.pack("<IQQ", 1, 1, 0)),  # version 1 is not read
        ("gguf", b"GGUF" + struct.pack("<IQQ", 3, 10**12, 0)),
        ("gguf", gguf([("w", [4, 4], 0)])[:60]),
        ("gguf", b"NOPE" + b"\0" * 40),
        ("onnx", b"\x08\x07"),
    ],
)
def test_headers_that_do_not_parse_give_nothing(fmt, data):
    assert _read(fmt, data) is None


def test_reading_leaves_the_file_at_its_start():
    fh = io.BytesIO(safetensors({"w": ("F16", [2])}))
    weights_header("safetensors", fh, len(fh.getvalue()))
    assert fh.tell() == 0


def test_combine_sums_shards():
    a = _read("safetensors", safetensors({"w1": ("BF16", [1000])}))
    b = _read("safetensors", safetensors({"w2": ("BF16", [500]), "n": ("F32", [10])}))
    assert combine([a, b, {}]) == {
        "tensors": 3,
        "parameters": 1510,
        "dtypes": {"BF16": 1500, "F32": 10},
        "precision": "bf16",
        "files": 2,
    }
    assert combine([{}]) is None


@pytest.mark.django_db
def test_an_uploaded_weights_file_carries_its_header_and_copies_keep_it(alice, maintainer):
    base = make_original(maintainer)
    variant = make_variant(alice, "with-weights", [base])
    data = safetensors({"w": ("BF16", [64, 64]), "b": ("BF16", [64])})
    artifact = artifact_add(
        revision=variant.current_revision,
        actor=alice,
        path="model.safetensors",
        upload=SimpleUploadedFile("model.safetensors", data),
    )
    assert artifact.header == {"tensors": 2, "parameters": 4160, "dtypes": {"BF16": 4160}, "precision": "bf16"}
    config = artifact_add(
        revision=variant.current_revision,
        actor=alice,
        path="config.json",
        upload=SimpleUploadedFile("config.json", b"{}"),
    )
    assert config.header == {}
    publish_current(variant, maintainer)
    newer = revision_create(variant=variant, actor=alice)
    assert newer.artifacts.get(path="model.safetensors").header["parameters"] == 4160


@pytest.mark.django_db
def test_a_local_gguf_file_carries_its_header(tmp_path, maintainer):
    from apps.registry.services import artifact_add_local_file

    base = make_original(maintainer, publish=False)
    source = tmp_path / "model.gguf"
    source.write_bytes(gguf([("tok", [4, 8], 8)]))
    artifact = artifact_add_local_file(
        revision=base.current_revision, source=source, path="model.gguf", fmt="gguf", actor=maintainer
    )
    assert artifact.header["precision"] == "int8" and artifact.header["parameters"] == 32


@pytest.mark.django_db
def test_the_revision_representation_sums_its_weights(alice, maintainer, client_for):
    base = make_original(maintainer)
    variant = make_variant(alice, "sharded", [base])
    for i, shape in enumerate(([64, 64], [64, 32])):
        data = safetensors({f"w{i}": ("F16", shape)})
        artifact_add(
            revision=variant.current_revision,
            actor=alice,
            path=f"model-0000{i + 1}.safetensors",
            upload=SimpleUploadedFile("m.safetensors", data),
        )
    body = client_for(alice).get("/api/v1/variants/alice/sharded/revisions/1/").json()
    assert body["weights"] == {
        "tensors": 2,
        "parameters": 6144,
        "dtypes": {"F16": 6144},
        "precision": "fp16",
        "files": 2,
    }
    assert body["artifacts"][0]["header"]["parameters"] == 4096
    empty = client_for(maintainer).get("/api/v1/variants/commons/base-model/revisions/1/").json()
    assert empty["weights"] is None
