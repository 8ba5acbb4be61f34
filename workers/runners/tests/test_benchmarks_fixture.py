"""fixtures/benchmarks.json: what seeding loads must match the files, the runners and their schemas."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from pathlib import Path

import jsonschema
import pytest

from workers.runners.registry import ENTRY_POINT_GROUP, runner_class

REPO = Path(__file__).resolve().parents[3]
DOC = json.loads((REPO / "fixtures" / "benchmarks.json").read_text(encoding="utf-8"))
BENCHMARKS = {b["slug"]: b for b in DOC["benchmarks"]}
FIELDS = {
    "slug",
    "name",
    "version",
    "description",
    "task",
    "runner",
    "requires_extra",
    "dataset",
    "metrics",
    "config_schema",
    "default_config",
    "resource_class",
    "timeout_s",
    "max_attempts",
    "tolerance",
    "demo_models",
}


#: Every runner name registered, whether or not its extra is installed here.
REGISTERED = {ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def test_the_five_benchmarks():
    assert sorted(BENCHMARKS) == ["digits", "noop", "sts-mini", "tinylm-lmeval", "tinylm-perplexity"]


@pytest.mark.parametrize("slug", sorted(BENCHMARKS))
def test_definition_is_complete_and_consistent(slug):
    b = BENCHMARKS[slug]
    assert set(b) == FIELDS
    assert b["runner"] in REGISTERED
    assert b["resource_class"] in ("cpu", "gpu")
    assert 1 <= b["timeout_s"] <= 7 * 24 * 3600 and 1 <= b["max_attempts"] <= 10 and b["tolerance"] >= 0
    names = [m["name"] for m in b["metrics"]]
    assert len(names) == len(set(names)) and sum(bool(m["primary"]) for m in b["metrics"]) == 1
    assert all(isinstance(m["higher_is_better"], bool) for m in b["metrics"])
    jsonschema.Draft202012Validator.check_schema(b["config_schema"])
    assert b["config_schema"]["type"] == "object"
    jsonschema.validate(b["default_config"], b["config_schema"])
    # Every config the benchmark admits is one its runner admits: no property the runner lacks.
    cls = runner_class(b["runner"])  # None when the runner's extra is not installed
    if cls is None:
        pytest.skip(f"the extra of runner {b['runner']!r} is not installed")
    assert set(b["config_schema"]["properties"]) <= set(cls.config_schema["properties"])
    cls().validate_config(b["default_config"])


@pytest.mark.parametrize("slug", [s for s, b in BENCHMARKS.items() if b["dataset"] is not None])
def test_dataset_file_matches(slug):
    dataset = BENCHMARKS[slug]["dataset"]
    path = REPO / dataset["uri"]
    assert not Path(dataset["uri"]).is_absolute()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == dataset["sha256"]
    assert path.stat().st_size == dataset["size_bytes"]
    assert dataset["license"]


def test_digits_matches_the_fixture_manifest():
    manifest = json.loads((REPO / "fixtures" / "digits" / "manifest.json").read_text())
    entry = next(f for f in manifest["files"] if f["path"] == "digits-test.npz")
    assert BENCHMARKS["digits"]["dataset"]["sha256"] == entry["sha256"]


def test_lmeval_benchmark_pins_its_task():
    schema = BENCHMARKS["tinylm-lmeval"]["config_schema"]
    ok = dict(BENCHMARKS["tinylm-lmeval"]["default_config"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**ok, "include_path": "apps"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**ok, "tasks": ["arc_easy"]}, schema)
