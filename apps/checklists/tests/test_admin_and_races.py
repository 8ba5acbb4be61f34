"""The moderation console for templates, the loader command, and races between submissions, detectives and
answers (real transactions, several threads)."""

from __future__ import annotations

import threading
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from apps.checklists import services
from apps.checklists.models import Checklist, ChecklistItem, ChecklistTemplate


@pytest.mark.django_db
def test_admin_keeps_a_template_in_use_read_only_and_copies_it_into_a_new_version(int8_submitted, client, make_user):
    admin_user = make_user("root", is_staff=True, is_superuser=True)
    client.force_login(admin_user)
    v1 = ChecklistTemplate.objects.get(slug="open-model-practices")
    assert client.get("/admin/checklists/checklisttemplate/").status_code == 200
    page = client.get(f"/admin/checklists/checklisttemplate/{v1.pk}/change/")
    assert page.status_code == 200
    assert b'name="name"' not in page.content  # read-only: the version is in use
    resp = client.post("/admin/checklists/checklisttemplate/", {"action": "new_version", "_selected_action": [v1.pk]})
    assert resp.status_code == 302
    v2 = ChecklistTemplate.objects.get(slug="open-model-practices", version=2)
    assert v2.is_default and v2.based_on == v1 and v2.items.count() == v1.items.count()
    edit = client.get(f"/admin/checklists/checklisttemplate/{v2.pk}/change/")
    assert b'name="name"' in edit.content  # not in use yet: editable
    checklist = Checklist.objects.get(revision=int8_submitted)
    assert client.get(f"/admin/checklists/checklist/{checklist.pk}/change/").status_code == 200
    resp = client.post("/admin/checklists/checklist/", {"action": "run_detectives", "_selected_action": [checklist.pk]})
    assert resp.status_code == 302
    for model in ("revisioncomponent", "revisionopenness", "checklist"):
        assert client.get(f"/admin/checklists/{model}/?q=alice").status_code == 200


@pytest.mark.django_db
def test_the_loader_command_is_idempotent():
    out = StringIO()
    call_command("checklist_templates_load", stdout=out)
    call_command("checklist_templates_load", stdout=out)
    assert "loaded open-model-practices v1 (14 items)" in out.getvalue()
    assert "already present: open-model-practices v1" in out.getvalue()
    assert ChecklistTemplate.objects.count() == 1


def _in_threads(n: int, fn) -> list[object]:  # type: ignore[no-untyped-def]
    results: list[object] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def run() -> None:
        try:
            barrier.wait()
            results.append(fn())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    return results


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_reads_create_one_checklist(digits_world):
    from apps.registry.services import revision_transition

    revision = digits_world["int8"].current_revision
    # Submitted without running the hooks, as a revision from before this app: the first reads create it.
    revision_transition(revision=revision, target="submitted", actor=digits_world["int8"].owner)
    services.template_default()
    ids = _in_threads(6, lambda: services.checklist_ensure(revision=revision.pk).pk)  # type: ignore[union-attr]
    assert len(set(ids)) == 1
    assert Checklist.objects.filter(revision=revision).count() == 1
    assert ChecklistItem.objects.filter(checklist_id=ids[0]).count() == 14


@pytest.mark.django_db(transaction=True)
def test_detectives_and_answers_racing_leave_every_answer_in_place(digits_world):
    from apps.registry.services import revision_transition

    variant = digits_world["int8"]
    revision = variant.current_revision
    revision_transition(revision=revision, target="submitted", actor=variant.owner)
    services.checklist_ensure(revision=revision.pk)
    keys = ["contamination-statement", "compute-energy", "training-data-disclosed", "reproducibility-recipe"]
    answers = {
        "contamination-statement": {"status": "met", "justification": "Held-out split; never seen in training."},
        "compute-energy": {"status": "met", "justification": "Two CPU-seconds on a laptop, about 0.00002 kWh."},
        "training-data-disclosed": {"status": "n/a", "justification": "Quantization only: no training data."},
        "reproducibility-recipe": {"status": "met", "evidence_url": "https://example.org/build.py"},
    }
    work = iter([*(("answer", k) for k in keys), *(("evaluate", None) for _ in range(4))])
    lock = threading.Lock()

    def step() -> str:
        with lock:
            kind, key = next(work)
        if kind == "answer":
            services.checklist_item_answer(revision=revision, key=key, actor=variant.owner, changes=answers[key])
        else:
            services.checklist_reevaluate(revision_id=revision.pk)
        return kind

    assert sorted(_in_threads(8, step)) == ["answer"] * 4 + ["evaluate"] * 4
    rows = {r.item.key: r for r in ChecklistItem.objects.filter(checklist__revision=revision).select_related("item")}
    for key, answer in answers.items():
        assert (rows[key].status, rows[key].source) == (answer["status"], "human")
    assert rows["safe-serialization"].status == "met"
    checklist = Checklist.objects.get(revision=revision)
    assert checklist.progress["gold"] == 100
