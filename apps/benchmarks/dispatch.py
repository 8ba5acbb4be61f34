"""Fair-share dispatch, recovery of lost work, and the registry of live workers.

Why a dispatcher instead of sending every job to the broker at submission: a broker queue is FIFO, so one
user's 500 jobs sent first would run before anybody else's. Here the database row is the queue, and only a few
jobs per broker queue are sent ahead and not yet claimed (the buffer). Each time a slot frees (a claim, a
cancel, a beat tick) or jobs arrive (a submission asks a worker to dispatch, coalesced:
:func:`jobs_dispatch_requested_on_commit`) the dispatcher picks the next jobs by

1. ``priority`` (maintainer-set), highest first;
2. fair share: the namespace holding the fewest of the queue's slots goes first. Shares are kept per namespace
   a job is charged to (``BenchmarkJob.charged_to``: an organization for its members' jobs on its variants, the
   submitter otherwise; :mod:`apps.benchmarks.services.quota`), so a lab with ten accounts working under its
   organization gets one share, not ten. A job's *share key* is the number of its namespace's jobs already in
   flight in that queue (sent or running) plus its rank among the namespace's waiting jobs, so namespaces take
   turns, round robin;
3. on equal share keys, the namespace served longest ago (the newest ``dispatched_at`` of its jobs in flight;
   none in flight goes first): without it the oldest backlog would win every tie, and with two slots a
   namespace of old jobs would start two jobs for each one of a newcomer's;
4. the oldest job.

A single job of a new namespace therefore waits for at most the jobs already in the buffer, never for
another namespace's backlog. The API's queue positions use the same order (:mod:`apps.benchmarks.selectors`).

The buffer has two lanes, each in fair-share order:
- jobs of sandboxed runners (seconds to hours each): at most ``MC_DISPATCH_BUFFER`` sent ahead, one id per
  message;
- jobs of in-process runners (``MC_IN_PROCESS_RUNNERS``, such as ``noop``: milliseconds each, where the cost of
  a message per job would dominate): at most ``MC_DISPATCH_QUICK_BUFFER`` sent ahead, in chunks of up to
  ``MC_DISPATCH_CHUNK`` consecutive ids per message, which a worker claims in one statement and whose results
  it writes in bulk (:func:`apps.benchmarks.services.lifecycle.jobs_claim`, :func:`~.lifecycle.jobs_complete`).
  Fewer than a chunk of them are held back while the lane has work in flight, and go together when it ends
  (Nagle's rule, ``MC_DISPATCH_HOLD_S``: :func:`_holds_partial_chunk`).
So a newcomer's sandboxed job waits behind at most ``MC_DISPATCH_BUFFER`` sandboxed jobs of others (and a few
milliseconds of short ones), and a short job behind at most ``MC_DISPATCH_QUICK_BUFFER`` short ones (and the end
of the lane's work in flight, if that began less than ``MC_DISPATCH_HOLD_S`` ago).

Messages carry only job ids. A job whose message never reached a worker (broker down, a worker killed with
prefetched messages) is found by :func:`apps.benchmarks.services.recovery.jobs_recover` and sent again.
Duplicates are harmless: the claim is a compare-and-set.

This module imports nothing above the models: the services call it, never the other way round.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Max, Q
from django.db.models.expressions import Window
from django.db.models.functions import Coalesce, RowNumber
from django.utils import timezone

from .choices import JobStatus, ResourceClass, queue_for, worker_queue
from .models import Benchmark, BenchmarkJob, BenchmarkVersion, DispatchQueue, WorkerNode

logger = logging.getLogger(__name__)

RUN_JOB_TASK = "workers.tasks.run_job"
RUN_JOBS_TASK = "workers.tasks.run_jobs"
DISPATCH_TASK = "workers.tasks.jobs_dispatch"


# ---------------------------------------------------------------------------------------------------------
# Live workers
# ---------------------------------------------------------------------------------------------------------


def worker_seen(
    *, name: str, hostname: str = "", pid: int | None = None, queues: list[str] | None = None, started: bool = False
) -> None:
    """Record that a worker is alive and which queues it consumes (called by the worker's presence thread)."""
    now = timezone.now()
    fields: dict[str, Any] = {"last_seen_at": now, "stopped_at": None, "hostname": hostname[:200], "pid": pid}
    if queues is not None:
        fields["queues"] = sorted(queues)
    if started:
        fields["started_at"] = now
    if not WorkerNode.objects.filter(name=name).update(**fields):
        fields.setdefault("started_at", now)
        WorkerNode.objects.bulk_create([WorkerNode(name=name, **fields)], ignore_conflicts=True)


def worker_stopped(*, name: str) -> None:
    WorkerNode.objects.filter(name=name).update(stopped_at=timezone.now())


def live_workers(queue: str | None = None, *, now: datetime | None = None) -> list[WorkerNode]:
    """Workers seen within MC_WORKER_STALE_S, optionally only those consuming `queue`."""
    now = now or timezone.now()
    nodes = list(
        WorkerNode.objects.filter(
            last_seen_at__gte=now - timedelta(seconds=settings.MC_WORKER_STALE_S), stopped_at__isnull=True
        )
    )
    if queue is not None:
        nodes = [n for n in nodes if queue in (n.queues or [])]
    return nodes


# ---------------------------------------------------------------------------------------------------------
# Dispatch
# ---------------------------------------------------------------------------------------------------------


def known_queues() -> list[str]:
    queues = {queue_for(rc) for rc in ResourceClass.values}
    queues.update(
        BenchmarkJob.objects.filter(status=JobStatus.QUEUED).order_by().values_list("queue", flat=True).distinct()
    )
    return sorted(queues)


def fair_share_pick(queue: str, n: int, now: datetime, quick: bool | None = None) -> list[tuple[int, int, int, str]]:
    """The next `n` waiting jobs of `queue` in dispatch order: (id, namespace id, priority, exclude_worker).
    `quick` True/False keeps only the jobs of in-process runners / of the others (the two lanes)."""
    if n <= 0:
        return []
    in_flight: dict[int | None, tuple[int, datetime | None]] = {
        namespace: (count, last)
        for namespace, count, last in BenchmarkJob.objects.in_flight(queue)
        .order_by()
        .values("charged_to_id")
        .annotate(n=Count("id"), last=Max("dispatched_at"))
        .values_list("charged_to_id", "n", "last")
    }
    waiting = BenchmarkJob.objects.waiting(queue, now)
    if quick is not None:
        # The frozen spec's runner, else the benchmark's.
        waiting = waiting.annotate(runner_key=Coalesce(F("spec__runner"), F("benchmark__runner")))
        in_lane = Q(runner_key__in=list(settings.MC_IN_PROCESS_RUNNERS))
        waiting = waiting.filter(in_lane) if quick else waiting.exclude(in_lane)
    rows = list(
        waiting.annotate(
            rank=Window(RowNumber(), partition_by=[F("charged_to_id"), F("priority")], order_by=F("id").asc())
        )
        .filter(rank__lte=n)
        .values_list("id", "charged_to_id", "priority", "rank", "exclude_worker")
    )

    def order(row: tuple[Any, ...]) -> tuple[Any, ...]:
        held, last = in_flight.get(row[1], (0, None))
        return (-row[2], held + row[3] - 1, last is not None, last or now, row[0])

    rows.sort(key=order)
    return [(r[0], r[1], r[2], r[4]) for r in rows[:n]]


def _lanes_now(queue: str, now: datetime) -> dict[str, int]:
    """One look at a queue's jobs, per lane: how many are sent and unclaimed (`slow_sent`, `quick_sent`), how many
    wait to be sent (`slow_waiting`, `quick_waiting`), and how many jobs of in-process runners are in flight
    (sent, or running) since less than MC_DISPATCH_HOLD_S (`quick_fresh`: see :func:`_holds_partial_chunk`).
    Plain SQL: it runs on every claim and every submission, and building it with the ORM cost twice its
    execution."""
    quick = list(settings.MC_IN_PROCESS_RUNNERS)
    quote = connection.ops.quote_name
    is_quick = f"COALESCE(v.runner, b.runner) IN ({', '.join(['%s'] * len(quick))})" if quick else "1 = 0"
    queued = "j.status = %s"
    waiting = (
        f"{queued} AND j.dispatched_at IS NULL AND NOT j.cancel_requested "
        "AND (j.not_before IS NULL OR j.not_before <= %s)"
    )
    sent = f"{queued} AND j.dispatched_at IS NOT NULL"
    fresh = f"(({sent} AND j.dispatched_at >= %s) OR (j.status = %s AND j.started_at >= %s))"
    # Table names come from the models' metadata; every value is a parameter.
    sql = (
        f"SELECT SUM(CASE WHEN {sent} AND NOT ({is_quick}) THEN 1 ELSE 0 END), "  # noqa: S608
        f"SUM(CASE WHEN {sent} AND {is_quick} THEN 1 ELSE 0 END), "
        f"SUM(CASE WHEN {waiting} AND NOT ({is_quick}) THEN 1 ELSE 0 END), "
        f"SUM(CASE WHEN {waiting} AND {is_quick} THEN 1 ELSE 0 END), "
        f"SUM(CASE WHEN {fresh} AND {is_quick} THEN 1 ELSE 0 END) "
        f"FROM {quote(BenchmarkJob._meta.db_table)} j "
        f"JOIN {quote(Benchmark._meta.db_table)} b ON b.id = j.benchmark_id "
        f"LEFT JOIN {quote(BenchmarkVersion._meta.db_table)} v ON v.id = j.spec_id "
        f"WHERE j.queue = %s AND j.status IN (%s, %s)"
    )
    at = connection.ops.adapt_datetimefield_value(now)
    cutoff = connection.ops.adapt_datetimefield_value(now - timedelta(seconds=_hold_s()))
    q, r = JobStatus.QUEUED.value, JobStatus.RUNNING.value
    params = [
        *[q, *quick],
        *[q, *quick],
        *[q, at, *quick],
        *[q, at, *quick],
        *[q, cutoff, r, cutoff, *quick],
        *[queue, q, r],
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return dict(
        zip(
            ("slow_sent", "quick_sent", "slow_waiting", "quick_waiting", "quick_fresh"),
            (int(v or 0) for v in row),
            strict=True,
        )
    )


def _hold_s() -> float:
    return max(0.0, float(settings.MC_DISPATCH_HOLD_S))


def _quick_chunk() -> int:
    """Ids per message of in-process jobs: up to MC_DISPATCH_CHUNK and half the quick buffer."""
    return max(1, min(int(settings.MC_DISPATCH_CHUNK), -(-_lanes()[1] // 2)))


def _holds_partial_chunk(look: dict[str, int]) -> bool:
    """Nagle's rule for the lane of in-process jobs: fewer waiting than a chunk are not sent while jobs of the
    lane sent or started within MC_DISPATCH_HOLD_S are still in flight; they go together when that work ends
    (its worker dispatches after it runs a message, :func:`workers.tasks._claim_and_run`).

    Why: with one job per submission, sending each job the moment it arrives gave messages of one to three jobs,
    and a message costs its worker a claim, a bulk write and the job-finished hooks (about thirty queries)
    whatever its size; the jobs that arrive while a message runs now share the next one. A lane with nothing in
    flight sends at once, so a lone job never waits; a full chunk is never held; and work in flight for longer
    than MC_DISPATCH_HOLD_S (a worker that died, a lost message, a slow runner) holds nothing back. The beat and
    the submissions' coalesced dispatch requests still run as before."""
    return _hold_s() > 0 and 0 < look["quick_waiting"] < _quick_chunk() and look["quick_fresh"] > 0


def _messages(
    picks: list[tuple[int, int, int, str]], routes: dict[int, tuple[str, str]], chunk: int
) -> list[tuple[str, list[int]]]:
    """Group the picks, in dispatch order, into messages: (broker queue, job ids). Consecutive jobs bound for a
    shared queue travel together, up to `chunk` ids; a job routed to one worker's private queue (a verification)
    gets a message of its own."""
    messages: list[tuple[str, list[int]]] = []
    open_chunk = False
    for job_id, *_ in picks:
        broker_queue, target = routes[job_id]
        batchable = chunk > 1 and not target
        if batchable and open_chunk and messages[-1][0] == broker_queue and len(messages[-1][1]) < chunk:
            messages[-1][1].append(job_id)
        else:
            messages.append((broker_queue, [job_id]))
        open_chunk = batchable
    return messages


def _lock_queue(queue: str) -> None:
    if DispatchQueue.objects.select_for_update(no_key=True).filter(name=queue).first() is None:
        DispatchQueue.objects.bulk_create([DispatchQueue(name=queue)], ignore_conflicts=True)
        DispatchQueue.objects.select_for_update(no_key=True).get(name=queue)


def _routes(picks: list[tuple[int, int, int, str]], queue: str, now: datetime) -> dict[int, tuple[str, str]]:
    """job id -> (broker queue, target worker). Verifications go to the private queue of a live worker other
    than the one that produced the result; everything else to the resource-class queue."""
    routes: dict[int, tuple[str, str]] = {}
    workers: list[WorkerNode] | None = None
    for job_id, _, _, exclude in picks:
        if exclude:
            if workers is None:
                workers = sorted(live_workers(queue, now=now), key=lambda w: w.name)
            others = [w for w in workers if w.name != exclude]
            if others:
                target = others[job_id % len(others)].name
                routes[job_id] = (worker_queue(target), target)
                continue
        routes[job_id] = (queue, "")
    return routes


def send_run_job(job_id: int, broker_queue: str) -> None:
    """Publish one run_job message (only the id). Raises when the broker is unreachable."""
    from celery import current_app

    current_app.send_task(
        RUN_JOB_TASK, args=[job_id], queue=broker_queue, retry=True, retry_policy=settings.MC_DISPATCH_RETRY_POLICY
    )


def send_run_chunk(job_ids: list[int], broker_queue: str) -> None:
    """Publish one run_jobs message carrying several ids (a chunk of short jobs). Raises when the broker is
    unreachable."""
    from celery import current_app

    current_app.send_task(
        RUN_JOBS_TASK,
        args=[list(job_ids)],
        queue=broker_queue,
        retry=True,
        retry_policy=settings.MC_DISPATCH_RETRY_POLICY,
    )


def send_run_jobs(job_ids: list[int], broker_queue: str) -> None:
    if len(job_ids) == 1:
        send_run_job(job_ids[0], broker_queue)
    else:
        send_run_chunk(job_ids, broker_queue)


# After a failed publish this process leaves the broker alone for a few seconds: submissions stay fast while the
# broker is down (their jobs wait in the database), and the beat's dispatch, which ignores this, retries.
_broker_down_until = [0.0]


def _lanes() -> tuple[int, int]:
    """The buffer sizes, in jobs: (other runners, in-process runners)."""
    return max(1, int(settings.MC_DISPATCH_BUFFER)), max(1, int(settings.MC_DISPATCH_QUICK_BUFFER))


def _refill_at(limit: int) -> int:
    return limit - max(1, limit // 2)


def _dispatch_queue(queue: str, now: datetime) -> int:
    slow_limit, quick_limit = _lanes()
    # Cheap unlocked look first: most calls (one per claim) find each lane still full enough, or nothing waiting
    # for it. A lane is refilled only once it has drained to half (so chunks stay large).
    look = _lanes_now(queue, now)
    need_slow = look["slow_sent"] <= _refill_at(slow_limit) and look["slow_waiting"] > 0
    need_quick = look["quick_sent"] <= _refill_at(quick_limit) and look["quick_waiting"] > 0
    need_quick = need_quick and not _holds_partial_chunk(look)
    if not (need_slow or need_quick):
        return 0
    with transaction.atomic():
        _lock_queue(queue)
        look = _lanes_now(queue, now)
        need_quick = need_quick and not _holds_partial_chunk(look)
        slow_picks = fair_share_pick(queue, slow_limit - look["slow_sent"], now, quick=False) if need_slow else []
        quick_room = quick_limit - look["quick_sent"]
        quick_picks = fair_share_pick(queue, quick_room, now, quick=True) if need_quick else []
        picks = slow_picks + quick_picks
        if not picks:
            return 0
        routes = _routes(picks, queue, now)
        by_target: dict[str, list[int]] = defaultdict(list)
        for job_id, (_, target) in routes.items():
            by_target[target].append(job_id)
        for target, ids in by_target.items():
            BenchmarkJob.objects.filter(pk__in=ids).update(
                dispatched_at=now, target_worker=target, dispatch_count=F("dispatch_count") + 1
            )
        DispatchQueue.objects.filter(name=queue).update(last_dispatch_at=now)
    # Sent after the commit, so a worker never sees an id whose row says "not dispatched".
    sent = 0
    # Short jobs go up to MC_DISPATCH_CHUNK ids and half the buffer per message: a full buffer is at least two
    # messages, one for each of two consumers, and a refill after a claim (the lane drained to half) is one full
    # chunk, not the room split in two (which halved the chunks, and doubled the per-message cost a job pays:
    # the claim, the bulk write and the job-finished hooks). Every sandboxed job gets a message of its own.
    messages = _messages(slow_picks, routes, 1) + _messages(quick_picks, routes, _quick_chunk())
    try:
        for broker_queue, ids in messages:
            send_run_jobs(ids, broker_queue)
            sent += len(ids)
    except Exception as exc:  # noqa: BLE001 - broker down: put the rest back; the beat tries again
        _broker_down_until[0] = time.monotonic() + float(settings.MC_DISPATCH_BROKER_BACKOFF_S)
        unsent = [job_id for job_id, _, _, _ in picks][sent:]
        BenchmarkJob.objects.filter(pk__in=unsent, status=JobStatus.QUEUED, dispatched_at=now).update(
            dispatched_at=None, target_worker=""
        )
        logger.warning("dispatch to %s stopped after %d of %d jobs: %s", queue, sent, len(picks), exc)
    return sent


def jobs_dispatch(*, queue: str | None = None, now: datetime | None = None, force: bool = True) -> int:
    """Top up the broker buffer of one queue (or all) in fair-share order. Returns the number of messages sent.
    Must run outside a transaction (it sends after its own commit); use :func:`jobs_dispatch_on_commit` inside
    one. With force=False, a process that just failed to reach the broker does not try again yet."""
    if not force and time.monotonic() < _broker_down_until[0]:
        return 0
    now = now or timezone.now()
    total = 0
    for name in [queue] if queue else known_queues():
        total += _dispatch_queue(name, now)
    return total


def _dispatch_quietly(queue: str | None) -> None:
    try:
        jobs_dispatch(queue=queue, force=False)
    except Exception:  # noqa: BLE001 - the write that triggered this is committed; the beat repairs the rest
        logger.exception("dispatch of %s failed; the recovery beat will retry", queue or "all queues")


def jobs_dispatch_on_commit(queue: str | None = None) -> None:
    """After the commit, top up `queue` here, in this process (a worker's claims, cancels and retries)."""
    transaction.on_commit(lambda: _dispatch_quietly(queue))


# ---------------------------------------------------------------------------------------------------------
# Dispatch requested from a request (submissions): run by a worker, coalesced
# ---------------------------------------------------------------------------------------------------------


def send_dispatch_request(queue: str | None, countdown: float = 0.0) -> None:
    """Publish one jobs_dispatch message for `queue` on the default queue, to run `countdown` seconds from now.
    Raises when the broker is unreachable."""
    from celery import current_app

    current_app.send_task(
        DISPATCH_TASK,
        kwargs={"queue": queue},
        queue=settings.CELERY_TASK_DEFAULT_QUEUE,
        countdown=countdown or None,
        retry=True,
        retry_policy=settings.MC_DISPATCH_RETRY_POLICY,
    )


_clock = time.time  # wall time: the windows are shared by every process on the cache


def _request_dispatch(queue: str | None) -> None:
    """Ask a worker to top up `queue`, at most twice per window of MC_DISPATCH_COALESCE_S per queue, whatever the
    number of web processes and submissions: the first submission of a window asks for a run at once (a lone
    job starts without delay); the second asks for one at the window's end, which sees every job committed in the
    window (each submission commits before this runs, inside its window); the others ask for nothing. The shared
    cache's atomic `add` decides who is first. A lost message costs at most the beat's period
    (MC_DISPATCH_EVERY_S): the beat dispatches every queue, and each claim dispatches its queue."""
    if time.monotonic() < _broker_down_until[0]:
        return  # the broker failed us a moment ago: the jobs wait in the database, and the beat sends them
    window = float(settings.MC_DISPATCH_COALESCE_S)
    countdown = 0.0
    if window > 0:
        from django.core.cache import cache

        now = _clock()
        slot = int(now // window)
        name = queue or "*"
        try:
            if not cache.add(f"mc:dispatch:{name}:{slot}:first", 1, timeout=max(1, math.ceil(window * 4))):
                if not cache.add(f"mc:dispatch:{name}:{slot}:last", 1, timeout=max(1, math.ceil(window * 4))):
                    return
                # a little past the window's end, so that a worker's clock a hair ahead still runs it after
                countdown = (slot + 1) * window - now + min(0.05, window / 4)
        except Exception:  # noqa: BLE001 - no shared cache to coalesce on: ask anyway (duplicates are harmless)
            logger.warning("dispatch coalescing unavailable; requesting a dispatch of %s", name, exc_info=True)
    try:
        send_dispatch_request(queue, countdown)
    except Exception as exc:  # noqa: BLE001 - broker down: the submission stands, the beat sends its jobs
        _broker_down_until[0] = time.monotonic() + float(settings.MC_DISPATCH_BROKER_BACKOFF_S)
        logger.warning("could not request a dispatch of %s: %s", queue or "all queues", exc)


def jobs_dispatch_requested_on_commit(queue: str | None = None) -> None:
    """After the commit, ask a worker to top up `queue` (see :func:`_request_dispatch`): the submitting request
    neither waits for the fair-share pick nor makes its queries, and a burst of submissions costs a few dispatch
    runs, not one each."""
    transaction.on_commit(lambda: _request_dispatch(queue))
