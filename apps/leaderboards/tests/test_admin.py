"""The admin: maintainers manage suites there (through the services); summary rows are read-only."""

import pytest

from apps.audit.models import AuditEvent
from apps.leaderboards.models import Suite, SuiteScore

from .factories import make_benchmark, make_result, make_variant

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, make_user):
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    return client


def _suite_form(**fields):
    data = {
        "slug": "core",
        "name": "Core",
        "description": "",
        "entries-TOTAL_FORMS": "1",
        "entries-INITIAL_FORMS": "0",
        "entries-MIN_NUM_FORMS": "0",
        "entries-MAX_NUM_FORMS": "1000",
        "entries-0-position": "0",
        "entries-0-metric": "",
        "entries-0-weight": "1",
        "entries-0-baseline": "0",
        "entries-0-best": "1",
    }
    data.update(fields)
    return data


def test_changelists_render(admin_client, maintainer):
    bench = make_benchmark("bench")
    make_result(make_variant(maintainer, "m", actor=maintainer), bench, {"accuracy": 0.5})
    for model in ("suite", "leaderboardentry", "suitescore", "contaminationmark"):
        resp = admin_client.get(f"/admin/leaderboards/{model}/")
        assert resp.status_code == 200, model
    assert admin_client.get("/admin/leaderboards/leaderboardentry/add/").status_code == 403


def test_a_suite_made_in_the_admin_is_scored_and_audited_and_edits_bump_its_version(admin_client, maintainer):
    bench = make_benchmark("bench")
    make_result(make_variant(maintainer, "m", actor=maintainer), bench, {"accuracy": 0.5})
    resp = admin_client.post("/admin/leaderboards/suite/add/", _suite_form(**{"entries-0-benchmark": bench.pk}))
    assert resp.status_code == 302, resp.content[:2000]
    suite = Suite.objects.get(slug="core")
    assert suite.version == 1 and SuiteScore.objects.get(suite=suite).score == 50.0
    entry = suite.entries.get()
    resp = admin_client.post(
        f"/admin/leaderboards/suite/{suite.pk}/change/",
        _suite_form(
            **{
                "entries-INITIAL_FORMS": "1",
                "entries-0-id": entry.pk,
                "entries-0-suite": suite.pk,
                "entries-0-benchmark": bench.pk,
                "entries-0-baseline": "0.25",
            }
        ),
    )
    assert resp.status_code == 302, resp.content[:2000]
    suite.refresh_from_db()
    assert suite.version == 2
    assert SuiteScore.objects.get(suite=suite).score == pytest.approx(100 / 3, abs=1e-3)  # stored to 4 places
    assert list(
        AuditEvent.objects.filter(verb__startswith="suite.").values_list("verb", flat=True).order_by("seq")
    ) == ["suite.create", "suite.update"]
