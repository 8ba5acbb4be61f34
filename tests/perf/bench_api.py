"""Registry write cycle against MLflow, request overhead and the web process's memory (issue 16, SPEC §6 wave 2).
Run by `make bench`; it prints numbers and `RATIO` lines, it asserts nothing.

    DATABASE_URL=postgres://root@127.0.0.1:5432/<db> CELERY_BROKER_URL=redis://127.0.0.1:6379/<n> \\
        python tests/perf/bench_api.py [--seconds 6] [--rounds 3] [--samples 200] [--mlflow-workers 4]

1. Creates a throw-away database (`test_<db>`, dropped at the end) with a published original, alice with a
   read/write/jobs token, a `noop` benchmark and one job, and starts the Procfile's web process (gunicorn, its
   worker class, WEB_CONCURRENCY processes) with production settings (DEBUG off) on it.
2. Installs MLflow in a venv of its own when missing (MLFLOW_VENV, default var/mlflow-venv; `pip install mlflow
   psycopg2-binary`), prints its version, and starts `mlflow server` on loopback with a fresh PostgreSQL database
   (`bench_mlflow` on the same server; MLFLOW_DB to change it) and `--mlflow-workers` processes (MLflow's default).
3. Write cycle, the same client code for both (`requests`, a new connection per request), timed for `--seconds`
   with 1 client and with 4 threads, `--rounds` times alternating the two servers (the median is reported):
   - ours: create a variant, upload a 1 KiB safetensors file (multipart), PATCH the variant, GET the revision;
   - MLflow: create a run, log a batch of 5 metrics, create a model version of it, set a tag on the run.
4. Request overhead: `--samples` GETs of each of /healthz, /api/v1/me/, a revision detail, a job detail and the
   variant list (20 rows), interleaved, one connection each; p50 of each and its ratio to /healthz.
5. The RSS of each web worker process after all that (and its peak).
6. The request overhead of 4. again under `make run`'s configuration (`--skip-make-run` to leave it out): the same
   Procfile web process with the development settings (DEBUG on), a fresh SQLite database migrated and seeded
   with the same world, the database cache and the filesystem broker; only the throttle rates are raised.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parents[2] / "platform"), str(Path(__file__).resolve().parents[2])]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "modelcommons.settings.test")
WORK = Path(tempfile.mkdtemp(prefix="mc-bench-api-"))
os.environ.setdefault("MC_VAR_DIR", str(WORK / "var"))
# alice submits the job whose detail is read; noop is a maintainers' runner in production.
os.environ.setdefault("MC_MAINTAINER_ONLY_RUNNERS", "")

import requests  # noqa: E402

from tests.perf.common import (  # noqa: E402
    ROOT,
    create_database,
    database_url,
    destroy_database,
    median,
    percentile,
    production_env,
    ratio_line,
    rss_mib,
    wait_children,
)

CARD = (
    "# A bench model\n\nA small model registered by the API benchmark. It exists so that the card is long enough "
    "for the registry's rules.\n\n## Intended use\nBenchmarks.\n\n## Limitations\nNone worth knowing.\n"
)


def safetensors_kib() -> bytes:
    """A valid safetensors file of exactly 1 KiB: one uint8 tensor after the header."""
    header = json.dumps({"w": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}).encode()
    data_len = 1024 - 8 - len(header) - 8
    header = json.dumps({"w": {"dtype": "U8", "shape": [data_len], "data_offsets": [0, data_len]}}).encode()
    header += b" " * (1024 - 8 - len(header) - data_len)
    blob = struct.pack("<Q", len(header)) + header + bytes(range(256)) * (data_len // 256) + b"\0" * (data_len % 256)
    assert len(blob) == 1024, len(blob)
    return blob


def make_world() -> dict[str, Any]:
    from apps.accounts.services import token_create, user_set_roles
    from apps.benchmarks.services import benchmark_create, job_submit
    from apps.registry.tests.factories import make_original
    from tests.factories import UserFactory

    maintainer = UserFactory(username="maintainer")
    user_set_roles(user=maintainer, roles=["maintainer"], actor=None)
    alice = UserFactory(username="alice", max_active_jobs=10**6, daily_compute_seconds=10**9)
    original = make_original(maintainer)
    token = token_create(user=alice, name="bench", scopes=["read", "write", "jobs"])[1]
    benchmark = benchmark_create(
        actor=maintainer, slug="noop", name="No-op", runner="noop", metrics=[{"name": "ok", "primary": True}]
    )
    job, _ = job_submit(actor=alice, revision=original.current_revision, benchmark=benchmark, config={})
    return {"token": token, "original": original.full_name, "job": job.pk}


# --- the servers ---------------------------------------------------------------------------------------------


class Server:
    def __init__(self, argv: list[str], env: dict[str, str], log: Path, url: str) -> None:
        self.url = url
        self.log_path = log
        self.log = log.open("w")
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_ready(self, path: str, timeout: float = 120) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log_path.read_text()[-4000:]}")
            try:
                if requests.get(self.url + path, timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"server not ready:\n{self.log_path.read_text()[-4000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()


def start_ours(database: str, extra: str = "") -> Server:
    from tests.live import free_port, web_command

    port = free_port()
    env = production_env(database, WORK / "var", PORT=str(port))
    env.setdefault("WEB_CONCURRENCY", "2")
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    command = web_command().replace(" --access-logfile -", f" --access-logfile {WORK / 'access.log'}")
    command = f"{command} {extra}".strip()  # later gunicorn options override the Procfile's
    print(f"ours: {command.replace('${PORT:-8000}', str(port))}  (WEB_CONCURRENCY={env['WEB_CONCURRENCY']})")
    return Server(["bash", "-c", f"exec {command}"], env, WORK / "gunicorn.log", f"http://127.0.0.1:{port}")


def mlflow_venv() -> Path:
    venv = Path(os.environ.get("MLFLOW_VENV") or ROOT / "var" / "mlflow-venv")
    if not (venv / "bin" / "mlflow").exists():
        print(f"installing MLflow into {venv} (pip install mlflow psycopg2-binary)", flush=True)
        subprocess.check_call(["python3", "-m", "venv", str(venv)])
        subprocess.check_call([str(venv / "bin" / "pip"), "install", "-q", "mlflow", "psycopg2-binary"])
    return venv


def fresh_mlflow_database() -> str:
    """Drop and create MLflow's database on our PostgreSQL server; its URL in SQLAlchemy's spelling."""
    import psycopg
    from django.db import connection

    name = os.environ.get("MLFLOW_DB", "bench_mlflow")
    s = connection.settings_dict
    params = {
        "host": s.get("HOST") or "127.0.0.1",
        "port": s.get("PORT") or 5432,
        "user": s.get("USER") or "root",
        "dbname": "postgres",
    }
    if s.get("PASSWORD"):
        params["password"] = s["PASSWORD"]
    with psycopg.connect(**params, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return database_url(name).replace("postgres://", "postgresql+psycopg2://", 1)


def start_mlflow(workers: int) -> Server:
    from tests.live import free_port

    venv = mlflow_venv()
    version = subprocess.check_output([str(venv / "bin" / "mlflow"), "--version"], text=True).strip()
    print(f"MLflow: {version} ({venv})")
    port = free_port()
    uri = fresh_mlflow_database()
    argv = [
        str(venv / "bin" / "mlflow"),
        "server",
        "--backend-store-uri",
        uri,
        "--default-artifact-root",
        str(WORK / "mlartifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    print(f"MLflow: mlflow server --backend-store-uri {uri} --host 127.0.0.1 --workers {workers}")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE")}
    return Server(argv, env, WORK / "mlflow.log", f"http://127.0.0.1:{port}")


# --- the cycles ------------------------------------------------------------------------------------------------


def check(response: requests.Response, *codes: int) -> dict[str, Any]:
    if response.status_code not in codes:
        raise RuntimeError(f"{response.request.method} {response.url}: {response.status_code} {response.text[:500]}")
    return response.json() if response.content else {}


def our_cycle(url: str, token: str, parent: str, blob: bytes) -> Callable[[], None]:
    auth = {"Authorization": f"Bearer {token}"}

    def cycle() -> None:
        name = f"bench-{uuid.uuid4().hex[:12]}"
        body = {
            "name": name,
            "relation": "finetune",
            "parents": [parent],
            "license": "apache-2.0",
            "parameters": 1000,
            "task": "text-generation",
            "summary": "A variant registered by the bench.",
            "card": CARD,
        }
        variant = check(requests.post(f"{url}/api/v1/variants/", json=body, headers=auth, timeout=60), 201)
        base = f"{url}/api/v1/variants/{variant['full_name']}"
        number = variant["current_revision"]
        check(
            requests.post(
                f"{base}/revisions/{number}/artifacts/",
                files={"file": ("model.safetensors", blob, "application/octet-stream")},
                data={"path": "model.safetensors", "format": "safetensors"},
                headers=auth,
                timeout=60,
            ),
            201,
        )
        check(requests.patch(f"{base}/", json={"summary": "Patched by the bench."}, headers=auth, timeout=60), 200)
        check(requests.get(f"{base}/revisions/{number}/", headers=auth, timeout=60), 200)

    return cycle


def mlflow_cycle(url: str, experiment_id: str, model: str) -> Callable[[], None]:
    api = f"{url}/api/2.0/mlflow"

    def cycle() -> None:
        now = int(time.time() * 1000)
        run = check(requests.post(f"{api}/runs/create", json={"experiment_id": experiment_id, "start_time": now}), 200)
        run_id = run["run"]["info"]["run_id"]
        metrics = [{"key": f"m{i}", "value": 0.5 + i, "timestamp": now, "step": 0} for i in range(5)]
        check(requests.post(f"{api}/runs/log-batch", json={"run_id": run_id, "metrics": metrics}), 200)
        check(
            requests.post(
                f"{api}/model-versions/create",
                json={"name": model, "source": f"runs:/{run_id}/model", "run_id": run_id},
            ),
            200,
        )
        check(requests.post(f"{api}/runs/set-tag", json={"run_id": run_id, "key": "stage", "value": "bench"}), 200)

    return cycle


def mlflow_setup(url: str) -> tuple[str, str]:
    api = f"{url}/api/2.0/mlflow"
    experiment = check(requests.post(f"{api}/experiments/create", json={"name": f"bench-{uuid.uuid4().hex[:8]}"}), 200)
    model = f"bench-model-{uuid.uuid4().hex[:8]}"
    check(requests.post(f"{api}/registered-models/create", json={"name": model}), 200)
    return experiment["experiment_id"], model


def cycles_per_s(cycle: Callable[[], None], threads: int, seconds: float, name: str = "") -> float:
    """Cycles completed per second by `threads` clients, each running cycles back to back for `seconds`. A cycle
    whose connection the server drops is not counted (and reported); more than a few of those end the run."""
    done = [0] * threads
    dropped = [0]
    errors: list[BaseException] = []
    stop_at = time.perf_counter() + seconds

    def client(index: int) -> None:
        try:
            while time.perf_counter() < stop_at:
                try:
                    cycle()
                except requests.ConnectionError:
                    dropped[0] += 1
                    if dropped[0] > 5 + sum(done) // 10:
                        raise
                    continue
                done[index] += 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    started = time.perf_counter()
    pool = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    if dropped[0]:
        print(f"  ({name}: {dropped[0]} cycle(s) not counted, the server dropped the connection)", flush=True)
    return sum(done) / elapsed


def overhead(url: str, token: str, world: dict[str, Any], samples: int) -> dict[str, float]:
    auth = {"Authorization": f"Bearer {token}"}
    paths = {
        "healthz": ("/healthz", {}),
        "me": ("/api/v1/me/", auth),
        "revision": (f"/api/v1/variants/{world['original']}/revisions/1/", auth),
        "job": (f"/api/v1/jobs/{world['job']}/", auth),
        "variant_list": ("/api/v1/variants/", auth),
    }
    times: dict[str, list[float]] = {key: [] for key in paths}
    for _ in range(samples + 10):
        for key, (path, headers) in paths.items():
            started = time.perf_counter()
            response = requests.get(url + path, headers=headers, timeout=60)
            elapsed = time.perf_counter() - started
            if response.status_code != 200:
                raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:300]}")
            times[key].append(elapsed)
    return {key: percentile(values[10:], 0.5) for key, values in times.items()}


def start_make_run() -> tuple[Server, dict[str, Any]]:
    """The web process as `make run` starts it (the Procfile, the development settings, SQLite, the database cache,
    the filesystem broker) on a fresh data folder, with bench_api's world in it."""
    from tests.live import free_port, web_command

    var = WORK / "make-run"
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CACHE_URL", "DJANGO_SETTINGS_MODULE")
    }
    env.update(
        MC_VAR_DIR=str(var),
        PYTHONPATH=f"{ROOT / 'platform'}:{ROOT}",
        PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
        MC_MAINTAINER_ONLY_RUNNERS="",
        THROTTLE_USER="1000000/min",
        THROTTLE_ANON="1000000/min",
        THROTTLE_JOBS="1000000/min",
    )
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    code = "import json; from tests.perf.bench_api import make_world; print('WORLD=' + json.dumps(make_world()))"
    done = subprocess.run([*manage, "shell", "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0 or "WORLD=" not in done.stdout:
        raise RuntimeError(f"seeding the make run world failed:\n{done.stderr[-3000:]}")
    world = json.loads(done.stdout.split("WORLD=", 1)[1].splitlines()[0])
    port = free_port()
    env["PORT"] = str(port)
    command = web_command().replace(" --access-logfile -", "")
    print(f"make run's web process: {command.replace('${PORT:-8000}', str(port))}  (dev settings, SQLite)")
    server = Server(["bash", "-c", f"exec {command}"], env, WORK / "make-run.log", f"http://127.0.0.1:{port}")
    return server, world


def print_overhead(p50: dict[str, float], samples: int, suffix: str = "") -> None:
    base = p50["healthz"]
    print(f"request overhead{suffix.replace('_', ' ')}, p50 of {samples} GETs each, a new connection each:")
    for key, value in p50.items():
        print(f"  {key:13s} {value * 1000:6.2f} ms  {value / base:5.2f}x /healthz")
    targets = {"me": "<=2", "revision": "<=3", "job": "<=3", "variant_list": ""}
    for key, target in targets.items():
        ratio_line(
            f"{key}_vs_healthz{suffix}",
            p50[key] / base,
            ours=p50[key] * 1000,
            baseline=base * 1000,
            unit="ms",
            target=target,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="each timed cycle run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=200, help="GETs of each path for the overhead p50s")
    parser.add_argument("--mlflow-workers", type=int, default=4, help="MLflow's server processes (its default)")
    parser.add_argument("--skip-mlflow", action="store_true")
    parser.add_argument("--skip-make-run", action="store_true", help="leave out the overhead under make run")
    parser.add_argument("--web-args", default="", help="gunicorn options added to the Procfile's (to compare)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))

    old_name, database = create_database()
    servers: list[Server] = []
    try:
        world = make_world()
        from django.db import connection

        connection.close()
        ours = start_ours(database, args.web_args)
        servers.append(ours)
        ours.wait_ready("/healthz")
        blob = safetensors_kib()
        our = our_cycle(ours.url, world["token"], world["original"], blob)
        mlflow = None
        if not args.skip_mlflow:
            server = start_mlflow(args.mlflow_workers)
            servers.append(server)
            server.wait_ready("/health")
            experiment_id, model = mlflow_setup(server.url)
            mlflow = mlflow_cycle(server.url, experiment_id, model)
        # warm every worker process of both (imports, connection pools, caches; MLflow's workers initialise their
        # stores on their first requests) before timing
        for name, cycle in (("ours", our), ("mlflow", mlflow)):
            if cycle is not None:
                cycles_per_s(cycle, 4, args.seconds, name)
                cycles_per_s(cycle, 1, args.seconds / 2, name)

        results: dict[tuple[str, int], list[float]] = {}
        for r in range(args.rounds):
            for threads in (1, 4):
                for name, cycle in (("ours", our), ("mlflow", mlflow)):
                    if cycle is None:
                        continue
                    rate = cycles_per_s(cycle, threads, args.seconds, name)
                    results.setdefault((name, threads), []).append(rate)
                    print(f"round {r + 1}: {name:6s} {threads} client(s): {rate:6.1f} cycles/s", flush=True)
        for threads in (1, 4) if results else ():  # --rounds 0: the request overhead alone
            ours_rate = median(results[("ours", threads)])
            if mlflow is None:
                print(f"write cycle, {threads} client(s): ours {ours_rate:.1f} cycles/s")
                continue
            theirs = median(results[("mlflow", threads)])
            print(
                f"write cycle, {threads} client(s): ours {ours_rate:.1f} cycles/s, MLflow {theirs:.1f} cycles/s, "
                f"ratio {ours_rate / theirs:.2f} (target >= 2)"
            )
            ratio_line(
                f"write_cycle_vs_mlflow_{threads}c",
                ours_rate / theirs,
                ours=ours_rate,
                baseline=theirs,
                unit="cycles/s",
                target=">=2",
            )

        print_overhead(overhead(ours.url, world["token"], world, args.samples), args.samples)

        workers = wait_children(ours.proc.pid, 1)
        for pid in workers:
            print(f"web worker {pid}: RSS {rss_mib(pid):.0f} MiB now, peak {rss_mib(pid, 'VmHWM'):.0f} MiB")
        rss = max(rss_mib(pid) for pid in workers)
        ratio_line("web_rss_mib", rss, ours=rss, unit="MiB", target="<150")
        if not args.skip_make_run:
            for server in reversed(servers):  # alone on the machine
                server.stop()
            servers.clear()
            dev, dev_world = start_make_run()
            servers.append(dev)
            dev.wait_ready("/healthz")
            p50 = overhead(dev.url, dev_world["token"], dev_world, args.samples)
            print_overhead(p50, args.samples, "_make_run")
        return 0
    finally:
        for server in reversed(servers):
            server.stop()
        destroy_database(old_name)
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
