"""Fixtures for the review workflow: the demo world, alice's submitted int8 revision, reviewers, a succeeded job."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def world(digits_world, make_user):  # type: ignore[no-untyped-def]
    users = digits_world["users"]
    users["reviewer3"] = make_user("reviewer3", roles=("reviewer",))
    for user in users.values():
        if not user.email:
            user.email = f"{user.username}@example.org"
            user.save(update_fields=["email"])
    return digits_world


@pytest.fixture
def checklist_met(monkeypatch):  # type: ignore[no-untyped-def]
    """Service-level tests isolate the gate from the checklist app: its verdict is set per test."""
    unmet: list[str] = []
    monkeypatch.setattr("apps.reviews.gate.checklist_gate_unmet", lambda revision: list(unmet))
    return unmet


def submit(revision: Any, actor: Any) -> Any:
    from apps.registry.services import revision_submit

    return revision_submit(revision=revision, actor=actor)


@pytest.fixture
def submitted(world, checklist_met):  # type: ignore[no-untyped-def]
    """alice/digits-mlp-int8 revision 1, submitted by alice."""
    revision = world["int8"].current_revision
    return submit(revision, world["users"]["alice"])


def succeed_job(revision: Any, benchmark: Any, user: Any) -> Any:
    """Run a job through the engine's own services (submit, claim, complete), as a worker would."""
    from apps.benchmarks.services import job_claim, job_complete, job_submit
    from workers.runners.base import RunResult

    job, _ = job_submit(actor=user, revision=revision, benchmark=benchmark, config={"limit": 10})
    claimed = job_claim(job_id=job.pk, worker="test-worker")
    assert claimed is not None
    done = job_complete(
        job_id=job.pk,
        attempt=claimed.attempts,
        result=RunResult(
            metrics={"accuracy": 0.97},
            stderr={},
            samples=10,
            duration_s=0.1,
            runner="onnx-classification",
            runner_version="1",
            environment={"python": "3.11"},
        ),
    )
    assert done is not None and done.status == "succeeded"
    return done


def approve(revision: Any, *reviewers: Any) -> None:
    from apps.reviews.services import review_submit

    for reviewer in reviewers:
        review_submit(revision=revision, reviewer=reviewer, decision="approve", body="LGTM")
        revision.refresh_from_db()
