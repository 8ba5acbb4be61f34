"""The library API: `Client(url, token)` and its resources. The `mc` CLI is built on it.

from modelcommons_client import Client

with Client("https://commons.example.org", token="mc_...") as mc:
    mc.variants.create("my-model-int8", relation="quantized", parents=["commons/my-model"],
                       license="apache-2.0", card=open("README.md").read())
    mc.uploads.push("alice/my-model-int8", ["out/"])
    job = mc.jobs.submit("alice/my-model-int8", "digits").wait(on_progress=print)
    print(job.status, job.metrics)
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from . import config as config_module
from .errors import BadRequest, ConfigError, NotFound, UsageError
from .http import Http, new_idempotency_key
from .models import (
    Artifact,
    Checklist,
    ChecklistItem,
    FileEntry,
    Job,
    Leaderboard,
    Me,
    PulledFile,
    PushedFile,
    Review,
    Revision,
    Token,
    Upload,
    Variant,
)

DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024


def split_name(full_name: str) -> tuple[str, str]:
    """'owner/name' -> (owner, name); anything else is a usage error."""
    parts = full_name.strip().strip("/").split("/")
    if len(parts) != 2 or not all(parts):
        raise BadRequest(
            400,
            {
                "title": "Bad variant name",
                "detail": f"'{full_name}' is not owner/name.",
                "errors": {"variant": ["Give the variant's full name, owner/name."]},
            },
        )
    return parts[0], parts[1]


def variant_path(full_name: str) -> str:
    owner, name = split_name(full_name)
    return f"/api/v1/variants/{quote(owner, safe='')}/{quote(name, safe='')}"


class _Resource:
    def __init__(self, client: Client):
        self._client = client
        self._http = client.http


class Tokens(_Resource):
    def create(
        self,
        *,
        username: str,
        password: str,
        name: str,
        scopes: Sequence[str] | None = None,
        expires_at: str | None = None,
    ) -> Token:
        """A new personal access token, made with the account's password (HTTP Basic): shown once."""
        body: dict[str, Any] = {"name": name}
        if scopes:
            body["scopes"] = list(scopes)
        if expires_at:
            body["expires_at"] = expires_at
        data = self._http.json("POST", "/api/v1/auth/tokens/", json=body, auth=httpx.BasicAuth(username, password))
        return Token.from_api(data)


class Variants(_Resource):
    def list(
        self, *, owner: str | None = None, search: str | None = None, limit: int | None = 100, **filters: Any
    ) -> list[Variant]:
        params = {"owner": owner, "search": search, **filters}
        if limit is not None:
            params["page_size"] = max(1, min(limit, 100))
        return [Variant.from_api(v) for v in self._http.pages("/api/v1/variants/", params, limit=limit)]

    def get(self, full_name: str) -> Variant:
        return Variant.from_api(self._http.json("GET", variant_path(full_name) + "/"))

    def create(
        self,
        name: str,
        *,
        relation: str,
        parents: Sequence[str] = (),
        license: str | None = None,
        task: str | None = None,
        precision: str | None = None,
        parameters: int | None = None,
        summary: str | None = None,
        card: str | None = None,
        tags: Sequence[str] | None = None,
        architecture: str | None = None,
        owner: str | None = None,
    ) -> Variant:
        """Create a variant. `name` is `name` (your namespace) or `owner/name` (an organization's)."""
        if "/" in name:
            owner, name = split_name(name)
        body: dict[str, Any] = {"name": name, "relation": relation, "parents": list(parents)}
        optional = {
            "owner": owner,
            "license": license,
            "task": task,
            "precision": precision,
            "parameters": parameters,
            "summary": summary,
            "card": card,
            "architecture": architecture,
            "tags": list(tags) if tags is not None else None,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return Variant.from_api(self._http.json("POST", "/api/v1/variants/", json=body))


class Revisions(_Resource):
    def list(self, variant: str) -> list[Revision]:
        return [Revision.from_api(r) for r in self._http.pages(variant_path(variant) + "/revisions/", limit=None)]

    def get(self, variant: str, number: int) -> Revision:
        return Revision.from_api(self._http.json("GET", f"{variant_path(variant)}/revisions/{int(number)}/"))

    def create(self, variant: str, *, notes: str = "", copy_artifacts: bool = True) -> Revision:
        body = {"notes": notes, "copy_artifacts": copy_artifacts}
        return Revision.from_api(self._http.json("POST", f"{variant_path(variant)}/revisions/", json=body))

    def _transition(self, variant: str, number: int, verb: str, reason: str | None = None) -> Revision:
        body = {"reason": reason} if reason else {}
        return Revision.from_api(
            self._http.json("POST", f"{variant_path(variant)}/revisions/{int(number)}/{verb}/", json=body)
        )

    def submit(self, variant: str, number: int) -> Revision:
        return self._transition(variant, number, "submit")

    def withdraw(self, variant: str, number: int) -> Revision:
        return self._transition(variant, number, "withdraw")

    def resolve(self, variant: str, revision: int | str | None = None) -> int:
        """A revision number: `revision` itself; the variant's current revision when None; for `main`, the last
        published revision (the current one when none is published, as the Hub-compatible API has it)."""
        if revision is None:
            current = self._client.variants.get(variant).current_revision
            if current is None:
                raise NotFound(404, {"title": "Not Found", "detail": f"{variant} has no revision yet."})
            return int(current)
        if isinstance(revision, str) and revision.strip().lower() == "main":
            published = [r.number for r in self.list(variant) if r.status == "published"]
            return max(published) if published else self.resolve(variant, None)
        try:
            return int(revision)
        except (TypeError, ValueError):
            raise BadRequest(
                400,
                {
                    "title": "Bad revision",
                    "detail": f"'{revision}' is not a revision number or main.",
                    "errors": {"revision": ["A number, or main."]},
                },
            ) from None


class Files(_Resource):
    def list(self, variant: str, revision: int) -> list[FileEntry]:
        data = self._http.json("GET", f"{variant_path(variant)}/revisions/{int(revision)}/files/")
        return [FileEntry.from_api(f) for f in data]

    def url(self, variant: str, revision: int, path: str) -> str:
        return f"{variant_path(variant)}/revisions/{int(revision)}/files/{quote(path, safe='/')}"

    def download(
        self,
        variant: str,
        revision: int,
        entry: FileEntry,
        dest: str | os.PathLike[str],
        *,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> PulledFile:
        """Download one file to `dest`, resuming a partial `dest.mc-part` with Range, and verify its sha256."""
        from .transfer import download_file

        return download_file(self._client, variant, revision, entry, Path(dest), on_progress=on_progress)

    def pull(
        self,
        variant: str,
        revision: int | str | None = None,
        directory: str | os.PathLike[str] = ".",
        *,
        on_file: Callable[[FileEntry], None] | None = None,
        on_progress: Callable[[FileEntry, int, int], None] | None = None,
        on_done: Callable[[PulledFile], None] | None = None,
    ) -> tuple[int, builtins.list[PulledFile]]:
        """Download every file of a revision into `directory`, verifying each sha256; files already there
        with the right sha256 are left alone, partial ones resumed. Returns (revision number, files)."""
        from .transfer import pull

        return pull(
            self._client, variant, revision, Path(directory), on_file=on_file, on_progress=on_progress, on_done=on_done
        )


class Uploads(_Resource):
    def create(
        self,
        variant: str,
        path: str,
        *,
        size_bytes: int,
        sha256: str,
        revision: int | None = None,
        format: str | None = None,
    ) -> Upload:
        body: dict[str, Any] = {"variant": variant, "path": path, "size_bytes": size_bytes, "sha256": sha256}
        if revision is not None:
            body["revision"] = int(revision)
        if format:
            body["format"] = format
        return Upload.from_api(self._http.json("POST", "/api/v1/uploads/", json=body))

    def get(self, upload_id: str) -> Upload:
        return Upload.from_api(self._http.json("GET", f"/api/v1/uploads/{upload_id}/"))

    def offset(self, upload_id: str) -> int:
        """How many bytes the server has (HEAD: `Upload-Offset`)."""
        response = self._http.send("HEAD", f"/api/v1/uploads/{upload_id}/")
        return int(response.headers.get("upload-offset", "0"))

    def append(self, upload_id: str, offset: int, body: Callable[[], Iterable[bytes]] | bytes, length: int) -> Upload:
        """PATCH one chunk of `length` bytes at `offset`. `body` may be a callable returning the bytes afresh."""
        headers = {
            "Content-Type": "application/offset+octet-stream",
            "Upload-Offset": str(int(offset)),
            "Content-Length": str(int(length)),
        }
        response = self._http.send(
            "PATCH", f"/api/v1/uploads/{upload_id}/", content=body, headers=headers, retry_network=False
        )
        return Upload.from_api(response.json())

    def complete(self, upload_id: str) -> Artifact:
        """Finish an upload: the server checks the whole file's sha256; the artifact comes back."""
        return Artifact.from_api(self._http.json("POST", f"/api/v1/uploads/{upload_id}/complete/", idempotent=True))

    def upload_file(
        self,
        variant: str,
        revision: int,
        local: str | os.PathLike[str],
        path: str,
        *,
        sha256: str | None = None,
        on_progress: Callable[[str, int, int], None] | None = None,
    ) -> PushedFile:
        """Upload one local file as `path` of a draft revision through a resumable session; an interrupted
        upload of the same file (same server, variant, revision, path and sha256) resumes where the server's
        offset says."""
        from .transfer import upload_file

        return upload_file(self._client, variant, revision, Path(local), path, sha256=sha256, on_progress=on_progress)

    def push(
        self,
        variant: str,
        paths: Sequence[str | os.PathLike[str]],
        *,
        revision: int | None = None,
        new_revision: bool = False,
        on_file: Callable[[str, int], None] | None = None,
        on_progress: Callable[[str, str, int, int], None] | None = None,
        on_done: Callable[[PushedFile], None] | None = None,
    ) -> tuple[int, list[PushedFile]]:
        """Upload files and folders (recursively) to a draft revision: the current one, `revision`, or a new one
        (`new_revision`). Files the revision already has with the same sha256 are skipped."""
        from .transfer import push

        return push(
            self._client,
            variant,
            [Path(p) for p in paths],
            revision=revision,
            new_revision=new_revision,
            on_file=on_file,
            on_progress=on_progress,
            on_done=on_done,
        )


class Jobs(_Resource):
    def _job(self, data: dict[str, Any]) -> Job:
        job = Job.from_api(data)
        job._jobs = self
        return job

    def submit(
        self,
        variant: str,
        benchmark: str,
        *,
        revision: int | None = None,
        config: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Queue a benchmark job (or get the existing one for the same revision, benchmark and config). The POST
        carries an Idempotency-Key, so a retry after a lost answer never makes a second job."""
        body: dict[str, Any] = {"variant": variant, "benchmark": benchmark, "config": dict(config or {})}
        if revision is not None:
            body["revision"] = int(revision)
        headers = {"Idempotency-Key": idempotency_key or new_idempotency_key()}
        return self._job(self._http.json("POST", "/api/v1/jobs/", json=body, headers=headers, idempotent=True))

    def get(self, job_id: int) -> Job:
        return self._job(self._http.json("GET", f"/api/v1/jobs/{int(job_id)}/"))

    def list(
        self,
        *,
        variant: str | None = None,
        benchmark: str | None = None,
        status: str | None = None,
        mine: bool | None = None,
        limit: int | None = 100,
    ) -> list[Job]:
        params = {
            "variant": variant,
            "benchmark": benchmark,
            "status": status,
            "mine": None if mine is None else str(mine).lower(),
        }
        return [self._job(j) for j in self._http.pages("/api/v1/jobs/", params, limit=limit)]

    def cancel(self, job_id: int) -> Job:
        return self._job(self._http.json("POST", f"/api/v1/jobs/{int(job_id)}/cancel/"))

    def bundle(self, job_id: int) -> dict[str, Any]:
        """The reproducibility bundle of a succeeded job (one JSON document)."""
        return dict(self._http.json("GET", f"/api/v1/jobs/{int(job_id)}/bundle.json"))

    def wait(self, job_id: int, **kw: Any) -> Job:
        return self.get(job_id).wait(**kw)


class Leaderboards(_Resource):
    def get(self, benchmark: str, *, limit: int = 50, **filters: Any) -> Leaderboard:
        """The first `limit` rows of a benchmark's leaderboard (filters: relation, precision, license, task,
        max_parameters, verified)."""
        path = f"/api/v1/leaderboards/{quote(benchmark, safe='')}/"
        params = {**filters, "page_size": max(1, min(limit, 100))}
        first = self._http.json("GET", path, params=params)
        rows = list(first.get("results", []))
        nxt = first.get("next")
        while nxt and len(rows) < limit:
            page = self._http.json("GET", nxt)
            rows.extend(page.get("results", []))
            nxt = page.get("next")
        data = {**first, "results": rows[:limit], "next": nxt}
        return Leaderboard.from_api(data)


class Reviews(_Resource):
    def list(self, variant: str, revision: int) -> list[Review]:
        path = f"{variant_path(variant)}/revisions/{int(revision)}/reviews/"
        return [Review.from_api(r) for r in self._http.pages(path, limit=None)]

    def create(self, variant: str, revision: int, decision: str, body: str = "") -> Review:
        path = f"{variant_path(variant)}/revisions/{int(revision)}/reviews/"
        return Review.from_api(self._http.json("POST", path, json={"decision": decision, "body": body}))

    def approve(self, variant: str, revision: int, body: str = "") -> Review:
        return self.create(variant, revision, "approve", body)

    def request_changes(self, variant: str, revision: int, body: str = "") -> Review:
        return self.create(variant, revision, "request_changes", body)


class Checklists(_Resource):
    def get(self, variant: str, revision: int) -> Checklist:
        path = f"{variant_path(variant)}/revisions/{int(revision)}/checklist/"
        return Checklist.from_api(self._http.json("GET", path))

    def answer(
        self,
        variant: str,
        revision: int,
        key: str,
        *,
        status: str | None = None,
        justification: str | None = None,
        evidence_url: str | None = None,
        verified: bool | None = None,
    ) -> ChecklistItem:
        body = {"status": status, "justification": justification, "evidence_url": evidence_url, "verified": verified}
        path = f"{variant_path(variant)}/revisions/{int(revision)}/checklist/{quote(key, safe='')}/"
        return ChecklistItem.from_api(
            self._http.json("PATCH", path, json={k: v for k, v in body.items() if v is not None})
        )


class Client:
    """A Model Commons server, seen with one token (or none: anonymous reads).

    Keyword options: `timeout` (seconds per request), `retries` (tries again after 429/503/network errors),
    `max_retry_after` (the longest Retry-After waited for), `chunk_size` (bytes per upload PATCH), `transport`
    (an httpx transport, for tests), `on_retry(message, seconds)` (told before each backoff)."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 5,
        backoff: float = 0.5,
        max_retry_after: float = 120.0,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        transport: httpx.BaseTransport | None = None,
        on_retry: Callable[[str, float], None] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
    ):
        if not url:
            raise ConfigError("no server URL: pass one, set MC_URL, or run `mc login --url URL`")
        if not url.lower().startswith(("http://", "https://")):
            raise UsageError(f"the server URL must start with http:// or https://, not {url!r}")
        self.url = url.rstrip("/")
        self.token = token
        self.chunk_size = int(chunk_size)
        self.cache_dir = Path(cache_dir) if cache_dir else config_module.cache_dir()
        self.http = Http(
            self.url,
            token,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            max_retry_after=max_retry_after,
            transport=transport,
            on_retry=on_retry,
        )
        self.tokens = Tokens(self)
        self.variants = Variants(self)
        self.revisions = Revisions(self)
        self.files = Files(self)
        self.uploads = Uploads(self)
        self.jobs = Jobs(self)
        self.leaderboards = Leaderboards(self)
        self.reviews = Reviews(self)
        self.checklists = Checklists(self)

    @classmethod
    def from_config(cls, url: str | None = None, token: str | None = None, **kw: Any) -> Client:
        """A client for the server and token in force: arguments, then MC_URL / MC_TOKEN, then the config file
        that `mc login` wrote."""
        settings = config_module.load(url, token)
        return cls(settings.url, settings.token, **kw)

    def me(self) -> Me:
        return Me.from_api(self.http.json("GET", "/api/v1/me/"))

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
