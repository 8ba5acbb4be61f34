"""Leaderboards and suites over HTTP. Views validate, call one service or selector, and serialize."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.permissions import IsMaintainer, TokenScopePermission
from apps.accounts.types import signed_in
from apps.core.errors import ValidationFailed
from apps.core.filters import StrictFilterBackend

from .. import rows, selectors, services
from ..models import LeaderboardEntry, SuiteScore, primary_direction
from .filtersets import EntryFilterSet, SuiteScoreFilterSet
from .pagination import BoardPagination
from .serializers import (
    LeaderboardPageSerializer,
    SuiteBenchmarkSerializer,
    SuiteBoardPageSerializer,
    SuiteCreateSerializer,
    SuiteSerializer,
    SuiteUpdateSerializer,
)

VERSION_PARAM = OpenApiParameter(
    "version",
    {"type": "string", "maxLength": 32},
    description="Benchmark version (default: the benchmark's current version).",
)


def _version_param(request: Request, default: str) -> str:
    values = request.query_params.getlist("version")
    if len(values) > 1:
        raise ValidationFailed("Invalid version.", errors={"version": ["Give version once."]})
    if not values or values[0] == "":
        return default
    if len(values[0]) > 32:
        raise ValidationFailed("Invalid version.", errors={"version": ["At most 32 characters."]})
    return values[0]


class _BoardView(GenericAPIView):
    permission_classes = [permissions.AllowAny, TokenScopePermission]
    token_scopes = {"GET": "read"}
    filter_backends = [StrictFilterBackend]
    pagination_class = BoardPagination

    def board_response(self, header: dict[str, Any], queryset: Any) -> HttpResponse:
        """Page through stored row documents and splice them into the response without decoding them."""
        documents = self.paginate_queryset(queryset.values_list("document", flat=True)) or []
        paginator = self.paginator
        assert isinstance(paginator, BoardPagination)
        head = rows.dump({**header, "next": paginator.next_link(), "previous": paginator.previous_link()})
        first = paginator.offset + 1
        body = "".join(
            [
                head[:-1],
                ',"results":[',
                ",".join(rows.with_rank(first + i, doc) for i, doc in enumerate(documents)),
                "]}",
            ]
        )
        return HttpResponse(body, content_type="application/json")


class BenchmarkLeaderboardView(_BoardView):
    """The public leaderboard of one benchmark version: published variants ranked on their best verified
    (or else latest) result, best first, with each row's delta against its parents."""

    queryset = LeaderboardEntry.objects.none()
    filterset_class = EntryFilterSet

    @extend_schema(
        parameters=[VERSION_PARAM], responses={200: LeaderboardPageSerializer}, operation_id="leaderboards_benchmark"
    )
    def get(self, request: Request, benchmark_slug: str) -> HttpResponse:
        benchmark = selectors.benchmark_by_slug(benchmark_slug)
        version = _version_param(request, benchmark.version)
        queryset = self.filter_queryset(selectors.board_entries(benchmark=benchmark, version=version))
        header = {
            "benchmark": {
                "slug": benchmark.slug,
                "name": benchmark.name,
                "version": version,
                "metric": benchmark.primary_metric,
                "higher_is_better": primary_direction(benchmark),
            }
        }
        return self.board_response(header, queryset)


class SuiteLeaderboardView(_BoardView):
    """The public leaderboard of a suite: the weighted mean of normalized scores (0..100, Open LLM
    Leaderboard style). A benchmark a variant has no result on counts as 0 and is listed in `missing`;
    `?complete=true` keeps only variants with a result on every benchmark of the suite."""

    queryset = SuiteScore.objects.none()
    filterset_class = SuiteScoreFilterSet

    @extend_schema(responses={200: SuiteBoardPageSerializer}, operation_id="leaderboards_suite")
    def get(self, request: Request, suite_slug: str) -> HttpResponse:
        suite = selectors.suite_by_slug(suite_slug)
        queryset = self.filter_queryset(selectors.suite_board_scores(suite=suite))
        header = {
            "suite": {
                "slug": suite.slug,
                "name": suite.name,
                "version": suite.version,
                "benchmarks": SuiteBenchmarkSerializer(suite.entries.all(), many=True).data,
            }
        }
        return self.board_response(header, queryset)


class SuiteViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Suites: named, weighted sets of benchmarks. Anyone reads them; maintainers create and edit them."""

    serializer_class = SuiteSerializer
    lookup_field = "slug"
    lookup_value_regex = r"[-a-zA-Z0-9_]+"
    http_method_names = ["get", "post", "patch", "head", "options"]
    search_fields = ["slug", "name", "description"]
    ordering_fields = ["slug", "name", "created_at", "updated_at"]
    filterset_fields: list[str] = []
    token_scopes = {"list": "read", "retrieve": "read", "create": "admin", "partial_update": "admin"}

    def get_permissions(self):  # type: ignore[no-untyped-def]
        if self.action in ("list", "retrieve"):
            return [permissions.AllowAny(), TokenScopePermission()]
        return [permissions.IsAuthenticated(), TokenScopePermission(), IsMaintainer()]

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return selectors.suites_with_benchmarks()

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        suite = self.get_object()
        return Response(SuiteSerializer(suite).data, headers={"ETag": suite.etag})

    @extend_schema(request=SuiteCreateSerializer, responses={201: SuiteSerializer})
    def create(self, request: Request) -> Response:
        incoming = SuiteCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        suite = services.suite_create(actor=signed_in(request.user), **incoming.validated_data)
        suite = selectors.suite_by_slug(suite.slug)
        return Response(SuiteSerializer(suite).data, status=status.HTTP_201_CREATED, headers={"ETag": suite.etag})

    @extend_schema(
        request=SuiteUpdateSerializer,
        responses={200: SuiteSerializer},
        parameters=[
            OpenApiParameter(
                "If-Match",
                str,
                OpenApiParameter.HEADER,
                description="ETag from a GET; 412 when the suite changed since.",
            )
        ],
    )
    def partial_update(self, request: Request, slug: str | None = None) -> Response:
        suite = self.get_object()
        incoming = SuiteUpdateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        suite = services.suite_update(
            suite=suite,
            actor=signed_in(request.user),
            if_match=request.headers.get("If-Match"),
            **incoming.validated_data,
        )
        suite = selectors.suite_by_slug(suite.slug)
        return Response(SuiteSerializer(suite).data, headers={"ETag": suite.etag})
