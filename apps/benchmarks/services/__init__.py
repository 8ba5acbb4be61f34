"""Benchmark engine writes, one module per responsibility; every state change is audited.

- :mod:`.definitions`: benchmarks, their frozen versions, the maintainers' blocklist;
- :mod:`.submission`: config validation, pre-queue checks, dedupe, single and batch submission;
- :mod:`.quota`: which namespace a job is charged to, its row lock and quota checks;
- :mod:`.lifecycle`: claim, progress and heartbeats, complete, fail, cancel, retry (the job state machine);
- :mod:`.verification`: independent re-runs that verify results, and their judgement;
- :mod:`.recovery`: the beat's repair of stale leases and lost messages.

Inside the package imports go one way: recovery → lifecycle → verification and submission → quota, and
submission → definitions. Fair-share dispatch (:mod:`apps.benchmarks.dispatch`) and the selectors sit below all
of them and import none of it. This module re-exports the public API: ``from apps.benchmarks import services``
keeps working."""

from .definitions import (
    BENCHMARK_FIELDS,
    benchmark_create,
    benchmark_current_spec,
    benchmark_definition_errors,
    benchmark_update,
    blocklist_add,
    blocklist_remove,
)
from .lifecycle import (
    Completion,
    job_cancel,
    job_claim,
    job_complete,
    job_fail,
    job_progress,
    job_retry,
    job_verify,
    jobs_claim,
    jobs_complete,
    jobs_heartbeat,
)
from .quota import job_namespace, lock_namespace, quota_enforce, quota_enforce_batch, quota_enforce_compute
from .recovery import jobs_recover
from .submission import (
    BATCH_MAX,
    canonical_config,
    config_validate,
    ensure_runner_open,
    job_submit,
    jobs_submit_batch,
    submission_problems,
)
from .verification import spot_check_rate, verification_request, verification_resolve

__all__ = [
    "BATCH_MAX",
    "BENCHMARK_FIELDS",
    "Completion",
    "benchmark_create",
    "benchmark_current_spec",
    "benchmark_definition_errors",
    "benchmark_update",
    "blocklist_add",
    "blocklist_remove",
    "canonical_config",
    "config_validate",
    "ensure_runner_open",
    "job_cancel",
    "job_claim",
    "job_complete",
    "job_fail",
    "job_namespace",
    "job_progress",
    "job_retry",
    "job_submit",
    "job_verify",
    "jobs_claim",
    "jobs_complete",
    "jobs_heartbeat",
    "jobs_recover",
    "jobs_submit_batch",
    "lock_namespace",
    "quota_enforce",
    "quota_enforce_batch",
    "quota_enforce_compute",
    "spot_check_rate",
    "submission_problems",
    "verification_request",
    "verification_resolve",
]
