"""Leaderboards per benchmark and per suite: sortable, filterable, with a server-rendered SVG chart."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from apps.benchmarks.models import Benchmark


def index(request: HttpRequest) -> HttpResponse:
    benchmarks = Benchmark.objects.visible_to(request.user).order_by("name")
    return render(request, "web/leaderboard_index.html", {"benchmarks": benchmarks, "suites": []})


def benchmark(request: HttpRequest, slug: str) -> HttpResponse:
    bench = Benchmark.objects.visible_to(request.user).filter(slug=slug).first()
    if bench is None:
        raise Http404
    return render(request, "web/leaderboard.html", {"benchmark": bench, "rows": [], "chart": None})


def suite(request: HttpRequest, slug: str) -> HttpResponse:
    raise Http404
