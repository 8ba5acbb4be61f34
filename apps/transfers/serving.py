"""Serving a stored artifact over HTTP: the one implementation behind the API's file download and the
Hub-compatible `resolve` endpoint.

- `ETag: "<sha256>"` (strong: the bytes are content-addressed), `If-None-Match` answered with 304, and
  `If-Range` honoured;
- `Range: bytes=a-b | a- | -n` (one range) answered with 206 and `Content-Range`; an unsatisfiable range gets
  416 with `Content-Range: bytes */size`; a malformed or multi-range header is ignored (RFC 9110 allows it)
  and the whole file is sent;
- `Content-Length`, `Accept-Ranges: bytes` and a `Content-Disposition` filename on every answer;
- HEAD answers the same headers without opening the file;
- the bytes are streamed from storage in blocks, never read whole: a whole-file answer is a FileResponse over
  the storage's file (so a server with `wsgi.file_wrapper`, gunicorn, can use sendfile), a range is read
  block by block up to its end;
- from a storage that is not this machine's file system (S3), GET is answered with a 302 to a short-lived
  presigned URL of the storage (as the Hub redirects to its CDN), with the same ETag and extra headers; HEAD and
  304 are answered here as above.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from django.conf import settings
from django.http import FileResponse, HttpResponse
from django.http.response import HttpResponseBase
from django.utils.http import content_disposition_header

from apps.core.conditional import if_none_match_hits
from apps.core.errors import NotFound
from apps.core.problems import PROBLEM_CONTENT_TYPE, problem_body
from apps.registry.models import Artifact

logger = logging.getLogger(__name__)

BLOCK_SIZE = 1024 * 1024
_RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class Unsatisfiable(Exception):
    """The Range header names no byte of the file (416)."""


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The single byte range `header` asks for, or None for the whole file (no header, or one to ignore).
    Raises Unsatisfiable when the range starts past the end of the file."""
    if not header or "," in header:
        return None
    match = _RANGE_RE.match(header)
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last n bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable
        return ByteRange(max(size - suffix, 0), size - 1)
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None  # invalid: ignored
    if start >= size:
        raise Unsatisfiable
    return ByteRange(start, min(end, size - 1))


def artifact_etag(artifact: Artifact) -> str:
    return f'"{artifact.sha256}"'


class _RangeFile:
    """A read-only view of `length` bytes of an open file from `start` (no fileno: never handed to sendfile,
    which would send to the end of the file)."""

    def __init__(self, file: Any, start: int, length: int):
        self._file = file
        self._file.seek(start)
        self._left = length

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        want = self._left if size is None or size < 0 else min(size, self._left)
        data = self._file.read(want)
        self._left -= len(data)
        return bytes(data)

    def close(self) -> None:
        self._file.close()


def _open(artifact: Artifact) -> Any:
    try:
        handle = artifact.file.storage.open(str(artifact.file.name), "rb")
    except FileNotFoundError:
        logger.error("artifact %s: %s is missing from storage", artifact.pk, artifact.file.name)
        raise NotFound(f"'{artifact.path}' is recorded but its file is missing from storage.")
    # The file system storage wraps a real file: hand that to the response so sendfile can be used.
    raw = getattr(handle, "file", None)
    return raw if raw is not None and hasattr(raw, "fileno") else handle


def presigned_url(artifact: Artifact, filename: str) -> str | None:
    """A short-lived URL the storage itself serves the file from (S3: a presigned GET, valid for
    MC_DOWNLOAD_REDIRECT_TTL_S seconds, naming the filename), or None for a storage on this machine's file system,
    which is streamed from here."""
    storage = artifact.file.storage
    name = str(artifact.file.name)
    try:
        storage.path(name)
    except NotImplementedError:
        pass
    else:
        return None
    disposition = content_disposition_header(True, filename) or "attachment"
    parameters = {"ResponseContentDisposition": disposition, "ResponseContentType": "application/octet-stream"}
    sign: Any = storage.url  # S3Storage.url(name, parameters, expire): wider than Storage.url
    try:
        return str(sign(name, parameters=parameters, expire=int(settings.MC_DOWNLOAD_REDIRECT_TTL_S)))
    except TypeError:  # a storage whose url() takes no parameters: its plain URL
        return str(storage.url(name))


def artifact_response(
    request: Any,
    artifact: Artifact,
    *,
    headers: dict[str, str] | None = None,
    on_download: Callable[[], None] | None = None,
) -> HttpResponseBase:
    """Answer GET or HEAD for a stored artifact (see the module docstring). `headers` are added to every
    answer (e.g. the Hub's X-Repo-Commit); `on_download` is called when the file is sent from its first byte."""
    size = int(artifact.size_bytes)
    etag = artifact_etag(artifact)
    common = {"ETag": etag, "Accept-Ranges": "bytes", **(headers or {})}
    filename = PurePosixPath(artifact.path).name

    def finish(response: HttpResponseBase, length: int | None) -> HttpResponseBase:
        for name, value in common.items():
            response[name] = value
        if length is not None:
            response["Content-Length"] = str(length)
        if response.status_code in (200, 206):
            response["Content-Type"] = "application/octet-stream"
            response["Content-Disposition"] = content_disposition_header(True, filename) or "attachment"
        return response

    if_none_match = request.headers.get("If-None-Match")
    if if_none_match and if_none_match_hits(if_none_match, etag):
        return finish(HttpResponse(status=304), None)
    range_header = request.headers.get("Range")
    if_range = request.headers.get("If-Range")
    if range_header and if_range and if_range.strip() != etag:
        range_header = None  # the client's partial copy is of other bytes: send the whole file
    try:
        byte_range = parse_range(range_header, size)
    except Unsatisfiable:
        detail = f"The file has {size} bytes; the range asked for starts past its end."
        body = json.dumps(
            problem_body(
                416,
                detail,
                slug="range-not-satisfiable",
                title="Range not satisfiable",
                instance=request.path,
                size_bytes=size,
            )
        ).encode()
        unsatisfiable = HttpResponse(body, status=416, content_type=PROBLEM_CONTENT_TYPE)
        unsatisfiable["Content-Range"] = f"bytes */{size}"
        return finish(unsatisfiable, len(body))

    status = 206 if byte_range is not None else 200
    length = byte_range.length if byte_range is not None else size
    response: HttpResponseBase
    redirect = presigned_url(artifact, filename) if request.method != "HEAD" else None
    if request.method == "HEAD":
        response = HttpResponse(status=status)
    elif redirect is not None:
        # The storage serves the bytes (as the Hub redirects to its CDN); the client sends its Range there.
        moved = HttpResponse(status=302)
        moved["Location"] = redirect
        moved["Cache-Control"] = "private, no-store"
        for header, value in common.items():
            moved[header] = value
        if on_download is not None and (byte_range is None or byte_range.start == 0):
            on_download()
        return moved
    else:
        handle = _open(artifact)
        source = handle if byte_range is None else _RangeFile(handle, byte_range.start, length)
        streamed = FileResponse(source, status=status)
        streamed.block_size = BLOCK_SIZE
        response = streamed
        if on_download is not None and (byte_range is None or byte_range.start == 0):
            on_download()
    if byte_range is not None:
        response["Content-Range"] = f"bytes {byte_range.start}-{byte_range.end}/{size}"
    return finish(response, length)
