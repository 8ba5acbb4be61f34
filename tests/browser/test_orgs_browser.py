"""Organizations in a real headless Chromium: create an organization, invite a member, who accepts in their own
browser, proposes a variant in the organization; its admin transfers it, and its old URL answers 308 to the new one;
then she edits the organization's profile and deletes it from its settings. The new pages pass axe-core."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .conftest import assert_accessible, login, shot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CARD = "# tide-int8\n\nA quantized digits MLP made by the Tide Lab for the organizations walkthrough.\n"


@pytest.fixture
def world(transactional_db):  # type: ignore[no-untyped-def]
    from apps.demo.seed import seed_demo

    seed_demo("commons-demo")


def test_org_invite_accept_propose_in_it_transfer_and_old_url_308(new_context, world):
    from apps.orgs.models import Membership
    from apps.registry.models import Variant

    alice = new_context().new_page()
    login(alice, "alice", "commons-demo")

    # 1. alice creates an organization from the list.
    alice.get_by_role("link", name="Organizations").first.click()
    alice.wait_for_url(re.compile(r".*/orgs/$"))
    alice.get_by_role("link", name="New organization").click()
    alice.get_by_label("Name", exact=True).fill("tide-lab")
    alice.get_by_label("Display name (optional)").fill("Tide Lab")
    alice.get_by_label("Description (optional)").fill("Tiny models about the tides.")
    alice.get_by_role("button", name="Create the organization").click()
    alice.wait_for_url(re.compile(r".*/orgs/tide-lab/$"))
    expect(alice.locator("h1")).to_contain_text("Tide Lab")
    expect(alice.get_by_test_id("org-members")).to_contain_text("alice")
    assert_accessible(alice)

    # 2. She invites bob as a member; the last admin cannot demote herself (a message says why).
    alice.get_by_role("link", name="Manage members and invitations").click()
    alice.wait_for_url(re.compile(r".*/orgs/tide-lab/members/$"))
    alice.get_by_label("Username").fill("bob")
    alice.get_by_label("Role", exact=True).select_option("member")
    alice.get_by_role("button", name="Send the invitation").click()
    expect(alice.get_by_test_id("pending-invitations")).to_contain_text("bob as member")
    alice.get_by_label("Role of alice", exact=True).select_option("member")
    alice.get_by_role("button", name="Change the role of alice").click()
    expect(alice.locator(".messages")).to_contain_text("last admin of tide-lab")
    assert_accessible(alice)
    shot(alice, "org-members")

    # 3. bob sees the invitation from the header and accepts it in his own browser.
    bob = new_context().new_page()
    login(bob, "bob", "commons-demo")
    bob.get_by_test_id("nav-invitations").click()
    bob.wait_for_url(re.compile(r".*/invitations/$"))
    assert_accessible(bob)
    bob.get_by_role("button", name="Accept the invitation to tide-lab").click()
    bob.wait_for_url(re.compile(r".*/orgs/tide-lab/$"))
    expect(bob.locator(".messages")).to_contain_text("Welcome to tide-lab")
    assert Membership.objects.get(org__name="tide-lab", user__username="bob").role == "member"

    # 4. bob proposes a variant in the organization ("Create in" is preselected from the profile's link).
    bob.get_by_role("link", name="Propose a variant in tide-lab").click()
    expect(bob.get_by_label("Create in")).to_have_value("tide-lab")
    bob.get_by_label("Name", exact=True).fill("tide-int8")
    bob.get_by_label("Relation").select_option("quantized")
    bob.get_by_label("Parent variant(s)").fill("commons/digits-mlp")
    bob.get_by_label("Licence").fill("apache-2.0")
    bob.get_by_label("Model card (markdown)").fill(CARD)
    bob.get_by_role("button", name="Create the draft").click()
    bob.wait_for_url(re.compile(r".*/variants/tide-lab/tide-int8/$"))
    assert Variant.objects.by_full_name("tide-lab/tide-int8").get().owner.is_organization
    # A member edits it but does not manage it: no transfer form for bob.
    expect(bob.get_by_role("link", name="Edit details and card")).to_be_visible()
    expect(bob.get_by_role("button", name="Transfer")).to_have_count(0)

    # 5. alice, the organization's admin, transfers it to harbour-lab (an organization she runs).
    alice.goto("/variants/tide-lab/tide-int8/")
    alice.get_by_label("Transfer to").fill("no-such-namespace")
    alice.get_by_role("button", name="Transfer").click()
    expect(alice.locator("#id_to_errors")).to_contain_text("No user or organization")
    assert alice.get_by_label("Transfer to").input_value() == "no-such-namespace"
    alice.get_by_label("Transfer to").fill("harbour-lab")
    alice.get_by_role("button", name="Transfer").click()
    alice.wait_for_url(re.compile(r".*/variants/harbour-lab/tide-int8/$"))
    expect(alice.locator(".messages")).to_contain_text("tide-lab/tide-int8 is now harbour-lab/tide-int8")
    assert_accessible(alice)
    shot(alice, "variant-transferred")

    # 6. The old URL answers 308 to the new one, and a browser following it lands on the variant.
    old = alice.request.get("/variants/tide-lab/tide-int8/", max_redirects=0)
    assert old.status == 308 and old.headers["location"].endswith("/variants/harbour-lab/tide-int8/")
    response = bob.goto("/variants/tide-lab/tide-int8/")
    assert response is not None and response.request.redirected_from is not None
    assert response.request.redirected_from.response().status == 308  # type: ignore[union-attr]
    assert bob.url.endswith("/variants/harbour-lab/tide-int8/")
    expect(bob.locator("h1").first).to_contain_text("harbour-lab/tide-int8")

    # 7. alice edits tide-lab's profile from its settings, then deletes it (it owns no variant any more): the
    # confirmation wants its name typed exactly.
    alice.goto("/orgs/tide-lab/")
    alice.get_by_role("link", name="Settings").click()
    alice.wait_for_url(re.compile(r".*/orgs/tide-lab/settings/$"))
    assert_accessible(alice)
    alice.get_by_label("Description (optional)").fill("Tiny models about the tides, and the moon.")
    alice.get_by_role("button", name="Save the profile").click()
    alice.wait_for_url(re.compile(r".*/orgs/tide-lab/$"))
    expect(alice.get_by_test_id("org-description")).to_contain_text("and the moon")
    alice.get_by_role("link", name="Settings").click()
    alice.get_by_label("Type the organization's name to confirm").fill("tide")
    alice.get_by_role("button", name="Delete this organization").click()
    expect(alice.locator("#id_confirm_errors")).to_contain_text("Type tide-lab exactly")
    alice.get_by_label("Type the organization's name to confirm").fill("tide-lab")
    alice.get_by_role("button", name="Delete this organization").click()
    alice.wait_for_url(re.compile(r".*/orgs/$"))
    expect(alice.locator(".messages")).to_contain_text("tide-lab is deleted")
    assert not Membership.objects.filter(org__name="tide-lab").exists()


@pytest.mark.parametrize(
    "user,url",
    [
        (None, "/orgs/"),
        (None, "/orgs/harbour-lab/"),
        ("alice", "/orgs/new/"),
        ("alice", "/orgs/harbour-lab/members/"),
        ("alice", "/orgs/harbour-lab/settings/"),
        ("reviewer1", "/invitations/"),
        ("alice", "/variants/alice/digits-mlp-int8/"),
    ],
)
def test_org_pages_have_no_serious_accessibility_violations(page, world, user, url):
    if user:
        login(page, user, "commons-demo")
    response = page.goto(url)
    assert response is not None and response.status == 200, url
    assert_accessible(page)
