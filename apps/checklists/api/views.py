"""Checklist endpoints: validate, call one service, serialize. Visibility comes from the selectors (404)."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.permissions import MaintainerWritesOnly
from apps.accounts.types import signed_in
from apps.checklists import selectors, services
from apps.checklists.badge import Badge, render_badge, render_placeholder
from apps.checklists.gate import gate_reasons
from apps.checklists.models import Checklist
from apps.checklists.openness import openness_class_for
from apps.core.conditional import etag_for_body, not_modified
from apps.core.errors import NotFound, ValidationFailed
from apps.registry import selectors as registry_selectors
from apps.registry.choices import PUBLIC_STATUSES
from apps.registry.models import Revision

from .serializers import (
    ChecklistAnswerSerializer,
    ChecklistItemSerializer,
    ChecklistSerializer,
    ComponentInputSerializer,
    ComponentsSerializer,
    ComponentStateSerializer,
    TemplateCreateSerializer,
    TemplateSerializer,
    TemplateUpdateSerializer,
)

IF_MATCH = OpenApiParameter(
    "If-Match",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="ETag from a previous GET of the item; a stale one gets 412.",
)


def _read_permissions() -> list[Any]:
    return [permissions.AllowAny(), *[p() for p in APIView.permission_classes]]


def _write_permissions() -> list[Any]:
    return [permissions.IsAuthenticated(), *[p() for p in APIView.permission_classes]]


class RevisionMixin:
    request: Any
    kwargs: Any

    def get_revision(self) -> Revision:
        return registry_selectors.revision_for_user_or_404(
            self.request.user, owner=self.kwargs["owner"], name=self.kwargs["name"], number=self.kwargs["number"]
        )


def checklist_representation(checklist: Checklist, revision: Revision) -> dict[str, Any]:
    rows = list(checklist.items.all())
    data = {
        "variant": revision.variant.full_name,
        "revision": revision.number,
        "template": checklist.template.slug,
        "template_name": checklist.template.name,
        "version": checklist.template.version,
        "level": checklist.level,
        "progress": checklist.progress,
        "gate": {"holds": not (unmet := gate_reasons(rows)), "unmet": unmet},
        "openness": openness_class_for(revision),
        "created_at": checklist.created_at,
        "updated_at": checklist.updated_at,
        "items": rows,
    }
    return ChecklistSerializer(data).data  # type: ignore[return-value]


def _load_checklist(revision: Revision, *, with_items: bool = True) -> Checklist:
    load = selectors.checklist_for_revision if with_items else selectors.checklist_row
    checklist = load(revision)
    if checklist is None:
        # A revision submitted before this app existed gets its checklist on first read.
        services.checklist_ensure(revision=revision)
        checklist = load(revision)
    if checklist is None:
        raise NotFound(
            f"Revision {revision.number} has no checklist yet: it is created when the revision is submitted."
        )
    return checklist


class ChecklistView(RevisionMixin, APIView):
    """The best-practice checklist of a submitted revision: level, progress, items, gate and openness class."""

    token_scopes = {"GET": "read"}

    def get_permissions(self) -> list[Any]:
        return _read_permissions()

    @extend_schema(responses={200: ChecklistSerializer})
    def get(self, request: Request, owner: str, name: str, number: int) -> Response:
        revision = self.get_revision()
        data = checklist_representation(_load_checklist(revision), revision)
        etag = etag_for_body(data)
        if not_modified(request, etag):
            return Response(status=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag})
        return Response(data, headers={"ETag": etag})


class ChecklistItemView(RevisionMixin, APIView):
    """One item. The owner answers it (`status`, `justification`, `evidence_url`); a reviewer who is not the
    author verifies it (`verified`). Answers that break the item's rules get a 400 naming each rule."""

    def get_permissions(self) -> list[Any]:
        if self.request.method in permissions.SAFE_METHODS:
            return _read_permissions()
        return _write_permissions()

    @property
    def token_scopes(self) -> dict[str, str | tuple[str, ...]]:
        # Verifying is a review act: a token needs the `review` scope for it, `write` for answering, both for both.
        request = getattr(self, "request", None)
        data = getattr(request, "data", None) if request is not None and request.method == "PATCH" else None
        answering = {"status", "justification", "evidence_url"}
        patch: str | tuple[str, ...] = "write"
        if isinstance(data, dict) and "verified" in data:
            patch = ("write", "review") if answering & set(data) else "review"
        return {"GET": "read", "PATCH": patch}

    @extend_schema(responses={200: ChecklistItemSerializer}, operation_id="v1_variants_revisions_checklist_item")
    def get(self, request: Request, owner: str, name: str, number: int, item_key: str) -> Response:
        row = selectors.checklist_item(_load_checklist(self.get_revision(), with_items=False), item_key)
        return Response(ChecklistItemSerializer(row).data, headers={"ETag": services.item_etag(row)})

    @extend_schema(
        request=ChecklistAnswerSerializer,
        responses={200: ChecklistItemSerializer},
        parameters=[IF_MATCH],
        operation_id="v1_variants_revisions_checklist_item_answer",
    )
    def patch(self, request: Request, owner: str, name: str, number: int, item_key: str) -> Response:
        revision = self.get_revision()
        incoming = ChecklistAnswerSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        row = services.checklist_item_answer(
            revision=revision,
            key=item_key,
            actor=signed_in(request.user),
            changes=dict(incoming.validated_data),
            if_match=request.headers.get("If-Match"),
        )
        row = selectors.checklist_item(row.checklist, item_key)
        return Response(ChecklistItemSerializer(row).data, headers={"ETag": services.item_etag(row)})


class SVGRenderer(BaseRenderer):
    media_type = "image/svg+xml"
    format = "svg"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        if isinstance(data, bytes | str):
            return data.encode() if isinstance(data, str) else data
        # Error bodies (problem+json) still go out as JSON.
        return json.dumps(data, ensure_ascii=False).encode("utf-8")


def _badge_response(request: Request, badge: Badge, revision: Revision | None) -> HttpResponse:
    if not_modified(request, badge.etag):
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(badge.svg, content_type="image/svg+xml; charset=utf-8")
    response["ETag"] = badge.etag
    public = revision is not None and revision.status in PUBLIC_STATUSES
    max_age = settings.MC_CHECKLIST_BADGE_MAX_AGE_S
    # Only a published revision's badge may sit in shared caches (README image proxies); any other is
    # personal to a caller allowed to see it.
    response["Cache-Control"] = f"public, max-age={max_age}" if public else "private, no-cache"
    response["Vary"] = "Authorization, Cookie"
    if revision is not None:
        response["X-Checklist-Revision"] = str(revision.number)
    return response


def _badge_for(checklist: Checklist, revision: Revision) -> Badge:
    title = (
        f"{revision.variant.full_name} revision {revision.number}: {checklist.template.name} "
        f"v{checklist.template.version}, level {checklist.level.replace('_', ' ')} ("
        + ", ".join(f"{k} {v}%" for k, v in checklist.progress.items())
        + ")"
    )
    return render_badge(level=checklist.level, progress=checklist.progress, title=title)


BADGE_RESPONSE = {(200, "image/svg+xml"): OpenApiResponse(OpenApiTypes.STR, description="An SVG badge.")}


class RevisionBadgeView(RevisionMixin, APIView):
    """An SVG badge with the checklist level and percentage of a revision, cacheable with an ETag."""

    renderer_classes = [SVGRenderer]
    token_scopes = {"GET": "read"}

    def get_permissions(self) -> list[Any]:
        return _read_permissions()

    @extend_schema(responses=BADGE_RESPONSE, operation_id="v1_variants_revisions_checklist_badge")
    def get(self, request: Request, owner: str, name: str, number: int) -> HttpResponse:
        revision = self.get_revision()
        checklist = _load_checklist(revision, with_items=False)
        return _badge_response(request, _badge_for(checklist, revision), revision)


class VariantBadgeView(APIView):
    """The stable README badge of a variant: its current revision's checklist (or, for a reader who may not
    see that revision, the newest one they may see)."""

    renderer_classes = [SVGRenderer]
    token_scopes = {"GET": "read"}

    def get_permissions(self) -> list[Any]:
        return _read_permissions()

    @extend_schema(responses=BADGE_RESPONSE, operation_id="v1_variants_checklist_badge")
    def get(self, request: Request, owner: str, name: str) -> HttpResponse:
        variant = registry_selectors.variant_for_user_or_404(request.user, owner, name)
        revision = selectors.badge_revision_for_variant(user=request.user, variant=variant)
        if revision is None:
            badge = render_placeholder("not submitted", f"{variant.full_name}: no submitted revision yet")
            return _badge_response(request, badge, None)
        revision.variant = variant
        return _badge_response(request, _badge_for(revision.checklist, revision), revision)


# --- MOF components -----------------------------------------------------------------------------------


class ComponentsView(RevisionMixin, APIView):
    """The revision's MOF components (declared, or derived from its artifacts) and its openness class."""

    token_scopes = {"GET": "read"}

    def get_permissions(self) -> list[Any]:
        return _read_permissions()

    @extend_schema(responses={200: ComponentsSerializer})
    def get(self, request: Request, owner: str, name: str, number: int) -> Response:
        revision = self.get_revision()
        data = ComponentsSerializer(
            {
                "variant": revision.variant.full_name,
                "revision": revision.number,
                "openness": openness_class_for(revision),
            }
        ).data
        return Response(data, headers={"ETag": etag_for_body(data)})


def _component_state(revision: Revision, component: str) -> dict[str, Any]:
    report = openness_class_for(revision)
    state = next((c for c in report["components"] if c["component"] == component), None)
    if state is None:
        raise NotFound(f"No MOF component '{component}'.")
    return state


class ComponentDetailView(RevisionMixin, APIView):
    """One MOF component: where it is released and its licence. The owner declares it (PUT) or removes it."""

    token_scopes = {"GET": "read", "PUT": "write", "DELETE": "write"}

    def get_permissions(self) -> list[Any]:
        if self.request.method in permissions.SAFE_METHODS:
            return _read_permissions()
        return _write_permissions()

    @extend_schema(responses={200: ComponentStateSerializer}, operation_id="v1_variants_revisions_component")
    def get(self, request: Request, owner: str, name: str, number: int, component: str) -> Response:
        state = _component_state(self.get_revision(), component)
        if state["location"] is None:
            raise NotFound(f"Component '{component}' is not declared on this revision.")
        return Response(ComponentStateSerializer(state).data)

    @extend_schema(
        request=ComponentInputSerializer,
        responses={200: ComponentStateSerializer},
        operation_id="v1_variants_revisions_component_set",
    )
    def put(self, request: Request, owner: str, name: str, number: int, component: str) -> Response:
        revision = self.get_revision()
        incoming = ComponentInputSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        services.component_set(
            revision=revision,
            component=component,
            actor=signed_in(request.user),
            location=incoming.validated_data["location"],
            license=incoming.validated_data.get("license", ""),
        )
        return Response(ComponentStateSerializer(_component_state(revision, component)).data)

    @extend_schema(request=None, responses={204: None}, operation_id="v1_variants_revisions_component_delete")
    def delete(self, request: Request, owner: str, name: str, number: int, component: str) -> Response:
        services.component_delete(revision=self.get_revision(), component=component, actor=signed_in(request.user))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Templates --------------------------------------------------------------------------------------------


class TemplateViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Checklist templates, every version. Anyone reads them; maintainers create and change them (a change to
    a version in use makes the next version; revisions keep the version they started with)."""

    serializer_class = TemplateSerializer
    lookup_field = "slug"
    lookup_value_regex = r"[-a-zA-Z0-9_]+"
    filterset_fields = ["slug"]
    search_fields = ["slug", "name", "description"]
    ordering_fields = ["slug", "version", "created_at"]
    token_scopes = {"list": "read", "retrieve": "read", "version": "read", "create": "admin", "partial_update": "admin"}

    def get_permissions(self) -> list[Any]:
        if self.action in ("list", "retrieve", "version"):
            return _read_permissions()
        return [*_write_permissions(), MaintainerWritesOnly()]

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return selectors.templates_for_api()

    def retrieve(self, request: Request, slug: str) -> Response:
        template = selectors.template_get(slug=slug)
        data = TemplateSerializer(template).data
        return Response(data, headers={"ETag": etag_for_body(data)})

    @extend_schema(request=TemplateCreateSerializer, responses={201: TemplateSerializer})
    def create(self, request: Request) -> Response:
        incoming = TemplateCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        template = services.template_create(
            actor=signed_in(request.user),
            slug=data["slug"],
            name=data["name"],
            description=data.get("description", ""),
            items=[dict(i) for i in data["items"]],
            is_default=data.get("is_default", False),
        )
        body = TemplateSerializer(selectors.template_get(slug=template.slug, version=template.version)).data
        return Response(
            body, status=status.HTTP_201_CREATED, headers={"Location": f"/api/v1/checklist-templates/{template.slug}/"}
        )

    @extend_schema(request=TemplateUpdateSerializer, responses={200: TemplateSerializer})
    def partial_update(self, request: Request, slug: str) -> Response:
        incoming = TemplateUpdateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        if not data:
            raise ValidationFailed(
                "Nothing to change.", errors={"__all__": ["Give name, description, items or is_default."]}
            )
        template, _ = services.template_update(
            slug=slug,
            actor=signed_in(request.user),
            name=data.get("name"),
            description=data.get("description"),
            items=[dict(i) for i in data["items"]] if "items" in data else None,
            is_default=data.get("is_default"),
        )
        return Response(TemplateSerializer(selectors.template_get(slug=template.slug, version=template.version)).data)

    @extend_schema(responses={200: TemplateSerializer})
    def version(self, request: Request, slug: str, version: int) -> Response:
        data = TemplateSerializer(selectors.template_get(slug=slug, version=int(version))).data
        return Response(data, headers={"ETag": etag_for_body(data)})
