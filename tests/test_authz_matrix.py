"""The authorization matrix (SPEC §7 wave 2), generated from the URLconf.

Every URL pattern under /api/ and every web page that shows or changes an object has a row here; a new endpoint
without a row fails `test_every_endpoint_has_a_row`. A row says, per method, object and role, which status the
request gets. Roles: anonymous, another contributor (carol), the owner (alice), a reviewer, a maintainer.
Objects (tests/visibility_world.py): a draft variant (alice/vis-draft), a published variant with a newer draft
revision (alice/vis-pub revision 2), a published revision (alice/vis-pub revision 1), a private job (a job on
revision 2) and a public job.

Organization roles (SPEC §2 wave 2): an admin (oadmin) and a member (omember) of the organization `vis-org`, which
has a pending invitation for carol. Organizations do not own variants yet, so to every variant, job, comment and
flag of this world they are outsiders: unless a row names them, they get what `other` gets. When org-owned
variants come, give the world an org-owned variant and its insiders here (apps.registry.querysets._org_member_q
is where the rule goes).

One world per module (built once, inside a transaction rolled back at the end); each cell runs in a savepoint
that is rolled back, so a write in one cell never changes what the next one sees."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.db import transaction
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from tests.visibility_world import build_world

ROLES = ("anonymous", "other", "owner", "reviewer", "maintainer", "org_admin", "org_member")
USERNAMES = {
    "other": "carol",
    "owner": "alice",
    "reviewer": "rev",
    "maintainer": "maint",
    "org_admin": "oadmin",
    "org_member": "omember",
}
INSIDERS = ("owner", "reviewer", "maintainer")
AUTHED = ("other", "owner", "reviewer", "maintainer", "org_admin", "org_member")
#: Outsiders to every object but their organization: by default they get what `other` gets.
ORG_ROLES = ("org_admin", "org_member")


def _given(per_role: dict[str, Any], role: str, default: Any) -> Any:
    if role in per_role:
        return per_role[role]
    if role in ORG_ROLES:
        return per_role.get("other", default)
    return default


# Objects a row can be asked about. Each is {placeholder: value} for the path template.
OBJECTS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "draft": lambda w: {"v": "alice/vis-draft", "n": 1, "job": w["draft_job"].pk},
    "pub_draft": lambda w: {"v": "alice/vis-pub", "n": 2, "job": w["private_job"].pk},
    "pub": lambda w: {"v": "alice/vis-pub", "n": 1, "job": w["public_job"].pk},
    "private_job": lambda w: {"job": w["private_job"].pk},
    "public_job": lambda w: {"job": w["public_job"].pk},
    "none": lambda w: {},
}
# Who may see each object: everyone, or the variant's insiders only.
PRIVATE = {"draft", "pub_draft", "private_job"}


def _seers(obj: str) -> tuple[str, ...]:
    return INSIDERS if obj in PRIVATE else ROLES


def seen(obj: str, ok: int | tuple[int, ...] = 200, hidden: int = 404) -> dict[str, Any]:
    """`ok` for whoever may see the object, `hidden` (404: nobody learns it exists) for everyone else."""
    return {role: ok if role in _seers(obj) else hidden for role in ROLES}


def not_carol(status: int) -> dict[str, int]:
    """For the org roles where `other` (carol) is special: she wrote the comment and raised the flag."""
    return dict.fromkeys(ORG_ROLES, status)


NOT_CAROL = not_carol(403)


def roles(default: int | tuple[int, ...], **per_role: int | tuple[int, ...]) -> dict[str, Any]:
    return {role: _given(per_role, role, default) for role in ROLES}


def write(obj: str, **per_role: int | tuple[int, ...]) -> dict[str, Any]:
    """A write on an object: anonymous must authenticate (401), a signed-in user who may not see it gets 404;
    the others are given (default 403: seen but not theirs to change)."""
    out: dict[str, Any] = {}
    for role in ROLES:
        if role == "anonymous":
            out[role] = 401
        elif role not in _seers(obj):
            out[role] = 404
        else:
            out[role] = _given(per_role, role, 403)
    return out


def page(obj: str, ok: int = 200, login: bool = False) -> dict[str, Any]:
    """A web page: 404 for whoever may not see the object; with `login`, anonymous goes to the login page."""
    out = seen(obj, ok)
    if login:
        out["anonymous"] = 302
    return out


@dataclass
class Cell:
    method: str
    path: str
    expect: dict[str, dict[str, Any]]  # object -> role -> status (or a tuple of acceptable statuses)
    body: Any = None
    fmt: str = "json"
    extra: dict[str, Any] = field(default_factory=dict)


V = "/api/v1/variants/{v}"
R = "/api/v1/variants/{v}/revisions/{n}"
W = "/variants/{v}"
ORG = "/api/v1/orgs/vis-org"
JOB_BODY = {"variant": "{v}", "revision": "{n}", "benchmark": "vis-bench"}
NEW_VARIANT = {"name": "fresh", "relation": "finetune", "parents": ["commons/vis-base"], "license": "mit"}
CARD_IMPORT = {
    "name": "imported",
    "card": "---\nlicense: mit\nbase_model: commons/vis-base\nbase_model_relation: finetune\n---\n# Imported\n",
}
BENCHMARK = {"slug": "new-bench", "name": "New", "runner": "noop", "metrics": [{"name": "ok", "primary": True}]}

# One entry per URL pattern, keyed by its name ("web:" for the pages); unnamed patterns by their route.
ROWS: dict[str, list[Cell]] = {
    # --- schema, health -----------------------------------------------------------------------------------------
    "schema": [Cell("get", "/api/schema/", {"none": roles(200)})],
    "api-docs": [Cell("get", "/api/docs/", {"none": roles(200)})],
    # Anything else under /api/ is a problem+json 404, for everyone.
    "^api/": [
        Cell("get", "/api/v1/no-such-endpoint/", {"none": roles(404)}),
        Cell("get", "/api/v2/variants/", {"none": roles(404)}),
    ],
    "healthz": [Cell("get", "/healthz", {"none": roles(200)})],
    "readyz": [Cell("get", "/readyz", {"none": roles((200, 503))})],
    # --- accounts ------------------------------------------------------------------------------------------------
    "me": [Cell("get", "/api/v1/me/", {"none": roles(200, anonymous=401)})],
    "token-list": [
        Cell("get", "/api/v1/auth/tokens/", {"none": roles(200, anonymous=401)}),
        Cell("post", "/api/v1/auth/tokens/", {"none": roles(201, anonymous=401)}, {"name": "t", "scopes": ["read"]}),
    ],
    "token-detail": [Cell("delete", "/api/v1/auth/tokens/{token}/", {"none": roles(404, anonymous=401, owner=204)})],
    "user-detail": [
        Cell("get", "/api/v1/users/alice/", {"none": roles(200, anonymous=(200, 401))}),
        Cell(
            "patch",
            "/api/v1/users/alice/",
            {"none": roles(403, anonymous=401, maintainer=200)},
            {"roles": ["reviewer"]},
        ),
    ],
    "audit-list": [Cell("get", "/api/v1/audit/", {"none": roles(403, anonymous=401, maintainer=200)})],
    # --- registry ------------------------------------------------------------------------------------------------
    "variant-list": [
        Cell("get", "/api/v1/variants/", {"none": roles(200)}),
        Cell("post", "/api/v1/variants/", {"none": roles(201, anonymous=401)}, NEW_VARIANT),
    ],
    "variant-import-card": [
        Cell("post", "/api/v1/variants/import-card/", {"none": roles(201, anonymous=401)}, CARD_IMPORT)
    ],
    "variant-detail": [
        Cell("get", V + "/", {"draft": seen("draft"), "pub": seen("pub")}),
        Cell(
            "patch",
            V + "/",
            {"draft": write("draft", owner=200), "pub": write("pub", owner=200)},
            {"summary": "changed"},
        ),
        # A job ran on each (its results must keep pointing at them), and vis-pub is published.
        Cell("delete", V + "/", {"draft": write("draft", owner=409), "pub": write("pub", owner=409)}),
    ],
    "variant-lineage": [Cell("get", V + "/lineage/", {"draft": seen("draft"), "pub": seen("pub")})],
    # Transfers and collaborators: the owner manages (an org's admins for its variants, in
    # apps/registry/tests/test_orgs_variants.py). The bodies are refused for the owner (already theirs), so the
    # shared world never changes.
    "variant-transfer": [
        Cell(
            "post",
            V + "/transfer/",
            {"draft": write("draft", owner=400), "pub": write("pub", owner=400)},
            {"to": "alice"},
        )
    ],
    "variant-collaborators": [
        Cell(
            "get",
            V + "/collaborators/",
            {
                "draft": write("draft", owner=200, reviewer=200, maintainer=200),
                "pub": write("pub", owner=200, reviewer=200, maintainer=200),
            },
        )
    ],
    "variant-collaborator": [
        Cell("put", V + "/collaborators/alice/", {"draft": write("draft", owner=400), "pub": write("pub", owner=400)}),
        Cell(
            "delete",
            V + "/collaborators/nobody/",
            {"draft": write("draft", owner=404), "pub": write("pub", owner=404)},
        ),
    ],
    "variant-card": [Cell("get", V + "/card.md", {"draft": seen("draft"), "pub": seen("pub")})],
    "revision-list": [
        Cell("get", V + "/revisions/", {"draft": seen("draft"), "pub": seen("pub")}),
        # Both variants have an open draft: a second one is a conflict.
        Cell("post", V + "/revisions/", {"draft": write("draft", owner=409), "pub": write("pub", owner=409)}, {}),
    ],
    "revision-detail": [Cell("get", R + "/", {o: seen(o) for o in ("draft", "pub_draft", "pub")})],
    "revision-artifacts": [
        Cell(
            "post",
            R + "/artifacts/",
            {
                "draft": write("draft", owner=201),
                "pub_draft": write("pub_draft", owner=201),
                "pub": write("pub", owner=409),
            },
            {"path": "extra.safetensors", "uri": "hf://o/m@1/extra.safetensors", "sha256": "a" * 64, "size_bytes": 1},
        )
    ],
    "revision-submit": [
        Cell(
            "post",
            R + "/submit/",
            {
                "draft": write("draft", owner=200),
                "pub_draft": write("pub_draft", owner=200),
                "pub": write("pub", owner=409),
            },
        )
    ],
    "revision-withdraw": [
        Cell(
            "post",
            R + "/withdraw/",
            {
                "draft": write("draft", owner=200),
                "pub_draft": write("pub_draft", owner=200),
                "pub": write("pub", owner=409),
            },
            {},
        )
    ],
    # --- files, uploads and the Hub-compatible read API (apps.transfers, apps.hub) ------------------------------
    "revision-files": [Cell("get", R + "/files/", {o: seen(o) for o in ("draft", "pub_draft", "pub")})],
    # This world's files are recorded by URI only (no bytes to serve): 404 for everyone. Downloads of stored files
    # per role are in apps/transfers/tests/test_api.py.
    "revision-file": [
        Cell("get", R + "/files/model.safetensors", {o: roles(404) for o in ("draft", "pub_draft", "pub")})
    ],
    "upload-list": [
        Cell(
            "post",
            "/api/v1/uploads/",
            {
                "draft": write("draft", owner=201),
                "pub_draft": write("pub_draft", owner=201),
                "pub": write("pub", owner=409),
            },
            {"variant": "{v}", "revision": "{n}", "path": "up.safetensors", "size_bytes": 1, "sha256": "a" * 64},
        )
    ],
    # alice's upload session (an upload is private to whoever opened it); it has no bytes yet: 409 to complete.
    "upload-detail": [Cell("get", "/api/v1/uploads/{upload}/", {"none": roles(404, anonymous=401, owner=200)})],
    "upload-complete": [
        Cell("post", "/api/v1/uploads/{upload}/complete/", {"none": roles(404, anonymous=401, owner=409)})
    ],
    # Internal: workers stage files here with a worker token bound to the blob; no user (maintainers neither, with
    # any credentials) gets in. Token cases (bad, expired, another blob) are in apps/transfers/tests.
    "worker-blob": [Cell("get", "/api/v1/internal/blobs/" + "a" * 64 + "/", {"none": roles(401)})],
    "hub-model-info": [Cell("get", "/api/models/{v}", {"draft": seen("draft"), "pub": seen("pub")})],
    "hub-model-info-revision": [
        Cell("get", "/api/models/{v}/revision/{n}", {o: seen(o) for o in ("draft", "pub_draft", "pub")})
    ],
    # URI-only files again (nothing stored to serve): 404 for everyone; stored downloads per role: apps/hub tests.
    "hub-resolve": [
        Cell("get", "/{v}/resolve/{n}/model.safetensors", {o: roles(404) for o in ("draft", "pub_draft", "pub")})
    ],
    "hub-tree": [Cell("get", "/api/models/{v}/tree/{n}", {o: seen(o) for o in ("draft", "pub_draft", "pub")})],
    # No folder in this world's revisions: EntryNotFound (404) for whoever sees the revision, 404 for the others.
    "hub-tree-path": [
        Cell("get", "/api/models/{v}/tree/{n}/weights", {o: roles(404) for o in ("draft", "pub_draft", "pub")})
    ],
    # --- benchmarks and jobs ----------------------------------------------------------------------------------------
    "benchmark-list": [
        Cell("get", "/api/v1/benchmarks/", {"none": roles(200)}),
        Cell("post", "/api/v1/benchmarks/", {"none": roles(403, anonymous=401, maintainer=201)}, BENCHMARK),
    ],
    "benchmark-detail": [
        Cell("get", "/api/v1/benchmarks/vis-bench/", {"none": roles(200)}),
        Cell(
            "patch",
            "/api/v1/benchmarks/vis-bench/",
            {"none": roles(403, anonymous=401, maintainer=200)},
            {"description": "d"},
        ),
    ],
    "job-list": [
        Cell("get", "/api/v1/jobs/", {"none": roles(200)}),
        # Queuing needs sight of the revision: one the user may not see answers as one that does not exist (400 on
        # the `revision` or `variant` field, exactly as for a missing one).
        Cell(
            "post",
            "/api/v1/jobs/",
            {
                "draft": roles(201, anonymous=401, other=400),
                "pub_draft": roles(201, anonymous=401, other=400),
                "pub": roles((200, 201), anonymous=401),
            },
            JOB_BODY,
        ),
    ],
    "job-batch": [
        Cell(
            "post",
            "/api/v1/jobs/batch/",
            {
                "draft": roles(201, anonymous=401, other=400),
                "pub_draft": roles(201, anonymous=401, other=400),
                "pub": roles((200, 201), anonymous=401),
            },
            {"jobs": [JOB_BODY]},
        )
    ],
    "job-detail": [
        Cell("get", "/api/v1/jobs/{job}/", {"private_job": seen("private_job"), "public_job": seen("public_job")})
    ],
    "job-bundle": [
        Cell(
            "get",
            "/api/v1/jobs/{job}/bundle.json",
            {"private_job": seen("private_job"), "public_job": seen("public_job")},
        )
    ],
    # The jobs are alice's and succeeded: nothing to cancel; retry is for failed jobs; verify re-runs them.
    "job-cancel": [
        Cell(
            "post",
            "/api/v1/jobs/{job}/cancel/",
            {
                "private_job": write("private_job", owner=409, maintainer=409),
                "public_job": write("public_job", owner=409, maintainer=409),
            },
        )
    ],
    "job-retry": [
        Cell(
            "post",
            "/api/v1/jobs/{job}/retry/",
            {
                "private_job": write("private_job", owner=409, maintainer=409),
                "public_job": write("public_job", owner=409, maintainer=409),
            },
        )
    ],
    "job-verify": [
        Cell(
            "post",
            "/api/v1/jobs/{job}/verify/",
            {
                "private_job": write("private_job", owner=201, reviewer=201, maintainer=201),
                "public_job": write("public_job", owner=201, reviewer=201, maintainer=201),
            },
        )
    ],
    "blocklist-list": [
        Cell("get", "/api/v1/blocklist/", {"none": roles(403, anonymous=401, maintainer=200)}),
        Cell(
            "post",
            "/api/v1/blocklist/",
            {"none": roles(403, anonymous=401, maintainer=201)},
            {"variant": "alice/vis-pub", "reason": "r"},
        ),
    ],
    "blocklist-detail": [
        Cell("get", "/api/v1/blocklist/{block}/", {"none": roles(404, anonymous=401, maintainer=200)}),
        Cell("delete", "/api/v1/blocklist/{block}/", {"none": roles(404, anonymous=401, maintainer=204)}),
    ],
    # --- checklists ---------------------------------------------------------------------------------------------
    # A draft has no checklist yet (404 for everyone); the published revision's is created on first read.
    "checklist-detail": [
        Cell("get", R + "/checklist/", {"draft": roles(404), "pub_draft": roles(404), "pub": seen("pub")})
    ],
    "checklist-badge": [
        Cell("get", R + "/checklist/badge.svg", {"draft": roles(404), "pub_draft": roles(404), "pub": seen("pub")})
    ],
    # Only the owner answers (403 for the others who see it); a draft has no checklist yet (404); a published
    # revision's checklist is closed (409).
    "checklist-item": [
        Cell(
            "patch",
            R + "/checklist/training-data-disclosed/",
            {
                "draft": write("draft", owner=404),
                "pub_draft": write("pub_draft", owner=404),
                "pub": write("pub", owner=409),
            },
            {"status": "met", "justification": "j"},
        )
    ],
    "revision-components": [Cell("get", R + "/components/", {o: seen(o) for o in ("draft", "pub_draft", "pub")})],
    # No component is declared in this world: 404 for everyone (the revision's own visibility is the list's row).
    "revision-component": [
        Cell("get", R + "/components/model-card/", {o: roles(404) for o in ("draft", "pub_draft", "pub")})
    ],
    "variant-checklist-badge": [Cell("get", V + "/badge.svg", {"draft": seen("draft"), "pub": seen("pub")})],
    "checklist-template-list": [
        Cell("get", "/api/v1/checklist-templates/", {"none": roles(200)}),
        Cell(
            "post",
            "/api/v1/checklist-templates/",
            {"none": roles(403, anonymous=401, maintainer=(201, 400))},
            {"slug": "t", "name": "T", "items": []},
        ),
    ],
    "checklist-template-detail": [
        Cell("get", "/api/v1/checklist-templates/open-model-practices/", {"none": roles((200, 404))}),
        Cell(
            "patch",
            "/api/v1/checklist-templates/open-model-practices/",
            {"none": roles((403, 404), anonymous=401, maintainer=(200, 400, 404))},
            {"name": "x"},
        ),
    ],
    "checklist-template-version": [
        Cell("get", "/api/v1/checklist-templates/open-model-practices/versions/1/", {"none": roles((200, 404))})
    ],
    # --- leaderboards ------------------------------------------------------------------------------------------
    "leaderboard-benchmark": [Cell("get", "/api/v1/leaderboards/vis-bench/", {"none": roles(200)})],
    "leaderboard-suite": [Cell("get", "/api/v1/leaderboards/suites/vis-suite/", {"none": roles(200)})],
    "suite-list": [
        Cell("get", "/api/v1/suites/", {"none": roles(200)}),
        Cell(
            "post",
            "/api/v1/suites/",
            {"none": roles(403, anonymous=401, maintainer=201)},
            {"slug": "new-suite", "name": "New", "benchmarks": [{"benchmark": "vis-bench"}]},
        ),
    ],
    "suite-detail": [
        Cell("get", "/api/v1/suites/vis-suite/", {"none": roles(200)}),
        Cell(
            "patch",
            "/api/v1/suites/vis-suite/",
            {"none": roles(403, anonymous=401, maintainer=200)},
            {"name": "Renamed"},
        ),
    ],
    # --- reviews -------------------------------------------------------------------------------------------------
    "revision-reviews": [
        Cell("get", R + "/reviews/", {o: seen(o) for o in ("draft", "pub_draft", "pub")}),
        # Nothing here is under review; the owner may not review their own work.
        Cell(
            "post",
            R + "/reviews/",
            {o: write(o, reviewer=409, maintainer=409) for o in ("draft", "pub_draft", "pub")},
            {"decision": "comment", "body": "hm"},
        ),
    ],
    "revision-gate": [Cell("get", R + "/gate/", {o: seen(o) for o in ("draft", "pub_draft", "pub")})],
    "revision-publish": [
        Cell(
            "post",
            R + "/publish/",
            {
                "draft": write("draft", maintainer=409),
                "pub_draft": write("pub_draft", maintainer=409),
                "pub": write("pub", maintainer=409),
            },
            {"reason": ""},
        )
    ],
    "revision-unpublish": [
        Cell(
            "post",
            R + "/unpublish/",
            {
                "draft": write("draft", maintainer=409),
                "pub_draft": write("pub_draft", maintainer=409),
                "pub": write("pub", maintainer=200),
            },
            {"reason": "gone"},
        )
    ],
    "revision-reject": [
        Cell(
            "post",
            R + "/reject/",
            {
                "draft": write("draft", maintainer=409),
                "pub_draft": write("pub_draft", maintainer=409),
                "pub": write("pub", maintainer=409),
            },
            {"reason": "no"},
        )
    ],
    "revision-assign": [
        Cell(
            "post",
            R + "/assign/",
            {o: write(o, reviewer=409, maintainer=409) for o in ("draft", "pub_draft", "pub")},
            {},
        )
    ],
    # Nobody is assigned: dropping one's own (absent) assignment is a 404 for whoever sees the revision.
    "revision-unassign": [
        Cell(
            "post",
            R + "/unassign/",
            {o: write(o, other=404, owner=404, reviewer=404, maintainer=404) for o in ("draft", "pub_draft", "pub")},
            {},
        )
    ],
    "review-queue": [Cell("get", "/api/v1/reviews/queue/", {"none": roles(200, anonymous=401, other=403, owner=403)})],
    "variant-comments": [
        Cell("get", V + "/comments/", {"draft": seen("draft"), "pub": seen("pub")}),
        Cell(
            "post",
            V + "/comments/",
            {
                "draft": write("draft", owner=201, reviewer=201, maintainer=201),
                "pub": write("pub", other=201, owner=201, reviewer=201, maintainer=201),
            },
            {"body": "hello"},
        ),
    ],
    "comment-detail": [
        Cell("get", "/api/v1/comments/{comment}/", {"none": roles(200)}),
        Cell(
            "patch",
            "/api/v1/comments/{comment}/",
            {"none": roles(403, anonymous=401, other=200, **NOT_CAROL)},
            {"body": "edited"},
        ),
    ],
    "comment-hide": [
        Cell(
            "post",
            "/api/v1/comments/{comment}/hide/",
            {"none": roles(403, anonymous=401, maintainer=200)},
            {"reason": "r"},
        )
    ],
    "comment-unhide": [
        Cell("post", "/api/v1/comments/{comment}/unhide/", {"none": roles(403, anonymous=401, maintainer=409)})
    ],
    "variant-flags": [
        Cell(
            "post",
            V + "/flags/",
            {
                "draft": write("draft", owner=409, reviewer=409, maintainer=409),
                "pub": write("pub", other=201, owner=(201, 403, 409), reviewer=201, maintainer=201),
            },
            {"kind": "other", "description": "odd", "evidence_url": "https://example.org/e"},
        )
    ],
    "flag-list": [Cell("get", "/api/v1/flags/", {"none": roles(200, anonymous=401)})],
    # carol raised the flag on alice's variant: both see it, and so do moderators; the reviewer does not.
    "flag-detail": [
        Cell("get", "/api/v1/flags/{flag}/", {"none": roles(200, anonymous=401, reviewer=404, **not_carol(404))})
    ],
    "flag-resolve": [
        Cell(
            "post",
            "/api/v1/flags/{flag}/resolve/",
            {"none": roles(403, anonymous=401, reviewer=404, maintainer=200, **not_carol(404))},
            {"action": "dismiss", "reason": "fine"},
        )
    ],
    "flag-respond": [
        Cell(
            "post",
            "/api/v1/flags/{flag}/respond/",
            {"none": roles(403, anonymous=401, reviewer=404, owner=(200, 409), **not_carol(404))},
            {"body": "it is fine"},
        )
    ],
    # --- notifications and webhooks (every user's own; alice's webhook for the per-object rows) -------------------
    "notification-preferences": [
        Cell("get", "/api/v1/notifications/preferences/", {"none": roles(200, anonymous=401)})
    ],
    "notification-list": [Cell("get", "/api/v1/notifications/", {"none": roles(200, anonymous=401)})],
    "notification-read-all": [Cell("post", "/api/v1/notifications/read-all/", {"none": roles(200, anonymous=401)})],
    "notification-detail": [
        Cell("get", "/api/v1/notifications/{notification}/", {"none": roles(404, anonymous=401, owner=200)})
    ],
    "notification-read": [
        Cell("post", "/api/v1/notifications/{notification}/read/", {"none": roles(404, anonymous=401, owner=200)})
    ],
    "webhook-list": [Cell("get", "/api/v1/webhooks/", {"none": roles(200, anonymous=401)})],
    "webhook-detail": [
        Cell("get", "/api/v1/webhooks/{webhook}/", {"none": roles(404, anonymous=401, owner=200)}),
        Cell("delete", "/api/v1/webhooks/{webhook}/", {"none": roles(404, anonymous=401, owner=204)}),
    ],
    "webhook-ping": [
        Cell("post", "/api/v1/webhooks/{webhook}/ping/", {"none": roles(404, anonymous=401, owner=(200, 201, 202))})
    ],
    "webhook-rotate-secret": [
        Cell("post", "/api/v1/webhooks/{webhook}/rotate-secret/", {"none": roles(404, anonymous=401, owner=200)})
    ],
    "webhook-deliveries": [
        Cell("get", "/api/v1/webhooks/{webhook}/deliveries/", {"none": roles(404, anonymous=401, owner=200)})
    ],
    "webhook-delivery": [
        Cell("get", "/api/v1/webhooks/{webhook}/deliveries/{delivery}/", {"none": roles(404, anonymous=401, owner=200)})
    ],
    "webhook-redeliver": [
        Cell(
            "post",
            "/api/v1/webhooks/{webhook}/deliveries/{delivery}/redeliver/",
            {"none": roles(404, anonymous=401, owner=202)},
        )
    ],
    # --- organizations (vis-org: oadmin admin, omember member, a pending invitation for carol) --------------------
    "org-list": [
        Cell("get", "/api/v1/orgs/", {"none": roles(200)}),
        Cell("post", "/api/v1/orgs/", {"none": roles(201, anonymous=401)}, {"name": "fresh-lab"}),
    ],
    "org-detail": [
        Cell("get", ORG + "/", {"none": roles(200)}),
        Cell(
            "patch",
            ORG + "/",
            {"none": roles(403, anonymous=401, org_admin=200, maintainer=200)},
            {"description": "changed"},
        ),
        Cell("delete", ORG + "/", {"none": roles(403, anonymous=401, org_admin=204, maintainer=204)}),
    ],
    "org-members": [Cell("get", ORG + "/members/", {"none": roles(200)})],
    "org-member-detail": [
        Cell(
            "patch",
            ORG + "/members/omember/",
            {"none": roles(403, anonymous=401, org_admin=200, maintainer=200)},
            {"role": "admin"},
        ),
        # A member may leave.
        Cell(
            "delete",
            ORG + "/members/omember/",
            {"none": roles(403, anonymous=401, org_admin=204, org_member=204, maintainer=204)},
        ),
    ],
    "org-invitations": [
        Cell("get", ORG + "/invitations/", {"none": roles(403, anonymous=401, org_admin=200, maintainer=200)}),
        Cell(
            "post",
            ORG + "/invitations/",
            {"none": roles(403, anonymous=401, org_admin=201, maintainer=201)},
            {"username": "rev"},
        ),
    ],
    # Invitations are seen by their invitee (carol: may not revoke), the org's admins and maintainers only.
    "org-invitation-detail": [
        Cell(
            "delete",
            ORG + "/invitations/{invitation}/",
            {"none": roles(404, anonymous=401, other=403, org_admin=204, org_member=404, maintainer=204)},
        )
    ],
    "invitation-list": [Cell("get", "/api/v1/invitations/", {"none": roles(200, anonymous=401)})],
    # Only the invitee decides; the org's admins and maintainers see the invitation (403), nobody else does (404).
    "invitation-accept": [
        Cell(
            "post",
            "/api/v1/invitations/{invitation}/accept/",
            {"none": roles(404, anonymous=401, other=200, org_admin=403, org_member=404, maintainer=403)},
        )
    ],
    "invitation-decline": [
        Cell(
            "post",
            "/api/v1/invitations/{invitation}/decline/",
            {"none": roles(404, anonymous=401, other=200, org_admin=403, org_member=404, maintainer=403)},
        )
    ],
    # --- web pages that show or change objects ---------------------------------------------------------------
    "web:variant-list": [Cell("get", "/variants/", {"none": roles(200)}, fmt="html")],
    "web:variant": [Cell("get", W + "/", {"draft": page("draft"), "pub": page("pub")}, fmt="html")],
    "web:variant-edit": [
        Cell(
            "get",
            W + "/edit/",
            {
                "draft": page("draft", login=True) | {"reviewer": 403, "maintainer": 403},
                "pub": page("pub", login=True) | {"other": 403, "reviewer": 403, "maintainer": 403, **NOT_CAROL},
            },
            fmt="html",
        )
    ],
    "web:artifact-upload": [
        Cell(
            "post",
            W + "/revisions/{n}/artifacts/",
            {o: page(o, 400, login=True) for o in ("draft", "pub_draft", "pub")},
            {},
            fmt="html",
        )
    ],
    # The page redirects back with the service's refusal (403: only the owner answers; 409: published); a draft
    # has no checklist yet, which is a 404 for its owner as in the API.
    "web:checklist-answer": [
        Cell(
            "post",
            W + "/revisions/{n}/checklist/training-data-disclosed/",
            {
                "draft": page("draft", 302, login=True) | {"owner": 404},
                "pub_draft": page("pub_draft", 302, login=True) | {"owner": 404},
                "pub": page("pub", 302, login=True),
            },
            {"status": "met"},
            fmt="html",
        )
    ],
    "web:review-submit": [
        Cell(
            "post",
            W + "/revisions/{n}/reviews/",
            {o: page(o, 400, login=True) for o in ("draft", "pub_draft", "pub")},
            {"decision": "comment", "body": "x"},
            fmt="html",
        )
    ],
    "web:comment-create": [
        Cell(
            "post",
            W + "/comments/",
            {"draft": page("draft", 302, login=True), "pub": page("pub", 302, login=True)},
            {"body": "hi"},
            fmt="html",
        )
    ],
    "web:flag-create": [
        Cell(
            "post",
            W + "/flags/",
            {"draft": page("draft", 400, login=True), "pub": page("pub", (302, 400), login=True)},
            {"kind": "spam", "description": "spam"},
            fmt="html",
        )
    ],
    "web:revision-action": [
        Cell(
            "post",
            W + "/revisions/{n}/withdraw/",
            {o: page(o, 302, login=True) for o in ("draft", "pub_draft", "pub")},
            {},
            fmt="html",
        )
    ],
    "web:job-submit": [
        Cell("get", W + "/jobs/new/", {"draft": page("draft", login=True), "pub": page("pub", login=True)}, fmt="html")
    ],
    "web:job": [
        Cell("get", "/jobs/{job}/", {"private_job": page("private_job"), "public_job": page("public_job")}, fmt="html")
    ],
    "web:job-progress": [
        Cell(
            "get",
            "/jobs/{job}/progress/",
            {"private_job": page("private_job"), "public_job": page("public_job")},
            fmt="html",
        )
    ],
    "web:job-cancel": [
        Cell(
            "post",
            "/jobs/{job}/cancel/",
            {"private_job": page("private_job", 302, login=True), "public_job": page("public_job", 302, login=True)},
            fmt="html",
        )
    ],
    "web:job-verify": [
        Cell(
            "post",
            "/jobs/{job}/verify/",
            {"private_job": page("private_job", 302, login=True), "public_job": page("public_job", 302, login=True)},
            fmt="html",
        )
    ],
    # --- organization pages (apps/web/views/orgs.py) and a variant's ownership forms: the bodies are refused or
    # name nothing, so the shared world never changes. Writes of non-admins are 403; anonymous goes to login.
    "web:org-list": [Cell("get", "/orgs/", {"none": roles(200)}, fmt="html")],
    "web:org": [Cell("get", "/orgs/vis-org/", {"none": roles(200)}, fmt="html")],
    "web:org-members": [Cell("get", "/orgs/vis-org/members/", {"none": roles(200)}, fmt="html")],
    "web:org-create": [Cell("post", "/orgs/new/", {"none": roles(400, anonymous=302)}, {"name": "!"}, fmt="html")],
    "web:org-invite": [
        Cell(
            "post",
            "/orgs/vis-org/members/invite/",
            {"none": roles(403, anonymous=302, org_admin=400, maintainer=400)},
            {"username": "nobody-here", "role": "member"},
            fmt="html",
        )
    ],
    "web:org-member-role": [
        Cell(
            "post",
            "/orgs/vis-org/members/nobody-here/role/",
            {"none": roles(302)},  # back to the members page with the service's refusal as a message
            {"role": "admin"},
            fmt="html",
        )
    ],
    "web:org-member-remove": [
        Cell(
            "post",
            "/orgs/vis-org/members/nobody-here/remove/",
            {"none": roles(302)},  # back with the refusal as a message (a member may remove themself: leave)
            {},
            fmt="html",
        )
    ],
    "web:org-edit": [
        Cell(
            "get",
            "/orgs/vis-org/settings/",
            {"none": roles(403, anonymous=302, org_admin=200, maintainer=200)},
            fmt="html",
        ),
        Cell(
            "post",
            "/orgs/vis-org/settings/",
            {"none": roles(403, anonymous=302, org_admin=400, maintainer=400)},
            {"display_name": "x" * 101},  # too long: refused beside the field, nothing saved
            fmt="html",
        ),
    ],
    "web:org-delete": [
        Cell(
            "post",
            "/orgs/vis-org/delete/",
            {"none": roles(403, anonymous=302, org_admin=400, maintainer=400)},
            {"confirm": "not-its-name"},  # the confirmation fails: nothing is deleted
            fmt="html",
        )
    ],
    "web:org-invitation-revoke": [
        Cell("post", "/orgs/vis-org/invitations/999999/revoke/", {"none": roles(404, anonymous=302)}, {}, fmt="html")
    ],
    "web:invitations": [Cell("get", "/invitations/", {"none": roles(200, anonymous=302)}, fmt="html")],
    "web:invitation-accept": [
        Cell("post", "/invitations/999999/accept/", {"none": roles(404, anonymous=302)}, {}, fmt="html")
    ],
    "web:invitation-decline": [
        Cell("post", "/invitations/999999/decline/", {"none": roles(404, anonymous=302)}, {}, fmt="html")
    ],
    "web:variant-transfer": [
        Cell(
            "post",
            W + "/transfer/",
            {o: page(o, 403, login=True) | {"owner": 400} for o in ("draft", "pub")},
            {"to": "alice"},
            fmt="html",
        )
    ],
    "web:collaborator-add": [
        Cell(
            "post",
            W + "/collaborators/",
            {o: page(o, 403, login=True) | {"owner": 400} for o in ("draft", "pub")},
            {"username": "alice"},
            fmt="html",
        )
    ],
    "web:collaborator-remove": [
        Cell(
            "post",
            W + "/collaborators/nobody-here/remove/",
            {o: page(o, 403, login=True) | {"owner": 404} for o in ("draft", "pub")},
            {},
            fmt="html",
        )
    ],
    "web:job-retry": [
        Cell(
            "post",
            "/jobs/{job}/retry/",
            {"private_job": page("private_job", 302, login=True), "public_job": page("public_job", 302, login=True)},
            fmt="html",
        )
    ],
}

# Web pages that show no particular object (accounts, leaderboards, the start page): their own tests cover them.
WEB_WITHOUT_OBJECTS = {
    "web:home",
    "web:dashboard",
    "web:signup",
    "web:login",
    "web:logout",
    "web:password_reset",
    "web:password_reset_done",
    "web:password_reset_confirm",
    "web:password_reset_complete",
    "web:tokens",
    "web:token-revoke",
    "web:variant-propose",
    "web:parent-suggestions",
    "web:leaderboard-index",
    "web:leaderboard-suite",
    "web:leaderboard",
}


def _walk(patterns: list[Any], prefix: str = "", namespace: str = "") -> Iterator[tuple[str, str]]:
    for p in patterns:
        if isinstance(p, URLResolver):
            ns = f"{p.namespace}:" if p.namespace else namespace
            yield from _walk(p.url_patterns, prefix + str(p.pattern), ns)
        elif isinstance(p, URLPattern):
            route = prefix + str(p.pattern)
            yield route, f"{namespace}{p.name}" if p.name else route


def endpoints() -> dict[str, str]:
    """{row key: route} for every pattern outside the Django admin (the admin has its own tests)."""
    return {key: route for route, key in _walk(get_resolver().url_patterns) if not route.startswith("admin/")}


def test_every_endpoint_has_a_row():
    missing = sorted(
        f"{key}  ({route})" for key, route in endpoints().items() if key not in ROWS and key not in WEB_WITHOUT_OBJECTS
    )
    assert not missing, "Endpoints without a row in the authorization matrix:\n" + "\n".join(missing)
    stale = sorted(set(ROWS) - set(endpoints()))
    assert not stale, f"Rows for endpoints that no longer exist: {stale}"


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):  # type: ignore[no-untyped-def]
    """The module's world, built once in a transaction that is rolled back when the module ends."""
    with django_db_blocker.unblock():
        atomic = transaction.atomic()
        atomic.__enter__()
        try:
            yield _build()
        finally:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)


def _build() -> dict[str, Any]:
    from apps.accounts.services import token_create
    from apps.benchmarks.models import BlockedVariant
    from apps.leaderboards.models import Suite, SuiteBenchmark
    from apps.notifications.models import Notification, WebhookDelivery, WebhookSubscription

    world = build_world()
    alice = world["users"]["alice"]
    token, _ = token_create(user=alice, name="alice-token", scopes=["read"])
    sub = WebhookSubscription.objects.create(
        owner=alice, url="https://example.org/hook", events=["*"], scope="visible", secret="s" * 32
    )
    delivery = WebhookDelivery.objects.create(
        subscription=sub, message_id="msg_1", event="job.finished", payload={}, status="succeeded", max_attempts=1
    )
    note = Notification.objects.create(user=alice, kind="job_finished", title="t")
    block = BlockedVariant.objects.create(variant=world["base"], reason="test", created_by=world["users"]["maint"])
    suite = Suite.objects.create(slug="vis-suite", name="Vis suite")
    SuiteBenchmark.objects.create(suite=suite, benchmark=world["benchmark"], weight=1)
    from apps.orgs.services import invitation_accept, invitation_create, org_create
    from tests.factories import UserFactory

    oadmin, omember = UserFactory(username="oadmin"), UserFactory(username="omember")
    org = org_create(name="vis-org", actor=oadmin)
    invitation_accept(invitation=invitation_create(org=org, username="omember", actor=oadmin), actor=omember)
    pending = invitation_create(org=org, username="carol", actor=oadmin)
    world["users"].update({"oadmin": oadmin, "omember": omember})
    world["clients"] = _clients(world)
    from apps.transfers.services import upload_create

    upload = upload_create(actor=alice, variant="alice/vis-draft", path="up.safetensors", size_bytes=3, sha256="b" * 64)
    world["ids"] = {
        "token": token.pk,
        "webhook": sub.pk,
        "delivery": delivery.pk,
        "notification": note.pk,
        "block": block.pk,
        "comment": world["comment"].pk,
        "flag": world["flag"].pk,
        "upload": upload.pk,
        "invitation": pending.pk,
    }
    return world


def _clients(world: dict[str, Any]) -> dict[str, APIClient]:
    """One client per role, signed in once for the whole module (session authentication, as the pages use; a
    token's scopes are the token-scope tests' business)."""
    clients = {}
    for role in ROLES:
        client = APIClient()
        if role != "anonymous":
            client.force_login(world["users"][USERNAMES[role]])
        clients[role] = client
    return clients


def _fill(value: Any, params: dict[str, Any]) -> Any:
    if isinstance(value, str):
        filled = value.format(**params)
        return int(filled) if value in ("{n}",) else filled
    if isinstance(value, dict):
        return {k: _fill(v, params) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, params) for v in value]
    return value


@pytest.mark.django_db
@pytest.mark.parametrize("key", sorted(ROWS))
def test_matrix_row(world, key):
    failures = []
    for cell in ROWS[key]:
        for obj, expected in cell.expect.items():
            params = {**world["ids"], **OBJECTS[obj](world)}
            path = cell.path.format(**params)
            body = _fill(cell.body, params)
            for role in ROLES:
                client = world["clients"][role]
                with transaction.atomic():
                    kwargs: dict[str, Any] = {}
                    if body is not None:
                        kwargs = {"data": body, "format": "json" if cell.fmt == "json" else "multipart"}
                    response = getattr(client, cell.method)(path, **kwargs)
                    transaction.set_rollback(True)
                want = expected[role]
                ok = response.status_code in want if isinstance(want, tuple) else response.status_code == want
                if not ok:
                    detail = getattr(response, "content", b"")[:200]
                    failures.append(
                        f"{cell.method.upper()} {path} [{obj}] as {role}: got {response.status_code}, "
                        f"want {want} {detail!r}"
                    )
    assert not failures, "\n".join(failures)
