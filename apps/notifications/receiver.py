"""A reference webhook receiver: a real HTTP server that does what we ask integrators to do.

It verifies the Standard Webhooks signature, refuses stale (or future) timestamps, and processes each message id
once (a retry, a redelivery or a replayed request is acknowledged but not processed again). Tests start it on
127.0.0.1; `manage.py webhook_receiver` runs it by hand. No Django imports."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .signing import DEFAULT_TOLERANCE_S, WebhookVerificationError, verify

MAX_BODY = 1024 * 1024


@dataclass
class ReceiverLog:
    processed: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    failed_on_purpose: int = 0


class WebhookReceiver:
    """Start with `start()` (returns the URL), stop with `stop()`. `fail_first=n` answers 503 to the first n
    valid deliveries, to exercise the sender's retries."""

    def __init__(
        self,
        secret: str,
        *,
        tolerance_s: int = DEFAULT_TOLERANCE_S,
        fail_first: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        self.secret = secret
        self.tolerance_s = tolerance_s
        self.fail_first = fail_first
        self.log = ReceiverLog()
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else str(host)
        return f"http://{name}:{port}/hooks"

    def start(self) -> str:
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> WebhookReceiver:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def receive(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        """The receiver's decision for one request: (HTTP status, JSON answer)."""
        try:
            msg_id = verify(self.secret, headers, body, tolerance_s=self.tolerance_s)
        except WebhookVerificationError as exc:
            with self._lock:
                self.log.refused.append(str(exc))
            return 401, {"error": str(exc)}
        with self._lock:
            if msg_id in self._seen:
                self.log.duplicates.append(msg_id)
                return 200, {"duplicate": True}
            if self.log.failed_on_purpose < self.fail_first:
                self.log.failed_on_purpose += 1
                return 503, {"error": "try again later"}
            self._seen.add(msg_id)
            self.log.processed.append({"id": msg_id, "headers": dict(headers), "payload": json.loads(body)})
        return 200, {"ok": True}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(min(length, MAX_BODY))
                status, answer = receiver.receive({k: v for k, v in self.headers.items()}, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence per-request logs
                return

        return Handler
