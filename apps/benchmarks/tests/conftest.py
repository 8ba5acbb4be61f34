"""Fixtures of the engine's tests: a broker stub, test runners by module path, benchmarks and variants."""

from __future__ import annotations

from typing import Any

import pytest

from apps.benchmarks.tests import runners

LONG_CARD = "# A model\n\n" + ("This card explains intended use, limitations, training data and evaluation. " * 5)


@pytest.fixture(autouse=True)
def engine_settings(settings):  # type: ignore[no-untyped-def]
    from workers.runners.registry import forget_runners

    settings.MC_ALLOW_RUNNER_PATHS = True
    settings.MC_SPOT_CHECKS = False
    settings.MC_DISPATCH_BUFFER = 4
    settings.MC_DISPATCH_QUICK_BUFFER = 4
    # Every submission asks for a dispatch (the `sent` stub runs it at once); the coalescing has tests of its own.
    settings.MC_DISPATCH_COALESCE_S = 0
    # The engine's tests drive the pipeline with contributors' noop jobs; in production noop is a maintainers'
    # runner (MC_MAINTAINER_ONLY_RUNNERS), which the tests of that rule set back.
    settings.MC_MAINTAINER_ONLY_RUNNERS = []
    forget_runners()
    yield settings
    forget_runners()


@pytest.fixture(autouse=True)
def chunks() -> list[tuple[list[int], str]]:
    return []


@pytest.fixture(autouse=True)
def sent(monkeypatch, chunks) -> list[tuple[int, str]]:  # type: ignore[no-untyped-def]
    """Unit tests talk to no broker: run_job messages are recorded as (job id, broker queue), and so is each id of a
    chunk (run_jobs); `chunks` records the chunks themselves. A request for a dispatch (after a submission) runs
    the dispatch at once, as the worker receiving it would."""
    from apps.benchmarks import dispatch

    calls: list[tuple[int, str]] = []
    monkeypatch.setattr(dispatch, "send_run_job", lambda job_id, queue: calls.append((job_id, queue)))
    monkeypatch.setattr(
        dispatch,
        "send_run_chunk",
        lambda job_ids, queue: (calls.extend((i, queue) for i in job_ids), chunks.append((list(job_ids), queue))),
    )
    monkeypatch.setattr(
        dispatch, "send_dispatch_request", lambda queue, countdown=0.0: dispatch.jobs_dispatch(queue=queue)
    )
    monkeypatch.setattr(dispatch, "_broker_down_until", [0.0])
    return calls


@pytest.fixture
def make_variant(db):  # type: ignore[no-untyped-def]
    from apps.registry.models import Artifact, Revision, Variant

    def make(
        owner: Any,
        name: str,
        *,
        card: str = LONG_CARD,
        license: str = "apache-2.0",
        artifacts: tuple[tuple[str, str], ...] = (("model.onnx", "onnx"),),
        public: bool = True,
    ) -> Variant:
        variant = Variant.objects.create(
            owner=owner,
            name=name,
            relation="original",
            license=license,
            card=card,
            status="published" if public else "draft",
            is_public=public,
        )
        revision = Revision.objects.create(
            variant=variant, number=1, created_by=owner, status="published" if public else "draft"
        )
        variant.current_revision = revision
        variant.save(update_fields=["current_revision"])
        for path, fmt in artifacts:
            Artifact.objects.create(revision=revision, path=path, sha256="0" * 64, size_bytes=1, format=fmt)
        return variant

    return make


@pytest.fixture
def make_benchmark(maintainer):  # type: ignore[no-untyped-def]
    from apps.benchmarks.services import benchmark_create

    def make(slug: str = "noop", runner: str = "noop", **kw: Any):  # type: ignore[no-untyped-def]
        fields: dict[str, Any] = {
            "name": slug.title(),
            "metrics": [{"name": "ok", "primary": True}],
            "config_schema": {"type": "object"},
            "tolerance": 0.01,
        }
        if runner.startswith(runners.MODULE):
            fields["metrics"] = [{"name": "score", "primary": True}]
        fields.update(kw)
        return benchmark_create(actor=maintainer, slug=slug, runner=runner, **fields)

    return make


@pytest.fixture
def noop(make_benchmark):  # type: ignore[no-untyped-def]
    return make_benchmark()


@pytest.fixture
def alice_variant(alice, make_variant):  # type: ignore[no-untyped-def]
    return make_variant(alice, "alice-model")
