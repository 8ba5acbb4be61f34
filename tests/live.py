"""Real processes for the tests that need them: the Procfile's web process (gunicorn) on a free loopback port,
Celery workers and beats (tests/fixtures.py). Each runs in a session of its own, writes to a log file, and is
stopped by its PID (its whole process group: gunicorn's and Celery's children too).

Used by the flow tests' fixtures, the schemathesis run (tests/test_schemathesis.py: one server per test session)
and the `mc` client tests (client/tests/mc_live.py: one server and worker per module)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ManagedProcess:
    """A subprocess in its own session with its output in `log_path`, stopped with its process group."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self.log = log_path.open("w")
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (the process and its children)."""
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.kill(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()

    def output(self) -> str:
        return self.log_path.read_text()


def web_command() -> str:
    """The Procfile's `web` command (what `make run` and a deployment start), on the loopback interface only."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return line.removeprefix("web:").strip().replace("0.0.0.0:", "127.0.0.1:")
    raise AssertionError("the Procfile has no web process")


class WebServer(ManagedProcess):
    """The Procfile's web process (gunicorn, the problem+json worker class) on a free loopback port, with the
    settings `env` gives it (DJANGO_SETTINGS_MODULE, DATABASE_URL...); `extra_args` go to gunicorn."""

    def __init__(self, env: dict[str, str], log_path: Path, *, extra_args: str = "") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **env,
            "PORT": str(self.port),
            "WEB_CONCURRENCY": "2",
            "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
        }
        super().__init__(["bash", "-c", f"exec {web_command()} {extra_args}".strip()], env, log_path)

    def wait_ready(self, timeout: float = 60, path: str = "/healthz") -> None:
        """Until `path` answers 200 (the schema, for a run that needs it generated first)."""
        import urllib.error
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited early:\n{self.output()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}{path}", timeout=5) as response:
                    if response.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                time.sleep(0.2)
        raise RuntimeError(f"gunicorn not ready after {timeout}s:\n{self.output()[-4000:]}")
