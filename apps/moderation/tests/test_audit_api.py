import pytest

from apps.audit.services import audit_record
from apps.core.testing import assert_same_query_count, count_queries

pytestmark = pytest.mark.django_db


def test_audit_is_for_maintainers_only(api, alice, maintainer, client_for):
    audit_record(actor=alice, verb="x", target=("t", 1))
    assert api.get("/api/v1/audit/").status_code == 401
    assert client_for(alice).get("/api/v1/audit/").status_code == 403
    resp = client_for(maintainer).get("/api/v1/audit/")
    assert resp.status_code == 200
    rows = resp.json()["results"]
    assert rows[0]["seq"] > rows[-1]["seq"]  # newest first
    assert {"seq", "actor", "verb", "target_type", "target_id", "before", "after", "hash", "prev_hash"} <= set(rows[0])


def test_audit_filters_and_flat_query_count(alice, maintainer, client_for):
    client = client_for(maintainer)
    audit_record(actor=alice, verb="thing.made", target=("t", 0))
    client.get("/api/v1/me/")  # first use of the token records last_used_at
    with count_queries() as one:
        body = client.get("/api/v1/audit/?verb=thing.made").json()
    assert len(body["results"]) == 1
    for i in range(15):
        audit_record(actor=alice, verb="thing.made", target=("t", i + 1))
    with count_queries() as many:
        body = client.get("/api/v1/audit/?verb=thing.made&page_size=100").json()
    assert len(body["results"]) == 16
    assert_same_query_count(one, many)
    assert client.get("/api/v1/audit/?actor=alice&target_id=3").json()["results"][0]["target_id"] == "3"


def test_a_maintainers_token_reads_the_audit_log_only_with_the_admin_scope(alice, maintainer, api):
    from apps.accounts.services import token_create

    audit_record(actor=alice, verb="x", target=("t", 1))
    for scopes, expected in [(["read"], 403), (["read", "write", "jobs", "review"], 403), (["admin"], 200)]:
        _, raw = token_create(user=maintainer, name="t", scopes=scopes)
        resp = api.get("/api/v1/audit/", HTTP_AUTHORIZATION=f"Bearer {raw}")
        assert resp.status_code == expected, (scopes, resp.content)
    _, raw = token_create(user=maintainer, name="ro", scopes=["read"])
    assert "'admin' scope" in api.get("/api/v1/audit/", HTTP_AUTHORIZATION=f"Bearer {raw}").json()["detail"]
