"""The whole contributor journey in a real headless Chromium, against a live server and a real Celery worker:
sign up → propose a quantized digits variant → upload its ONNX file → submit it → run the digits job and watch
the progress bar reach 100% → answer the checklist → reviewers verify and approve (their own browser contexts)
→ the maintainer publishes → the variant appears on the leaderboard."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from .conftest import assert_accessible, login, shot

pytestmark = [pytest.mark.browser, pytest.mark.flow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
ONNX = ROOT / "fixtures" / "digits" / "digits-mlp-int8.onnx"
CARD = """# digits-mlp-int8

The commons digits MLP with its weights quantized to int8 by onnxruntime's dynamic quantization.
It is a contributor variant made for the Model Commons walkthrough.

## Intended use
Teaching and smoke-testing the benchmark pipeline on a CPU in seconds.

## Limitations
Only 8x8 grey-level digits scaled to [0, 1]; quantization may cost a little accuracy.

## Training data
The parent was trained on sklearn.datasets.load_digits (UCI ML digits), 75/25 split, random_state=0.

## Evaluation
Accuracy and macro-F1 on the 450 held-out digits with the `digits` benchmark.
"""


def htmx_settled(page):  # type: ignore[no-untyped-def]
    """Wait until htmx has settled the last swap: it binds the swapped-in elements (here the filter form itself)
    only when it settles, about 20 ms later, and a change made before that sends no request."""
    page.wait_for_function(
        "() => !document.querySelector('.htmx-added, .htmx-settling, .htmx-swapping, .htmx-request')"
    )


@pytest.fixture
def demo(transactional_db):  # type: ignore[no-untyped-def]
    from apps.demo.seed import seed_demo

    seed_demo("commons-demo")


def test_contributor_journey(new_context, live_server, demo, celery_worker_process):
    from apps.benchmarks.models import Benchmark
    from apps.benchmarks.services import job_submit
    from apps.registry.models import Variant

    # The parent gets a result too (the maintainer ran it), so the new variant's delta has something to compare.
    base = Variant.objects.by_full_name("commons/digits-mlp").get()
    job_submit(
        actor=base.owner.__class__.objects.get(username="maintainer"),
        revision=base.current_revision,
        benchmark=Benchmark.objects.get(slug="digits"),
    )
    carol = new_context().new_page()

    # 1. Sign up from the start page.
    carol.goto("/")
    carol.get_by_role("link", name="Sign up").first.click()
    carol.get_by_label("Username").fill("carol")
    carol.get_by_label("Email").fill("carol@example.org")
    carol.get_by_label("Password", exact=True).fill("carol-long-pass-42")
    carol.get_by_label("Password confirmation").fill("carol-long-pass-42")
    carol.get_by_role("button", name="Create account").click()
    carol.wait_for_url(re.compile(r".*/dashboard/$"))
    shot(carol, "01-dashboard-new-user")

    # 2. Propose a quantized digits variant; the parent field suggests visible variants as you type.
    carol.get_by_role("link", name="Propose a variant").first.click()
    carol.get_by_label("Name").first.fill("digits-mlp-int8")
    carol.get_by_label("Relation").select_option("quantized")
    carol.get_by_label("Parent variant(s)").press_sequentially("commons/dig", delay=30)
    expect(carol.locator('#parent-suggestions option[value="commons/digits-mlp"]')).to_have_count(1)
    carol.get_by_label("Parent variant(s)").fill("commons/digits-mlp")
    carol.get_by_label("Licence").fill("apache-2.0")
    carol.get_by_label("Parameters").fill("4810")
    carol.get_by_label("Precision").select_option("int8")
    carol.get_by_label("Task").select_option("image-classification")
    carol.get_by_label("Summary").fill("The commons digits MLP, int8-quantized.")
    carol.get_by_label("Model card (markdown)").fill(CARD)
    shot(carol, "02-propose")
    carol.get_by_role("button", name="Create the draft").click()
    carol.wait_for_url(re.compile(r".*/variants/carol/digits-mlp-int8/$"))
    expect(carol.get_by_test_id("variant-status")).to_have_text("Draft")
    expect(carol.locator("svg.lineage")).to_contain_text("commons/digits-mlp")

    # 3. Upload the ONNX file; the XHR upload shows its progress bar, then the page lists the artifact.
    carol.evaluate("() => { window.__sameDocument = true; }")
    carol.get_by_label("File").set_input_files(str(ONNX))
    carol.get_by_role("button", name="Upload").click()
    expect(carol.locator("#upload-progress")).to_be_visible()
    expect(carol.locator("#upload-percent")).to_contain_text("100%", timeout=30_000)
    assert carol.locator("#upload-bar").evaluate("bar => bar.value") == 100
    expect(carol.locator("#revision-list")).to_contain_text("digits-mlp-int8.onnx")
    assert carol.evaluate("() => window.__sameDocument === true"), "the upload reloaded the page"
    carol.reload()

    # 4. Submit the revision for review.
    carol.get_by_role("button", name="Submit for review").click()
    expect(carol.get_by_test_id("revision-status")).to_have_text("Submitted")
    shot(carol, "03-variant-submitted")

    # 5. Run the digits job and watch its progress bar reach 100% without a reload.
    carol.get_by_role("link", name="Run a benchmark").click()
    carol.get_by_label("Benchmark").select_option("digits")
    carol.get_by_role("button", name="Submit the job").click()
    carol.wait_for_url(re.compile(r".*/jobs/\d+/$"))
    carol.evaluate("() => { window.__sameDocument = true; }")
    expect(carol.get_by_test_id("job-percent")).to_have_text("100%", timeout=120_000)
    expect(carol.get_by_test_id("job-status")).to_have_text("succeeded")
    assert carol.evaluate("() => window.__sameDocument === true"), "the job page reloaded instead of updating"
    assert carol.get_by_test_id("job-progress").get_attribute("aria-valuenow") == "100"
    expect(carol.locator("main")).to_contain_text("accuracy")
    expect(carol.get_by_role("button", name="Cancel this job")).to_have_count(0)
    shot(carol, "04-job-succeeded")
    assert_accessible(carol)

    # 6. Answer the manual checklist items inline (htmx swaps just the item).
    carol.goto("/variants/carol/digits-mlp-int8/")
    answers = {
        "training-data-disclosed": ("met", "", "https://scikit-learn.org/stable/datasets/toy_dataset.html"),
        "contamination-statement": ("met", "The test split was never seen in training or quantization.", ""),
        "reproducibility-recipe": ("met", "", "https://github.com/example/digits-int8/blob/main/quantize.py"),
    }
    # A "met" without the evidence URL the item needs is refused in place, keeping what was typed.
    item = carol.get_by_test_id("checklist-item-reproducibility-recipe")
    item.get_by_label("Answer", exact=True).select_option("met")
    item.get_by_label("Justification").fill("typed before the URL")
    item.get_by_role("button", name=re.compile("^Save answer")).click()
    item = carol.get_by_test_id("checklist-item-reproducibility-recipe")
    expect(item.get_by_role("alert")).to_be_visible()
    assert item.get_by_label("Justification").input_value() == "typed before the URL"
    for key, (status, justification, url) in answers.items():
        item = carol.get_by_test_id(f"checklist-item-{key}")
        item.get_by_label("Answer", exact=True).select_option(status)
        if justification:
            item.get_by_label("Justification").fill(justification)
        if url:
            item.get_by_label("Evidence URL").fill(url)
        item.get_by_role("button", name=re.compile("^Save answer")).click()
        expect(carol.get_by_test_id(f"checklist-item-{key}").get_by_test_id("item-status")).to_have_text("Met")
    shot(carol, "05-checklist-answered")
    assert_accessible(carol)

    # 7. Two reviewers, each in their own browser context, verify the evidence and approve.
    for name in ("reviewer1", "reviewer2"):
        reviewer = new_context().new_page()
        login(reviewer, name, "commons-demo")
        reviewer.goto("/dashboard/")
        reviewer.locator("section:has(#queue-h)").get_by_role("link", name="carol/digits-mlp-int8").click()
        reviewer.wait_for_url(re.compile(r".*/variants/carol/digits-mlp-int8/$"))
        for key in ("training-data-disclosed", "contamination-statement"):
            item = reviewer.get_by_test_id(f"checklist-item-{key}")
            button = item.get_by_role("button", name=re.compile("^Verify"))
            if button.count():
                button.click()
                expect(reviewer.get_by_test_id(f"checklist-item-{key}")).to_contain_text("verified by")
        reviewer.get_by_label("Approve").check()
        reviewer.get_by_label("Review (markdown)").fill("Checked the card, the artifact hash and the job result.")
        reviewer.get_by_role("button", name="Send review").click()
        expect(reviewer.locator(".messages")).to_contain_text("Approve")
        shot(reviewer, f"06-review-{name}")

    # 8. The maintainer sees the gate hold and publishes.
    maintainer = new_context().new_page()
    login(maintainer, "maintainer", "commons-demo")
    maintainer.goto("/variants/carol/digits-mlp-int8/")
    expect(maintainer.locator("section.gate")).to_contain_text("The publication gate holds")
    maintainer.get_by_role("button", name="Publish").click()
    expect(maintainer.get_by_test_id("variant-status")).to_have_text("Published")
    expect(maintainer.get_by_test_id("job-delta").first).to_contain_text("commons/digits-mlp")
    shot(maintainer, "07-published")
    assert_accessible(maintainer)

    # 9. Anyone sees it on the digits leaderboard, with its delta against the parent.
    anonymous = new_context().new_page()
    anonymous.goto("/leaderboards/digits/")
    board = anonymous.get_by_test_id("leaderboard")
    expect(board).to_contain_text("carol/digits-mlp-int8")
    row = board.locator("tr", has_text="carol/digits-mlp-int8")
    expect(row).to_contain_text(re.compile(r"commons/digits-mlp: [+-]\d"))
    # Filters apply without a reload (htmx) and the URL follows them.
    anonymous.evaluate("() => { window.__sameDocument = true; }")
    anonymous.get_by_label("Relation").select_option("pruned")
    expect(anonymous.get_by_test_id("leaderboard")).not_to_contain_text("carol/digits-mlp-int8")
    assert "relation=pruned" in anonymous.url
    htmx_settled(anonymous)
    anonymous.get_by_label("Relation").select_option("quantized")
    expect(anonymous.get_by_test_id("leaderboard")).to_contain_text("carol/digits-mlp-int8")
    assert anonymous.evaluate("() => window.__sameDocument === true")
    assert anonymous.locator("svg.chart").count() == 1
    shot(anonymous, "08-leaderboard")
    assert_accessible(anonymous)
