"""The Django admin as the moderation console, driven through the admin's own views (changelist actions)."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib import admin
from django.test import Client

from apps.audit.models import AuditEvent
from apps.moderation.registration import CONSOLE_APPS
from apps.registry.services import revision_submit
from apps.reviews import services as review_services
from apps.reviews.models import Comment, Flag
from apps.reviews.tests.conftest import approve, succeed_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def console(digits_world):  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(digits_world["users"]["maintainer"])
    return client


@pytest.fixture
def submitted(digits_world, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr("apps.reviews.gate.checklist_gate_unmet", lambda revision: [])
    return revision_submit(revision=digits_world["int8"].current_revision, actor=digits_world["users"]["alice"])


def _act(client, url, action, pks, reason=""):  # type: ignore[no-untyped-def]
    resp = client.post(
        url,
        {"action": action, "_selected_action": [str(pk) for pk in pks], "index": "0", "reason": reason},
        follow=True,
    )
    assert resp.status_code == 200
    return [str(m) for m in resp.context["messages"]]


def test_every_project_model_is_in_the_console():
    missing = [
        m._meta.label
        for label in CONSOLE_APPS
        if label in {c.label for c in apps.get_app_configs()}
        for m in apps.get_app_config(label).get_models()
        if not admin.site.is_registered(m)
    ]
    assert missing == []


def test_every_console_changelist_and_a_detail_page_render(console, digits_world, submitted):
    review_services.comment_create(variant=digits_world["base"], author=digits_world["users"]["bob"], body="hi")
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label not in CONSOLE_APPS:
            continue
        url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        resp = console.get(url)
        assert resp.status_code == 200, (url, resp.status_code)
        search = console.get(url + "?q=digits") if model_admin.search_fields else None
        assert search is None or search.status_code == 200, url
    detail = console.get(f"/admin/registry/revision/{submitted.pk}/change/")
    assert detail.status_code == 200
    body = detail.content.decode()
    assert "digits-mlp-int8.onnx" in body  # artifacts inline
    assert console.get(f"/admin/registry/variant/{digits_world['base'].pk}/change/").status_code == 200


def test_contributors_and_plain_staff_are_kept_out(digits_world, make_user):
    staff = make_user("clerk", is_staff=True)
    client = Client()
    client.force_login(staff)
    assert client.get("/admin/reviews/flag/").status_code == 403
    assert client.get("/admin/moderation/moderationoverview/").status_code == 403
    client.force_login(digits_world["users"]["alice"])
    assert client.get("/admin/reviews/flag/").status_code == 302  # to the admin login


def test_bulk_publish_goes_through_the_gate_and_is_audited(console, digits_world, submitted):
    url = "/admin/registry/revision/"
    refused = _act(console, url, "publish_revisions", [submitted.pk])
    assert any("Needs 2 approvals" in m for m in refused)
    u = digits_world["users"]
    approve(submitted, u["reviewer1"], u["reviewer2"])
    succeed_job(submitted, digits_world["benchmark"], u["alice"])
    done = _act(console, url, "publish_revisions", [submitted.pk], reason="ship")
    assert any("Published 1 of 1" in m for m in done)
    submitted.refresh_from_db()
    assert submitted.status == "published"
    assert AuditEvent.objects.filter(
        verb="revision.published", actor=u["maintainer"], target_id=str(submitted.pk)
    ).exists()
    no_reason = _act(console, url, "unpublish_revisions", [submitted.pk])
    assert any("reason" in m.lower() for m in no_reason)
    submitted.refresh_from_db()
    assert submitted.status == "published"
    _act(console, url, "unpublish_revisions", [submitted.pk], reason="licence check")
    submitted.refresh_from_db()
    assert submitted.status == "unpublished" and submitted.status_reason == "licence check"


def test_bulk_reject_from_the_variant_list(console, digits_world, submitted):
    messages = _act(
        console, "/admin/registry/variant/", "reject_revisions", [digits_world["int8"].pk], reason="not a quantization"
    )
    assert any("Rejected 1 of 1" in m for m in messages)
    submitted.refresh_from_db()
    assert submitted.status == "rejected"


def test_bulk_flag_resolution_and_comment_hiding(console, digits_world):
    u = digits_world["users"]
    flags = [
        review_services.flag_create(
            variant=digits_world["base"], reporter=reporter, kind="spam", evidence_url="https://example.org/spam"
        )
        for reporter in (u["alice"], u["bob"])
    ]
    messages = _act(console, "/admin/reviews/flag/", "flags_dismiss", [f.pk for f in flags], reason="not spam")
    assert any("Dismissed 2 of 2" in m for m in messages)
    assert set(Flag.objects.values_list("status", flat=True)) == {"dismissed"}
    assert AuditEvent.objects.filter(verb="flag.dismiss").count() == 2
    comment = review_services.comment_create(variant=digits_world["base"], author=u["bob"], body="buy now")
    _act(console, "/admin/reviews/comment/", "hide_comments", [comment.pk], reason="spam")
    assert Comment.objects.get(pk=comment.pk).is_hidden


def test_job_cancel_through_the_admin(console, digits_world):
    from apps.benchmarks.services import job_submit

    job, _ = job_submit(
        actor=digits_world["users"]["alice"],
        revision=digits_world["int8"].current_revision,
        benchmark=digits_world["benchmark"],
        config={},
    )
    _act(console, "/admin/benchmarks/benchmarkjob/", "cancel_jobs", [job.pk])
    job.refresh_from_db()
    assert job.status == "cancelled"


def test_queue_overview_page(console, digits_world):
    from apps.benchmarks.services import job_submit

    job_submit(
        actor=digits_world["users"]["alice"],
        revision=digits_world["int8"].current_revision,
        benchmark=digits_world["benchmark"],
        config={},
    )
    resp = console.get("/admin/moderation/moderationoverview/")
    assert resp.status_code == 200
    overview = resp.context["overview"]
    [cpu] = overview["queues"]
    assert cpu["queue"] == "bench.cpu" and cpu["counts"][overview["states"].index("queued")] == 1
    assert cpu["oldest_queued_age_s"] is not None and cpu["failed_24h"] == 0
    assert "Failures in the last 24 hours: 0" in resp.content.decode()
    assert console.get("/admin/").status_code == 200
    assert "moderation overview" in console.get("/admin/").content.decode().lower()
