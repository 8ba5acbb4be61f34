"""The HTTP layer: one httpx client per :class:`~.client.Client`, the bearer token, problem+json errors, and
retries (tenacity) with exponential backoff on 429 and 503 (honouring `Retry-After`) and on network errors.

Which requests are retried after a network error: those that are safe to repeat (GET, HEAD, PUT, DELETE, and a
POST marked idempotent because it carries an `Idempotency-Key` the server honours); any other request only when
the connection was never made (nothing reached the server)."""

from __future__ import annotations

import email.utils
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from typing import Any

import httpx
import tenacity

from ._version import __version__
from .errors import ApiError, NetworkError, error_for

RETRY_ALWAYS = frozenset({429, 503})  # the server did not do the work
RETRY_IF_IDEMPOTENT = frozenset({502, 504})  # a gateway gave up: the work may or may not have been done
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
NOTHING_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def new_idempotency_key() -> str:
    return f"mc-{uuid.uuid4()}"


class _RetryableStatus(Exception):
    """A response whose status asks for a retry (raised inside the retry loop only)."""

    def __init__(self, response: httpx.Response, problem: dict[str, Any]):
        self.response = response
        self.problem = problem
        self.retry_after = parse_retry_after(response.headers.get("retry-after"))
        super().__init__(f"{response.status_code} {response.reason_phrase}")


def problem_of(response: httpx.Response) -> dict[str, Any]:
    """The problem document of an error response (or one made from its status line and text)."""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict):
        body.setdefault("status", response.status_code)
        return body
    text = (response.text or "").strip() if response.content else ""
    problem: dict[str, Any] = {"status": response.status_code, "title": response.reason_phrase or "Error"}
    if text:
        problem["detail"] = text[:500]
    return problem


class Http:
    """Requests to one server with one token, with retries. `retries` is how many times a request is tried again
    (so at most retries + 1 attempts); `max_retry_after` the longest Retry-After honoured (a longer one, e.g. a
    daily quota, fails at once); `backoff` the first wait of the exponential backoff, in seconds."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_retry_after: float = 120.0,
        transport: httpx.BaseTransport | None = None,
        on_retry: Callable[[str, float], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.url = url.rstrip("/")
        self.token = token
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_retry_after = max_retry_after
        self.on_retry = on_retry
        self._sleep = sleep
        headers = {
            "User-Agent": f"modelcommons-client/{__version__} httpx/{httpx.__version__}",
            "Accept": "application/json, application/problem+json",
        }
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.client = httpx.Client(
            base_url=self.url,
            headers=headers,
            transport=transport,
            follow_redirects=True,
            timeout=httpx.Timeout(timeout, read=max(timeout, 300.0)),
        )

    def close(self) -> None:
        self.client.close()

    # --- the retry policy ---------------------------------------------------------------------------------

    def _retrying(self, retry_network: Callable[[BaseException], bool]) -> tenacity.Retrying:
        exponential = tenacity.wait_exponential(multiplier=self.backoff, max=self.max_backoff) + tenacity.wait_random(
            0, self.backoff
        )

        def should_retry(exc: BaseException) -> bool:
            if isinstance(exc, _RetryableStatus):
                return True
            return isinstance(exc, httpx.TransportError) and retry_network(exc)

        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, _RetryableStatus) and exc.retry_after is not None:
                return exc.retry_after
            return float(exponential(state))

        def stop(state: tenacity.RetryCallState) -> bool:
            if state.attempt_number > self.retries:
                return True
            exc = state.outcome.exception() if state.outcome else None
            return (
                isinstance(exc, _RetryableStatus)
                and exc.retry_after is not None
                and exc.retry_after > self.max_retry_after
            )

        def before_sleep(state: tenacity.RetryCallState) -> None:
            if self.on_retry is None or state.next_action is None:
                return
            exc = state.outcome.exception() if state.outcome else None
            self.on_retry(
                f"{exc.__class__.__name__ if isinstance(exc, httpx.TransportError) else exc} "
                f"(attempt {state.attempt_number} of {self.retries + 1})",
                state.next_action.sleep,
            )

        return tenacity.Retrying(
            retry=tenacity.retry_if_exception(should_retry),
            wait=wait,
            stop=stop,
            before_sleep=before_sleep,
            sleep=self._sleep,
            reraise=True,
        )

    # --- requests -----------------------------------------------------------------------------------------

    def send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        content: Callable[[], bytes | Iterable[bytes]] | bytes | None = None,
        headers: dict[str, str] | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
        idempotent: bool | None = None,
        retry_network: bool | None = None,
        stream: bool = False,
        ok: Iterable[int] = (),
    ) -> httpx.Response:
        """Send a request and return the response (2xx, 3xx not followed, or a status in `ok`); raise an
        :class:`~.errors.ApiError` for any other answer and :class:`~.errors.NetworkError` when the server
        cannot be reached, after the retries. With `stream`, the response is open: read or close it. A POST gets
        an `Idempotency-Key` unless it has one; `idempotent=True` says the server honours it (or the method is
        safe), which allows retrying after a lost answer.

        `content` may be a callable returning the body, so that a retry sends it afresh."""
        method = method.upper()
        if idempotent is None:
            idempotent = method in SAFE_METHODS
        if retry_network is None:
            retry_network = idempotent

        def network_retry(exc: BaseException) -> bool:
            return retry_network or isinstance(exc, NOTHING_SENT)

        headers = dict(headers or {})
        if method == "POST" and not any(k.lower() == "idempotency-key" for k in headers):
            # Every submission carries a key, the same on each retry: a server that honours it (job submission)
            # answers a repeated request with the first response instead of doing the work twice.
            headers["Idempotency-Key"] = new_idempotency_key()
        ok = frozenset(ok)
        clean_params = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            for attempt in self._retrying(network_retry):
                with attempt:
                    body = content() if callable(content) else content
                    request = self.client.build_request(
                        method, path, params=clean_params or None, json=json, content=body, headers=headers
                    )
                    response = self.client.send(
                        request, stream=stream, auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT
                    )
                    code = response.status_code
                    if code < 400 or code in ok:
                        return response
                    if stream:
                        response.read()
                        response.close()
                    problem = problem_of(response)
                    if code in RETRY_ALWAYS or (idempotent and code in RETRY_IF_IDEMPOTENT):
                        raise _RetryableStatus(response, problem)
                    raise error_for(code, problem, method=method, url=str(request.url), headers=dict(response.headers))
        except _RetryableStatus as exc:
            response = exc.response
            raise error_for(
                response.status_code,
                exc.problem,
                method=method,
                url=str(response.request.url),
                headers=dict(response.headers),
            ) from None
        except httpx.TransportError as exc:
            raise NetworkError(
                f"{method} {self.url}{path}: {exc.__class__.__name__}: {exc or 'connection failed'}"
            ) from exc
        raise AssertionError("unreachable")  # pragma: no cover - tenacity either returns or raises

    def json(self, method: str, path: str, **kw: Any) -> Any:
        response = self.send(method, path, **kw)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise ApiError(
                response.status_code,
                {"title": "Not JSON", "detail": response.text[:300]},
                method=method,
                url=str(response.request.url),
            ) from exc

    def pages(self, path: str, params: dict[str, Any] | None = None, limit: int | None = None) -> Iterator[Any]:
        """The items of a paginated list (page-number or cursor: both give `next` and `results`), following
        `next` until `limit` items or the end."""
        count = 0
        page: Any = self.json("GET", path, params=params)
        while True:
            items = page.get("results", []) if isinstance(page, dict) else page
            for item in items:
                if limit is not None and count >= limit:
                    return
                yield item
                count += 1
            nxt = page.get("next") if isinstance(page, dict) else None
            if not nxt or (limit is not None and count >= limit):
                return
            page = self.json("GET", nxt)
