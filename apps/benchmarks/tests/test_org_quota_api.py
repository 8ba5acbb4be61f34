"""An organization's quota over HTTP (issue 14): maintainers set it with PATCH /api/v1/orgs/{org}/ (403 for everyone
else, 400 with field messages for bad values), GET shows it and its use to members and maintainers only, at a pinned
query count that does not grow with the jobs, and the console sets it through the same service."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.audit.models import AuditEvent
from apps.benchmarks import services
from apps.benchmarks.models import BenchmarkJob
from apps.core.testing import assert_same_query_count, count_queries, token_auth_queries
from apps.orgs.models import Organization
from apps.orgs.tests.factories import add_member, make_org

pytestmark = pytest.mark.django_db
ORG = "/api/v1/orgs/harbour-lab/"
#: GET /api/v1/orgs/{org}/ for a member, quota included: the token, the org with its counts and the reader's role,
#: and the usage (jobs queued or running and compute seconds of the rolling day, in one aggregate).
DETAIL_QUERIES = 2 + token_auth_queries(roles=False)


def problem(response, status, field=None):  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json", response.content
    body = response.json()
    assert body["status"] == status and body["title"] and body["type"]
    if field is not None:
        assert body["errors"][field], body
    return body


@pytest.fixture
def world(alice, bob, make_user, maintainer, client_for, api, make_variant):  # type: ignore[no-untyped-def]
    """harbour-lab: alice admin, bob member, its variant lab-model; carol is an outsider."""
    org = make_org(alice, "harbour-lab")
    add_member(org, bob, by=alice)
    carol = make_user("carol")
    return {
        "org": org,
        "variant": make_variant(org.account, "lab-model"),
        "anonymous": api,
        "admin": client_for(alice),
        "member": client_for(bob),
        "outsider": client_for(carol),
        "maintainer": client_for(maintainer),
        "users": {"alice": alice, "bob": bob, "carol": carol, "maintainer": maintainer},
    }


@pytest.mark.parametrize(
    ("who", "status"), [("anonymous", 401), ("outsider", 403), ("member", 403), ("admin", 403), ("maintainer", 200)]
)
def test_only_maintainers_set_an_orgs_quota(world, who, status):
    response = world[who].patch(ORG, {"max_queued_jobs": 7, "daily_compute_seconds": 600}, format="json")
    org = Organization.objects.get(name="harbour-lab")
    if status == 200:
        assert response.status_code == 200, response.content
        assert response.json()["quota"] | {"queued_or_running": None, "compute_seconds_used": None} == {
            "max_queued_jobs": 7,
            "daily_compute_seconds": 600,
            "queued_or_running": None,
            "compute_seconds_used": None,
        }
        assert (org.max_queued_jobs, org.daily_compute_seconds) == (7, 600)
        event = AuditEvent.objects.get(verb="org.quota")
        assert event.after == {"max_queued_jobs": 7, "daily_compute_seconds": 600}
        return
    if who == "anonymous":
        assert response.status_code == 401
    else:
        problem(response, 403)
    assert (org.max_queued_jobs, org.daily_compute_seconds) == (None, None)
    assert not AuditEvent.objects.filter(verb="org.quota").exists()


def test_an_admin_mixing_profile_and_quota_changes_nothing(world):
    problem(world["admin"].patch(ORG, {"description": "x", "max_queued_jobs": 100}, format="json"), 403)
    assert Organization.objects.get(name="harbour-lab").description == ""
    # the profile alone is still the admin's
    assert world["admin"].patch(ORG, {"description": "x"}, format="json").status_code == 200


def test_a_maintainer_resets_to_the_platform_default(world, settings):
    settings.MC_ORG_MAX_QUEUED_JOBS = 9
    maintainer = world["maintainer"]
    assert maintainer.patch(ORG, {"max_queued_jobs": 3}, format="json").json()["quota"]["max_queued_jobs"] == 3
    reset = maintainer.patch(ORG, {"max_queued_jobs": None}, format="json")
    assert reset.status_code == 200 and reset.json()["quota"]["max_queued_jobs"] == 9
    assert Organization.objects.get(name="harbour-lab").max_queued_jobs is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"max_queued_jobs": -1}, "max_queued_jobs"),
        ({"max_queued_jobs": "many"}, "max_queued_jobs"),
        ({"max_queued_jobs": 10**6}, "max_queued_jobs"),
        ({"max_queued_jobs": 2.5}, "max_queued_jobs"),
        ({"daily_compute_seconds": -5}, "daily_compute_seconds"),
        ({"daily_compute_seconds": 10**9}, "daily_compute_seconds"),
        ({"daily_compute_seconds": [1]}, "daily_compute_seconds"),
    ],
)
def test_bad_quota_values_are_problems_with_field_messages(world, body, field):
    problem(world["maintainer"].patch(ORG, body, format="json"), 400, field)
    assert not AuditEvent.objects.filter(verb="org.quota").exists()


def test_the_quota_is_shown_to_members_and_maintainers_only(world, noop, settings):
    settings.MC_ORG_MAX_QUEUED_JOBS = 20
    settings.MC_ORG_DAILY_COMPUTE_SECONDS = 14400
    bob, carol = world["users"]["bob"], world["users"]["carol"]
    revision = world["variant"].current_revision
    services.job_submit(actor=bob, revision=revision, benchmark=noop, config={"steps": 1})
    services.job_submit(actor=carol, revision=revision, benchmark=noop, config={"steps": 2})  # carol pays herself
    done, _ = services.job_submit(actor=bob, revision=revision, benchmark=noop, config={"steps": 3})
    BenchmarkJob.objects.filter(pk=done.pk).update(
        status="succeeded", finished_at=done.created_at, compute_seconds=12.5
    )
    for who in ("admin", "member", "maintainer"):
        assert world[who].get(ORG).json()["quota"] == {
            "max_queued_jobs": 20,
            "daily_compute_seconds": 14400,
            "queued_or_running": 1,
            "compute_seconds_used": 12.5,
        }, who
    for who in ("anonymous", "outsider"):
        assert world[who].get(ORG).json()["quota"] is None, who
    # lists stay as they were: no quota there
    assert "quota" not in world["member"].get("/api/v1/orgs/").json()["results"][0]


def test_the_detail_costs_a_pinned_number_of_queries_however_many_jobs(world, noop, make_user, client_for):
    member = world["member"]
    member.get("/api/v1/me/")  # a token's first use writes last_used_at: not part of the detail's cost
    with count_queries() as one:
        assert member.get(ORG).json()["quota"]["queued_or_running"] == 0
    revision = world["variant"].current_revision
    for i in range(12):
        crew = make_user(f"crew{i}")
        add_member(world["org"], crew, by=world["users"]["alice"])
        services.job_submit(actor=crew, revision=revision, benchmark=noop, config={"steps": i + 1})
    with count_queries() as many:
        assert member.get(ORG).json()["quota"]["queued_or_running"] == 12
    assert_same_query_count(one, many)
    assert len(many) == DETAIL_QUERIES, [q["sql"] for q in many.captured_queries]


# --- the console ---------------------------------------------------------------------------------------------


@pytest.fixture
def console(maintainer):  # type: ignore[no-untyped-def]
    maintainer.is_staff = True
    maintainer.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(maintainer)
    return client


def _set_quota(client, pks, **fields):  # type: ignore[no-untyped-def]
    data = {"action": "set_quota", "_selected_action": [str(pk) for pk in pks], "index": "0", **fields}
    response = client.post("/admin/orgs/organization/", data, follow=True)
    assert response.status_code == 200
    return [str(m) for m in response.context["messages"]]


def test_the_console_sets_quotas_through_the_service(world, console):
    org = world["org"]
    other = make_org(world["users"]["carol"], "other-lab")
    messages = _set_quota(console, [org.pk, other.pk], max_queued_jobs="4", daily_compute_seconds="default")
    assert any("Set the quota of 2 of 2" in m for m in messages), messages
    assert Organization.objects.get(pk=org.pk).max_queued_jobs == 4
    assert AuditEvent.objects.filter(verb="org.quota").count() == 2
    messages = _set_quota(console, [org.pk], max_queued_jobs="lots")
    assert any("not a whole number" in m for m in messages), messages
    messages = _set_quota(console, [org.pk], max_queued_jobs="999999999")
    assert any("Refused" in m and "max_queued_jobs" in m for m in messages), messages
    assert Organization.objects.get(pk=org.pk).max_queued_jobs == 4
    page = console.get("/admin/orgs/organization/")
    assert b"Max queued jobs" in page.content
