"""Where a request's time goes (issue 16): the API's hot GETs and the registry write cycle, in process, through
Django's full handler (every middleware, authentication, throttles, the view, the serializer), with production
settings (DEBUG off). For each request: wall and CPU time per call, the queries it makes, and a cProfile of the slowest
functions by cumulative time. It asserts nothing.

    DATABASE_URL=postgres://root@127.0.0.1:5432/<db> CELERY_BROKER_URL=redis://127.0.0.1:6379/<n> \\
        python tests/perf/profile_requests.py [--calls 300] [--top 25] [--only me,revision] [--sql]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parents[2] / "platform"), str(Path(__file__).resolve().parents[2])]
WORK = Path(tempfile.mkdtemp(prefix="mc-profile-"))
for key, value in {
    "DJANGO_SETTINGS_MODULE": "modelcommons.settings.prod",
    "SECRET_KEY": "profile-" + "x" * 50,
    "ALLOWED_HOSTS": "testserver,127.0.0.1",
    "SECURE_SSL_REDIRECT": "false",
    "MC_VAR_DIR": str(WORK / "var"),
    "MEDIA_ROOT": str(WORK / "media"),
    "MC_MAINTAINER_ONLY_RUNNERS": "",
    "THROTTLE_USER": "1000000/min",
    "THROTTLE_JOBS": "1000000/min",
}.items():
    os.environ[key] = value

from tests.perf.bench_api import CARD, make_world, safetensors_kib  # noqa: E402
from tests.perf.common import create_database, destroy_database  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--only", default="")
    parser.add_argument("--sql", action="store_true", help="print each request's queries, with their median time")
    parser.add_argument("--sort", default="cumulative")
    parser.add_argument("--callees", default="", help="also print what the functions matching this regex call")
    parser.add_argument("--batch", type=int, default=500, help="jobs per POST /api/v1/jobs/batch/")
    args = parser.parse_args()
    old_name, _ = create_database()
    try:
        from django.db import connection
        from django.test import Client

        world = make_world()
        auth = {"HTTP_AUTHORIZATION": f"Bearer {world['token']}"}
        client = Client()
        blob = safetensors_kib()

        def write_cycle() -> None:
            from django.core.files.uploadedfile import SimpleUploadedFile

            name = f"p-{uuid.uuid4().hex[:10]}"
            body = {
                "name": name,
                "relation": "finetune",
                "parents": [world["original"]],
                "license": "apache-2.0",
                "parameters": 1000,
                "summary": "s",
                "card": CARD,
            }
            r = client.post("/api/v1/variants/", body, content_type="application/json", **auth)
            assert r.status_code == 201, r.content
            base = f"/api/v1/variants/alice/{name}"
            r = client.post(
                f"{base}/revisions/1/artifacts/",
                {
                    "file": SimpleUploadedFile("model.safetensors", blob),
                    "path": "model.safetensors",
                    "format": "safetensors",
                },
                **auth,
            )
            assert r.status_code == 201, r.content
            r = client.patch(f"{base}/", {"summary": "p"}, content_type="application/json", **auth)
            assert r.status_code == 200, r.content
            r = client.get(f"{base}/revisions/1/", **auth)
            assert r.status_code == 200, r.content

        def get(path: str, headers: dict[str, str]) -> Any:
            def call() -> None:
                r = client.get(path, **headers)
                assert r.status_code == 200, (path, r.status_code, r.content[:300])

            return call

        seeds = iter(range(10**9))

        def job_submit() -> None:
            body = {"variant": world["original"], "benchmark": "noop", "config": {"seed": next(seeds)}}
            r = client.post("/api/v1/jobs/", body, content_type="application/json", **auth)
            assert r.status_code == 201, r.content

        def job_batch() -> None:
            jobs = [
                {"variant": world["original"], "benchmark": "noop", "config": {"seed": next(seeds)}}
                for _ in range(args.batch)
            ]
            r = client.post("/api/v1/jobs/batch/", {"jobs": jobs}, content_type="application/json", **auth)
            assert r.status_code == 201, r.content

        cases = {
            "healthz": get("/healthz", {}),
            "me": get("/api/v1/me/", auth),
            "revision": get(f"/api/v1/variants/{world['original']}/revisions/1/", auth),
            "job": get(f"/api/v1/jobs/{world['job']}/", auth),
            "variant_list": get("/api/v1/variants/", auth),
            "write_cycle": write_cycle,
            "job_submit": job_submit,
            "job_batch": job_batch,
        }
        only = {k for k in args.only.split(",") if k}
        for key, call in cases.items():
            if only and key not in only:
                continue
            fewer = {"write_cycle": max(10, args.calls // 10), "job_batch": max(3, args.calls // 100)}
            calls = fewer.get(key, args.calls)
            for _ in range(5):
                call()
            captured: list[str] = []
            timings: list[list[float]] = []  # per statement of the call, its wall time in each of 10 calls

            def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
                started = time.perf_counter()
                try:
                    return execute(sql, params, many, context)
                finally:
                    index = len(captured)
                    captured.append(sql)
                    if index >= len(timings):
                        timings.append([])
                    timings[index].append(time.perf_counter() - started)

            with connection.execute_wrapper(record):
                for _ in range(10):
                    captured.clear()
                    call()
            started, cpu = time.perf_counter(), time.process_time()
            for _ in range(calls):
                call()
            plain = (time.perf_counter() - started) / calls
            cpu = (time.process_time() - cpu) / calls
            profile = cProfile.Profile()
            profile.enable()
            for _ in range(calls):
                call()
            profile.disable()
            out = io.StringIO()
            stats = pstats.Stats(profile, stream=out).sort_stats(args.sort)
            stats.print_stats(args.top)
            if args.callees:
                stats.print_callees(args.callees)
            per_call = f"{plain * 1000:.2f} ms per call ({cpu * 1000:.2f} ms of CPU)"
            print(f"\n===== {key}: {per_call}, {len(captured)} queries")
            if args.sql:
                for sql, times in zip(captured, timings):  # the median of the 10 calls, from the driver's side
                    print(f"  {sorted(times)[len(times) // 2] * 1000:6.2f} ms  {sql[:300]}")
            print("\n".join(line for line in out.getvalue().splitlines() if line.strip())[:12000])
        return 0
    finally:
        destroy_database(old_name)


if __name__ == "__main__":
    raise SystemExit(main())
