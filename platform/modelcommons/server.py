"""The WSGI server's workers (gunicorn, see Procfile).

The Procfile runs ProblemThreadWorker (gunicorn's gthread: WEB_THREADS threads in each of WEB_CONCURRENCY
processes): a request spends most of its time waiting on PostgreSQL and Redis, and threads let a process serve
others meanwhile, for a few MiB each instead of a process's ~100 MiB; it also keeps client connections alive
between requests. ProblemSyncWorker (one request at a time per process) stays for deployments that want it.

A few requests never reach Django: gunicorn refuses a request line longer than `limit_request_line` (414) or
too many or too large headers (431) itself, and answers with an HTML page. This worker answers those with
problem+json, like every other error of the API (the path is not known yet when the line is too long, so pages
get the same answer). Everything else is gunicorn's own handling.
"""

from __future__ import annotations

import json
from typing import Any

from gunicorn import util
from gunicorn.http.errors import LimitRequestHeaders, LimitRequestLine
from gunicorn.workers.gthread import ThreadWorker
from gunicorn.workers.sync import SyncWorker

PROBLEM_CONTENT_TYPE = "application/problem+json"


def problem_response(status: int, reason: str, detail: str) -> bytes:
    """A complete HTTP/1.1 response carrying an RFC 9457 problem; the connection closes after it."""
    try:
        from apps.core.problems import problem_body  # Django is set up once the worker has loaded the app

        body = problem_body(status, detail, title=reason)
    except Exception:  # noqa: BLE001 - the app failed to load: still answer the client in the same shape
        body = {"type": "about:blank", "title": reason, "status": status, "detail": detail}
    payload = json.dumps(body).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: {PROBLEM_CONTENT_TYPE}\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode("latin-1") + payload


class ProblemErrors:
    """Answers gunicorn's own 414 and 431 with problem+json; everything else is gunicorn's handling."""

    cfg: Any
    log: Any

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        if isinstance(exc, LimitRequestLine):
            status, reason = 414, "URI Too Long"
            detail = f"The request line is longer than {self.cfg.limit_request_line} bytes."
        elif isinstance(exc, LimitRequestHeaders):
            status, reason = 431, "Request Header Fields Too Large"
            detail = f"The request headers are too many or too large: {exc}."
        else:
            super().handle_error(req, client, addr, exc)  # type: ignore[misc]
            return
        self.log.warning("Invalid request from ip=%s: %s", (addr or ("",))[0], exc)
        try:
            util.write_nonblock(client, problem_response(status, reason, detail))
        except Exception:  # noqa: BLE001 - the client may be gone already, as in gunicorn's own handler
            self.log.debug("Failed to send error message.")


class ProblemSyncWorker(ProblemErrors, SyncWorker):
    pass


class ProblemThreadWorker(ProblemErrors, ThreadWorker):
    pass
