"""Download counts without a database write per download.

A download is one GET of a file that sends it from its first byte (a 200, or a 206 starting at byte 0): HEADs,
304s and the later ranges of a resumed download are not counted again.

- With Redis (settings.MC_DOWNLOADS_REDIS_URL, by default the broker's Redis) a download is one `HINCRBY` on a
  hash shared by every process. The beat's `downloads_flush` renames the hash (atomically: downloads counted
  meanwhile start a new one), adds its counts to `Variant.downloads` in one UPDATE, then deletes it. A flush
  that fails leaves the renamed hash for the next one, which finishes it before taking a new one.
- Without Redis (or while it is unreachable) each process keeps its counts in memory and writes them itself, in
  one UPDATE, at most every MC_DOWNLOADS_FLUSH_S seconds. The database cache would be a write per download, and
  the local-memory cache is per process anyway, so neither is used.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from typing import Any

from django.conf import settings
from django.db.models import BigIntegerField, Case, F, Value, When

from apps.registry.models import Variant

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_pending: Counter[int] = Counter()
_pending_since: float | None = None
_clients: dict[str, Any] = {}


def _redis() -> Any | None:
    url = settings.MC_DOWNLOADS_REDIS_URL
    if not url:
        return None
    client = _clients.get(url)
    if client is None:
        import redis

        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        _clients[url] = client
    return client


def _key() -> str:
    return str(settings.MC_DOWNLOADS_KEY)


def download_recorded(variant_id: int) -> None:
    """Count one download of a file of the variant. Never fails the download."""
    client = _redis()
    if client is not None:
        try:
            client.hincrby(_key(), str(variant_id), 1)
            return
        except Exception as exc:  # noqa: BLE001 - Redis down: count in this process instead
            logger.warning("download count kept in process: Redis is unreachable (%s)", exc)
    global _pending_since
    with _lock:
        _pending[variant_id] += 1
        if _pending_since is None:
            _pending_since = time.monotonic()
        due = time.monotonic() - _pending_since >= settings.MC_DOWNLOADS_FLUSH_S
    if due:
        try:
            _flush_pending()
        except Exception:  # noqa: BLE001 - a failed write keeps the counts for the next attempt
            logger.exception("could not write download counts")


def _apply(counts: dict[int, int]) -> int:
    """Add `counts` ({variant id: downloads}) to Variant.downloads in one UPDATE; ids that are gone are skipped."""
    counts = {pk: n for pk, n in counts.items() if n > 0}
    if not counts:
        return 0
    by_amount: dict[int, list[int]] = {}
    for pk, n in counts.items():
        by_amount.setdefault(n, []).append(pk)
    increment = Case(
        *[When(pk__in=pks, then=Value(n)) for n, pks in by_amount.items()],
        default=Value(0),
        output_field=BigIntegerField(),
    )
    Variant.objects.filter(pk__in=list(counts)).update(downloads=F("downloads") + increment)
    return sum(counts.values())


def _flush_pending() -> int:
    global _pending_since
    with _lock:
        counts = dict(_pending)
        _pending.clear()
        _pending_since = None
    if not counts:
        return 0
    try:
        return _apply(counts)  # one statement: atomic by itself
    except Exception:
        with _lock:
            _pending.update(counts)
            if _pending_since is None:
                _pending_since = time.monotonic()
        raise


def _flush_redis(client: Any) -> int:
    import redis

    key = _key()
    flushing = f"{key}:flushing"
    lock, token = f"{key}:lock", uuid.uuid4().hex
    # One flusher at a time (there is one beat, but a manual flush may run beside it).
    if not client.set(lock, token, nx=True, ex=300):
        return 0
    try:
        if not client.exists(flushing):
            try:
                client.rename(key, flushing)
            except redis.ResponseError:  # no such key: nothing was downloaded since the last flush
                return 0
        counts = {int(k): int(v) for k, v in client.hgetall(flushing).items()}
        written = _apply(counts)
        client.delete(flushing)
        return written
    finally:
        if client.get(lock) == token.encode():
            client.delete(lock)


def downloads_flush() -> int:
    """Write the counted downloads to the database (the beat calls this). Returns how many were written."""
    written = _flush_pending()
    client = _redis()
    if client is not None:
        written += _flush_redis(client)
    return written


def downloads_pending(variant_id: int) -> int:
    """Downloads of the variant counted but not yet written (for tests and the admin)."""
    pending = _pending.get(variant_id, 0)
    client = _redis()
    if client is not None:
        key = _key()
        for name in (key, f"{key}:flushing"):
            pending += int(client.hget(name, str(variant_id)) or 0)
    return pending
