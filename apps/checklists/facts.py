"""What detectives and the openness class read about a revision, loaded lazily and at most once per evaluation."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from apps.registry.models import Artifact, Revision, Variant
from apps.registry.selectors import revision_declared


@dataclass(frozen=True)
class JobFact:
    id: int
    status: str
    benchmark: str
    failure_reason: str
    is_verification: bool
    has_result: bool
    verified: bool
    verification_status: str


def _job_result_has(field: str) -> bool:
    from apps.benchmarks.models import JobResult

    try:
        JobResult._meta.get_field(field)
    except Exception:  # noqa: BLE001 - FieldDoesNotExist: an older engine without verification statuses
        return False
    return True


def _jobs_of(revision_ids: list[int]) -> Iterable[tuple[int, JobFact]]:
    from apps.benchmarks.models import BenchmarkJob

    with_status = _job_result_has("verification_status")
    fields = [
        "id",
        "revision_id",
        "status",
        "benchmark__slug",
        "failure_reason",
        "verifies_id",
        "result__id",
        "result__verified",
    ]
    if with_status:
        fields.append("result__verification_status")
    rows = BenchmarkJob.objects.filter(revision_id__in=revision_ids).order_by("id").values(*fields)
    for row in rows:
        yield (
            row["revision_id"],
            JobFact(
                id=row["id"],
                status=row["status"],
                benchmark=row["benchmark__slug"],
                failure_reason=row["failure_reason"] or "",
                is_verification=row["verifies_id"] is not None,
                has_result=row["result__id"] is not None,
                verified=bool(row["result__verified"]),
                verification_status=str(row.get("result__verification_status") or ""),
            ),
        )


def _artifacts_of(revision_ids: list[int]) -> Iterable[tuple[int, Artifact]]:
    for artifact in Artifact.objects.filter(revision_id__in=revision_ids).order_by("path"):
        yield artifact.revision_id, artifact


def _components_of(revision_ids: list[int]) -> Iterable[tuple[int, Any]]:
    from .models import RevisionComponent

    for component in RevisionComponent.objects.filter(revision_id__in=revision_ids):
        yield component.revision_id, component


# The list-valued facts, by property name, and how to read them for several revisions in one query.
LIST_FACTS: dict[str, Callable[[list[int]], Iterable[tuple[int, Any]]]] = {
    "jobs": _jobs_of,
    "artifacts": _artifacts_of,
    "components": _components_of,
}


class RevisionFacts:
    """The inputs of one evaluation. Each property costs at most one query, the first time it is read; for
    several revisions, `prefetch` reads a list-valued fact of them all in one query."""

    def __init__(self, revision: Revision):
        self.revision = revision

    @classmethod
    def load(cls, revision_id: int) -> RevisionFacts:
        return cls(Revision.objects.select_related("variant__owner").get(pk=revision_id))

    @staticmethod
    def prefetch(facts: Iterable[RevisionFacts], names: Iterable[str]) -> None:
        """Read the named list-valued facts (`jobs`, `artifacts`, `components`) of these revisions with one query
        per name, for those that have not read them yet."""
        facts = list(facts)
        for name in names:
            pending = {f.revision.pk: f for f in facts if name not in f.__dict__}
            if not pending:
                continue
            found: dict[int, list[Any]] = {pk: [] for pk in pending}
            for revision_id, value in LIST_FACTS[name](list(pending)):
                found[revision_id].append(value)
            for pk, f in pending.items():
                f.__dict__[name] = found[pk]  # what the cached_property would have stored

    def _list_fact(self, name: str) -> list[Any]:
        return [value for _, value in LIST_FACTS[name]([self.revision.pk])]

    @property
    def variant(self) -> Variant:
        return self.revision.variant

    def _declared(self, field: str) -> Any:
        """A field of the variant as this revision declares it.

        The registry snapshots the variant's metadata and card into `Revision.metadata` at submission (what
        reviewers judge); a draft, or a revision submitted before snapshots existed, reads the live variant."""
        return revision_declared(self.revision, field)

    @property
    def license_id(self) -> str:
        return str(self._declared("license") or "").strip()

    @property
    def card(self) -> str:
        return str(self._declared("card") or "")

    @property
    def license_compat(self) -> dict[str, Any]:
        compat = self._declared("license_compat")
        return compat if isinstance(compat, dict) else {}

    @property
    def relation(self) -> str:
        return str(self._declared("relation"))

    @property
    def declared_parameters(self) -> int | None:
        value = self._declared("parameters")
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None

    @property
    def declared_precision(self) -> str:
        return str(self._declared("precision") or "")

    @cached_property
    def parent_names(self) -> list[str]:
        snapshot = self.revision.metadata if isinstance(getattr(self.revision, "metadata", None), dict) else {}
        if isinstance(snapshot.get("parents"), list):
            return [str(p) for p in snapshot["parents"]]
        return [link.parent.full_name for link in self.variant.parent_links.select_related("parent__owner").all()]

    @cached_property
    def artifacts(self) -> list[Artifact]:
        return self._list_fact("artifacts")

    @cached_property
    def jobs(self) -> list[JobFact]:
        return self._list_fact("jobs")

    @cached_property
    def components(self) -> list[Any]:
        return self._list_fact("components")
