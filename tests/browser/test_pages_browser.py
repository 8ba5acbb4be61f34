"""Pages in a real headless Chromium: sign up, log in, tokens, every form's errors in place, accessibility."""

from __future__ import annotations

import re

import pytest

from .conftest import assert_accessible, login, shot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def world(transactional_db):  # type: ignore[no-untyped-def]
    from apps.demo.seed import seed_demo

    seed_demo("commons-demo")


def test_signup_then_logout_then_login(page):
    page.goto("/")
    page.get_by_role("link", name="Sign up").first.click()
    page.get_by_label("Username").fill("newbie")
    page.get_by_label("Email").fill("newbie@example.org")
    page.get_by_label("Password", exact=True).fill("a-long-pass-phrase-9")
    page.get_by_label("Password confirmation").fill("a-long-pass-phrase-9")
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(re.compile(r".*/dashboard/$"))
    assert "Signed in as" in page.inner_text("header")
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r".*/$"))
    login(page, "newbie", "a-long-pass-phrase-9")


def test_every_form_shows_field_errors_and_keeps_input(page, world):
    # Sign-up
    page.goto("/signup/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Email").fill("not-an-email")
    page.get_by_label("Password", exact=True).fill("x")
    page.get_by_label("Password confirmation").fill("y")
    page.get_by_role("button", name="Create account").click()
    assert page.locator("#id_username_errors").is_visible()
    assert page.locator("#id_email_errors").is_visible()
    assert page.get_by_label("Email").input_value() == "not-an-email"
    shot(page, "signup-errors")
    # Log in with a wrong password
    page.goto("/login/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Log in").click()
    assert "correct username and password" in page.inner_text("main")
    assert page.get_by_label("Username").input_value() == "alice"
    login(page, "alice", "commons-demo")
    # Token
    page.goto("/tokens/")
    page.get_by_label("Name").fill("kept-name")
    page.get_by_label("Expires in (days)").fill("9999")
    page.get_by_role("button", name="Create token").click()
    assert page.locator("#id_expires_in_days_errors").is_visible()
    assert page.get_by_label("Name").input_value() == "kept-name"
    # Propose a variant
    page.goto("/variants/new/")
    page.get_by_label("Name").first.fill("bad name!")
    page.get_by_label("Parent variant(s)").fill("commons/does-not-exist")
    page.get_by_label("Licence").fill("apache-2.0")
    page.get_by_label("Parameters").fill("-1")
    page.get_by_label("Summary").fill("typed summary")
    page.get_by_role("button", name="Create the draft").click()
    for field in ("name", "parents", "parameters"):
        assert page.locator(f"#id_{field}_errors").is_visible(), field
    assert page.get_by_label("Summary").input_value() == "typed summary"
    assert page.get_by_label("Parent variant(s)").input_value() == "commons/does-not-exist"
    shot(page, "propose-errors")
    # Submit a job with a bad config
    page.goto("/variants/alice/digits-mlp-int8/jobs/new/")
    page.get_by_label("Batch size").fill("0")
    page.get_by_role("button", name="Submit the job").click()
    assert page.locator("[id='id_config-batch_size_errors']").is_visible()
    assert page.get_by_label("Batch size").input_value() == "0"
    # Upload without a file
    page.goto("/variants/alice/digits-mlp-int8/")
    page.get_by_label("Path").fill("kept.onnx")
    page.get_by_role("button", name="Upload").click()
    page.locator("#id_file_errors").wait_for()
    assert page.get_by_label("Path").input_value() == "kept.onnx"


def test_token_created_once_listed_and_revoked(page, world):
    login(page, "bob", "commons-demo")
    page.goto("/tokens/")
    page.get_by_label("Name").fill("ci-bot")
    page.get_by_role("button", name="Create token").click()
    raw = page.get_by_test_id("new-token").inner_text().strip()
    assert raw.startswith("mc_")
    shot(page, "tokens")
    page.goto("/tokens/")
    assert raw not in page.content() and "ci-bot" in page.inner_text("main")
    page.get_by_role("button", name="Revoke token ci-bot").click()
    assert "revoked" in page.inner_text("main")


@pytest.mark.parametrize(
    "user,url",
    [
        (None, "/"),
        (None, "/signup/"),
        (None, "/login/"),
        (None, "/variants/"),
        (None, "/leaderboards/"),
        (None, "/leaderboards/digits/"),
        (None, "/variants/commons/digits-mlp/"),
        ("alice", "/dashboard/"),
        ("alice", "/variants/new/"),
        ("alice", "/tokens/"),
        ("alice", "/variants/alice/digits-mlp-int8/"),
        ("alice", "/variants/alice/digits-mlp-int8/jobs/new/"),
        ("alice", "/variants/alice/digits-mlp-int8/edit/"),
        ("bob", "/variants/commons/digits-mlp/"),
        ("reviewer1", "/dashboard/"),
        (None, "/password-reset/"),
    ],
)
def test_main_pages_have_no_serious_accessibility_violations(page, world, user, url):
    if user:
        login(page, user, "commons-demo")
    page.goto(url)
    assert_accessible(page)


def test_pages_fit_a_phone_screen(new_context, world):
    page = new_context(viewport={"width": 375, "height": 740}).new_page()
    login(page, "alice", "commons-demo")
    for url in ("/", "/dashboard/", "/variants/new/", "/variants/alice/digits-mlp-int8/"):
        page.goto(url)
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{url} scrolls sideways by {overflow}px on a phone"
    shot(page, "variant-phone")


def test_password_reset_by_email(page, world):
    from django.core import mail

    from apps.accounts.models import User

    User.objects.filter(username="bob").update(email="bob@example.org")
    page.goto("/login/")
    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_label("Email").fill("bob@example.org")
    page.get_by_role("button", name="Send the reset link").click()
    page.wait_for_url(re.compile(r".*/password-reset/sent/$"))
    link = re.search(r"(/password-reset/\S+/)", mail.outbox[-1].body).group(1)
    page.goto(link)
    page.get_by_label("New password", exact=True).fill("a-brand-new-pass-5")
    page.get_by_label("New password confirmation").fill("a-brand-new-pass-5")
    page.get_by_role("button", name="Set the password").click()
    assert "Password changed" in page.inner_text("main")
    login(page, "bob", "a-brand-new-pass-5")
