"""`seed_demo` end to end: the demo jobs it queues run on a real worker and land on the leaderboards."""

import pytest

from tests.fixtures import wait_for
from workers.runners.registry import available_runners

pytestmark = [pytest.mark.flow, pytest.mark.django_db(transaction=True)]

TERMINAL = ("succeeded", "failed", "timed_out", "cancelled")


def _board(client, slug):
    return {row["variant"]: row for row in client.get(f"/api/v1/leaderboards/{slug}/").json()["results"]}


def test_seeded_demo_jobs_run_and_reach_the_leaderboards(celery_worker_process, client_for):
    from apps.accounts.models import User
    from apps.benchmarks.models import BenchmarkJob
    from apps.demo.seed import seed_demo

    tinylm_dir = None
    if {"perplexity", "lm-eval"} <= set(available_runners()):
        from workers.runners.tests import hf_support

        tinylm_dir = hf_support.tinylm_dir()
    summary = seed_demo("commons-demo", runs=True, queue_jobs=True, tinylm_dir=tinylm_dir)
    ids = [job.pk for job in summary["jobs"]]
    assert len(ids) >= 3

    def all_done():
        # the demo jobs and the spot checks the first results of a benchmark get
        jobs = list(BenchmarkJob.objects.values_list("id", "status"))
        return jobs if jobs and all(status in TERMINAL for _, status in jobs) else None

    wait_for(all_done, timeout=600, interval=1, message="the demo jobs to finish")
    failed = list(BenchmarkJob.objects.exclude(status="succeeded").values("id", "status", "failure_message"))
    assert not failed, (failed, celery_worker_process.output()[-4000:])

    client = client_for(User.objects.get(username="alice"))
    digits = _board(client, "digits")
    assert 0.97 < digits["commons/digits-mlp"]["score"] < 0.98 and digits["commons/digits-mlp"]["verified"]
    if tinylm_dir is not None:
        ppl = _board(client, "tinylm-perplexity")
        base, harbour = ppl["commons/tinylm-base"], ppl["alice/tinylm-harbour"]
        # the fine-tune is better (lower perplexity) on the held-out harbour text, ranked first, delta < 0
        assert harbour["rank"] == 1 and harbour["score"] < base["score"]
        assert harbour["delta_vs_parents"]["commons/tinylm-base"] == pytest.approx(
            harbour["score"] - base["score"], abs=1e-5
        )
        cloze = _board(client, "tinylm-lmeval")
        assert set(cloze) == {"commons/tinylm-base", "alice/tinylm-harbour"}
        assert all(0.0 <= row["score"] <= 1.0 for row in cloze.values())
    if "sts-mini" in summary["benchmarks"] and "sts-mini" not in summary["skipped"]:
        sts = _board(client, "sts-mini")
        assert sts["commons/all-MiniLM-L6-v2"]["score"] > 0.9
