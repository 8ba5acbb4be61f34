"""Schemathesis with every check (`-c all`) against a live server, as a contributor and as a maintainer.

The server is the one `make run` starts (gunicorn serving modelcommons.wsgi with the development settings, so
DEBUG is on) on the test database, seeded with the demo world. The schemathesis CLI then runs all its phases
(examples, coverage, fuzzing, stateful) against `/api/schema/` with a personal access token: alice's
`read write jobs` token, and the maintainer's token with every scope. New endpoints are fuzzed automatically
because the schema is generated from the code; schemathesis.toml says which statuses count as expected.

Bounded for CI: each run has a fixed seed, at most MC_SCHEMATHESIS_MAX_EXAMPLES examples per operation and pass,
and a time budget of MC_SCHEMATHESIS_MAX_TIME seconds (fuzzing and stateful testing repeat until it is spent)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures import _test_database_url
from tests.live import WebServer

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parent.parent
MAX_TIME_S = int(os.environ.get("MC_SCHEMATHESIS_MAX_TIME", "90"))
MAX_EXAMPLES = int(os.environ.get("MC_SCHEMATHESIS_MAX_EXAMPLES", "10"))
SEED = os.environ.get("MC_SCHEMATHESIS_SEED", "20261203")
# A run must end on its own within its budget; this only stops a hung one.
HARD_LIMIT_S = MAX_TIME_S + 180


def server_env(var_dir: Path) -> dict[str, str]:
    """`make run`'s settings (development, DEBUG on) on the test database."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "modelcommons.settings.dev",
        "DEBUG": "true",
        "DATABASE_URL": _test_database_url(),
        "PYTHONPATH": f"{ROOT / 'platform'}:{ROOT}",
        # `make run`'s embedded broker (kombu's filesystem transport): nothing here runs the queued tasks.
        "CELERY_BROKER_URL": "filesystem://",
        "MC_VAR_DIR": str(var_dir),
        "MEDIA_ROOT": str(var_dir / "media"),
        # The fuzzer sends thousands of requests from one address: the throttles would answer most with 429.
        "THROTTLE_ANON": "1000000/min",
        "THROTTLE_USER": "1000000/min",
        "THROTTLE_TOKENS": "1000000/min",
        "THROTTLE_JOBS": "1000000/min",
    }


@pytest.fixture(scope="session")
def live_api(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[WebServer]:  # type: ignore[no-untyped-def]
    """One live server per test session (started on first use)."""
    var_dir = tmp_path_factory.mktemp("schemathesis-server")
    with django_db_blocker.unblock():
        env = server_env(var_dir)
        env.pop("CELERY_TASK_ALWAYS_EAGER", None)
        server = WebServer(env, var_dir / "gunicorn.log")
    try:
        server.wait_ready(path="/api/schema/")
        yield server
    finally:
        server.stop()


def failures_of(output: str) -> str:
    """The failures and the summary of a schemathesis run, for the assertion message."""
    start = output.find("=== FAILURES")
    text = output[start:] if start >= 0 else output
    return text if len(text) < 30_000 else f"{text[:20_000]}\n…\n{text[-10_000:]}"


def run_schemathesis(server: WebServer, token: str, report_dir: Path) -> tuple[int, str]:
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(ROOT / "schemathesis.toml"),
        "--no-color",
        "run",
        f"{server.url}/api/schema/",
        # No `--checks all`: every registered check is on by default, and a check named on the command line
        # overrides schemathesis.toml's per-operation `enabled = false` (the checklist's ST302 exception was
        # ignored, and a stateful run that created a revision and read its checklist failed).
        "--seed",
        SEED,
        "--max-examples",
        str(MAX_EXAMPLES),
        "--max-time",
        str(MAX_TIME_S),
        "--generation-database",
        "none",
        "--request-timeout",
        "30",
        "--header",
        f"Authorization: Bearer {token}",
        "--report",
        "junit",
        "--report-dir",
        str(report_dir),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=HARD_LIMIT_S, env=dict(os.environ))
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("username", "scopes"),
    [
        ("alice", ["read", "write", "jobs"]),
        ("maintainer", ["read", "write", "jobs", "review", "admin"]),
    ],
    ids=["contributor", "maintainer"],
)
def test_api_conforms_to_its_schema(live_api, tmp_path, username, scopes):  # type: ignore[no-untyped-def]
    from apps.accounts.models import User
    from apps.accounts.services import token_create
    from apps.demo.seed import seed_demo

    seed_demo("commons-demo")
    _, raw = token_create(user=User.objects.get(username=username), name="schemathesis", scopes=scopes)
    code, output = run_schemathesis(live_api, raw, tmp_path)
    summary = re.search(r"Test cases:\n\s*(.+)", output)
    print(f"schemathesis as {username}: {summary.group(1) if summary else output[-2000:]}")
    assert code == 0, (
        f"schemathesis as {username} ({' '.join(scopes)}) exited {code}:\n{failures_of(output)}"
        f"\n--- server log ---\n{live_api.output()[-3000:]}"
    )
