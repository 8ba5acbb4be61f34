"""Errors of the client. An answer of the API that is not a success becomes an :class:`ApiError` (a subclass per
status family) carrying the RFC 9457 problem document the server sent; the CLI maps each class to an exit code."""

from __future__ import annotations

from typing import Any


class McError(Exception):
    """Base of every error this package raises."""

    exit_code = 1


class UsageError(McError):
    """A call the client refuses before asking the server (a server URL that is not http(s), ...)."""

    exit_code = 2


class ConfigError(McError):
    """No server URL or token to use (run `mc login`, or set MC_URL and MC_TOKEN)."""

    exit_code = 3


class ApiError(McError):
    """The API answered with an error. `problem` is its problem+json document (type, title, status, detail,
    errors, ...); `status` the HTTP status; `headers` the response headers."""

    exit_code = 1

    def __init__(
        self,
        status: int,
        problem: dict[str, Any] | None = None,
        *,
        method: str = "",
        url: str = "",
        headers: dict[str, str] | None = None,
    ):
        self.status = status
        self.problem: dict[str, Any] = dict(problem or {})
        self.method = method
        self.url = url
        self.headers = dict(headers or {})
        super().__init__(self.message)

    @property
    def title(self) -> str:
        return str(self.problem.get("title") or f"HTTP {self.status}")

    @property
    def detail(self) -> str:
        return str(self.problem.get("detail") or "")

    @property
    def errors(self) -> dict[str, Any]:
        errors = self.problem.get("errors")
        return errors if isinstance(errors, dict) else {}

    @property
    def message(self) -> str:
        text = f"{self.status} {self.title}"
        if self.detail and self.detail != self.title:
            text += f": {self.detail}"
        for field, messages in self.errors.items():
            items = messages if isinstance(messages, list) else [messages]
            text += f"\n  {field}: {'; '.join(str(m) for m in items)}"
        return text


class BadRequest(ApiError):
    """400 or 422: the request is not valid (see `errors`)."""

    exit_code = 2


class NotAuthenticated(ApiError):
    """401: no token, or a token that is unknown, revoked or expired."""

    exit_code = 3


class PermissionDenied(ApiError):
    """403: authenticated, but not allowed (a role or a token scope is missing)."""

    exit_code = 3


class NotFound(ApiError):
    """404: no such object, or one the caller may not see."""

    exit_code = 4


class Conflict(ApiError):
    """409 (an illegal transition, an existing path) and the other refusals of a valid request (410, 412, 413,
    415)."""

    exit_code = 1


class RateLimited(ApiError):
    """429 after the retries: a throttle or a quota; `retry_after` says when it frees, in seconds."""

    exit_code = 5

    @property
    def retry_after(self) -> float | None:
        from .http import parse_retry_after

        return parse_retry_after(self.headers.get("retry-after"))


class ServerError(ApiError):
    """5xx after the retries."""

    exit_code = 5


class NetworkError(McError):
    """The server could not be reached, or the connection broke, after the retries."""

    exit_code = 5


class IntegrityError(McError):
    """Bytes whose sha256 is not the one the server declares (a download), after a fresh retry."""

    exit_code = 5

    def __init__(self, path: str, expected: str, actual: str):
        self.path, self.expected, self.actual = path, expected, actual
        super().__init__(f"{path}: sha256 {actual} does not match the declared {expected}")


class JobFailed(McError):
    """A waited-for job ended failed, cancelled or timed out. `job` is the final :class:`~.models.Job`."""

    exit_code = 1

    def __init__(self, job: Any):
        self.job = job
        failure = job.failure or {}
        reason = f": {failure.get('reason')}: {failure.get('message')}" if failure.get("reason") else ""
        super().__init__(f"job {job.id} {job.status}{reason}")


class WaitTimeout(McError):
    """Waiting for a job took longer than the timeout (the job itself goes on). `job` is its last state."""

    exit_code = 1

    def __init__(self, job: Any, timeout: float):
        self.job = job
        self.timeout = timeout
        super().__init__(
            f"job {job.id} is still {job.status} after {timeout:g} s (it goes on; `mc jobs watch {job.id}` follows it)"
        )


class RequirementUnmet(McError):
    """A `--require METRIC>=X` that the job's result does not meet (or a metric it does not report)."""

    exit_code = 1


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: NotAuthenticated,
    403: PermissionDenied,
    404: NotFound,
    422: BadRequest,
    429: RateLimited,
}


def error_for(status: int, problem: dict[str, Any] | None, **kw: Any) -> ApiError:
    if status in _BY_STATUS:
        cls = _BY_STATUS[status]
    elif status >= 500:
        cls = ServerError
    elif status in (405, 406, 409, 410, 411, 412, 413, 414, 415, 416, 431):
        cls = Conflict
    else:
        cls = ApiError
    return cls(status, problem, **kw)
