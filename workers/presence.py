"""Worker-side signals: each worker consumes a private queue and reports that it is alive.

- At start-up (``celeryd_after_setup``) the worker adds ``mc.worker.<nodename>`` to the queues it consumes,
  so the dispatcher can send a verification re-run to one particular worker (a different one from the worker
  that produced the result).
- Once ready, the worker logs which runner sandbox it gets (``workers.runners.sandbox.sandbox_status``), and a
  daemon thread in the main worker process records the worker's name and queues every
  MC_WORKER_PRESENCE_S (``WorkerNode.last_seen_at``); the dispatcher and the recovery beat treat workers not
  seen for MC_WORKER_STALE_S as gone. A clean shutdown says so at once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

from celery.signals import celeryd_after_setup, worker_ready, worker_shutdown

from apps.benchmarks.choices import worker_queue

logger = logging.getLogger(__name__)

_presence: dict[str, Any] = {}


@celeryd_after_setup.connect
def add_private_queue(sender: Any = None, instance: Any = None, **kwargs: Any) -> None:
    if instance is None or not sender:
        return
    instance.app.amqp.queues.select_add(worker_queue(str(sender)))


def _report(name: str, queues: list[str], stop: threading.Event, interval: float) -> None:
    from django.db import close_old_connections, connection

    from apps.benchmarks.dispatch import worker_seen

    first = True
    try:
        while True:
            try:
                close_old_connections()
                worker_seen(name=name, hostname=socket.gethostname(), pid=os.getpid(), queues=queues, started=first)
                first = False
            except Exception:  # noqa: BLE001 - the database may be briefly away; keep trying
                logger.warning("worker presence update failed", exc_info=True)
            if stop.wait(interval):
                return
    finally:
        connection.close()


@worker_ready.connect
def start_presence(sender: Any = None, **kwargs: Any) -> None:
    from django.conf import settings

    name = str(getattr(sender, "hostname", "") or "")
    if not name or "thread" in _presence:
        return
    queues = sorted(sender.app.amqp.queues.consume_from.keys())
    stop = threading.Event()
    thread = threading.Thread(
        target=_report, args=(name, queues, stop, float(settings.MC_WORKER_PRESENCE_S)), name="mc-presence", daemon=True
    )
    _presence.update(name=name, stop=stop, thread=thread)
    thread.start()
    # Say at start-up which runner sandbox this worker gets (or why it will refuse sandboxed jobs); the probe
    # starts a child, so not on the way to readiness.
    threading.Thread(target=_log_sandbox, name="mc-sandbox-probe", daemon=True).start()


def _log_sandbox() -> None:
    from workers.execution import sandbox_policy
    from workers.runners.sandbox import sandbox_status

    try:
        sandbox_status(sandbox_policy())  # logs what it finds
    except Exception:  # noqa: BLE001 - a log line must not take the worker down
        logger.warning("could not probe the runner sandbox", exc_info=True)


@worker_shutdown.connect
def stop_presence(sender: Any = None, **kwargs: Any) -> None:
    stop = _presence.get("stop")
    if stop is None:
        return
    stop.set()
    _presence["thread"].join(timeout=5)
    try:
        from django.db import connection

        from apps.benchmarks.dispatch import worker_stopped

        worker_stopped(name=_presence["name"])
        connection.close()
    except Exception:  # noqa: BLE001 - shutting down anyway
        logger.warning("could not record worker shutdown", exc_info=True)
