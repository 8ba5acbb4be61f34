from __future__ import annotations

from typing import Any

import django_filters
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.roles import is_maintainer
from apps.benchmarks import services
from apps.benchmarks.choices import JobStatus
from apps.benchmarks.models import Benchmark, BenchmarkJob
from apps.benchmarks.selectors import jobs_for_api, jobs_visible_to
from apps.core.errors import ValidationFailed
from apps.core.pagination import CursorPagination
from apps.registry.models import Variant

from .serializers import BenchmarkSerializer, JobCreateSerializer, JobSerializer


class BenchmarkViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Benchmarks anyone may read."""

    queryset = Benchmark.objects.all()
    serializer_class = BenchmarkSerializer
    lookup_field = "slug"
    permission_classes = [permissions.AllowAny]
    search_fields = ["slug", "name", "description"]
    ordering_fields = ["slug", "name", "created_at"]
    filterset_fields = ["task", "runner", "resource_class", "is_active"]


class JobFilterSet(django_filters.FilterSet):
    variant = django_filters.CharFilter(method="filter_variant", help_text="owner/name")
    benchmark = django_filters.CharFilter(field_name="benchmark__slug")
    status = django_filters.ChoiceFilter(choices=JobStatus.choices)
    mine = django_filters.BooleanFilter(method="filter_mine")

    class Meta:
        model = BenchmarkJob
        fields = ["variant", "benchmark", "status", "mine", "queue"]

    def filter_variant(self, qs: Any, name: str, value: str) -> Any:
        owner, _, vname = value.partition("/")
        return qs.filter(revision__variant__owner__username__iexact=owner, revision__variant__name__iexact=vname)

    def filter_mine(self, qs: Any, name: str, value: bool | None) -> Any:
        user = self.request.user if self.request else None
        if value and user is not None and user.is_authenticated:
            return qs.filter(submitted_by=user)
        if value:
            return qs.none()
        return qs


class JobCursorPagination(CursorPagination):
    ordering = "-id"


class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                 viewsets.GenericViewSet):
    """Benchmark jobs. Submitting needs the `jobs` token scope."""

    serializer_class = JobSerializer
    pagination_class = JobCursorPagination
    filterset_class = JobFilterSet
    search_fields: list[str] = []
    ordering_fields: list[str] = []
    token_scopes = {"create": "jobs", "cancel": "jobs"}

    def get_permissions(self):  # type: ignore[no-untyped-def]
        if self.action in ("list", "retrieve"):
            return [permissions.AllowAny(), *super().get_permissions()]
        return [permissions.IsAuthenticated(), *super().get_permissions()]

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return jobs_for_api(jobs_visible_to(self.request.user))

    @extend_schema(request=JobCreateSerializer, responses={201: JobSerializer, 200: JobSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        incoming = JobCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        variant = Variant.objects.visible_to(request.user).by_full_name(data["variant"]).first()
        if variant is None:
            raise ValidationFailed("Unknown variant.", errors={"variant": [f"No variant '{data['variant']}'."]})
        if "revision" in data:
            revision = variant.revisions.filter(number=data["revision"]).first()
        else:
            revision = variant.current_revision
        if revision is None:
            raise ValidationFailed("Unknown revision.",
                                   errors={"revision": [f"{variant.full_name} has no revision {data.get('revision')}."]})
        benchmark = Benchmark.objects.filter(slug=data["benchmark"]).first()
        if benchmark is None:
            raise ValidationFailed("Unknown benchmark.", errors={"benchmark": [f"No benchmark '{data['benchmark']}'."]})
        priority = data["priority"] if is_maintainer(request.user) else 0
        job, created = services.job_submit(actor=request.user, revision=revision, benchmark=benchmark,
                                           config=data["config"], priority=priority)
        job = jobs_for_api(BenchmarkJob.objects.filter(pk=job.pk)).get()
        return Response(JobSerializer(job).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(request=None, responses={200: JobSerializer, 409: OpenApiResponse(description="Not cancellable")})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        job = services.job_cancel(job=self.get_object(), actor=request.user)
        return Response(JobSerializer(jobs_for_api(BenchmarkJob.objects.filter(pk=job.pk)).get()).data)
