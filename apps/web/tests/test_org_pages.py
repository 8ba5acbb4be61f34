"""Organization pages with the Django test client: the list and the new-organization form, the profile (variants
the reader may see, members, leaderboard standing), members and invitations for admins (refusals as messages, never
a 500), the invitee's accept/decline, the "Create in" choice on the propose form, and flat query counts."""

from __future__ import annotations

import html

import pytest
from django.test import Client

from apps.accounts.models import User
from apps.core.testing import get_counted
from apps.orgs import services as org_services
from apps.orgs.models import Invitation, Membership, Organization
from apps.registry.models import Variant

from .test_pages import _run_job, logged_in

pytestmark = pytest.mark.django_db


def make_org(admin: User, name: str = "harbour-lab", **fields: str) -> Organization:
    return org_services.org_create(name=name, actor=admin, **fields)


def add_member(org: Organization, user: User, *, role: str = "member", by: User) -> None:
    invitation = org_services.invitation_create(org=org, username=user.username, role=role, actor=by)
    org_services.invitation_accept(invitation=invitation, actor=user)


def messages_of(response) -> str:  # type: ignore[no-untyped-def]
    return html.unescape(response.content.decode())


# --- list, create, profile -----------------------------------------------------------------------------------


def test_org_list_is_public_and_create_needs_sign_in(alice, client):
    make_org(alice, display_name="Harbour Lab")
    body = client.get("/orgs/").content.decode()
    assert 'href="/orgs/harbour-lab/"' in body and "Harbour Lab" in body
    assert "New organization" not in body
    response = client.get("/orgs/new/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert client.post("/orgs/new/", {"name": "sneaky"}).status_code == 302
    assert not Organization.objects.filter(name="sneaky").exists()


def test_create_an_org_makes_me_its_admin(alice):
    client = logged_in(alice)
    response = client.post("/orgs/new/", {"name": "tide-lab", "display_name": "Tide Lab", "description": "Waves."})
    assert response.status_code == 302 and response["Location"] == "/orgs/tide-lab/"
    org = Organization.objects.get(name="tide-lab")
    assert Membership.objects.get(org=org, user=alice).role == "admin"
    page = client.get("/orgs/tide-lab/").content.decode()
    assert "Tide Lab" in page and "Waves." in page and "Manage members and invitations" in page


def test_create_org_errors_beside_fields_and_input_kept(alice, bob):
    client = logged_in(alice)
    for name, expected in (("bob", "share one name space"), ("admin", "reserved"), ("x", "2 to 40")):
        response = client.post("/orgs/new/", {"name": name, "description": "kept text"})
        assert response.status_code == 400, name
        body = messages_of(response)
        assert 'id="id_name_errors"' in body and expected in body and "kept text" in body, name
    too_long = client.post("/orgs/new/", {"name": "ok-name", "display_name": "x" * 101})
    assert too_long.status_code == 400 and 'id="id_display_name_errors"' in too_long.content.decode()
    assert not Organization.objects.filter(name__in=["bob", "admin", "x", "ok-name"]).exists()


def test_unknown_org_is_404(client, alice):
    for url in ("/orgs/nope/", "/orgs/nope/members/"):
        assert client.get(url).status_code == 404, url
    alice_client = logged_in(alice)
    assert alice_client.post("/orgs/nope/members/invite/", {"username": "bob", "role": "member"}).status_code == 404
    assert alice_client.post("/invitations/999999/accept/").status_code == 404


def test_profile_shows_only_the_variants_the_reader_may_see(digits_world):
    users = digits_world["users"]
    alice, bob = users["alice"], users["bob"]
    org = make_org(alice, "tide-lab")
    from apps.registry.services import variant_create

    variant_create(owner=org.account, name="sea-mlp", relation="quantized", parents=["commons/digits-mlp"], actor=alice)
    anonymous = Client().get("/orgs/tide-lab/").content.decode()
    assert "tide-lab/sea-mlp" not in anonymous and "No variant you can see yet." in anonymous
    outsider = logged_in(bob).get("/orgs/tide-lab/").content.decode()
    assert "tide-lab/sea-mlp" not in outsider and "Propose a variant in" not in outsider
    member = logged_in(alice).get("/orgs/tide-lab/").content.decode()
    assert "tide-lab/sea-mlp" in member and "Propose a variant in tide-lab" in member


def test_profile_shows_leaderboard_standing(digits_world, django_capture_on_commit_callbacks):
    users = digits_world["users"]
    with django_capture_on_commit_callbacks(execute=True):
        _run_job(users["maintainer"], digits_world["base"].current_revision, digits_world["benchmark"], 0.97)
    body = Client().get("/orgs/commons/").content.decode()
    assert 'data-testid="org-standing"' in body
    assert '1 <span class="muted">of 1</span>' in body and "digits-mlp" in body and "0.9700" in body
    # An organization without ranked variants says so.
    make_org(users["alice"], "tide-lab")
    assert "is on a leaderboard yet" in Client().get("/orgs/tide-lab/").content.decode()


# --- members and invitations ---------------------------------------------------------------------------------


def test_admin_invites_and_the_invitee_accepts_from_their_invitations_page(alice, bob):
    org = make_org(alice)
    admin = logged_in(alice)
    response = admin.post("/orgs/harbour-lab/members/invite/", {"username": "bob", "role": "member"})
    assert response.status_code == 302 and response["Location"] == "/orgs/harbour-lab/members/"
    invitation = Invitation.objects.get(org=org, invitee=bob)
    page = admin.get("/orgs/harbour-lab/members/").content.decode()
    assert 'data-testid="pending-invitations"' in page and "bob as member" in page

    invitee = logged_in(bob)
    dashboard = invitee.get("/dashboard/").content.decode()
    assert 'data-testid="nav-invitations"' in dashboard and 'data-testid="dashboard-invitations"' in dashboard
    mine = invitee.get("/invitations/").content.decode()
    assert f'action="/invitations/{invitation.pk}/accept/"' in mine
    accepted = invitee.post(f"/invitations/{invitation.pk}/accept/")
    assert accepted.status_code == 302 and accepted["Location"] == "/orgs/harbour-lab/"
    assert Membership.objects.get(org=org, user=bob).role == "member"
    assert 'data-testid="nav-invitations"' not in invitee.get("/dashboard/").content.decode()
    # Deciding twice is refused with a message, not a 500.
    again = invitee.post(f"/invitations/{invitation.pk}/decline/", follow=True)
    assert again.status_code == 200 and "messages" in again.content.decode()


def test_decline_and_only_the_invitee_decides(alice, bob, make_user):
    carol = make_user("carol")
    org = make_org(alice)
    invitation = org_services.invitation_create(org=org, username="bob", role="admin", actor=alice)
    # The admin sees it on the org's page, but does not accept it for bob; a stranger does not learn it exists.
    assert logged_in(alice).post(f"/invitations/{invitation.pk}/accept/").status_code == 404
    assert logged_in(carol).post(f"/invitations/{invitation.pk}/accept/").status_code == 404
    assert logged_in(bob).post(f"/invitations/{invitation.pk}/decline/").status_code == 302
    invitation.refresh_from_db()
    assert invitation.status == "declined" and not Membership.objects.filter(org=org, user=bob).exists()


def test_invite_errors_are_beside_the_field(alice, bob):
    org = make_org(alice)
    admin = logged_in(alice)
    for data, field, text in (
        ({"username": "ghost", "role": "member"}, "username", "No user"),
        ({"username": "alice", "role": "member"}, "username", "cannot invite yourself"),
        ({"username": "bob", "role": "owner"}, "role", "valid choice"),
        ({"username": "", "role": "member"}, "username", "required"),
    ):
        response = admin.post("/orgs/harbour-lab/members/invite/", data)
        assert response.status_code == 400, data
        body = messages_of(response)
        assert f'id="id_{field}_errors"' in body and text in body, (data, body[-3000:])
    org_services.invitation_create(org=org, username="bob", actor=alice)
    twice = admin.post("/orgs/harbour-lab/members/invite/", {"username": "bob", "role": "member"})
    assert twice.status_code == 400 and "Invited already" in messages_of(twice)


def test_members_page_is_read_only_for_non_admins_and_their_posts_are_refused(alice, bob, make_user):
    carol = make_user("carol")
    org = make_org(alice)
    add_member(org, bob, by=alice)
    outsider, member = logged_in(carol), logged_in(bob)
    for client in (Client(), outsider, member):
        page = client.get("/orgs/harbour-lab/members/")
        assert page.status_code == 200
        body = page.content.decode()
        assert "alice" in body and "bob" in body and "Invite a member" not in body and "Revoke" not in body
    assert outsider.post("/orgs/harbour-lab/members/invite/", {"username": "dave", "role": "member"}).status_code == 403
    assert member.post("/orgs/harbour-lab/members/invite/", {"username": "carol", "role": "member"}).status_code == 403
    refused = member.post("/orgs/harbour-lab/members/alice/role/", {"role": "member"}, follow=True)
    assert "Only the admins of harbour-lab" in messages_of(refused)
    assert Membership.objects.get(org=org, user=alice).role == "admin"
    anonymous = Client().post("/orgs/harbour-lab/members/alice/remove/")
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/")
    assert Membership.objects.filter(org=org).count() == 2


def test_role_change_remove_revoke_and_last_admin_refusals(alice, bob, make_user):
    carol = make_user("carol")
    org = make_org(alice)
    add_member(org, bob, by=alice)
    admin = logged_in(alice)
    # The last admin can be neither demoted nor removed, nor leave: a message says why.
    demote = admin.post("/orgs/harbour-lab/members/alice/role/", {"role": "member"}, follow=True)
    assert demote.status_code == 200 and "last admin of harbour-lab" in messages_of(demote)
    leave = admin.post("/orgs/harbour-lab/members/alice/remove/", follow=True)
    assert leave.status_code == 200 and "last admin of harbour-lab" in messages_of(leave)
    assert Membership.objects.get(org=org, user=alice).role == "admin"
    bad_role = admin.post("/orgs/harbour-lab/members/bob/role/", {"role": "owner"}, follow=True)
    assert bad_role.status_code == 200 and "Must be one of" in messages_of(bad_role)
    ghost = admin.post("/orgs/harbour-lab/members/ghost/role/", {"role": "admin"}, follow=True)
    assert ghost.status_code == 200 and "not a member" in messages_of(ghost)
    # Promote bob, then alice may leave.
    assert admin.post("/orgs/harbour-lab/members/bob/role/", {"role": "admin"}).status_code == 302
    assert Membership.objects.get(org=org, user=bob).role == "admin"
    # Revoke an invitation.
    invitation = org_services.invitation_create(org=org, username="carol", actor=alice)
    assert admin.post(f"/orgs/harbour-lab/invitations/{invitation.pk}/revoke/").status_code == 302
    invitation.refresh_from_db()
    assert invitation.status == "revoked"
    assert logged_in(carol).post(f"/invitations/{invitation.pk}/accept/", follow=True).status_code == 200
    assert not Membership.objects.filter(org=org, user=carol).exists()
    # Another org's invitation id is a 404 here.
    other = make_org(bob, "other-lab")
    other_inv = org_services.invitation_create(org=other, username="carol", actor=bob)
    assert admin.post(f"/orgs/harbour-lab/invitations/{other_inv.pk}/revoke/").status_code == 404
    # Remove bob (an admin now, not the last one), then alice leaves is refused again (last admin).
    removed = admin.post("/orgs/harbour-lab/members/bob/remove/")
    assert removed.status_code == 302 and not Membership.objects.filter(org=org, user=bob).exists()
    left = admin.post("/orgs/harbour-lab/members/alice/remove/", follow=True)
    assert "last admin" in messages_of(left)


def test_a_member_leaves(alice, bob):
    org = make_org(alice)
    add_member(org, bob, by=alice)
    response = logged_in(bob).post("/orgs/harbour-lab/members/bob/remove/")
    assert response.status_code == 302 and response["Location"] == "/orgs/harbour-lab/"
    assert not Membership.objects.filter(org=org, user=bob).exists()


def test_csrf_is_enforced_on_org_forms(alice, bob):
    org = make_org(alice)
    invitation = org_services.invitation_create(org=org, username="bob", actor=alice)
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post("/orgs/new/", {"name": "csrf-lab"}).status_code == 403
    assert client.post("/orgs/harbour-lab/members/invite/", {"username": "bob"}).status_code == 403
    client.force_login(bob)
    assert client.post(f"/invitations/{invitation.pk}/accept/").status_code == 403
    assert not Organization.objects.filter(name="csrf-lab").exists()


# --- "Create in" on the propose form ------------------------------------------------------------------------


def _propose(client: Client, **extra: str):  # type: ignore[no-untyped-def]
    data = {"name": "sea-int8", "relation": "quantized", "parents": "commons/digits-mlp", "license": "apache-2.0"}
    return client.post("/variants/new/", {**data, **extra})


def test_propose_offers_my_namespace_and_my_orgs_and_creates_in_the_chosen_one(digits_world):
    users = digits_world["users"]
    alice, bob = users["alice"], users["bob"]
    org = make_org(alice, "tide-lab")
    make_org(bob, "bobs-lab")
    client = logged_in(alice)
    form = client.get("/variants/new/?in=tide-lab").content.decode()
    assert 'name="owner"' in form and '<option value="alice">' in form
    assert '<option value="tide-lab" selected>' in form and "bobs-lab" not in form
    assert '<option value="commons"' not in form  # commons only for its admins, the maintainers
    response = _propose(client, owner="tide-lab")
    assert response.status_code == 302 and response["Location"] == "/variants/tide-lab/sea-int8/"
    assert Variant.objects.by_full_name("tide-lab/sea-int8").get().owner_id == org.account_id
    # Default: my own namespace.
    assert _propose(client, name="mine-int8")["Location"] == "/variants/alice/mine-int8/"
    # Somewhere I may not create: refused beside the field, nothing created.
    refused = _propose(client, name="theirs", owner="bobs-lab")
    assert refused.status_code == 400 and 'id="id_owner_errors"' in refused.content.decode()
    assert not Variant.objects.filter(name="theirs").exists()
    # The maintainers see commons.
    assert '<option value="commons">' in logged_in(users["maintainer"]).get("/variants/new/").content.decode()


# --- query counts --------------------------------------------------------------------------------------------


def test_org_profile_settings_and_members_page_query_counts_are_flat(digits_world, make_user):
    from apps.registry.services import variant_create

    users = digits_world["users"]
    alice = users["alice"]
    org = make_org(alice, "tide-lab")
    variant_create(owner=org.account, name="v-0", relation="quantized", parents=["commons/digits-mlp"], actor=alice)
    client = logged_in(alice)
    urls = ("/orgs/tide-lab/", "/orgs/tide-lab/settings/", "/orgs/tide-lab/members/", "/orgs/", "/invitations/")
    for url in urls:
        client.get(url)  # warm the session
    before = {url: get_counted(client, url)[1] for url in urls}
    for i in range(1, 8):
        variant_create(
            owner=org.account, name=f"v-{i}", relation="quantized", parents=["commons/digits-mlp"], actor=alice
        )
        add_member(org, make_user(f"member{i}"), by=alice)
        org_services.invitation_create(org=org, username=make_user(f"invitee{i}").username, actor=alice)
        other = make_org(make_user(f"founder{i}"), f"lab-{i}")
        org_services.invitation_create(org=other, username="alice", actor=other.memberships.get().user)
    after = {url: get_counted(client, url)[1] for url in urls}
    assert after == before
    body = client.get("/orgs/tide-lab/").content.decode()
    assert body.count("tide-lab/v-") >= 8 and "member7" in body


def test_the_dashboard_lists_my_organizations_variants(alice, bob, maintainer, make_user):
    from apps.registry.tests.factories import make_original, make_variant

    org = make_org(alice)
    add_member(org, bob, by=alice)
    base = make_original(maintainer)
    make_variant(org.account, "lab-draft", [base], actor=alice)
    assert "harbour-lab/lab-draft" in logged_in(bob).get("/dashboard/").content.decode()
    assert "harbour-lab/lab-draft" not in logged_in(make_user("carol")).get("/dashboard/").content.decode()


# --- settings: the profile's edit form and the deletion ----------------------------------------------------------


def test_an_admin_edits_the_profile_from_the_settings_page(alice, bob):
    from apps.audit.models import AuditEvent

    org = make_org(alice, display_name="Harbour Lab", description="Boats.")
    add_member(org, bob, by=alice)
    admin = logged_in(alice)
    assert 'href="/orgs/harbour-lab/settings/"' in admin.get("/orgs/harbour-lab/").content.decode()
    assert 'href="/orgs/harbour-lab/settings/"' not in logged_in(bob).get("/orgs/harbour-lab/").content.decode()
    page = admin.get("/orgs/harbour-lab/settings/")
    body = messages_of(page)
    assert page.status_code == 200 and 'value="Harbour Lab"' in body and "Boats." in body
    org.refresh_from_db()
    response = admin.post(
        "/orgs/harbour-lab/settings/",
        {"display_name": "Harbour Laboratory", "description": "Boats and tides.", "etag": org.etag},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == "/orgs/harbour-lab/"
    assert "Harbour Laboratory" in messages_of(response) and "Boats and tides." in messages_of(response)
    org.refresh_from_db()
    assert (org.name, org.display_name, org.description) == ("harbour-lab", "Harbour Laboratory", "Boats and tides.")
    event = AuditEvent.objects.filter(verb="org.update").latest("seq")
    assert event.actor_id == alice.pk and event.after == {
        "display_name": "Harbour Laboratory",
        "description": "Boats and tides.",
    }


def test_profile_errors_are_beside_the_fields_and_a_stale_form_is_refused(alice):
    org = make_org(alice, display_name="Harbour Lab")
    admin = logged_in(alice)
    stale = org.etag
    too_long = admin.post("/orgs/harbour-lab/settings/", {"display_name": "x" * 101, "description": "kept text"})
    assert too_long.status_code == 400
    assert 'id="id_display_name_errors"' in too_long.content.decode() and "kept text" in messages_of(too_long)
    # someone else saved since this form was opened: nothing is overwritten, the page says so
    org_services.org_update(org=org, actor=alice, description="Changed meanwhile.")
    refused = admin.post("/orgs/harbour-lab/settings/", {"display_name": "Mine", "description": "", "etag": stale})
    assert refused.status_code == 400 and "changed since" in messages_of(refused).lower()
    org.refresh_from_db()
    assert (org.display_name, org.description) == ("Harbour Lab", "Changed meanwhile.")


def test_settings_are_the_admins_alone(alice, bob, make_user, client):
    org = make_org(alice)
    add_member(org, bob, by=alice)
    outsider, member = logged_in(make_user("carol")), logged_in(bob)
    for who in (outsider, member):
        assert who.get("/orgs/harbour-lab/settings/").status_code == 403
        assert who.post("/orgs/harbour-lab/settings/", {"display_name": "Taken"}).status_code == 403
        assert who.post("/orgs/harbour-lab/delete/", {"confirm": "harbour-lab"}).status_code == 403
    for url in ("/orgs/harbour-lab/settings/", "/orgs/harbour-lab/delete/"):
        response = client.post(url, {"confirm": "harbour-lab"})
        assert response.status_code == 302 and response["Location"].startswith("/login/"), url
    assert logged_in(alice).get("/orgs/nope/settings/").status_code == 404
    assert logged_in(alice).get("/orgs/harbour-lab/delete/").status_code == 405
    org.refresh_from_db()
    assert org.display_name == "" and Organization.objects.filter(name="harbour-lab").exists()


def test_an_admin_deletes_the_org_after_typing_its_name_unless_it_owns_variants(alice, bob, make_user):
    from apps.accounts.models import User as Account
    from apps.audit.models import AuditEvent

    org = make_org(alice)
    add_member(org, bob, by=alice)
    invitation = org_services.invitation_create(org=org, username=make_user("carol").username, actor=alice)
    admin = logged_in(alice)
    wrong = admin.post("/orgs/harbour-lab/delete/", {"confirm": "harbour"})
    assert wrong.status_code == 400 and 'id="id_confirm_errors"' in wrong.content.decode()
    assert "Type harbour-lab exactly" in messages_of(wrong)
    # an organization that owns a variant stays: the page says why
    Variant.objects.create(owner=org.account, name="lab-model", relation="original", license="MIT")
    refused = admin.post("/orgs/harbour-lab/delete/", {"confirm": "harbour-lab"})
    assert refused.status_code == 409 and "cannot be deleted yet" in messages_of(refused)
    assert Organization.objects.filter(name="harbour-lab").exists()
    Variant.objects.filter(owner=org.account).delete()
    account_id = org.account_id
    done = admin.post("/orgs/harbour-lab/delete/", {"confirm": "harbour-lab"}, follow=True)
    assert done.redirect_chain[-1][0] == "/orgs/" and "harbour-lab is deleted" in messages_of(done)
    assert not Organization.objects.filter(name="harbour-lab").exists()
    assert not Account.objects.filter(pk=account_id).exists()
    assert not Membership.objects.filter(user=bob).exists() and not Invitation.objects.filter(pk=invitation.pk).exists()
    assert AuditEvent.objects.filter(verb="org.delete", actor=alice).exists()
    assert logged_in(alice).get("/orgs/harbour-lab/").status_code == 404


def test_csrf_is_enforced_on_the_settings_forms(alice):
    make_org(alice)
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post("/orgs/harbour-lab/settings/", {"display_name": "X"}).status_code == 403
    assert client.post("/orgs/harbour-lab/delete/", {"confirm": "harbour-lab"}).status_code == 403
    assert Organization.objects.filter(name="harbour-lab", display_name="").exists()
