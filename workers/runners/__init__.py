"""Benchmark runners: ``Runner.run(spec, progress) -> RunResult``, with no Django or Celery imports.

The runners registered under the ``modelcommons.runners`` entry-point group are listed by
:func:`available_runners` (:mod:`workers.runners.registry`); :func:`workers.runners.sandbox.run_in_child` runs one
in a child process with a wall-clock timeout and a memory limit.
"""

from workers.runners import base, registry
from workers.runners.base import *  # noqa: F403  (the package re-exports the runner interface)
from workers.runners.registry import *  # noqa: F403  (and the registry)

# One list of the public names: the interface module's and the registry's.
__all__ = [*base.__all__, *registry.__all__]
