"""Review workflow API: thin views (validate, call one service, serialize). Visibility comes first, so an object
you may not see is a 404 whatever you try to do with it; role rules live in the services (403 with a reason)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, status
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.models import User
from apps.accounts.permissions import IsReviewer, TokenScopePermission
from apps.accounts.types import signed_in
from apps.benchmarks.models import Benchmark
from apps.core.errors import ValidationFailed
from apps.core.parsers import JSONParser
from apps.registry import selectors as registry_selectors
from apps.registry.api.serializers import RevisionSerializer
from apps.registry.choices import RevisionStatus
from apps.registry.models import Revision
from apps.reviews import selectors, services
from apps.reviews.choices import REVIEWABLE_STATUSES
from apps.reviews.gate import publication_gate_unmet, review_standing
from apps.reviews.models import Comment, Flag

from .filtersets import FlagFilterSet, QueueFilterSet
from .serializers import (
    AssignSerializer,
    CommentCreateSerializer,
    CommentEditSerializer,
    CommentSerializer,
    FlagCreateSerializer,
    FlagResolveSerializer,
    FlagRespondSerializer,
    FlagSerializer,
    GateSerializer,
    QueueEntrySerializer,
    ReasonSerializer,
    ReviewCreateSerializer,
    ReviewSerializer,
)


def me(request: Request) -> User:
    """The signed-in user: these endpoints run only after IsAuthenticated (or as maintainer-only actions)."""
    return signed_in(request.user)


class ReadOpenWriteAuthenticated(GenericAPIView):
    """Reads are open (visibility is the selector's job); writes need a signed-in user. Token scopes always apply."""

    parser_classes = [JSONParser]
    permission_classes = [TokenScopePermission]
    filter_backends: list[Any] = []

    def get_permissions(self):  # type: ignore[no-untyped-def]
        checks = [p() for p in self.permission_classes]
        if self.request.method in permissions.SAFE_METHODS:
            return checks
        return [permissions.IsAuthenticated(), *checks]


class RevisionScopedView(ReadOpenWriteAuthenticated):
    """Base for /variants/{owner}/{name}/revisions/{number}/…: resolves the revision the user may see, or 404."""

    def get_revision(self) -> Revision:
        return registry_selectors.revision_for_user_or_404(
            self.request.user, owner=self.kwargs["owner"], name=self.kwargs["name"], number=self.kwargs["number"]
        )

    def revision_response(self, revision: Revision) -> Response:
        fresh = Revision.objects.prefetch_related("artifacts").select_related("variant__owner").get(pk=revision.pk)
        return Response(RevisionSerializer(fresh, context={"request": self.request}).data)


class RevisionReviewsView(mixins.ListModelMixin, RevisionScopedView):
    """A revision's reviews (anyone who may see the revision), and posting one (reviewers, `review` scope)."""

    serializer_class = ReviewSerializer
    token_scopes = {"GET": "read", "POST": "review"}

    def get(self, request: Request, **kwargs: Any) -> Response:
        revision = self.get_revision()
        page = self.paginate_queryset(selectors.reviews_of(revision)) or []
        for review in page:
            review.revision = revision  # `stale` compares with the variant we already loaded
        return self.get_paginated_response(ReviewSerializer(page, many=True).data)

    @extend_schema(request=ReviewCreateSerializer, responses={201: ReviewSerializer})
    def post(self, request: Request, **kwargs: Any) -> Response:
        revision = self.get_revision()
        incoming = ReviewCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        review = services.review_submit(revision=revision, reviewer=me(request), **incoming.validated_data)
        review = selectors.reviews_of(revision).get(pk=review.pk)
        review.revision.refresh_from_db()
        return Response(ReviewSerializer(review).data, status=status.HTTP_201_CREATED)


class RevisionGateView(RevisionScopedView):
    """The publication gate of a revision: what is still unmet. Reviewers, maintainers and the author."""

    serializer_class = GateSerializer
    token_scopes = {"GET": "read"}

    def get(self, request: Request, **kwargs: Any) -> Response:
        revision = self.get_revision()
        unmet = publication_gate_unmet(revision)
        standing = review_standing(revision)
        return Response(
            GateSerializer(
                {
                    "met": not unmet,
                    "unmet": unmet,
                    "approvals": standing.approvals,
                    "objections": standing.objections,
                    "required_approvals": settings.MC_PUBLISH_MIN_APPROVALS,
                }
            ).data
        )


class RevisionDecisionView(RevisionScopedView):
    """Base of the maintainer decisions taken with a reason (`admin` scope): POST calls :attr:`decide`."""

    serializer_class = RevisionSerializer
    token_scopes = {"POST": "admin"}
    #: The service that takes the decision: ``decide(*, revision, actor, reason) -> Revision``.
    decide: Callable[..., Revision]

    # No docstring here: the schema describes each endpoint with its view's docstring.
    @extend_schema(request=ReasonSerializer, responses={200: RevisionSerializer})
    def post(self, request: Request, **kwargs: Any) -> Response:
        revision = self.get_revision()
        incoming = ReasonSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        revision = self.decide(revision=revision, actor=me(request), reason=incoming.validated_data["reason"])
        return self.revision_response(revision)


class RevisionPublishView(RevisionDecisionView):
    """Publish (maintainers, `admin` scope). A refusal is a 409 whose `errors.gate` lists every unmet condition."""

    decide = staticmethod(services.revision_publish)


class RevisionUnpublishView(RevisionDecisionView):
    """Unpublish with a reason (maintainers, `admin` scope)."""

    decide = staticmethod(services.revision_unpublish)


class RevisionRejectView(RevisionDecisionView):
    """Reject with a reason (maintainers, `admin` scope). Final."""

    decide = staticmethod(services.revision_reject)


def _assignee(request: Request, data: dict[str, Any]) -> User:
    username = data.get("reviewer")
    if not username:
        return me(request)
    user = User.objects.filter(username__iexact=username, is_active=True).first()
    if user is None:
        raise ValidationFailed("Unknown user.", errors={"reviewer": [f"No user '{username}'."]})
    return user


class RevisionAssignView(RevisionScopedView):
    """Take a revision from the review queue (or, maintainers, give it to a reviewer). `review` scope."""

    serializer_class = QueueEntrySerializer
    token_scopes = {"POST": "review"}

    def _entry(self, revision: Revision) -> Response:
        entry = selectors.review_queue(None, statuses=tuple(RevisionStatus.values)).filter(pk=revision.pk).first()
        return Response(QueueEntrySerializer(entry).data)

    @extend_schema(request=AssignSerializer, responses={200: QueueEntrySerializer})
    def post(self, request: Request, **kwargs: Any) -> Response:
        revision = self.get_revision()
        incoming = AssignSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        services.review_assign(
            revision=revision, reviewer=_assignee(request, incoming.validated_data), actor=me(request)
        )
        return self._entry(revision)


class RevisionUnassignView(RevisionAssignView):
    """Drop an assignment (your own; maintainers: anyone's)."""

    @extend_schema(request=AssignSerializer, responses={200: QueueEntrySerializer})
    def post(self, request: Request, **kwargs: Any) -> Response:
        revision = self.get_revision()
        incoming = AssignSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        services.review_unassign(
            revision=revision, reviewer=_assignee(request, incoming.validated_data), actor=me(request)
        )
        return self._entry(revision)


class ReviewQueueView(mixins.ListModelMixin, GenericAPIView):
    """Revisions waiting for review, oldest submission first, without your own work. Reviewers only."""

    serializer_class = QueueEntrySerializer
    queryset = Revision.objects.none()  # for the schema generator; get_queryset() is what runs
    permission_classes = [permissions.IsAuthenticated, TokenScopePermission, IsReviewer]
    token_scopes = {"GET": "read"}
    filterset_class = QueueFilterSet
    search_fields: list[str] = []
    ordering_fields: list[str] = []

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return Revision.objects.none()
        # Without a status filter the queue is what waits for reviewers; the filterset narrows the rest.
        statuses = REVIEWABLE_STATUSES if "status" in self.request.query_params else (RevisionStatus.SUBMITTED,)
        return selectors.review_queue(self.request.user, statuses=tuple(statuses))

    def get(self, request: Request) -> Response:
        qs = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(qs.distinct())
        return self.get_paginated_response(QueueEntrySerializer(page, many=True).data)


# --- comments ------------------------------------------------------------------------------------------------


class VariantCommentsView(mixins.ListModelMixin, ReadOpenWriteAuthenticated):
    """Discussion on a variant: top-level comments oldest first, each with its replies. Markdown is rendered
    and sanitised into `body_html`. Hidden comments keep their place but not their text."""

    serializer_class = CommentSerializer
    token_scopes = {"GET": "read", "POST": "write"}

    def get(self, request: Request, owner: str, name: str) -> Response:
        variant = registry_selectors.variant_for_user_or_404(request.user, owner, name)
        page = self.paginate_queryset(selectors.comments_of(variant))
        return self.get_paginated_response(CommentSerializer(page, many=True, context={"request": request}).data)

    @extend_schema(request=CommentCreateSerializer, responses={201: CommentSerializer})
    def post(self, request: Request, owner: str, name: str) -> Response:
        variant = registry_selectors.variant_for_user_or_404(request.user, owner, name)
        incoming = CommentCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        parent = None
        if "parent" in data:
            parent = Comment.objects.filter(pk=data["parent"], variant=variant).first()
            if parent is None:
                raise ValidationFailed("Unknown parent.", errors={"parent": ["No such comment on this variant."]})
        comment = services.comment_create(variant=variant, author=me(request), body=data["body"], parent=parent)
        fresh = selectors.comments_of(variant).filter(pk=comment.pk).first() or Comment.objects.get(pk=comment.pk)
        return Response(CommentSerializer(fresh, context={"request": request}).data, status=status.HTTP_201_CREATED)


class CommentDetailView(ReadOpenWriteAuthenticated):
    """One comment. Its author edits it (PATCH) for MC_COMMENT_EDIT_WINDOW_S after posting."""

    serializer_class = CommentSerializer
    token_scopes: dict[str, str] = {"GET": "read", "PATCH": "write"}

    def _load(self, pk: int) -> Comment:
        return selectors.comment_for_user_or_404(self.request.user, pk)

    def _respond(self, comment: Comment) -> Response:
        fresh = (
            Comment.objects.select_related("author", "hidden_by")
            .prefetch_related("replies__author", "replies__hidden_by")
            .get(pk=comment.pk)
        )
        return Response(CommentSerializer(fresh, context={"request": self.request}).data, headers={"ETag": fresh.etag})

    def get(self, request: Request, pk: int) -> Response:
        return self._respond(self._load(pk))

    @extend_schema(request=CommentEditSerializer, responses={200: CommentSerializer})
    def patch(self, request: Request, pk: int) -> Response:
        comment = self._load(pk)
        incoming = CommentEditSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        return self._respond(
            services.comment_edit(
                comment=comment,
                actor=me(request),
                body=incoming.validated_data["body"],
                if_match=request.headers.get("If-Match"),
            )
        )


class CommentHideView(CommentDetailView):
    """Moderators hide a comment, with a reason (`admin` scope)."""

    token_scopes = {**CommentDetailView.token_scopes, "POST": "admin"}

    @extend_schema(request=ReasonSerializer, responses={200: CommentSerializer})
    def post(self, request: Request, pk: int) -> Response:
        comment = self._load(pk)
        incoming = ReasonSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        return self._respond(
            services.comment_hide(comment=comment, actor=me(request), reason=incoming.validated_data["reason"])
        )


class CommentUnhideView(CommentDetailView):
    """Moderators show a hidden comment again (`admin` scope)."""

    token_scopes = {**CommentDetailView.token_scopes, "POST": "admin"}

    @extend_schema(request=None, responses={200: CommentSerializer})
    def post(self, request: Request, pk: int) -> Response:
        return self._respond(services.comment_unhide(comment=self._load(pk), actor=me(request)))


# --- flags -----------------------------------------------------------------------------------------------------


class VariantFlagsView(GenericAPIView):
    """Flag a published variant, with evidence (a URL or an excerpt)."""

    serializer_class = FlagSerializer
    parser_classes = [JSONParser]
    permission_classes = [permissions.IsAuthenticated, TokenScopePermission]
    token_scopes = {"POST": "write"}
    filter_backends: list[Any] = []

    @extend_schema(request=FlagCreateSerializer, responses={201: FlagSerializer})
    def post(self, request: Request, owner: str, name: str) -> Response:
        variant = registry_selectors.variant_for_user_or_404(request.user, owner, name)
        incoming = FlagCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = dict(incoming.validated_data)
        benchmark = None
        if data.get("benchmark"):
            benchmark = Benchmark.objects.filter(slug=data["benchmark"]).first()
            if benchmark is None:
                raise ValidationFailed(
                    "Unknown benchmark.", errors={"benchmark": [f"No benchmark '{data['benchmark']}'."]}
                )
        data["benchmark"] = benchmark
        flag = services.flag_create(variant=variant, reporter=me(request), **data)
        flag = selectors.flags_visible_to(request.user).get(pk=flag.pk)
        return Response(FlagSerializer(flag, context={"request": request}).data, status=status.HTTP_201_CREATED)


class FlagListView(mixins.ListModelMixin, GenericAPIView):
    """Flags: moderators see all; others see the flags they raised and the flags on their own variants."""

    serializer_class = FlagSerializer
    parser_classes = [JSONParser]
    permission_classes = [permissions.IsAuthenticated, TokenScopePermission]
    token_scopes = {"GET": "read"}
    filterset_class = FlagFilterSet
    search_fields: list[str] = []
    ordering_fields: list[str] = []

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return Flag.objects.none()
        return selectors.flags_visible_to(self.request.user)

    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(FlagSerializer(page, many=True, context={"request": request}).data)


class FlagDetailView(GenericAPIView):
    serializer_class = FlagSerializer
    parser_classes = [JSONParser]
    permission_classes = [permissions.IsAuthenticated, TokenScopePermission]
    token_scopes: dict[str, str] = {"GET": "read"}
    filter_backends: list[Any] = []

    def _load(self, pk: int) -> Flag:
        return selectors.flag_for_user_or_404(self.request.user, pk)

    def _respond(self, flag: Flag) -> Response:
        fresh = selectors.flags_visible_to(self.request.user).filter(pk=flag.pk).first() or flag
        return Response(FlagSerializer(fresh, context={"request": self.request}).data)

    def get(self, request: Request, pk: int) -> Response:
        return self._respond(self._load(pk))


class FlagResolveView(FlagDetailView):
    """Moderators resolve a flag: dismiss, confirm, unpublish (confirm and take the variant down) or ask the
    author, always with a reason (`admin` scope)."""

    token_scopes = {**FlagDetailView.token_scopes, "POST": "admin"}

    @extend_schema(request=FlagResolveSerializer, responses={200: FlagSerializer})
    def post(self, request: Request, pk: int) -> Response:
        flag = self._load(pk)
        incoming = FlagResolveSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        return self._respond(services.flag_resolve(flag=flag, actor=me(request), **incoming.validated_data))


class FlagRespondView(FlagDetailView):
    """The variant's owner answers a flag."""

    token_scopes = {**FlagDetailView.token_scopes, "POST": "write"}

    @extend_schema(request=FlagRespondSerializer, responses={200: FlagSerializer})
    def post(self, request: Request, pk: int) -> Response:
        flag = self._load(pk)
        incoming = FlagRespondSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        return self._respond(services.flag_respond(flag=flag, actor=me(request), body=incoming.validated_data["body"]))
