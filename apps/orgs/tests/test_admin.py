"""Organizations in the moderation console: read-only rows, changes through the services (audited, with the
last-admin rule and the commons rule), and the user admin refusing an organization's name."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.orgs.models import Invitation, Membership, Organization

from .factories import add_member, make_org

pytestmark = pytest.mark.django_db


@pytest.fixture
def console(maintainer):
    maintainer.is_staff = True
    maintainer.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(maintainer)
    return client


def _act(client, url, action, pks):
    resp = client.post(url, {"action": action, "_selected_action": [str(pk) for pk in pks], "index": "0"}, follow=True)
    assert resp.status_code == 200
    return [str(m) for m in resp.context["messages"]]


def test_the_console_lists_organizations_read_only(console, alice, bob):
    org = make_org(alice)
    add_member(org, bob, by=alice)
    page = console.get("/admin/orgs/organization/")
    assert page.status_code == 200 and b"harbour-lab" in page.content
    detail = console.get(f"/admin/orgs/organization/{org.pk}/change/")
    assert detail.status_code == 200 and b"bob" in detail.content
    assert console.post(f"/admin/orgs/organization/{org.pk}/change/", {"name": "x"}).status_code == 403
    assert console.get("/admin/orgs/organization/add/").status_code == 403
    assert console.get(f"/admin/orgs/organization/{org.pk}/delete/").status_code == 403


def test_outsiders_do_not_get_the_console(alice):
    alice.is_staff = True
    alice.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(alice)
    assert client.get("/admin/orgs/organization/").status_code == 403


def test_role_actions_go_through_the_services_and_keep_the_last_admin(console, alice, bob):
    org = make_org(alice)
    add_member(org, bob, by=alice)
    alice_m, bob_m = Membership.objects.get(user=alice, org=org), Membership.objects.get(user=bob, org=org)
    messages = _act(console, "/admin/orgs/membership/", "make_member", [alice_m.pk])
    assert any("last admin" in m for m in messages)
    assert Membership.objects.get(pk=alice_m.pk).role == "admin"
    _act(console, "/admin/orgs/membership/", "make_admin", [bob_m.pk])
    assert Membership.objects.get(pk=bob_m.pk).role == "admin"
    assert AuditEvent.objects.get(verb="org.member.role").actor_username == "maintainer"
    _act(console, "/admin/orgs/membership/", "remove_members", [alice_m.pk])
    assert not Membership.objects.filter(pk=alice_m.pk).exists()


def test_delete_and_revoke_actions(console, alice, bob):
    org = make_org(alice)
    invitation = Invitation.objects.create(
        org=org, invitee=bob, role="member", invited_by=alice, expires_at="2999-01-01T00:00:00Z"
    )
    _act(console, "/admin/orgs/invitation/", "revoke_invitations", [invitation.pk])
    assert Invitation.objects.get(pk=invitation.pk).status == "revoked"
    commons = Organization.objects.get(name="commons")
    messages = _act(console, "/admin/orgs/organization/", "delete_organizations", [org.pk, commons.pk])
    assert any("Deleted 1 of 2" in m for m in messages) and any("cannot be deleted" in m for m in messages)
    assert list(Organization.objects.values_list("name", flat=True)) == ["commons"]
    assert AuditEvent.objects.filter(verb="org.delete", actor_username="maintainer").count() == 1


def test_the_user_admin_refuses_an_organizations_name(make_user, alice):
    make_org(alice, "harbour-lab")
    root = make_user("root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(root)
    resp = client.post(
        "/admin/accounts/user/add/",
        {
            "username": "Harbour-Lab",
            "password1": "pw-Secret-123-x",
            "password2": "pw-Secret-123-x",
            "usable_password": "true",
        },
    )
    assert resp.status_code == 200  # the form again, with the error
    # The organization's namespace account holds the name: the form says it is taken, and no user is added.
    assert "organization has this name" in resp.content.decode()
    assert User.objects.filter(username__iexact="harbour-lab").count() == 1
    assert not Organization.objects.filter(name__iexact="harbour-lab").exclude(name="harbour-lab").exists()
    assert User.objects.get(username__iexact="harbour-lab").is_organization


@pytest.mark.parametrize("name", ["HARBOUR-LAB", "api", "commons"])
def test_the_signup_page_refuses_an_organizations_name_and_reserved_ones(alice, name):
    make_org(alice, "harbour-lab")
    resp = Client().post(
        "/signup/",
        {"username": name, "email": "new@example.org", "password1": "pw-Secret-123-x", "password2": "pw-Secret-123-x"},
    )
    assert resp.status_code == 400
    text = resp.content.decode()
    assert "organization has this name" in text or "reserved by the platform" in text
