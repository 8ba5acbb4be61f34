"""Query-count helpers for the tests of every app: the one copy (STYLE: every list endpoint asserts the same query
count at 1 and at 10+ objects), and `instance_state` for comparing model instances as a caller sees them.
Test-only; nothing outside tests imports it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext


@contextmanager
def count_queries() -> Iterator[CaptureQueriesContext]:
    """`with count_queries() as q: ...` then `len(q)`: the queries run on the default connection inside."""
    with CaptureQueriesContext(connection) as ctx:
        yield ctx


def get_counted(client: Any, url: str, *, status: int = 200) -> tuple[Any, int]:
    """GET `url`, assert its status, and return the response with the number of queries it cost."""
    with count_queries() as ctx:
        response = client.get(url)
    assert response.status_code == status, (response.status_code, getattr(response, "content", b"")[:500])
    return response, len(ctx)


def assert_same_query_count(one: CaptureQueriesContext, many: CaptureQueriesContext) -> None:
    """The two captures ran the same number of queries; on failure, the SQL of the larger one is shown."""
    larger = many if len(many) >= len(one) else one
    assert len(one) == len(many), (len(one), len(many), [q["sql"] for q in larger.captured_queries])


def token_auth_queries(*, roles: bool) -> int:
    """What a warmed bearer token costs a request in queries, for the tests that pin a count: none when the shared
    cache is Redis (the token cache of apps/accounts/token_cache.py holds the token, its user and their roles);
    else the token's row, and the user's roles when the request reads them."""
    from django.core.cache import caches

    from .cache import RedisCache

    if isinstance(caches["default"], RedisCache):
        return 0
    return 2 if roles else 1


def assert_list_query_count_is_flat(client: Any, url: str, grow: Callable[[], Any], expected_rows: int) -> None:
    """A list endpoint costs the same queries for one row as for `expected_rows` rows after `grow()`.

    The first GET must list exactly one row; the second asks for page_size=100."""
    client.get("/api/v1/me/")  # a token's first use writes last_used_at and fills the token cache: not the list's cost
    with count_queries() as one:
        first = client.get(url)
    assert first.status_code == 200, first.content
    assert len(first.json()["results"]) == 1, first.json()
    grow()
    with count_queries() as many:
        body = client.get(url + ("&" if "?" in url else "?") + "page_size=100").json()
    assert len(body["results"]) == expected_rows, body
    assert_same_query_count(one, many)


__all__ = [
    "assert_list_query_count_is_flat",
    "assert_same_query_count",
    "count_queries",
    "get_counted",
    "token_auth_queries",
]


def instance_state(obj: Any) -> dict[str, Any]:
    """What a caller can observe of a model instance without a query: its loaded columns and cached relations
    (recursively), to compare instances built two ways (the ORM and `CompiledQuery`)."""
    cached = {name: instance_state(value) for name, value in obj._state.fields_cache.items() if value is not None}
    return {"model": type(obj), "db": obj._state.db, "adding": obj._state.adding, **obj.__dict__, "_state": cached}
