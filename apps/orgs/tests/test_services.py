"""Organizations at the service layer: names in the shared name space, roles, invitations and their expiry, the
last-admin rule (also under concurrency), notifications and the `org.member_added` webhook, audit, and
`commons` following the maintainer role."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from apps.accounts.services import user_admin_create, user_set_roles, user_signup
from apps.audit.models import AuditEvent
from apps.core.errors import Conflict, InvalidTransition, NotFound, PermissionDenied, ValidationFailed
from apps.notifications.models import Notification, WebhookDelivery, WebhookSubscription
from apps.orgs import hooks, services
from apps.orgs.models import Invitation, Membership, Organization

from .factories import add_member, make_org

pytestmark = pytest.mark.django_db


def roles_in(org):
    return dict(Membership.objects.filter(org=org).values_list("user__username", "role"))


# --- names ---------------------------------------------------------------------------------------------------


def test_the_creator_becomes_the_first_admin_and_it_is_audited(alice):
    org = make_org(alice, "Harbour-Lab", display_name="Harbour Lab", description="Fine-tunes about the sea.")
    assert (org.name, org.display_name) == ("Harbour-Lab", "Harbour Lab")
    assert roles_in(org) == {"alice": "admin"}
    event = AuditEvent.objects.get(verb="org.create", target_id=str(org.pk))
    assert event.actor_username == "alice" and event.after["admin"] == "alice"


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("alice", "A user already has this name"),
        ("ALICE", "A user already has this name"),
        ("harbour-LAB", "An organization with this name already exists"),
        ("admin", "reserved"),
        ("API", "reserved"),
        ("commons", "reserved"),
        ("orgs", "reserved"),
        ("static", "reserved"),
        ("x", "2 to 40 characters"),
        ("-lab", "2 to 40 characters"),
        ("lab-", "2 to 40 characters"),
        ("my lab", "2 to 40 characters"),
        ("lab/x", "2 to 40 characters"),
        ("l" * 41, "2 to 40 characters"),
    ],
)
def test_org_names_share_one_space_with_users_and_refuse_reserved_ones(alice, name, why):
    make_org(alice, "harbour-lab")
    with pytest.raises(ValidationFailed) as exc:
        services.org_create(name=name, actor=alice)
    assert why in exc.value.errors["name"][0]


def test_profile_fields_are_bounded(alice):
    with pytest.raises(ValidationFailed) as exc:
        services.org_create(name="lab", actor=alice, display_name="d" * 101, description="x" * 2001)
    assert set(exc.value.errors) == {"display_name", "description"}


def test_users_may_not_take_an_organizations_name_or_a_reserved_one(alice, superuser_factory):
    make_org(alice, "harbour-lab")
    for name in ("harbour-lab", "HARBOUR-LAB", "admin", "Commons", "api"):
        with pytest.raises(ValidationFailed) as exc:
            user_signup(username=name, email="x@example.org", password="pw-Secret-123-long")
        assert "username" in exc.value.errors, name
    admin = superuser_factory()
    from apps.accounts.models import User

    with pytest.raises(ValidationFailed):
        user_admin_create(user=User(username="Harbour-Lab"), actor=admin)
    assert user_signup(username="harbour-lab2", email="y@example.org", password="pw-Secret-123-long").pk


@pytest.fixture
def superuser_factory(make_user):
    def make():
        user = make_user("root")
        user.is_superuser = user.is_staff = True
        user.save()
        return user

    return make


# --- profile and deletion ------------------------------------------------------------------------------------


def test_admins_and_maintainers_change_the_profile_members_and_outsiders_do_not(alice, bob, make_user, maintainer):
    org = make_org(alice)
    add_member(org, bob, by=alice)
    carol = make_user("carol")
    for who in (bob, carol):
        with pytest.raises(PermissionDenied):
            services.org_update(org=org, actor=who, description="mine now")
    services.org_update(org=org, actor=alice, description="By alice")
    services.org_update(org=org, actor=maintainer, display_name="Moderated")
    org.refresh_from_db()
    assert (org.description, org.display_name) == ("By alice", "Moderated")
    count = AuditEvent.objects.filter(verb="org.update").count()
    services.org_update(org=org, actor=alice, description="By alice")  # no change: no write, no event
    assert AuditEvent.objects.filter(verb="org.update").count() == count == 2


def test_delete_by_an_admin_takes_memberships_and_invitations_along(alice, bob, make_user):
    org = make_org(alice)
    add_member(org, bob, by=alice)
    services.invitation_create(org=org, username=make_user("carol").username, actor=alice)
    with pytest.raises(PermissionDenied):
        services.org_delete(org=org, actor=bob)
    services.org_delete(org=org, actor=alice)
    assert not Organization.objects.filter(name="harbour-lab").exists()
    assert not Membership.objects.filter(user=bob).exists() and not Invitation.objects.exists()
    event = AuditEvent.objects.get(verb="org.delete")
    assert event.before["members"] == ["alice:admin", "bob:member"]
    # The name is free again.
    assert make_org(bob, "harbour-lab").pk


def test_delete_is_refused_while_a_guard_says_the_org_still_owns_something(alice, monkeypatch):
    org = make_org(alice)
    monkeypatch.setattr(hooks, "ORG_DELETE_GUARDS", [lambda *, org: f"{org.name} owns 2 variants."])
    with pytest.raises(Conflict) as exc:
        services.org_delete(org=org, actor=alice)
    assert exc.value.errors == {"org": ["harbour-lab owns 2 variants."]}
    assert Organization.objects.filter(pk=org.pk).exists()


def test_commons_cannot_be_deleted_nor_joined_by_invitation(maintainer, bob):
    commons = services.commons_ensure()
    with pytest.raises(Conflict):
        services.org_delete(org=commons, actor=maintainer)
    with pytest.raises(Conflict, match="maintainer role"):
        services.invitation_create(org=commons, username=bob.username, actor=maintainer)


# --- invitations ---------------------------------------------------------------------------------------------


def test_an_invitation_notifies_the_invitee_in_app_and_by_email(alice, bob):
    org = make_org(alice)
    mail.outbox.clear()
    with_commit = services.invitation_create(org=org, username="BOB", role="admin", actor=alice)
    assert (with_commit.invitee, with_commit.role, with_commit.status) == (bob, "admin", "pending")
    ttl = with_commit.expires_at - with_commit.created_at
    assert timedelta(days=13, hours=23) < ttl <= timedelta(days=14)
    note = Notification.objects.get(user=bob, kind="org_membership")
    assert "alice invited you to join harbour-lab as admin" in note.title
    assert AuditEvent.objects.filter(verb="org.invitation.create", target_id=str(with_commit.pk)).exists()


def test_invitation_emails_leave_after_commit(alice, bob, django_capture_on_commit_callbacks):
    org = make_org(alice)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.invitation_create(org=org, username="bob", actor=alice)
    assert [m.to for m in mail.outbox] == [["bob@example.org"]]
    assert "invited you to join harbour-lab" in mail.outbox[0].subject


def test_invitation_rules(alice, bob, make_user):
    org = make_org(alice)
    carol = make_user("carol")
    add_member(org, carol, by=alice)
    with pytest.raises(PermissionDenied):  # a member does not invite
        services.invitation_create(org=org, username="bob", actor=carol)
    with pytest.raises(ValidationFailed) as exc:
        services.invitation_create(org=org, username="nobody-here", actor=alice)
    assert "username" in exc.value.errors
    with pytest.raises(ValidationFailed) as exc:
        services.invitation_create(org=org, username="alice", actor=alice)
    assert exc.value.errors["username"] == ["You cannot invite yourself."]
    with pytest.raises(ValidationFailed) as exc:
        services.invitation_create(org=org, username="bob", role="owner", actor=alice)
    assert "role" in exc.value.errors
    with pytest.raises(Conflict, match="already a member"):
        services.invitation_create(org=org, username="carol", actor=alice)
    services.invitation_create(org=org, username="bob", actor=alice)
    with pytest.raises(Conflict, match="pending invitation"):
        services.invitation_create(org=org, username="bob", actor=alice)


def test_accepting_joins_with_the_invited_role_and_tells_the_admins_and_webhooks(alice, bob, make_user):
    org = make_org(alice)
    dave = make_user("dave")
    add_member(org, dave, role="admin", by=alice)
    sub = WebhookSubscription.objects.create(
        owner=alice, url="https://example.org/hook", events=["org.member_added"], scope="own", secret="s" * 32
    )
    invitation = services.invitation_create(org=org, username="bob", role="member", actor=alice)
    with pytest.raises(PermissionDenied):
        services.invitation_accept(invitation=invitation, actor=alice)  # only the invitee decides
    services.invitation_accept(invitation=invitation, actor=bob)
    invitation.refresh_from_db()
    assert invitation.status == "accepted" and invitation.decided_at is not None
    assert roles_in(org)["bob"] == "member"
    told = set(
        Notification.objects.filter(kind="org_membership", title__contains="bob accepted").values_list(
            "user__username", flat=True
        )
    )
    assert told == {"alice", "dave"}
    delivery = WebhookDelivery.objects.get(subscription=sub, payload__data__username="bob")
    assert delivery.event == "org.member_added"
    assert delivery.payload["data"] == {
        "org": "harbour-lab",
        "username": "bob",
        "role": "member",
        "via": "invitation",
        "url": "/api/v1/orgs/harbour-lab/members/",
    }
    assert AuditEvent.objects.filter(verb="org.member.add", after__username="bob").exists()
    with pytest.raises(InvalidTransition):
        services.invitation_accept(invitation=invitation, actor=bob)
    with pytest.raises(InvalidTransition):
        services.invitation_decline(invitation=invitation, actor=bob)


def test_declining_joins_nobody_and_tells_the_admins(alice, bob):
    org = make_org(alice)
    invitation = services.invitation_create(org=org, username="bob", actor=alice)
    services.invitation_decline(invitation=invitation, actor=bob)
    assert "bob" not in roles_in(org)
    assert Notification.objects.filter(user=alice, title="bob declined the invitation to harbour-lab").exists()
    assert not WebhookDelivery.objects.filter(event="org.member_added", payload__data__username="bob").exists()
    # Declined is final, but a new invitation may follow.
    assert services.invitation_create(org=org, username="bob", actor=alice).status == "pending"


def test_an_expired_invitation_cannot_be_accepted_and_makes_room_for_a_new_one(alice, bob, settings):
    org = make_org(alice)
    invitation = services.invitation_create(org=org, username="bob", actor=alice)
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    invitation.refresh_from_db()
    assert invitation.current_status == "expired"
    assert Invitation.objects.with_effective_status().get(pk=invitation.pk).effective_status == "expired"
    with pytest.raises(Conflict, match="expired"):
        services.invitation_accept(invitation=invitation, actor=bob)
    with pytest.raises(Conflict, match="expired"):
        services.invitation_decline(invitation=invitation, actor=bob)
    assert "bob" not in roles_in(org)
    settings.MC_ORG_INVITATION_TTL_DAYS = 3
    fresh = services.invitation_create(org=org, username="bob", actor=alice)
    invitation.refresh_from_db()
    assert invitation.status == "expired"
    assert timedelta(days=2, hours=23) < fresh.expires_at - timezone.now() <= timedelta(days=3)
    services.invitation_accept(invitation=fresh, actor=bob)
    assert roles_in(org)["bob"] == "member"


def test_an_admin_revokes_a_pending_invitation(alice, bob):
    org = make_org(alice)
    invitation = services.invitation_create(org=org, username="bob", actor=alice)
    with pytest.raises(PermissionDenied):
        services.invitation_revoke(invitation=invitation, actor=bob)
    services.invitation_revoke(invitation=invitation, actor=alice)
    with pytest.raises(InvalidTransition):
        services.invitation_accept(invitation=invitation, actor=bob)
    assert AuditEvent.objects.filter(verb="org.invitation.revoke").count() == 1


# --- roles and removal ---------------------------------------------------------------------------------------


def test_the_last_admin_can_neither_be_demoted_nor_leave(alice, bob):
    org = make_org(alice)
    add_member(org, bob, by=alice)
    with pytest.raises(Conflict, match="last admin"):
        services.member_role_change(org=org, username="alice", role="member", actor=alice)
    with pytest.raises(Conflict, match="last admin"):
        services.member_remove(org=org, username="alice", actor=alice)
    services.member_role_change(org=org, username="bob", role="admin", actor=alice)
    services.member_role_change(org=org, username="alice", role="member", actor=bob)
    assert roles_in(org) == {"alice": "member", "bob": "admin"}
    with pytest.raises(Conflict, match="last admin"):
        services.member_remove(org=org, username="bob", actor=bob)
    services.member_remove(org=org, username="alice", actor=alice)  # a member leaves
    assert roles_in(org) == {"bob": "admin"}


def test_members_do_not_manage_and_unknown_members_are_not_found(alice, bob, make_user):
    org = make_org(alice)
    add_member(org, bob, by=alice)
    carol = make_user("carol")
    add_member(org, carol, by=alice)
    with pytest.raises(PermissionDenied):
        services.member_role_change(org=org, username="carol", role="admin", actor=bob)
    with pytest.raises(PermissionDenied):
        services.member_remove(org=org, username="carol", actor=bob)
    with pytest.raises(NotFound):
        services.member_remove(org=org, username="zed", actor=alice)
    with pytest.raises(ValidationFailed):
        services.member_role_change(org=org, username="carol", role="owner", actor=alice)


def test_role_changes_and_removals_are_announced_and_audited(alice, bob, make_user):
    org = make_org(alice)
    add_member(org, bob, by=alice)
    carol = make_user("carol")
    add_member(org, carol, by=alice)
    services.member_role_change(org=org, username="bob", role="admin", actor=alice)
    assert Notification.objects.filter(user=bob, title="You are now admin of harbour-lab").exists()
    services.member_remove(org=org, username="carol", actor=alice)
    assert Notification.objects.filter(user=carol, title="You were removed from harbour-lab").exists()
    services.member_remove(org=org, username="bob", actor=bob)
    assert Notification.objects.filter(user=alice, title="bob left harbour-lab").exists()
    verbs = list(AuditEvent.objects.filter(verb__startswith="org.member.").values_list("verb", flat=True))
    assert verbs.count("org.member.role") == 1 and verbs.count("org.member.remove") == 2


@pytest.mark.django_db(transaction=True)
def test_two_admins_demoting_each_other_at_once_leave_one_admin(make_user):
    """Without the org's row lock both would count two admins and both demotions would pass, leaving none."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL")
    ann, ben = make_user("ann"), make_user("ben")
    org = make_org(ann, "race-lab")
    add_member(org, ben, role="admin", by=ann)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def demote(actor, target):
        from django.db import connections

        barrier.wait()
        try:
            services.member_role_change(org=org, username=target, role="member", actor=actor)
            outcomes.append("done")
        except (Conflict, PermissionDenied):  # the loser is a member by then, or would demote the last admin
            outcomes.append("refused")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=demote, args=(ann, "ben")), threading.Thread(target=demote, args=(ben, "ann"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["done", "refused"]
    assert Membership.objects.filter(org=org, role="admin").count() == 1


# --- commons -------------------------------------------------------------------------------------------------


def test_commons_admins_follow_the_maintainer_role(bob, make_user):
    commons = services.commons_ensure()
    user_set_roles(user=bob, roles=["maintainer"], actor=None)
    assert Membership.objects.get(org=commons, user=bob).role == "admin"
    user_set_roles(user=bob, roles=["reviewer"], actor=None)
    assert not Membership.objects.filter(org=commons, user=bob).exists()
    assert AuditEvent.objects.filter(verb="org.member.remove", after__via="maintainer role revoked").exists()
    moderator = make_user("mod", roles=("maintainer",))
    assert Membership.objects.get(org=commons, user=moderator).role == "admin"
    with pytest.raises(Conflict, match="maintainer role"):
        services.member_role_change(org=commons, username="mod", role="member", actor=moderator)
    with pytest.raises(Conflict, match="maintainer role"):
        services.member_remove(org=commons, username="mod", actor=moderator)


def test_the_migration_made_commons_an_organization():
    assert Organization.objects.filter(name="commons").exists()
