"""Every `mc` command against a live platform (gunicorn + a Celery worker, see conftest.py): `--json` output
parsed as JSON, every exit code, an interrupted push that resumes, a pull that verifies (and catches a corrupted
file), jobs followed to the end with --require, and a retried job submission that makes one job.

The module shares one web server and one worker; each test has the demo world to itself (seeded at its start,
flushed at its end) and its own config file and upload cache."""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
import traceback
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from mc_live import CARD, DIGITS, PASSWORD
from tests.fixtures import wait_for

from modelcommons_client import Client
from modelcommons_client import cli as cli_module
from modelcommons_client.cli import cli
from modelcommons_client.errors import NetworkError

pytestmark = [pytest.mark.flow]

VARIANT = "alice/cli-int8"
MIB = 1024 * 1024


def _safetensors(data_bytes: int, seed: int = 1) -> bytes:
    header = json.dumps({"weight": {"dtype": "U8", "shape": [data_bytes], "data_offsets": [0, data_bytes]}}).encode()
    header += b" " * (-len(header) % 8)
    pattern = hashlib.sha256(str(seed).encode()).digest()
    data = (pattern * (data_bytes // len(pattern) + 1))[:data_bytes]
    return len(header).to_bytes(8, "little") + header + data


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


class Mc:
    """Runs `mc` in-process as USER (a token in MC_TOKEN), with a config file and an upload cache of the module."""

    def __init__(self, platform: Any, home: Path):
        self.platform = platform
        self.config = home / "config" / "config.toml"
        self.cache = home / "cache"

    def env(self, user: str | None, extra: dict[str, str | None] | None = None) -> dict[str, str | None]:
        return {
            "MC_URL": self.platform.url,
            "MC_TOKEN": self.platform.tokens[user] if user else None,
            "MC_CONFIG": str(self.config),
            "MC_CACHE_DIR": str(self.cache),
            "MC_PASSWORD": None,
            "MC_POLL_INTERVAL": "0.3",
            "MC_CHUNK_SIZE": str(MIB),
            "MC_RETRIES": "2",
            "COLUMNS": "200",
            **(extra or {}),
        }

    def __call__(
        self,
        *args: str,
        user: str | None = "alice",
        expect: int = 0,
        input: str | None = None,
        env: dict[str, str | None] | None = None,
    ) -> Result:
        result = CliRunner().invoke(cli, list(args), env=self.env(user, env), input=input)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError("".join(traceback.format_exception(*result.exc_info))) from result.exception
        assert result.exit_code == expect, (
            f"mc {' '.join(args)}: exit {result.exit_code}, expected {expect}\nstdout: {result.stdout}\n"
            f"stderr: {result.stderr}\n{self.platform.logs() if result.exit_code == 5 else ''}"
        )
        return result

    def json(self, *args: str, **kw: Any) -> Any:
        result = self(*args, "--json", **kw)
        return json.loads(result.stdout)


@pytest.fixture
def mc(live_platform, home) -> Mc:
    return Mc(live_platform, home)


def client_as(platform: Any, user: str, **kw: Any) -> Client:
    return Client(platform.url, platform.tokens[user], **kw)


# --- login, whoami, configuration ------------------------------------------------------------------------------


def test_login_whoami_and_the_configuration(mc: Mc, live_platform, home: Path) -> None:
    # No token anywhere: not authenticated (3).
    assert not mc.config.exists()
    out = mc("whoami", user=None, expect=3)
    assert "mc login" in out.stderr and out.stdout == ""
    # Neither --token nor --username, or both: usage (2).
    mc("login", user=None, expect=2)
    mc("login", "--token", "x", "--username", "alice", user=None, expect=2)
    # A wrong password: not authenticated (3), and nothing written.
    bad = mc(
        "login",
        "--url",
        live_platform.url,
        "--username",
        "alice",
        user=None,
        input="wrong-password\n",
        env={"MC_URL": None},
        expect=3,
    )
    assert "401" in bad.stderr and not mc.config.exists()

    # The password from the prompt: a token made with HTTP Basic, stored in a 0600 file.
    done = mc(
        "login",
        "--url",
        live_platform.url,
        "--username",
        "alice",
        user=None,
        input=f"{PASSWORD}\n",
        env={"MC_URL": None},
    )
    assert "Password for alice" in done.stderr and "alice" in done.stdout
    assert stat.S_IMODE(mc.config.stat().st_mode) == 0o600
    assert stat.S_IMODE(mc.config.parent.stat().st_mode) == 0o700
    text = mc.config.read_text()
    assert f'url = "{live_platform.url}"' in text and 'token = "mc_' in text and 'username = "alice"' in text
    me = mc.json("whoami", user=None, env={"MC_URL": None})
    assert me["username"] == "alice" and me["roles"] == [] and "quota" in me

    # The password from MC_PASSWORD, with --json: the API's view of the new token, never the token itself.
    made = mc.json("login", "--username", "bob", user=None, env={"MC_PASSWORD": PASSWORD})
    assert made["username"] == "bob" and made["config"] == str(mc.config)
    assert set(made["token"]) >= {"id", "name", "scopes", "expires_at"} and "token" not in made["token"]
    stored_token = mc.config.read_text().split('token = "')[1].split('"')[0]
    assert stored_token.startswith("mc_") and stored_token not in json.dumps(made)
    assert sorted(made["token"]["scopes"]) == ["jobs", "read", "review", "write"]
    assert mc.json("whoami", user=None)["username"] == "bob"

    # MC_TOKEN and MC_URL win over the file.
    assert mc.json("whoami", user="reviewer1")["username"] == "reviewer1"
    down = mc("whoami", user=None, env={"MC_URL": "http://127.0.0.1:9", "MC_RETRIES": "1"}, expect=5)
    assert "ConnectError" in down.stderr and "retrying" in down.stderr

    # --token: checked against /me/ before it is stored; a bad one is refused (3) and the file kept.
    mc("login", "--token", "mc_not-a-real-token", user=None, expect=3)
    assert mc.json("whoami", user=None)["username"] == "bob"
    human = mc("login", "--token", live_platform.tokens["alice"], user=None)
    assert "as alice" in human.stdout
    assert mc("whoami", user=None).stdout.startswith("alice (contributor)")
    # An unknown token in MC_TOKEN: 401, exit 3, and with --json the problem document on stdout.
    problem = json.loads(mc("whoami", "--json", user=None, env={"MC_TOKEN": "mc_nope"}, expect=3).stdout)
    assert problem["status"] == 401 and problem["title"]


# --- variants ----------------------------------------------------------------------------------------------------


def test_variants_create_list_show(mc: Mc, home: Path) -> None:
    card = home / "README.md"
    card.write_text(CARD.format(name=VARIANT))
    made = mc.json(
        "variants",
        "create",
        "cli-int8",
        "--relation",
        "quantized",
        "--parent",
        "commons/digits-mlp",
        "--license",
        "apache-2.0",
        "--task",
        "image-classification",
        "--precision",
        "int8",
        "--parameters",
        "4810",
        "--summary",
        "Made by mc",
        "--tag",
        "cli",
        "--card",
        str(card),
    )
    assert made["full_name"] == VARIANT and made["parents"] == ["commons/digits-mlp"]
    assert (made["relation"], made["license"], made["precision"], made["parameters"]) == (
        "quantized",
        "apache-2.0",
        "int8",
        4810,
    )
    assert made["current_revision"] == 1 and made["card"].startswith(f"# {VARIANT}")

    listed = mc.json("variants", "list", "--owner", "alice")
    assert VARIANT in [v["full_name"] for v in listed] and all(v["owner"] == "alice" for v in listed)
    found = mc.json("variants", "list", "--search", "cli-int8")
    assert [v["full_name"] for v in found] == [VARIANT]
    assert VARIANT in mc("variants", "list", "--owner", "alice").stdout
    shown = mc.json("variants", "show", VARIANT)
    assert shown["full_name"] == VARIANT and shown["status"] == "draft"
    assert "quantized" in mc("variants", "show", VARIANT).stdout
    # Anonymous reads of a public variant; a draft is a 404 to a stranger (4) and to nobody at all.
    assert mc.json("variants", "show", "commons/digits-mlp", user=None)["status"] == "published"
    mc("variants", "show", VARIANT, user="bob", expect=4)
    mc("variants", "show", "alice/no-such-variant", expect=4)
    mc("variants", "show", "not-a-full-name", expect=2)
    # Refusals: a duplicate name, an unknown licence (400 with suggestions: usage, 2), a bad relation (click: 2).
    dup = mc(
        "variants",
        "create",
        "cli-int8",
        "--relation",
        "quantized",
        "--parent",
        "commons/digits-mlp",
        "--license",
        "apache-2.0",
        "--json",
        expect=2,
    )
    assert json.loads(dup.stdout)["status"] == 400
    bad = mc(
        "variants",
        "create",
        "cli-other",
        "--relation",
        "quantized",
        "--parent",
        "commons/digits-mlp",
        "--license",
        "apache-2.1",
        expect=2,
    )
    assert "license" in bad.stderr
    mc("variants", "create", "x", "--relation", "sideways", "--license", "mit", expect=2)
    mc(
        "variants",
        "create",
        "x",
        "--relation",
        "finetune",
        "--parent",
        "commons/digits-mlp",
        "--license",
        "mit",
        user="alice-read",
        expect=3,
    )


# --- push ------------------------------------------------------------------------------------------------------


class InterruptingTransport(httpx.HTTPTransport):
    """A real transport that stops the process (Ctrl-C) when it is about to send PATCH number `after` + 1."""

    def __init__(self, after: int):
        super().__init__()
        self.after = after
        self.patches = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH":
            self.patches += 1
            if self.patches > self.after:
                raise KeyboardInterrupt
        return super().handle_request(request)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    shutil.copy(DIGITS / "digits-mlp-int8.onnx", folder / "model.onnx")
    (folder / "config.json").write_text('{"model_type": "mlp", "num_labels": 10}')
    (folder / "weights.safetensors").write_bytes(_safetensors(3 * MIB + 1000))
    (folder / "sub").mkdir()
    (folder / "sub" / "notes.txt").write_text("Notes that travel with the model.\n")
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    return folder


def create_variant(
    platform: Any, name: str = "cli-int8", user: str = "alice", push: Path | None = None, cache: Path | None = None
) -> str:
    """A quantized child of commons/digits-mlp with a long enough card, made through the library; with `push`, the
    folder's files uploaded to its revision 1."""
    with client_as(platform, user, chunk_size=MIB, cache_dir=cache) as client:
        made = client.variants.create(
            name,
            relation="quantized",
            parents=["commons/digits-mlp"],
            license="apache-2.0",
            card=CARD.format(name=f"{user}/{name}"),
            precision="int8",
        )
        if push is not None:
            client.uploads.push(made.full_name, [push])
    return made.full_name


def test_push_is_interrupted_then_resumes_and_skips(mc: Mc, live_platform, model_dir: Path, monkeypatch) -> None:
    create_variant(live_platform)
    # The first push is stopped (Ctrl-C) while the 4th MiB-chunk of weights.safetensors is about to go: config.json
    # and model.onnx (one chunk each) are in, and 2 MiB of the weights.
    transport = InterruptingTransport(after=4)
    monkeypatch.setattr(
        cli_module, "make_client", lambda url, token, state: Client(url, token, chunk_size=MIB, transport=transport)
    )
    stopped = mc("push", VARIANT, str(model_dir), expect=1)
    assert "Aborted" in stopped.stderr and transport.patches == 5
    monkeypatch.undo()
    saved = json.loads((mc.cache / "uploads.json").read_text())
    assert [entry["path"] for entry in saved.values()] == ["weights.safetensors"]

    # Pushing again resumes the weights from the server's offset; the two files already in are skipped.
    result = mc.json("push", VARIANT, str(model_dir))
    assert result["revision"] == 1
    by_path = {f["path"]: f for f in result["files"]}
    assert set(by_path) == {"config.json", "model.onnx", "weights.safetensors", "sub/notes.txt"}  # no .git
    assert by_path["config.json"]["action"] == by_path["model.onnx"]["action"] == "skipped"
    weights = by_path["weights.safetensors"]
    assert weights["action"] == "resumed" and weights["resumed_from"] == 2 * MIB
    assert weights["artifact"]["sha256"] == sha(model_dir / "weights.safetensors")
    assert weights["artifact"]["size_bytes"] == (model_dir / "weights.safetensors").stat().st_size
    assert by_path["sub/notes.txt"]["action"] == "uploaded" and by_path["sub/notes.txt"]["artifact"]["format"] == "txt"
    assert json.loads((mc.cache / "uploads.json").read_text()) == {}

    # What the server holds is what was pushed.
    with client_as(live_platform, "alice") as client:
        files = {f.path: f for f in client.files.list(VARIANT, 1)}
    for path in by_path:
        assert files[path].sha256 == sha(model_dir / path) and files[path].stored

    # A third push has nothing to do; the human summary says so on stdout, each file on stderr.
    again = mc("push", VARIANT, str(model_dir))
    assert "0 uploaded, 0 resumed, 4 already there" in again.stdout
    assert "skipped weights.safetensors" in again.stderr

    # A changed file at a path the draft has: refused (1), pointing at a new revision.
    changed = model_dir.parent / "changed"
    changed.mkdir()
    (changed / "config.json").write_text('{"model_type": "other"}')
    refused = mc("push", VARIANT, str(changed / "config.json"), expect=1)
    assert "--new-revision" in refused.stderr
    # Nobody else may push to alice's variant (a draft: 404 to bob, 4); a read-only token is not allowed (3).
    (changed / "extra.json").write_text("{}")
    mc("push", VARIANT, str(changed / "extra.json"), user="bob", expect=4)
    mc("push", VARIANT, str(changed / "extra.json"), user="alice-read", expect=3)
    mc("push", VARIANT, str(changed / "missing.bin"), expect=2)  # click: no such path


def test_push_goes_on_after_a_lost_answer(live_platform, tmp_path: Path) -> None:
    """The connection breaks after the server stored a chunk, before its answer arrives: the client asks the
    server's offset (HEAD) and goes on from there, sending nothing twice."""

    class LosingTransport(httpx.HTTPTransport):
        def __init__(self) -> None:
            super().__init__()
            self.patches: list[str] = []

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response = super().handle_request(request)
            if request.method == "PATCH":
                self.patches.append(request.headers["Upload-Offset"])
                if len(self.patches) == 2:
                    response.read()
                    raise httpx.ReadError("connection reset by peer", request=request)
            return response

    transport = LosingTransport()
    local = tmp_path / "more.safetensors"
    local.write_bytes(_safetensors(3 * MIB, seed=7))
    with Client(
        live_platform.url,
        live_platform.tokens["alice"],
        chunk_size=MIB,
        transport=transport,
        cache_dir=tmp_path / "cache",
    ) as client:
        client.variants.create("cli-lost", relation="quantized", parents=["commons/digits-mlp"], license="apache-2.0")
        pushed = client.uploads.upload_file("alice/cli-lost", 1, local, "more.safetensors")
    assert pushed.action == "uploaded" and pushed.artifact is not None
    assert pushed.artifact.sha256 == sha(local)
    assert transport.patches == [str(i * MIB) for i in range(4)]  # each offset once: no chunk sent twice


# --- pull ------------------------------------------------------------------------------------------------------


def test_pull_verifies_resumes_and_catches_corruption(mc: Mc, live_platform, model_dir: Path, tmp_path: Path) -> None:
    create_variant(live_platform, push=model_dir, cache=tmp_path / "cache")
    with client_as(live_platform, "alice") as client:  # a file recorded by URI only: no bytes on the platform
        client.http.json(
            "POST",
            "/api/v1/variants/alice/cli-int8/revisions/1/artifacts/",
            json={
                "path": "remote.safetensors",
                "uri": "hf://org/x@main/remote.safetensors",
                "sha256": "b" * 64,
                "size_bytes": 10,
            },
        )
    target = tmp_path / "pulled"
    pulled = mc("pull", VARIANT, "--dir", str(target), "--json")
    result = json.loads(pulled.stdout)
    assert result["revision"] == 1 and result["dir"] == str(target)
    actions = {f["path"]: f["action"] for f in result["files"]}
    stored = ["config.json", "model.onnx", "sub/notes.txt", "weights.safetensors"]
    assert actions == {**dict.fromkeys(stored, "downloaded"), "remote.safetensors": "skipped"}
    assert "remote.safetensors is recorded by URI only" in pulled.stderr
    assert not (target / "remote.safetensors").exists()
    for path in stored:
        assert (target / path).read_bytes() == (model_dir / path).read_bytes()

    # Nothing to do the second time.
    again = mc.json("pull", VARIANT, "--dir", str(target))
    assert {f["action"] for f in again["files"]} == {"unchanged", "skipped"}

    # A partial download (an interrupted pull) is resumed with Range from where it stopped.
    weights = target / "weights.safetensors"
    whole = weights.read_bytes()
    weights.unlink()
    part = target / "weights.safetensors.mc-part"
    part.write_bytes(whole[: len(whole) // 2])
    resumed = {f["path"]: f for f in mc.json("pull", VARIANT, "--dir", str(target))["files"]}
    assert resumed["weights.safetensors"]["action"] == "resumed"
    assert resumed["weights.safetensors"]["resumed_from"] == len(whole) // 2
    assert weights.read_bytes() == whole and not part.exists()

    # A partial file that is not a prefix of the file: the hash says so; it is downloaded whole and verified.
    weights.unlink()
    part.write_bytes(b"\0" * 1000)
    redone = {f["path"]: f for f in mc.json("pull", VARIANT, "--dir", str(target))["files"]}
    assert redone["weights.safetensors"]["action"] == "downloaded" and weights.read_bytes() == whole

    # A local file changed since: its hash differs, so it is downloaded again.
    (target / "config.json").write_text('{"model_type": "tampered"}')
    fixed = {f["path"]: f["action"] for f in mc.json("pull", VARIANT, "--dir", str(target))["files"]}
    assert fixed["config.json"] == "downloaded" and sha(target / "config.json") == sha(model_dir / "config.json")

    # The human output says every file was verified.
    human = mc("pull", VARIANT, "--dir", str(target))
    assert "4 file(s) verified" in human.stdout

    # Anonymous pull of a public variant's published revision (main), into ./NAME by default.
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        public = mc.json("pull", "commons/digits-mlp", "--revision", "main", user=None)
    assert public["dir"] == "digits-mlp" and public["files"][0]["action"] == "downloaded"
    assert (tmp_path / "digits-mlp" / "digits-mlp.onnx").read_bytes() == (DIGITS / "digits-mlp.onnx").read_bytes()
    mc("pull", VARIANT, "--dir", str(tmp_path / "x"), user="bob", expect=4)  # a draft: not found for bob
    mc("pull", VARIANT, "--revision", "7", "--dir", str(tmp_path / "x"), expect=4)
    mc("pull", VARIANT, "--revision", "latest", "--dir", str(tmp_path / "x"), expect=2)


def test_pull_refuses_bytes_that_do_not_match_their_hash(mc: Mc, live_platform, tmp_path: Path) -> None:
    """The stored copy of a file is damaged on the server: pull detects it (exit 5), keeps no bad file."""
    local = tmp_path / "doomed.json"
    local.write_text('{"will": "be damaged on the server"}')
    with client_as(live_platform, "alice", cache_dir=tmp_path / "cache") as client:
        client.variants.create("cli-doomed", relation="quantized", parents=["commons/digits-mlp"], license="apache-2.0")
        client.uploads.push("alice/cli-doomed", [local])
    content = local.read_bytes()  # the stored copy, whatever storage names it
    stored = [p for p in live_platform.media.rglob("*") if p.is_file() and p.read_bytes() == content]
    assert len(stored) == 1, stored
    stored[0].write_bytes(stored[0].read_bytes().replace(b"damaged", b"DAMAGED"))

    target = tmp_path / "out"
    out = mc("pull", "alice/cli-doomed", "--dir", str(target), expect=5)
    assert "doomed.json" in out.stderr and "sha256" in out.stderr and "does not match" in out.stderr
    assert not (target / "doomed.json").exists() and not (target / "doomed.json.mc-part").exists()


# --- jobs ------------------------------------------------------------------------------------------------------


def test_jobs_submit_wait_require_show_bundle(mc: Mc, live_platform, model_dir: Path, tmp_path: Path) -> None:
    create_variant(live_platform, push=model_dir, cache=tmp_path / "cache")
    # The CI gate: wait for the digits benchmark and require a score.
    run = mc(
        "jobs",
        "submit",
        VARIANT,
        "digits",
        "--set",
        "batch_size=50",
        "--wait",
        "--require",
        "accuracy>=0.8",
        "--require",
        "latency_p50_ms<=100000",
        "--json",
    )
    job = json.loads(run.stdout)
    assert job["status"] == "succeeded" and job["variant"] == VARIANT and job["config"] == {"batch_size": 50}
    assert job["result"]["metrics"]["accuracy"] >= 0.8
    assert f"submitted job {job['id']}" in run.stderr and "met: accuracy" in run.stderr
    assert "queued" in run.stderr or "running" in run.stderr  # the progress lines (stderr is no terminal here)

    # The same submission again is the same job (dedupe); an unmet requirement, or a metric it lacks: exit 1.
    unmet = mc(
        "jobs",
        "submit",
        VARIANT,
        "digits",
        "--config",
        '{"batch_size": 50}',
        "--require",
        "accuracy>=1.01",
        "--json",
        expect=1,
    )
    assert json.loads(unmet.stdout)["id"] == job["id"] and "unmet" in unmet.stderr
    missing = mc("jobs", "submit", VARIANT, "digits", "--set", "batch_size=50", "--require", "bleu>=1", expect=1)
    assert "bleu: not in the result" in missing.stderr

    shown = mc.json("jobs", "show", str(job["id"]))
    assert shown["id"] == job["id"] and shown["result"]["metrics"] == job["result"]["metrics"]
    assert "accuracy" in mc("jobs", "show", str(job["id"])).stdout
    watched = mc.json("jobs", "watch", str(job["id"]), "--require", "accuracy>=0.8")
    assert watched["status"] == "succeeded"

    bundle_file = tmp_path / "bundle.json"
    written = mc("jobs", "bundle", str(job["id"]), "-o", str(bundle_file))
    bundle = json.loads(bundle_file.read_text())
    assert written.stdout == "" and str(bundle_file) in written.stderr
    assert json.loads(mc("jobs", "bundle", str(job["id"])).stdout) == bundle
    text = json.dumps(bundle)
    assert sha(DIGITS / "digits-mlp-int8.onnx") in text and "batch_size" in text

    # Usage errors (2): bad --require, --config not an object, --timeout without --wait, an invalid config (400).
    mc("jobs", "submit", VARIANT, "digits", "--require", "accuracy=>0.8", expect=2)
    mc("jobs", "submit", VARIANT, "digits", "--config", "[1]", expect=2)
    mc("jobs", "submit", VARIANT, "digits", "--timeout", "3", expect=2)
    invalid = mc("jobs", "submit", VARIANT, "digits", "--set", "batch_size=-5", "--json", expect=2)
    assert json.loads(invalid.stdout)["status"] == 400
    # An unknown benchmark or variant is a bad field of the submission (400: 2). Not found (4): a job; not allowed
    # (3): a token without the jobs scope.
    mc("jobs", "submit", VARIANT, "no-such-benchmark", expect=2)
    mc("jobs", "submit", "alice/nothing-here", "digits", expect=2)
    mc("jobs", "show", "999999", expect=4)
    mc("jobs", "submit", VARIANT, "digits", user="alice-read", expect=3)
    mc("jobs", "bundle", str(job["id"]), user="bob", expect=4)  # a draft's job: bob may not see it


SEEDED = "alice/digits-mlp-int8"  # the demo's draft of alice


def test_jobs_timeout_cancel_watch_and_failure(mc: Mc) -> None:
    # --timeout: the wait ends (exit 1) with the job's last state on stdout; the job goes on.
    slow = mc(
        "jobs",
        "submit",
        SEEDED,
        "noop",
        "--set",
        "sleep_s=20",
        "--set",
        "steps=40",
        "--wait",
        "--timeout",
        "1",
        "--json",
        expect=1,
    )
    job = json.loads(slow.stdout)
    assert job["status"] in ("queued", "running") and "still" in slow.stderr
    cancelled = mc.json("jobs", "cancel", str(job["id"]))
    assert cancelled["id"] == job["id"] and (cancelled["status"] == "cancelled" or cancelled["cancel_requested"])
    mc("jobs", "cancel", str(job["id"]), user="bob", expect=4)
    final = json.loads(mc("jobs", "watch", str(job["id"]), "--json", expect=1).stdout)
    assert final["status"] == "cancelled"

    # A job that fails: exit 1, its failure on stdout.
    failed = mc("jobs", "submit", SEEDED, "noop", "--set", "fail=true", "--wait", "--json", expect=1)
    body = json.loads(failed.stdout)
    assert body["status"] == "failed" and body["failure"]["reason"] == "runner_error"
    assert "runner_error" in failed.stderr
    human = mc("jobs", "show", str(body["id"]))
    assert "failure: runner_error" in human.stdout and "log tail" in human.stdout

    # Without --wait: the queued job at once.
    queued = mc.json("jobs", "submit", SEEDED, "noop", "--set", "steps=2")
    assert queued["status"] in ("queued", "running", "succeeded") and queued["benchmark"] == "noop"
    assert mc.json("jobs", "watch", str(queued["id"]))["status"] == "succeeded"


def test_a_retried_submission_makes_one_job(live_platform) -> None:
    """The answer to the first POST is lost after the server made the job: the client sends it again with the
    same Idempotency-Key and gets the first answer back (Idempotent-Replayed), not a second job."""

    class LoseFirstAnswer(httpx.HTTPTransport):
        def __init__(self) -> None:
            super().__init__()
            self.posts: list[tuple[str, str | None]] = []

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response = super().handle_request(request)
            if request.method == "POST" and request.url.path == "/api/v1/jobs/":
                self.posts.append(
                    (request.headers.get("Idempotency-Key", ""), response.headers.get("Idempotent-Replayed"))
                )
                if len(self.posts) == 1:
                    response.read()
                    raise httpx.ReadError("the answer was lost", request=request)
            return response

    transport = LoseFirstAnswer()
    config = {"steps": 1, "seed": 424242}
    with Client(live_platform.url, live_platform.tokens["alice"], transport=transport, backoff=0.05) as client:
        job = client.jobs.submit(SEEDED, "noop", config=config)
        same = [j for j in client.jobs.list(variant=SEEDED, benchmark="noop") if j.config == config]
        job.wait(poll_interval=0.3, timeout=60)
    (first_key, first_replayed), (second_key, second_replayed) = transport.posts
    assert first_key == second_key and first_key.startswith("mc-")
    assert (first_replayed, second_replayed) == ("false", "true")
    assert [j.id for j in same] == [job.id]

    # A POST the caller does not mark idempotent is never sent again after a lost answer (the work may have been
    # done); it still carries a key of its own.
    losing = LoseFirstAnswer()
    with (
        Client(live_platform.url, live_platform.tokens["alice"], transport=losing, backoff=0.05) as client,
        pytest.raises(NetworkError),
    ):
        client.http.json(
            "POST", "/api/v1/jobs/", json={"variant": SEEDED, "benchmark": "noop", "config": {"steps": 1, "seed": 7}}
        )
    assert len(losing.posts) == 1 and losing.posts[0][0].startswith("mc-")


# --- leaderboard, reviews, checklist ---------------------------------------------------------------------------


def test_leaderboard(mc: Mc) -> None:
    mc(
        "jobs",
        "submit",
        "commons/digits-mlp",
        "digits",
        "--set",
        "batch_size=50",
        "--wait",
        "--require",
        "accuracy>=0.8",
    )
    # The board is updated right after the job's commit, by the worker that finished it: read until it shows.
    board = wait_for(
        lambda: (b := mc.json("leaderboard", "digits", "--limit", "5", user=None))["results"] and b,
        timeout=30,
        interval=0.3,
        message="the result on the digits board",
    )
    assert board["benchmark"]["slug"] == "digits" and board["benchmark"]["metric"] == "accuracy"
    assert board["results"][0]["variant"] == "commons/digits-mlp" and board["results"][0]["rank"] == 1
    assert 0.8 <= board["results"][0]["score"] <= 1 and len(board["results"]) <= 5
    assert VARIANT not in [row["variant"] for row in board["results"]]  # a draft is on no board
    human = mc("leaderboard", "digits", user=None)
    assert "commons/digits-mlp" in human.stdout and "accuracy" in human.stdout
    mc("leaderboard", "no-such-benchmark", expect=4)


def test_reviews_and_checklist(mc: Mc, live_platform, model_dir: Path, tmp_path: Path) -> None:
    create_variant(live_platform, push=model_dir, cache=tmp_path / "cache")
    mc("checklist", "show", VARIANT, "1", expect=4)  # a draft has no checklist yet
    submitted = mc.json("revisions", "submit", VARIANT, "1")
    assert submitted["status"] == "submitted"
    assert [r["number"] for r in mc.json("revisions", "list", VARIANT)] == [1]

    checklist = mc.json("checklist", "show", VARIANT, "1")
    keys = {item["key"]: item for item in checklist["items"]}
    assert checklist["template"] == "open-model-practices" and "training-data-disclosed" in keys
    assert keys["safe-serialization"]["status"] in ("met", "unmet")
    assert "training-data-disclosed" in mc("checklist", "show", VARIANT, "1").stdout

    item = mc.json(
        "checklist",
        "answer",
        VARIANT,
        "1",
        "training-data-disclosed",
        "--status",
        "n/a",
        "--justification",
        "A quantization of commons/digits-mlp: no new training data.",
    )
    assert item["status"] == "n/a" and item["answered_by"] == "alice"
    item = mc.json(
        "checklist",
        "answer",
        VARIANT,
        "1",
        "reproducibility-recipe",
        "--status",
        "met",
        "--evidence",
        "https://example.org/recipe",
    )
    assert item["evidence_url"] == "https://example.org/recipe"
    refused = mc("checklist", "answer", VARIANT, "1", "contamination-statement", "--status", "n/a", "--json", expect=2)
    assert json.loads(refused.stdout)["status"] == 400
    mc("checklist", "answer", VARIANT, "1", "no-such-item", "--status", "met", expect=4)
    mc("checklist", "answer", VARIANT, "1", "training-data-disclosed", "--status", "maybe", expect=2)
    mc("checklist", "answer", VARIANT, "1", "training-data-disclosed", "--status", "met", user="bob", expect=4)

    approved = mc.json("reviews", "approve", VARIANT, "1", "--body", "Looks right.", user="reviewer1")
    assert approved["decision"] == "approve" and approved["reviewer"] == "reviewer1"
    changes = mc.json("reviews", "request-changes", VARIANT, "1", "--body", "Add a latency table.", user="reviewer2")
    assert changes["decision"] == "request_changes" and changes["body"] == "Add a latency table."
    assert (
        "request_changes by reviewer2"
        in mc("reviews", "request-changes", VARIANT, "1", "--body", "Still.", user="reviewer2").stdout
    )
    listed = mc.json("reviews", "list", VARIANT, "1")
    assert {r["reviewer"] for r in listed} == {"reviewer1", "reviewer2"}
    mc("reviews", "request-changes", VARIANT, "1", user="reviewer1", expect=2)  # --body is required
    mc("reviews", "approve", VARIANT, "1", user="alice", expect=3)  # the author may not review her own work
    mc("reviews", "approve", VARIANT, "9", user="reviewer1", expect=4)

    # Changes were requested: a new revision (a copy of the files), then more files pushed to it.
    assert mc.json("variants", "show", VARIANT)["status"] == "changes_requested"
    second = mc.json("revisions", "create", VARIANT, "--notes", "Latency table added.")
    assert second["number"] == 2 and second["status"] == "draft" and len(second["artifacts"]) == 4
    (tmp_path / "latency.json").write_text('{"p95_ms": 0.01}')
    pushed = mc.json("push", VARIANT, str(tmp_path / "latency.json"), "--revision", "2")
    assert pushed["revision"] == 2 and [f["action"] for f in pushed["files"]] == ["uploaded"]
    # A draft is edited in place: no second draft (409: 1).
    refused = mc("push", VARIANT, str(tmp_path / "latency.json"), "--new-revision", "--json", expect=1)
    assert json.loads(refused.stdout)["status"] == 409
    mc("revisions", "create", VARIANT, expect=1)
    mc("push", VARIANT, str(tmp_path / "latency.json"), "--revision", "1", expect=1)  # submitted: immutable
