"""run_in_process: an in-process runner (noop) under a wall-clock limit, interrupted even mid-sleep."""

from __future__ import annotations

import signal
import threading
import time
from typing import Any, ClassVar

import pytest

from workers.runners.base import JobCancelled, ProgressCallback, Runner, RunnerError, RunResult, RunSpec
from workers.runners.inprocess import run_in_process
from workers.runners.noop import MAX_SLEEP_S, NoopRunner


def spec(**config: Any) -> RunSpec:
    return RunSpec(job_id="j", artifacts=(), dataset=None, config=config)


class Swallower(Runner):
    """Sleeps, and catches every Exception a careless runner would catch."""

    key: ClassVar[str] = "test-swallow"
    version: ClassVar[str] = "0"
    loadable_formats: ClassVar[frozenset[str]] = frozenset()
    config_schema: ClassVar[dict[str, Any]] = {"type": "object"}

    def run(self, spec: RunSpec, progress: ProgressCallback) -> RunResult:
        for _ in range(100):
            try:
                time.sleep(1)
            except Exception:  # noqa: BLE001 - the point of the test
                pass
        raise AssertionError("never reached")


class Crash(Swallower):
    def run(self, spec: RunSpec, progress: ProgressCallback) -> RunResult:
        raise KeyError("boom")


class Hog(Swallower):
    def run(self, spec: RunSpec, progress: ProgressCallback) -> RunResult:
        raise MemoryError()


def test_a_long_sleep_is_cut_at_the_wall_clock_limit():
    started = time.monotonic()
    with pytest.raises(RunnerError) as info:
        run_in_process(NoopRunner(), spec(sleep_s=MAX_SLEEP_S), lambda d, t: None, timeout_s=0.5)
    assert info.value.reason == "timeout"
    assert "0.5 s" in info.value.message
    assert time.monotonic() - started < MAX_SLEEP_S / 2  # interrupted in the middle of its one sleep


def test_the_runner_cannot_swallow_the_limit():
    with pytest.raises(RunnerError) as info:
        run_in_process(Swallower(), spec(), lambda d, t: None, timeout_s=0.3)
    assert info.value.reason == "timeout"


def test_the_alarm_waits_for_the_progress_callback_to_finish():
    finished: list[int] = []

    def slow_progress(done: int, total: int) -> None:
        time.sleep(0.6)  # past the deadline, as a slow database write would be
        finished.append(done)

    with pytest.raises(RunnerError) as info:
        run_in_process(NoopRunner(), spec(steps=5, sleep_s=5), slow_progress, timeout_s=0.3)
    assert info.value.reason == "timeout"
    assert finished == [0]  # the callback that was running when the alarm fired completed; no other ran


def test_success_disarms_the_alarm_and_restores_the_handler():
    before = signal.getsignal(signal.SIGALRM)
    result = run_in_process(NoopRunner(), spec(steps=2), lambda d, t: None, timeout_s=5)
    assert result.metrics == {"ok": 1.0}
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) is before


def test_outside_the_main_thread_progress_enforces_the_limit():
    outcome: list[BaseException] = []

    def target() -> None:
        try:
            run_in_process(NoopRunner(), spec(steps=20, sleep_s=10), lambda d, t: None, timeout_s=0.3)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=30)
    [exc] = outcome
    assert isinstance(exc, RunnerError) and exc.reason == "timeout"


def test_errors_keep_their_reasons():
    with pytest.raises(RunnerError) as info:
        run_in_process(Crash(), spec(), lambda d, t: None, timeout_s=5)
    assert info.value.reason == "runner_error" and "KeyError" in info.value.message
    with pytest.raises(RunnerError) as info:
        run_in_process(Hog(), spec(), lambda d, t: None, timeout_s=5)
    assert info.value.reason == "out_of_memory"
    with pytest.raises(RunnerError) as info:
        run_in_process(NoopRunner(), spec(sleep_s=MAX_SLEEP_S + 1), lambda d, t: None, timeout_s=5)
    assert info.value.reason == "invalid_config"

    def cancel(done: int, total: int) -> None:
        raise JobCancelled()

    with pytest.raises(JobCancelled):
        run_in_process(NoopRunner(), spec(steps=3), cancel, timeout_s=5)
