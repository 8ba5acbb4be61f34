"""The shared cache's scripts and transactions run on a real Redis Cluster (issue 16's leftover): three
`redis-server --cluster-enabled yes` nodes on loopback, started and stopped by this test by PID, joined with
`redis-cli --cluster create`. A cluster refuses a script or a MULTI/EXEC whose keys span slots, and a script that
reaches a key held by another node: the token cache's keys all carry the hash tag {auth}, and one request's
throttles share the client's identity as theirs.

The code under test is the token cache's own functions (`first_sighting`, `store`, `lookup`, `_bump`) and the
throttles' `sliding_window_hits`, run through a cluster client in place of Django's Redis client (Django's cache
backend does not speak the cluster protocol itself: a deployment on a cluster puts a cluster-aware client or proxy
there)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures import wait_for

pytestmark = [pytest.mark.slow]


def _free_cluster_port() -> int:
    """A loopback port free together with its cluster bus port (+10000)."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if not server or not cli:
        pytest.skip("redis-server and redis-cli are not installed")
    from redis.cluster import ClusterNode, RedisCluster

    work = tmp_path_factory.mktemp("redis-cluster")
    ports: list[int] = []
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(3):
            port = _free_cluster_port()
            node_dir = Path(work, str(port))
            node_dir.mkdir()
            argv = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            argv += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--dir", str(node_dir)]
            procs.append(
                subprocess.Popen(
                    argv,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
            ports.append(port)
        for port in ports:
            wait_for(lambda p=port: _pong(p), timeout=15, message=f"cluster node {port} to accept connections")
        nodes = [f"127.0.0.1:{p}" for p in ports]
        subprocess.run(
            [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        wait_for(lambda: all(_cluster_ok(cli, p) for p in ports), timeout=30, message="the cluster to be ok")
        client = RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", p) for p in ports])
        yield client
        client.close()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=15)


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _cluster_ok(cli: str, port: int) -> bool:
    out = subprocess.run([cli, "-p", str(port), "cluster", "info"], capture_output=True, text=True, timeout=10)
    return "cluster_state:ok" in out.stdout


class ClusterCache:
    """What the token cache and the throttles use of apps.core.cache.RedisCache, on a cluster client."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.scripts: dict[str, Any] = {}

    def make_and_validate_key(self, key: str) -> str:
        return f"mc:1:{key}"  # Django's KEY_PREFIX:VERSION:key

    def raw_client(self, *, write: bool = True) -> Any:
        return self.client

    def run_script(self, source: str, keys: list[str], args: list[Any]) -> Any:
        if source not in self.scripts:
            self.scripts[source] = self.client.register_script(source)
        return self.scripts[source](keys=keys, args=args)


def test_the_token_cache_runs_on_a_cluster(cluster: Any, db: Any) -> None:
    from apps.accounts import token_cache
    from apps.accounts.models import PersonalAccessToken
    from apps.accounts.services import token_create
    from tests.factories import UserFactory

    cache = ClusterCache(cluster)
    users = [UserFactory(username=f"clustered{i}") for i in range(3)]
    token = PersonalAccessToken.objects.select_related("user").get(
        pk=token_create(user=users[0], name="t", scopes=["read"])[0].pk
    )
    token.user._mc_roles = []
    hashed = token.token_hash
    assert token_cache.lookup(cache, hashed) == (None, None)  # never seen
    gen = token_cache.first_sighting(cache, hashed, users[0].pk)
    token_cache.store(cache, hashed, gen, token)
    seen, cached = token_cache.lookup(cache, hashed)
    assert seen == gen and cached is not None and cached.pk == token.pk and cached.user.pk == users[0].pk
    # A bump of several users (their keys spread over the key space, but one slot by the tag) refuses the entry.
    cache.run_script(token_cache._BUMP, [token_cache._gen_key(cache, u.pk) for u in users], [1, 60])
    after, refused = token_cache.lookup(cache, hashed)
    assert after != gen and refused is None
    slots = {cluster.keyslot(token_cache._gen_key(cache, u.pk)) for u in users}
    slots |= {cluster.keyslot(key) for key in token_cache._keys(cache, hashed)}
    assert len(slots) == 1


def test_one_requests_throttles_count_in_one_transaction_on_a_cluster(cluster: Any) -> None:
    from apps.core.cache import RedisCache
    from apps.core.throttling import AnonRateThrottle, ScopedRateThrottle, UserRateThrottle

    cache = ClusterCache(cluster)
    now = time.time()
    for ident in ("42", "203.0.113.0/24", "7"):
        pairs = ((UserRateThrottle, "user"), (AnonRateThrottle, "anon"), (ScopedRateThrottle, "jobs"))
        keys = [throttle.cache_format % {"scope": scope, "ident": ident} for throttle, scope in pairs]
        answers = RedisCache.sliding_window_hits(cache, [(key, now, 60.0) for key in keys])  # type: ignore[arg-type]
        assert [count for count, _, _ in answers] == [1, 1, 1]
        again = RedisCache.sliding_window_hits(cache, [(key, now + 1, 60.0) for key in keys])  # type: ignore[arg-type]
        assert [count for count, _, _ in again] == [2, 2, 2]


def test_keys_without_a_shared_tag_are_refused_by_the_cluster(cluster: Any) -> None:
    """What the tags prevent: the untagged key names these used before are spread over slots, and the cluster
    (or its client) refuses a script or a transaction over them."""
    from redis.exceptions import RedisClusterException, ResponseError

    from apps.accounts import token_cache

    cache = ClusterCache(cluster)
    old_gen_keys = [cache.make_and_validate_key(f"auth:gen:{pk}") for pk in range(1, 6)]
    assert len({cluster.keyslot(key) for key in old_gen_keys}) > 1
    with pytest.raises((RedisClusterException, ResponseError)):
        cache.run_script(token_cache._BUMP, old_gen_keys, [1, 60])
    old_throttles = [cache.make_and_validate_key(k) for k in ("throttle_user_42", "throttle_jobs_42")]
    assert cluster.keyslot(old_throttles[0]) != cluster.keyslot(old_throttles[1])
    with pytest.raises((RedisClusterException, ResponseError)):
        pipe = cluster.pipeline(transaction=True)
        for key in old_throttles:
            pipe.zadd(key, {"m": 1.0})
        pipe.execute()
