"""The shared cache on Redis (settings.CACHES when Redis is configured).

Django's Redis backend builds a new `redis.Redis` client object for every cache operation (a few dozen
microseconds each: it fills the client's response-callback table), and every API request makes several
(throttles, login limits). A client object is thread-safe and holds nothing but its connection pool, so this
backend keeps one per pool. Behaviour is otherwise Django's.

It also counts the API throttles' hits (`sliding_window_hit`, used by apps/core/throttling.py) in a sorted set
per key, atomically and in one round trip, where Django's generic cache API would need a read and a write of the
whole history (a race between processes, and a payload that grows with the rate). `run_script` runs a Lua
script in one round trip for the callers that need one (the token cache of apps/accounts/token_cache.py)."""

from __future__ import annotations

import os
from typing import Any

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient as DjangoRedisCacheClient


class RedisCacheClient(DjangoRedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        # Django's private helpers (not in its stubs): the pool's index and the pool, as its own get_client uses.
        index = self._get_connection_pool_index(write)  # type: ignore[attr-defined]
        client = self._clients.get(index)
        if client is None:
            pool = self._get_connection_pool(write)  # type: ignore[attr-defined]
            client = self._clients[index] = self._client(connection_pool=pool)  # type: ignore[attr-defined]
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = RedisCacheClient
        self._scripts: dict[tuple[int, str], Any] = {}

    def raw_client(self, *, write: bool = True) -> Any:
        """The redis-py client (bytes in, bytes out) behind this cache, for callers that build their own keys
        with `make_and_validate_key`."""
        return self._cache.get_client(write=write)

    def run_script(self, source: str, keys: list[str], args: list[Any]) -> Any:
        """Run a Lua script atomically in one round trip (EVALSHA, loading it on first use). Keys are full keys
        (`make_and_validate_key`); replies are redis-py's raw ones (bytes)."""
        client = self.raw_client()
        script = self._scripts.get((id(client), source))
        if script is None:
            script = self._scripts[(id(client), source)] = client.register_script(source)
        return script(keys=keys, args=args)

    def sliding_window_hit(self, key: str, now: float, duration: float) -> tuple[int, float, str]:
        """Record a hit at `now` under `key` and forget those older than `duration` seconds, in one MULTI/EXEC:
        returns (hits within the window, this one included; the oldest hit's time; this hit's member, for
        `sliding_window_forget`)."""
        return self.sliding_window_hits([(key, now, duration)])[0]

    def sliding_window_hits(self, hits: list[tuple[str, float, float]]) -> list[tuple[int, float, str]]:
        """`sliding_window_hit` for several (key, now, duration) at once, in one MULTI/EXEC (one round trip)."""
        client = self.raw_client()
        pipe = client.pipeline(transaction=True)
        members = []
        for key, now, duration in hits:
            full = self.make_and_validate_key(key)
            member = f"{now:.6f}:{os.urandom(6).hex()}"
            members.append(member)
            pipe.zremrangebyscore(full, "-inf", now - duration)
            pipe.zadd(full, {member: now})
            pipe.zcard(full)
            pipe.zrange(full, 0, 0, withscores=True)
            pipe.expire(full, int(duration) + 1)
        replies = pipe.execute()
        results = []
        for i, ((_, now, _), member) in enumerate(zip(hits, members, strict=True)):
            count, oldest = replies[5 * i + 2], replies[5 * i + 3]
            results.append((int(count), float(oldest[0][1]) if oldest else now, member))
        return results

    def sliding_window_forget(self, key: str, member: str) -> None:
        """Take back a hit that `sliding_window_hit` recorded (a refused request does not count)."""
        full = self.make_and_validate_key(key)
        self._cache.get_client(full, write=True).zrem(full, member)
