"""Benchmark runners: ``Runner.run(spec, progress) -> RunResult``, with no Django or Celery imports.

Built-in runners and the ``modelcommons.runners`` entry-point group are listed by
:func:`available_runners`; :func:`workers.runners.sandbox.run_in_child` runs one in a child process
with a wall-clock timeout and a memory limit.
"""

from workers.runners import base
from workers.runners.base import *  # noqa: F403  (the package re-exports the runner interface)

# One list of the public names: the interface module's.
__all__ = list(base.__all__)
