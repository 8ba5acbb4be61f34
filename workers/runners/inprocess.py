"""Run a runner inside the calling process with a wall-clock limit (runners that load nothing, such as ``noop``).

A runner in a sandbox child is stopped by killing the child; one running in the worker process itself
cannot be killed without the worker, so :func:`run_in_process` interrupts it instead:

- in the main thread, where no interval timer is already armed (a Celery prefork or solo pool runs tasks
  there), ``SIGALRM`` fires at the deadline and raises out of whatever the runner is doing, a
  ``time.sleep`` included. While the runner's ``progress`` callback runs (it writes to the database),
  the alarm is held back and raised as soon as the callback returns, so the worker's own work is never
  cut in half;
- elsewhere (a thread pool), each ``progress`` call checks the deadline, and a run that returns after
  its deadline fails all the same.

Either way the run fails with ``RunnerError("timeout")``. The exception that interrupts the runner is a
:class:`BaseException`, so a runner's ``except Exception`` cannot swallow it.
"""

from __future__ import annotations

import signal
import threading
import time
import traceback
from types import FrameType
from typing import Any

from workers.runners.base import JobCancelled, ProgressCallback, Runner, RunnerError, RunResult, RunSpec


class _WallClockExpired(BaseException):
    """Raised into the runner at its deadline."""


def _alarm_usable() -> bool:
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        return False
    return signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def run_in_process(runner: Runner, spec: RunSpec, progress: ProgressCallback, *, timeout_s: float) -> RunResult:
    """Check the inputs and run ``runner`` here, failing with ``RunnerError("timeout")`` after ``timeout_s``.

    ``RunnerError`` and :class:`JobCancelled` (from ``progress``) propagate; a ``MemoryError`` becomes
    ``out_of_memory`` and any other exception ``runner_error`` (with the traceback's last lines in
    ``log_tail``): a runner bug is the job's failure, not the worker's.
    """
    if timeout_s <= 0:
        raise RunnerError("invalid_config", "timeout_s must be positive")
    deadline = time.monotonic() + timeout_s
    state = {"in_callback": False, "expired": False}

    def timed_out() -> RunnerError:
        return RunnerError("timeout", f"the run exceeded its wall-clock limit of {timeout_s:g} s")

    def guarded(done: int, total: int) -> None:
        if time.monotonic() >= deadline:
            raise _WallClockExpired()
        state["in_callback"] = True
        try:
            progress(done, total)
        finally:
            state["in_callback"] = False
        if state["expired"]:
            raise _WallClockExpired()

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        if state["in_callback"]:
            state["expired"] = True
            return
        raise _WallClockExpired()

    use_alarm = _alarm_usable()
    previous: Any = None
    try:
        if use_alarm:
            previous = signal.signal(signal.SIGALRM, on_alarm)
            signal.setitimer(signal.ITIMER_REAL, timeout_s)
        try:
            runner.check_inputs(spec)
            result = runner.run(spec, guarded)
        except (RunnerError, JobCancelled, _WallClockExpired):
            raise
        except MemoryError as exc:
            raise RunnerError("out_of_memory", f"the runner ran out of memory: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - a runner bug is the job's failure, not the worker's
            err = RunnerError("runner_error", f"{type(exc).__name__}: {exc}")
            err.log_tail = traceback.format_exc().splitlines()[-12:]
            raise err from exc
        finally:
            if use_alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, signal.SIG_DFL if previous is None else previous)
    except _WallClockExpired:
        # Outside the inner block too: the alarm may fire while the outcome is being handled.
        raise timed_out() from None
    if time.monotonic() >= deadline:
        raise timed_out()
    return result


__all__ = ["run_in_process"]
