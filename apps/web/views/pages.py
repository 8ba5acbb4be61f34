"""The start page and the dashboard."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone

from apps.accounts.roles import is_reviewer
from apps.benchmarks.api.serializers import JobSerializer
from apps.benchmarks.models import Benchmark
from apps.benchmarks.selectors import jobs_for_api, jobs_visible_to, quota_status
from apps.orgs.choices import InvitationStatus
from apps.orgs.selectors import invitations_received, orgs_list
from apps.registry import selectors as registry_selectors

from . import AuthedRequest, WebRequest, sections


def home(request: WebRequest) -> HttpResponse:
    recent = registry_selectors.variants_as_seen_by(
        request.user,
        list(registry_selectors.variants_visible_to(request.user).filter(is_public=True).order_by("-updated_at")[:8]),
    )
    benchmarks = Benchmark.objects.visible_to(request.user).filter(is_active=True).order_by("name")
    return render(request, "web/home.html", {"recent": recent, "benchmarks": benchmarks})


@login_required
def dashboard(request: AuthedRequest) -> HttpResponse:
    user = request.user
    my_variants = registry_selectors.variants_of_my_namespaces(user).order_by("-updated_at")[:50]
    my_jobs = jobs_for_api(jobs_visible_to(user).filter(submitted_by=user)).order_by("-id")[:20]
    ctx = {
        "my_variants": my_variants,
        "my_jobs": JobSerializer(my_jobs, many=True, context={"request": request}).data,
        "quota": quota_status(user=user),
        "is_reviewer": is_reviewer(user),
        "my_orgs": list(orgs_list(user=user).filter(memberships__user=user)),
        "my_invitations": list(
            invitations_received(user=user).filter(status=InvitationStatus.PENDING, expires_at__gt=timezone.now())[:20]
        ),
    }
    ctx.update(sections.dashboard_sections(request))
    return render(request, "web/dashboard.html", ctx)
