"""What a weights file's header says: tensor count, parameter count and dtypes, read from the header alone.

- safetensors: an 8-byte little-endian length N, then N bytes of JSON `{name: {dtype, shape, data_offsets}}`;
- GGUF (versions 2 and 3): the magic `GGUF`, a version, the tensor and metadata counts, the metadata key-value
  pairs (skipped), then one info record per tensor (name, dimensions, ggml type, offset).

Never the tensors themselves: a 70B checkpoint's header is read in a few milliseconds. Every count and length
read from the file is bounded before it is used, and a file that does not parse gives None (its format check
is `formats.format_mismatch`'s business). Django-free: works on any seekable binary file object.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from typing import Any

from .formats import ByteReader

SAFETENSORS_MAX_HEADER = 100_000_000
GGUF_MAX_TENSORS = 1_000_000
GGUF_MAX_KV = 1_000_000
GGUF_MAX_STRING = 16 * 1024 * 1024
GGUF_MAX_DIMS = 8
GGUF_MAX_ARRAY = 50_000_000

# safetensors dtypes -> the registry's precision vocabulary (None: no single class, e.g. bool or int64)
SAFETENSORS_PRECISION = {
    "F64": "fp32",
    "F32": "fp32",
    "F16": "fp16",
    "BF16": "bf16",
    "F8_E4M3": "fp8",
    "F8_E5M2": "fp8",
    "F8_E8M0": "fp8",
    "I8": "int8",
    "U8": "int8",
    "F4": "int4",
    "I4": "int4",
    "U4": "int4",
}

# ggml tensor types (ggml.h `enum ggml_type`) -> (name, precision class or None)
GGML_TYPES: dict[int, tuple[str, str | None]] = {
    0: ("F32", "fp32"),
    1: ("F16", "fp16"),
    2: ("Q4_0", "int4"),
    3: ("Q4_1", "int4"),
    6: ("Q5_0", None),
    7: ("Q5_1", None),
    8: ("Q8_0", "int8"),
    9: ("Q8_1", "int8"),
    10: ("Q2_K", None),
    11: ("Q3_K", None),
    12: ("Q4_K", "int4"),
    13: ("Q5_K", None),
    14: ("Q6_K", None),
    15: ("Q8_K", "int8"),
    16: ("IQ2_XXS", None),
    17: ("IQ2_XS", None),
    18: ("IQ3_XXS", None),
    19: ("IQ1_S", None),
    20: ("IQ4_NL", "int4"),
    21: ("IQ3_S", None),
    22: ("IQ2_S", None),
    23: ("IQ4_XS", "int4"),
    24: ("I8", "int8"),
    25: ("I16", None),
    26: ("I32", None),
    27: ("I64", None),
    28: ("F64", "fp32"),
    29: ("IQ1_M", None),
    30: ("BF16", "bf16"),
    34: ("TQ1_0", None),
    35: ("TQ2_0", None),
    39: ("MXFP4", "int4"),
}

# GGUF metadata value types: fixed sizes; 8 is a string, 9 an array.
_GGUF_FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_GGUF_STRING, _GGUF_ARRAY = 8, 9
# A precision holds the weights when at least this share of the parameters is in it; otherwise "mixed".
DOMINANT_SHARE = 0.8


class _Bad(Exception):
    """The header does not parse."""


def precision_of(by_class: Mapping[str | None, int]) -> str | None:
    """The precision class holding most parameters (DOMINANT_SHARE of them), "mixed" when none does, None when
    there are no parameters."""
    total = sum(by_class.values())
    if total <= 0:
        return None
    cls, count = max(by_class.items(), key=lambda kv: kv[1])
    if cls is not None and count >= DOMINANT_SHARE * total:
        return cls
    return "mixed"


def _summary(tensors: int, dtypes: dict[str, int], classes: dict[str | None, int]) -> dict[str, Any]:
    return {
        "tensors": tensors,
        "parameters": sum(dtypes.values()),
        "dtypes": dict(sorted(dtypes.items())),
        "precision": precision_of(classes),
    }


def safetensors_header(fh: ByteReader, size: int) -> dict[str, Any] | None:
    fh.seek(0)
    prefix = fh.read(8)
    if len(prefix) < 8:
        return None
    length = int.from_bytes(prefix, "little")
    if not 2 <= length <= SAFETENSORS_MAX_HEADER or 8 + length > size:
        return None
    try:
        header = json.loads(fh.read(length).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(header, dict):
        return None
    dtypes: dict[str, int] = {}
    classes: dict[str | None, int] = {}
    tensors = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict):
            return None
        dtype, shape = info.get("dtype"), info.get("shape")
        if (
            not isinstance(dtype, str)
            or not isinstance(shape, list)
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        ):
            return None
        count = math.prod(shape)
        tensors += 1
        dtypes[dtype] = dtypes.get(dtype, 0) + count
        cls = SAFETENSORS_PRECISION.get(dtype.upper())
        classes[cls] = classes.get(cls, 0) + count
    return _summary(tensors, dtypes, classes)


def _read(fh: ByteReader, n: int) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise _Bad
    return data


def _u32(fh: ByteReader) -> int:
    return int(struct.unpack("<I", _read(fh, 4))[0])


def _u64(fh: ByteReader) -> int:
    return int(struct.unpack("<Q", _read(fh, 8))[0])


def _skip_string(fh: ByteReader) -> None:
    length = _u64(fh)
    if length > GGUF_MAX_STRING:
        raise _Bad
    fh.seek(length, 1)


def _skip_value(fh: ByteReader, kind: int, depth: int = 0) -> None:
    if kind in _GGUF_FIXED:
        fh.seek(_GGUF_FIXED[kind], 1)
    elif kind == _GGUF_STRING:
        _skip_string(fh)
    elif kind == _GGUF_ARRAY and depth < 2:
        item, count = _u32(fh), _u64(fh)
        if count > GGUF_MAX_ARRAY:
            raise _Bad
        if item in _GGUF_FIXED:
            fh.seek(_GGUF_FIXED[item] * count, 1)
        else:
            for _ in range(count):
                _skip_value(fh, item, depth + 1)
    else:
        raise _Bad


def gguf_header(fh: ByteReader, size: int) -> dict[str, Any] | None:
    fh.seek(0)
    try:
        if _read(fh, 4) != b"GGUF" or _u32(fh) not in (2, 3):
            return None
        n_tensors, n_kv = _u64(fh), _u64(fh)
        if n_tensors > GGUF_MAX_TENSORS or n_kv > GGUF_MAX_KV:
            return None
        for _ in range(n_kv):
            _skip_string(fh)
            _skip_value(fh, _u32(fh))
            if fh.tell() > size:
                return None
        dtypes: dict[str, int] = {}
        classes: dict[str | None, int] = {}
        for _ in range(n_tensors):
            _skip_string(fh)
            n_dims = _u32(fh)
            if n_dims > GGUF_MAX_DIMS:
                return None
            count = math.prod(_u64(fh) for _ in range(n_dims))
            name, cls = GGML_TYPES.get(_u32(fh), ("unknown", None))
            _u64(fh)  # offset of the data
            if fh.tell() > size:
                return None
            dtypes[name] = dtypes.get(name, 0) + count
            classes[cls] = classes.get(cls, 0) + count
    except (_Bad, struct.error, OSError, ValueError):
        return None
    return _summary(n_tensors, dtypes, classes)


READERS = {"safetensors": safetensors_header, "gguf": gguf_header}


def weights_header(fmt: str, fh: ByteReader, size: int) -> dict[str, Any] | None:
    """{tensors, parameters, dtypes {dtype: parameters}, precision} from the header of a safetensors or GGUF file;
    None for other formats or a header that does not parse. Leaves the file at position 0."""
    reader = READERS.get(fmt)
    if reader is None:
        return None
    try:
        return reader(fh, size)
    finally:
        fh.seek(0)


def combine(headers: list[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The headers of a revision's weight files (e.g. safetensors shards) as one: summed counts, one precision."""
    headers = [h for h in headers if h]
    if not headers:
        return None
    dtypes: dict[str, int] = {}
    for header in headers:
        for dtype, count in (header.get("dtypes") or {}).items():
            dtypes[dtype] = dtypes.get(dtype, 0) + int(count)
    classes: dict[str | None, int] = {}
    for dtype, count in dtypes.items():
        gguf_class = next((cls for name, cls in GGML_TYPES.values() if name == dtype), None)
        cls = SAFETENSORS_PRECISION.get(dtype.upper(), gguf_class)
        classes[cls] = classes.get(cls, 0) + count
    return {**_summary(sum(int(h.get("tensors") or 0) for h in headers), dtypes, classes), "files": len(headers)}
