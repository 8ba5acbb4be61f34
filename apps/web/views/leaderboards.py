"""Leaderboards per benchmark and per suite: sortable, filterable, with a server-rendered SVG chart.

Rows, filters and deltas come from the leaderboards app (the same selectors and FilterSets as the API), so
the page and `GET /api/v1/leaderboards/...` always agree."""

from __future__ import annotations

from typing import Any

from django import forms
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from apps.benchmarks.models import Benchmark
from apps.core.errors import NotFound
from apps.leaderboards import selectors
from apps.leaderboards.api.filtersets import EntryFilterSet, SuiteScoreFilterSet
from apps.leaderboards.api.serializers import entry_row, suite_row
from apps.leaderboards.models import primary_direction

from ..svg import bar_chart

MAX_ROWS = 200
SORTS = {
    "rank": lambda r: r["rank"],
    "variant": lambda r: r["variant"].lower(),
    "parameters": lambda r: (r["parameters"] is None, r["parameters"] or 0),
    "score": lambda r: r["rank"],
}


def _sorted(rows: list[dict[str, Any]], sort: str) -> tuple[list[dict[str, Any]], str]:
    """Re-order the ranked rows for display; the rank column keeps the board's ranking."""
    key = sort.lstrip("-")
    if key not in SORTS:
        return rows, "rank"
    return sorted(rows, key=SORTS[key], reverse=sort.startswith("-")), sort


YES_NO = [("", "any"), ("true", "yes"), ("false", "no")]


def _friendly_filters(form: Any) -> Any:
    """Presentation only: yes/no selects for the boolean filters and plainer labels; the FilterSet validates."""
    for name in ("verified", "contaminated", "complete"):
        if name in form.fields:
            form.fields[name].widget = forms.Select(choices=YES_NO)
    labels = {
        "max_parameters": "Max parameters",
        "license": "Licence",
        "relation": "Relation",
        "precision": "Precision",
        "task": "Task",
        "verified": "Verified",
        "contaminated": "Contaminated",
        "complete": "Complete",
    }
    for name, label in labels.items():
        if name in form.fields:
            form.fields[name].label = label
            form.fields[name].required = False
            form.fields[name].help_text = ""
    return form


def _filters_query(request: HttpRequest) -> str:
    params = request.GET.copy()
    params.pop("sort", None)
    return params.urlencode()


def index(request: HttpRequest) -> HttpResponse:
    benchmarks = Benchmark.objects.visible_to(request.user).order_by("name")
    suites = selectors.suites_with_benchmarks().order_by("name")
    return render(request, "web/leaderboard_index.html", {"benchmarks": benchmarks, "suites": suites})


def benchmark(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        bench = selectors.benchmark_by_slug(slug)
    except NotFound:
        raise Http404
    version = request.GET.get("version") or bench.version
    filterset = EntryFilterSet(request.GET, queryset=selectors.board_entries(benchmark=bench, version=version))
    rows: list[dict[str, Any]] = []
    if filterset.is_valid():
        values = list(filterset.qs.values(*selectors.ENTRY_ROW_FIELDS)[:MAX_ROWS])
        values = selectors.entry_rows_with_deltas(values, benchmark=bench, version=version)
        rows = [entry_row(i + 1, row) for i, row in enumerate(values)]
    chart = bar_chart(rows, label_key="variant", value_key="score")
    rows, sort = _sorted(rows, request.GET.get("sort", "rank"))
    return render(
        request,
        "web/leaderboard.html",
        {
            "benchmark": bench,
            "version": version,
            "rows": rows,
            "chart": chart,
            "filterset": filterset,
            "form": _friendly_filters(filterset.form),
            "sort": sort,
            "filters_query": _filters_query(request),
            "metric": bench.primary_metric,
            "higher_is_better": primary_direction(bench),
            "status": 200 if filterset.is_valid() else 400,
        },
        status=200 if filterset.is_valid() else 400,
    )


def suite(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        suite_obj = selectors.suite_by_slug(slug)
    except NotFound:
        raise Http404
    filterset = SuiteScoreFilterSet(request.GET, queryset=selectors.suite_board_scores(suite=suite_obj))
    rows: list[dict[str, Any]] = []
    if filterset.is_valid():
        values = list(filterset.qs.values(*selectors.SUITE_ROW_FIELDS)[:MAX_ROWS])
        values = selectors.suite_rows_with_deltas(values, suite=suite_obj)
        rows = [suite_row(i + 1, row) for i, row in enumerate(values)]
    chart = bar_chart(rows, label_key="variant", value_key="score")
    rows, sort = _sorted(rows, request.GET.get("sort", "rank"))
    return render(
        request,
        "web/leaderboard_suite.html",
        {
            "suite": suite_obj,
            "rows": rows,
            "chart": chart,
            "form": _friendly_filters(filterset.form),
            "sort": sort,
            "filters_query": _filters_query(request),
            "benchmarks": suite_obj.entries.all(),
        },
        status=200 if filterset.is_valid() else 400,
    )
