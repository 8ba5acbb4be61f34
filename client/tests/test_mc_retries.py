"""The client's retry policy and error mapping, on recorded answers (httpx.MockTransport) and, for the CLI's exit
code 5, on a loopback stub that answers 503 or 500. No platform needed."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from modelcommons_client import (
    BadRequest,
    Client,
    Conflict,
    NetworkError,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServerError,
    WaitTimeout,
    check_requirements,
    parse_requirement,
)
from modelcommons_client import config as config_module
from modelcommons_client.cli import cli

PROBLEM = {"type": "about:blank", "title": "Service Unavailable", "status": 503, "detail": "Try again."}


class Recorder:
    """A MockTransport answering from a script: each item is a response or an exception to raise."""

    def __init__(self, script: list[httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]]):
        self.script = list(script)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, Exception):
            raise item
        if callable(item):
            return item(request)
        return item


def make_client(recorder: Recorder, **kw) -> tuple[Client, list[float]]:
    sleeps: list[float] = []
    client = Client("http://mc.test", "mc_token", transport=httpx.MockTransport(recorder), **kw)
    client.http._sleep = sleeps.append
    return client, sleeps


def problem(status: int, headers: dict[str, str] | None = None, **fields) -> httpx.Response:
    body = {"type": "about:blank", "title": "Error", "status": status, **fields}
    return httpx.Response(status, json=body, headers={"Content-Type": "application/problem+json", **(headers or {})})


ME = httpx.Response(200, json={"username": "alice", "email": "a@example.org", "roles": [], "quota": {}})


def test_503_is_retried_after_the_seconds_retry_after_says() -> None:
    recorder = Recorder([problem(503, {"Retry-After": "2"}), problem(503, {"Retry-After": "1"}), ME])
    client, sleeps = make_client(recorder)
    assert client.me().username == "alice"
    assert sleeps == [2.0, 1.0] and len(recorder.requests) == 3
    assert all(r.headers["Authorization"] == "Bearer mc_token" for r in recorder.requests)


def test_429_with_an_http_date() -> None:
    when = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    recorder = Recorder([problem(429, {"Retry-After": when}), ME])
    client, sleeps = make_client(recorder)
    client.me()
    assert len(sleeps) == 1 and 25 <= sleeps[0] <= 30


def test_a_retry_after_beyond_the_longest_wait_fails_at_once() -> None:
    """A daily quota answers 'come back in an hour': the client says so instead of sleeping for an hour."""
    recorder = Recorder([problem(429, {"Retry-After": "3600"}, detail="Daily compute budget used up.")])
    client, sleeps = make_client(recorder, max_retry_after=120)
    with pytest.raises(RateLimited) as caught:
        client.me()
    assert sleeps == [] and len(recorder.requests) == 1
    assert caught.value.retry_after == 3600 and caught.value.exit_code == 5
    assert caught.value.problem["detail"] == "Daily compute budget used up."


def test_network_errors_are_retried_with_exponential_backoff() -> None:
    recorder = Recorder([httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), ME])
    client, sleeps = make_client(recorder, backoff=0.5)
    assert client.me().username == "alice"
    # 0.5 * 2**(n-1), plus up to 0.5 s of jitter.
    assert len(sleeps) == 2 and 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 1.5


def test_retries_run_out() -> None:
    recorder = Recorder([httpx.Response(503, json=PROBLEM, headers={"Retry-After": "0"})])
    client, sleeps = make_client(recorder, retries=3)
    with pytest.raises(ServerError) as caught:
        client.me()
    assert len(recorder.requests) == 4 and sleeps == [0.0, 0.0, 0.0]
    assert caught.value.problem == PROBLEM and caught.value.exit_code == 5 and "Try again." in str(caught.value)

    down = Recorder([httpx.ConnectError("refused")])
    client, sleeps = make_client(down, retries=2)
    with pytest.raises(NetworkError) as lost:
        client.me()
    assert len(down.requests) == 3 and lost.value.exit_code == 5 and "ConnectError" in str(lost.value)


def test_a_500_is_not_retried() -> None:
    recorder = Recorder([problem(500, detail="boom")])
    client, sleeps = make_client(recorder)
    with pytest.raises(ServerError):
        client.me()
    assert len(recorder.requests) == 1 and sleeps == []


JOB = {
    "id": 7,
    "variant": "alice/m",
    "revision": 1,
    "benchmark": "digits",
    "config": {},
    "status": "queued",
    "progress": {"done": 0, "total": 0, "percent": 0.0, "eta_s": 12.0},
    "queue_position": 2,
}


def test_a_job_submission_is_retried_with_the_same_idempotency_key() -> None:
    """The answer is lost (a read timeout after the request went out): the submission is sent again with the same
    key, which the server answers with the first response."""
    recorder = Recorder([httpx.ReadTimeout("lost"), problem(502), httpx.Response(201, json=JOB)])
    client, sleeps = make_client(recorder)
    job = client.jobs.submit("alice/m", "digits", config={"limit": 5})
    assert job.id == 7 and job.queue_position == 2 and job.progress.eta_s == 12.0
    keys = {r.headers["Idempotency-Key"] for r in recorder.requests}
    assert len(recorder.requests) == 3 and len(keys) == 1 and next(iter(keys)).startswith("mc-")
    assert json.loads(recorder.requests[0].content) == {
        "variant": "alice/m",
        "benchmark": "digits",
        "config": {"limit": 5},
    }
    again, _ = make_client(Recorder([httpx.Response(200, json=JOB)]))
    again.jobs.submit("alice/m", "digits", idempotency_key="my-key")


def test_other_posts_are_not_sent_twice_after_a_lost_answer() -> None:
    recorder = Recorder([httpx.ReadTimeout("lost"), httpx.Response(201, json={})])
    client, _ = make_client(recorder)
    with pytest.raises(NetworkError):
        client.variants.create("m", relation="finetune", parents=["a/b"], license="mit")
    assert len(recorder.requests) == 1 and recorder.requests[0].headers["Idempotency-Key"].startswith("mc-")
    # ... nor after a gateway's 502 (the work may be done); but a refused connection sent nothing: retried.
    for first, attempts in ((problem(502), 1), (httpx.ConnectError("refused"), 2)):
        recorder = Recorder([first, httpx.Response(201, json={"full_name": "alice/m"})])
        client, _ = make_client(recorder)
        try:
            client.variants.create("m", relation="finetune", parents=["a/b"], license="mit")
        except ServerError:
            pass
        assert len(recorder.requests) == attempts


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [
        (400, BadRequest, 2),
        (422, BadRequest, 2),
        (401, NotAuthenticated, 3),
        (403, PermissionDenied, 3),
        (404, NotFound, 4),
        (409, Conflict, 1),
        (413, Conflict, 1),
        (500, ServerError, 5),
    ],
)
def test_errors_carry_the_problem_and_an_exit_code(status: int, error: type, code: int) -> None:
    client, _ = make_client(Recorder([problem(status, detail="why", errors={"name": ["Bad."]})]))
    with pytest.raises(error) as caught:
        client.variants.get("alice/m")
    assert caught.value.status == status and caught.value.exit_code == code
    assert caught.value.problem["errors"] == {"name": ["Bad."]} and "name: Bad." in str(caught.value)


def test_a_non_json_error_still_becomes_a_problem() -> None:
    client, _ = make_client(Recorder([httpx.Response(404, text="<html>nope</html>")]))
    with pytest.raises(NotFound) as caught:
        client.jobs.get(3)
    assert caught.value.problem["status"] == 404 and "nope" in caught.value.problem["detail"]


def test_wait_reports_progress_until_the_job_ends() -> None:
    states = [
        dict(
            JOB, status="running", queue_position=None, progress={"done": 5, "total": 10, "percent": 50.0, "eta_s": 3.0}
        ),
        dict(JOB, status="succeeded", result={"metrics": {"accuracy": 0.93}, "verified": False}),
    ]
    recorder = Recorder([httpx.Response(201, json=JOB), *(httpx.Response(200, json=s) for s in states)])
    client, _ = make_client(recorder)
    seen: list[tuple[str, int | None, float]] = []
    pauses: list[float] = []
    job = client.jobs.submit("alice/m", "digits").wait(
        poll_interval=0.5,
        sleep=pauses.append,
        on_progress=lambda j: seen.append((j.status, j.queue_position, j.progress.percent)),
    )
    assert seen == [("queued", 2, 0.0), ("running", None, 50.0), ("succeeded", 2, 0.0)]
    assert job.succeeded and job.metrics == {"accuracy": 0.93} and pauses == [0.5, 0.5]

    stuck, _ = make_client(Recorder([httpx.Response(200, json=JOB)]))
    with pytest.raises(WaitTimeout) as caught:
        stuck.jobs.get(7).wait(timeout=0)
    assert caught.value.job.status == "queued" and caught.value.exit_code == 1


def test_requirements() -> None:
    reqs = [parse_requirement(r) for r in ("accuracy>=0.9", "latency_p95_ms <= 20", "f1>0.5", "loss<1e-1")]
    assert [str(r) for r in reqs] == ["accuracy>=0.9", "latency_p95_ms<=20", "f1>0.5", "loss<0.1"]
    checked = check_requirements(reqs, {"accuracy": 0.95, "latency_p95_ms": 25.0, "f1": 0.5})
    assert [met for _, met, _ in checked] == [True, False, False, False]
    assert "not in the result" in checked[3][2]
    for bad in ("accuracy", "accuracy=>1", ">=1", "acc>=x"):
        with pytest.raises(ValueError):
            parse_requirement(bad)


def test_settings_from_the_environment_win_over_the_file(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "c" / "config.toml"
    monkeypatch.setenv("MC_CONFIG", str(path))
    monkeypatch.delenv("MC_URL", raising=False)
    monkeypatch.delenv("MC_TOKEN", raising=False)
    assert config_module.load().token is None and config_module.load().url == config_module.DEFAULT_URL
    config_module.write({"url": "https://file.example/", "token": "mc_file", "username": "alice"})
    assert (path.stat().st_mode & 0o777) == 0o600
    loaded = config_module.load()
    assert (loaded.url, loaded.token, loaded.source) == ("https://file.example", "mc_file", "config")
    monkeypatch.setenv("MC_URL", "https://env.example")
    monkeypatch.setenv("MC_TOKEN", "mc_env")
    loaded = config_module.load()
    assert (loaded.url, loaded.token, loaded.source) == ("https://env.example", "mc_env", "env")


class _Stub(BaseHTTPRequestHandler):
    status = 503

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        # Counted before answering: once the client has the answer, the test may read the count at once.
        self.server.hits += 1  # type: ignore[attr-defined]
        body = json.dumps({**PROBLEM, "status": self.status}).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/problem+json")
        self.send_header("Retry-After", "0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stub() -> Iterator[Callable[[int], tuple[str, ThreadingHTTPServer]]]:
    servers: list[ThreadingHTTPServer] = []

    def start(status: int) -> tuple[str, ThreadingHTTPServer]:
        handler = type("Handler", (_Stub,), {"status": status})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.hits = 0  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("status", "hits"), [(503, 3), (500, 1)])
def test_the_cli_exits_5_on_server_errors_after_retries(stub, tmp_path: Path, status: int, hits: int) -> None:
    url, server = stub(status)
    env = {"MC_URL": url, "MC_TOKEN": "mc_x", "MC_CONFIG": str(tmp_path / "none.toml"), "MC_RETRIES": "2"}
    result = CliRunner().invoke(cli, ["whoami", "--json"], env=env)
    assert result.exit_code == 5, (result.stdout, result.stderr)
    assert json.loads(result.stdout)["status"] == status and server.hits == hits
    assert ("retrying in 0.0 s" in result.stderr) == (status == 503)


def test_a_server_url_without_http_is_a_usage_error(tmp_path: Path) -> None:
    env = {"MC_URL": "commons.example.org", "MC_TOKEN": "mc_x", "MC_CONFIG": str(tmp_path / "none.toml")}
    result = CliRunner().invoke(cli, ["whoami"], env=env)
    assert result.exit_code == 2 and "http://" in result.stderr and result.stdout == ""


def test_a_download_redirected_to_object_storage_resumes_without_the_token(tmp_path: Path) -> None:
    """With S3 storage the files API answers 302 to a presigned URL: the client follows it with its Range, and
    without the Authorization header (another origin must never see the token)."""
    import hashlib

    data = bytes(range(256)) * 40
    entry = {
        "path": "model.bin",
        "size_bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "format": "bin",
        "stored": True,
    }
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "bucket.example":
            start = int(request.headers["Range"].removeprefix("bytes=").rstrip("-"))
            return httpx.Response(
                206, content=data[start:], headers={"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
            )
        if request.url.path.endswith("/files/"):
            return httpx.Response(200, json=[entry])
        return httpx.Response(302, headers={"Location": "https://bucket.example/blobs/ab/cd/x?X-Amz-Signature=s"})

    target = tmp_path / "out"
    target.mkdir()
    (target / "model.bin.mc-part").write_bytes(data[:1000])
    client = Client("http://mc.test", "mc_secret", transport=httpx.MockTransport(answer))
    number, files = client.files.pull("alice/m", 1, target)
    assert (number, files[0].action, files[0].resumed_from) == (1, "resumed", 1000)
    assert (target / "model.bin").read_bytes() == data and not (target / "model.bin.mc-part").exists()
    api, bucket = seen[1], seen[2]
    assert api.headers["Authorization"] == "Bearer mc_secret" and api.headers["Range"] == "bytes=1000-"
    assert "Authorization" not in bucket.headers and bucket.headers["Range"] == "bytes=1000-"
