"""Liveness and readiness probes."""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers."""
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        return f"{type(exc).__name__}: {exc}"
    return None


def _check_broker() -> str | None:
    from kombu import Connection

    try:
        # A fresh connection (not the app's pool) so a broker that went away is really noticed.
        with Connection(
            settings.CELERY_BROKER_URL, connect_timeout=2, transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS
        ) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}: {exc}"
    return None


def _sandbox() -> dict[str, object]:
    """The runner sandbox this host's workers get (probed once per process). Informational: a host that cannot
    sandbox still serves the site; its workers refuse sandboxed jobs (sandbox_unavailable), and their log says why."""
    from workers.runners.sandbox import SandboxPolicy, sandbox_status

    status = sandbox_status(SandboxPolicy.from_settings(settings))
    return {
        "mode": status.mode,
        "available": status.available,
        "namespaces": status.namespaces,
        "user": status.user,
        "detail": status.detail
        if status.available
        else "sandboxed jobs are refused on this host; the worker log says why",
    }


def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: the database and the broker are reachable. Also says which runner sandbox is on."""
    checks = {"database": _check_database(), "broker": _check_broker()}
    ok = all(v is None for v in checks.values())
    body = {
        "status": "ok" if ok else "unavailable",
        "checks": {k: ("ok" if v is None else v) for k, v in checks.items()},
        "broker": settings.CELERY_BROKER_URL.split("://", 1)[0],
        "sandbox": _sandbox(),
    }
    return JsonResponse(body, status=200 if ok else 503)
