"""Submit a job (config form generated from the benchmark's JSON Schema) and the live job page."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.accounts.roles import is_maintainer, is_reviewer
from apps.benchmarks import services as job_services
from apps.benchmarks.api.serializers import JobSerializer
from apps.benchmarks.choices import INFRASTRUCTURE_FAILURES, TERMINAL_JOB_STATUSES, JobEvent, JobStatus
from apps.benchmarks.models import Benchmark, BenchmarkJob
from apps.benchmarks.selectors import job_for_user_or_404
from apps.core.errors import DomainError, NotFound, ValidationFailed
from apps.registry import selectors as registry_selectors

from ..forms import add_service_errors, config_form_class
from . import AuthedRequest, WebRequest
from .variants import _variant_or_404

if TYPE_CHECKING:
    from apps.accounts.types import Viewer


def _benchmarks(user: Viewer) -> list[Benchmark]:
    return list(Benchmark.objects.visible_to(user).filter(is_active=True).order_by("name"))


@login_required
def job_submit(request: AuthedRequest, owner: str, name: str) -> HttpResponse:
    variant = _variant_or_404(request, owner, name)
    benchmarks = _benchmarks(request.user)
    data = request.POST if request.method == "POST" else None
    slug = (data or request.GET).get("benchmark") or (benchmarks[0].slug if benchmarks else "")
    benchmark = next((b for b in benchmarks if b.slug == slug), None)
    revisions = list(registry_selectors.revisions_visible_to(request.user, variant))
    current = registry_selectors.revision_current_for_user(request.user, variant)
    number = (data or request.GET).get("revision") or (current.number if current is not None else "")
    config_form = None
    errors: dict[str, list[str]] = {}
    if benchmark is not None:
        config_form = config_form_class(benchmark.config_schema or {}, benchmark.default_config or {})(
            data, prefix="config"
        )
    elif data is not None:
        errors["benchmark"] = ["Choose a benchmark."]
    if request.htmx and request.method == "GET":
        # The benchmark select swapped: send only that benchmark's config fields.
        return render(request, "web/partials/config_fields.html", {"config_form": config_form, "benchmark": benchmark})
    if data is not None and benchmark is not None and config_form is not None and config_form.is_valid():
        revision = next((r for r in revisions if str(r.number) == str(number)), None)
        if revision is None:
            errors["revision"] = ["Choose a revision of this variant."]
        else:
            config = {k: v for k, v in config_form.cleaned_data.items() if v not in (None, "")}
            try:
                job, created = job_services.job_submit(
                    actor=request.user, revision=revision, benchmark=benchmark, config=config
                )
            except DomainError as exc:
                if isinstance(exc, ValidationFailed):
                    add_service_errors(config_form, exc)
                    for key, msgs in (exc.errors or {}).items():
                        if key in ("benchmark", "revision", "variant"):
                            errors.setdefault(key, []).extend(msgs)
                else:
                    config_form.add_error(None, exc.detail)
            else:
                messages.success(
                    request,
                    f"Job {job.pk} queued." if created else f"The same job already exists (job {job.pk}); here it is.",
                )
                return redirect("web:job", job_id=job.pk)
    status = 400 if (errors or (config_form is not None and config_form.errors)) else 200
    return render(
        request,
        "web/job_submit.html",
        {
            "variant": variant,
            "benchmarks": benchmarks,
            "benchmark": benchmark,
            "config_form": config_form,
            "revisions": revisions,
            "revision_number": str(number),
            "errors": errors,
        },
        status=status,
    )


def _may_verify(job: BenchmarkJob, user: Viewer) -> bool:
    """Hint for the button; verification_request decides (the submitter, reviewers and maintainers may ask)."""
    return bool(
        user.is_authenticated
        and job.status == JobStatus.SUCCEEDED
        and not job.is_verification
        and (job.submitted_by_id == user.pk or is_reviewer(user))
    )


def _retry_label(job: BenchmarkJob, user: Viewer) -> str:
    """The retry button's label: Retry for a maintainer, Re-run for the submitter of a job that failed for an
    infrastructure reason, empty when job_retry would refuse (the hint mirrors it; the service decides)."""
    if not user.is_authenticated or not job.can_transition_to(JobStatus.QUEUED, by=JobEvent.RETRY):
        return ""
    if is_maintainer(user):
        return "Retry"
    if (
        job.submitted_by_id == user.pk
        and job.status == JobStatus.FAILED
        and job.failure_reason in INFRASTRUCTURE_FAILURES
    ):
        return "Re-run"
    return ""


def _visible_job_or_404(request: WebRequest, job_id: int, *, for_display: bool = False) -> BenchmarkJob:
    """A job the user may not see (its revision is not visible to them) is a 404; what they may do with one they
    see is the service's call."""
    try:
        return job_for_user_or_404(request.user, job_id, for_display=for_display)
    except NotFound:
        raise Http404


def _job_or_404(request: WebRequest, job_id: int) -> dict[str, Any]:
    job = _visible_job_or_404(request, job_id, for_display=True)
    terminal = job.status in TERMINAL_JOB_STATUSES
    user = request.user
    # The buttons are hints; the services decide. job_cancel: the submitter or a maintainer.
    can_cancel = (
        job.can_transition_to(JobStatus.CANCELLED, by=JobEvent.CANCEL)
        and user.is_authenticated
        and (job.submitted_by_id == user.pk or is_maintainer(user))
    )
    return {
        "job": JobSerializer(job, context={"request": request}).data,
        "job_obj": job,
        "terminal": terminal,
        "can_cancel": can_cancel,
        "can_verify": _may_verify(job, user),
        "retry_label": _retry_label(job, user),
    }


def job_detail(request: WebRequest, job_id: int) -> HttpResponse:
    return render(request, "web/job_detail.html", _job_or_404(request, job_id))


def job_progress(request: WebRequest, job_id: int) -> HttpResponse:
    """The fragment htmx polls: progress bar, ETA, state and log tail. It stops polling once terminal."""
    return render(request, "web/partials/job_progress.html", _job_or_404(request, job_id))


def _job_action(request: AuthedRequest, job_id: int, action: Any, done: str) -> HttpResponse:
    """Run one service action on a visible job, then back to its page with `done` or the service's refusal."""
    job = _visible_job_or_404(request, job_id)
    try:
        action(job=job, actor=request.user)
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, done.format(job=job.pk))
    return redirect("web:job", job_id=job.pk)


@login_required
@require_POST
def job_cancel(request: AuthedRequest, job_id: int) -> HttpResponse:
    return _job_action(request, job_id, job_services.job_cancel, "Job {job}: cancel requested.")


@login_required
@require_POST
def job_verify(request: AuthedRequest, job_id: int) -> HttpResponse:
    """Ask for an independent re-run of a succeeded job; lands on the verification job's page."""
    job = _visible_job_or_404(request, job_id)
    try:
        verification, created = job_services.job_verify(job=job, actor=request.user)
    except DomainError as exc:
        messages.error(request, exc.detail)
        return redirect("web:job", job_id=job.pk)
    messages.success(
        request,
        f"Verification job {verification.pk} queued: it re-runs job {job.pk}."
        if created
        else f"A verification of job {job.pk} is already under way (job {verification.pk}); here it is.",
    )
    return redirect("web:job", job_id=verification.pk)


@login_required
@require_POST
def job_retry(request: AuthedRequest, job_id: int) -> HttpResponse:
    """Queue a failed or timed-out job again (maintainers; submitters for infrastructure failures)."""
    return _job_action(request, job_id, job_services.job_retry, "Job {job} queued again.")
