"""Typed results: one dataclass per API representation (SPEC §3). Each keeps the whole document it was read
from in `raw` (the fields added later by the server included), which is what `--json` prints."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T", bound="Model")

TERMINAL_JOB_STATES = frozenset({"succeeded", "failed", "cancelled", "timed_out"})


@dataclass
class Model:
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False, kw_only=True)

    @classmethod
    def from_api(cls: type[T], data: dict[str, Any]) -> T:
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name == "raw" or f.name.startswith("_") or f.name not in data:
                continue
            kwargs[f.name] = cls._convert(f.name, data[f.name])
        return cls(**kwargs, raw=dict(data))

    @classmethod
    def _convert(cls, name: str, value: Any) -> Any:
        return value


@dataclass
class Token(Model):
    id: int | None = None
    name: str = ""
    token: str = ""
    scopes: list[str] = field(default_factory=list)
    expires_at: str | None = None
    created_at: str | None = None


@dataclass
class Me(Model):
    username: str = ""
    email: str = ""
    roles: list[str] = field(default_factory=list)
    quota: dict[str, Any] = field(default_factory=dict)


@dataclass
class Variant(Model):
    full_name: str = ""
    owner: str = ""
    name: str = ""
    relation: str = ""
    parents: list[str] = field(default_factory=list)
    license: str = ""
    parameters: int | None = None
    precision: str = ""
    task: str = ""
    architecture: str = ""
    tags: list[str] = field(default_factory=list)
    summary: str = ""
    status: str = ""
    current_revision: int | None = None
    created_at: str | None = None
    updated_at: str | None = None


@dataclass
class Artifact(Model):
    id: int | None = None
    path: str = ""
    format: str = ""
    sha256: str = ""
    size_bytes: int = 0
    uri: str = ""
    safe: bool = False
    stored: bool = False


@dataclass
class Revision(Model):
    number: int = 0
    status: str = ""
    artifacts: list[Artifact] = field(default_factory=list)
    created_at: str | None = None
    submitted_at: str | None = None
    allowed_transitions: list[str] = field(default_factory=list)

    @classmethod
    def _convert(cls, name: str, value: Any) -> Any:
        if name == "artifacts":
            return [Artifact.from_api(a) for a in value or []]
        return value


@dataclass
class FileEntry(Model):
    path: str = ""
    size_bytes: int = 0
    sha256: str = ""
    format: str = ""
    stored: bool = False
    uri: str = ""
    download_url: str | None = None


@dataclass
class Upload(Model):
    id: str = ""
    variant: str = ""
    revision: int = 0
    path: str = ""
    format: str = ""
    size_bytes: int = 0
    sha256: str = ""
    offset: int = 0
    status: str = ""
    failure: str = ""
    artifact: int | None = None
    expires_at: str | None = None


@dataclass
class Progress(Model):
    done: int = 0
    total: int = 0
    percent: float = 0.0
    eta_s: float | None = None


@dataclass
class Result(Model):
    metrics: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    verified: bool = False
    duration_s: float | None = None
    runner: str = ""
    runner_version: str = ""


@dataclass
class Job(Model):
    """A benchmark job. `wait()`, `refresh()` and `cancel()` talk to the server it came from."""

    id: int = 0
    variant: str = ""
    revision: int = 0
    benchmark: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    status: str = ""
    progress: Progress = field(default_factory=Progress)
    queue_position: int | None = None
    attempts: int = 0
    submitted_by: str = ""
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    result: Result | None = None
    failure: dict[str, Any] | None = None
    log_tail: str = ""
    _jobs: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def _convert(cls, name: str, value: Any) -> Any:
        if name == "progress":
            return Progress.from_api(value or {})
        if name == "result":
            return Result.from_api(value) if value else None
        return value

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_JOB_STATES

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.result.metrics) if self.result else {}

    def _bound(self) -> Any:
        if self._jobs is None:
            raise RuntimeError("this Job was not read through a Client")
        return self._jobs

    def refresh(self) -> Job:
        job: Job = self._bound().get(self.id)
        return job

    def cancel(self) -> Job:
        job: Job = self._bound().cancel(self.id)
        return job

    def wait(
        self,
        *,
        timeout: float | None = None,
        poll_interval: float = 1.0,
        on_progress: Callable[[Job], None] | None = None,
        raise_on_failure: bool = False,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Job:
        """Poll until the job is terminal and return its final state. `on_progress(job)` is called with each
        state read (queue position, progress, ETA). After `timeout` seconds, raises
        :class:`~.errors.WaitTimeout` (the job goes on). With `raise_on_failure`, a job that ends failed,
        cancelled or timed out raises :class:`~.errors.JobFailed`."""
        from .errors import JobFailed, WaitTimeout

        deadline = None if timeout is None else time.monotonic() + timeout
        job = self
        while True:
            if on_progress is not None:
                on_progress(job)
            if job.terminal:
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(job, float(timeout or 0))
            pause = poll_interval if deadline is None else max(0.0, min(poll_interval, deadline - time.monotonic()))
            sleep(pause)
            job = job.refresh()
        if raise_on_failure and not job.succeeded:
            raise JobFailed(job)
        return job


@dataclass
class LeaderboardRow(Model):
    rank: int = 0
    variant: str = ""
    revision: int = 0
    score: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    verified: bool = False
    delta_vs_parents: dict[str, float | None] = field(default_factory=dict)
    flags: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Leaderboard(Model):
    benchmark: dict[str, Any] = field(default_factory=dict)
    results: list[LeaderboardRow] = field(default_factory=list)
    next: str | None = None

    @classmethod
    def _convert(cls, name: str, value: Any) -> Any:
        if name == "results":
            return [LeaderboardRow.from_api(r) for r in value or []]
        return value


@dataclass
class Review(Model):
    id: int = 0
    reviewer: str = ""
    decision: str = ""
    body: str = ""
    stale: bool = False
    created_at: str | None = None


@dataclass
class ChecklistItem(Model):
    key: str = ""
    title: str = ""
    guidance: str = ""
    required: bool = False
    level: str = ""
    kind: str = ""
    needs_evidence: bool = False
    na_allowed: bool = False
    reviewer_verifies: bool = False
    status: str = ""
    justification: str = ""
    evidence_url: str = ""
    answered_by: str | None = None
    verified_by: str | None = None


@dataclass
class Checklist(Model):
    template: str = ""
    version: int = 0
    level: str = ""
    progress: dict[str, Any] = field(default_factory=dict)
    items: list[ChecklistItem] = field(default_factory=list)

    @classmethod
    def _convert(cls, name: str, value: Any) -> Any:
        if name == "items":
            return [ChecklistItem.from_api(i) for i in value or []]
        return value

    def item(self, key: str) -> ChecklistItem:
        for item in self.items:
            if item.key == key:
                return item
        raise KeyError(key)


@dataclass
class PushedFile(Model):
    """What `push` did with one local file: `uploaded`, `resumed` (from `resumed_from` bytes) or `skipped` (the
    revision already has it, same sha256)."""

    path: str = ""
    local_path: str = ""
    sha256: str = ""
    size_bytes: int = 0
    action: str = ""
    resumed_from: int = 0
    artifact: Artifact | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "local_path": self.local_path,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "action": self.action,
            "resumed_from": self.resumed_from,
            "artifact": self.artifact.raw if self.artifact else None,
        }


@dataclass
class PulledFile(Model):
    """What `pull` did with one file: `downloaded`, `resumed` (from `resumed_from` bytes), `unchanged` (already
    there with the right sha256) or `skipped` (recorded by URI only: no bytes on the platform)."""

    path: str = ""
    local_path: str = ""
    sha256: str = ""
    size_bytes: int = 0
    action: str = ""
    resumed_from: int = 0
    uri: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "local_path": self.local_path,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "action": self.action,
            "resumed_from": self.resumed_from,
            "uri": self.uri,
        }
