"""Registry rules, at the service layer: naming, lineage, licences, revisions, artifacts, lifecycle."""

import hashlib
import threading

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from apps.audit.models import AuditEvent
from apps.core.errors import (
    Conflict,
    InvalidTransition,
    PermissionDenied,
    PreconditionFailed,
    ValidationFailed,
)
from apps.core.testing import count_queries
from apps.registry import hooks, services
from apps.registry.licenses import license_lookup, license_suggestions
from apps.registry.models import Artifact, Revision, Variant
from apps.registry.selectors import variant_lineage
from apps.registry.tests.factories import CARD, make_original, make_variant, record

pytestmark = pytest.mark.django_db


# --- names -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["-starts-with-dash", ".hidden", "has space", "a/b", "x" * 97, "", "ünïcode"])
def test_bad_names_are_refused(alice, maintainer, name):
    base = make_original(maintainer)
    with pytest.raises(ValidationFailed) as exc:
        make_variant(alice, name, [base])
    assert "name" in exc.value.errors


def test_names_are_unique_per_owner_ignoring_case(alice, bob, maintainer):
    base = make_original(maintainer)
    make_variant(alice, "My-Model", [base])
    with pytest.raises(ValidationFailed) as exc:
        make_variant(alice, "my-model", [base])
    assert "already has a variant" in exc.value.errors["name"][0]
    assert make_variant(bob, "my-model", [base]).full_name == "bob/my-model"


def test_a_name_taken_by_a_racing_create_is_a_field_error_and_leaves_the_transaction_usable(
    alice, maintainer, monkeypatch
):
    """The unique constraint is the last word when two creates race past the name check: the loser gets the
    same field error, its rows are rolled back, and the caller's transaction goes on."""
    from apps.registry.models import Revision
    from apps.registry.services import variants as variant_services

    base = make_original(maintainer)
    make_variant(alice, "Raced", [base])
    monkeypatch.setattr(variant_services, "_check_name", lambda owner, name, errors: None)  # lost the race
    revisions_before = Revision.objects.count()
    with pytest.raises(ValidationFailed) as exc:
        make_variant(alice, "raced", [base])
    assert "already has a variant named 'raced'" in exc.value.errors["name"][0]
    assert Revision.objects.count() == revisions_before  # the connection still answers, nothing half-written
    assert make_variant(alice, "after-the-race", [base]).current_revision.number == 1


# --- relations and parents ----------------------------------------------------------------------------


def test_only_maintainers_create_originals(alice, maintainer):
    with pytest.raises(PermissionDenied):
        services.variant_create(owner=alice, name="mine", relation="original", license="mit")
    assert make_original(maintainer).relation == "original"


def test_maintainers_act_for_commons_but_nobody_else_does(alice, maintainer):
    from apps.registry.tests.factories import commons_user

    with pytest.raises(PermissionDenied):
        services.variant_create(owner=commons_user(), actor=alice, name="x", relation="original")
    base = make_original(maintainer, publish=False)
    services.variant_update(variant=base, actor=maintainer, summary="edited by a maintainer")
    with pytest.raises(PermissionDenied):
        services.variant_update(variant=base, actor=alice, summary="nope")


@pytest.mark.parametrize(
    "relation,count,ok",
    [
        ("original", 1, False),
        ("finetune", 0, False),
        ("finetune", 2, False),
        ("finetune", 1, True),
        ("adapter", 1, True),
        ("quantized", 2, False),
        ("merge", 1, False),
        ("merge", 2, True),
        ("merge", 3, True),
        ("distilled", 1, True),
        ("pruned", 0, False),
    ],
)
def test_parent_counts_per_relation(maintainer, relation, count, ok):
    bases = [make_original(maintainer, f"base-{i}") for i in range(3)]

    def call():
        return services.variant_create(
            owner=maintainer, actor=maintainer, name="v", relation=relation, parents=bases[:count], license="mit"
        )

    if ok:
        assert [link.parent for link in call().parent_links.all()] == bases[:count]
    else:
        with pytest.raises(ValidationFailed) as exc:
            call()
        assert "parents" in exc.value.errors


def test_parents_resolve_by_full_name_or_hub_id_in_declared_order(alice, maintainer):
    a = make_original(maintainer, "model-a", hub_id="org/Model-A")
    b = make_original(maintainer, "model-b")
    merged = make_variant(alice, "merged", ["commons/model-b", "org/model-a"], relation="merge")
    assert [link.parent for link in merged.parent_links.all()] == [b, a]


def test_a_parent_you_cannot_see_is_unknown(alice, bob, maintainer):
    base = make_original(maintainer)
    draft = make_variant(bob, "bobs-draft", [base])
    with pytest.raises(ValidationFailed) as exc:
        make_variant(alice, "child", [draft.full_name])
    assert "Unknown variant(s): bob/bobs-draft" in exc.value.errors["parents"][0]


def test_cycles_are_refused(alice, maintainer):
    base = make_original(maintainer)
    a = make_variant(alice, "a", [base])
    b = make_variant(alice, "b", [a])
    c = make_variant(alice, "c", [b])
    with pytest.raises(ValidationFailed) as exc:
        services.variant_update(variant=a, actor=alice, parents=[c])
    assert "alice/c derive(s) from alice/a" in exc.value.errors["parents"][0]
    with pytest.raises(ValidationFailed):
        services.variant_update(variant=a, actor=alice, parents=[a])
    services.variant_update(variant=c, actor=alice, relation="merge", parents=[a, b])  # a DAG, not a cycle
    assert set(c.parents.all()) == {a, b}


@pytest.mark.django_db(transaction=True)
def test_concurrent_parent_changes_cannot_close_a_cycle(alice, maintainer):
    base = make_original(maintainer)
    a = make_variant(alice, "a", [base])
    b = make_variant(alice, "b", [base])
    barrier = threading.Barrier(2)
    outcomes = []

    def relink(child, parent):
        barrier.wait()
        try:
            services.variant_update(variant=child, actor=alice, parents=[parent])
            outcomes.append("ok")
        except ValidationFailed:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=relink, args=(a, b)), threading.Thread(target=relink, args=(b, a))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ok", "refused"]
    a.refresh_from_db()
    b.refresh_from_db()
    links = {(a.pk, p.pk) for p in a.parents.all()} | {(b.pk, p.pk) for p in b.parents.all()}
    assert not ({(a.pk, b.pk), (b.pk, a.pk)} <= links)


# --- If-Match, under the row lock ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_writers_with_the_same_etag_exactly_one_wins(alice, maintainer):
    """Both read the same ETag and PATCH at once: the check runs under the row lock, so the second writer
    sees the first one's write and gets 412 instead of overwriting it."""
    variant = make_variant(alice, "contested", [make_original(maintainer)])
    etag = Variant.objects.get(pk=variant.pk).etag
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def write(summary):
        barrier.wait()
        try:
            services.variant_update(variant=variant, actor=alice, if_match=etag, summary=summary)
            outcomes[summary] = "ok"
        except PreconditionFailed:
            outcomes[summary] = "412"
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(s,)) for s in ("first", "second")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes.values()) == ["412", "ok"]
    winner = next(s for s, o in outcomes.items() if o == "ok")
    fresh = Variant.objects.get(pk=variant.pk)
    assert fresh.summary == winner and fresh.etag != etag
    assert AuditEvent.objects.filter(verb="variant.update", target_id=str(variant.pk)).count() == 1


def test_a_weak_etag_never_satisfies_if_match(alice, maintainer):
    variant = make_variant(alice, "weakly", [make_original(maintainer)])
    etag = Variant.objects.get(pk=variant.pk).etag
    with pytest.raises(PreconditionFailed):
        services.variant_update(variant=variant, actor=alice, if_match=f"W/{etag}", summary="no")
    services.variant_update(variant=variant, actor=alice, if_match="*", summary="yes")
    assert Variant.objects.get(pk=variant.pk).summary == "yes"


# --- lineage ------------------------------------------------------------------------------------------


def _chain(owner, root, length):
    node = root
    for i in range(length):
        node = make_variant(owner, f"gen-{i}", [node])
    return node


def test_lineage_costs_the_same_number_of_queries_at_any_depth(alice, bob, maintainer):
    short_root = make_original(maintainer, "short")
    short_leaf = _chain(alice, short_root, 2)
    deep_root = make_original(maintainer, "deep")
    deep_leaf = _chain(bob, deep_root, 12)
    short_leaf, deep_leaf, deep_root = (
        Variant.objects.select_related("owner").get(pk=v.pk) for v in (short_leaf, deep_leaf, deep_root)
    )
    with count_queries() as short_q:
        short = variant_lineage(variant=short_leaf, user=maintainer)
    with count_queries() as deep_q:
        deep = variant_lineage(variant=deep_leaf, user=maintainer)
    assert len(short["ancestors"]) == 2 and len(deep["ancestors"]) == 12
    assert len(short_q) == len(deep_q) == 2  # the recursive CTE, then the variants
    assert deep["ancestors"][-1]["full_name"] == "commons/deep" and deep["ancestors"][-1]["depth"] == 12
    with count_queries() as root_q:
        down = variant_lineage(variant=deep_root, user=maintainer)
    assert len(down["descendants"]) == 12 and len(root_q) == len(deep_q)


def test_lineage_of_a_diamond_lists_each_node_once_and_hides_drafts(alice, bob, maintainer):
    base = make_original(maintainer)
    left = make_variant(alice, "left", [base])
    right = make_variant(alice, "right", [base])
    merged = make_variant(alice, "merged", [left, right], relation="merge")
    make_variant(bob, "bobs-secret", [merged])
    view = variant_lineage(variant=merged, user=alice)
    assert [n["full_name"] for n in view["ancestors"]] == ["alice/left", "alice/right", "commons/base-model"]
    assert view["ancestors"][2]["depth"] == 2
    assert view["descendants"] == []  # bob's draft is not alice's to see
    assert {(e["child"], e["parent"]) for e in view["edges"]} == {
        ("alice/merged", "alice/left"),
        ("alice/merged", "alice/right"),
        ("alice/left", "commons/base-model"),
        ("alice/right", "commons/base-model"),
    }
    assert [n["full_name"] for n in variant_lineage(variant=merged, user=maintainer)["descendants"]] == [
        "bob/bobs-secret"
    ]


# --- licences --------------------------------------------------------------------------------------------


def test_licences_match_ignoring_case_and_store_the_canonical_id(alice, maintainer):
    base = make_original(maintainer, license="Apache-2.0")
    assert base.license == "apache-2.0"
    child = make_variant(alice, "gpl-child", [base], license="gpl-3.0-ONLY")
    assert child.license == "GPL-3.0-only"
    assert license_lookup("LLAMA3.1").id == "llama3.1"
    assert license_lookup("BigScience-BLOOM-RAIL-1.0").family == "rail"


@pytest.mark.parametrize(
    "typo,expected",
    [
        ("apache2", "apache-2.0"),
        ("Apache 2.0", "apache-2.0"),
        ("llama-3.1", "llama3.1"),
        ("cc-by-nc4.0", "cc-by-nc-4.0"),
        ("gemma-terms", "gemma"),
    ],
)
def test_unknown_licences_get_close_suggestions(alice, maintainer, typo, expected):
    assert expected in license_suggestions(typo)
    base = make_original(maintainer)
    with pytest.raises(ValidationFailed) as exc:
        make_variant(alice, "x", [base], license=typo)
    assert expected in exc.value.errors["license"][0]


def test_spdx_and_hub_lists_are_both_shipped():
    assert license_lookup("0BSD").source == "spdx"
    assert license_lookup("openrail++").source == "hub"
    assert license_lookup("CC-BY-NC-SA-4.0").commercial_use is False
    assert license_lookup("no-such-licence") is None


def _issues(variant):
    return {i["code"] for i in variant.license_compat["issues"]}


def test_permissive_child_of_a_non_commercial_parent_is_incompatible(alice, maintainer):
    base = make_original(maintainer, license="cc-by-nc-4.0")
    bad = make_variant(alice, "relicensed", [base], license="mit")
    assert bad.license_compat["status"] == "incompatible" and "non_commercial_parent" in _issues(bad)
    good = make_variant(alice, "kept-nc", [base], license="cc-by-nc-4.0")
    assert good.license_compat["status"] == "compatible" and good.license_compat["issues"] == []


def test_rail_restrictions_must_be_carried(alice, maintainer):
    base = make_original(maintainer, license="bigscience-bloom-rail-1.0")
    dropped = make_variant(alice, "bloom-apache", [base], license="apache-2.0")
    assert dropped.license_compat["status"] == "incompatible" and "use_restrictions_dropped" in _issues(dropped)
    kept = make_variant(alice, "bloom-openrail", [base], license="openrail")
    assert kept.license_compat["status"] == "compatible"


def test_llama_terms_and_name_prefix_are_carried_down_the_lineage(alice, maintainer):
    base = make_original(maintainer, "Llama-3.1-8B", license="llama3.1")
    named = make_variant(alice, "Llama-3.1-8B-chat", [base], license="llama3.1")
    assert named.license_compat["status"] == "compatible"
    unnamed = make_variant(alice, "my-chat", [base], license="llama3.1")
    assert unnamed.license_compat["status"] == "review" and _issues(unnamed) == {"name_prefix"}
    # an intermediate variant that claims a permissive licence does not wash the terms away
    washed = make_variant(alice, "Llama-washed", [base], license="apache-2.0")
    quant = make_variant(alice, "Llama-washed-q4", [washed], relation="quantized", license="apache-2.0")
    assert quant.license_compat["status"] == "incompatible"
    assert "llama_terms_required" in _issues(quant) and quant.license_compat["inherited_terms"] == ["llama3.1"]
    assert [c["depth"] for c in quant.license_compat["checked"]] == [1, 2]


def test_a_merge_of_llama_and_gemma_cannot_satisfy_both(alice, maintainer):
    llama = make_original(maintainer, "Llama-3.1-8B", license="llama3.1")
    gemma = make_original(maintainer, "gemma-2-9b", license="gemma")
    merged = make_variant(alice, "Llama-gemma-merge", [llama, gemma], relation="merge", license="llama3.1")
    assert merged.license_compat["status"] == "incompatible" and "gemma_terms_required" in _issues(merged)


def test_other_licences_need_a_human(alice, maintainer):
    base = make_original(maintainer, license="other")
    child = make_variant(alice, "child", [base], license="mit")
    assert child.license_compat["status"] == "review" and "ancestor_license_unclear" in _issues(child)


def test_changing_a_parent_licence_recomputes_the_descendants(alice, maintainer):
    base = make_original(maintainer, license="mit")
    child = make_variant(alice, "child", [base], license="mit")
    grandchild = make_variant(alice, "grandchild", [child], license="mit")
    assert grandchild.license_compat["status"] == "compatible"
    services.revision_create(variant=base, actor=maintainer)  # the published revision itself is immutable
    services.variant_update(variant=base, actor=maintainer, license="cc-by-nc-4.0")
    child.refresh_from_db()
    grandchild.refresh_from_db()
    assert child.license_compat["status"] == grandchild.license_compat["status"] == "incompatible"


def test_an_undeclared_licence_is_reported_as_such(alice, maintainer):
    base = make_original(maintainer)
    child = make_variant(alice, "child", [base], license="")
    assert child.license_compat["status"] == "undeclared"


# --- updates -------------------------------------------------------------------------------------------


def test_only_the_owner_edits(alice, bob, reviewer, maintainer):
    variant = make_variant(alice, "mine", [make_original(maintainer)])
    for other in (bob, reviewer, maintainer):
        with pytest.raises(PermissionDenied):
            services.variant_update(variant=variant, actor=other, summary="hijack")
    services.variant_update(variant=variant, actor=alice, summary="mine indeed")
    variant.refresh_from_db()
    assert variant.summary == "mine indeed"


def test_if_match_guards_against_lost_updates(alice, maintainer):
    variant = make_variant(alice, "mine", [make_original(maintainer)])
    etag = Variant.objects.get(pk=variant.pk).etag
    services.variant_update(variant=variant, actor=alice, if_match=etag, summary="first")
    with pytest.raises(PreconditionFailed):
        services.variant_update(variant=variant, actor=alice, if_match=etag, summary="second")
    services.variant_update(variant=variant, actor=alice, if_match="*", summary="any")


def test_an_update_writes_the_changed_columns_and_the_stamp_only(alice, maintainer):
    variant = make_variant(alice, "mine", [make_original(maintainer)])
    etag = Variant.objects.get(pk=variant.pk).etag
    with count_queries() as queries:
        services.variant_update(variant=variant, actor=alice, summary="shorter", tags=["a"])
    updates = [q["sql"] for q in queries.captured_queries if q["sql"].startswith('UPDATE "registry_variant"')]
    assert len(updates) == 1
    assert all(f'"{column}"' in updates[0] for column in ("summary", "tags", "updated_at"))
    assert '"card"' not in updates[0] and '"license"' not in updates[0]
    stored = Variant.objects.get(pk=variant.pk)
    assert (stored.summary, stored.tags, stored.card) == ("shorter", ["a"], CARD) and stored.etag != etag


def test_variants_cannot_be_renamed(alice, maintainer):
    variant = make_variant(alice, "mine", [make_original(maintainer)])
    with pytest.raises(ValidationFailed):
        services.variant_update(variant=variant, actor=alice, name="yours")


def test_a_submitted_revision_freezes_the_variant(alice, maintainer):
    variant = make_variant(alice, "mine", [make_original(maintainer)])
    record(variant, alice)
    services.revision_submit(revision=variant.current_revision, actor=alice)
    with pytest.raises(Conflict) as exc:
        services.variant_update(variant=variant, actor=alice, summary="too late")
    assert "new revision" in exc.value.detail
    with pytest.raises(Conflict):
        record(variant, alice, path="extra.safetensors")


# --- revisions --------------------------------------------------------------------------------------


def test_new_revisions_follow_the_lifecycle(alice, maintainer):
    variant = make_variant(alice, "mine", [make_original(maintainer)])
    first = variant.current_revision
    with pytest.raises(Conflict, match="still a draft"):
        services.revision_create(variant=variant, actor=alice)
    record(variant, alice)
    services.revision_submit(revision=first, actor=alice)
    with pytest.raises(Conflict, match="under review"):
        services.revision_create(variant=variant, actor=alice)
    services.revision_transition(revision=first, target="changes_requested", actor=maintainer)
    second = services.revision_create(variant=variant, actor=alice, notes="fix the card")
    assert second.number == 2 and second.status == "draft"
    assert [a.path for a in second.artifacts.all()] == ["model.safetensors"]  # carried over
    variant.refresh_from_db()
    assert variant.current_revision == second and variant.status == "draft"
    services.variant_update(variant=variant, actor=alice, summary="now editable again")


def test_submit_requires_an_artifact_a_licence_and_a_card(alice, maintainer):
    variant = make_variant(alice, "bare", [make_original(maintainer)], license="", card="")
    with pytest.raises(Conflict) as exc:
        services.revision_submit(revision=variant.current_revision, actor=alice)
    assert set(exc.value.errors) == {"artifacts", "license", "card"}
    assert exc.value.status == 409


def test_submit_snapshots_the_variant_and_runs_hooks_after_commit(
    alice, maintainer, django_capture_on_commit_callbacks
):
    variant = make_variant(alice, "mine", [make_original(maintainer)])
    record(variant, alice)
    seen = []
    hook = lambda revision_id: seen.append(revision_id)  # noqa: E731
    hooks.REVISION_SUBMITTED_HOOKS.append(hook)
    try:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            revision = services.revision_submit(revision=variant.current_revision, actor=alice)
        assert seen == []  # nothing before commit
        for callback in callbacks:
            callback()
    finally:
        hooks.REVISION_SUBMITTED_HOOKS.remove(hook)
    assert seen == [revision.pk]
    revision.refresh_from_db()
    assert revision.status == "submitted" and revision.submitted_at is not None
    assert revision.metadata["parents"] == ["commons/base-model"] and revision.metadata["card"] == CARD
    assert AuditEvent.objects.filter(verb="revision.submit", target_id=str(revision.pk)).exists()


def test_illegal_transitions_list_what_is_allowed(alice, maintainer):
    variant = make_variant(alice, "mine", [make_original(maintainer)])
    record(variant, alice)
    revision = services.revision_submit(revision=variant.current_revision, actor=alice)
    with pytest.raises(InvalidTransition) as exc:
        services.revision_submit(revision=revision, actor=alice)
    assert exc.value.extra["allowed"] == ["changes_requested", "approved", "rejected", "withdrawn"]
    services.revision_withdraw(revision=revision, actor=alice, reason="wrong file")
    with pytest.raises(InvalidTransition) as exc:
        services.revision_withdraw(revision=revision, actor=alice)
    assert exc.value.extra["allowed"] == []


def test_only_the_owner_submits_and_withdraws(alice, bob, reviewer, maintainer):
    variant = make_variant(alice, "mine", [make_original(maintainer)])
    record(variant, alice)
    for other in (bob, reviewer, maintainer):
        with pytest.raises(PermissionDenied):
            services.revision_submit(revision=variant.current_revision, actor=other)
        with pytest.raises(PermissionDenied):
            services.revision_withdraw(revision=variant.current_revision, actor=other)


def test_visibility_follows_publication(alice, bob, maintainer):
    variant = make_variant(alice, "mine", [make_original(maintainer)])
    record(variant, alice)
    revision = services.revision_submit(revision=variant.current_revision, actor=alice)
    assert not Variant.objects.visible_to(bob).filter(pk=variant.pk).exists()
    for target in ("approved", "published"):
        services.revision_transition(revision=revision, target=target, actor=maintainer)
    assert Variant.objects.visible_to(bob).filter(pk=variant.pk).exists()
    second = services.revision_create(variant=variant, actor=alice)
    assert Variant.objects.visible_to(bob).filter(pk=variant.pk).exists()  # still published at revision 1
    assert list(Revision.objects.visible_to(bob).filter(variant=variant)) == [revision]
    assert second in Revision.objects.visible_to(alice)
    services.revision_transition(revision=revision, target="unpublished", actor=maintainer, reason="licence")
    assert not Variant.objects.visible_to(bob).filter(pk=variant.pk).exists()


# --- artifacts -------------------------------------------------------------------------------------


def _draft(alice, maintainer):
    return make_variant(alice, "mine", [make_original(maintainer)]).current_revision


@pytest.mark.parametrize(
    "kw,field",
    [
        ({"path": "../etc/passwd"}, "path"),
        ({"path": "/abs.onnx"}, "path"),
        ({"path": "model.bin", "fmt": "safetensors"}, "format"),
        ({"path": "model.onnx", "fmt": "gguf"}, "format"),
        ({"path": "weights", "fmt": None}, "format"),
        ({"sha256": "abc"}, "sha256"),
        ({"size_bytes": -1}, "size_bytes"),
        ({"uri": "ftp://x/y"}, "uri"),
        ({"uri": "file:///etc/passwd"}, "uri"),
        ({"fmt": "exe"}, "format"),
    ],
)
def test_artifact_records_are_validated(alice, maintainer, kw, field):
    revision = _draft(alice, maintainer)
    args = {
        "path": "model.safetensors",
        "uri": "hf://org/m@abc/model.safetensors",
        "sha256": "a" * 64,
        "size_bytes": 10,
        "fmt": None,
        **kw,
    }
    with pytest.raises(ValidationFailed) as exc:
        services.artifact_add(revision=revision, actor=alice, **args)
    assert field in exc.value.errors


def test_pickle_records_are_accepted_but_not_safe(alice, maintainer):
    revision = _draft(alice, maintainer)
    art = services.artifact_add(
        revision=revision, actor=alice, path="pytorch_model.bin", uri="hf://o/m@1/p.bin", sha256="b" * 64, size_bytes=5
    )
    assert art.format == "bin" and art.safe is False


def test_duplicate_paths_conflict(alice, maintainer):
    revision = _draft(alice, maintainer)
    services.artifact_add(
        revision=revision, actor=alice, path="m.gguf", uri="hf://o/m@1/m.gguf", sha256="c" * 64, size_bytes=5
    )
    with pytest.raises(Conflict):
        services.artifact_add(
            revision=revision, actor=alice, path="m.gguf", uri="hf://o/m@1/m.gguf", sha256="c" * 64, size_bytes=5
        )


def test_uploads_are_hashed_and_checked(alice, maintainer, settings):
    revision = _draft(alice, maintainer)
    content = b"GGUF" + b"\x00" * 100
    digest = hashlib.sha256(content).hexdigest()
    with pytest.raises(ValidationFailed) as exc:
        services.artifact_add(
            revision=revision, actor=alice, upload=SimpleUploadedFile("m.gguf", content), sha256="0" * 64
        )
    assert digest in exc.value.errors["sha256"][0]
    with pytest.raises(ValidationFailed) as exc:
        services.artifact_add(revision=revision, actor=alice, upload=SimpleUploadedFile("m.safetensors", content))
    assert "safetensors header" in exc.value.errors["format"][0]
    art = services.artifact_add(
        revision=revision, actor=alice, upload=SimpleUploadedFile("m.gguf", content), sha256=digest.upper()
    )
    assert art.sha256 == digest and art.size_bytes == len(content) and art.format == "gguf"
    assert art.local_path() and open(art.local_path(), "rb").read() == content
    settings.MC_UPLOAD_MAX_BYTES = 10
    from apps.registry.uploads import PayloadTooLarge

    with pytest.raises(PayloadTooLarge):
        services.artifact_add(revision=revision, actor=alice, upload=SimpleUploadedFile("n.gguf", content))


# --- delete -----------------------------------------------------------------------------------------


def test_delete_rules(alice, maintainer):
    base = make_original(maintainer)
    parent = make_variant(alice, "parent", [base])
    child = make_variant(alice, "child", [parent])
    with pytest.raises(Conflict, match="derive"):
        services.variant_delete(variant=parent, actor=alice)
    record(child, alice)
    services.revision_submit(revision=child.current_revision, actor=alice)
    with pytest.raises(Conflict, match="submitted"):
        services.variant_delete(variant=child, actor=alice)
    services.revision_withdraw(revision=child.current_revision, actor=alice)
    services.variant_delete(variant=child, actor=alice)
    services.variant_delete(variant=parent, actor=alice)
    assert not Variant.objects.filter(owner=alice).exists()
    assert not Artifact.objects.filter(revision__variant__owner=alice).exists()
    assert AuditEvent.objects.filter(verb="variant.delete").count() == 2


@pytest.mark.django_db(transaction=True)
def test_parallel_transitions_leave_one_consistent_outcome(alice, maintainer):
    """Owners double-clicking submit and withdraw at once: the row lock lets exactly one move happen per state."""
    variant = make_variant(alice, "racy", [make_original(maintainer)])
    record(variant, alice)
    revision = variant.current_revision
    barrier = threading.Barrier(8)
    outcomes = []

    def act(i):
        barrier.wait()
        try:
            if i % 2:
                services.revision_submit(revision=revision, actor=alice)
                outcomes.append("submitted")
            else:
                services.revision_withdraw(revision=revision, actor=alice)
                outcomes.append("withdrawn")
        except (InvalidTransition, Conflict):
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=act, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    revision.refresh_from_db()
    variant.refresh_from_db()
    assert revision.status == "withdrawn" and variant.status == "withdrawn"
    # at most one submit got in before a withdraw; exactly one withdraw ended it
    assert outcomes.count("withdrawn") == 1 and outcomes.count("submitted") <= 1
    assert outcomes.count("refused") == 8 - 1 - outcomes.count("submitted")
    moves = AuditEvent.objects.filter(target_type="registry.revision", target_id=str(revision.pk)).count()
    assert moves == 1 + outcomes.count("submitted")
