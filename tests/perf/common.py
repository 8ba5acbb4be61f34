"""What the benchmark scripts share: a throw-away database, the web process as production runs it, RSS readings,
percentiles, and the `RATIO` lines that run_all.py collects into one table.

A `RATIO` line is `RATIO <key> <value>` followed by optional `name=value` fields: `ours=`, `baseline=` (with their
unit in `unit=`) and `target=` (`>=2`, `<=3`, ...). run_all.py prints every one it sees; it knows the targets of the
SPEC's keys too, for lines that do not carry one."""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]


def ratio_line(
    key: str,
    value: float,
    *,
    ours: float | None = None,
    baseline: float | None = None,
    unit: str = "",
    target: str = "",
) -> None:
    """Print one `RATIO` line (and flush: run_all reads the output as it comes)."""
    fields = [f"RATIO {key} {value:.3f}"]
    if ours is not None:
        fields.append(f"ours={ours:.4g}")
    if baseline is not None:
        fields.append(f"baseline={baseline:.4g}")
    if unit:
        fields.append(f"unit={unit.replace(' ', '_')}")
    if target:
        fields.append(f"target={target}")
    print(" ".join(fields), flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def create_database() -> tuple[Any, str]:
    """Set Django up, create and migrate `test_<db>` (dropped by `destroy_database`); returns the old name and the
    URL of the new database, for the processes the bench starts."""
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    settings.DEBUG = False
    if connection.vendor != "postgresql":
        print(f"note: running on {connection.vendor}; the targets are measured on PostgreSQL (set DATABASE_URL)")
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    return old_name, database_url()


def destroy_database(old_name: Any) -> None:
    """Drop the throw-away database, ending first the sessions that processes the bench stopped may have left
    behind for a moment (PostgreSQL refuses to drop a database in use)."""
    from django.db import connection

    name = connection.settings_dict["NAME"]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                [name],
            )
    connection.close()
    connection.creation.destroy_test_db(old_name, verbosity=0)


def database_url(name: str | None = None) -> str:
    from django.db import connection

    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    auth = s.get("USER") or ""
    if s.get("PASSWORD"):
        auth += f":{s['PASSWORD']}"
    host = f"{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}"
    return f"postgres://{auth + '@' if auth else ''}{host}/{name or s['NAME']}"


def production_env(database: str, var_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a production web process (modelcommons.settings.prod: DEBUG off) on loopback, over
    plain HTTP. The throttles still run on every request; their rates are raised so that the bench, one user
    sending hundreds of requests a second, measures their cost without being refused."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "modelcommons.settings.prod",
        "DATABASE_URL": database,
        "SECRET_KEY": "bench-" + "x" * 50,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        "MC_VAR_DIR": str(var_dir),
        "MEDIA_ROOT": str(var_dir / "media"),
        "PYTHONPATH": f"{ROOT / 'platform'}:{ROOT}",
        "THROTTLE_USER": "1000000/min",
        "THROTTLE_ANON": "1000000/min",
        "THROTTLE_JOBS": "1000000/min",
        "MC_MAINTAINER_ONLY_RUNNERS": "",
        "MC_SPOT_CHECKS": "0",
        **extra,
    }


def children_of(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def wait_children(pid: int, count: int, timeout: float = 60) -> list[int]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        kids = children_of(pid)
        if len(kids) >= count:
            return kids
        time.sleep(0.2)
    raise RuntimeError(f"process {pid} has fewer than {count} children")


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of one process (VmRSS now, or VmHWM: its peak), in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")
