"""Request body parsers with limits that hold before and while parsing.

DRF's parsers read the whole body, whatever its size (DRF hands them the raw request stream, so Django's
DATA_UPLOAD_MAX_MEMORY_SIZE never applies), and the json module answers 50,000 nested brackets with a
RecursionError. These parsers read at most their limit (Content-Length is checked before anything is read;
without one the read itself is bounded), and refuse what the database or the code behind cannot hold:
nesting deeper than JSON_MAX_DEPTH, NaN and infinities, integers longer than Python converts, NUL characters
and lone surrogates. Every refusal is a 400 or a 413 problem, never a 500.

Every API view parses with these (or MultiPartParser, whose files go through the capped upload handler set in
FILE_UPLOAD_HANDLERS); a structural test walks the URLconf to prove it.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from django.conf import settings
from django.http import QueryDict
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from .errors import PayloadTooLarge

JSON_MAX_DEPTH = 64
# Python refuses to convert longer digit strings (sys.int_info.default_max_str_digits): say so clearly.
JSON_MAX_INT_DIGITS = getattr(sys.int_info, "default_max_str_digits", 4300) or 4300


def json_max_bytes() -> int:
    return int(settings.MC_JSON_MAX_BYTES)


def read_capped(stream: Any, limit: int, parser_context: dict[str, Any] | None, what: str = "body") -> bytes:
    """At most `limit` bytes of the body, or a 413: by the declared Content-Length before reading, and by
    counting what arrives (a missing or lying Content-Length)."""
    request = (parser_context or {}).get("request")
    meta = getattr(request, "META", None) or {}
    try:
        declared = int(meta.get("CONTENT_LENGTH") or 0)
    except (TypeError, ValueError):
        declared = 0
    if declared > limit:
        raise PayloadTooLarge(
            f"The {what} ({declared} bytes) is larger than the {limit}-byte limit.", limit_bytes=limit
        )
    raw = stream.read(limit + 1) if stream is not None else b""
    if len(raw) > limit:
        raise PayloadTooLarge(f"The {what} is larger than the {limit}-byte limit.", limit_bytes=limit)
    return bytes(raw)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number; numbers must be finite")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range; numbers must be finite")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > JSON_MAX_INT_DIGITS:
        raise ValueError(f"an integer has more than {JSON_MAX_INT_DIGITS} digits")
    return int(text)


def string_problem(value: str) -> str | None:
    """Why PostgreSQL could not store this text (NUL, lone surrogates), or None."""
    if "\x00" in value:
        return "NUL characters (\\u0000) are not allowed in strings"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "strings must be valid Unicode (a lone surrogate escape is not)"
    return None


def json_check(value: Any, max_depth: int = JSON_MAX_DEPTH) -> None:
    """Refuse (ValueError) nesting deeper than max_depth and strings the database cannot store. Iterative, so
    it cannot itself overflow the stack."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            problem = string_problem(item)
            if problem:
                raise ValueError(problem)
        elif isinstance(item, dict | list):
            if depth > max_depth:
                raise ValueError(f"nested more than {max_depth} levels deep")
            if isinstance(item, dict):
                for key, child in item.items():
                    problem = string_problem(key)
                    if problem:
                        raise ValueError(problem + " (in a key)")
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)


def json_loads_strict(text: str | bytes, max_depth: int = JSON_MAX_DEPTH) -> Any:
    """json.loads with the limits above; ValueError (with a message for the client) when refused."""
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float, parse_int=_bounded_int)
    except RecursionError:
        raise ValueError(f"nested more than {max_depth} levels deep") from None
    json_check(value, max_depth)
    return value


class JSONParser(parsers.JSONParser):
    """application/json, at most MC_JSON_MAX_BYTES (413), strictly parsed (400)."""

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Any = None,
    ) -> Any:
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        raw = read_capped(stream, json_max_bytes(), parser_context, "JSON body")
        try:
            return json_loads_strict(raw.decode(encoding))
        except (UnicodeDecodeError, LookupError) as exc:
            raise ParseError(f"JSON parse error - the body is not valid {encoding}: {exc}")
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}")


class FormParser(parsers.FormParser):
    """application/x-www-form-urlencoded, at most DATA_UPLOAD_MAX_MEMORY_SIZE (Django's own limit for forms,
    which DRF's FormParser does not apply)."""

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Any = None,
    ) -> Any:
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = read_capped(stream, limit, parser_context, "form body") if limit is not None else stream.read()
        try:
            data = QueryDict(raw, encoding=encoding)
        except UnicodeDecodeError as exc:
            raise ParseError(f"Form parse error - {exc}")
        for key, values in data.lists():
            for text in (key, *values):
                problem = string_problem(text)
                if problem:
                    raise ParseError(f"Form parse error - {problem}")
        return data


# What an API view may parse with; the structural test checks every view against this list.
CAPPED_PARSERS: tuple[type[parsers.BaseParser], ...] = (JSONParser, FormParser, parsers.MultiPartParser)
