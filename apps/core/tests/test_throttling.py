"""The client address (trusted proxies only) and the API throttles keyed by it (issue 12, finding 4)."""

import pytest
from django.test import RequestFactory
from rest_framework.test import APIClient

from apps.core.throttling import AnonRateThrottle, address_bucket, client_address


def _request(remote: str = "198.51.100.7", forwarded: str | None = None):  # type: ignore[no-untyped-def]
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **extra)


def test_no_trusted_proxy_ignores_x_forwarded_for(settings):
    settings.MC_TRUSTED_PROXIES = 0
    assert client_address(_request(forwarded="203.0.113.1")) == "198.51.100.7"
    assert client_address(_request(forwarded="203.0.113.1, 10.0.0.1")) == "198.51.100.7"


def test_trusted_proxies_take_the_entry_the_outermost_proxy_wrote(settings):
    settings.MC_TRUSTED_PROXIES = 1
    # The client put "1.1.1.1" there itself; our one proxy appended the address it saw.
    assert client_address(_request(remote="10.0.0.2", forwarded="1.1.1.1, 203.0.113.1")) == "203.0.113.1"
    assert client_address(_request(remote="10.0.0.2", forwarded="203.0.113.1")) == "203.0.113.1"
    assert client_address(_request(remote="10.0.0.2")) == "10.0.0.2"  # no header: the direct peer
    settings.MC_TRUSTED_PROXIES = 2
    assert client_address(_request(remote="10.0.0.3", forwarded="1.1.1.1, 203.0.113.1, 10.0.0.2")) == "203.0.113.1"
    # Fewer entries than proxies: every entry was written by one of ours; the leftmost is the farthest.
    assert client_address(_request(remote="10.0.0.3", forwarded="203.0.113.1")) == "203.0.113.1"


def test_addresses_are_normalised_and_garbage_is_no_address(settings):
    settings.MC_TRUSTED_PROXIES = 1
    assert client_address(_request(forwarded="203.0.113.1:4711")) == "203.0.113.1"
    assert client_address(_request(forwarded="[2001:db8::1]:443")) == "2001:db8::1"
    assert client_address(_request(forwarded="::ffff:203.0.113.1")) == "203.0.113.1"
    assert client_address(_request(forwarded="not-an-address")) is None
    settings.MC_TRUSTED_PROXIES = 0
    assert client_address(_request(remote="")) is None


def test_ipv6_clients_are_counted_by_their_64():
    assert address_bucket("2001:db8:1:2:aaaa::1") == address_bucket("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert address_bucket("2001:db8:1:3::1") != address_bucket("2001:db8:1:2::1")
    assert address_bucket("203.0.113.1") == "203.0.113.1"
    assert address_bucket(None) is None


@pytest.fixture
def anon_two_per_minute(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(AnonRateThrottle, "THROTTLE_RATES", {"anon": "2/min"})


def _anon_get(forwarded: str, remote: str = "198.51.100.7") -> int:
    return APIClient().get("/api/v1/benchmarks/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded).status_code


@pytest.mark.django_db
def test_anon_throttle_is_not_fooled_by_a_client_supplied_x_forwarded_for(settings, anon_two_per_minute):
    settings.MC_TRUSTED_PROXIES = 0
    assert [_anon_get(f"203.0.113.{i}") for i in range(3)] == [200, 200, 429]


@pytest.mark.django_db
def test_anon_throttle_honours_x_forwarded_for_behind_a_trusted_proxy(settings, anon_two_per_minute):
    settings.MC_TRUSTED_PROXIES = 1
    assert [_anon_get(f"203.0.113.{i}", remote="10.0.0.2") for i in range(3)] == [200, 200, 200]
    assert [_anon_get("203.0.113.50", remote="10.0.0.2") for _ in range(3)] == [200, 200, 429]
    resp = APIClient().get("/api/v1/benchmarks/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.50")
    assert resp["Content-Type"] == "application/problem+json"
    assert 1 <= int(resp["Retry-After"]) <= 60


def test_api_throttles_are_ours_and_count_in_a_shared_cache(settings):
    from django.core.cache import caches
    from django.core.cache.backends.locmem import LocMemCache
    from rest_framework.settings import api_settings

    from apps.core.throttling import AnonRateThrottle, ApiRateThrottles, ScopedRateThrottle, UserRateThrottle

    assert api_settings.DEFAULT_THROTTLE_CLASSES == [ApiRateThrottles]
    assert ApiRateThrottles.parts == (AnonRateThrottle, UserRateThrottle, ScopedRateThrottle)
    assert settings.REST_FRAMEWORK["NUM_PROXIES"] == settings.MC_TRUSTED_PROXIES
    assert not isinstance(caches["default"], LocMemCache)


def _user_throttle(clock: list[float], pk: int = 42):  # type: ignore[no-untyped-def]
    from types import SimpleNamespace

    from apps.core.throttling import UserRateThrottle

    throttle = UserRateThrottle()
    throttle.timer = lambda: clock[0]  # type: ignore[method-assign]
    request = RequestFactory().get("/")
    request.user = SimpleNamespace(is_authenticated=True, pk=pk)  # type: ignore[assignment]
    return throttle, request


def test_user_throttle_is_a_sliding_log_that_does_not_count_refusals(monkeypatch):
    """At most 3 in any 60 s; a refused request is not counted; Retry-After as DRF computes it (issue 16: the log
    lives in a Redis sorted set when the cache is Redis, in DRF's pickled list otherwise; the rule is the same)."""
    from apps.core.throttling import UserRateThrottle

    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", {"user": "3/min"})
    clock = [1000.0]

    def hit(at: float) -> tuple[bool, float | None]:
        clock[0] = at
        throttle, request = _user_throttle(clock)
        allowed = throttle.allow_request(request, None)
        return allowed, None if allowed else throttle.wait()

    assert [hit(t)[0] for t in (1000.0, 1001.0, 1002.0)] == [True, True, True]
    allowed, wait = hit(1003.0)
    assert not allowed and wait == pytest.approx(57.0)
    assert hit(1030.0)[0] is False
    # 1000 has left the window; the refusals at 1003 and 1030 were never counted, so there is room for one.
    assert hit(1060.5)[0] is True
    assert hit(1060.6)[0] is False
    assert hit(1061.5)[0] is True  # 1001 has left too
    # Another user has an allowance of their own.
    clock[0] = 1061.6
    throttle, request = _user_throttle(clock, pk=43)
    assert throttle.allow_request(request, None) is True


def test_on_redis_the_throttle_log_is_one_sorted_set(monkeypatch):
    from django.core.cache import caches

    from apps.core.cache import RedisCache
    from apps.core.throttling import UserRateThrottle

    if not isinstance(caches["default"], RedisCache):
        pytest.skip("the shared cache is not Redis here (CELERY_BROKER_URL/REDIS_URL unset)")
    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", {"user": "100/min"})
    clock = [5000.0]
    for i in range(4):
        clock[0] = 5000.0 + i
        throttle, request = _user_throttle(clock, pk=7)
        assert throttle.allow_request(request, None)
    backend = caches["default"]
    key = backend.make_and_validate_key(throttle.get_cache_key(request, None))
    assert backend._cache.get_client(key).zcard(key) == 4


def _api_throttles(clock: list[float], pk: int):  # type: ignore[no-untyped-def]
    from types import SimpleNamespace

    from apps.core.throttling import ApiRateThrottles

    throttles = ApiRateThrottles()
    for part in throttles.throttles:
        part.timer = lambda: clock[0]  # type: ignore[method-assign]
    request = RequestFactory().get("/")
    request.user = SimpleNamespace(is_authenticated=True, pk=pk)  # type: ignore[assignment]
    return throttles, request, SimpleNamespace(throttle_scope="tokens")


def test_the_api_throttles_together_decide_as_one_after_the_other(monkeypatch):
    """User 3/min and a scope at 2/min: recorded together (on Redis, one round trip), the answers, the waits and
    the logs are those of DRF running the throttles in turn (each counts what it accepts, none what it refuses)."""
    from django.core.cache import caches

    from apps.core.throttling import ScopedRateThrottle, UserRateThrottle

    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", {"user": "3/min"})
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"tokens": "2/min"})
    times = (1000.0, 1001.0, 1002.0, 1003.0, 1061.5, 1062.5)

    def run(pk: int, together: bool) -> list[tuple[bool, float | None]]:
        clock = [0.0]
        answers = []
        for at in times:
            clock[0] = at
            throttles, request, view = _api_throttles(clock, pk)
            if together:
                allowed = throttles.allow_request(request, view)
                answers.append((allowed, None if allowed else throttles.wait()))
            else:
                waits = [t.wait() for t in throttles.throttles if not t.allow_request(request, view)]
                answers.append((not waits, max((w for w in waits if w is not None), default=None)))
        return answers

    together, in_turn = run(pk=7, together=True), run(pk=8, together=False)
    assert together == in_turn
    assert [allowed for allowed, _ in together] == [True, True, False, False, True, True]
    assert together[2][1] == pytest.approx(58.0)  # the scope's wait
    cache = caches["default"]
    if hasattr(cache, "raw_client"):
        client = cache.raw_client()
        for key in ("throttle:{{{}}}:user", "throttle:{{{}}}:tokens"):
            sizes = [client.zcard(cache.make_and_validate_key(key.format(pk))) for pk in (7, 8)]
            assert sizes[0] == sizes[1] > 0, (key, sizes)


def test_an_authenticated_request_makes_two_redis_round_trips(db, monkeypatch):  # type: ignore[no-untyped-def]
    """The token (apps/accounts/token_cache.py) and the throttles, user and scope together."""
    from django.core.cache import caches
    from redis.connection import AbstractConnection

    from apps.accounts.services import token_create
    from apps.core.cache import RedisCache
    from tests.factories import UserFactory

    if not isinstance(caches["default"], RedisCache):
        pytest.skip("the shared cache is not Redis here")
    _, raw = token_create(user=UserFactory(), name="t", scopes=["read"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/v1/auth/tokens/").status_code == 200  # a scoped view ("tokens"); fills the cache
    sent: list[bytes] = []
    real = AbstractConnection.send_packed_command

    def spy(self, command, check_health=True):  # type: ignore[no-untyped-def]
        sent.append(command)
        return real(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", spy)
    assert client.get("/api/v1/auth/tokens/").status_code == 200
    assert len(sent) == 2, sent
    sent.clear()
    assert APIClient().get("/api/v1/benchmarks/").status_code == 200  # anonymous: the throttles only
    assert len(sent) == 1, sent
