"""`mc`: the Model Commons command line (SPEC §5b), built on :class:`~modelcommons_client.Client`.

stdout carries the result (with `--json`: the API representation and nothing else); progress and messages go
to stderr. Exit codes: 0 success; 1 a job failed, was cancelled or timed out, a `--require` is unmet, or the
server refused the request (409, 410, 413, ...); 2 usage (bad arguments, or a 400 naming bad input); 3 not
authenticated or not allowed; 4 not found; 5 server or network error after retries (and a download whose bytes do
not match their sha256)."""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from . import config as config_module
from ._version import __version__
from .client import DEFAULT_CHUNK_SIZE, Client, split_name
from .errors import ApiError, ConfigError, JobFailed, McError, NotAuthenticated, RequirementUnmet, WaitTimeout
from .models import FileEntry, Job, PulledFile, PushedFile
from .requirements import Requirement, check_requirements, parse_requirement

EXIT_FAILED, EXIT_USAGE, EXIT_AUTH, EXIT_NOT_FOUND, EXIT_SERVER = 1, 2, 3, 4, 5


def _human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"  # pragma: no cover


class State:
    """What every command shares: `--json`, the consoles, and the client made from the configuration."""

    def __init__(self) -> None:
        self.json = False
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)
        self.out = Console(highlight=False, soft_wrap=True)
        self._client: Client | None = None

    # --- output ---------------------------------------------------------------------------------------------

    def emit(self, data: Any, human: Callable[[], None] | None = None) -> None:
        """The result: JSON on stdout with --json, else the human rendering (or the JSON when there is none)."""
        if self.json or human is None:
            click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
        else:
            human()

    def info(self, message: str) -> None:
        self.err.print(message)

    def warn(self, message: str) -> None:
        self.err.print(f"[yellow]warning:[/yellow] {message}")

    def fail(self, exc: McError) -> None:
        if self.json and isinstance(exc, ApiError) and exc.problem:
            click.echo(json.dumps(exc.problem, indent=2, ensure_ascii=False, default=str))
        self.err.print(f"[red]error:[/red] {escape(str(exc))}")
        if isinstance(exc, (NotAuthenticated, ConfigError)):
            self.err.print("  log in with `mc login --url URL --username USER` (or set MC_URL and MC_TOKEN)")

    # --- the client -------------------------------------------------------------------------------------------

    def client(self, *, auth: bool = True) -> Client:
        if self._client is None:
            settings = config_module.load()
            if auth and not settings.token:
                raise ConfigError("not logged in: no token in MC_TOKEN or in " + str(config_module.config_path()))
            self._client = make_client(settings.url, settings.token, self)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise click.UsageError(f"{name} must be a number, not {raw!r}") from None


def make_client(url: str, token: str | None, state: State) -> Client:
    def on_retry(message: str, seconds: float) -> None:
        state.info(f"[yellow]{escape(message)}: retrying in {seconds:.1f} s[/yellow]")

    return Client(
        url,
        token,
        timeout=_env_number("MC_TIMEOUT", 30.0),
        retries=int(_env_number("MC_RETRIES", 5)),
        max_retry_after=_env_number("MC_MAX_RETRY_AFTER", 120.0),
        chunk_size=int(_env_number("MC_CHUNK_SIZE", DEFAULT_CHUNK_SIZE)),
        on_retry=on_retry,
    )


def _set_json(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(State).json = True


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--json",
        "json_",
        is_flag=True,
        expose_value=False,
        callback=_set_json,
        is_eager=True,
        help="Print the API representation as JSON on stdout (messages go to stderr).",
    )(f)


class McGroup(click.Group):
    """The top group: turns the client's errors into a message on stderr (the problem document on stdout with
    --json) and the exit code of their class."""

    def invoke(self, ctx: click.Context) -> Any:
        state = ctx.ensure_object(State)
        try:
            return super().invoke(ctx)
        except McError as exc:
            state.fail(exc)
            ctx.exit(exc.exit_code)
        except OSError as exc:  # a local file or folder: unreadable, unwritable, full disk
            state.err.print(f"[red]error:[/red] {escape(str(exc))}")
            ctx.exit(EXIT_FAILED)
        finally:
            state.close()


@click.group(cls=McGroup, context_settings={"help_option_names": ["-h", "--help"]})
@json_option
@click.version_option(__version__, prog_name="mc")
def cli() -> None:
    """Model Commons from the command line: register variants, push and pull files, benchmark, review.

    The server and token come from MC_URL and MC_TOKEN, else from the config file `mc login` writes."""


def _state() -> State:
    return click.get_current_context().ensure_object(State)


# --- login / whoami ---------------------------------------------------------------------------------------------


@cli.command()
@click.option(
    "--url",
    help="The server, e.g. https://commons.example.org (default: MC_URL, the config file, "
    f"or {config_module.DEFAULT_URL}).",
)
@click.option("--token", help="A personal access token (mc_...) made on the web pages.")
@click.option("--username", help="Make a new token with this account's password (MC_PASSWORD, or a prompt).")
@click.option("--token-name", help="The name of the new token (default: mc on HOST).")
@click.option(
    "--scopes", default="read,write,jobs,review", show_default=True, help="Scopes of the new token, comma-separated."
)
@json_option
def login(url: str | None, token: str | None, username: str | None, token_name: str | None, scopes: str) -> None:
    """Log in: store the server URL and a token in the config file (mode 0600)."""
    state = _state()
    if bool(token) == bool(username):
        raise click.UsageError("give either --token TOKEN or --username USER")
    stored = config_module.read_file()
    url = (url or os.environ.get("MC_URL") or stored.get("url") or config_module.DEFAULT_URL).rstrip("/")
    created: dict[str, Any] | None = None
    if username:
        password = os.environ.get("MC_PASSWORD")
        if not password:
            password = click.prompt(f"Password for {username} at {url}", hide_input=True, err=True)
        with make_client(url, None, state) as anonymous:
            made = anonymous.tokens.create(
                username=username,
                password=password or "",
                name=token_name or f"mc on {socket.gethostname()}"[:100],
                scopes=[s.strip() for s in scopes.split(",") if s.strip()],
            )
        token = made.token
        created = {k: v for k, v in made.raw.items() if k != "token"}
    with make_client(url, token, state) as client:
        me = client.me()
    path = config_module.write({"url": url, "token": token or "", "username": me.username})
    result = {"url": url, "username": me.username, "roles": me.roles, "config": str(path), "token": created}
    state.emit(
        result,
        lambda: state.out.print(
            f"Logged in to {url} as [bold]{me.username}[/bold]"
            f"{' (' + ', '.join(me.roles) + ')' if me.roles else ''}; "
            f"token stored in {path}"
        ),
    )


@cli.command()
@json_option
def whoami() -> None:
    """Who the token in force belongs to, with roles and quota."""
    state = _state()
    client = state.client()
    me = client.me()

    def human() -> None:
        roles = ", ".join(me.roles) or "contributor"
        state.out.print(f"{me.username} ({roles}) at {client.url}")
        quota = me.quota or {}
        if quota:
            state.out.print(
                f"jobs: {quota.get('active_jobs')} of {quota.get('max_active_jobs')} active; compute "
                f"today: {quota.get('compute_seconds_today')} of {quota.get('daily_compute_seconds')} s"
            )

    state.emit(me.raw, human)


# --- variants ------------------------------------------------------------------------------------------------


@cli.group()
def variants() -> None:
    """List, show and create variants."""


@variants.command("list")
@click.option("--owner", help="Only this owner's variants.")
@click.option("--search", help="Full-text search.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@json_option
def variants_list(owner: str | None, search: str | None, limit: int) -> None:
    """List the variants you may see."""
    state = _state()
    found = state.client(auth=False).variants.list(owner=owner, search=search, limit=limit)

    def human() -> None:
        table = Table("variant", "relation", "status", "license", "rev", "summary", box=None)
        for v in found:
            table.add_row(
                v.full_name, v.relation, v.status, v.license, str(v.current_revision or ""), (v.summary or "")[:60]
            )
        state.out.print(table)

    state.emit([v.raw for v in found], human)


@variants.command("show")
@click.argument("variant")
@json_option
def variants_show(variant: str) -> None:
    """Show a variant (owner/name)."""
    state = _state()
    v = state.client(auth=False).variants.get(variant)

    def human() -> None:
        for label, value in (
            ("variant", v.full_name),
            ("relation", v.relation),
            ("parents", ", ".join(v.parents) or "-"),
            ("license", v.license or "-"),
            ("status", v.status),
            ("revision", v.current_revision),
            ("task", v.task or "-"),
            ("precision", v.precision or "-"),
            ("parameters", v.parameters or "-"),
            ("summary", v.summary or "-"),
        ):
            state.out.print(f"[bold]{label:>10}[/bold]  {escape(str(value))}")

    state.emit(v.raw, human)


@variants.command("create")
@click.argument("variant")
@click.option(
    "--relation",
    required=True,
    type=click.Choice(["original", "finetune", "adapter", "quantized", "merge", "distilled", "pruned"]),
)
@click.option("--parent", "parents", multiple=True, help="A parent's full name (repeat for a merge).")
@click.option("--license", "license_", required=True, help="SPDX or Hub licence id, e.g. apache-2.0.")
@click.option("--task", help="Hub pipeline tag, e.g. text-generation.")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "bf16", "fp8", "int8", "int4", "mixed"]))
@click.option("--parameters", type=click.IntRange(min=1))
@click.option("--summary")
@click.option("--tag", "tags", multiple=True)
@click.option(
    "--card",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The model card: a README.md, Hub YAML front matter welcome.",
)
@json_option
def variants_create(
    variant: str,
    relation: str,
    parents: tuple[str, ...],
    license_: str,
    task: str | None,
    precision: str | None,
    parameters: int | None,
    summary: str | None,
    tags: tuple[str, ...],
    card: Path | None,
) -> None:
    """Create VARIANT (name, or owner/name for an organization's namespace)."""
    state = _state()
    made = state.client().variants.create(
        variant,
        relation=relation,
        parents=list(parents),
        license=license_,
        task=task,
        precision=precision,
        parameters=parameters,
        summary=summary,
        tags=list(tags) or None,
        card=card.read_text(encoding="utf-8") if card else None,
    )
    state.emit(
        made.raw, lambda: state.out.print(f"created {made.full_name} (revision {made.current_revision}, {made.status})")
    )


# --- revisions -------------------------------------------------------------------------------------------------


@cli.group()
def revisions() -> None:
    """List, open and submit revisions."""


@revisions.command("list")
@click.argument("variant")
@json_option
def revisions_list(variant: str) -> None:
    """The revisions of VARIANT you may see."""
    state = _state()
    found = state.client(auth=False).revisions.list(variant)

    def human() -> None:
        table = Table("rev", "status", "files", "created", "submitted", box=None)
        for r in found:
            table.add_row(str(r.number), r.status, str(len(r.artifacts)), r.created_at or "", r.submitted_at or "")
        state.out.print(table)

    state.emit([r.raw for r in found], human)


@revisions.command("create")
@click.argument("variant")
@click.option("--notes", default="")
@click.option("--no-copy", is_flag=True, help="Start empty instead of with the current revision's files.")
@json_option
def revisions_create(variant: str, notes: str, no_copy: bool) -> None:
    """Open a new draft revision of VARIANT."""
    state = _state()
    rev = state.client().revisions.create(variant, notes=notes, copy_artifacts=not no_copy)
    state.emit(rev.raw, lambda: state.out.print(f"{variant}: revision {rev.number} ({rev.status})"))


@revisions.command("submit")
@click.argument("variant")
@click.argument("number", type=click.IntRange(min=1))
@json_option
def revisions_submit(variant: str, number: int) -> None:
    """Submit revision NUMBER of VARIANT for review."""
    state = _state()
    rev = state.client().revisions.submit(variant, number)
    state.emit(rev.raw, lambda: state.out.print(f"{variant}: revision {rev.number} {rev.status}"))


# --- push / pull -------------------------------------------------------------------------------------------------


def _bar(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    )


@cli.command()
@click.argument("variant")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--revision", type=click.IntRange(min=1), help="A draft revision (default: the current one).")
@click.option("--new-revision", is_flag=True, help="Open a new draft revision first (copying the current files).")
@json_option
def push(variant: str, paths: tuple[Path, ...], revision: int | None, new_revision: bool) -> None:
    """Upload files and folders to a draft revision of VARIANT: resumable, and files the revision already has
    (same path and sha256) are skipped."""
    state = _state()
    if revision and new_revision:
        raise click.UsageError("give --revision or --new-revision, not both")
    client = state.client()
    tasks: dict[str, TaskID] = {}
    with _bar(state.err) as bar:

        def on_file(path: str, size: int) -> None:
            tasks[path] = bar.add_task(f"hashing {escape(path)}", total=size or 1)

        def on_progress(path: str, phase: str, done: int, total: int) -> None:
            verb = "hashing" if phase == "hash" else "uploading"
            bar.update(tasks[path], completed=done, total=total or 1, description=f"{verb} {escape(path)}")

        def on_done(result: PushedFile) -> None:
            bar.update(
                tasks[result.path],
                completed=result.size_bytes or 1,
                description=f"{result.action} {escape(result.path)}",
            )
            if not state.err.is_terminal:
                extra = f" from byte {result.resumed_from}" if result.action == "resumed" else ""
                state.info(f"{result.action} {escape(result.path)} ({_human_bytes(result.size_bytes)}){extra}")

        try:
            number, results = client.uploads.push(
                variant,
                list(paths),
                revision=revision,
                new_revision=new_revision,
                on_file=on_file,
                on_progress=on_progress,
                on_done=on_done,
            )
        except KeyboardInterrupt:
            state.info("interrupted: what reached the server is kept; the same push resumes it")
            raise click.Abort() from None
    data = {"variant": variant, "revision": number, "files": [r.to_dict() for r in results]}
    counts = {a: sum(1 for r in results if r.action == a) for a in ("uploaded", "resumed", "skipped")}
    state.emit(
        data,
        lambda: state.out.print(
            f"{variant} revision {number}: {counts['uploaded']} uploaded, {counts['resumed']} resumed, "
            f"{counts['skipped']} already there"
        ),
    )


@cli.command()
@click.argument("variant")
@click.option(
    "--revision",
    default=None,
    help="A revision number, or main (the last published one). Default: the current revision you may see.",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to put the files (default: ./NAME).",
)
@json_option
def pull(variant: str, revision: str | None, directory: Path | None) -> None:
    """Download every file of a revision of VARIANT and verify each sha256; partial files are resumed."""
    state = _state()
    _, name = split_name(variant)
    directory = directory or Path(name)
    client = state.client(auth=False)
    tasks: dict[str, TaskID] = {}
    with _bar(state.err) as bar:

        def on_file(entry: FileEntry) -> None:
            tasks[entry.path] = bar.add_task(f"downloading {escape(entry.path)}", total=entry.size_bytes or 1)

        def on_progress(entry: FileEntry, done: int, total: int) -> None:
            bar.update(tasks[entry.path], completed=done, total=total or 1)

        def on_done(result: PulledFile) -> None:
            bar.update(
                tasks[result.path],
                completed=result.size_bytes or 1,
                description=f"{result.action} {escape(result.path)}",
            )
            if result.action == "skipped":
                state.warn(f"{escape(result.path)} is recorded by URI only ({escape(result.uri)}): not downloaded")
            elif not state.err.is_terminal:
                extra = f" from byte {result.resumed_from}" if result.action == "resumed" else ""
                state.info(
                    f"{result.action} {escape(result.path)} ({_human_bytes(result.size_bytes)}, sha256 verified){extra}"
                )

        try:
            number, results = client.files.pull(
                variant, revision, directory, on_file=on_file, on_progress=on_progress, on_done=on_done
            )
        except KeyboardInterrupt:
            state.info("interrupted: partial files are kept (*.mc-part); the same pull resumes them")
            raise click.Abort() from None
    data = {"variant": variant, "revision": number, "dir": str(directory), "files": [r.to_dict() for r in results]}
    verified = sum(1 for r in results if r.action != "skipped")
    state.emit(
        data, lambda: state.out.print(f"{variant} revision {number}: {verified} file(s) verified in {directory}")
    )


# --- jobs ----------------------------------------------------------------------------------------------------


@cli.group()
def jobs() -> None:
    """Submit, follow, cancel benchmark jobs and fetch their reproducibility bundles."""


def _parse_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _job_line(job: Job) -> str:
    text = f"job {job.id} {job.status}"
    if job.status == "queued" and job.queue_position is not None:
        text += f", queue position {job.queue_position}"
    if job.status == "running" and job.progress.total:
        text += f", {job.progress.done}/{job.progress.total} ({job.progress.percent:.0f}%)"
    if job.progress.eta_s is not None and not job.terminal:
        text += f", ETA {job.progress.eta_s:.0f} s"
    return text


def _follow(state: State, job: Job, timeout: float | None, interval: float) -> Job:
    """Wait for a job with a live bar (status, queue position, ETA) on a terminal, a line per change elsewhere."""
    live = state.err.is_terminal
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        console=state.err,
        disable=not live,
        transient=False,
    )
    last: list[tuple[str, Any, int]] = []

    with progress:
        task = progress.add_task(_job_line(job), total=100)

        def on_progress(current: Job) -> None:
            progress.update(task, completed=current.progress.percent, description=escape(_job_line(current)))
            if not live:
                key = (current.status, current.queue_position, int(current.progress.percent // 25))
                if not last or last[-1] != key:
                    last.append(key)
                    state.info(escape(_job_line(current)))

        return job.wait(timeout=timeout, poll_interval=interval, on_progress=on_progress)


def _finish(state: State, job: Job, requirements: list[Requirement]) -> None:
    """The end of a waited-for job: the job on stdout, then exit 1 unless it succeeded and meets every
    requirement."""
    unmet: list[str] = []
    if job.succeeded:
        for req, met, why in check_requirements(requirements, job.metrics):
            state.info(f"{'[green]met[/green]' if met else '[red]unmet[/red]'}: {escape(why)}")
            if not met:
                unmet.append(str(req))
    state.emit(job.raw, lambda: _print_job(state, job))
    if not job.succeeded:
        raise JobFailed(job)
    if unmet:
        raise RequirementUnmet(f"job {job.id}: unmet requirement(s) {', '.join(unmet)}")


def _print_job(state: State, job: Job) -> None:
    out = state.out
    out.print(f"[bold]job {job.id}[/bold] {job.status}: {job.variant} r{job.revision} on {job.benchmark}")
    if job.config:
        out.print(f"  config: {json.dumps(job.config, sort_keys=True)}")
    if job.status in ("queued", "running"):
        out.print(f"  {escape(_job_line(job))}")
    if job.result:
        for name, value in sorted(job.metrics.items()):
            out.print(f"  {name}: {value}")
        out.print(f"  verified: {job.result.verified}")
    if job.failure:
        out.print(f"  failure: {job.failure.get('reason')}: {escape(str(job.failure.get('message')))}")
    if job.log_tail and job.status in ("failed", "timed_out"):
        out.print("  log tail:\n" + escape("\n".join(job.log_tail.splitlines()[-15:])))


@jobs.command("submit")
@click.argument("variant")
@click.argument("benchmark")
@click.option("--revision", type=click.IntRange(min=1), help="Default: the variant's current revision.")
@click.option("--config", "config_json", help="The job config as a JSON object.")
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="One config value (JSON, else a string); repeatable; wins over --config.",
)
@click.option("--wait", is_flag=True, help="Follow the job until it ends; exit 1 unless it succeeded.")
@click.option("--timeout", type=click.FloatRange(min=0), help="With --wait: stop waiting after S seconds (exit 1).")
@click.option(
    "--require",
    "requires",
    multiple=True,
    metavar="'METRIC>=X'",
    help="Exit 1 unless the result's METRIC is on this side of X (>=, <=, >, <, ==); implies --wait.",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.05),
    envvar="MC_POLL_INTERVAL",
    default=2.0,
    show_default=True,
    help="Seconds between polls while waiting.",
)
@json_option
def jobs_submit(
    variant: str,
    benchmark: str,
    revision: int | None,
    config_json: str | None,
    sets: tuple[str, ...],
    wait: bool,
    timeout: float | None,
    requires: tuple[str, ...],
    interval: float,
) -> None:
    """Queue BENCHMARK on VARIANT (sent with an Idempotency-Key: a retry never makes a second job)."""
    state = _state()
    config: dict[str, Any] = {}
    if config_json:
        try:
            config = json.loads(config_json)
        except ValueError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--config") from None
        if not isinstance(config, dict):
            raise click.BadParameter("must be a JSON object", param_hint="--config")
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"'{item}' is not KEY=VALUE", param_hint="--set")
        config[key.strip()] = _parse_value(value)
    try:
        requirements = [parse_requirement(r) for r in requires]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--require") from None
    if timeout is not None and not (wait or requirements):
        raise click.UsageError("--timeout needs --wait")
    client = state.client()
    job = client.jobs.submit(variant, benchmark, revision=revision, config=config)
    state.info(f"submitted job {job.id} ({job.status}): {job.variant} r{job.revision} on {job.benchmark}")
    if not (wait or requirements):
        state.emit(job.raw, lambda: _print_job(state, job))
        return
    _wait_and_finish(state, job, timeout, interval, requirements)


def _wait_and_finish(
    state: State, job: Job, timeout: float | None, interval: float, requirements: list[Requirement]
) -> None:
    try:
        job = _follow(state, job, timeout, interval)
    except WaitTimeout as exc:
        last = exc.job
        state.emit(last.raw, lambda: _print_job(state, last))
        raise
    _finish(state, job, requirements)


@jobs.command("show")
@click.argument("job_id", type=click.IntRange(min=1))
@json_option
def jobs_show(job_id: int) -> None:
    """Show a job: status, progress, result or failure."""
    state = _state()
    job = state.client(auth=False).jobs.get(job_id)
    state.emit(job.raw, lambda: _print_job(state, job))


@jobs.command("watch")
@click.argument("job_id", type=click.IntRange(min=1))
@click.option("--timeout", type=click.FloatRange(min=0), help="Stop waiting after S seconds (exit 1).")
@click.option("--require", "requires", multiple=True, metavar="'METRIC>=X'")
@click.option("--interval", type=click.FloatRange(min=0.05), envvar="MC_POLL_INTERVAL", default=2.0, show_default=True)
@json_option
def jobs_watch(job_id: int, timeout: float | None, requires: tuple[str, ...], interval: float) -> None:
    """Follow a job until it ends; exit 1 unless it succeeded (and meets every --require)."""
    state = _state()
    try:
        requirements = [parse_requirement(r) for r in requires]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--require") from None
    job = state.client(auth=False).jobs.get(job_id)
    _wait_and_finish(state, job, timeout, interval, requirements)


@jobs.command("cancel")
@click.argument("job_id", type=click.IntRange(min=1))
@json_option
def jobs_cancel(job_id: int) -> None:
    """Cancel a job: at once when queued, at its next checkpoint when running."""
    state = _state()
    job = state.client().jobs.cancel(job_id)
    note = " (stops at its next checkpoint)" if job.status == "running" else ""
    state.emit(job.raw, lambda: state.out.print(f"job {job.id} {job.status}{note}"))


@jobs.command("bundle")
@click.argument("job_id", type=click.IntRange(min=1))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the bundle to FILE (default: stdout).",
)
@json_option
def jobs_bundle(job_id: int, output: Path | None) -> None:
    """The reproducibility bundle of a succeeded job: runner, config, dtype, seed, dataset and artifact sha256s,
    environment."""
    state = _state()
    bundle = state.client(auth=False).jobs.bundle(job_id)
    text = json.dumps(bundle, indent=2, ensure_ascii=False, default=str)
    if output is None:
        click.echo(text)
        return
    output.write_text(text + "\n", encoding="utf-8")
    state.info(f"wrote the bundle of job {job_id} to {output}")
    if state.json:
        click.echo(text)


# --- leaderboard / reviews / checklist -----------------------------------------------------------------------


@cli.command()
@click.argument("benchmark")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@json_option
def leaderboard(benchmark: str, limit: int) -> None:
    """The leaderboard of BENCHMARK: published variants ranked on their best result."""
    state = _state()
    board = state.client(auth=False).leaderboards.get(benchmark, limit=limit)

    def human() -> None:
        info = board.benchmark
        state.out.print(
            f"[bold]{escape(str(info.get('name', benchmark)))}[/bold] v{info.get('version')} - "
            f"{info.get('metric')} ({'higher' if info.get('higher_is_better', True) else 'lower'} is "
            "better)"
        )
        table = Table("#", "variant", "rev", "score", "verified", "vs parents", box=None)
        for row in board.results:
            deltas = ", ".join(f"{p}: {d:+.4g}" for p, d in row.delta_vs_parents.items() if d is not None)
            table.add_row(
                str(row.rank),
                row.variant,
                str(row.revision),
                "" if row.score is None else f"{row.score:.4g}",
                "yes" if row.verified else "no",
                deltas,
            )
        state.out.print(table)

    state.emit(board.raw | {"results": [r.raw for r in board.results]}, human)


@cli.group()
def reviews() -> None:
    """Review a revision: approve or request changes."""


def _review(decision: str, variant: str, number: int, body: str) -> None:
    state = _state()
    review = state.client().reviews.create(variant, number, decision, body)
    state.emit(
        review.raw, lambda: state.out.print(f"{review.decision} by {review.reviewer} on {variant} revision {number}")
    )


@reviews.command("approve")
@click.argument("variant")
@click.argument("number", type=click.IntRange(min=1))
@click.option("--body", default="", help="The review text (markdown).")
@json_option
def reviews_approve(variant: str, number: int, body: str) -> None:
    """Approve revision NUMBER of VARIANT."""
    _review("approve", variant, number, body)


@reviews.command("request-changes")
@click.argument("variant")
@click.argument("number", type=click.IntRange(min=1))
@click.option("--body", required=True, help="What to change (markdown).")
@json_option
def reviews_request_changes(variant: str, number: int, body: str) -> None:
    """Request changes on revision NUMBER of VARIANT."""
    _review("request_changes", variant, number, body)


@reviews.command("list")
@click.argument("variant")
@click.argument("number", type=click.IntRange(min=1))
@json_option
def reviews_list(variant: str, number: int) -> None:
    """The reviews of revision NUMBER of VARIANT."""
    state = _state()
    found = state.client(auth=False).reviews.list(variant, number)

    def human() -> None:
        for r in found:
            state.out.print(
                f"{r.created_at}  {r.reviewer}: {r.decision}{' (stale)' if r.stale else ''}  {escape(r.body[:80])}"
            )

    state.emit([r.raw for r in found], human)


@cli.group()
def checklist() -> None:
    """The best-practice checklist of a submitted revision."""


@checklist.command("show")
@click.argument("variant")
@click.argument("number", type=click.IntRange(min=1))
@json_option
def checklist_show(variant: str, number: int) -> None:
    """Show the checklist of revision NUMBER of VARIANT: level, progress and every item."""
    state = _state()
    cl = state.client(auth=False).checklists.get(variant, number)

    def human() -> None:
        progress = ", ".join(f"{k} {v}%" for k, v in (cl.progress or {}).items())
        state.out.print(f"[bold]{cl.template} v{cl.version}[/bold]: level {cl.level} ({progress})")
        table = Table("item", "level", "status", "required", "verified by", "title", box=None)
        for item in cl.items:
            table.add_row(
                item.key, item.level, item.status, "yes" if item.required else "", item.verified_by or "", item.title
            )
        state.out.print(table)

    state.emit(cl.raw, human)


@checklist.command("answer")
@click.argument("variant")
@click.argument("number", type=click.IntRange(min=1))
@click.argument("key")
@click.option("--status", required=True, type=click.Choice(["met", "unmet", "n/a", "unknown"]))
@click.option("--justification", help="Why (required for n/a, and where the item asks).")
@click.option("--evidence", help="An evidence URL.")
@json_option
def checklist_answer(
    variant: str, number: int, key: str, status: str, justification: str | None, evidence: str | None
) -> None:
    """Answer checklist item KEY of revision NUMBER of VARIANT."""
    state = _state()
    item = state.client().checklists.answer(
        variant, number, key, status=status, justification=justification, evidence_url=evidence
    )
    state.emit(item.raw, lambda: state.out.print(f"{item.key}: {item.status} (answered by {item.answered_by})"))


def main(argv: list[str] | None = None) -> None:
    """The console script `mc`."""
    cli.main(args=argv, prog_name="mc")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
