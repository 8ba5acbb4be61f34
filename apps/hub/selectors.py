"""The registry as Hugging Face Hub repositories (SPEC §3, "Hub-compatible read API").

- A repo is a variant; its id is the variant's full name. A variant the caller may not see is `RepoNotFound`.
- A revision id (`{rev}`) is `main` (the last published revision; for the variant's insiders the current one
  while nothing is published), a revision number, or a commit id: 40 hex digits, the sha1 of the revision's
  file manifest (its artifacts' `path sha256` lines, sorted by path, each ending in a newline). A revision the
  caller may not see, or no revision at all, is `RevisionNotFound`.
- The files of a repo are the revision's artifacts stored on the platform (an artifact recorded by URI only has
  no bytes here to serve). Every file is presented as Git LFS presents large files: `lfs.oid` is its sha256
  (so the client's ETag, cache key and checksum are the sha256), and the blob id is the git sha1 of its LFS
  pointer, as on the Hub.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from apps.core.errors import NotFound
from apps.registry.models import Artifact, Revision, Variant
from apps.registry.querysets import sees_unpublished
from apps.registry.selectors import (
    revision_for_user_or_404,
    revisions_visible_to,
    variant_for_user_or_404,
)
from apps.registry.weights import combine

if TYPE_CHECKING:
    from apps.accounts.types import Viewer

COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n"


class HubNotFound(NotFound):
    """A 404 the Hub client turns into its own typed exception (it reads X-Error-Code)."""

    hub_code = "RepoNotFound"

    def __init__(self, detail: str, *, commit: str | None = None):
        super().__init__(detail)
        self.commit = commit


class RepoNotFound(HubNotFound):
    hub_code = "RepoNotFound"


class RevisionNotFound(HubNotFound):
    hub_code = "RevisionNotFound"


class EntryNotFound(HubNotFound):
    hub_code = "EntryNotFound"


def commit_id(artifacts: Iterable[Artifact]) -> str:
    """The revision's commit id: sha1 of its sorted `path sha256` manifest lines."""
    lines = sorted(f"{a.path} {a.sha256}\n" for a in artifacts)
    return hashlib.sha1("".join(lines).encode(), usedforsecurity=False).hexdigest()


def hub_time(value: datetime | None) -> str | None:
    """The Hub's timestamp format (huggingface_hub parses exactly this)."""
    if value is None:
        return None
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def hub_repo(user: Viewer, owner: str, name: str) -> Variant:
    """The variant `owner/name` if the caller may see it; RepoNotFound otherwise."""
    try:
        return variant_for_user_or_404(user, owner, name)
    except NotFound:
        raise RepoNotFound(f"Repository {owner}/{name} not found.")


def _numbered(user: Viewer, variant: Variant, number: int, rev: str) -> Revision:
    try:
        return revision_for_user_or_404(user, number=number, variant=variant)
    except NotFound:
        raise RevisionNotFound(f"Revision {rev} of {variant.full_name} not found.")


def hub_revision(user: Viewer, variant: Variant, rev: str) -> Revision:
    """The revision `rev` names (with its artifacts loaded), if the caller may see it; RevisionNotFound
    otherwise."""
    rev = rev.strip()
    if rev == "main":
        target = variant.published_revision
        if target is None and sees_unpublished(user, variant):
            target = variant.current_revision
        if target is None:
            raise RevisionNotFound(f"{variant.full_name} has no published revision.")
        return _numbered(user, variant, target.number, rev)
    if rev.isdigit() and len(rev) <= 10:
        return _numbered(user, variant, int(rev), rev)
    if COMMIT_RE.match(rev.lower()):
        matches = [r for r in revisions_visible_to(user, variant) if commit_id(r.artifacts.all()) == rev.lower()]
        if matches:
            found = max(matches, key=lambda r: r.number)
            found.variant = variant
            return found
    raise RevisionNotFound(f"Revision {rev} of {variant.full_name} not found.")


def served_files(revision: Revision) -> list[Artifact]:
    """The files the Hub API serves: the revision's artifacts stored here, by path."""
    return sorted((a for a in revision.artifacts.all() if a.file), key=lambda a: a.path)


def _pointer(artifact: Artifact) -> bytes:
    return LFS_POINTER.format(sha256=artifact.sha256, size=artifact.size_bytes).encode()


def blob_id(artifact: Artifact) -> str:
    """The git blob id of the file's LFS pointer, as the Hub reports for LFS files."""
    pointer = _pointer(artifact)
    return hashlib.sha1(b"blob %d\0" % len(pointer) + pointer, usedforsecurity=False).hexdigest()


def sibling(artifact: Artifact) -> dict[str, Any]:
    return {
        "rfilename": artifact.path,
        "size": artifact.size_bytes,
        "blobId": blob_id(artifact),
        "lfs": {"size": artifact.size_bytes, "sha256": artifact.sha256, "pointerSize": len(_pointer(artifact))},
    }


def _file_entry(artifact: Artifact) -> dict[str, Any]:
    return {
        "type": "file",
        "oid": blob_id(artifact),
        "size": artifact.size_bytes,
        "path": artifact.path,
        "lfs": {"oid": artifact.sha256, "size": artifact.size_bytes, "pointerSize": len(_pointer(artifact))},
    }


def _dir_entry(path: str, files: list[Artifact]) -> dict[str, Any]:
    inside = [a for a in files if a.path.startswith(path + "/")]
    oid = hashlib.sha1("".join(f"{a.path} {a.sha256}\n" for a in inside).encode(), usedforsecurity=False).hexdigest()
    return {"type": "directory", "oid": oid, "size": 0, "path": path}


def tree(revision: Revision, path: str = "", *, recursive: bool = False) -> list[dict[str, Any]]:
    """The Hub's tree listing of `path` ("" for the root): the files and folders right inside it, or everything
    below it when `recursive`. A path that is not a folder of the revision is EntryNotFound."""
    files = served_files(revision)
    prefix = path.strip("/")
    if prefix and not any(a.path.startswith(prefix + "/") for a in files):
        raise EntryNotFound(f"{prefix} is not a folder of revision {revision.number}.")
    base = prefix + "/" if prefix else ""
    dirs: set[str] = set()
    out: list[dict[str, Any]] = []
    for artifact in files:
        if not artifact.path.startswith(base):
            continue
        rest = artifact.path[len(base) :].split("/")
        for depth in range(1, len(rest) if recursive else min(len(rest), 2)):
            dirs.add(base + "/".join(rest[:depth]))
        if recursive or len(rest) == 1:
            out.append(_file_entry(artifact))
    out.extend(_dir_entry(d, files) for d in dirs)
    return sorted(out, key=lambda e: e["path"])


def entry(revision: Revision, path: str) -> Artifact:
    """The stored file at `path`; EntryNotFound (carrying the commit, which the client caches) otherwise."""
    wanted = path.strip().replace("\\", "/")
    found = next((a for a in revision.artifacts.all() if a.path == wanted), None)
    commit = commit_id(revision.artifacts.all())
    if found is None:
        raise EntryNotFound(f"{wanted} not found in revision {revision.number}.", commit=commit)
    if not found.file:
        raise EntryNotFound(f"{wanted} is recorded by URI and not stored here ({found.uri}).", commit=commit)
    return found


def weights_info(files: list[Artifact]) -> dict[str, Any]:
    """The Hub's `safetensors` ({parameters: {dtype: count}, total}) and `gguf` ({total}) members, from the
    weight files' headers."""
    out: dict[str, Any] = {}
    for fmt in ("safetensors", "gguf"):
        summary = combine([a.header for a in files if a.format == fmt])
        if summary is None:
            continue
        if fmt == "safetensors":
            out[fmt] = {"parameters": summary["dtypes"], "total": summary["parameters"]}
        else:
            out[fmt] = {"total": summary["parameters"]}
    return out
