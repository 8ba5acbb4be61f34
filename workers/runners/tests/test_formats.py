"""The one copy of the format rules: what every layer (runner, registry, checklists, benchmarks) asks."""

import pytest

from workers.runners import base
from workers.runners.formats import (
    EXTENSION_FORMATS,
    SAFE_FORMATS,
    UNSAFE_FORMATS,
    format_from_extension,
    is_safe,
    is_unsafe,
)


@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        ("pytorch_model.bin", "bin"),
        ("model.PT", ""),
        ("weights.pickle", None),
        # A pickle renamed by its declared format is still a pickle by its name, and the other way round.
        ("model.ckpt", "safetensors"),
        ("model.safetensors", "pkl"),
    ],
)
def test_pickle_family_is_unsafe_by_name_or_declared_format(path, fmt):
    assert is_unsafe(path, fmt)
    assert not is_safe(path, fmt)


@pytest.mark.parametrize(
    ("path", "fmt"), [("model.safetensors", "safetensors"), ("m.onnx", "ONNX "), ("q.gguf", "gguf")]
)
def test_pure_data_formats_are_safe(path, fmt):
    assert is_safe(path, fmt)
    assert not is_unsafe(path, fmt)


def test_a_json_file_is_neither_safe_weights_nor_a_pickle():
    assert not is_safe("config.json", "json")
    assert not is_unsafe("config.json", "json")


def test_extensions_map_to_known_formats_and_never_cross_the_safety_line():
    assert format_from_extension("a/b/MODEL.SAFETENSORS") == "safetensors"
    assert format_from_extension("README.md") == "txt"
    assert format_from_extension("tokenizer.model") is None
    for ext, fmt in EXTENSION_FORMATS.items():
        assert is_unsafe(f"x{ext}", None) == (fmt in UNSAFE_FORMATS)
    assert not SAFE_FORMATS & UNSAFE_FORMATS


def test_the_runner_interface_re_exports_the_same_objects():
    assert base.SAFE_FORMATS is SAFE_FORMATS
    assert base.UNSAFE_FORMATS is UNSAFE_FORMATS
    assert base.is_unsafe is is_unsafe
