from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import Q
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.permissions import TokenScopePermission
from apps.accounts.roles import is_maintainer
from apps.accounts.types import signed_in
from apps.benchmarks import services
from apps.benchmarks.choices import JobStatus
from apps.benchmarks.idempotency import HEADER as IDEMPOTENCY_HEADER
from apps.benchmarks.idempotency import KEY_SCHEMA as IDEMPOTENCY_KEY_SCHEMA
from apps.benchmarks.idempotency import idempotent, request_fingerprint
from apps.benchmarks.models import Benchmark, BenchmarkJob, BlockedVariant
from apps.benchmarks.selectors import (
    benchmark_by_slug,
    benchmarks_visible_to,
    blocklist_reason,
    job_bundle,
    job_for_user_or_404,
    job_with_results,
    jobs_for_serializer,
    jobs_visible_to,
)
from apps.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from apps.core.pagination import CursorPagination
from apps.registry.models import Revision, Variant
from apps.registry.querysets import VariantQuerySet, revision_is_visible_to, variant_is_visible_to
from apps.registry.selectors import (
    revision_current_for_user,
    revision_for_user_or_404,
    variant_by_name_lookup,
    variant_visible_by_name,
)

from .filtersets import JobFilterSet
from .serializers import (
    BenchmarkSerializer,
    BenchmarkWriteSerializer,
    BlockedVariantCreateSerializer,
    BlockedVariantSerializer,
    JobBatchResultSerializer,
    JobBatchSerializer,
    JobCreateSerializer,
    JobSerializer,
)


class BenchmarkViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Benchmarks anyone may read; maintainers define and change them (token scope `admin`). A change to the
    runner, dataset, metrics or config schema/defaults starts a new version: results belong to one version."""

    serializer_class = BenchmarkSerializer
    lookup_field = "slug"
    search_fields = ["slug", "name", "description"]
    ordering_fields = ["slug", "name", "created_at"]
    filterset_fields = ["task", "runner", "resource_class", "is_active"]
    token_scopes = {"list": "read", "retrieve": "read", "create": "admin", "partial_update": "admin"}

    def get_permissions(self):  # type: ignore[no-untyped-def]
        if self.action in ("list", "retrieve"):
            return [permissions.AllowAny(), *super().get_permissions()]
        return [permissions.IsAuthenticated(), *super().get_permissions()]

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return benchmarks_visible_to(self.request.user).prefetch_related("versions")

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        benchmark = self.get_object()
        return Response(BenchmarkSerializer(benchmark).data, headers={"ETag": benchmark.etag})

    @extend_schema(request=BenchmarkWriteSerializer, responses={201: BenchmarkSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        if not is_maintainer(request.user):
            raise PermissionDenied("Only maintainers define benchmarks.")
        incoming = BenchmarkWriteSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        fields = incoming.to_service_fields()
        benchmark = services.benchmark_create(actor=signed_in(request.user), **fields)
        benchmark = self.get_queryset().get(pk=benchmark.pk)
        return Response(
            BenchmarkSerializer(benchmark).data, status=status.HTTP_201_CREATED, headers={"ETag": benchmark.etag}
        )

    @extend_schema(
        request=BenchmarkWriteSerializer,
        responses={200: BenchmarkSerializer},
        parameters=[OpenApiParameter("If-Match", str, OpenApiParameter.HEADER, required=False)],
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        if not is_maintainer(request.user):
            raise PermissionDenied("Only maintainers change benchmarks.")
        benchmark = self.get_object()
        incoming = BenchmarkWriteSerializer(data=request.data, partial=True)
        incoming.is_valid(raise_exception=True)
        changes = incoming.to_service_fields(current=benchmark)
        if "slug" in changes and changes.pop("slug") != benchmark.slug:
            raise ValidationFailed("The slug cannot change.", errors={"slug": ["A benchmark's slug is permanent."]})
        benchmark = services.benchmark_update(
            benchmark=benchmark,
            actor=signed_in(request.user),
            changes=changes,
            if_match=request.headers.get("If-Match"),
        )
        benchmark = self.get_queryset().get(pk=benchmark.pk)
        return Response(BenchmarkSerializer(benchmark).data, headers={"ETag": benchmark.etag})


IDEMPOTENCY_PARAMETER = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    IDEMPOTENCY_KEY_SCHEMA,
    OpenApiParameter.HEADER,
    required=False,
    description="Retries with the same key and body get the first response.",
)


class JobCursorPagination(CursorPagination):
    ordering = "-id"


def _variants_for_submission(qs: VariantQuerySet) -> VariantQuerySet:
    """Variants with what a submission reads of them: the owner, the revisions a submitter may mean, and the
    reason of a blocklist entry (the submission checks read it)."""
    return qs.with_heads().annotate(**blocklist_reason())


# The submission's read of the variant it names, compiled once (apps.core.compiled).
_SUBMISSION_VARIANT = variant_by_name_lookup(lambda: _variants_for_submission(Variant.objects.all()))


def _read_ahead(items: list[dict[str, Any]], cache: dict[Any, Any]) -> None:
    """Every variant a batch names, and every revision it names by number, in two queries (not two per item).
    The rows only: `_resolve` still applies the visibility rule to each, and looks up one by one whatever this
    did not find (an unknown name, a name whose case folds differently in Python and in SQL)."""
    names = {item["variant"].lower() for item in items}
    if len(names) < 2:
        return
    matching = Q()
    for name in names:
        owner, _, short = name.partition("/")
        matching |= Q(owner__username__iexact=owner, name__iexact=short)
    # The order `.first()` takes for one name: the model's ordering, else the primary key.
    ordering = list(Variant._meta.ordering or ["pk"])
    for variant in _variants_for_submission(Variant.objects.filter(matching)).order_by(*ordering):
        cache.setdefault(("variant row", variant.full_name.lower()), variant)
    wanted = {
        (v.pk, item["revision"])
        for item in items
        if "revision" in item
        for v in [cache.get(("variant row", item["variant"].lower()))]
        if v is not None
    }
    if wanted:
        rows = Revision.objects.filter(
            variant_id__in={pk for pk, _ in wanted}, number__in={number for _, number in wanted}
        ).order_by(*(Revision._meta.ordering or ["pk"]))
        for revision in rows:
            if (revision.variant_id, revision.number) in wanted:
                cache.setdefault(("revision row", revision.variant_id, revision.number), revision)


class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    """Benchmark jobs. Submitting, cancelling, retrying and verifying need the `jobs` token scope.

    A POST with an `Idempotency-Key` header returns the first response again when retried."""

    serializer_class = JobSerializer
    pagination_class = JobCursorPagination
    filterset_class = JobFilterSet
    search_fields: list[str] = []
    ordering_fields: list[str] = []
    lookup_value_regex = r"[0-9]+"
    token_scopes = {
        "list": "read",
        "retrieve": "read",
        "bundle": "read",
        "create": "jobs",
        "batch": "jobs",
        "cancel": "jobs",
        "retry": "jobs",
        "verify": "jobs",
    }

    def get_permissions(self):  # type: ignore[no-untyped-def]
        if self.action in ("list", "retrieve", "bundle"):
            return [permissions.AllowAny(), *super().get_permissions()]
        return [permissions.IsAuthenticated(), *super().get_permissions()]

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return jobs_for_serializer(jobs_visible_to(self.request.user))

    def get_object(self) -> BenchmarkJob:
        """The one job by id through the access helper (its Python rule costs less than the list's SQL rule)."""
        raw = str(self.kwargs.get(self.lookup_url_kwarg or self.lookup_field, ""))
        # A detail read needs only the representation's columns; the actions and the bundle read more of the job.
        job = job_for_user_or_404(
            self.request.user,
            int(raw) if raw.isdigit() else 0,
            for_display=True,
            for_serializer=self.action == "retrieve",
        )
        self.check_object_permissions(self.request, job)
        return job

    def _resolve(
        self, request: Request, data: dict[str, Any], prefix: str = "", cache: dict[Any, Any] | None = None
    ) -> tuple[Any, Benchmark]:
        """The revision and benchmark an item names; an unknown (or invisible) one is a 400 on its field."""
        cache = {} if cache is None else cache
        key: tuple[Any, ...] = ("variant", data["variant"].lower())
        if key not in cache:
            found = cache.get(("variant row", key[1]))  # read ahead for a batch (_read_ahead)
            if found is not None:
                cache[key] = found if variant_is_visible_to(request.user, found) else None
            else:
                cache[key] = variant_visible_by_name(request.user, data["variant"], _SUBMISSION_VARIANT)
        variant = cache[key]
        if variant is None:
            raise ValidationFailed(
                "Unknown variant.", errors={f"{prefix}variant": [f"No variant '{data['variant']}'."]}
            )
        # A revision the user may not see answers exactly as one that does not exist.
        if "revision" in data:
            key = ("revision", variant.pk, data["revision"])
            if key not in cache:
                found_revision = cache.get(("revision row", variant.pk, data["revision"]))
                if found_revision is not None:
                    found_revision.variant = variant
                    if not revision_is_visible_to(request.user, found_revision):
                        found_revision = None
                else:
                    try:
                        found_revision = revision_for_user_or_404(
                            request.user, number=data["revision"], variant=variant, with_artifacts=False
                        )
                    except NotFound:
                        found_revision = None
                cache[key] = found_revision
            revision = cache[key]
        else:
            revision = revision_current_for_user(request.user, variant)
        if revision is not None:
            revision.variant = variant  # the submission checks read it: no second query for the same row
        if revision is None:
            missing = f"{variant.full_name} has no revision {data.get('revision')}."
            raise ValidationFailed("Unknown revision.", errors={f"{prefix}revision": [missing]})
        key = ("benchmark", data["benchmark"])
        if key not in cache:
            cache[key] = benchmark_by_slug(data["benchmark"])
        benchmark = cache[key]
        if benchmark is None:
            raise ValidationFailed(
                "Unknown benchmark.", errors={f"{prefix}benchmark": [f"No benchmark '{data['benchmark']}'."]}
            )
        return revision, benchmark

    def _submit(self, request: Request) -> tuple[int, dict[str, Any]]:
        incoming = JobCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        revision, benchmark = self._resolve(request, data)
        priority = data["priority"] if is_maintainer(request.user) else 0
        job, created = services.job_submit(
            actor=signed_in(request.user),
            revision=revision,
            benchmark=benchmark,
            config=data["config"],
            priority=priority,
        )
        # A new job is serialized from the row just written: its revision (with the variant and its owner),
        # benchmark and submitter are the objects the service was given, and a queued job has no result yet.
        # An existing one (dedupe) is read with what its representation needs.
        body = JobSerializer(job if created else job_with_results(job.pk)).data
        return (status.HTTP_201_CREATED if created else status.HTTP_200_OK), dict(body)

    @extend_schema(
        request=JobCreateSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={
            201: JobSerializer,
            200: JobSerializer,
            422: OpenApiResponse(description="Idempotency-Key reused with a different body"),
        },
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._idempotent_response(request, "jobs.create", self._submit)

    def _idempotent_response(
        self, request: Request, scope: str, produce: Callable[[Request], tuple[int, dict[str, Any]]]
    ) -> Response:
        """Run `produce` once per Idempotency-Key (when the header is sent): a retry with the same key and body
        gets the first response back, marked `Idempotent-Replayed: true`."""
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is None:
            code, body = produce(request)
            return Response(body, status=code)
        code, body, replayed = idempotent(
            user=signed_in(request.user),
            key=key,
            scope=scope,
            fingerprint=request_fingerprint(request.data),
            produce=lambda: produce(request),
        )
        return Response(body, status=code, headers={"Idempotent-Replayed": "true" if replayed else "false"})

    def _submit_batch(self, request: Request) -> tuple[int, dict[str, Any]]:
        incoming = JobBatchSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        cache: dict[Any, Any] = {}
        _read_ahead(data["jobs"], cache)
        items = []
        for index, item in enumerate(data["jobs"]):
            revision, benchmark = self._resolve(request, item, prefix=f"jobs.{index}.", cache=cache)
            items.append((revision, benchmark, item["config"]))
        priority = data["priority"] if is_maintainer(request.user) else 0
        outcome = services.jobs_submit_batch(actor=signed_in(request.user), items=items, priority=priority)
        ids = [job.pk for job, _ in outcome]
        # The new jobs are serialized from the rows the service wrote (as a single submission's is: their revision
        # with its variant and owner, benchmark and submitter are the objects it was given, and a queued job has no
        # result); only the jobs that already existed are read, with what their representation needs.
        by_id = {job.pk: job for job, created in outcome if created}
        if len(by_id) < len(set(ids)):
            existing = BenchmarkJob.objects.filter(pk__in=set(ids) - set(by_id))
            by_id.update((job.pk, job) for job in jobs_for_serializer(existing))
        body = {
            "created": [created for _, created in outcome],
            "jobs": JobSerializer([by_id[pk] for pk in ids], many=True).data,
        }
        return (status.HTTP_201_CREATED if any(body["created"]) else status.HTTP_200_OK), body

    @extend_schema(
        request=JobBatchSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={
            201: JobBatchResultSerializer,
            200: JobBatchResultSerializer,
            422: OpenApiResponse(description="Idempotency-Key reused with a different body"),
        },
    )
    @action(detail=False, methods=["post"])
    def batch(self, request: Request) -> Response:
        """Submit up to 500 jobs at once (a config sweep, many variants): every rule of a single submission,
        all or nothing, one transaction. Items matching existing jobs get them back (`created: false`)."""
        return self._idempotent_response(request, "jobs.batch", self._submit_batch)

    @extend_schema(request=None, responses={200: JobSerializer, 409: OpenApiResponse(description="Not cancellable")})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        """Cancel (submitter or maintainer): at once when queued, at the next checkpoint when running."""
        job = services.job_cancel(job=self.get_object(), actor=signed_in(request.user))
        return Response(JobSerializer(job_with_results(job.pk)).data)

    @extend_schema(request=None, responses={200: JobSerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str | None = None) -> Response:
        """Run a failed job again: maintainers any failed or timed-out job; submitters their own infrastructure
        failures (worker_lost, artifact_unavailable). Not counted against the quota."""
        job = services.job_retry(job=self.get_object(), actor=signed_in(request.user))
        return Response(JobSerializer(job_with_results(job.pk)).data)

    @extend_schema(request=None, responses={201: JobSerializer, 200: JobSerializer})
    @action(detail=True, methods=["post"])
    def verify(self, request: Request, pk: str | None = None) -> Response:
        """Re-run a succeeded job on another worker where there is one; agreement within the benchmark's
        tolerance marks its result verified, disagreement flags it. Returns the verification job."""
        verification, created = services.job_verify(job=self.get_object(), actor=signed_in(request.user))
        return Response(
            JobSerializer(job_with_results(verification.pk)).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(responses={200: OpenApiResponse(description="The reproducibility bundle (JSON)")})
    def bundle(self, request: Request, pk: str | None = None) -> Response:
        """The reproducibility bundle bound to the job's score: runner and version, config, dtype, seed, dataset
        and artifact sha256s, environment, verification record."""
        job = self.get_object()
        if job.status != JobStatus.SUCCEEDED or getattr(job, "result", None) is None:
            raise Conflict(f"Job {job.pk} has no result yet (it is {job.status}).")
        return Response(
            job_bundle(job), headers={"Content-Disposition": f'attachment; filename="job-{job.pk}-bundle.json"'}
        )


class BlocklistViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """The maintainers' blocklist: jobs are not queued for these variants (token scope `admin`)."""

    serializer_class = BlockedVariantSerializer
    permission_classes = [permissions.IsAuthenticated, TokenScopePermission]
    lookup_value_regex = r"[0-9]+"
    filter_backends: list[Any] = []
    token_scopes = {"list": "admin", "retrieve": "admin", "create": "admin", "destroy": "admin"}

    def get_queryset(self):  # type: ignore[no-untyped-def]
        qs = BlockedVariant.objects.select_related("variant__owner", "created_by")
        return qs if is_maintainer(self.request.user) else qs.none()

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        if not is_maintainer(request.user):
            raise PermissionDenied("Only maintainers read the blocklist.")
        return super().list(request, *args, **kwargs)

    @extend_schema(request=BlockedVariantCreateSerializer, responses={201: BlockedVariantSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        if not is_maintainer(request.user):
            raise PermissionDenied("Only maintainers edit the blocklist.")
        incoming = BlockedVariantCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        variant = Variant.objects.visible_to(request.user).by_full_name(incoming.validated_data["variant"]).first()
        if variant is None:
            raise ValidationFailed(
                "Unknown variant.", errors={"variant": [f"No variant '{incoming.validated_data['variant']}'."]}
            )
        entry = services.blocklist_add(
            variant=variant, reason=incoming.validated_data["reason"], actor=signed_in(request.user)
        )
        entry = get_object_or_404(self.get_queryset(), pk=entry.pk)
        return Response(BlockedVariantSerializer(entry).data, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.blocklist_remove(entry=self.get_object(), actor=signed_in(request.user))
        return Response(status=status.HTTP_204_NO_CONTENT)
