"""What `make run` serves (the Procfile's web process: gunicorn, settings.dev, DEBUG on) answers problem+json
under /api/ even for the errors that never reach a view, or never reach Django (issue 12, finding 14)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROBLEM = "application/problem+json"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _procfile_web() -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError("no web process in the Procfile")


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = _free_port()
    var = tmp_path_factory.mktemp("var")
    env = {
        **os.environ,
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
        "DJANGO_SETTINGS_MODULE": "modelcommons.settings.dev",
        "DEBUG": "1",
        "MC_VAR_DIR": str(var),
        "PYTHONPATH": f"{ROOT / 'platform'}:{ROOT}",
        "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",
    }
    log = (var / "web.log").open("w")
    proc = subprocess.Popen(
        ["bash", "-c", "exec " + _procfile_web()],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((var / "web.log").read_text()) from None
                time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def raw_request(port: int, head: str) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(head.encode("latin-1"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    header_blob, _, body = data.partition(b"\r\n\r\n")
    lines = header_blob.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def get(port: int, target: str, extra: str = "") -> tuple[int, dict[str, str], bytes]:
    return raw_request(port, f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{extra}\r\n")


def assert_problem(status: int, headers: dict[str, str], body: bytes, expected: int) -> dict:
    assert status == expected, body[:500]
    assert headers["content-type"].startswith(PROBLEM), headers
    problem = json.loads(body)
    assert problem["status"] == expected and problem["title"] and problem["detail"]
    return problem


def test_too_long_request_line_is_a_problem_414(dev_server: int) -> None:
    problem = assert_problem(*get(dev_server, "/api/v1/variants/?search=" + "a" * 5000), 414)
    assert "request line" in problem["detail"]


def test_too_many_headers_is_a_problem_431(dev_server: int) -> None:
    many = "".join(f"X-Filler-{i}: {i}\r\n" for i in range(150))
    assert_problem(*get(dev_server, "/api/v1/benchmarks/", many), 431)


@pytest.mark.parametrize("target", ["/api/v1/no-such-thing/", "/api/v1/jobs/abc/", "/api/nope"])
def test_debug_404s_under_api_are_problems(dev_server: int, target: str) -> None:
    assert_problem(*get(dev_server, target), 404)


def test_pages_keep_their_html(dev_server: int) -> None:
    status, headers, _ = get(dev_server, "/definitely-not-a-page/")
    assert status == 404 and not headers["content-type"].startswith(PROBLEM)
