"""Organizations over HTTP (SPEC §3): who may do what (anonymous, outsider, member, org admin, maintainer), token
scopes, problem+json with field messages for bad input, 404s, and query counts that do not grow with the number
of organizations, members or invitations."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.core.testing import assert_same_query_count, count_queries
from apps.orgs import services
from apps.orgs.models import Invitation, Membership

from .factories import add_member, make_org

pytestmark = pytest.mark.django_db
ORG = "/api/v1/orgs/harbour-lab/"


def problem(response, status, field=None):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json", response.content
    body = response.json()
    assert body["status"] == status and body["title"] and body["type"]
    if field is not None:
        assert body["errors"][field], body
    return body


@pytest.fixture
def world(alice, bob, make_user, maintainer, client_for, api):
    """harbour-lab: alice admin, bob member; carol is an outsider."""
    org = make_org(alice, "harbour-lab", display_name="Harbour Lab")
    add_member(org, bob, by=alice)
    carol = make_user("carol")
    return {
        "org": org,
        "anonymous": api,
        "admin": client_for(alice),
        "member": client_for(bob),
        "outsider": client_for(carol),
        "maintainer": client_for(maintainer),
        "users": {"alice": alice, "bob": bob, "carol": carol, "maintainer": maintainer},
    }


def _flat(client, url, grow, expected):
    client.get("/api/v1/me/")
    with count_queries() as one:
        first = client.get(url)
    assert first.status_code == 200, first.content
    count = first.json()["count"]
    grow()
    with count_queries() as many:
        body = client.get(url + ("&" if "?" in url else "?") + "page_size=100").json()
    assert body["count"] == expected > count
    assert_same_query_count(one, many)


# --- organizations -------------------------------------------------------------------------------------------


def test_organizations_are_public_with_member_counts_and_the_readers_role(world):
    anonymous = world["anonymous"].get(ORG)
    assert anonymous.status_code == 200 and anonymous["ETag"]
    assert anonymous.json() | {"created_at": None, "updated_at": None} == {
        "name": "harbour-lab",
        "display_name": "Harbour Lab",
        "description": "",
        "members_count": 2,
        "my_role": None,
        "created_at": None,
        "updated_at": None,
        "quota": None,
    }
    assert world["admin"].get(ORG).json()["my_role"] == "admin"
    assert world["member"].get("/api/v1/orgs/HARBOUR-LAB/").json()["my_role"] == "member"
    assert world["outsider"].get(ORG).json()["my_role"] is None
    listed = world["member"].get("/api/v1/orgs/?search=harbour").json()
    assert [(o["name"], o["my_role"], o["members_count"]) for o in listed["results"]] == [("harbour-lab", "member", 2)]
    problem(world["anonymous"].get("/api/v1/orgs/no-such-org/"), 404)


def test_create_an_organization_and_become_its_admin(world):
    assert world["anonymous"].post("/api/v1/orgs/", {"name": "new-lab"}, format="json").status_code == 401
    created = world["outsider"].post(
        "/api/v1/orgs/", {"name": "new-lab", "display_name": "New Lab", "members_count": 99}, format="json"
    )
    assert created.status_code == 201, created.content
    assert created.json()["my_role"] == "admin" and created.json()["members_count"] == 1
    members = world["anonymous"].get("/api/v1/orgs/new-lab/members/").json()["results"]
    assert [(m["username"], m["role"]) for m in members] == [("carol", "admin")]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "alice"}, "name"),  # a user's name
        ({"name": "Harbour-Lab"}, "name"),  # taken, whatever the case
        ({"name": "admin"}, "name"),  # reserved
        ({"name": "x"}, "name"),
        ({"name": "a/b"}, "name"),
        ({"name": ""}, "name"),
        ({}, "name"),
        ({"name": "ok-lab", "display_name": "d" * 101}, "display_name"),
        ({"name": "ok-lab", "description": ["not", "text"]}, "description"),
    ],
)
def test_bad_organizations_are_problems_with_field_messages(world, body, field):
    problem(world["outsider"].post("/api/v1/orgs/", body, format="json"), 400, field)


def test_profile_changes_by_role(world):
    body = {"description": "Seafaring models."}
    assert world["anonymous"].patch(ORG, body, format="json").status_code == 401
    problem(world["outsider"].patch(ORG, body, format="json"), 403)
    problem(world["member"].patch(ORG, body, format="json"), 403)
    changed = world["admin"].patch(ORG, body, format="json")
    assert changed.status_code == 200 and changed.json()["description"] == "Seafaring models."
    assert changed["ETag"] != world["anonymous"].get("/api/v1/orgs/").get("ETag")
    assert world["maintainer"].patch(ORG, {"display_name": "HL"}, format="json").status_code == 200
    problem(world["admin"].patch(ORG, {"name": "renamed"}, format="json"), 400, "name")
    problem(world["admin"].patch(ORG, {"display_name": "d" * 101}, format="json"), 400, "display_name")
    problem(world["admin"].patch("/api/v1/orgs/nope/", body, format="json"), 404)
    problem(world["admin"].put(ORG, body, format="json"), 405)


def test_delete_by_role(world):
    assert world["anonymous"].delete(ORG).status_code == 401
    problem(world["outsider"].delete(ORG), 403)
    problem(world["member"].delete(ORG), 403)
    assert world["admin"].delete(ORG).status_code == 204
    problem(world["admin"].get(ORG), 404)
    problem(world["maintainer"].delete("/api/v1/orgs/commons/"), 409)


def test_tokens_need_the_write_scope_to_change_organizations(world, client_for):
    reader = client_for(world["users"]["alice"], scopes=("read",))
    assert reader.get(ORG).status_code == 200
    problem(reader.patch(ORG, {"description": "x"}, format="json"), 403)
    problem(reader.post("/api/v1/orgs/", {"name": "token-lab"}, format="json"), 403)
    problem(reader.post(ORG + "invitations/", {"username": "carol"}, format="json"), 403)
    problem(reader.delete(ORG + "members/bob/"), 403)


def test_listing_organizations_costs_the_same_for_one_or_many(world, make_user):
    def grow():
        for i in range(12):
            user = make_user(f"founder{i}")
            org = make_org(user, f"lab-{i}")
            add_member(org, make_user(f"crew{i}"), by=user)

    _flat(world["member"], "/api/v1/orgs/", grow, 13 + 1)  # 13 labs, and commons from the migration


# --- members -------------------------------------------------------------------------------------------------


def test_members_are_public_admins_first_and_cost_the_same_for_one_or_many(world, make_user):
    rows = world["anonymous"].get(ORG + "members/").json()["results"]
    assert [(m["username"], m["role"]) for m in rows] == [("alice", "admin"), ("bob", "member")]
    assert set(rows[0]) == {"username", "role", "joined_at"}
    problem(world["anonymous"].get("/api/v1/orgs/nope/members/"), 404)

    def grow():
        for i in range(12):
            add_member(world["org"], make_user(f"crew{i}"), by=world["users"]["alice"])

    _flat(world["outsider"], ORG + "members/", grow, 14)


def test_member_role_and_removal_by_role(world):
    promote = {"role": "admin"}
    assert world["anonymous"].patch(ORG + "members/bob/", promote, format="json").status_code == 401
    problem(world["outsider"].patch(ORG + "members/bob/", promote, format="json"), 403)
    problem(world["member"].patch(ORG + "members/bob/", promote, format="json"), 403)
    problem(world["admin"].patch(ORG + "members/bob/", {"role": "owner"}, format="json"), 400, "role")
    problem(world["admin"].patch(ORG + "members/bob/", {}, format="json"), 400, "role")
    problem(world["admin"].patch(ORG + "members/carol/", promote, format="json"), 404)
    problem(world["admin"].patch(ORG + "members/alice/", {"role": "member"}, format="json"), 409)
    done = world["admin"].patch(ORG + "members/bob/", promote, format="json")
    assert done.status_code == 200 and done.json()["role"] == "admin" and done.json()["username"] == "bob"
    assert world["member"].patch(ORG + "members/alice/", {"role": "member"}, format="json").status_code == 200
    # alice is a member now; bob is the last admin.
    problem(world["member"].delete(ORG + "members/bob/"), 409)
    problem(world["outsider"].delete(ORG + "members/alice/"), 403)
    assert world["admin"].delete(ORG + "members/alice/").status_code == 204  # alice leaves
    assert list(Membership.objects.filter(org=world["org"]).values_list("user__username", flat=True)) == ["bob"]


def test_a_maintainer_moderates_membership(world):
    assert world["maintainer"].delete(ORG + "members/bob/").status_code == 204


# --- invitations ---------------------------------------------------------------------------------------------


def test_invite_accept_and_see_invitations_by_role(world):
    invite = {"username": "carol", "role": "admin"}
    assert world["anonymous"].post(ORG + "invitations/", invite, format="json").status_code == 401
    problem(world["outsider"].post(ORG + "invitations/", invite, format="json"), 403)
    problem(world["member"].post(ORG + "invitations/", invite, format="json"), 403)
    created = world["admin"].post(ORG + "invitations/", invite, format="json")
    assert created.status_code == 201, created.content
    invitation = created.json()
    assert {k: invitation[k] for k in ("org", "username", "role", "status", "invited_by")} == {
        "org": "harbour-lab",
        "username": "carol",
        "role": "admin",
        "status": "pending",
        "invited_by": "alice",
    }
    problem(world["admin"].post(ORG + "invitations/", invite, format="json"), 409, "username")

    # The org's invitations: its admins (and maintainers) only.
    assert world["admin"].get(ORG + "invitations/").json()["count"] == 2  # bob's, accepted, and carol's
    assert world["maintainer"].get(ORG + "invitations/?status=pending").json()["count"] == 1
    assert world["admin"].get(ORG + "invitations/?status=accepted").json()["count"] == 1
    assert world["admin"].get(ORG + "invitations/?status=declined").json()["count"] == 0
    problem(world["member"].get(ORG + "invitations/"), 403)
    assert world["anonymous"].get(ORG + "invitations/").status_code == 401

    # Mine.
    mine = world["outsider"].get("/api/v1/invitations/").json()["results"]
    assert [(i["id"], i["org"], i["status"]) for i in mine] == [(invitation["id"], "harbour-lab", "pending")]
    assert [i["status"] for i in world["member"].get("/api/v1/invitations/").json()["results"]] == ["accepted"]
    assert world["member"].get("/api/v1/invitations/?status=pending").json()["count"] == 0
    assert world["anonymous"].get("/api/v1/invitations/").status_code == 401
    problem(world["outsider"].get("/api/v1/invitations/?status=maybe"), 400, "status")

    accept = f"/api/v1/invitations/{invitation['id']}/accept/"
    assert world["anonymous"].post(accept).status_code == 401
    problem(world["member"].post(accept), 404)  # not theirs, and not an admin: it does not exist for them
    problem(world["admin"].post(accept), 403)  # the admin sees it but does not decide for carol
    accepted = world["outsider"].post(accept)
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
    assert world["outsider"].get(ORG).json()["my_role"] == "admin"
    problem(world["outsider"].post(accept), 409)
    problem(world["outsider"].post(f"/api/v1/invitations/{invitation['id']}/decline/"), 409)
    problem(world["outsider"].post("/api/v1/invitations/999999/accept/"), 404)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "nobody-here"}, "username"),
        ({"username": "alice"}, "username"),  # yourself
        ({"username": "carol", "role": "owner"}, "role"),
        ({}, "username"),
        ({"username": ["carol"]}, "username"),
    ],
)
def test_bad_invitations_are_problems_with_field_messages(world, body, field):
    problem(world["admin"].post(ORG + "invitations/", body, format="json"), 400, field)


def test_inviting_a_member_is_a_conflict(world):
    problem(world["admin"].post(ORG + "invitations/", {"username": "bob"}, format="json"), 409, "username")


def test_decline_revoke_and_expiry_over_http(world, make_user, client_for):
    dave = make_user("dave")
    services.invitation_create(org=world["org"], username="carol", actor=world["users"]["alice"])
    to_dave = services.invitation_create(org=world["org"], username="dave", actor=world["users"]["alice"])
    [to_carol] = Invitation.objects.filter(invitee__username="carol")
    declined = world["outsider"].post(f"/api/v1/invitations/{to_carol.pk}/decline/")
    assert declined.status_code == 200 and declined.json()["status"] == "declined"

    revoke = f"{ORG}invitations/{to_dave.pk}/"
    problem(world["member"].delete(revoke), 404)
    problem(world["admin"].delete(f"/api/v1/orgs/commons/invitations/{to_dave.pk}/"), 404)
    assert world["admin"].delete(revoke).status_code == 204
    problem(world["admin"].delete(revoke), 409)

    again = services.invitation_create(org=world["org"], username="dave", actor=world["users"]["alice"])
    Invitation.objects.filter(pk=again.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    client = client_for(dave)
    rows = client.get("/api/v1/invitations/?status=expired").json()["results"]
    assert [(r["id"], r["status"]) for r in rows] == [(again.pk, "expired")]
    assert client.get("/api/v1/invitations/?status=pending").json()["count"] == 0
    body = problem(client.post(f"/api/v1/invitations/{again.pk}/accept/"), 409)
    assert "expired" in body["detail"]
    assert not Membership.objects.filter(org=world["org"], user=dave).exists()


def test_invitation_lists_cost_the_same_for_one_or_many(world, make_user):
    services.invitation_create(org=world["org"], username="carol", actor=world["users"]["alice"])

    def grow():
        for i in range(12):
            services.invitation_create(
                org=world["org"], username=make_user(f"guest{i}").username, actor=world["users"]["alice"]
            )

    _flat(world["admin"], ORG + "invitations/", grow, 14)  # with bob's accepted one

    carol = world["users"]["carol"]

    def grow_mine():
        for i in range(12):
            founder = make_user(f"founder{i}")
            services.invitation_create(org=make_org(founder, f"lab-{i}"), username="carol", actor=founder)

    _flat(world["outsider"], "/api/v1/invitations/", grow_mine, 13)
    assert carol.org_invitations.count() == 13


def test_ids_past_the_database_range_and_odd_names_are_404s(world):
    problem(world["admin"].delete(ORG + "invitations/99999999999999999999/"), 404)
    problem(world["outsider"].post("/api/v1/invitations/99999999999999999999/accept/"), 404)
    problem(world["admin"].patch(ORG + "members/" + "x" * 300 + "/", {"role": "admin"}, format="json"), 404)
    problem(world["anonymous"].get("/api/v1/orgs/" + "x" * 300 + "/"), 404)


def test_etag_follows_profile_and_membership_and_if_match_guards_the_profile(world, make_user):
    first = world["admin"].get(ORG)
    etag = first["ETag"]
    assert world["outsider"].get(ORG)["ETag"] == etag  # one validator for every reader
    not_modified = world["outsider"].get(ORG, HTTP_IF_NONE_MATCH=etag)
    assert not_modified.status_code == 304 and not_modified["ETag"] == etag
    # A member's answer carries the quota's use, which moves with every job: never a 304, same ETag.
    members_view = world["admin"].get(ORG, HTTP_IF_NONE_MATCH=etag)
    assert members_view.status_code == 200 and members_view["ETag"] == etag and members_view.json()["quota"]
    # Someone joins: members_count changes, and so does the ETag.
    add_member(world["org"], make_user("erin"), by=world["users"]["alice"])
    joined = world["admin"].get(ORG, HTTP_IF_NONE_MATCH=etag)
    assert joined.status_code == 200 and joined.json()["members_count"] == 3 and joined["ETag"] != etag
    body = problem(world["admin"].patch(ORG, {"description": "x"}, format="json", HTTP_IF_MATCH=etag), 412)
    assert "changed since you read it" in body["detail"]
    current = joined["ETag"]
    done = world["admin"].patch(ORG, {"description": "x"}, format="json", HTTP_IF_MATCH=current)
    assert done.status_code == 200 and done["ETag"] != current
    assert world["admin"].patch(ORG, {"description": "y"}, format="json", HTTP_IF_MATCH="*").status_code == 200
