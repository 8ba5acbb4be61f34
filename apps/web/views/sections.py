"""The seams between the pages and the domain apps: one function per write, each calling that app's service,
and `variant_sections`, which gathers the read-only parts of the variant page from each app's selectors."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any, cast

from django.db.models import F, Func, OuterRef, Q, Subquery
from django.http import HttpRequest

from apps.accounts.roles import is_maintainer, is_reviewer
from apps.benchmarks.api.serializers import JobSerializer
from apps.benchmarks.selectors import jobs_for_api, jobs_visible_to
from apps.checklists import selectors as checklist_selectors
from apps.checklists import services as checklist_services
from apps.checklists.badge import render_badge
from apps.checklists.choices import ItemStatus, Level
from apps.core.errors import NotFound, ValidationFailed
from apps.leaderboards import selectors as leaderboard_selectors
from apps.leaderboards.models import LeaderboardEntry
from apps.notifications.models import Notification
from apps.orgs.choices import OrgRole
from apps.orgs.selectors import org_get, orgs_list
from apps.registry import services as registry_services
from apps.registry.choices import NEW_REVISION_FROM, RevisionStatus
from apps.registry.models import Artifact, Revision, Variant
from apps.registry.permissions import can_edit_variant
from apps.reviews import selectors as review_selectors
from apps.reviews import services as review_services
from apps.reviews.choices import ReviewDecision
from apps.reviews.gate import author_ids, publication_gate_unmet
from apps.reviews.rendering import render_markdown

from . import AuthedRequest

if TYPE_CHECKING:
    from apps.accounts.types import Actor, Viewer


def create_namespaces(user: Actor) -> list[str]:
    """Where the user may create a variant, for the propose form's "Create in": their own namespace first, then
    the organizations they belong to (commons only for its admins, the maintainers). One query."""
    names = [user.username]
    for org in orgs_list(user=user).filter(memberships__user=user):
        if org.is_commons and org.my_role != OrgRole.ADMIN:  # type: ignore[attr-defined]
            continue
        names.append(org.name)
    return names


def _namespace_owner(user: Actor, name: str) -> Any:
    """The account named `name` as an owner for a new variant: the user, or an organization's account. Whether
    the user may create there is the registry's decision."""
    if not name or name.lower() == user.username.lower():
        return user
    try:
        org = org_get(name=name, user=user)
    except NotFound:
        raise ValidationFailed("Unknown namespace.", errors={"owner": [f"No organization '{name}'."]}) from None
    if org.account is None:
        raise ValidationFailed("Unknown namespace.", errors={"owner": [f"{org.name} has no namespace yet."]})
    return org.account


def variant_propose(user: Actor, form: Any) -> Variant:
    data = form.cleaned_data
    owner = _namespace_owner(user, data.get("owner") or "")
    card = data.get("card_file") or data.get("card") or ""
    fields = {
        k: data[k]
        for k in ("license", "parameters", "precision", "task", "architecture", "summary")
        if data.get(k) not in (None, "")
    }
    return registry_services.variant_create(
        owner=owner,
        name=data["name"],
        relation=data["relation"] or None,
        parents=form.parent_names(),
        actor=user,
        card=card,
        **fields,
    )


def variant_edit(user: Actor, variant: Variant, form: Any) -> Variant:
    data = form.cleaned_data
    changes: dict[str, Any] = {
        k: data.get(k) or "" for k in ("license", "precision", "task", "architecture", "summary")
    }
    changes["parameters"] = data.get("parameters")
    changes["card"] = data.get("card_file") or data.get("card") or ""
    if data.get("relation"):
        changes["relation"] = data["relation"]
    changes["parents"] = form.parent_names()
    return registry_services.variant_update(variant=variant, actor=user, if_match=data.get("etag") or None, **changes)


def variant_transfer(user: Actor, variant: Variant, form: Any) -> Variant:
    return registry_services.variant_transfer(variant=variant, to=form.cleaned_data["to"], actor=user)


def collaborator_add(user: Actor, variant: Variant, form: Any) -> Any:
    return registry_services.collaborator_add(variant=variant, username=form.cleaned_data["username"], actor=user)


def collaborator_remove(user: Actor, variant: Variant, username: str) -> None:
    registry_services.collaborator_remove(variant=variant, username=username, actor=user)


def artifact_upload(user: Actor, revision: Revision, form: Any) -> Artifact:
    data = form.cleaned_data
    return registry_services.artifact_add(
        revision=revision,
        actor=user,
        upload=data["file"],
        path=data.get("path") or None,
        fmt=data.get("format") or None,
    )


def checklist_answer(user: Actor, revision: Revision, key: str, data: dict[str, Any]) -> Any:
    from apps.checklists import services as checklist_services

    changes: dict[str, Any] = {}
    if "verified" in data:
        changes["verified"] = data["verified"] in ("1", "true", "on", True)
    else:
        changes = {k: data.get(k, "") for k in ("status", "justification", "evidence_url")}
    return checklist_services.checklist_item_answer(revision=revision, key=key, actor=user, changes=changes)


def review_submit(user: Actor, revision: Revision, data: dict[str, Any]) -> Any:
    return review_services.review_submit(
        revision=revision, reviewer=user, decision=data.get("decision", ""), body=data.get("body", "")
    )


def comment_create(user: Actor, variant: Variant, data: dict[str, Any]) -> Any:
    parent = None
    if data.get("parent"):
        try:
            parent = review_selectors.comment_for_user_or_404(user, int(data["parent"]))
        except (ValueError, NotFound):
            raise ValidationFailed("Bad parent.", errors={"parent": ["No such comment."]})
    return review_services.comment_create(variant=variant, author=user, body=data.get("body", ""), parent=parent)


def flag_create(user: Actor, variant: Variant, form: Any) -> Any:
    data = form.cleaned_data
    return review_services.flag_create(
        variant=variant,
        reporter=user,
        kind=data.get("kind") or "",
        description=data.get("description") or "",
        evidence_url=data.get("evidence_url") or "",
        evidence_excerpt=data.get("evidence_excerpt") or "",
    )


def revision_action(user: Actor, revision: Revision, action: str, *, reason: str = "") -> Revision:
    if action == "submit":
        return registry_services.revision_submit(revision=revision, actor=user)
    if action == "new-revision":
        return registry_services.revision_create(variant=revision.variant, actor=user)
    if action == "withdraw":
        return registry_services.revision_withdraw(revision=revision, actor=user, reason=reason)
    if action == "publish":
        return review_services.revision_publish(revision=revision, actor=user, reason=reason)
    if action == "unpublish":
        return review_services.revision_unpublish(revision=revision, actor=user, reason=reason)
    if action == "reject":
        return review_services.revision_reject(revision=revision, actor=user, reason=reason)
    raise ValidationFailed("Unknown action.", errors={"action": [f"Unknown action '{action}'."]})


def _actions(user: Viewer, variant: Variant, current: Revision) -> list[dict[str, Any]]:
    """Buttons for what the state machine allows from here and the user's role; the services still decide."""
    allowed = current.allowed_transitions()
    actions: list[dict[str, Any]] = []
    if can_edit_variant(user, variant):  # its namespace's people and collaborators
        if RevisionStatus.SUBMITTED in allowed:
            actions.append({"name": "submit", "label": "Submit for review", "style": ""})
        if RevisionStatus.WITHDRAWN in allowed:
            actions.append({"name": "withdraw", "label": "Withdraw", "style": "secondary"})
        if current.status in NEW_REVISION_FROM:
            actions.append({"name": "new-revision", "label": "Open a new revision", "style": "secondary"})
    if is_maintainer(user):
        if RevisionStatus.PUBLISHED in allowed or current.status == RevisionStatus.SUBMITTED:
            actions.append({"name": "publish", "label": "Publish", "style": ""})
        if RevisionStatus.UNPUBLISHED in allowed:
            actions.append({"name": "unpublish", "label": "Unpublish", "style": "danger", "reason": True})
        if RevisionStatus.REJECTED in allowed:
            actions.append({"name": "reject", "label": "Reject", "style": "danger", "reason": True})
    return actions


def _checklist(user: Viewer, variant: Variant, current: Revision) -> dict[str, Any] | None:
    checklist = checklist_selectors.checklist_for_revision(current)
    if checklist is None:
        return None
    rows = list(checklist.items.all())
    is_owner = can_edit_variant(user, variant)
    reviewer_not_author = is_reviewer(user) and not is_owner and current.created_by_id != user.pk
    badge = render_badge(
        level=checklist.level, progress=checklist.progress or {}, title=f"{variant.full_name} checklist"
    )
    levels = []
    for level, label in Level.choices:
        level_rows = [r for r in rows if r.item.level == level]
        levels.append(
            {"key": level, "label": label, "percent": (checklist.progress or {}).get(level, 0), "rows": level_rows}
        )
    return {
        "checklist": checklist,
        "levels": levels,
        "badge_data_uri": "data:image/svg+xml;base64," + base64.b64encode(badge.svg).decode(),
        "badge_message": badge.message,
        "can_answer": is_owner and current.status in checklist_services.ANSWERABLE_STATUSES,
        "can_verify": reviewer_not_author and current.status in checklist_services.VERIFIABLE_STATUSES,
        "statuses": ItemStatus.choices,
    }


def _add_parent_deltas(variant: Variant, jobs: list[Any], rows: list[dict[str, Any]]) -> None:
    """Each result's primary metric minus each parent's leaderboard score on the same benchmark version
    (the parents' ranked rows, read through the leaderboards app's board selector: one query per version)."""
    parents = {link.parent_id: link.parent.full_name for link in variant.parent_links.all()}
    if not parents:
        return
    groups: dict[tuple[int, str], list[tuple[dict[str, Any], float]]] = {}
    benchmarks = {}
    for job, row in zip(jobs, rows, strict=True):
        metric = job.benchmark.primary_metric
        value = (row.get("result") or {}).get("metrics", {}).get(metric) if metric else None
        if isinstance(value, int | float):
            groups.setdefault((job.benchmark_id, job.benchmark_version), []).append((row, float(value)))
            benchmarks[job.benchmark_id] = job.benchmark
    for (bench_id, version), group in groups.items():
        benchmark = benchmarks[bench_id]
        scores = dict(
            leaderboard_selectors.board_entries(benchmark=benchmark, version=version)
            .filter(variant_id__in=list(parents))
            .values_list("variant_id", "score")
        )
        for row, value in group:
            row["deltas"] = [
                {"parent": parents[pid], "delta": round(value - scores[pid], 6), "metric": benchmark.primary_metric}
                for pid in parents
                if pid in scores
            ]


def variant_sections(request: HttpRequest, variant: Variant, current: Revision | None) -> dict[str, Any]:
    """The parts of the variant page other apps own: checklist, reviews and comments, jobs, publication gate."""
    user = request.user
    jobs = list(jobs_for_api(jobs_visible_to(user).filter(revision__variant=variant)).order_by("-id")[:50])
    job_rows: list[dict[str, Any]] = list(JobSerializer(jobs, many=True, context={"request": request}).data)
    _add_parent_deltas(variant, jobs, job_rows)
    ctx: dict[str, Any] = {
        "jobs": job_rows,
        "actions": [],
        "checklist": None,
        "gate": None,
        "card_html": render_markdown(variant.card) if variant.card else "",
        "comments": review_selectors.comments_of(variant),
        "reviews": None,
    }
    if current is None:
        return ctx
    ctx["actions"] = _actions(user, variant, current)
    ctx["checklist"] = _checklist(user, variant, current)
    if current.status != RevisionStatus.DRAFT:
        ctx["reviews"] = list(review_selectors.reviews_of(current))
        is_author = user.pk in author_ids(current)
        ctx["can_review"] = (
            is_reviewer(user)
            and not is_author
            and current.status in (RevisionStatus.SUBMITTED, RevisionStatus.APPROVED)
        )
        ctx["review_decisions"] = ReviewDecision.choices
    if current.status in (
        RevisionStatus.SUBMITTED,
        RevisionStatus.APPROVED,
        RevisionStatus.CHANGES_REQUESTED,
        RevisionStatus.UNPUBLISHED,
    ):
        unmet = publication_gate_unmet(current)
        ctx["gate"] = {"ok": not unmet, "missing": unmet}
    return ctx


def dashboard_sections(request: AuthedRequest) -> dict[str, Any]:
    """Notifications and, for reviewers, the review queue."""
    user = request.user
    ctx: dict[str, Any] = {
        "notifications": list(Notification.objects.filter(user=user).order_by("-id")[:10]),
        "review_queue": None,
    }
    if is_reviewer(user):
        ctx["review_queue"] = list(review_selectors.review_queue(user)[:20])
    return ctx


def namespace_standing(owner: Any) -> list[dict[str, Any]]:
    """The namespace's best rank on each benchmark's current board (its variants' ranked rows), best first.

    One query: each of the namespace's ranked rows counts the rows ahead of it on the same board, read through
    the leaderboards app's board selector (so the order is exactly the board's: score, then earlier id)."""
    ahead = (
        leaderboard_selectors.board_entries(
            benchmark=cast(Any, OuterRef("benchmark")), version=cast(Any, OuterRef("benchmark_version"))
        )
        .filter(Q(rank_score__gt=OuterRef("rank_score")) | Q(rank_score=OuterRef("rank_score"), id__lt=OuterRef("id")))
        .order_by()
        .values(n=Func(F("id"), function="COUNT"))
    )
    size = (
        leaderboard_selectors.board_entries(
            benchmark=cast(Any, OuterRef("benchmark")), version=cast(Any, OuterRef("benchmark_version"))
        )
        .order_by()
        .values(n=Func(F("id"), function="COUNT"))
    )
    rows = (
        LeaderboardEntry.objects.filter(variant__owner=owner, ranked=True, benchmark_version=F("benchmark__version"))
        .annotate(ahead=Subquery(ahead), board_size=Subquery(size))
        .values(
            "benchmark__slug",
            "benchmark__name",
            "benchmark_version",
            "variant__name",
            "score",
            "score_metric",
            "ahead",
            "board_size",
        )
    )
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        rank = int(row["ahead"] or 0) + 1
        slug = row["benchmark__slug"]
        if slug not in best or rank < best[slug]["rank"]:
            best[slug] = {
                "slug": slug,
                "benchmark": row["benchmark__name"],
                "version": row["benchmark_version"],
                "variant": row["variant__name"],
                "score": row["score"],
                "metric": row["score_metric"],
                "rank": rank,
                "of": int(row["board_size"] or 0),
            }
    return sorted(best.values(), key=lambda r: (r["rank"], r["benchmark"]))
