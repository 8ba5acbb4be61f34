"""Issue 12, finding 1 for jobs: a job (detail, list, bundle, log tail, result) is visible iff its revision is, and
queuing a job needs sight of the revision."""

from __future__ import annotations

import pytest

from apps.benchmarks.models import BenchmarkJob
from apps.benchmarks.selectors import job_for_user_or_404, jobs_visible_to
from apps.benchmarks.services import job_submit, jobs_submit_batch
from apps.core.errors import NotFound
from apps.core.testing import count_queries

pytestmark = pytest.mark.django_db


def test_jobs_on_a_newer_draft_are_visible_to_insiders_only(vis_world):
    from django.contrib.auth.models import AnonymousUser

    private, public = vis_world["private_job"].pk, vis_world["public_job"].pk
    for who, user in {"anonymous": AnonymousUser(), **vis_world["users"]}.items():
        insider = who in ("alice", "rev", "maint")
        ids = set(jobs_visible_to(user).values_list("pk", flat=True))
        assert public in ids and (private in ids) is insider, who
        if insider:
            assert job_for_user_or_404(user, private).pk == private
        else:
            with pytest.raises(NotFound):
                job_for_user_or_404(user, private)


def test_a_submitter_who_may_not_see_the_revision_no_longer_sees_the_job(vis_world):
    """Visibility follows the revision, not the submitter: carol's job on a revision taken down is hidden."""
    from apps.registry.services import revision_transition

    carol, maint = vis_world["users"]["carol"], vis_world["users"]["maint"]
    BenchmarkJob.objects.filter(pk=vis_world["public_job"].pk).update(submitted_by=carol)
    assert jobs_visible_to(carol).filter(pk=vis_world["public_job"].pk).exists()
    revision_transition(revision=vis_world["rev1"], target="unpublished", actor=maint, reason="withdrawn licence")
    assert not jobs_visible_to(carol).filter(pk=vis_world["public_job"].pk).exists()


def test_http_job_list_detail_bundle_and_log_tail(vis_world, vis_clients):
    private, public = vis_world["private_job"].pk, vis_world["public_job"].pk
    for role, client in vis_clients.items():
        insider = role in ("owner", "reviewer", "maintainer")
        listed = {j["id"] for j in client.get("/api/v1/jobs/").json()["results"]}
        assert public in listed and (private in listed) is insider, role
        by_variant = {j["id"] for j in client.get("/api/v1/jobs/?variant=alice/vis-pub").json()["results"]}
        assert (private in by_variant) is insider, role
        assert client.get(f"/api/v1/jobs/{private}/").status_code == (200 if insider else 404), role
        assert client.get(f"/api/v1/jobs/{private}/bundle.json").status_code == (200 if insider else 404), role
        assert client.get(f"/api/v1/jobs/{public}/bundle.json").status_code == 200, role
        if not insider:
            assert b"secret log tail" not in client.get("/api/v1/jobs/?variant=alice/vis-pub").content, role


def test_queuing_a_job_needs_sight_of_the_revision(vis_world, vis_clients):
    body = {"variant": "alice/vis-pub", "revision": 2, "benchmark": "vis-bench"}
    refused = vis_clients["other"].post("/api/v1/jobs/", body, format="json")
    missing = vis_clients["other"].post("/api/v1/jobs/", {**body, "revision": 99}, format="json")
    # Indistinguishable from a revision that does not exist.
    assert refused.status_code == missing.status_code == 400
    assert refused.json()["errors"] == {"revision": ["alice/vis-pub has no revision 2."]}
    assert missing.json()["errors"] == {"revision": ["alice/vis-pub has no revision 99."]}
    batch = vis_clients["other"].post("/api/v1/jobs/batch/", {"jobs": [body]}, format="json")
    assert batch.status_code == 400 and "jobs.0.revision" in batch.json()["errors"]
    # Without a revision, "the current one" is the one the user sees: the published revision for carol.
    queued = vis_clients["other"].post(
        "/api/v1/jobs/", {"variant": "alice/vis-pub", "benchmark": "vis-bench"}, format="json"
    )
    assert queued.status_code == 201 and queued.json()["revision"] == 1
    own = vis_clients["owner"].post(
        "/api/v1/jobs/", {"variant": "alice/vis-pub", "benchmark": "vis-bench"}, format="json"
    )
    assert own.status_code in (200, 201) and own.json()["revision"] == 2


def test_the_submission_services_refuse_a_revision_the_actor_may_not_see(vis_world):
    carol = vis_world["users"]["carol"]
    with pytest.raises(NotFound):
        job_submit(actor=carol, revision=vis_world["rev2"], benchmark=vis_world["benchmark"], config={})
    with pytest.raises(NotFound):
        jobs_submit_batch(actor=carol, items=[(vis_world["rev2"], vis_world["benchmark"], {})])
    assert not BenchmarkJob.objects.filter(submitted_by=carol).exists()


def test_job_list_query_count_is_flat(vis_world, vis_clients):
    for _ in range(10):
        BenchmarkJob.objects.create(
            revision=vis_world["rev1"],
            benchmark=vis_world["benchmark"],
            benchmark_version="1",
            config={},
            config_hash="x",
            submitted_by=vis_world["users"]["alice"],
            status="cancelled",
        )
    for role in ("anonymous", "other", "owner"):
        client = vis_clients[role]
        client.get("/api/v1/jobs/?page_size=1")
        counts = {}
        for size in (1, 10):
            with count_queries() as ctx:
                body = client.get(f"/api/v1/jobs/?page_size={size}").json()
            assert len(body["results"]) == size
            counts[size] = len(ctx)
        assert counts[1] == counts[10], (role, counts)


def test_the_bundle_of_a_published_result_declares_the_published_precision(vis_world, vis_clients):
    """The draft changed the precision to int8: the published result was measured on fp16 and says so."""
    bundle = vis_clients["anonymous"].get(f"/api/v1/jobs/{vis_world['public_job'].pk}/bundle.json").json()
    assert bundle["precision"] == bundle["dtype"] == "fp16"
    own = vis_clients["owner"].get(f"/api/v1/jobs/{vis_world['private_job'].pk}/bundle.json").json()
    assert own["precision"] == "int8"
