"""Shared pytest fixtures (registered from the root conftest)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.live import ManagedProcess, free_port

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def make_user(db):  # type: ignore[no-untyped-def]
    from apps.accounts.services import user_set_roles
    from tests.factories import UserFactory

    def make(username: str | None = None, roles: tuple[str, ...] = (), **kw: Any):  # type: ignore[no-untyped-def]
        user = UserFactory(**({"username": username} if username else {}), **kw)
        if roles:
            user_set_roles(user=user, roles=list(roles), actor=None)
        return user

    return make


@pytest.fixture
def alice(make_user):  # type: ignore[no-untyped-def]
    return make_user("alice")


@pytest.fixture
def bob(make_user):  # type: ignore[no-untyped-def]
    return make_user("bob")


@pytest.fixture
def reviewer(make_user):  # type: ignore[no-untyped-def]
    return make_user("reviewer1", roles=("reviewer",))


@pytest.fixture
def maintainer(make_user):  # type: ignore[no-untyped-def]
    return make_user("maintainer", roles=("maintainer",))


@pytest.fixture
def client_for():  # type: ignore[no-untyped-def]
    """An APIClient authenticated with a fresh bearer token of the given scopes."""
    from apps.accounts.services import token_create

    def make(user, scopes=("read", "write", "jobs", "review")):  # type: ignore[no-untyped-def]
        scopes = list(scopes)
        from apps.accounts.roles import is_maintainer

        if is_maintainer(user) and "admin" not in scopes:
            scopes.append("admin")
        _, raw = token_create(user=user, name=f"test-{uuid.uuid4().hex[:6]}", scopes=scopes)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        client.raw_token = raw  # type: ignore[attr-defined]
        return client

    return make


@pytest.fixture
def digits_world(db):  # type: ignore[no-untyped-def]
    """The demo world: accounts, commons/digits-mlp (published), alice's int8 and bob's pruned drafts."""
    from apps.demo.seed import seed_demo

    seed_demo("commons-demo")
    from apps.accounts.models import User
    from apps.benchmarks.models import Benchmark
    from apps.registry.models import Variant

    return {
        "users": {u.username: u for u in User.objects.all()},
        "benchmark": Benchmark.objects.get(slug="digits"),
        "base": Variant.objects.by_full_name("commons/digits-mlp").get(),
        "int8": Variant.objects.by_full_name("alice/digits-mlp-int8").get(),
        "pruned": Variant.objects.by_full_name("bob/digits-mlp-pruned").get(),
    }


def _test_database_url() -> str:
    from django.db import connection

    settings_dict = connection.settings_dict
    if settings_dict["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{settings_dict['NAME']}"
    user = settings_dict.get("USER") or ""
    password = settings_dict.get("PASSWORD") or ""
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{auth}{host}:{port}/{settings_dict['NAME']}"


class WorkerProcess(ManagedProcess):
    """A real `celery worker` subprocess on the configured broker, started and stopped by PID."""

    def __init__(
        self,
        queues: str = "default,bench.cpu,webhooks",
        concurrency: int = 1,
        name: str | None = None,
        extra_env: dict[str, str] | None = None,
    ):
        from django.conf import settings

        self.name = name or f"test-{uuid.uuid4().hex[:6]}"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "modelcommons.settings.test",
            "DATABASE_URL": _test_database_url(),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            # The filesystem broker's folder (SQLite runs): a worker given its own MC_VAR_DIR reads the same queues.
            "MC_BROKER_DIR": str(settings.BROKER_DIR),
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "PYTHONPATH": f"{ROOT / 'platform'}:{ROOT}",
            "HF_HUB_OFFLINE": "1",
            "MC_JOB_HEARTBEAT_S": "1",
            **(extra_env or {}),
        }
        argv = [sys.executable, "-m", "celery", "-A", "modelcommons", "worker", "-Q", queues, "-c", str(concurrency)]
        argv += ["-n", f"{self.name}@%h", "--loglevel", "INFO", "--without-gossip", "--without-mingle"]
        super().__init__(argv, env, Path(settings.VAR_DIR) / f"worker-{self.name}.log")

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log_path.read_text()[-4000:]}")
            if "ready." in self.log_path.read_text():
                return
            time.sleep(0.2)
        raise RuntimeError(f"worker not ready after {timeout}s:\n{self.log_path.read_text()[-4000:]}")


def purge_broker() -> None:
    from modelcommons.celery import app

    with app.connection_for_write() as conn:
        for queue in ("default", "bench.cpu", "bench.gpu", "webhooks"):
            try:
                conn.default_channel.queue_purge(queue)
            except Exception:  # noqa: BLE001 - a queue that does not exist yet has nothing to purge
                pass


@pytest.fixture
def celery_worker_process(transactional_db) -> Iterator[WorkerProcess]:  # type: ignore[no-untyped-def]
    purge_broker()
    worker = WorkerProcess()
    try:
        worker.wait_ready()
        yield worker
    finally:
        worker.stop()


def wait_for(predicate, timeout: float = 60, interval: float = 0.2, message: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


# --- Benchmark engine drills (issue 4): beat, a private Redis, several workers -------------------------------


class BeatProcess(ManagedProcess):
    """A real `celery beat` subprocess (recovery and dispatch ticks), started and stopped by PID."""

    def __init__(self, extra_env: dict[str, str] | None = None, broker_url: str | None = None):
        from django.conf import settings

        self.name = f"beat-{uuid.uuid4().hex[:6]}"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "modelcommons.settings.test",
            "DATABASE_URL": _test_database_url(),
            "CELERY_BROKER_URL": broker_url or settings.CELERY_BROKER_URL,
            "MC_BROKER_DIR": str(settings.BROKER_DIR),
            "PYTHONPATH": f"{ROOT / 'platform'}:{ROOT}",
            **(extra_env or {}),
        }
        schedule = Path(settings.VAR_DIR) / f"{self.name}-schedule"
        argv = [sys.executable, "-m", "celery", "-A", "modelcommons", "beat", "--loglevel", "INFO"]
        super().__init__([*argv, "--schedule", str(schedule)], env, Path(settings.VAR_DIR) / f"{self.name}.log")


class PrivateRedis:
    """A throw-away `redis-server` on a free loopback port (no persistence), stopped and restarted by PID."""

    def __init__(self) -> None:
        import shutil

        self.binary = shutil.which("redis-server")
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert self.binary, "redis-server is not installed"
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for(self.is_up, timeout=15, message="the private redis-server to accept connections")

    def is_up(self) -> bool:
        import socket

        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=15)
        self.proc = None


@pytest.fixture
def engine_processes(transactional_db) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """Start workers and beats for a drill; everything started is stopped (by PID) at the end."""
    started: list[Any] = []

    class Processes:
        def worker(
            self,
            queues: str = "default,bench.cpu",
            concurrency: int = 1,
            env: dict[str, str] | None = None,
            broker_url: str | None = None,
            ready: bool = True,
        ) -> WorkerProcess:
            extra = dict(env or {})
            if broker_url:
                extra["CELERY_BROKER_URL"] = broker_url
            worker = WorkerProcess(queues=queues, concurrency=concurrency, extra_env=extra)
            started.append(worker)
            if ready:
                worker.wait_ready()
            return worker

        def beat(self, env: dict[str, str] | None = None, broker_url: str | None = None) -> BeatProcess:
            beat = BeatProcess(extra_env=env, broker_url=broker_url)
            started.append(beat)
            return beat

    try:
        yield Processes()
    finally:
        for process in reversed(started):
            try:
                process.stop()
            except Exception:  # noqa: BLE001 - stop the others anyway
                pass


# --- Webhooks (issue 12): a receiver that answers as slowly as it likes ----------------------------------------


class SlowServer:
    """A loopback HTTP server started by a test: it reads the request, sends `head` at once, then `drip` one
    byte a second, over and over, until the client goes away (`client_gone` is then set) or it is stopped."""

    def __init__(self, head: bytes = b"", drip: bytes = b"HTTP/1.1 200 OK\r\nX-Slow: 1\r\n", every_s: float = 1.0):
        self.head, self.drip, self.every_s = head, drip, every_s
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/slow"
        self.stopped = threading.Event()
        self.client_gone = threading.Event()
        self.requests = 0
        self.thread = threading.Thread(target=self._serve, daemon=True, name="slow-server")
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(30)
                try:
                    request = b""
                    while b"\r\n\r\n" not in request:
                        chunk = conn.recv(65536)
                        if not chunk:
                            raise ConnectionResetError("the client left before sending a request")
                        request += chunk
                    self.requests += 1
                    conn.sendall(self.head)
                    position = 0
                    while self.drip and not self.stopped.is_set():
                        conn.sendall(self.drip[position : position + 1])
                        position = (position + 1) % len(self.drip)
                        self.stopped.wait(self.every_s)
                except OSError:
                    self.client_gone.set()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)
        self.sock.close()


@pytest.fixture
def slow_server():  # type: ignore[no-untyped-def]
    """`slow_server(head=..., drip=...)` starts a SlowServer; every one started is stopped at the end."""
    servers: list[SlowServer] = []

    def start(**kwargs):  # type: ignore[no-untyped-def]
        servers.append(SlowServer(**kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()
