"""`make bench`: run every benchmark script in tests/perf/ against the configured PostgreSQL and Redis, with
production settings where a web process is measured (gunicorn, DEBUG off), and print one table of every ratio.

Each script prints ratios against a baseline measured in the same run; nothing here asserts timings. A script
reports a ratio with a line `RATIO <key> <value> [ours=.. baseline=.. unit=.. target=..]` (tests/perf/common.py,
`ratio_line`); this collects them and prints, at the end, the table: metric, ours, baseline, ratio, target, met?
Defaults point at the local servers; override DATABASE_URL / CELERY_BROKER_URL to use others.

    python tests/perf/run_all.py [--only bench_api.py,bench_rest_jobs.py] [--quick]

--quick skips the long data-generating scripts (the leaderboard at 200,000 entries and the 1 GiB transfer)."""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
# (title, script, arguments, long): long scripts are skipped by --quick.
SCRIPTS = [
    (
        "registry write cycle vs MLflow, request overhead, web RSS (issue 16)",
        "bench_api.py",
        [],
        False,
    ),
    (
        "job submission over REST vs raw Celery, one job per request and batches; idle worker RSS (issue 16)",
        "bench_rest_jobs.py",
        [],
        False,
    ),
    ("job pipeline vs raw Celery (SPEC §6): 2,000 jobs submitted in batches of 500", "bench_pipeline.py", [], False),
    (
        "job pipeline vs raw Celery: the same, one job_submit call per job",
        "bench_pipeline.py",
        ["--batch", "1", "--rounds", "1", "--idle", "0"],
        False,
    ),
    ("where a job's time goes, step by step", "breakdown_pipeline.py", [], False),
    ("audited writes, 4 writers vs 1, and audit_verify (issue 16)", "bench_audit.py", [], False),
    (
        "what a submission reads as the history grows: the quota check, the queue ETA (issue 16)",
        "bench_history.py",
        [],
        False,
    ),
    ("leaderboard API vs bare SQL, and 10x growth (SPEC §6)", "bench_leaderboard.py", [], True),
    (
        "1 GiB resumable upload and download vs a static file server, web worker RSS (issue 13)",
        "bench_transfers.py",
        [],
        True,
    ),
]

# What each key measures and its target, for the table (a RATIO line's own target= wins).
METRICS: dict[str, tuple[str, str]] = {
    "write_cycle_vs_mlflow_1c": ("registry write cycle vs MLflow, 1 client", ">=2"),
    "write_cycle_vs_mlflow_4c": ("registry write cycle vs MLflow, 4 threads", ">=2"),
    "me_vs_healthz": ("GET /api/v1/me/ p50 vs /healthz", "<=2"),
    "revision_vs_healthz": ("revision detail p50 vs /healthz", "<=3"),
    "job_vs_healthz": ("job detail p50 vs /healthz", "<=3"),
    "variant_list_vs_healthz": ("variant list (20) p50 vs /healthz", ""),
    "web_rss_mib": ("web worker RSS (MiB)", "<150"),
    "me_vs_healthz_make_run": ("make run: GET /api/v1/me/ p50 vs /healthz", "<=2"),
    "revision_vs_healthz_make_run": ("make run: revision detail p50 vs /healthz", "<=3"),
    "job_vs_healthz_make_run": ("make run: job detail p50 vs /healthz", "<=3"),
    "variant_list_vs_healthz_make_run": ("make run: variant list (20) p50 vs /healthz", ""),
    "rest_submit_vs_raw_celery": ("REST job per request (4 clients) vs raw Celery", ">=0.3"),
    "rest_submit_keepalive_vs_raw_celery": ("REST job per request, keep-alive clients, vs raw Celery", ""),
    "rest_batch_vs_raw_celery": ("REST batches vs raw Celery", ">=0.8"),
    "idle_worker_rss_mib": ("idle worker RSS (MiB)", ""),
    "service_batch_vs_raw_celery": ("service-layer batches vs raw Celery", ">=0.5"),
    "service_submit_vs_raw_celery": ("service-layer job_submit per job vs raw Celery", ""),
    "quota_check_50000_vs_1000": ("quota check, 50,000 jobs in the day vs 1,000", ""),
    "quota_check_vs_job_sum_50000": ("quota check vs a sum over the day's 50,000 jobs", ""),
    "job_finish_64_with_vs_without_usage_triggers": ("finishing 64 jobs, with the usage triggers vs without", ""),
    "queue_eta_with_vs_without_recent_index": ("queued job's ETA at 200,000 finished jobs, index vs none", ""),
    "leaderboard_api_vs_sql": ("leaderboard top-100 API vs bare SQL", "<=3"),
    "leaderboard_growth_10x": ("leaderboard 10x data cost", "<=2"),
    "download_vs_static": ("1 GiB download vs static server", ">=0.5"),
    "transfer_web_peak_rss_mib": ("web worker peak RSS in 1 GiB transfers (MiB)", "<150"),
    "audit_4_vs_1": ("audited writes, 4 writer threads vs 1", ">=2.5"),
    "audit_4_vs_1_without_audit": ("the same writes without the audit event, threads (ceiling)", ""),
    "audit_4_vs_1_processes": ("audited writes, 4 writer processes vs 1", ">=2.5"),
    "audit_4_vs_1_processes_without_audit": ("the same writes without the audit event, processes (ceiling)", ""),
}
RATIO_RE = re.compile(r"^RATIO (\S+) (\S+)(.*)$")


def met(value: float, target: str) -> str:
    match = re.fullmatch(r"(>=|<=|<|>)\s*([0-9.]+)", target.strip())
    if not match:
        return "-"
    op, bound = match.group(1), float(match.group(2))
    ok = {">=": value >= bound, "<=": value <= bound, "<": value < bound, ">": value > bound}[op]
    return "yes" if ok else "NO"


def table(rows: list[dict[str, str]]) -> str:
    header = ["metric", "ours", "baseline", "ratio", "target", "met?"]
    body = [[r["metric"], r["ours"], r["baseline"], r["ratio"], r["target"], r["met"]] for r in rows]
    widths = [max(len(str(line[i])) for line in [header, *body]) for i in range(len(header))]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)) + " |" for line in body]
    return "\n".join(lines)


def parse(line: str, script: str) -> dict[str, str] | None:
    match = RATIO_RE.match(line.strip())
    if not match:
        return None
    key, value = match.group(1), float(match.group(2))
    fields = dict(part.split("=", 1) for part in match.group(3).split() if "=" in part)
    title, default_target = METRICS.get(key, (key, ""))
    target = fields.get("target", default_target)
    unit = fields.get("unit", "").replace("_", " ")

    def with_unit(name: str) -> str:
        return f"{fields[name]} {unit}".strip() if name in fields else "-"

    return {
        "key": key,
        "metric": title,
        "ours": with_unit("ours"),
        "baseline": with_unit("baseline"),
        # An absolute measure (a memory size) has no baseline: its value is in `ours`.
        "ratio": f"{value:.2f}" if "baseline" in fields or "ours" not in fields else "-",
        "target": target or "-",
        "met": met(value, target),
        "script": script,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="comma-separated script names to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="skip the long data-generating scripts")
    args = parser.parse_args()
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    env = {
        **os.environ,
        "DATABASE_URL": os.environ.get("DATABASE_URL", "postgres://root@127.0.0.1:5432/bench"),
        "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/11"),
        "PYTHONPATH": f"{ROOT / 'platform'}:{ROOT}",
        "PYTHONUNBUFFERED": "1",
    }
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    failures = 0
    rows: list[dict[str, str]] = []
    for title, script, script_args, long in SCRIPTS:
        if (only and script not in only) or (args.quick and long and not only):
            continue
        print(f"\n=== {title}: {script} {' '.join(script_args)}".rstrip(), flush=True)
        proc = subprocess.Popen(
            [sys.executable, str(HERE / script), *script_args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", flush=True)
            row = parse(line, script)
            if row is not None:
                rows.append(row)
        rc = proc.wait()
        if rc != 0:
            print(f"!! {script} exited with {rc}", flush=True)
            failures += 1
    cpus = os.cpu_count()
    print(
        f"\n=== make bench, {started}, {platform.machine()} {cpus} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}, database {env['DATABASE_URL'].rsplit('/', 1)[0]}/..., broker "
        f"{env['CELERY_BROKER_URL'].split('://')[0]}"
    )
    print(table(rows) if rows else "(no RATIO lines)")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
