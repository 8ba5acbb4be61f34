"""Django test-client tests of the contributor pages: status codes, 404 for hidden objects, errors in place, CSRF."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from apps.accounts.models import PersonalAccessToken, User
from apps.core.testing import get_counted
from workers.runners.base import RunResult

pytestmark = pytest.mark.django_db

DIGITS = Path(__file__).resolve().parents[3] / "fixtures" / "digits"


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --- Public pages and navigation ------------------------------------------------------------------


def test_home_links_to_login_and_signup(client):
    body = client.get("/").content.decode()
    assert 'href="/login/"' in body and 'href="/signup/"' in body
    assert 'href="#main"' in body  # skip link


def test_static_files_are_vendored_not_cdn(client):
    body = client.get("/").content.decode()
    assert "htmx-2.0.11.min.js" in body and "commons.css" in body
    assert "cdn" not in body.lower() and "unpkg" not in body.lower()


def test_anonymous_is_sent_to_login_for_private_pages(client):
    for url in ("/dashboard/", "/tokens/", "/variants/new/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/"), url


# --- Sign up, log in, log out, password reset ---------------------------------------------------


def test_signup_creates_a_contributor_and_logs_in(client):
    response = client.post(
        "/signup/",
        {
            "username": "newbie",
            "email": "newbie@example.org",
            "password1": "a-long-pass-phrase-9",
            "password2": "a-long-pass-phrase-9",
        },
    )
    assert response.status_code == 302 and response["Location"] == "/dashboard/"
    user = User.objects.get(username="newbie")
    assert not user.groups.exists() and not user.is_staff
    assert client.get("/dashboard/").status_code == 200


def test_signup_errors_are_beside_fields_and_input_is_kept(client, alice):
    response = client.post(
        "/signup/", {"username": "ALICE", "email": "not-an-email", "password1": "short", "password2": "different"}
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert 'value="ALICE"' in body and 'value="not-an-email"' in body
    for field in ("username", "email", "password2"):
        assert f'id="id_{field}_errors"' in body, field
    assert User.objects.filter(username__iexact="alice").count() == 1


def test_login_and_logout(client, alice):
    alice.set_password("pw-for-alice-123")
    alice.save()
    bad = client.post("/login/", {"username": "alice", "password": "wrong"})
    assert bad.status_code == 200 and "Please enter a correct username and password" in bad.content.decode()
    assert 'value="alice"' in bad.content.decode()
    ok = client.post("/login/", {"username": "alice", "password": "pw-for-alice-123"})
    assert ok.status_code == 302 and ok["Location"] == "/dashboard/"
    assert client.post("/logout/").status_code == 302
    assert client.get("/dashboard/").status_code == 302


def test_password_reset_sends_an_email_whose_link_works(client, alice):
    alice.email = "alice@example.org"
    alice.save()
    form_page = client.get("/password-reset/").content.decode()
    assert "Send the reset link" in form_page and "Skip to main content" in form_page  # ours, not the admin's
    assert client.post("/password-reset/", {"email": "alice@example.org"}).status_code == 302
    assert mail.outbox[0].subject == "Reset your Model Commons password"
    assert len(mail.outbox) == 1
    link = re.search(r"http://testserver(/password-reset/\S+/)", mail.outbox[0].body).group(1)
    form_page = client.get(link, follow=True)
    assert form_page.status_code == 200 and "Choose a new password" in form_page.content.decode()
    set_url = form_page.redirect_chain[-1][0] if form_page.redirect_chain else link
    done = client.post(set_url, {"new_password1": "another-long-pass-7", "new_password2": "another-long-pass-7"})
    assert done.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password("another-long-pass-7")


def test_csrf_is_enforced_on_forms(alice):
    client = Client(enforce_csrf_checks=True)
    assert client.post("/signup/", {"username": "x"}).status_code == 403
    client.force_login(alice)
    assert client.post("/tokens/", {"name": "t", "scopes": ["read"], "expires_in_days": 5}).status_code == 403
    page = client.get("/tokens/")
    assert 'name="csrfmiddlewaretoken"' in page.content.decode()


# --- Tokens ---------------------------------------------------------------------------------------


def test_token_is_shown_once_listed_and_revocable(alice):
    client = logged_in(alice)
    response = client.post("/tokens/", {"name": "ci", "scopes": ["read", "jobs"], "expires_in_days": 30})
    assert response.status_code == 200
    raw = re.search(r"(mc_[A-Za-z0-9_\-]+)", response.content.decode()).group(1)
    token = PersonalAccessToken.objects.get(user=alice, name="ci")
    assert token.scopes == ["read", "jobs"]
    listing = client.get("/tokens/").content.decode()
    assert raw not in listing and token.prefix in listing
    api = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.get("/api/v1/me/").status_code == 200
    assert client.post(f"/tokens/{token.pk}/revoke/").status_code == 302
    assert api.get("/api/v1/me/").status_code == 401


def test_token_form_errors_kept(alice):
    client = logged_in(alice)
    response = client.post("/tokens/", {"name": "keep-me", "scopes": ["admin"], "expires_in_days": 5})
    assert response.status_code == 400
    body = response.content.decode()
    assert 'value="keep-me"' in body and 'id="id_scopes_errors"' in body
    # The service's limit on expiry comes back beside the field it concerns.
    response = client.post("/tokens/", {"name": "keep-me", "scopes": ["read"], "expires_in_days": 9999})
    assert response.status_code == 400
    body = response.content.decode()
    assert 'id="id_expires_in_days_errors"' in body and 'value="9999"' in body
    assert not PersonalAccessToken.objects.filter(user=alice).exists()


def test_cannot_revoke_someone_elses_token(alice, bob):
    from apps.accounts.services import token_create

    token, _ = token_create(user=bob, name="bobs", scopes=["read"])
    assert logged_in(alice).post(f"/tokens/{token.pk}/revoke/").status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


# --- Variants -------------------------------------------------------------------------------------


def test_variant_page_visibility(digits_world, client):
    users = digits_world["users"]
    assert client.get("/variants/commons/digits-mlp/").status_code == 200
    assert client.get("/variants/alice/digits-mlp-int8/").status_code == 404  # a draft
    assert logged_in(users["bob"]).get("/variants/alice/digits-mlp-int8/").status_code == 404
    assert logged_in(users["alice"]).get("/variants/alice/digits-mlp-int8/").status_code == 200
    assert logged_in(users["reviewer1"]).get("/variants/alice/digits-mlp-int8/").status_code == 200
    assert client.get("/variants/nobody/nothing/").status_code == 404


def test_variant_page_shows_lineage_svg(digits_world):
    body = logged_in(digits_world["users"]["alice"]).get("/variants/alice/digits-mlp-int8/").content.decode()
    assert "<svg" in body and "commons/digits-mlp" in body and 'class="lineage"' in body


def test_parent_suggestions_only_visible_variants(digits_world):
    bob = logged_in(digits_world["users"]["bob"])
    body = bob.get("/variants/parent-suggestions/", {"parents": "digits"}).content.decode()
    assert "commons/digits-mlp" in body and "alice/digits-mlp-int8" not in body


def test_propose_variant_errors_kept_in_place(digits_world):
    client = logged_in(digits_world["users"]["bob"])
    response = client.post(
        "/variants/new/",
        {
            "name": "bad name!",
            "relation": "quantized",
            "parents": "commons/no-such",
            "license": "apache-2.0",
            "parameters": "-3",
            "summary": "kept summary",
        },
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert 'value="bad name!"' in body and "kept summary" in body
    # The registry reports every problem at once, each beside its field.
    for field in ("name", "parents", "parameters"):
        assert f'id="id_{field}_errors"' in body, field


def test_propose_variant_creates_a_draft(digits_world):
    client = logged_in(digits_world["users"]["bob"])
    card = "# mine\n\n" + "A card with enough words. " * 12
    response = client.post(
        "/variants/new/",
        {
            "name": "digits-mine",
            "relation": "quantized",
            "parents": "commons/digits-mlp",
            "license": "apache-2.0",
            "parameters": "4810",
            "precision": "int8",
            "task": "image-classification",
            "card": card,
        },
    )
    assert response.status_code == 302 and response["Location"] == "/variants/bob/digits-mine/"
    page = client.get("/variants/bob/digits-mine/").content.decode()
    assert "Upload an artifact" in page


def test_artifact_upload_by_owner_only(digits_world):
    onnx = DIGITS / "digits-mlp-int8.onnx"
    alice = logged_in(digits_world["users"]["alice"])
    bob = logged_in(digits_world["users"]["bob"])
    url = "/variants/alice/digits-mlp-int8/revisions/1/artifacts/"
    with onnx.open("rb") as fh:
        assert bob.post(url, {"file": fh, "path": "other.onnx"}).status_code == 404
    with onnx.open("rb") as fh:
        response = alice.post(url, {"file": fh, "path": "model-copy.onnx"})
    assert response.status_code == 302
    assert "model-copy.onnx" in alice.get("/variants/alice/digits-mlp-int8/").content.decode()


def test_artifact_upload_without_file_shows_error(digits_world):
    alice = logged_in(digits_world["users"]["alice"])
    response = alice.post("/variants/alice/digits-mlp-int8/revisions/1/artifacts/", {"path": "kept.onnx"})
    assert response.status_code == 400
    body = response.content.decode()
    assert 'id="id_file_errors"' in body and 'value="kept.onnx"' in body


# --- Jobs -----------------------------------------------------------------------------------------


def test_job_submit_form_is_generated_from_schema(digits_world):
    alice = logged_in(digits_world["users"]["alice"])
    body = alice.get("/variants/alice/digits-mlp-int8/jobs/new/").content.decode()
    assert 'name="config-limit"' in body and 'name="config-batch_size"' in body


def test_job_submit_bad_config_errors_beside_field(digits_world):
    alice = logged_in(digits_world["users"]["alice"])
    response = alice.post(
        "/variants/alice/digits-mlp-int8/jobs/new/",
        {"benchmark": "digits", "revision": "1", "config-limit": "-5", "config-batch_size": "abc"},
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert 'value="-5"' in body and 'value="abc"' in body
    assert 'id="id_config-batch_size_errors"' in body


def test_job_submit_and_job_page(digits_world):
    # Not a transactional test: the on-commit dispatch never fires, so the job just stays queued.
    alice = logged_in(digits_world["users"]["alice"])
    response = alice.post(
        "/variants/alice/digits-mlp-int8/jobs/new/", {"benchmark": "digits", "revision": "1", "config-limit": "50"}
    )
    assert response.status_code == 302
    job_url = response["Location"]
    assert re.fullmatch(r"/jobs/\d+/", job_url)
    page = alice.get(job_url).content.decode()
    assert 'hx-trigger="every 1s"' in page and 'data-testid="job-progress"' in page
    fragment = alice.get(job_url + "progress/")
    assert fragment.status_code == 200 and "<html" not in fragment.content.decode()
    # The job belongs to a draft: other contributors and anonymous users get 404.
    assert Client().get(job_url).status_code == 404
    assert logged_in(digits_world["users"]["bob"]).get(job_url + "progress/").status_code == 404


# --- Leaderboards ---------------------------------------------------------------------------------


def test_leaderboard_pages(digits_world, client):
    assert client.get("/leaderboards/").status_code == 200
    assert client.get("/leaderboards/digits/").status_code == 200
    assert client.get("/leaderboards/no-such-benchmark/").status_code == 404


def test_dashboard_lists_my_variants(digits_world):
    body = logged_in(digits_world["users"]["alice"]).get(reverse("web:dashboard")).content.decode()
    assert "alice/digits-mlp-int8" in body and "bob/digits-mlp-pruned" not in body


# --- Checklist, reviews, comments, publication --------------------------------------------------


@pytest.fixture
def submitted(digits_world, django_capture_on_commit_callbacks):  # type: ignore[no-untyped-def]
    """alice/digits-mlp-int8 revision 1, submitted (its checklist is made by the after-commit hook)."""
    from apps.registry.services import revision_submit

    variant = digits_world["int8"]
    with django_capture_on_commit_callbacks(execute=True):
        revision_submit(revision=variant.current_revision, actor=digits_world["users"]["alice"])
    return digits_world


def test_checklist_answer_inline_with_htmx(submitted):
    alice = logged_in(submitted["users"]["alice"])
    page = alice.get("/variants/alice/digits-mlp-int8/").content.decode()
    assert 'data-testid="checklist-item-reproducibility-recipe"' in page and "hx-post=" in page
    url = "/variants/alice/digits-mlp-int8/revisions/1/checklist/reproducibility-recipe/"
    bad = alice.post(url, {"status": "met", "justification": "kept words", "evidence_url": ""}, HTTP_HX_REQUEST="true")
    assert bad.status_code == 400
    body = bad.content.decode()
    assert "<html" not in body and 'role="alert"' in body and 'value="kept words"' in body
    ok = alice.post(url, {"status": "met", "evidence_url": "https://example.org/recipe"}, HTTP_HX_REQUEST="true")
    assert ok.status_code == 200
    assert 'data-testid="item-status">Met<' in ok.content.decode()


def test_an_approved_revision_still_shows_the_owner_the_checklist_form(submitted):
    """Issue 12, finding 12: approvals before the checklist is finished leave it answerable until publication."""
    from apps.reviews.services import review_submit

    users = submitted["users"]
    revision = submitted["int8"].current_revision
    for name in ("reviewer1", "reviewer2"):
        review_submit(revision=revision, reviewer=users[name], decision="approve", body="LGTM")
    revision.refresh_from_db()
    assert revision.status == "approved"
    alice = logged_in(users["alice"])
    page = alice.get("/variants/alice/digits-mlp-int8/").content.decode()
    assert 'data-testid="checklist-item-reproducibility-recipe"' in page and "hx-post=" in page
    url = "/variants/alice/digits-mlp-int8/revisions/1/checklist/reproducibility-recipe/"
    ok = alice.post(url, {"status": "met", "evidence_url": "https://example.org/recipe"}, HTTP_HX_REQUEST="true")
    assert ok.status_code == 200 and 'data-testid="item-status">Met<' in ok.content.decode()


def test_checklist_hidden_from_others_and_answers_only_by_owner(submitted):
    url = "/variants/alice/digits-mlp-int8/revisions/1/checklist/reproducibility-recipe/"
    data = {"status": "met", "evidence_url": "https://example.org/recipe"}
    assert logged_in(submitted["users"]["bob"]).post(url, data).status_code == 404
    reviewer = logged_in(submitted["users"]["reviewer1"])
    response = reviewer.post(url, data, follow=True)
    assert "Only the owner" in response.content.decode()


def test_review_errors_in_place_and_own_work_refused(submitted):
    reviewer = logged_in(submitted["users"]["reviewer1"])
    url = "/variants/alice/digits-mlp-int8/revisions/1/reviews/"
    response = reviewer.post(url, {"body": "kept review text"})
    assert response.status_code == 400
    body = response.content.decode()
    assert "kept review text" in body and 'id="review-decision-errors"' in body
    # The author sees no review form, and a forged POST is refused by the service.
    alice = logged_in(submitted["users"]["alice"])
    assert "Send review" not in alice.get("/variants/alice/digits-mlp-int8/").content.decode()
    assert alice.post(url, {"decision": "approve"}).status_code in (400, 403)
    ok = reviewer.post(url, {"decision": "comment", "body": "Looks fine so far."})
    assert ok.status_code == 302


def test_publish_refused_lists_what_the_gate_needs(submitted):
    maintainer = logged_in(submitted["users"]["maintainer"])
    page = maintainer.get("/variants/alice/digits-mlp-int8/").content.decode()
    assert 'data-testid="gate-missing"' in page
    response = maintainer.post("/variants/alice/digits-mlp-int8/revisions/1/publish/", follow=True)
    assert response.status_code == 200
    assert "approval" in response.content.decode().lower()
    assert submitted["int8"].__class__.objects.get(pk=submitted["int8"].pk).status == "submitted"


def test_only_maintainers_get_publish_buttons(submitted):
    assert (
        "Publish</button>"
        not in logged_in(submitted["users"]["alice"]).get("/variants/alice/digits-mlp-int8/").content.decode()
    )
    response = logged_in(submitted["users"]["alice"]).post(
        "/variants/alice/digits-mlp-int8/revisions/1/publish/", follow=True
    )
    assert "Only maintainers" in response.content.decode()


def test_comment_errors_and_post(digits_world):
    bob = logged_in(digits_world["users"]["bob"])
    url = "/variants/commons/digits-mlp/comments/"
    bad = bob.post(url, {"body": "   "})
    assert bad.status_code == 400 and 'id="comment-body-errors"' in bad.content.decode()
    assert bob.post(url, {"body": "Nice **baseline**."}).status_code == 302
    assert "<strong>baseline</strong>" in Client().get("/variants/commons/digits-mlp/").content.decode()
    assert Client().post(url, {"body": "anonymous"}).status_code == 302  # to the login page


def test_reviewer_dashboard_has_queue(submitted):
    body = logged_in(submitted["users"]["reviewer1"]).get("/dashboard/").content.decode()
    assert "Review queue" in body and 'href="/variants/alice/digits-mlp-int8/"' in body
    assert "Review queue" not in logged_in(submitted["users"]["bob"]).get("/dashboard/").content.decode()


# --- Jobs: failure details ------------------------------------------------------------------------


def test_failed_job_shows_reason_and_message(digits_world):
    from apps.benchmarks import services as job_services

    alice = digits_world["users"]["alice"]
    job, _ = job_services.job_submit(
        actor=alice,
        revision=digits_world["int8"].current_revision,
        benchmark=digits_world["benchmark"],
        config={"limit": 10},
    )
    claimed = job_services.job_claim(job_id=job.pk, worker="test-host:1")
    assert claimed is not None
    job_services.job_fail(
        job_id=job.pk,
        attempt=claimed.attempts,
        reason="unsafe_format",
        message="Only pickle-based artifacts.",
        log_tail="loading...\nrefused",
    )
    body = logged_in(alice).get(f"/jobs/{job.pk}/progress/").content.decode()
    assert "unsafe_format" in body and "Only pickle-based artifacts." in body and "refused" in body
    assert 'hx-trigger="every 1s"' not in body  # terminal: polling stops


# --- Leaderboard filters --------------------------------------------------------------------------


def test_leaderboard_bad_filter_shows_error_beside_field(digits_world, client):
    response = client.get("/leaderboards/digits/", {"verified": "maybe", "task": "kept-task"})
    assert response.status_code == 400
    body = response.content.decode()
    assert 'id="id_verified_errors"' in body and 'value="kept-task"' in body


def test_leaderboard_sort_links_keep_filters(digits_world, client):
    body = client.get("/leaderboards/digits/", {"relation": "quantized"}).content.decode()
    assert "?relation=quantized&amp;sort=variant" in body


def test_suite_pages(digits_world, client):
    from apps.leaderboards.services import suite_create

    suite_create(
        actor=digits_world["users"]["maintainer"],
        slug="tiny",
        name="Tiny suite",
        benchmarks=[{"benchmark": "digits", "weight": 1}],
    )
    assert "Tiny suite" in client.get("/leaderboards/").content.decode()
    assert client.get("/leaderboards/suites/tiny/").status_code == 200
    assert client.get("/leaderboards/suites/nope/").status_code == 404


def test_propose_from_uploaded_readme_front_matter(digits_world):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from apps.registry.models import Variant

    readme = (
        "---\nlicense: mit\nbase_model: commons/digits-mlp\nbase_model_relation: quantized\n"
        "pipeline_tag: image-classification\n---\n# From a README\n\n" + "Words about the model. " * 12
    )
    client = logged_in(digits_world["users"]["bob"])
    response = client.post(
        "/variants/new/",
        {
            "name": "from-readme",
            "relation": "",
            "parents": "",
            "license": "",
            "card_file": SimpleUploadedFile("README.md", readme.encode(), content_type="text/markdown"),
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    variant = Variant.objects.by_full_name("bob/from-readme").get()
    assert (variant.license, variant.relation, variant.task) == ("mit", "quantized", "image-classification")
    assert [link.parent.full_name for link in variant.parent_links.all()] == ["commons/digits-mlp"]
    assert "# From a README" in variant.card


def test_propose_readme_must_be_text(digits_world):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client = logged_in(digits_world["users"]["bob"])
    response = client.post(
        "/variants/new/",
        {
            "name": "x",
            "relation": "quantized",
            "parents": "commons/digits-mlp",
            "card_file": SimpleUploadedFile("README.md", b"\xff\xfe\x00bad"),
        },
    )
    assert response.status_code == 400 and 'id="id_card_file_errors"' in response.content.decode()


# --- Query counts: pages do not grow with the number of rows ------------------------------------------------


def test_list_pages_query_count_does_not_grow(digits_world):
    from apps.registry.services import variant_create

    bob_user = digits_world["users"]["bob"]
    bob = logged_in(bob_user)
    urls = ("/variants/", "/dashboard/")
    for url in urls:
        bob.get(url)  # warm the session
    before = {url: get_counted(bob, url)[1] for url in urls}
    for i in range(12):
        variant_create(
            owner=bob_user, name=f"many-{i}", relation="quantized", parents=["commons/digits-mlp"], license="apache-2.0"
        )
    after = {url: get_counted(bob, url)[1] for url in urls}
    assert after == before


def test_edit_draft_variant_and_stale_etag(digits_world):
    alice = logged_in(digits_world["users"]["alice"])
    url = "/variants/alice/digits-mlp-int8/edit/"
    page = alice.get(url)
    assert page.status_code == 200
    etag = html.unescape(re.search(r'name="etag" value="([^"]+)"', page.content.decode()).group(1))
    data = {
        "relation": "quantized",
        "parents": "commons/digits-mlp",
        "license": "apache-2.0",
        "parameters": "4810",
        "precision": "int8",
        "task": "image-classification",
        "summary": "edited summary",
        "card": digits_world["int8"].card,
        "etag": etag,
    }
    assert alice.post(url, data).status_code == 302
    digits_world["int8"].refresh_from_db()
    assert digits_world["int8"].summary == "edited summary"
    stale = alice.post(url, {**data, "summary": "second edit"})  # the same, now stale, ETag
    assert stale.status_code == 400 and "changed since you read it" in stale.content.decode()
    assert "second edit" in stale.content.decode()
    assert logged_in(digits_world["users"]["bob"]).get(url).status_code == 404


def test_submitted_variant_cannot_be_edited_but_can_get_a_new_revision(submitted):
    alice = logged_in(submitted["users"]["alice"])
    page = alice.get("/variants/alice/digits-mlp-int8/").content.decode()
    assert "Edit details and card" not in page
    response = alice.post(
        "/variants/alice/digits-mlp-int8/edit/",
        {"relation": "quantized", "parents": "commons/digits-mlp", "summary": "too late"},
    )
    assert response.status_code == 400 and "new revision" in response.content.decode()
    alice.post("/variants/alice/digits-mlp-int8/revisions/1/withdraw/")
    assert alice.post("/variants/alice/digits-mlp-int8/revisions/1/new-revision/").status_code == 302
    page = alice.get("/variants/alice/digits-mlp-int8/").content.decode()
    assert "Revision 2" in page and "Edit details and card" in page


def test_flag_published_variant_errors_in_place(digits_world):
    from apps.reviews.models import Flag

    bob = logged_in(digits_world["users"]["bob"])
    page = bob.get("/variants/commons/digits-mlp/").content.decode()
    assert "Report a problem with this variant" in page
    bad = bob.post("/variants/commons/digits-mlp/flags/", {"kind": "", "description": "kept flag text"})
    assert bad.status_code == 400
    body = bad.content.decode()
    assert 'id="id_kind_errors"' in body and "kept flag text" in body and "<details" in body and " open>" in body
    ok = bob.post(
        "/variants/commons/digits-mlp/flags/",
        {
            "kind": "misleading_card",
            "description": "The card claims 99% accuracy.",
            "evidence_url": "https://example.org/eval",
        },
    )
    assert ok.status_code == 302
    assert Flag.objects.filter(variant=digits_world["base"], reporter=digits_world["users"]["bob"]).count() == 1
    # Drafts cannot be flagged by people who cannot see them.
    assert bob.post("/variants/alice/digits-mlp-int8/flags/", {"kind": "spam"}).status_code == 404


def _run_job(actor, revision, benchmark, accuracy):  # type: ignore[no-untyped-def]
    from apps.benchmarks import services as job_services

    job, _ = job_services.job_submit(actor=actor, revision=revision, benchmark=benchmark)
    claimed = job_services.job_claim(job_id=job.pk, worker="test-host:1")
    job_services.job_complete(
        job_id=job.pk,
        attempt=claimed.attempts,
        result=RunResult(
            metrics={"accuracy": accuracy, "macro_f1": 0.9},
            stderr={},
            samples=450,
            duration_s=0.1,
            runner="onnx-classification",
            runner_version="1.0.0",
            environment={},
        ),
    )
    return job


def test_variant_page_shows_delta_against_parent_results(digits_world, django_capture_on_commit_callbacks):
    users = digits_world["users"]
    with django_capture_on_commit_callbacks(execute=True):
        _run_job(users["maintainer"], digits_world["base"].current_revision, digits_world["benchmark"], 0.97)
    with django_capture_on_commit_callbacks(execute=True):
        _run_job(users["alice"], digits_world["int8"].current_revision, digits_world["benchmark"], 0.95)
    body = logged_in(users["alice"]).get("/variants/alice/digits-mlp-int8/").content.decode()
    assert 'data-testid="job-delta"' in body and "commons/digits-mlp -0.0200" in body
    board = Client().get("/leaderboards/digits/").content.decode()
    assert "commons/digits-mlp" in board and "0.9700" in board
