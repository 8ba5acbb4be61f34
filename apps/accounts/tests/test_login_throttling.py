"""HTTP: login throttling on HTTP Basic (POST /api/v1/auth/tokens/), per account and per client address, in a
cache shared by every process (issue 12, finding 4). The clock is moved, never waited for."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.core.cache import caches
from rest_framework.test import APIClient

from apps.accounts import login_limits
from apps.audit.models import AuditEvent

pytestmark = pytest.mark.django_db
PASSWORD = "pw-Secret-123"  # tests.factories.UserFactory's
ROOT = Path(__file__).resolve().parents[3]
WINDOW_START = 2_111_112 * 900.0  # a multiple of MC_LOGIN_WINDOW_S


@pytest.fixture
def clock(monkeypatch):  # type: ignore[no-untyped-def]
    """login_limits' clock, frozen at a fixed point of a window (so no test straddles a window boundary by
    chance) and moved by hand."""

    class Clock:
        now = WINDOW_START + 60  # a minute into a 15-minute window

        def advance(self, seconds: float) -> None:
            self.now += seconds

    clock = Clock()
    monkeypatch.setattr(login_limits, "_now", lambda: clock.now)
    return clock


def basic_post(username: str, password: str, address: str = "198.51.100.7", **extra: str):  # type: ignore[no-untyped-def]
    creds = base64.b64encode(f"{username}:{password}".encode()).decode()
    return APIClient().post(
        "/api/v1/auth/tokens/",
        {"name": "cli"},
        format="json",
        REMOTE_ADDR=address,
        HTTP_AUTHORIZATION=f"Basic {creds}",
        **extra,
    )


def test_seventy_wrong_passwords_are_locked_after_ten_and_then_the_right_one_too(alice, clock):
    responses = [basic_post("alice", f"guess-{i}") for i in range(70)]
    assert [r.status_code for r in responses[:10]] == [401] * 10
    assert [r.status_code for r in responses[10:]] == [429] * 60
    locked = responses[10]
    assert locked["Content-Type"] == "application/problem+json"
    assert 1 <= int(locked["Retry-After"]) <= settings.MC_LOGIN_LOCKOUT_S
    body = locked.json()
    assert body["status"] == 429 and body["retry_after"] == int(locked["Retry-After"])
    assert "Too many failed logins for this account" in body["detail"]

    # Locked means locked: the right password is refused too, from any address, until the lockout ends.
    assert basic_post("alice", PASSWORD).status_code == 429
    assert basic_post("alice", PASSWORD, address="192.0.2.44").status_code == 429
    clock.advance(settings.MC_LOGIN_LOCKOUT_S - 5)
    still = basic_post("alice", PASSWORD, address="192.0.2.44")
    assert still.status_code == 429 and int(still["Retry-After"]) == 5
    clock.advance(6)
    assert basic_post("alice", PASSWORD, address="192.0.2.44").status_code == 201


def test_a_locked_account_is_refused_without_checking_the_password(alice, clock, monkeypatch):
    for i in range(10):
        basic_post("alice", f"guess-{i}")
    checked = []
    original = ModelBackend.authenticate

    def spy(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        checked.append(kwargs.get("username"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ModelBackend, "authenticate", spy)
    assert basic_post("alice", PASSWORD).status_code == 429
    assert checked == []


def test_the_account_is_the_username_whatever_its_case_and_whether_or_not_it_exists(alice, clock):
    for i in range(10):
        assert basic_post("ALICE" if i % 2 else "Alice", f"guess-{i}").status_code == 401
    assert basic_post("alice", PASSWORD).status_code == 429
    # A name nobody has is locked the same way: a lock tells nothing about who exists.
    for i in range(10):
        assert basic_post("nobody-here", f"guess-{i}", address="192.0.2.9").status_code == 401
    assert basic_post("nobody-here", "x", address="192.0.2.9").status_code == 429


def test_many_usernames_from_one_address_lock_the_address(alice, bob, clock):
    for i in range(50):
        assert basic_post(f"user{i}", "wrong").status_code == 401
    refused = basic_post("alice", PASSWORD)
    assert refused.status_code == 429
    assert "your network address" in refused.json()["detail"]
    # Only that address: alice from elsewhere is fine, and so is bob.
    assert basic_post("alice", PASSWORD, address="192.0.2.10").status_code == 201
    assert basic_post("bob", PASSWORD, address="192.0.2.11").status_code == 201


def test_a_success_does_not_reset_the_address_count(alice, clock):
    for i in range(49):
        assert basic_post(f"user{i}", "wrong").status_code == 401
    assert basic_post("alice", PASSWORD).status_code == 201  # the attacker's own account, say
    assert basic_post("user-last", "wrong").status_code == 401  # the 50th failure from this address
    assert basic_post("user-next", "wrong").status_code == 429
    assert basic_post("alice", PASSWORD).status_code == 429


def test_a_success_resets_the_account_count(alice, clock):
    for i in range(9):
        assert basic_post("alice", f"typo-{i}").status_code == 401
    assert basic_post("alice", PASSWORD).status_code == 201
    for i in range(9):
        assert basic_post("alice", f"typo-again-{i}").status_code == 401
    assert basic_post("alice", PASSWORD).status_code == 201


def test_failures_age_out_of_the_window(alice, clock):
    for i in range(9):
        assert basic_post("alice", f"guess-{i}").status_code == 401
    clock.advance(2 * settings.MC_LOGIN_WINDOW_S)
    for i in range(9):
        assert basic_post("alice", f"later-{i}").status_code == 401
    assert basic_post("alice", PASSWORD).status_code == 201


def test_a_client_supplied_x_forwarded_for_does_not_escape_the_address_limit(settings, clock):
    settings.MC_TRUSTED_PROXIES = 0
    settings.MC_LOGIN_FAILURES_PER_ADDRESS = 3
    codes = [basic_post(f"user{i}", "wrong", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}").status_code for i in range(4)]
    assert codes == [401, 401, 401, 429]


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_client(settings, clock):
    settings.MC_TRUSTED_PROXIES = 1
    settings.MC_LOGIN_FAILURES_PER_ADDRESS = 3
    proxy = "10.0.0.2"
    codes = [
        basic_post(f"user{i}", "wrong", address=proxy, HTTP_X_FORWARDED_FOR=f"203.0.113.{i}").status_code
        for i in range(6)
    ]
    assert codes == [401] * 6  # six clients behind one proxy
    codes = [
        basic_post(f"user{i}", "wrong", address=proxy, HTTP_X_FORWARDED_FOR=f"1.1.1.{i}, 203.0.113.77").status_code
        for i in range(4)
    ]
    assert codes == [401, 401, 401, 429]  # one client, whatever it prepends


def test_locks_are_audited_for_accounts_and_addresses_and_logged_for_unknown_names(alice, clock, caplog):
    for i in range(10):
        basic_post("alice", f"guess-{i}")
    event = AuditEvent.objects.get(verb="login.lock")
    assert event.actor is None and event.target_type == "accounts.user" and event.target_id == str(alice.pk)
    assert event.after["scope"] == "account" and event.after["failures"] == 10
    assert event.after["last_address"] == "198.51.100.7"
    for i in range(20):  # further refusals do not audit again
        basic_post("alice", f"more-{i}")
    assert AuditEvent.objects.filter(verb="login.lock").count() == 1

    for i in range(10):
        basic_post("ghost", f"guess-{i}", address="192.0.2.20")
    assert AuditEvent.objects.filter(verb="login.lock").count() == 1
    assert any("login locked: account 'ghost'" in r.getMessage() for r in caplog.records)

    for i in range(50):
        basic_post(f"spray{i}", "wrong", address="192.0.2.30")
    address_event = AuditEvent.objects.filter(verb="login.lock").latest("seq")
    assert (address_event.target_type, address_event.target_id) == ("client_address", "192.0.2.30")
    assert address_event.after["scope"] == "address"


def test_bearer_tokens_are_not_login_attempts(alice, clock, client_for):
    for i in range(10):
        basic_post("alice", f"guess-{i}")
    assert client_for(alice, scopes=["read"]).get("/api/v1/me/").status_code == 200


# --- One cache for every process --------------------------------------------------------------------------

_FAIL_IN_ANOTHER_PROCESS = """
import json, os, sys
import django
from django.conf import settings
django.setup()
settings.CACHES = json.loads(os.environ["TEST_CACHES"])  # before the first cache access
from django.contrib.auth import authenticate
from django.core.cache import caches
from django.test import RequestFactory
from apps.accounts import login_limits
login_limits._now = lambda: float(sys.argv[2])  # the parent's frozen clock
for i in range(int(sys.argv[1])):
    request = RequestFactory().post("/api/v1/auth/tokens/", REMOTE_ADDR="192.0.2.200")
    assert authenticate(request, username="alice", password=f"wrong-{i}") is None
print(type(caches["default"]).__name__)
"""


def _fail_in_another_process(count: int, now: float) -> str:
    """`count` failed logins of alice's in a separate Python process, against the same cache and database."""
    from tests.fixtures import _test_database_url

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "modelcommons.settings.test",
        "DATABASE_URL": _test_database_url(),
        "PYTHONPATH": f"{ROOT / 'platform'}:{ROOT}",
        "TEST_CACHES": json.dumps(settings.CACHES),
    }
    done = subprocess.run(
        [sys.executable, "-c", _FAIL_IN_ANOTHER_PROCESS, str(count), repr(now)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("cache", ["configured", "database"])
@pytest.mark.django_db(transaction=True)
def test_failures_in_another_process_count_here(cache, alice, clock, settings):
    if cache == "database":
        # What `make run` and a deployment without Redis use: the table the accounts migrations create.
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.db.DatabaseCache",
                "LOCATION": settings.MC_DB_CACHE_TABLE,
                "KEY_PREFIX": settings.CACHES["default"]["KEY_PREFIX"],
            }
        }
    backend = _fail_in_another_process(9, clock.now)
    # Configured: Redis here and in CI; a file cache in tests without Redis (the test settings' stand-in for the
    # database cache). Never a per-process one.
    assert backend == ("DatabaseCache" if cache == "database" else type(caches["default"]).__name__)
    assert backend in ("RedisCache", "FileBasedCache", "DatabaseCache")
    assert basic_post("alice", "one-more-wrong", address="192.0.2.202").status_code == 401  # the 10th failure
    assert basic_post("alice", PASSWORD, address="192.0.2.203").status_code == 429
    assert AuditEvent.objects.filter(verb="login.lock", target_id=str(alice.pk)).count() == 1
