"""The variant page's transfer form and collaborators, with the Django test client: only managers get them, bad
input and refusals come back beside the field (never a 500), and the old name answers 308 after a transfer."""

from __future__ import annotations

import html

import pytest
from django.test import Client

from apps.orgs import services as org_services
from apps.registry.models import Collaborator, Variant

from .test_pages import logged_in

pytestmark = pytest.mark.django_db

INT8 = "/variants/alice/digits-mlp-int8/"


def test_only_managers_see_the_transfer_and_collaborator_forms(digits_world):
    users = digits_world["users"]
    owner = logged_in(users["alice"]).get(INT8).content.decode()
    assert 'action="/variants/alice/digits-mlp-int8/transfer/"' in owner
    assert 'action="/variants/alice/digits-mlp-int8/collaborators/"' in owner
    for who in ("reviewer1", "maintainer"):
        page = logged_in(users[who]).get(INT8)
        assert page.status_code == 200 and "/transfer/" not in page.content.decode(), who
    # Someone who cannot see the draft gets a 404 for the page and for its forms alike.
    bob = logged_in(users["bob"])
    assert bob.get(INT8).status_code == 404
    assert bob.post(INT8 + "transfer/", {"to": "bob"}).status_code == 404
    assert bob.post(INT8 + "collaborators/", {"username": "bob"}).status_code == 404
    # Who sees it without managing it is refused (403), and nothing moves.
    reviewer = logged_in(users["reviewer1"])
    assert reviewer.post(INT8 + "transfer/", {"to": "reviewer1"}).status_code == 403
    assert reviewer.post(INT8 + "collaborators/", {"username": "reviewer1"}).status_code == 403
    assert Variant.objects.get(pk=digits_world["int8"].pk).owner == users["alice"]
    anonymous = Client().post(INT8 + "transfer/", {"to": "bob"})
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/")


def test_transfer_to_an_org_redirects_and_the_old_name_answers_308(digits_world):
    users = digits_world["users"]
    alice = logged_in(users["alice"])
    response = alice.post(INT8 + "transfer/", {"to": "harbour-lab"})
    assert response.status_code == 302 and response["Location"] == "/variants/harbour-lab/digits-mlp-int8/"
    variant = Variant.objects.get(pk=digits_world["int8"].pk)
    assert variant.full_name == "harbour-lab/digits-mlp-int8"
    page = alice.get("/variants/harbour-lab/digits-mlp-int8/").content.decode()
    assert "is now harbour-lab/digits-mlp-int8" in html.unescape(page)
    # An org's variant takes members, not collaborators: the page says where to manage them.
    assert 'href="/orgs/harbour-lab/members/"' in page
    old = alice.get(INT8)
    assert old.status_code == 308 and old["Location"] == "/variants/harbour-lab/digits-mlp-int8/"
    # bob, a member of harbour-lab, now edits it; he does not manage it (not an admin).
    bob = logged_in(users["bob"]).get("/variants/harbour-lab/digits-mlp-int8/").content.decode()
    assert "Edit details and card" in bob and "/transfer/" not in bob


def test_transfer_errors_beside_the_field(digits_world):
    users = digits_world["users"]
    alice = logged_in(users["alice"])
    org_services.org_create(name="bobs-lab", actor=users["bob"])
    for to, text in (
        ("", "required"),
        ("nobody-here", "No user or organization"),
        ("alice", "already there"),
        ("bobs-lab", "organization you belong to"),
        ("bob", "organization you belong to"),
    ):
        response = alice.post(INT8 + "transfer/", {"to": to})
        assert response.status_code == 400, to
        body = html.unescape(response.content.decode())
        assert 'id="id_to_errors"' in body and text in body, (to, body[body.find("id_to_errors") - 200 :][:600])
    assert Variant.objects.get(pk=digits_world["int8"].pk).owner == users["alice"]


def test_add_and_remove_a_collaborator(digits_world):
    users = digits_world["users"]
    alice = logged_in(users["alice"])
    for username, text in (("ghost", "No user"), ("alice", "owns"), ("", "required")):
        bad = alice.post(INT8 + "collaborators/", {"username": username})
        assert bad.status_code == 400, username
        body = html.unescape(bad.content.decode())
        assert 'id="id_username_errors"' in body and text in body, username
    ok = alice.post(INT8 + "collaborators/", {"username": "bob"})
    assert ok.status_code == 302 and ok["Location"] == INT8
    assert Collaborator.objects.filter(variant=digits_world["int8"], user=users["bob"]).exists()
    page = alice.get(INT8).content.decode()
    assert 'data-testid="collaborators"' in page and "bob" in page
    # bob now sees and edits the draft, without managing it.
    bob = logged_in(users["bob"])
    bob_page = bob.get(INT8).content.decode()
    assert "Edit details and card" in bob_page and "/transfer/" not in bob_page
    assert bob.post(INT8 + "collaborators/", {"username": "carol"}).status_code == 403
    assert alice.post(INT8 + "collaborators/ghost/remove/").status_code == 404
    removed = alice.post(INT8 + "collaborators/bob/remove/")
    assert removed.status_code == 302
    assert not Collaborator.objects.filter(variant=digits_world["int8"]).exists()
    assert bob.get(INT8).status_code == 404


def test_csrf_is_enforced_on_transfer(digits_world):
    client = Client(enforce_csrf_checks=True)
    client.force_login(digits_world["users"]["alice"])
    assert client.post(INT8 + "transfer/", {"to": "harbour-lab"}).status_code == 403
    assert Variant.objects.get(pk=digits_world["int8"].pk).owner.username == "alice"
