"""A small world for visibility tests (findings 1 and 2 of issue 12, the authorization matrix).

- `commons/vis-base`, `commons/vis-other-base`: published originals.
- `alice/vis-draft`: never published; revision 1 is a draft, with a job (a private job).
- `alice/vis-pub`: revision 1 published (licence apache-2.0, the public card, parent vis-base, a verified
  result); revision 2 is a newer draft in which alice changed the licence to mit, the card, the summary and the
  parents (vis-other-base), with a succeeded, verified job of its own (a private job).
- A comment and a flag on `alice/vis-pub`.

Users: alice (owner), carol (another contributor), rev (reviewer), maint (maintainer)."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

SECRET_CARD = (
    "# Secret draft card\n\nUNREVIEWED-DRAFT-TEXT. This card was written after publication and nobody has "
    "reviewed it yet.\n\n## Intended use\nTests.\n\n## Limitations\nMany.\n\n## Training data\nNone.\n\n"
    "## Evaluation\nNone.\n"
)
SECRET_SUMMARY = "unreviewed draft summary"

#: The roles a visibility test asks as, and the world's user of each (anonymous has none).
ROLE_USERS = {"other": "carol", "owner": "alice", "reviewer": "rev", "maintainer": "maint"}


def role_clients(world: dict[str, Any]) -> dict[str, Any]:
    """An API client per role: anonymous, and one signed in as each of ROLE_USERS."""
    from rest_framework.test import APIClient

    out = {"anonymous": APIClient()}
    for role, name in ROLE_USERS.items():
        out[role] = APIClient()
        out[role].force_login(world["users"][name])
    return out


def _job(revision: Any, benchmark: Any, user: Any, *, succeeded: bool, metric: float) -> Any:
    from apps.benchmarks.models import BenchmarkJob, JobResult

    now = timezone.now()
    job = BenchmarkJob.objects.create(
        revision=revision,
        benchmark=benchmark,
        benchmark_version=benchmark.version,
        config={},
        config_hash=f"vis-{revision.pk}",
        submitted_by=user,
        queued_at=now,
        status="succeeded" if succeeded else "queued",
        attempts=1 if succeeded else 0,
        started_at=now if succeeded else None,
        finished_at=now if succeeded else None,
        log_tail=("secret log tail" if revision.status != "published" else "public log tail") if succeeded else "",
    )
    if succeeded:
        JobResult.objects.create(
            job=job,
            attempt=1,
            metrics={"ok": metric},
            runner="noop",
            runner_version="1",
            verified=True,
            verification_status="verified",
        )
    return job


def build_world() -> dict[str, Any]:
    from apps.accounts.services import user_set_roles
    from apps.benchmarks.models import Benchmark
    from apps.registry.services import revision_create, variant_update
    from apps.registry.tests.factories import make_original, make_variant, publish_current, record
    from apps.reviews.models import Comment, Flag
    from tests.factories import UserFactory

    alice = UserFactory(username="alice")
    carol = UserFactory(username="carol")
    rev = UserFactory(username="rev")
    maint = UserFactory(username="maint")
    user_set_roles(user=rev, roles=["reviewer"], actor=None)
    user_set_roles(user=maint, roles=["maintainer"], actor=None)

    base = make_original(maint, "vis-base")
    other_base = make_original(maint, "vis-other-base")

    draft = make_variant(alice, "vis-draft", [base], summary="draft summary")
    record(draft, alice)
    record(draft, alice, path="model.onnx")

    pub = make_variant(alice, "vis-pub", [base], summary="public summary", precision="fp16")
    record(pub, alice)
    record(pub, alice, path="model.onnx")
    publish_current(pub, maint)
    pub.refresh_from_db()
    rev1 = pub.current_revision
    rev2 = revision_create(variant=pub, actor=alice)
    pub = variant_update(
        variant=pub,
        actor=alice,
        license="mit",
        card=SECRET_CARD,
        summary=SECRET_SUMMARY,
        precision="int8",
        parents=[other_base.full_name],
    )

    benchmark = Benchmark.objects.create(
        slug="vis-bench",
        name="Vis bench",
        runner="onnx-classification",
        metrics=[{"name": "ok", "higher_is_better": True, "primary": True}],
    )
    public_job = _job(rev1, benchmark, alice, succeeded=True, metric=0.5)
    private_job = _job(rev2, benchmark, alice, succeeded=True, metric=0.9)
    draft_job = _job(draft.current_revision, benchmark, alice, succeeded=False, metric=0)

    comment = Comment.objects.create(variant=pub, author=carol, body="Nice model")
    flag = Flag.objects.create(variant=pub, revision=rev1, reporter=carol, kind="spam", description="spam?")
    return {
        "users": {"alice": alice, "carol": carol, "rev": rev, "maint": maint},
        "base": base,
        "other_base": other_base,
        "draft": draft,
        "pub": pub,
        "rev1": rev1,
        "rev2": rev2,
        "benchmark": benchmark,
        "public_job": public_job,
        "private_job": private_job,
        "draft_job": draft_job,
        "comment": comment,
        "flag": flag,
    }


# Fixtures (tests.visibility_world is a plugin of the root conftest): the world, and a client per role in it.
@pytest.fixture
def vis_world(db: Any) -> dict[str, Any]:
    return build_world()


@pytest.fixture
def vis_clients(vis_world: dict[str, Any]) -> dict[str, Any]:
    return role_clients(vis_world)
