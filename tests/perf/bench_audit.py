"""Audit write throughput with 1 and 4 concurrent writers (SPEC §6, issue 16). Run by `make bench`; it prints
numbers, it asserts nothing.

    DATABASE_URL=postgres://root@127.0.0.1:5432/<db> python tests/perf/bench_audit.py [--seconds 5]

1. Creates a throw-away database (`test_<db>`, destroyed at the end) and migrates it.
2. For 1 writer, then 4: each writer is a thread with its own database connection that, for `--seconds`, sets
   the quota of its own user through the real service (accounts.services.user_set_quota: one transaction that
   locks the user row, writes it and appends an audit event). The writes are unrelated, so nothing but the audit
   log could serialize them. A sampler counts how often a writer is waiting on a lock (pg_stat_activity).
   1 and 4 writers alternate for `--rounds` rounds (the machine is shared: alternating keeps a change in its load
   from favouring one side); the medians are compared.
3. Prints writes/s of each and the ratio (target >= 2.5x), as `RATIO audit_4_vs_1 <x>`. Threads share the GIL:
   where a write costs more Python CPU than database wait, they cannot scale whatever the database does, so the
   same is measured with writer processes too (as gunicorn's workers are), printed as `RATIO
   audit_4_vs_1_processes <x>`; `--modes` picks which run. The same writes without their audit event (the
   service's audit_record replaced by a no-op) give the ceiling this machine allows (`--ceiling`, on by default):
   the audit log scales if the ratio with it is close to the ratio without it.
4. Runs audit_verify (which seals the pending events first) and prints its result and time, then verifies again
   (all sealed) and prints that time too.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "modelcommons.settings.test")
os.environ.setdefault("MC_VAR_DIR", "/tmp/mc-bench-audit")

from tests.perf.common import create_database, destroy_database, median, ratio_line  # noqa: E402


class LockSampler(threading.Thread):
    """Samples pg_stat_activity every 20 ms: in how many samples was at least one backend waiting on a lock."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples = self.waiting = 0
        self.halt = threading.Event()

    def run(self) -> None:
        from django.db import connection

        try:
            with connection.cursor() as cursor:
                while not self.halt.wait(0.02):
                    cursor.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND wait_event_type = 'Lock'"
                    )
                    self.samples += 1
                    self.waiting += cursor.fetchone()[0] > 0
        finally:
            connection.close()


def run_writers(writers: int, seconds: float, users: list[Any], actor: Any, mode: str) -> tuple[int, float, float]:
    """`writers` threads or processes doing unrelated audited writes for `seconds`; returns (writes, elapsed,
    share of the samples where a writer waited on a lock)."""
    import multiprocessing

    from django.db import connections

    from apps.accounts.services import user_set_quota

    ctx = multiprocessing.get_context("fork")
    procs = mode == "processes"
    barrier: Any = ctx.Barrier(writers + 1) if procs else threading.Barrier(writers + 1)
    stop: Any = ctx.Event() if procs else threading.Event()
    results: Any = ctx.Queue()

    def writer(n: int) -> None:
        count = 0
        try:
            user = users[n]
            user_set_quota(user=user, actor=actor, max_active_jobs=0)  # warm the connection
            barrier.wait()
            while not stop.is_set():
                count += 1
                user_set_quota(user=user, actor=actor, max_active_jobs=count % 50 + 1)
            results.put(count)
        except BaseException as exc:  # noqa: BLE001
            results.put(repr(exc))
            stop.set()
        finally:
            connections.close_all()

    connections.close_all()  # a forked child must not share the parent's connection
    workers: list[Any] = [
        ctx.Process(target=writer, args=(n,)) if procs else threading.Thread(target=writer, args=(n,))
        for n in range(writers)
    ]
    for worker in workers:
        worker.start()
    barrier.wait()
    sampler = LockSampler()
    sampler.start()
    started = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    elapsed = time.perf_counter() - started
    sampler.halt.set()
    counts = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join()
    sampler.join()
    errors = [c for c in counts if isinstance(c, str)]
    if errors:
        raise RuntimeError(errors[0])
    return sum(counts), elapsed, sampler.waiting / max(sampler.samples, 1)


def measure(mode: str, rounds: int, seconds: float, users: list[Any], actor: Any, what: str) -> tuple[float, float]:
    """Median writes/s of 1 and of 4 writers, alternating, over `rounds` rounds."""
    rates: dict[int, list[float]] = {1: [], 4: []}
    for n in range(rounds):
        for writers in (1, 4):
            count, elapsed, waiting = run_writers(writers, seconds, users, actor, mode)
            rates[writers].append(count / elapsed)
            print(
                f"  round {n + 1}, {writers} writer {mode}: {count} {what} in {elapsed:.1f} s = "
                f"{count / elapsed:.1f}/s; a writer waited on a lock in {waiting:.0%} of the samples",
                flush=True,
            )
    return median(rates[1]), median(rates[4])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="how long each run writes")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of 1 and 4 writers")
    parser.add_argument("--modes", default="threads,processes", help="writers as threads, processes or both")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the runs without the audit event")
    args = parser.parse_args()

    old_name, _ = create_database()
    import logging

    logging.getLogger("apps.audit.services").setLevel(logging.WARNING)  # one INFO line per seal: noise here
    try:
        from django.core.management import call_command

        import apps.accounts.services as accounts_services
        from apps.accounts.models import User
        from apps.audit.models import AuditEvent
        from apps.audit.services import audit_chain_verify

        actor = User.objects.create(username="bench-maintainer")
        actor = accounts_services.user_set_roles(user=actor, roles=["maintainer"], actor=None)
        users = [User.objects.create(username=f"bench-writer{i}") for i in range(4)]

        audited = accounts_services.audit_record
        for mode in args.modes.split(","):
            suffix = "" if mode == "threads" else f"_{mode}"
            one, four = measure(mode, args.rounds, args.seconds, users, actor, "audited writes")
            print(f"{mode}: 1 writer {one:.1f}/s, 4 writers {four:.1f}/s: {four / one:.2f}x (target >= 2.5x)")
            ratio_line(f"audit_4_vs_1{suffix}", four / one, ours=four, baseline=one, unit="writes/s", target=">=2.5")
            if args.no_ceiling:
                continue
            accounts_services.audit_record = lambda **kwargs: None  # type: ignore[assignment]
            try:
                one, four = measure(mode, args.rounds, args.seconds, users, actor, "writes WITHOUT the audit event")
            finally:
                accounts_services.audit_record = audited
            print(f"{mode}, the same writes without their audit event (this machine's ceiling): {four / one:.2f}x")
            ratio_line(f"audit_4_vs_1{suffix}_without_audit", four / one, ours=four, baseline=one, unit="writes/s")

        events = AuditEvent.objects.count()
        for label in ("seal pending + verify", "verify (all sealed)"):
            started = time.perf_counter()
            report = audit_chain_verify()
            took = time.perf_counter() - started
            print(
                f"audit_verify, {label}: {'OK' if report.ok else 'BROKEN: ' + report.reason} - "
                f"{report.checked}/{events} events, {report.sealed} sealed in {report.seals} seals, {took * 1e3:.0f} ms"
            )
        call_command("audit_verify", wait=1.0)
    finally:
        from django.db import connections

        connections.close_all()
        destroy_database(old_name)


if __name__ == "__main__":
    main()
