"""The platform's one copy of the artifact format rules: which serializations are safe, which can run code.

Django-free (the bottom layer): the runners, the worker, the registry's validation, the benchmarks' submission
checks and the checklists all import these names, so a format cannot be safe in one place and refused in another.
"""

from __future__ import annotations

from pathlib import PurePath

#: Serializations that can execute code when loaded (pickle and its containers). Never opened by a runner.
UNSAFE_FORMATS: frozenset[str] = frozenset({"pickle", "bin", "pt", "pth", "pkl", "ckpt"})
#: Serializations that are pure data.
SAFE_FORMATS: frozenset[str] = frozenset({"safetensors", "onnx", "gguf"})

#: File extensions whose format is certain. A pickle-family extension can never be declared as a safe format.
EXTENSION_FORMATS: dict[str, str] = {
    ".safetensors": "safetensors",
    ".onnx": "onnx",
    ".gguf": "gguf",
    ".bin": "bin",
    ".pt": "pt",
    ".pth": "pth",
    ".pkl": "pkl",
    ".pickle": "pickle",
    ".ckpt": "ckpt",
    ".json": "json",
    ".txt": "txt",
    ".md": "txt",
}


def format_from_extension(path: str | PurePath) -> str | None:
    """The format a file name implies, or None when its extension says nothing certain."""
    return EXTENSION_FORMATS.get(PurePath(path).suffix.lower())


def is_unsafe(path: str | PurePath, fmt: str | None) -> bool:
    """True when the declared format or the file suffix names a code-executing serialization."""
    suffix = PurePath(path).suffix.lstrip(".").lower()
    return (fmt or "").strip().lower() in UNSAFE_FORMATS or suffix in UNSAFE_FORMATS


def is_safe(path: str | PurePath, fmt: str | None) -> bool:
    """True when the declared format is a pure-data serialization and the file name does not say pickle."""
    return (fmt or "").strip().lower() in SAFE_FORMATS and not is_unsafe(path, fmt)


__all__ = [
    "EXTENSION_FORMATS",
    "SAFE_FORMATS",
    "UNSAFE_FORMATS",
    "format_from_extension",
    "is_safe",
    "is_unsafe",
]
