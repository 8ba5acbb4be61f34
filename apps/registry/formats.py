"""What the bytes of a safe format look like: an artifact declared safetensors, ONNX or GGUF must be one.

A safe format is listed `safe: true` and loaded without unpickling, so its bytes are checked where the server
has them (an upload, or a file:// record in development), the way each format's own loader reads them:
- safetensors: an 8-byte little-endian header length N, then N bytes of a JSON object whose tensors'
  `data_offsets` lie inside the file and end exactly at its end;
- GGUF: the magic `GGUF` (its loaders parse typed key-value metadata and tensors, nothing executable);
- ONNX: a protobuf `ModelProto`. Its top-level fields are walked from the first byte to the last (length-
  delimited fields are skipped, not read): it must start with `ir_version`, every field must have the wire type
  `onnx.proto` gives it, lengths must fit, and it must hold a graph or functions. A pickle (any protocol) or a
  zip archive fails at its first byte or soon after.

Django-free: it works on any seekable binary file object.
"""

from __future__ import annotations

import json
import math
from typing import Protocol


class ByteReader(Protocol):
    """What the checks need of a file: an open binary file, or an upload as Django hands it over."""

    def read(self, size: int = -1, /) -> bytes: ...
    def seek(self, offset: int, whence: int = 0, /) -> int: ...
    def tell(self) -> int: ...


SAFETENSORS_MAX_HEADER = 100_000_000  # the safetensors library's own limit
ONNX_MAX_TOP_LEVEL_FIELDS = 100_000
ONNX_MAX_IR_VERSION = 1000

# ModelProto (onnx.proto): field number -> wire type (0 varint, 2 length-delimited).
_ONNX_MODEL_FIELDS = {
    1: 0,  # ir_version
    2: 2,  # producer_name
    3: 2,  # producer_version
    4: 2,  # domain
    5: 0,  # model_version
    6: 2,  # doc_string
    7: 2,  # graph
    8: 2,  # opset_import
    14: 2,  # metadata_props
    20: 2,  # training_info
    25: 2,  # functions
    26: 2,  # configuration
}
_GRAPH, _FUNCTIONS = 7, 25


def _looks_like(head: bytes) -> str | None:
    """A name for what the first bytes suggest, for the message about a file that failed its format check."""
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive (a PyTorch checkpoint?)"
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return "a pickle"
    # Protocol 0/1 pickles start with an opcode: MARK, GLOBAL, EMPTY_DICT, EMPTY_LIST, ...
    if head[:1] in (b"(", b"c", b"}", b"]", b")") and b"\n" in head[:256]:
        return "a pickle (protocol 0 or 1)"
    return None


def _read_varint(fh: ByteReader) -> int | None:
    result = 0
    for shift in range(0, 70, 7):
        byte = fh.read(1)
        if not byte:
            return None
        result |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return result
    return None  # more than 10 bytes: not a varint


def _onnx_problem(fh: ByteReader, size: int) -> str | None:
    fh.seek(0)
    seen: set[int] = set()
    count = 0
    while fh.tell() < size:
        count += 1
        if count > ONNX_MAX_TOP_LEVEL_FIELDS:
            return "it has too many top-level protobuf fields for an ONNX model"
        key = _read_varint(fh)
        if key is None:
            return "it is not a protobuf message (a field key is cut off)"
        number, wire = key >> 3, key & 7
        if count == 1 and (number, wire) != (1, 0):
            return "an ONNX model starts with its ir_version field"
        expected = _ONNX_MODEL_FIELDS.get(number)
        if number == 0 or (expected is not None and wire != expected) or wire not in (0, 1, 2, 5):
            return f"protobuf field {number} has wire type {wire}, which an ONNX ModelProto does not have there"
        if wire == 0:
            value = _read_varint(fh)
            if value is None:
                return "it is not a protobuf message (a varint is cut off)"
            if number == 1 and not 1 <= value <= ONNX_MAX_IR_VERSION:
                return f"ir_version {value} is not an ONNX IR version"
        elif wire == 2:
            length = _read_varint(fh)
            if length is None or fh.tell() + length > size:
                return "it is not a protobuf message (a field is longer than the file)"
            fh.seek(length, 1)
        else:
            width = 8 if wire == 1 else 4
            if fh.tell() + width > size:
                return "it is not a protobuf message (a fixed-width field is cut off)"
            fh.seek(width, 1)
        seen.add(number)
    if not seen & {_GRAPH, _FUNCTIONS}:
        return "an ONNX model holds a graph (or functions), and this protobuf has none"
    return None


def _safetensors_problem(fh: ByteReader, size: int) -> str | None:
    fh.seek(0)
    prefix = fh.read(8)
    if len(prefix) < 8:
        return "the file is too short for a safetensors header"
    length = int.from_bytes(prefix, "little")
    if not 2 <= length <= SAFETENSORS_MAX_HEADER or 8 + length > size:
        return "the file does not start with a safetensors header length that fits the file"
    raw = fh.read(length)
    if raw[:1] != b"{":
        return "the safetensors header is not a JSON object"
    try:
        header = json.loads(raw.decode("utf-8").rstrip(" "))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return "the safetensors header is not valid JSON"
    if not isinstance(header, dict):
        return "the safetensors header is not a JSON object"
    data_size = size - 8 - length
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                return "the safetensors __metadata__ is not a map of strings"
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        shape = info.get("shape") if isinstance(info, dict) else None
        if (
            not isinstance(info.get("dtype") if isinstance(info, dict) else None, str)
            or not isinstance(shape, list)
            or not all(isinstance(d, int) and d >= 0 for d in shape)
            or not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_size
        ):
            return f"the safetensors entry '{str(name)[:100]}' is not a tensor (dtype, shape, data_offsets)"
        if math.prod(shape) == 0 and offsets[0] != offsets[1]:
            return f"the safetensors entry '{str(name)[:100]}' is empty but has data"
        end = max(end, offsets[1])
    if end != data_size:
        return "the safetensors tensors do not end where the file ends"
    return None


def _gguf_problem(fh: ByteReader, size: int) -> str | None:
    fh.seek(0)
    if fh.read(4) != b"GGUF":
        return "the file does not start with the GGUF magic bytes"
    return None


_CHECKS = {"onnx": _onnx_problem, "safetensors": _safetensors_problem, "gguf": _gguf_problem}


def format_mismatch(declared: str, fh: ByteReader, size: int) -> str | None:
    """Why the file's bytes are not the declared safe format, or None (also for formats not checked here).
    Reads the file from its start; leaves it at position 0."""
    check = _CHECKS.get(declared)
    if check is None:
        return None
    try:
        problem = check(fh, size)
        if problem:
            # Only a hint: a valid safetensors header length can start with '(' too.
            fh.seek(0)
            looks = _looks_like(fh.read(256))
            if looks:
                problem = f"the file is {looks}: {problem}"
    finally:
        fh.seek(0)
    return problem
