"""HTTP: token lifecycle, bearer auth, scopes, /me and role management."""

import base64
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import PersonalAccessToken
from apps.accounts.services import token_create
from apps.core.testing import assert_same_query_count, count_queries

pytestmark = pytest.mark.django_db


def basic(username, password="pw-Secret-123"):
    client = APIClient()
    creds = base64.b64encode(f"{username}:{password}".encode()).decode()
    client.credentials(HTTP_AUTHORIZATION=f"Basic {creds}")
    return client


def test_create_token_with_basic_shows_it_once(alice):
    resp = basic("alice").post("/api/v1/auth/tokens/", {"name": "laptop", "scopes": ["read"]}, format="json")
    assert resp.status_code == 201, resp.json()
    body = resp.json()
    assert body["token"].startswith("mc_")
    assert set(body) >= {"id", "name", "token", "scopes", "expires_at", "created_at"}
    assert resp["Cache-Control"] == "no-store"
    listed = basic("alice").get("/api/v1/auth/tokens/").json()
    assert listed["count"] == 1
    assert "token" not in listed["results"][0]
    assert body["token"] not in str(listed)


def test_wrong_password_is_401(alice):
    resp = basic("alice", "nope").post("/api/v1/auth/tokens/", {"name": "x"}, format="json")
    assert resp.status_code == 401


def test_session_login_can_create_token_with_csrf(alice):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(alice)
    resp = client.post("/api/v1/auth/tokens/", {"name": "web"}, format="json")
    assert resp.status_code == 403  # no CSRF token
    assert "CSRF" in resp.json()["detail"]


def test_bearer_token_authenticates_and_records_last_used(alice):
    token, raw = token_create(user=alice, name="x", scopes=["read"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    resp = client.get("/api/v1/me/")
    assert resp.status_code == 200
    body = resp.json()
    assert body["username"] == "alice" and body["roles"] == []
    assert body["quota"]["max_active_jobs"] == 5 and body["quota"]["active_jobs"] == 0
    assert PersonalAccessToken.objects.get(pk=token.pk).last_used_at is not None


@pytest.mark.parametrize("header", ["Bearer mc_doesnotexist", "Bearer notours", "Bearer", "Bearer a b"])
def test_bad_bearer_is_401(api, header):
    resp = api.get("/api/v1/me/", HTTP_AUTHORIZATION=header)
    assert resp.status_code == 401
    assert resp["Content-Type"].startswith("application/problem+json")


def test_revoked_token_is_401(alice, client_for):
    client = client_for(alice)
    token = PersonalAccessToken.objects.get(user=alice)
    assert client.delete(f"/api/v1/auth/tokens/{token.pk}/").status_code == 204
    resp = client.get("/api/v1/me/")
    assert resp.status_code == 401 and "revoked" in resp.json()["detail"]


def test_expired_token_is_401(alice, client_for):
    client = client_for(alice)
    PersonalAccessToken.objects.filter(user=alice).update(expires_at=timezone.now() - timedelta(seconds=1))
    resp = client.get("/api/v1/me/")
    assert resp.status_code == 401 and "expired" in resp.json()["detail"]


def test_out_of_scope_token_is_403(alice, client_for):
    client = client_for(alice, scopes=["read"])
    resp = client.post("/api/v1/jobs/", {"variant": "a/b", "benchmark": "digits"}, format="json")
    assert resp.status_code == 403
    assert "'jobs' scope" in resp.json()["detail"]


def test_token_cannot_mint_tokens(alice, client_for):
    resp = client_for(alice).post("/api/v1/auth/tokens/", {"name": "x"}, format="json")
    assert resp.status_code == 403


def test_cannot_revoke_someone_elses_token(alice, bob, client_for):
    token, _ = token_create(user=bob, name="bob's")
    resp = client_for(alice).delete(f"/api/v1/auth/tokens/{token.pk}/")
    assert resp.status_code == 404
    assert PersonalAccessToken.objects.get(pk=token.pk).revoked_at is None


def test_token_list_query_count_is_flat(alice):
    client = basic("alice")
    token_create(user=alice, name="t0")
    with count_queries() as one:
        assert client.get("/api/v1/auth/tokens/").status_code == 200
    for i in range(12):
        token_create(user=alice, name=f"t{i + 1}")
    with count_queries() as many:
        body = client.get("/api/v1/auth/tokens/?page_size=100").json()
    assert body["count"] == len(body["results"]) == 13
    assert_same_query_count(one, many)


def test_maintainer_grants_roles_and_quota(alice, maintainer, client_for):
    resp = client_for(maintainer).patch(
        "/api/v1/users/alice/", {"roles": ["reviewer"], "max_active_jobs": 9}, format="json"
    )
    assert resp.status_code == 200, resp.json()
    assert resp.json()["roles"] == ["reviewer"] and resp.json()["max_active_jobs"] == 9
    me = client_for(alice).get("/api/v1/me/").json()
    assert me["roles"] == ["reviewer"] and me["quota"]["max_active_jobs"] == 9


def test_contributor_cannot_grant_roles(alice, bob, client_for):
    resp = client_for(alice, scopes=["read", "write", "admin"][:2]).patch(
        "/api/v1/users/bob/", {"roles": ["maintainer"]}, format="json"
    )
    assert resp.status_code == 403


def test_maintainer_token_without_admin_scope_cannot_grant(alice, maintainer):
    _, raw = token_create(user=maintainer, name="ro", scopes=["read", "write"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.patch("/api/v1/users/alice/", {"roles": ["reviewer"]}, format="json").status_code == 403


def test_public_profile_hides_email(alice, bob, client_for):
    body = client_for(bob).get("/api/v1/users/alice/").json()
    assert body["username"] == "alice" and "email" not in body
    assert APIClient().get("/api/v1/users/ghost/").status_code == 404


# --- token management needs a password or a session (issue 12, finding 3) ----------------------------------------


def bearer(raw):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def test_read_only_token_cannot_revoke_the_users_other_tokens(alice):
    _, raw = token_create(user=alice, name="ro", scopes=["read"])
    other, _ = token_create(user=alice, name="ci", scopes=["read", "write", "jobs"])
    resp = bearer(raw).delete(f"/api/v1/auth/tokens/{other.pk}/")
    assert resp.status_code == 403 and resp["Content-Type"].startswith("application/problem+json")
    assert PersonalAccessToken.objects.get(pk=other.pk).revoked_at is None


@pytest.mark.parametrize("scopes", [["read", "write", "jobs", "review"], ["read", "write", "jobs", "review", "admin"]])
def test_no_token_manages_tokens_whatever_its_scopes(maintainer, scopes):
    token, raw = token_create(user=maintainer, name="all", scopes=scopes)
    other, _ = token_create(user=maintainer, name="other", scopes=["read"])
    client = bearer(raw)
    resp = client.post("/api/v1/auth/tokens/", {"name": "minted", "scopes": ["read"]}, format="json")
    assert resp.status_code == 403 and "password" in resp.json()["detail"]
    assert client.delete(f"/api/v1/auth/tokens/{other.pk}/").status_code == 403
    assert PersonalAccessToken.objects.filter(user=maintainer).count() == 2
    assert PersonalAccessToken.objects.get(pk=other.pk).revoked_at is None


def test_a_token_may_revoke_itself(alice):
    token, raw = token_create(user=alice, name="leaked", scopes=["read"])
    assert bearer(raw).delete(f"/api/v1/auth/tokens/{token.pk}/").status_code == 204
    assert PersonalAccessToken.objects.get(pk=token.pk).revoked_at is not None
    assert bearer(raw).get("/api/v1/me/").status_code == 401


def test_password_and_session_manage_tokens(alice, client):
    other, _ = token_create(user=alice, name="old", scopes=["read"])
    assert basic("alice").delete(f"/api/v1/auth/tokens/{other.pk}/").status_code == 204
    assert PersonalAccessToken.objects.get(pk=other.pk).revoked_at is not None
    session = APIClient()
    session.force_login(alice)
    resp = session.post("/api/v1/auth/tokens/", {"name": "web", "scopes": ["read"]}, format="json")
    assert resp.status_code == 201
    assert session.delete(f"/api/v1/auth/tokens/{resp.json()['id']}/").status_code == 204


def test_listing_tokens_and_me_need_the_read_scope(alice):
    _, jobs_only = token_create(user=alice, name="jobs", scopes=["jobs"])
    assert bearer(jobs_only).get("/api/v1/auth/tokens/").status_code == 403
    assert bearer(jobs_only).get("/api/v1/me/").status_code == 403
    _, reader = token_create(user=alice, name="ro", scopes=["read"])
    assert bearer(reader).get("/api/v1/auth/tokens/").json()["count"] == 2
    assert bearer(reader).get("/api/v1/me/").status_code == 200


def test_profile_serializers_build_their_fields_once_and_hand_out_copies(alice, bob):
    from apps.accounts.api.serializers import MeSerializer, UserSerializer, UserStaffSerializer

    one, other = MeSerializer(alice), MeSerializer(bob)
    assert one.fields["username"] is not other.fields["username"]
    assert (one.data["username"], other.data["username"]) == ("alice", "bob")
    assert set(UserSerializer(alice).data) == {"username", "roles", "date_joined"}
    staff = UserStaffSerializer(alice).data
    assert set(staff) == {"username", "email", "roles", "date_joined", "max_active_jobs", "daily_compute_seconds"}
