"""Rules for tokens and roles."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from apps.accounts.authentication import hash_token
from apps.accounts.models import PersonalAccessToken
from apps.accounts.roles import user_roles
from apps.accounts.services import token_create, token_revoke, user_set_roles
from apps.audit.models import AuditEvent
from apps.core.errors import PermissionDenied, ValidationFailed

pytestmark = pytest.mark.django_db


def test_token_is_stored_hashed_only(alice):
    token, raw = token_create(user=alice, name="ci", scopes=["read"])
    assert raw.startswith("mc_") and len(raw) > 40
    stored = PersonalAccessToken.objects.get(pk=token.pk)
    assert stored.token_hash == hash_token(raw)
    for field in ("name", "prefix", "token_hash"):
        assert getattr(stored, field) != raw
    assert raw not in str(list(PersonalAccessToken.objects.values()))
    assert stored.prefix == raw[:10]


def test_token_defaults_and_audit(alice):
    token, _ = token_create(user=alice, name="ci")
    assert token.scopes == ["read", "write", "jobs"]
    assert timedelta(days=89) < token.expires_at - timezone.now() <= timedelta(days=90)
    event = AuditEvent.objects.get(verb="token.create")
    assert event.actor == alice and event.target_id == str(token.pk)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"scopes": ["read", "root"]}, "scopes"),
        ({"scopes": []}, "scopes"),
        ({"scopes": ["admin"]}, "scopes"),
        ({"expires_at": timezone.now() - timedelta(days=1)}, "expires_at"),
        ({"expires_at": timezone.now() + timedelta(days=5000)}, "expires_at"),
    ],
)
def test_token_create_refuses_bad_requests(alice, kwargs, field):
    with pytest.raises(ValidationFailed) as exc:
        token_create(user=alice, name="x", **kwargs)
    assert field in exc.value.errors


def test_maintainer_may_hold_admin_scope(maintainer):
    token, _ = token_create(user=maintainer, name="ops", scopes=["admin"])
    assert token.scopes == ["admin"]


def test_revoke_is_idempotent_and_audited(alice):
    token, _ = token_create(user=alice, name="x")
    token_revoke(token=token, actor=alice)
    first = PersonalAccessToken.objects.get(pk=token.pk).revoked_at
    token_revoke(token=token, actor=alice)
    assert PersonalAccessToken.objects.get(pk=token.pk).revoked_at == first
    assert AuditEvent.objects.filter(verb="token.revoke").count() == 1


def test_roles_are_groups_and_audited(alice, maintainer):
    user_set_roles(user=alice, roles=["reviewer"], actor=maintainer)
    alice.refresh_from_db()
    assert user_roles(alice) == ["reviewer"]
    assert set(alice.groups.values_list("name", flat=True)) == {"reviewers"}
    event = AuditEvent.objects.filter(verb="user.roles", target_id=str(alice.pk)).get()
    assert event.before == {"roles": []} and event.after == {"roles": ["reviewer"]}


def test_only_maintainers_grant_roles(alice, bob):
    with pytest.raises(PermissionDenied):
        user_set_roles(user=bob, roles=["maintainer"], actor=alice)


def test_unknown_role_refused(alice, maintainer):
    with pytest.raises(ValidationFailed):
        user_set_roles(user=alice, roles=["overlord"], actor=maintainer)


def test_groups_exist_from_data_migration():
    from django.contrib.auth.models import Group

    assert set(Group.objects.values_list("name", flat=True)) >= {"reviewers", "maintainers"}


def test_grant_role_command(alice, capsys):
    call_command("grant_role", "ALICE", "maintainer")
    alice.refresh_from_db()
    assert "maintainer" in user_roles(alice)
    assert "maintainer" in capsys.readouterr().out
    call_command("grant_role", "alice", "maintainer", "--revoke")
    assert user_roles(type(alice).objects.get(pk=alice.pk)) == []


def test_grant_role_command_unknown_user():
    with pytest.raises(CommandError, match="No user"):
        call_command("grant_role", "ghost", "reviewer")
