"""The run preamble and result helpers every runner shares (``Runner.begin`` / ``Runner.result``)."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import pytest

from workers.runners.base import ProgressCallback, Runner, RunnerError, RunResult, RunSpec


class _EchoRunner(Runner):
    key: ClassVar[str] = "echo"
    version: ClassVar[str] = "0.1"
    loadable_formats: ClassVar[frozenset[str]] = frozenset()
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"word": {"type": "string", "default": "hi"}},
        "additionalProperties": False,
    }

    def run(self, spec: RunSpec, progress: ProgressCallback) -> RunResult:
        run_log, config = self.begin(spec)
        run_log.note(f"word {config['word']}")
        return self.result(run_log, metrics={"ok": 1.0}, stderr={}, samples=1, environment={"seed": spec.seed})


def test_begin_validates_and_result_carries_the_log(caplog):
    spec = RunSpec(job_id="j", artifacts=(), dataset=None, config={}, seed=3)
    with caplog.at_level(logging.INFO, logger=__name__):
        result = _EchoRunner().run(spec, lambda done, total: None)
    assert result.log == ["word hi"]
    assert "word hi" in caplog.text  # logged under the runner's own module
    assert (result.runner, result.runner_version, result.samples) == ("echo", "0.1", 1)
    assert result.environment == {"seed": 3}
    assert result.duration_s >= 0


def test_begin_refuses_an_invalid_config():
    spec = RunSpec(job_id="j", artifacts=(), dataset=None, config={"nope": 1})
    with pytest.raises(RunnerError) as info:
        _EchoRunner().run(spec, lambda done, total: None)
    assert info.value.reason == "invalid_config"
