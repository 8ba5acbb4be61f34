"""The demo world `seed_demo` builds: accounts, the digits loop, the registry demo (apps.demo.catalogue) and
(apps.demo.runs) the benchmarks with their local models and queued jobs. Idempotent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.db import transaction

from apps.accounts.models import User
from apps.accounts.services import user_set_roles
from apps.demo.catalogue import seed_registry_demo
from apps.demo.runs import ensure_benchmarks, seed_demo_runs, tinylm_folder_if_runnable
from apps.orgs.models import Organization
from apps.orgs.services import (
    commons_ensure,
    commons_sync_member,
    invitation_accept,
    invitation_create,
    org_account,
    org_create,
)
from apps.registry.choices import RevisionStatus
from apps.registry.models import Revision, Variant
from apps.registry.services import artifact_add_local_file, revision_transition, variant_create

DEMO_ACCOUNTS: list[tuple[str, list[str]]] = [
    ("maintainer", ["maintainer"]),
    ("reviewer1", ["reviewer"]),
    ("reviewer2", ["reviewer"]),
    ("alice", []),
    ("bob", []),
]
DIGITS_DIR = Path(settings.FIXTURES_DIR) / "digits"

DIGITS_CARD = """# digits-mlp

A small multi-layer perceptron (one hidden layer of 64 units) trained on scikit-learn's bundled
8x8 hand-written digits (UCI ML digits, 1,797 images), exported to ONNX with skl2onnx.

## Intended use
Teaching and smoke-testing the Model Commons benchmark pipeline end to end on a CPU in seconds.

## Limitations
Only 8x8 grey-level digits scaled to [0, 1]; it is not a general image classifier.

## Training data
`sklearn.datasets.load_digits`, stratified 75/25 split with random_state=0 (1,347 train, 450 test).

## Evaluation
Accuracy and macro-F1 on the 450 held-out digits with the `digits` benchmark.
"""


def _manifest() -> dict[str, Any]:
    return json.loads((DIGITS_DIR / "manifest.json").read_text())


def _file_entry(manifest: dict[str, Any], path: str) -> dict[str, Any]:
    return next(f for f in manifest["files"] if f["path"] == path)


def ensure_user(username: str, password: str, *, email: str | None = None) -> tuple[User, bool]:
    user = User.objects.filter(username__iexact=username).first()
    if user is not None:
        return user, False
    user = User.objects.create_user(username=username, email=email or f"{username}@example.org", password=password)
    return user, True


def ensure_accounts(password: str) -> dict[str, User]:
    users: dict[str, User] = {}
    for username, roles in DEMO_ACCOUNTS:
        user, _ = ensure_user(username, password)
        if roles:
            user_set_roles(user=user, roles=roles, actor=None)
        users[username] = user
    maintainer = users["maintainer"]
    if not maintainer.is_staff:
        maintainer.is_staff = True
        maintainer.save(update_fields=["is_staff"])
    # Maintainers use the Django admin as the moderation console.
    group = Group.objects.get(name="maintainers")
    group.permissions.set(
        Permission.objects.filter(
            content_type__app_label__in=[
                "accounts",
                "audit",
                "registry",
                "benchmarks",
                "leaderboards",
                "reviews",
                "checklists",
                "orgs",
            ]
        )
    )
    # The commons organization's namespace account owns the originals (its admins are the maintainers).
    users["commons"] = org_account(commons_ensure())
    return users


#: A lab as the demo shows one: alice runs it, bob is a member, reviewer1 has an invitation waiting.
DEMO_ORG = {
    "name": "harbour-lab",
    "display_name": "Harbour Lab",
    "description": "A small lab fine-tuning tiny open models on harbour-and-sea prose.",
}


def ensure_orgs(users: dict[str, User]) -> list[str]:
    """`commons` with the maintainers as its admins, and the demo lab (idempotent)."""
    commons_ensure()
    for user in users.values():
        commons_sync_member(user=user, actor=None)
    lab = Organization.objects.filter(name__iexact=DEMO_ORG["name"]).first()
    if lab is None:
        lab = org_create(actor=users["alice"], **DEMO_ORG)
        joining = invitation_create(org=lab, username="bob", role="member", actor=users["alice"])
        invitation_accept(invitation=joining, actor=users["bob"])
        invitation_create(org=lab, username="reviewer1", role="member", actor=users["alice"])
    return sorted(Organization.objects.values_list("name", flat=True))


def _ensure_variant(
    *, owner: User, name: str, relation: str, parents: list[Variant], artifact: str, actor: User, fields: dict[str, Any]
) -> Variant:
    existing = Variant.objects.by_full_name(f"{owner.username}/{name}").first()
    if existing is not None:
        return existing
    variant = variant_create(owner=owner, name=name, relation=relation, parents=parents, actor=actor, **fields)
    revision = variant.current_revision
    assert revision is not None
    artifact_add_local_file(revision=revision, source=DIGITS_DIR / artifact, path=artifact, fmt="onnx", actor=actor)
    return variant


def _int8_fields(entry: dict[str, Any], *, tags: list[str], summary: str, title: str) -> dict[str, Any]:
    """The metadata of an int8 build of commons/digits-mlp (alice's, and the demo lab's)."""
    return {
        "license": "apache-2.0",
        "parameters": entry["parameters"],
        "precision": "int8",
        "architecture": "MLP",
        "task": "image-classification",
        "tags": tags,
        "summary": summary,
        "card": DIGITS_CARD.replace("# digits-mlp", f"# {title}"),
    }


def _publish(revision: Revision, actor: User) -> None:
    for target in (RevisionStatus.SUBMITTED, RevisionStatus.APPROVED, RevisionStatus.PUBLISHED):
        revision.refresh_from_db()
        if revision.status == RevisionStatus.PUBLISHED:
            return
        if revision.can_transition_to(target):
            revision_transition(revision=revision, target=target, actor=actor, reason="demo seed")


def seed_demo(
    password: str, *, runs: bool = False, queue_jobs: bool = False, tinylm_dir: Path | None = None
) -> dict[str, Any]:
    """The demo world. `runs` adds every fixture benchmark whose runner is installed with its local models
    (the tiny LMs are built before the transaction opens: about 30 s of CPU); `queue_jobs` also queues one job
    per demo model and benchmark (the `seed_demo` command does both; tests opt in)."""
    tinylm = tinylm_folder_if_runnable(tinylm_dir) if runs else None
    return _seed(password, runs=runs, queue_jobs=queue_jobs, tinylm=tinylm)


@transaction.atomic
def _seed(password: str, *, runs: bool, queue_jobs: bool, tinylm: Path | None) -> dict[str, Any]:
    users = ensure_accounts(password)
    orgs = ensure_orgs(users)
    benchmarks, _ = ensure_benchmarks(users["maintainer"], only={"digits"})
    benchmark = benchmarks["digits"]
    manifest = _manifest()
    base_entry = _file_entry(manifest, "digits-mlp.onnx")
    base = _ensure_variant(
        owner=users["commons"],
        name="digits-mlp",
        relation="original",
        parents=[],
        artifact="digits-mlp.onnx",
        actor=users["maintainer"],
        fields={
            "license": "apache-2.0",
            "parameters": base_entry["parameters"],
            "precision": "fp32",
            "architecture": "MLP",
            "task": "image-classification",
            "tags": ["onnx", "digits", "demo"],
            "summary": "A 64-unit MLP trained on scikit-learn's 8x8 digits, exported to ONNX.",
            "card": DIGITS_CARD,
        },
    )
    assert base.current_revision is not None
    _publish(base.current_revision, users["maintainer"])
    int8 = _file_entry(manifest, "digits-mlp-int8.onnx")
    int8_variant = _ensure_variant(
        owner=users["alice"],
        name="digits-mlp-int8",
        relation="quantized",
        parents=[base],
        artifact="digits-mlp-int8.onnx",
        actor=users["alice"],
        fields=_int8_fields(
            int8,
            tags=["onnx", "int8"],
            summary="Dynamic int8 quantization of commons/digits-mlp.",
            title="digits-mlp-int8\n\nInt8 dynamic quantization (onnxruntime quantize_dynamic) of commons/digits-mlp.",
        ),
    )
    pruned = _file_entry(manifest, "digits-mlp-pruned.onnx")
    pruned_variant = _ensure_variant(
        owner=users["bob"],
        name="digits-mlp-pruned",
        relation="pruned",
        parents=[base],
        artifact="digits-mlp-pruned.onnx",
        actor=users["bob"],
        fields={
            "license": "apache-2.0",
            "parameters": pruned.get("nonzero_parameters", pruned["parameters"]),
            "precision": "fp32",
            "architecture": "MLP",
            "task": "image-classification",
            "tags": ["onnx", "pruned"],
            "summary": "50% magnitude pruning of the first layer of commons/digits-mlp.",
            "card": DIGITS_CARD.replace(
                "# digits-mlp",
                "# digits-mlp-pruned\n\nThe 50% smallest first-layer weights of commons/digits-mlp set to zero.",
            ),
        },
    )
    # The lab's own work: a draft in harbour-lab's namespace that its members (alice, bob) see and edit.
    lab = Organization.objects.get(name__iexact=DEMO_ORG["name"])
    _ensure_variant(
        owner=org_account(lab),
        name="digits-mlp-harbour-int8",
        relation="quantized",
        parents=[base],
        artifact="digits-mlp-int8.onnx",
        actor=users["bob"],
        fields=_int8_fields(
            int8,
            tags=["onnx", "int8", "harbour-lab"],
            summary="Harbour Lab's int8 build of commons/digits-mlp (a draft the lab's members work on).",
            title="digits-mlp-harbour-int8\n\nHarbour Lab's int8 quantization of commons/digits-mlp.",
        ),
    )
    seed_registry_demo(users)
    summary: dict[str, Any] = {
        "users": sorted(users),
        "orgs": orgs,
        "benchmarks": [benchmark.slug],
        "skipped": {},
        "jobs": [],
        "new_jobs": 0,
    }
    if runs:
        done = seed_demo_runs(users, [base, int8_variant, pruned_variant], queue_jobs=queue_jobs, tinylm=tinylm)
        summary.update(benchmarks=done.benchmarks, skipped=done.skipped, jobs=done.jobs, new_jobs=done.new_jobs)
    summary["variants"] = Variant.objects.count()
    return summary
