"""Registry endpoints: validate, call one service, serialize. Visibility comes from the selectors (404)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.models import User
from apps.accounts.roles import is_reviewer
from apps.accounts.types import signed_in
from apps.core.conditional import etag_for_body, not_modified
from apps.core.errors import ValidationFailed
from apps.core.parsers import JSONParser
from apps.registry import selectors, services
from apps.registry.cards import card_render
from apps.registry.models import Revision, Variant

from .filtersets import VariantFilterSet
from .markdown import MarkdownParser, MarkdownRenderer
from .serializers import (
    ArtifactRecordSerializer,
    ArtifactSerializer,
    ArtifactUploadSerializer,
    CardImportSerializer,
    LineageSerializer,
    RevisionCreateSerializer,
    RevisionSerializer,
    TransitionSerializer,
    VariantCreateSerializer,
    VariantDetailSerializer,
    VariantSerializer,
    VariantUpdateSerializer,
)

ETAG_HEADER = OpenApiParameter(
    "If-Match",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="ETag from a previous GET; a stale one gets 412.",
)


def _with_etag(response: Response, etag: str) -> Response:
    response["ETag"] = etag
    return response


def _owner_for_create(request: Request, username: str | None) -> User:
    if not username or username.lower() == request.user.username.lower():
        return signed_in(request.user)
    owner = User.objects.filter(username__iexact=username).first()
    if owner is None:
        raise ValidationFailed("Unknown owner.", errors={"owner": [f"No user '{username}'."]})
    return owner


class VariantMixin:
    """Resolves {owner}/{name} from the URL among what the user may see."""

    def get_variant(self: Any) -> Variant:
        return selectors.variant_for_user_or_404(self.request.user, self.kwargs["owner"], self.kwargs["name"])

    def get_variant_as_seen(self: Any) -> Variant:
        """The variant as this user may see it: the last published snapshot unless they are an insider."""
        return selectors.variant_as_seen_by(self.request.user, self.get_variant())


class VariantViewSet(VariantMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """Model variants. Drafts and variants under review are visible only to their owner, reviewers and
    maintainers; everyone else gets 404. Everyone else sees a published variant as its last published revision
    says it (card, licence, parents, metadata): edits in a newer draft show once that draft is published."""

    serializer_class = VariantSerializer
    # JSON only: DRF's form parsing treats an empty form value as "not sent", which hides bad input.
    parser_classes = [JSONParser]
    filterset_class = VariantFilterSet
    ordering_fields = ["created_at", "updated_at", "name", "parameters"]
    token_scopes = {
        "list": "read",
        "retrieve": "read",
        "create": "write",
        "partial_update": "write",
        "destroy": "write",
    }

    @property
    def search_fields(self) -> list[str]:
        """`?search=` looks at what the reader may see: the live fields for reviewers and maintainers, the last
        published snapshot's for everyone else (so a draft's unpublished summary finds nothing)."""
        request = getattr(self, "request", None)
        if request is not None and is_reviewer(request.user):
            return ["name", "summary", "owner__username", "architecture", "hub_id"]
        return [
            "name",
            "owner__username",
            *(f"published_revision__metadata__{f}" for f in ("summary", "architecture", "hub_id")),
        ]

    def get_permissions(self):  # type: ignore[no-untyped-def]
        if self.action in ("list", "retrieve"):
            return [permissions.AllowAny(), *super().get_permissions()]
        return [permissions.IsAuthenticated(), *super().get_permissions()]

    def get_queryset(self) -> QuerySet[Variant]:
        return selectors.variants_visible_to(self.request.user)

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        shown = selectors.variants_as_seen_by(request.user, list(page or []))
        return self.get_paginated_response(
            VariantSerializer(shown, many=True, context=self.get_serializer_context()).data
        )

    def get_serializer_class(self):  # type: ignore[no-untyped-def]
        if self.action == "list":
            return VariantSerializer
        return VariantDetailSerializer

    def _detail(self, variant: Variant, status_code: int = 200) -> Response:
        """The representation of a variant this request just wrote: the service's row (saved whole, with its owner
        and revisions joined), not read again; its writer is one of its insiders."""
        shown = selectors.variant_as_seen_by(self.request.user, variant)
        data = VariantDetailSerializer(shown, context=self.get_serializer_context()).data
        return _with_etag(Response(data, status=status_code), shown.etag)

    @extend_schema(request=VariantCreateSerializer, responses={201: VariantDetailSerializer})
    def create(self, request: Request) -> Response:
        incoming = VariantCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = dict(incoming.validated_data)
        owner = _owner_for_create(request, data.pop("owner", None))
        variant = services.variant_create(
            owner=owner,
            actor=signed_in(request.user),
            name=data.pop("name"),
            relation=data.pop("relation", None),
            parents=data.pop("parents", ()),
            **data,
        )
        response = self._detail(variant, status.HTTP_201_CREATED)
        response["Location"] = f"/api/v1/variants/{variant.full_name}/"
        return response

    @extend_schema(responses={200: VariantDetailSerializer, 304: OpenApiResponse(description="Not modified")})
    def retrieve(self, request: Request, owner: str, name: str) -> Response:
        variant = self.get_variant_as_seen()
        if not_modified(request, variant.etag):
            return _with_etag(Response(status=status.HTTP_304_NOT_MODIFIED), variant.etag)
        data = VariantDetailSerializer(variant, context=self.get_serializer_context()).data
        return _with_etag(Response(data), variant.etag)

    @extend_schema(request=VariantUpdateSerializer, responses={200: VariantDetailSerializer}, parameters=[ETAG_HEADER])
    def partial_update(self, request: Request, owner: str, name: str) -> Response:
        variant = self.get_variant()
        incoming = VariantUpdateSerializer(data=request.data, partial=True)
        incoming.is_valid(raise_exception=True)
        variant = services.variant_update(
            variant=variant,
            actor=signed_in(request.user),
            if_match=request.headers.get("If-Match"),
            **incoming.validated_data,
        )
        return self._detail(variant)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, owner: str, name: str) -> Response:
        services.variant_delete(variant=self.get_variant(), actor=signed_in(request.user))
        return Response(status=status.HTTP_204_NO_CONTENT)


class VariantImportCardView(APIView):
    """Create or update a variant from a Hub README.md: JSON `{name, card}`, or the README itself as
    `text/markdown` with `?name=`."""

    permission_classes = [permissions.IsAuthenticated, *APIView.permission_classes]
    token_scopes = {"POST": "write"}
    parser_classes = [JSONParser, MarkdownParser]

    @extend_schema(
        request={"application/json": CardImportSerializer, "text/markdown": OpenApiTypes.STR},
        parameters=[
            OpenApiParameter(
                "name", OpenApiTypes.STR, required=False, description="Variant name, for a text/markdown body."
            ),
            OpenApiParameter("owner", OpenApiTypes.STR, required=False, description="Maintainers only: 'commons'."),
        ],
        responses={201: VariantDetailSerializer, 200: VariantDetailSerializer},
    )
    def post(self, request: Request) -> Response:
        if isinstance(request.data, str):
            text, name, owner_name = request.data, request.query_params.get("name"), request.query_params.get("owner")
        else:
            incoming = CardImportSerializer(data=request.data)
            incoming.is_valid(raise_exception=True)
            text = incoming.validated_data["card"]
            name = incoming.validated_data.get("name")
            owner_name = incoming.validated_data.get("owner")
        owner = _owner_for_create(request, owner_name)
        variant, created = services.variant_import_card(
            owner=owner,
            actor=signed_in(request.user),
            text=text,
            name=name,
        )
        fresh = selectors.variant_as_seen_by(
            request.user, selectors.variants_visible_to(request.user).get(pk=variant.pk)
        )
        data = VariantDetailSerializer(fresh, context={"request": request}).data
        response = Response(data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
        response["Location"] = f"/api/v1/variants/{fresh.full_name}/"
        return _with_etag(response, fresh.etag)


class VariantLineageView(VariantMixin, APIView):
    """Ancestors and descendants with their relations, in a fixed number of queries."""

    permission_classes = [permissions.AllowAny, *APIView.permission_classes]
    token_scopes = {"GET": "read"}

    @extend_schema(responses={200: LineageSerializer})
    def get(self, request: Request, owner: str, name: str) -> Response:
        return Response(selectors.variant_lineage(variant=self.get_variant(), user=request.user))


class VariantCardView(VariantMixin, APIView):
    """The model card as a Hub README.md; its model-index holds the verified results."""

    permission_classes = [permissions.AllowAny, *APIView.permission_classes]
    token_scopes = {"GET": "read"}
    renderer_classes = [MarkdownRenderer]

    @extend_schema(responses={(200, "text/markdown"): OpenApiTypes.STR})
    def get(self, request: Request, owner: str, name: str) -> HttpResponse:
        variant = self.get_variant_as_seen()
        base_url = request.build_absolute_uri("/").rstrip("/")
        text = card_render(variant, results=selectors.verified_results(variant, request.user), base_url=base_url)
        response = HttpResponse(text, content_type="text/markdown; charset=utf-8")
        response["Content-Disposition"] = 'inline; filename="README.md"'
        response["ETag"] = etag_for_body(text)
        return response


class RevisionViewSet(VariantMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """Numbered revisions of a variant. Drafts and revisions under review are not public."""

    serializer_class = RevisionSerializer
    filter_backends: list[Any] = []
    token_scopes = {"list": "read", "retrieve": "read", "create": "write"}

    def get_permissions(self):  # type: ignore[no-untyped-def]
        if self.action in ("list", "retrieve"):
            return [permissions.AllowAny(), *super().get_permissions()]
        return [permissions.IsAuthenticated(), *super().get_permissions()]

    def get_queryset(self) -> QuerySet[Revision]:
        return selectors.revisions_visible_to(self.request.user, self.get_variant())

    @extend_schema(responses={200: RevisionSerializer, 304: OpenApiResponse(description="Not modified")})
    def retrieve(self, request: Request, owner: str, name: str, number: int) -> Response:
        revision = selectors.revision_for_user_or_404(request.user, owner=owner, name=name, number=int(number))
        data = RevisionSerializer(revision).data
        etag = etag_for_body(data)
        if not_modified(request, etag):
            return _with_etag(Response(status=status.HTTP_304_NOT_MODIFIED), etag)
        return _with_etag(Response(data), etag)

    @extend_schema(request=RevisionCreateSerializer, responses={201: RevisionSerializer})
    def create(self, request: Request, owner: str, name: str) -> Response:
        incoming = RevisionCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        revision = services.revision_create(
            variant=self.get_variant(),
            actor=signed_in(request.user),
            notes=incoming.validated_data.get("notes", ""),
            copy_artifacts=incoming.validated_data["copy_artifacts"],
        )
        revision = Revision.objects.prefetch_related("artifacts").get(pk=revision.pk)
        response = Response(RevisionSerializer(revision).data, status=status.HTTP_201_CREATED)
        response["Location"] = f"/api/v1/variants/{owner}/{name}/revisions/{revision.number}/"
        return response


class RevisionMixin(VariantMixin):
    def get_revision(self: Any) -> Revision:
        # Every view here changes the revision and answers with `revision_response` (which reads it again).
        return selectors.revision_for_user_or_404(
            self.request.user,
            owner=self.kwargs["owner"],
            name=self.kwargs["name"],
            number=int(self.kwargs["number"]),
            with_artifacts=False,
        )

    def revision_response(self, revision: Revision, status_code: int = 200) -> Response:
        fresh = Revision.objects.prefetch_related("artifacts").get(pk=revision.pk)
        return Response(RevisionSerializer(fresh).data, status=status_code)


class ArtifactCreateView(RevisionMixin, APIView):
    """Add an artifact to a draft revision: a JSON record `{path, uri, sha256, size_bytes, format}`, or a
    multipart upload (`file`, `path`, `format`, optional `sha256`) streamed to storage and hashed on the way."""

    permission_classes = [permissions.IsAuthenticated, *APIView.permission_classes]
    token_scopes = {"POST": "write"}
    parser_classes = [JSONParser, MultiPartParser]

    @extend_schema(
        request={"application/json": ArtifactRecordSerializer, "multipart/form-data": ArtifactUploadSerializer},
        responses={201: ArtifactSerializer},
    )
    def post(self, request: Request, owner: str, name: str, number: int) -> Response:
        revision = self.get_revision()
        if request.content_type.startswith("multipart/"):
            incoming: serializers.Serializer = ArtifactUploadSerializer(data=request.data)
            incoming.is_valid(raise_exception=True)
            data = incoming.validated_data
            artifact = services.artifact_add(
                revision=revision,
                actor=signed_in(request.user),
                upload=data["file"],
                path=data.get("path"),
                fmt=data.get("format"),
                sha256=data.get("sha256"),
            )
        else:
            incoming = ArtifactRecordSerializer(data=request.data)
            incoming.is_valid(raise_exception=True)
            data = incoming.validated_data
            artifact = services.artifact_add(
                revision=revision,
                actor=signed_in(request.user),
                path=data["path"],
                uri=data["uri"],
                sha256=data["sha256"],
                size_bytes=data["size_bytes"],
                fmt=data.get("format"),
            )
        return Response(ArtifactSerializer(artifact).data, status=status.HTTP_201_CREATED)


class RevisionSubmitView(RevisionMixin, APIView):
    """The owner submits the current draft for review. 409 lists what is missing, or the allowed
    transitions when the revision is not a draft."""

    permission_classes = [permissions.IsAuthenticated, *APIView.permission_classes]
    token_scopes = {"POST": "write"}

    @extend_schema(request=None, responses={200: RevisionSerializer})
    def post(self, request: Request, owner: str, name: str, number: int) -> Response:
        revision = services.revision_submit(revision=self.get_revision(), actor=signed_in(request.user))
        return self.revision_response(revision)


class RevisionWithdrawView(RevisionMixin, APIView):
    """The owner withdraws a draft, submitted or changes-requested revision (final)."""

    permission_classes = [permissions.IsAuthenticated, *APIView.permission_classes]
    token_scopes = {"POST": "write"}

    @extend_schema(request=TransitionSerializer, responses={200: RevisionSerializer})
    def post(self, request: Request, owner: str, name: str, number: int) -> Response:
        incoming = TransitionSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        revision = services.revision_withdraw(
            revision=self.get_revision(),
            actor=signed_in(request.user),
            reason=incoming.validated_data.get("reason", ""),
        )
        return self.revision_response(revision)
