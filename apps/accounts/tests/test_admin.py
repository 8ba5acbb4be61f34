"""Accounts in the Django admin (issue 12, finding 7): a maintainer cannot escalate; every change is audited."""

from __future__ import annotations

from typing import Any

import pytest
from django import forms
from django.contrib.auth.models import Group, Permission
from django.test import Client

from apps.accounts.models import PersonalAccessToken, User
from apps.accounts.roles import user_roles
from apps.accounts.services import token_create
from apps.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_maintainer(maintainer) -> User:  # type: ignore[no-untyped-def]
    """A maintainer as the demo seeds one: staff, and the maintainers' group holding every `accounts` permission
    (what made the stock user admin editable to them)."""
    maintainer.is_staff = True
    maintainer.save(update_fields=["is_staff"])
    Group.objects.get(name="maintainers").permissions.set(Permission.objects.filter(content_type__app_label="accounts"))
    return maintainer


@pytest.fixture
def superuser(make_user) -> User:  # type: ignore[no-untyped-def]
    return make_user("root", is_staff=True, is_superuser=True)


def _login(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _change_url(user: User) -> str:
    return f"/admin/accounts/user/{user.pk}/change/"


def _form_data(client: Client, user: User, **overrides: Any) -> dict[str, Any]:
    """What the change form would post back unchanged (its editable fields), plus the overrides."""
    resp = client.get(_change_url(user))
    assert resp.status_code == 200
    form = resp.context["adminform"].form
    data: dict[str, Any] = {}
    for name, field in form.fields.items():
        if field.disabled:
            continue
        value = form[name].value()
        if isinstance(field, forms.SplitDateTimeField):
            if value is not None:
                data[f"{name}_0"], data[f"{name}_1"] = value.date().isoformat(), value.time().isoformat()
        elif isinstance(value, list | tuple):
            data[name] = [str(v) for v in value]
        elif isinstance(value, bool):
            if value:
                data[name] = "on"
        elif value is not None:
            data[name] = str(value)
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def _editable(client: Client, user: User) -> set[str]:
    form = client.get(_change_url(user)).context["adminform"].form
    return {name for name, field in form.fields.items() if not field.disabled}


def test_a_maintainer_cannot_make_themselves_superuser(staff_maintainer, alice):
    client = _login(staff_maintainer)
    every_permission = [str(pk) for pk in Permission.objects.values_list("pk", flat=True)]
    all_groups = [str(pk) for pk in Group.objects.values_list("pk", flat=True)]
    before = AuditEvent.objects.count()
    resp = client.post(
        _change_url(staff_maintainer),
        _form_data(
            client,
            staff_maintainer,
            is_superuser="on",
            is_staff="on",
            groups=all_groups,
            user_permissions=every_permission,
            email="evil@example.org",
            username="root2",
        ),
    )
    assert resp.status_code == 302  # saved: only the fields a maintainer may change were read
    staff_maintainer.refresh_from_db()
    assert not staff_maintainer.is_superuser
    assert staff_maintainer.user_permissions.count() == 0
    assert sorted(staff_maintainer.groups.values_list("name", flat=True)) == ["maintainers"]
    assert staff_maintainer.username == "maintainer" and staff_maintainer.email != "evil@example.org"
    assert AuditEvent.objects.count() == before  # nothing changed, nothing to audit
    assert _editable(client, staff_maintainer) == {"roles", "max_active_jobs", "daily_compute_seconds"}


def test_a_maintainer_cannot_set_passwords_add_accounts_or_touch_a_superuser(staff_maintainer, alice, superuser):
    client = _login(staff_maintainer)
    password_url = f"/admin/accounts/user/{superuser.pk}/password/"
    assert client.get(password_url).status_code == 403
    resp = client.post(
        password_url, {"password1": "Taken-Over-123", "password2": "Taken-Over-123", "usable_password": "true"}
    )
    assert resp.status_code == 403
    superuser.refresh_from_db()
    assert not superuser.check_password("Taken-Over-123")
    assert client.get(f"/admin/accounts/user/{alice.pk}/password/").status_code == 403
    assert client.get("/admin/accounts/user/add/").status_code == 403
    assert (
        client.post(
            "/admin/accounts/user/add/",
            {"username": "sock", "password1": "Sock-Puppet-123", "password2": "Sock-Puppet-123"},
        ).status_code
        == 403
    )
    assert not User.objects.filter(username="sock").exists()
    # A superuser's page is read-only to a maintainer, and a POST to it is refused.
    assert client.get(_change_url(superuser)).status_code == 200
    resp = client.post(_change_url(superuser), {"roles": [], "email": "x@example.org"})
    assert resp.status_code == 403
    assert client.post(f"/admin/accounts/user/{alice.pk}/delete/", {"post": "yes"}).status_code == 403
    assert User.objects.filter(pk=alice.pk).exists()


def test_a_maintainer_grants_roles_and_quotas_through_the_services_audited(staff_maintainer, alice):
    client = _login(staff_maintainer)
    resp = client.post(_change_url(alice), _form_data(client, alice, roles=["reviewer"], max_active_jobs="9"))
    assert resp.status_code == 302
    alice.refresh_from_db()
    assert user_roles(alice) == ["reviewer"] and alice.max_active_jobs == 9
    roles = AuditEvent.objects.get(verb="user.roles", target_id=str(alice.pk))
    assert roles.actor_username == "maintainer"
    assert roles.before == {"roles": []} and roles.after == {"roles": ["reviewer"]}
    quota = AuditEvent.objects.get(verb="user.quota", target_id=str(alice.pk))
    assert quota.after == {"max_active_jobs": 9}


def test_a_superuser_changes_roles_and_privileges_and_each_change_is_audited(superuser, alice):
    client = _login(superuser)
    assert {"is_superuser", "is_staff", "user_permissions", "roles"} <= _editable(client, alice)
    assert "groups" not in _editable(client, alice)  # role groups change through `roles` only
    perm = Permission.objects.get(content_type__app_label="accounts", codename="view_user")
    resp = client.post(
        _change_url(alice),
        _form_data(client, alice, roles=["maintainer"], is_staff="on", user_permissions=[str(perm.pk)]),
    )
    assert resp.status_code == 302, resp.context["adminform"].form.errors if resp.context else resp
    alice.refresh_from_db()
    assert alice.is_staff and not alice.is_superuser and user_roles(alice) == ["maintainer"]
    roles = AuditEvent.objects.get(verb="user.roles", target_id=str(alice.pk))
    assert roles.actor_username == "root" and roles.after == {"roles": ["maintainer"]}
    update = AuditEvent.objects.get(verb="user.update", target_id=str(alice.pk))
    assert update.actor_username == "root"
    assert update.before == {"is_staff": False, "permissions": []}
    assert update.after == {"is_staff": True, "permissions": ["accounts.view_user"]}
    resp = client.post(_change_url(alice), _form_data(client, alice, is_superuser="on"))
    assert resp.status_code == 302
    alice.refresh_from_db()
    assert alice.is_superuser
    assert AuditEvent.objects.filter(verb="user.update", target_id=str(alice.pk)).count() == 2


def test_a_superuser_sets_a_password_audited_without_the_secret(superuser, alice):
    client = _login(superuser)
    resp = client.post(
        f"/admin/accounts/user/{alice.pk}/password/",
        {"password1": "New-Secret-456", "password2": "New-Secret-456", "usable_password": "true"},
    )
    assert resp.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password("New-Secret-456")
    event = AuditEvent.objects.get(verb="user.password", target_id=str(alice.pk))
    assert event.actor_username == "root" and event.after == {"usable": True}
    assert "New-Secret" not in str(event.before) + str(event.after)


def test_tokens_are_read_only_in_the_admin_and_revoked_through_the_service(staff_maintainer, superuser, alice):
    token, _ = token_create(user=alice, name="leaked", scopes=["read"])
    for user in (staff_maintainer, superuser):
        client = _login(user)
        assert client.get("/admin/accounts/personalaccesstoken/add/").status_code == 403
        resp = client.post(
            f"/admin/accounts/personalaccesstoken/{token.pk}/change/",
            {
                "user": str(superuser.pk),
                "name": "x",
                "prefix": "mc_x",
                "token_hash": "0" * 64,
                "scopes": '["admin"]',
                "expires_at_0": "2099-01-01",
                "expires_at_1": "00:00:00",
            },
        )
        assert resp.status_code == 403
    token.refresh_from_db()
    assert token.user_id == alice.pk and token.scopes == ["read"]
    client = _login(staff_maintainer)
    resp = client.post(
        "/admin/accounts/personalaccesstoken/",
        {"action": "revoke", "_selected_action": [str(token.pk)], "index": "0"},
        follow=True,
    )
    assert resp.status_code == 200
    assert PersonalAccessToken.objects.get(pk=token.pk).revoked_at is not None
    assert AuditEvent.objects.get(verb="token.revoke", target_id=str(token.pk)).actor_username == "maintainer"


def test_contributors_and_non_staff_maintainers_have_no_admin(alice, maintainer):
    for user in (alice, maintainer):
        assert _login(user).get("/admin/accounts/user/").status_code == 302  # to the admin login page
