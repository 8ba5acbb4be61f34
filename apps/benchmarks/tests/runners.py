"""The engine's test runners, named by module path (``MC_ALLOW_RUNNER_PATHS``): they live in
``workers/runners/tests/engine_runners.py``, where the sandbox child can import them."""

from workers.runners.tests.engine_runners import (  # noqa: F401 - re-exported for the engine's tests
    CONSTANT,
    KILL_WORKER,
    MODULE,
    RANDOM_METRIC,
    STEPS,
    ConstantRunner,
    KillWorkerRunner,
    RandomMetricRunner,
    StepsRunner,
)
