"""The platform's one copy of the HTTP conditional-request rules (RFC 9110 §13): ETags, If-Match, If-None-Match.

- An ETag is a strong tag: the quoted first 32 hex digits of a sha256 over what identifies the version.
- `If-Match` compares **strongly** (§13.1.1): a weak `W/"…"` tag never matches, `*` matches any current
  version. Services call :func:`check_if_match` *after* they took the row lock (select_for_update inside their
  transaction), so two writers holding the same ETag cannot both pass: the second reads the first's write.
- `If-None-Match` compares **weakly** (§13.1.2), for 304 Not Modified on GET.

Header parsing is Django's (`parse_etags`); a malformed header lists no tag and so never matches.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.http import HttpRequest
from django.utils.http import parse_etags

from .errors import PreconditionFailed


def etag_for(stamp: str | bytes) -> str:
    """A strong ETag for a version stamp (the row's id and what changes with each write) or for content bytes."""
    data = stamp if isinstance(stamp, bytes) else stamp.encode()
    return '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


def etag_for_body(data: Any) -> str:
    """A strong ETag for a response body, stable across key order."""
    return etag_for(json.dumps(data, sort_keys=True, default=str))


def _opaque(tag: str) -> str:
    return tag.removeprefix("W/")


def if_match_passes(if_match: str, current: str) -> bool:
    """RFC 9110 §13.1.1: `*`, or one of the listed tags equals `current` by strong comparison."""
    tags = parse_etags(if_match)
    if "*" in tags:
        return True
    if current.startswith("W/"):
        return False
    return any(not tag.startswith("W/") and tag == current for tag in tags)


def if_none_match_hits(if_none_match: str, current: str) -> bool:
    """RFC 9110 §13.1.2: `*`, or one of the listed tags equals `current` by weak comparison (so: 304)."""
    tags = parse_etags(if_none_match)
    return "*" in tags or any(_opaque(tag) == _opaque(current) for tag in tags)


def not_modified(request: HttpRequest, current: str) -> bool:
    """True when the request's If-None-Match already names `current`: answer 304."""
    header = request.headers.get("If-None-Match")
    return header is not None and if_none_match_hits(header, current)


def check_if_match(if_match: str | None, current: str, *, what: str) -> None:
    """Raise PreconditionFailed (412, with the current ETag) when an If-Match header does not match `current`.

    No header, no condition. Call it with the row already locked, so `current` cannot change before the write."""
    if if_match is None or if_match_passes(if_match, current):
        return
    raise PreconditionFailed(
        f"{what} changed since you read it (If-Match does not match its ETag). Read it again and retry.",
        etag=current,
    )


__all__ = [
    "check_if_match",
    "etag_for",
    "etag_for_body",
    "if_match_passes",
    "if_none_match_hits",
    "not_modified",
]
