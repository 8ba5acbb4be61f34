"""A live platform for the `mc` tests: a real web server (gunicorn, as the Procfile runs it) and a real Celery
worker on the test database, started once per module and stopped (by PID) at its end (`platform_processes`); each
test gets the demo world committed for it and flushed after it, once the worker is idle (`live_platform`).

The tests talk to it only over HTTP, through the CLI (click's CliRunner, in-process) or the library."""

from __future__ import annotations

import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.live import WebServer

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "fixtures" / "digits"
PASSWORD = "commons-demo"
CARD = (
    "# {name}\n\nAn int8 dynamic quantization of commons/digits-mlp, registered by the mc client tests.\n\n"
    "## Intended use\nClassifying 8x8 digit images in demos.\n\n## Limitations\nToy data; not for production.\n\n"
    "## Training data\nscikit-learn's bundled digits set (the parent's training split).\n\n"
    "## Evaluation\nThe digits benchmark of the platform, on the held-out split.\n"
)
# Server and worker settings of the module's platform.
PLATFORM_ENV = {
    "MC_SPOT_CHECKS": "0",  # no automatic re-runs: the one worker runs only what the tests submit
    "MC_MAINTAINER_ONLY_RUNNERS": "none",  # contributors may submit the noop drills here
    "MC_JOB_PROGRESS_MIN_INTERVAL_S": "0.1",
}


@dataclass
class LivePlatform:
    url: str
    media: Path
    tokens: dict[str, str]
    server: WebServer
    worker: Any

    def logs(self) -> str:
        return f"--- web ---\n{self.server.output()[-3000:]}\n--- worker ---\n{self.worker.output()[-3000:]}"


def _build_world(media: Path) -> dict[str, str]:
    """The demo's accounts, the digits benchmark with commons/digits-mlp (published) and alice's draft
    alice/digits-mlp-int8 (the parts of seed_demo the tests use), a noop benchmark for the job drills, and a token per
    account."""
    from apps.accounts.services import token_create
    from apps.benchmarks.services import benchmark_create
    from apps.demo.runs import ensure_benchmarks
    from apps.demo.seed import DIGITS_CARD, _ensure_variant, _publish, ensure_accounts
    from django.test import override_settings

    users = ensure_accounts(PASSWORD)
    ensure_benchmarks(users["maintainer"], only={"digits"})
    with override_settings(MEDIA_ROOT=str(media)):
        base = _ensure_variant(
            owner=users["commons"],
            name="digits-mlp",
            relation="original",
            parents=[],
            artifact="digits-mlp.onnx",
            actor=users["maintainer"],
            fields={
                "license": "apache-2.0",
                "parameters": 4810,
                "precision": "fp32",
                "task": "image-classification",
                "summary": "The demo's digits MLP.",
                "card": DIGITS_CARD,
            },
        )
        assert base.current_revision is not None
        _publish(base.current_revision, users["maintainer"])
        _ensure_variant(
            owner=users["alice"],
            name="digits-mlp-int8",
            relation="quantized",
            parents=[base],
            artifact="digits-mlp-int8.onnx",
            actor=users["alice"],
            fields={
                "license": "apache-2.0",
                "parameters": 4810,
                "precision": "int8",
                "task": "image-classification",
                "card": DIGITS_CARD,
            },
        )
    benchmark_create(
        actor=users["maintainer"],
        slug="noop",
        name="No-op drill",
        runner="noop",
        metrics=[{"name": "ok", "primary": True}],
        max_attempts=1,
        timeout_s=120,
    )
    tokens = {}
    for name in ("alice", "bob", "reviewer1", "reviewer2", "maintainer"):
        scopes = ["read", "write", "jobs", "review"] + (["admin"] if name == "maintainer" else [])
        tokens[name] = token_create(user=users[name], name=f"mc-tests-{uuid.uuid4().hex[:6]}", scopes=scopes)[1]
    tokens["alice-read"] = token_create(user=users["alice"], name="read-only", scopes=["read"])[1]
    return tokens


@dataclass
class Processes:
    server: WebServer
    worker: Any
    media: Path


@pytest.fixture(scope="module")
def platform_processes(django_db_setup, tmp_path_factory) -> Iterator[Processes]:
    """The web server and the worker, once per module, on the test database and a media folder of the module."""
    from django.conf import settings
    from django.db import connection
    from django.db.backends.base.creation import TEST_DATABASE_PREFIX
    from tests.fixtures import WorkerProcess, _test_database_url, purge_broker

    # The name the test run gave the database: its TEST NAME where one is set (the SQLite file of the test settings,
    # or pytest-xdist's per-worker name), else Django's "test_" prefix on the configured name.
    name, test_name = connection.settings_dict["NAME"], connection.settings_dict["TEST"]["NAME"]
    assert name == test_name if test_name else name.startswith(TEST_DATABASE_PREFIX), "the test database is not set up"
    var = tmp_path_factory.mktemp("mc-platform")
    media = var / "media"
    media.mkdir()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "modelcommons.settings.test",
        "DATABASE_URL": _test_database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "MEDIA_ROOT": str(media),
        "MC_UPLOAD_TEMP_DIR": str(var / "uploads"),
        "MC_DOWNLOADS_KEY": f"mc-tests:{uuid.uuid4().hex}:downloads",
        # A cache of the module's own (shared by the web and worker processes): login failures and throttle counts
        # of earlier runs never carry over.
        "CACHE_URL": f"filecache://{var / 'cache'}",
        "PYTHONPATH": f"{ROOT / 'platform'}:{ROOT}",
        "HF_HUB_OFFLINE": "1",
        **PLATFORM_ENV,
    }
    purge_broker()
    server = WebServer(env, var / "web.log", extra_args="--timeout 120")
    worker = None
    try:
        worker = WorkerProcess(
            extra_env={
                k: env[k] for k in ("MEDIA_ROOT", "MC_UPLOAD_TEMP_DIR", "MC_DOWNLOADS_KEY", "CACHE_URL", *PLATFORM_ENV)
            }
        )
        server.wait_ready()
        worker.wait_ready()
        yield Processes(server=server, worker=worker, media=media)
    finally:
        server.stop()
        if worker is not None:
            worker.stop()
        purge_broker()
        shutil.rmtree(var, ignore_errors=True)


def wait_idle(worker: Any, timeout: float = 60) -> None:
    """Until the worker runs and holds no task and the queues are empty (twice in a row): what a finished job
    sets off (results, checklists, boards, notifications) is done before the test's data is flushed."""
    from modelcommons.celery import app

    node = f"{worker.name}@{socket.gethostname()}"
    inspect = app.control.inspect(destination=[node], timeout=2.0)
    quiet = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = any((inspect.active() or {}).get(node, [None])) or any((inspect.reserved() or {}).get(node, [None]))
        with app.connection_for_write() as conn:
            for queue in ("default", "bench.cpu", "webhooks"):
                try:
                    busy = busy or conn.default_channel.queue_declare(queue, passive=True).message_count > 0
                except Exception:  # noqa: BLE001 - a queue never declared holds nothing
                    pass
        quiet = 0 if busy else quiet + 1
        if quiet >= 2:
            return
        time.sleep(0.2)
    raise AssertionError(f"the worker is still busy after {timeout}s:\n{worker.output()[-3000:]}")


@pytest.fixture
def live_platform(platform_processes: Processes, transactional_db) -> Iterator[LivePlatform]:
    """The demo world, committed for this test (the server and the worker see it), on the module's platform;
    `transactional_db` flushes it when the test ends, once the worker is idle."""
    tokens = _build_world(platform_processes.media)
    yield LivePlatform(
        url=platform_processes.server.url,
        media=platform_processes.media,
        tokens=tokens,
        server=platform_processes.server,
        worker=platform_processes.worker,
    )
    wait_idle(platform_processes.worker)
