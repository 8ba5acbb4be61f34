"""Leaderboard read benchmark (SPEC §6). Run by `make bench`; it prints numbers, it asserts nothing.

    DATABASE_URL=postgres://root@127.0.0.1:5432/<db> python tests/perf/bench_leaderboard.py [--grow 10]

1. Creates a throw-away database (`test_<db>`, destroyed at the end) and migrates it.
2. Generates 10,000 published-ish variants (10% originals, the rest derived from them, 5% unpublished) and
   bulk-creates 20 benchmarks x 10,000 = 200,000 rows straight into the summary table (LeaderboardEntry).
3. For a few filtered top-100 boards, measures the p50 of
   - the API: GET /api/v1/leaderboards/{slug}/?<filters>&page_size=100 through the Django test client (the
     whole stack: middleware, auth, throttles, filterset, pagination, deltas against parents, JSON);
   - the bare SQL query returning the same 100 rows (same columns, WHERE and ORDER BY), and the same query
     plus the parents' scores (what `delta_vs_parents` needs), on the same connection;
   and prints API / SQL (target <= 3x).
4. Grows the data by `--grow` (default 10x: 100,000 variants, 2,000,000 rows), measures again, and prints
   the growth cost p50(big) / p50(small) of the API (target <= 2x).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]
from tests.perf.common import ratio_line  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "modelcommons.settings.test")
os.environ.setdefault("MC_VAR_DIR", "/tmp/mc-bench-leaderboard")

BENCHMARKS = 20
ORIGINAL_EVERY = 10  # one variant in 10 is an original; the rest derive from one (merges from two)
UNPUBLISHED_EVERY = 20
RELATIONS = ["finetune", "adapter", "quantized", "distilled", "pruned", "merge"]
PRECISIONS = ["fp32", "fp16", "bf16", "fp8", "int8", "int4", "mixed"]
LICENSES = ["apache-2.0", "mit", "llama3.1", "gemma", "openrail", "cc-by-nc-4.0", "bigscience-bloom-rail-1.0", "other"]
TASKS = ["text-generation", "text-classification", "sentence-similarity", "image-classification"]
QUERIES = [
    "precision=int8",
    "relation=quantized&verified=true",
    "license=mit&max_parameters=7000000000",
    "task=text-generation&contaminated=false",
    "",
]
# Scores of the published originals, for their children's `parents` column (what the services maintain).
ORIGINAL_SCORES: dict[tuple[int, int], float] = {}
ROW_COLUMNS = ("id", "variant_id", "variant_name", "document")
ALL_COLUMNS = (
    "id",
    "variant_id",
    "variant_name",
    "revision_number",
    "score",
    "metrics",
    "verified",
    "contaminated",
    "flags",
    "relation",
    "precision",
    "license",
    "task",
    "parameters",
    "result_at",
    "job_id",
    "parents",
)


def setup(keep: bool = False) -> Any:
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    if connection.vendor != "postgresql":
        print(f"note: running on {connection.vendor}; the SPEC target is measured on PostgreSQL (set DATABASE_URL)")
    settings.DEBUG = False
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=keep)
    return old_name


def teardown(old_name: Any) -> None:
    from django.db import connection

    connection.creation.destroy_test_db(old_name, verbosity=0)


def generate(start: int, stop: int, benchmarks: list[Any], owners: list[Any], rng: random.Random) -> None:
    """Variants [start, stop) with one revision each, their parents, and one entry per benchmark."""
    from django.db import connection
    from django.utils import timezone

    from apps.leaderboards.models import LeaderboardEntry
    from apps.leaderboards.rows import entry_text
    from apps.registry.models import Revision, Variant, VariantParent

    now = timezone.now()
    batch = 5000
    for lo in range(start, stop, batch):
        hi = min(lo + batch, stop)
        specs = []
        for i in range(lo, hi):
            original = i % ORIGINAL_EVERY == 0
            specs.append(
                {
                    "i": i,
                    "owner": owners[i % len(owners)],
                    "relation": "original" if original else rng.choice(RELATIONS),
                    "precision": rng.choice(PRECISIONS),
                    "license": rng.choice(LICENSES),
                    "task": rng.choice(TASKS),
                    "parameters": int(10 ** rng.uniform(6, 11)),
                    "public": i % UNPUBLISHED_EVERY != 7,
                }
            )
        variants = Variant.objects.bulk_create(
            [
                Variant(
                    owner=s["owner"],
                    name=f"v{s['i']:07d}",
                    relation=s["relation"],
                    precision=s["precision"],
                    license=s["license"],
                    task=s["task"],
                    parameters=s["parameters"],
                    is_public=s["public"],
                    status="published" if s["public"] else "submitted",
                )
                for s in specs
            ]
        )
        revisions = Revision.objects.bulk_create([Revision(variant=v, number=1, status=v.status) for v in variants])
        with connection.cursor() as cur:
            cur.execute(
                "UPDATE registry_variant v SET current_revision_id = r.id FROM registry_revision r "
                "WHERE r.variant_id = v.id AND v.id BETWEEN %s AND %s",
                [variants[0].pk, variants[-1].pk],
            )
        originals = [
            [pk, f"{owner}/{name}"]
            for pk, owner, name in Variant.objects.filter(relation="original", pk__lte=variants[-1].pk).values_list(
                "pk", "owner__username", "name"
            )[:5000]
        ]
        links = []
        lineage: dict[int, list[list[Any]]] = {}
        for v in variants:
            if v.relation == "original":
                continue
            parents = rng.sample(originals, 2) if v.relation == "merge" else [rng.choice(originals)]
            lineage[v.pk] = sorted(parents, key=lambda p: p[1])
            links.extend(VariantParent(child_id=v.pk, parent_id=p[0]) for p in parents)
        VariantParent.objects.bulk_create(links)
        scores = {(v.pk, b.pk): round(rng.uniform(0.2, 0.95), 4) for v in variants for b in benchmarks}
        for v, s in zip(variants, specs, strict=True):
            if v.relation == "original" and s["public"]:
                ORIGINAL_SCORES.update({key: value for key, value in scores.items() if key[0] == v.pk})
        entries = []
        for v, r, s in zip(variants, revisions, specs, strict=True):
            for b in benchmarks:
                score = scores[(v.pk, b.pk)]
                higher = b.metrics[0]["higher_is_better"]
                entries.append(
                    LeaderboardEntry(
                        variant_id=v.pk,
                        revision_id=r.pk,
                        benchmark_id=b.pk,
                        benchmark_version=b.version,
                        score=score,
                        score_metric="score",
                        rank_score=score if higher else -score,
                        metrics={"score": score, "stderr": 0.01},
                        verified=rng.random() < 0.3,
                        contaminated=rng.random() < 0.01,
                        flags=[],
                        result_at=now,
                        listed=s["public"],
                        ranked=s["public"],
                        variant_name=f"{s['owner'].username}/v{s['i']:07d}",
                        revision_number=1,
                        owner_id=s["owner"].pk,
                        relation=s["relation"],
                        precision=s["precision"],
                        license=s["license"],
                        task=s["task"],
                        parameters=s["parameters"],
                        is_public=s["public"],
                        parents=[[pid, name, ORIGINAL_SCORES.get((pid, b.pk))] for pid, name in lineage.get(v.pk, [])],
                    )
                )
        for entry in entries:
            entry.document = entry_text(entry)  # what the services store with every row
        LeaderboardEntry.objects.bulk_create(entries, batch_size=5000)
    with connection.cursor() as cur:
        cur.execute("ANALYZE")


def bare_sql(benchmark: Any, query: str, columns: tuple[str, ...]) -> tuple[str, list[Any]]:
    """The hand-written SQL for the same rows the API returns for `query`."""
    from urllib.parse import parse_qsl

    where = ["e.benchmark_id = %s", "e.benchmark_version = %s", "e.ranked"]
    params: list[Any] = [benchmark.pk, benchmark.version]
    for key, value in parse_qsl(query):
        if key == "max_parameters":
            where.append("e.parameters <= %s")
            params.append(int(value))
        elif key in ("verified", "contaminated"):
            where.append(f"e.{key} = %s")
            params.append(value == "true")
        elif key == "license":
            where.append("e.license = %s")
            params.append(value.lower())
        else:
            where.append(f"e.{key} = %s")
            params.append(value)
    selected = ", ".join(f"e.{c}" for c in columns)
    sql = (
        f"SELECT {selected} FROM leaderboards_leaderboardentry e WHERE {' AND '.join(where)} "
        f"ORDER BY e.rank_score DESC, e.id LIMIT 100"
    )  # noqa: S608 - columns and keys are constants
    return sql, params


def interleaved(fns: dict[str, Any], runs: int) -> dict[str, dict[str, float]]:
    """Call each function in turn, `runs` times, so that background load falls on all of them alike.
    Returns per function the p50 and min wall time and the mean CPU time of this process."""
    for fn in fns.values():
        for _ in range(5):
            fn()
    wall: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, float] = dict.fromkeys(fns, 0.0)
    for _ in range(runs):
        for name, fn in fns.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            wall[name].append(time.perf_counter() - t0)
            cpu[name] += time.process_time() - c0
    return {name: {"p50": statistics.median(w), "min": min(w), "cpu": cpu[name] / runs} for name, w in wall.items()}


def measure(benchmark: Any, runs: int) -> dict[str, dict[str, Any]]:
    """For each filter: the API, the bare SQL returning the same rows (their stored documents), and the bare
    SQL returning every column a row is made of (what an API without stored documents would read)."""
    from django.db import connection
    from django.test import Client

    client = Client()
    out: dict[str, dict[str, Any]] = {}
    for query in QUERIES:
        url = f"/api/v1/leaderboards/{benchmark.slug}/?page_size=100" + (f"&{query}" if query else "")
        resp = client.get(url)
        assert resp.status_code == 200, resp.content[:500]
        api_rows = [r["variant"] for r in resp.json()["results"]]
        sql, params = bare_sql(benchmark, query, ROW_COLUMNS)
        sql_columns, params_columns = bare_sql(benchmark, query, ALL_COLUMNS)
        with connection.cursor() as cur:
            cur.execute(sql, params)
            sql_rows = [row[2] for row in cur.fetchall()]
        assert api_rows == sql_rows, f"API and SQL disagree for {query!r}"

        def run_sql(sql: str, params: list[Any]) -> None:
            with connection.cursor() as cur:
                cur.execute(sql, params)
                cur.fetchall()

        times = interleaved(
            {
                "api": lambda url=url: client.get(url),
                "sql": lambda sql=sql, params=params: run_sql(sql, params),
                "sql_columns": lambda sql=sql_columns, params=params_columns: run_sql(sql, params),
            },
            runs,
        )
        out[query or "(no filter)"] = {"rows": len(api_rows), **times}
    return out


def report(title: str, results: dict[str, dict[str, Any]]) -> None:
    print(f"\n{title}   (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    print(
        "  p50 wall time; ratio = API / SQL; 'columns' = SQL reading every column of the row instead of its "
        "stored document; cpu = this process's CPU per request"
    )
    print(
        f"  {'filter':40} {'rows':>4} {'API':>8} {'SQL':>7} {'ratio':>6} {'columns':>8} {'ratio':>6}   "
        f"{'API cpu':>8} {'SQL cpu':>8}"
    )
    for query, r in results.items():
        api, sql, cols = r["api"], r["sql"], r["sql_columns"]
        print(
            f"  {query:40} {r['rows']:>4} {api['p50'] * 1e3:>6.2f}ms {sql['p50'] * 1e3:>5.2f}ms "
            f"{api['p50'] / sql['p50']:>5.2f}x {cols['p50'] * 1e3:>6.2f}ms {api['p50'] / cols['p50']:>5.2f}x   "
            f"{api['cpu'] * 1e3:>6.2f}ms {sql['cpu'] * 1e3:>6.2f}ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", type=int, default=10_000)
    parser.add_argument("--grow", type=int, default=10, help="growth factor for the second measurement (1: skip)")
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the generated database and reuse it next time (for tuning; skips the growth)",
    )
    args = parser.parse_args()

    old_name = setup(keep=args.keep)
    try:
        from apps.accounts.models import User
        from apps.benchmarks.models import Benchmark

        rng = random.Random(42)
        rows = args.variants * BENCHMARKS
        if args.keep and Benchmark.objects.filter(slug="bench-03").exists():
            target = Benchmark.objects.get(slug="bench-03")
            args.grow = 1
            print("reusing the kept database")
        else:
            owners = User.objects.bulk_create([User(username=f"owner{i:03d}") for i in range(200)])
            benchmarks = [
                Benchmark.objects.create(
                    slug=f"bench-{k:02d}",
                    name=f"Bench {k}",
                    version="1",
                    runner="noop",
                    metrics=[{"name": "score", "higher_is_better": k % 5 != 4, "primary": True}],
                )
                for k in range(BENCHMARKS)
            ]
            target = benchmarks[3]
            t0 = time.perf_counter()
            generate(0, args.variants, benchmarks, owners, rng)
            print(
                f"generated {args.variants:,} variants x {BENCHMARKS} benchmarks = {rows:,} entries "
                f"in {time.perf_counter() - t0:.1f}s"
            )
        small = measure(target, args.runs)
        report(f"{rows:,} entries: filtered top-100 on {target.slug}", small)
        if args.grow > 1:
            t0 = time.perf_counter()
            generate(args.variants, args.variants * args.grow, benchmarks, owners, rng)
            big_rows = args.variants * args.grow * BENCHMARKS
            print(
                f"\ngrew to {args.variants * args.grow:,} variants = {big_rows:,} entries "
                f"in {time.perf_counter() - t0:.1f}s"
            )
            big = measure(target, args.runs)
            report(f"{big_rows:,} entries: filtered top-100 on {target.slug}", big)
            print(f"\ngrowth cost ({args.grow}x data): p50 big / p50 small (target <= 2x):")
            for query in small:
                print(
                    f"  {query:40} API {big[query]['api']['p50'] / small[query]['api']['p50']:>5.2f}x   "
                    f"SQL {big[query]['sql']['p50'] / small[query]['sql']['p50']:.2f}x"
                )
            growth = max(big[q]["api"]["p50"] / small[q]["api"]["p50"] for q in small)
            ratio_line(f"leaderboard_growth_{args.grow}x", growth, target="<=2")
        worst = max(r["api"]["p50"] / r["sql"]["p50"] for r in small.values())
        print(f"\nworst API / bare SQL (p50) at {rows:,} entries: {worst:.2f}x (target <= 3x)")
        ratio_line("leaderboard_api_vs_sql", worst, target="<=3")
    finally:
        if not args.keep:
            teardown(old_name)


if __name__ == "__main__":
    main()
