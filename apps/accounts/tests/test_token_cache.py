"""The shared token cache (apps/accounts/token_cache.py): a cached token is refused on the very next request after
whatever would refuse it in the database (revocation, deletion, deactivation, expiry), roles follow their changes,
an entry written by a reader that raced a revocation is rejected, and the database cache keeps the database lookup."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts import token_cache
from apps.accounts.authentication import hash_token
from apps.accounts.choices import ROLE_GROUPS, Role
from apps.accounts.models import PersonalAccessToken, User
from apps.accounts.services import token_create, token_revoke, user_admin_update, user_set_quota, user_set_roles
from apps.core.testing import count_queries

pytestmark = pytest.mark.django_db


@pytest.fixture
def redis_cache():
    cache = token_cache.shared_cache()
    if cache is None:
        pytest.skip("the token cache needs the Redis cache (REDIS_URL)")
    return cache


def bearer(raw):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def warm(client):
    """A miss writes the entry (the token's first sighting too): the next request is a hit."""
    assert client.get("/api/v1/me/").status_code == 200


def cached(cache, raw):
    return token_cache.lookup(cache, hash_token(raw))[1]


@pytest.fixture
def alice_token(alice, redis_cache):
    token, raw = token_create(user=alice, name="t", scopes=["read", "write"])
    client = bearer(raw)
    warm(client)
    assert cached(redis_cache, raw) is not None
    return token, raw, client


def test_a_warm_authenticated_get_makes_no_query_for_the_token_or_the_roles(alice_token, django_assert_num_queries):
    _, _, client = alice_token
    with django_assert_num_queries(1):  # the quota's usage (apps.benchmarks), nothing for the token or the roles
        body = client.get("/api/v1/me/").json()
    assert body["username"] == "alice" and body["roles"] == []


def test_a_tokens_first_use_fills_the_cache(alice, redis_cache, django_assert_num_queries):
    _, raw = token_create(user=alice, name="t", scopes=["read"])
    assert cached(redis_cache, raw) is None
    client = bearer(raw)
    assert client.get("/api/v1/me/").status_code == 200
    assert cached(redis_cache, raw) is not None
    with django_assert_num_queries(1):
        assert client.get("/api/v1/me/").status_code == 200


def test_the_entry_holds_no_password_hash(alice, alice_token, redis_cache):
    _, raw, _ = alice_token
    token = cached(redis_cache, raw)
    assert token.user.pk == alice.pk and token.user.username == "alice"
    assert "password" in token.user.get_deferred_fields()
    blob = redis_cache.raw_client().hget(token_cache._keys(redis_cache, hash_token(raw))[1], "data")
    assert alice.password.encode() not in blob


def test_a_revoked_token_is_refused_on_the_next_request(alice_token):
    token, _, client = alice_token
    assert client.delete(f"/api/v1/auth/tokens/{token.pk}/").status_code == 204
    resp = client.get("/api/v1/me/")
    assert resp.status_code == 401 and "revoked" in resp.json()["detail"]


@pytest.mark.parametrize(
    "how, detail",
    [("maintainer", "revoked"), ("delete", "Invalid token."), ("bulk-revoke", "revoked"), ("bulk-expire", "expired")],
)
def test_revoked_by_a_maintainer_deleted_or_updated_in_bulk(alice_token, maintainer, how, detail):
    token, _, client = alice_token
    tokens = PersonalAccessToken.objects.filter(pk=token.pk)
    if how == "maintainer":
        token_revoke(token=token, actor=maintainer)
    elif how == "delete":
        token.delete()
    elif how == "bulk-revoke":
        tokens.update(revoked_at=timezone.now())
    else:
        tokens.update(expires_at=timezone.now() - timedelta(seconds=1))
    resp = client.get("/api/v1/me/")
    assert resp.status_code == 401 and detail in resp.json()["detail"]


def test_expiry_is_checked_on_every_hit(alice_token, monkeypatch):
    token, _, client = alice_token
    later = token.expires_at + timedelta(seconds=1)
    monkeypatch.setattr(timezone, "now", lambda: later)
    resp = client.get("/api/v1/me/")
    assert resp.status_code == 401 and "expired" in resp.json()["detail"]


@pytest.mark.parametrize("how", ["save", "admin", "bulk"])
def test_a_deactivated_user_is_refused_on_the_next_request(alice, alice_token, make_user, how):
    _, _, client = alice_token
    if how == "save":
        alice.is_active = False
        alice.save()
    elif how == "bulk":  # a queryset update sends no post_save: UserQuerySet.update refuses the entries itself
        assert User.objects.filter(username__in=["alice", "nobody-else"]).update(is_active=False) == 1
    else:
        user_admin_update(user=alice, actor=make_user("root", is_superuser=True), changes={"is_active": False})
    resp = client.get("/api/v1/me/")
    assert resp.status_code == 401 and "inactive" in resp.json()["detail"]


def test_a_bulk_last_login_stamp_keeps_the_entry(alice, alice_token, redis_cache):
    _, raw, client = alice_token
    User.objects.filter(pk=alice.pk).update(last_login=timezone.now())
    assert cached(redis_cache, raw) is not None and client.get("/api/v1/me/").status_code == 200


def test_a_deleted_user_is_refused(alice, alice_token):
    _, _, client = alice_token
    alice.delete()
    assert client.get("/api/v1/me/").status_code == 401


def test_roles_follow_grants_and_removals(alice, alice_token, maintainer):
    _, _, client = alice_token
    user_set_roles(user=alice, roles=[Role.REVIEWER], actor=maintainer)
    assert client.get("/api/v1/me/").json()["roles"] == ["reviewer"]
    warm(client)
    user_set_roles(user=alice, roles=[], actor=maintainer)
    assert client.get("/api/v1/me/").json()["roles"] == []
    warm(client)
    alice.is_superuser = True
    alice.save()
    assert client.get("/api/v1/me/").json()["roles"] == ["admin"]


def test_roles_follow_changes_made_from_the_groups_side(alice, alice_token):
    _, _, client = alice_token
    group, _ = Group.objects.get_or_create(name=ROLE_GROUPS[Role.REVIEWER])
    group.user_set.add(alice)
    assert client.get("/api/v1/me/").json()["roles"] == ["reviewer"]
    warm(client)
    group.user_set.clear()
    assert client.get("/api/v1/me/").json()["roles"] == []
    alice.groups.add(group)
    warm(client)
    assert client.get("/api/v1/me/").json()["roles"] == ["reviewer"]
    group.delete()
    assert client.get("/api/v1/me/").json()["roles"] == []


def test_quota_overrides_show_on_the_next_request(alice, alice_token, maintainer):
    _, _, client = alice_token
    user_set_quota(user=alice, actor=maintainer, max_active_jobs=9)
    assert client.get("/api/v1/me/").json()["quota"]["max_active_jobs"] == 9


def test_an_entry_written_by_a_reader_that_raced_a_revocation_is_rejected(alice, alice_token, maintainer):
    token, raw, client = alice_token
    cache = token_cache.shared_cache()
    token_hash = hash_token(raw)
    # A reader reads the generation, then the database (the token still live)...
    gen, _ = token_cache.lookup(cache, token_hash)
    stale = PersonalAccessToken.objects.select_related("user").get(pk=token.pk)
    stale.user._mc_roles = []
    # ... the token is revoked (the generation bumped) ...
    token_revoke(token=token, actor=maintainer)
    # ... and the reader writes what it read, with the generation it saw first.
    token_cache.store(cache, token_hash, gen, stale)
    assert token_cache.lookup(cache, token_hash)[1] is None
    resp = client.get("/api/v1/me/")
    assert resp.status_code == 401 and "revoked" in resp.json()["detail"]


def test_an_entry_written_before_the_revocation_committed_is_rejected_after_the_commit(
    alice, alice_token, maintainer, django_capture_on_commit_callbacks
):
    token, raw, client = alice_token
    cache = token_cache.shared_cache()
    token_hash = hash_token(raw)
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            token_revoke(token=token, actor=maintainer)
            # Another process reads between the revocation's first bump and its commit: it still sees the live
            # row (not committed yet), with the generation after the bump.
            gen, _ = token_cache.lookup(cache, token_hash)
            stale = PersonalAccessToken.objects.select_related("user").get(pk=token.pk)
            stale.revoked_at = None
            stale.user._mc_roles = []
            token_cache.store(cache, token_hash, gen, stale)
            assert token_cache.lookup(cache, token_hash)[1] is not None
    # The commit bumps again.
    assert token_cache.lookup(cache, token_hash)[1] is None
    assert client.get("/api/v1/me/").status_code == 401


def test_a_vanished_generation_matches_no_entry(alice, alice_token, redis_cache):
    _, raw, client = alice_token
    redis_cache.raw_client().delete(token_cache._gen_key(redis_cache, alice.pk))
    assert cached(redis_cache, raw) is None
    assert client.get("/api/v1/me/").status_code == 200


def test_last_used_is_written_once_a_minute_from_the_cached_value(alice_token, monkeypatch, django_assert_num_queries):
    token, raw, client = alice_token
    first = PersonalAccessToken.objects.get(pk=token.pk).last_used_at
    assert first is not None
    later = first + timedelta(minutes=2)
    monkeypatch.setattr(timezone, "now", lambda: later)
    with django_assert_num_queries(2):  # the stamp and the quota
        assert client.get("/api/v1/me/").status_code == 200
    assert PersonalAccessToken.objects.get(pk=token.pk).last_used_at == later
    with django_assert_num_queries(1):  # the refreshed entry carries the stamp
        assert client.get("/api/v1/me/").status_code == 200


def test_the_database_cache_keeps_the_database_lookup(alice, settings, tmp_path):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(tmp_path)}
    }
    assert token_cache.shared_cache() is None
    token, raw = token_create(user=alice, name="t", scopes=["read"])
    client = bearer(raw)
    warm(client)
    with count_queries() as queries:
        assert client.get("/api/v1/me/").status_code == 200
    sql = " ".join(q["sql"] for q in queries.captured_queries)
    assert len(queries.captured_queries) == 3 and "accounts_personalaccesstoken" in sql and "auth_group" in sql
    token_revoke(token=token, actor=alice)
    assert client.get("/api/v1/me/").status_code == 401


def test_an_unknown_token_is_not_cached(redis_cache):
    raw = "mc_" + "x" * 43
    assert bearer(raw).get("/api/v1/me/").status_code == 401
    assert redis_cache.raw_client().exists(*token_cache._keys(redis_cache, hash_token(raw))) == 0


def test_users_are_rebuilt_with_every_field_but_the_password(alice, alice_token, redis_cache):
    _, raw, _ = alice_token
    user = cached(redis_cache, raw).user
    fresh = User.objects.get(pk=alice.pk)
    for field in User._meta.concrete_fields:
        if field.attname != "password":
            assert getattr(user, field.attname) == getattr(fresh, field.attname), field.attname


def test_a_revocation_between_a_first_sightings_reads_is_seen(alice, maintainer, redis_cache, monkeypatch):
    """On its first sighting the token was read before any generation: a revocation that lands between that read
    and the generation's must not be cached as live (the reader reads the database again)."""
    token, raw = token_create(user=alice, name="t", scopes=["read"])
    real = token_cache.first_sighting

    def revoked_meanwhile(*args, **kwargs):
        token_revoke(token=token, actor=maintainer)
        return real(*args, **kwargs)

    monkeypatch.setattr(token_cache, "first_sighting", revoked_meanwhile)
    client = bearer(raw)
    assert client.get("/api/v1/me/").status_code == 401
    monkeypatch.setattr(token_cache, "first_sighting", real)
    resp = client.get("/api/v1/me/")
    assert resp.status_code == 401 and "revoked" in resp.json()["detail"]
