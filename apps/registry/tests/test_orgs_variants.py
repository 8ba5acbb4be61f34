"""Variants owned by organizations, collaborators and transfers (issue 14, SPEC §2/§3 wave 2).

Rules through the services, then the same over HTTP: who may create, edit, manage and see; the old name's 308;
problem+json with field messages for bad input; token scopes; query counts."""

from __future__ import annotations

import pytest

from apps.audit.models import AuditEvent
from apps.core.errors import Conflict, PermissionDenied, ValidationFailed
from apps.core.testing import assert_list_query_count_is_flat
from apps.orgs import services as org_services
from apps.orgs.tests.factories import add_member, make_org
from apps.registry import services
from apps.registry.models import Collaborator, Variant, VariantRedirect
from apps.registry.permissions import can_create_in, can_edit_variant, can_manage_variant
from apps.registry.selectors import (
    namespace_people,
    namespace_people_ids,
    namespaces_people_ids,
    sees_unpublished,
    variants_visible_to,
)
from apps.reviews.gate import author_ids

from .factories import make_original, make_variant, publish_current

pytestmark = pytest.mark.django_db


def problem(response, status, field=None):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json", response.content
    body = response.json()
    if field is not None:
        assert body["errors"][field], body
    return body


@pytest.fixture
def lab(alice, bob, make_user, maintainer):
    """harbour-lab: alice admin, bob member; carol is an outsider; a commons original to derive from."""
    org = make_org(alice, "harbour-lab")
    add_member(org, bob, by=alice)
    base = make_original(maintainer)
    return {"org": org, "account": org.account, "base": base, "carol": make_user("carol")}


# --- rules ---------------------------------------------------------------------------------------------------


def test_members_create_and_edit_in_their_org_and_admins_manage(lab, alice, bob):
    account, carol = lab["account"], lab["carol"]
    assert account.is_organization and not account.is_active and not account.has_usable_password()
    variant = make_variant(account, "lab-tune", [lab["base"]], actor=bob)
    assert variant.full_name == "harbour-lab/lab-tune" and variant.owner_id == account.pk
    assert can_create_in(bob, account) and not can_create_in(carol, account)
    assert can_edit_variant(bob, variant) and can_edit_variant(alice, variant) and not can_edit_variant(carol, variant)
    assert can_manage_variant(alice, variant) and not can_manage_variant(bob, variant)
    services.variant_update(variant=variant, actor=bob, summary="by a member")
    with pytest.raises(PermissionDenied):
        services.variant_update(variant=variant, actor=carol, summary="not mine")
    with pytest.raises(PermissionDenied):
        make_variant(account, "outsider-tune", [lab["base"]], actor=carol)
    with pytest.raises(PermissionDenied):  # a member edits, an admin deletes
        services.variant_delete(variant=variant, actor=bob)
    assert [u.username for u in namespace_people(account)] == ["alice", "bob"]


def test_the_people_of_several_namespaces_are_read_together_as_one_by_one(lab, alice, bob, make_user):
    from apps.core.testing import count_queries

    other = make_org(bob, "other-lab")
    add_member(other, lab["carol"], by=bob)
    gone = make_user("gone")
    add_member(other, gone, by=bob)
    gone.is_active = False
    gone.save(update_fields=["is_active"])
    owners = [lab["account"], alice, other.account, lab["carol"]]
    with count_queries() as queries:
        together = namespaces_people_ids(owners)
    assert len(queries) == 1  # the organizations' members at once; a person speaks for their own namespace
    assert together == {owner.pk: namespace_people_ids(owner) for owner in owners}
    assert together[other.account.pk] == [bob.pk, lab["carol"].pk]
    with count_queries() as none:
        assert namespaces_people_ids([alice, bob]) == {alice.pk: [alice.pk], bob.pk: [bob.pk]}
    assert len(none) == 0


def test_org_drafts_are_seen_by_members_only(lab, alice, bob, maintainer):
    variant = make_variant(lab["account"], "lab-tune", [lab["base"]], actor=bob)
    assert variants_visible_to(alice).filter(pk=variant.pk).exists()
    assert not variants_visible_to(lab["carol"]).filter(pk=variant.pk).exists()
    assert sees_unpublished(bob, variant) and not sees_unpublished(lab["carol"], variant)
    # leaving the organization ends it
    org_services.member_remove(org=lab["org"], username="bob", actor=alice)
    bob.refresh_from_db()  # a fresh user object: the access cache belongs to a request
    assert not variants_visible_to(bob).filter(pk=variant.pk).exists()


def test_no_self_approval_by_proxy(lab, alice, bob, make_user):
    """Every member of the owning organization, and every collaborator, is on the author's side."""
    variant = make_variant(lab["account"], "lab-tune", [lab["base"]], actor=bob)
    assert {alice.pk, bob.pk, lab["account"].pk} <= author_ids(variant.current_revision)
    assert lab["carol"].pk not in author_ids(variant.current_revision)
    own = make_variant(alice, "solo-tune", [lab["base"]])
    services.collaborator_add(variant=own, username="carol", actor=alice)
    assert lab["carol"].pk in author_ids(own.current_revision)


def test_collaborators_write_but_do_not_manage(lab, alice, bob):
    carol = lab["carol"]
    variant = make_variant(alice, "solo-tune", [lab["base"]])
    assert not can_edit_variant(carol, variant)
    row = services.collaborator_add(variant=variant, username="Carol", actor=alice)
    assert row.user == carol and services.collaborator_add(variant=variant, username="carol", actor=alice) == row
    carol = type(carol).objects.get(pk=carol.pk)
    assert can_edit_variant(carol, variant) and sees_unpublished(carol, variant)
    assert not can_manage_variant(carol, variant)
    services.variant_update(variant=variant, actor=carol, summary="by a collaborator")
    with pytest.raises(PermissionDenied):
        services.collaborator_add(variant=variant, username="bob", actor=carol)
    with pytest.raises(PermissionDenied):
        services.variant_transfer(variant=variant, to="carol", actor=carol)
    with pytest.raises(ValidationFailed) as exc:
        services.collaborator_add(variant=variant, username="nobody", actor=alice)
    assert exc.value.errors["username"]
    with pytest.raises(ValidationFailed):  # an organization's account is no person
        services.collaborator_add(variant=variant, username="harbour-lab", actor=alice)
    with pytest.raises(ValidationFailed):
        services.collaborator_add(variant=variant, username="alice", actor=alice)
    org_variant = make_variant(lab["account"], "lab-tune", [lab["base"]], actor=bob)
    with pytest.raises(Conflict):
        services.collaborator_add(variant=org_variant, username="carol", actor=alice)
    services.collaborator_remove(variant=variant, username="carol", actor=carol)  # leaving on their own
    assert not Collaborator.objects.filter(variant=variant).exists()
    verbs = list(AuditEvent.objects.filter(verb__startswith="variant.collaborator").values_list("verb", flat=True))
    assert sorted(verbs) == ["variant.collaborator.add", "variant.collaborator.remove"]


def test_transfer_to_an_org_keeps_everything_and_the_old_name_redirects(lab, alice, bob, maintainer):
    variant = make_variant(alice, "solo-tune", [lab["base"]])
    child = make_variant(bob, "child-tune", [variant])
    services.revision_transition(revision=child.current_revision, target="submitted", actor=bob)  # the snapshot
    child.refresh_from_db()
    assert child.current_revision.metadata["parents"] == ["alice/solo-tune"]
    services.collaborator_add(variant=variant, username="carol", actor=alice)
    with pytest.raises(PermissionDenied):  # carol belongs to no such org
        services.variant_transfer(variant=variant, to="harbour-lab", actor=lab["carol"])
    moved = services.variant_transfer(variant=variant, to="Harbour-Lab", actor=alice)
    assert moved.pk == variant.pk and moved.full_name == "harbour-lab/solo-tune"
    assert VariantRedirect.objects.get(variant=variant).owner_name == "alice"
    assert not Collaborator.objects.filter(variant=variant).exists()  # in an org, its members write
    child.current_revision.refresh_from_db()
    assert child.current_revision.metadata["parents"] == ["harbour-lab/solo-tune"]
    event = AuditEvent.objects.get(verb="variant.transfer")
    assert event.before["full_name"] == "alice/solo-tune" and event.after["full_name"] == "harbour-lab/solo-tune"
    # bob (a member) may not move it out; alice (an admin) moves it back, and the name she had is hers again
    with pytest.raises(PermissionDenied):
        services.variant_transfer(variant=moved, to="bob", actor=bob)
    services.variant_transfer(variant=moved, to="alice", actor=alice)
    assert list(VariantRedirect.objects.values_list("owner_name", flat=True)) == ["harbour-lab"]


def test_transfer_refuses_bad_targets(lab, alice):
    variant = make_variant(alice, "solo-tune", [lab["base"]])
    make_variant(lab["account"], "solo-tune", [lab["base"]], actor=alice)
    for to, error in [("", ValidationFailed), ("nobody", ValidationFailed), ("alice", ValidationFailed)]:
        with pytest.raises(error) as exc:
            services.variant_transfer(variant=variant, to=to, actor=alice)
        assert exc.value.errors["to"]
    with pytest.raises(Conflict):  # the name is taken there
        services.variant_transfer(variant=variant, to="harbour-lab", actor=alice)
    with pytest.raises(PermissionDenied):  # another person's namespace
        services.variant_transfer(variant=variant, to="bob", actor=alice)


def test_an_org_with_variants_cannot_be_deleted(lab, alice):
    variant = make_variant(lab["account"], "lab-tune", [lab["base"]], actor=alice)
    with pytest.raises(Conflict) as exc:
        org_services.org_delete(org=lab["org"], actor=alice)
    assert "owns 1 variant" in str(exc.value.errors)
    services.variant_transfer(variant=variant, to="alice", actor=alice)
    org_services.org_delete(org=lab["org"], actor=alice)
    assert not type(alice).objects.filter(username="harbour-lab").exists()  # its account went with it


# --- HTTP ----------------------------------------------------------------------------------------------------


@pytest.fixture
def http(lab, alice, bob, maintainer, client_for, api):
    return {
        "anonymous": api,
        "admin": client_for(alice),
        "member": client_for(bob),
        "outsider": client_for(lab["carol"]),
        "maintainer": client_for(maintainer),
        "read_only": client_for(alice, scopes=("read",)),
    }


def _create(client, owner, name="lab-tune"):
    body = {
        "name": name,
        "relation": "finetune",
        "parents": ["commons/base-model"],
        "license": "apache-2.0",
        "owner": owner,
    }
    return client.post("/api/v1/variants/", body, format="json")


def test_api_create_in_an_org(lab, http):
    created = _create(http["member"], "harbour-lab")
    assert created.status_code == 201, created.content
    assert created.json()["full_name"] == "harbour-lab/lab-tune" and created.json()["owner"] == "harbour-lab"
    assert created["Location"] == "/api/v1/variants/harbour-lab/lab-tune/"
    problem(_create(http["outsider"], "harbour-lab", "x"), 403, "owner")
    problem(_create(http["anonymous"], "harbour-lab", "y"), 401)
    problem(_create(http["member"], "harbour-lab"), 400, "name")  # taken in that namespace
    # the draft: members see it, outsiders get 404
    assert http["admin"].get("/api/v1/variants/harbour-lab/lab-tune/").status_code == 200
    problem(http["outsider"].get("/api/v1/variants/harbour-lab/lab-tune/"), 404)
    edited = http["member"].patch("/api/v1/variants/harbour-lab/lab-tune/", {"summary": "x"}, format="json")
    assert edited.status_code == 200, edited.content


def test_api_transfer_and_the_308(lab, alice, http):
    variant = make_variant(alice, "solo-tune", [lab["base"]])
    url = "/api/v1/variants/alice/solo-tune/transfer/"
    problem(http["anonymous"].post(url, {"to": "harbour-lab"}, format="json"), 401)
    problem(http["outsider"].post(url, {"to": "harbour-lab"}, format="json"), 404)  # a draft: not even seen
    problem(http["read_only"].post(url, {"to": "harbour-lab"}, format="json"), 403)  # scope
    problem(http["admin"].post(url, {}, format="json"), 400, "to")
    problem(http["admin"].post(url, {"to": ["x"]}, format="json"), 400, "to")
    problem(http["admin"].post(url, {"to": "bob"}, format="json"), 403, "to")
    moved = http["admin"].post(url, {"to": "harbour-lab"}, format="json")
    assert moved.status_code == 200, moved.content
    assert moved.json()["full_name"] == "harbour-lab/solo-tune"
    assert moved["Location"] == "/api/v1/variants/harbour-lab/solo-tune/"
    # the old name, for someone who may see the variant: 308 to the same path under the new name
    old = http["member"].get("/api/v1/variants/alice/solo-tune/revisions/1/?x=1")
    assert old.status_code == 308 and old["Location"] == "/api/v1/variants/harbour-lab/solo-tune/revisions/1/?x=1"
    # a draft's new home is not told to those who may not see it
    problem(http["outsider"].get("/api/v1/variants/alice/solo-tune/"), 404)
    # published: everyone follows it, on the API, the pages and the Hub-compatible paths
    publish_current(Variant.objects.get(pk=variant.pk), lab["base"].current_revision.created_by or alice)
    for path, new in [
        ("/api/v1/variants/alice/solo-tune/", "/api/v1/variants/harbour-lab/solo-tune/"),
        ("/variants/alice/solo-tune/", "/variants/harbour-lab/solo-tune/"),
        ("/api/models/alice/solo-tune", "/api/models/harbour-lab/solo-tune"),
        ("/alice/solo-tune/resolve/main/config.json", "/harbour-lab/solo-tune/resolve/main/config.json"),
    ]:
        response = http["anonymous"].get(path)
        assert response.status_code == 308 and response["Location"] == new, (path, response.status_code)
    # a name nobody ever had stays a plain 404
    problem(http["anonymous"].get("/api/v1/variants/alice/never-was/"), 404)


def test_api_collaborators(lab, alice, bob, http):
    make_variant(alice, "solo-tune", [lab["base"]])
    base = "/api/v1/variants/alice/solo-tune/collaborators/"
    added = http["admin"].put(f"{base}carol/")
    assert added.status_code == 201 and added.json()["username"] == "carol" and added.json()["permission"] == "write"
    assert http["admin"].put(f"{base}carol/").status_code == 200
    problem(http["admin"].put(f"{base}nobody/"), 400, "username")
    problem(http["member"].put(f"{base}bob/"), 404)  # bob cannot see alice's draft
    problem(http["read_only"].put(f"{base}bob/"), 403)
    problem(http["anonymous"].get(base), 401)
    listed = http["outsider"].get(base)  # carol collaborates now: she sees the draft and the list
    assert listed.status_code == 200 and [c["username"] for c in listed.json()["results"]] == ["carol"]
    problem(http["outsider"].put(f"{base}bob/"), 403)  # a collaborator does not choose collaborators
    edited = http["outsider"].patch("/api/v1/variants/alice/solo-tune/", {"summary": "x"}, format="json")
    assert edited.status_code == 200, edited.content

    def grow():
        for i in range(12):
            http["admin"].put(f"{base}{type(alice).objects.create(username=f'user{i}').username}/")

    assert_list_query_count_is_flat(http["admin"], base, grow, 13)
    assert http["admin"].delete(f"{base}carol/").status_code == 204
    problem(http["admin"].delete(f"{base}carol/"), 404)
    org_variant = _create(http["member"], "harbour-lab")
    assert org_variant.status_code == 201
    problem(http["admin"].put("/api/v1/variants/harbour-lab/lab-tune/collaborators/carol/"), 409, "username")


def test_access_statement_agrees_with_the_sql_rule(lab, alice, bob, make_user, maintainer):
    # access_of is one SQL statement written once (its ORM union cost more to build than to run); the Python rule
    # it feeds (_is_org_member) must pick exactly the variants the SQL rule (_org_member_q) picks.
    from apps.orgs.models import Organization
    from apps.registry.querysets import _is_org_member, _org_member_q, access_of, forget_access

    other = make_org(bob, "other-lab")
    Organization.objects.filter(pk=other.pk).update(account=None)  # an organization without an account
    dave = make_user("dave")
    mine = make_variant(lab["account"], "lab-tune", [lab["base"]], actor=bob)
    theirs = make_variant(dave, "daves-tune", [lab["base"]])
    shared = make_variant(dave, "daves-shared", [lab["base"]])
    services.collaborator_add(variant=shared, username="bob", actor=dave)
    forget_access(bob)
    access = access_of(bob)
    assert access.namespaces == {lab["account"].pk: "member"}
    assert access.collaborations == frozenset({shared.pk})
    for user in (alice, bob, lab["carol"], dave):
        forget_access(user)
        every = Variant.objects.all()
        by_sql = set(every.filter(_org_member_q(user, "")).values_list("pk", flat=True))
        assert {v.pk for v in every if _is_org_member(user, v)} == by_sql, user.username
    assert access_of(alice).namespaces == {lab["account"].pk: "admin"} and mine.owner_id == lab["account"].pk
    assert not _is_org_member(bob, theirs)
