"""The web login and the admin login under login throttling (issue 12, finding 4): Django test client."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.test import Client

from apps.accounts import login_limits

pytestmark = pytest.mark.django_db
PASSWORD = "pw-Secret-123"  # tests.factories.UserFactory's


@pytest.fixture
def clock(monkeypatch):  # type: ignore[no-untyped-def]
    class Clock:
        now = 2_111_112 * 900.0 + 60  # a minute into a 15-minute window

    clock = Clock()
    monkeypatch.setattr(login_limits, "_now", lambda: clock.now)
    return clock


def test_web_login_is_locked_after_ten_failures_and_says_so(client, alice, clock, monkeypatch):
    for i in range(10):
        wrong = client.post("/login/", {"username": "alice", "password": f"guess-{i}"})
        assert wrong.status_code == 200
        assert "Please enter a correct username and password" in wrong.content.decode()

    checked = []
    original = ModelBackend.authenticate
    monkeypatch.setattr(
        ModelBackend,
        "authenticate",
        lambda self, *a, **kw: checked.append(kw.get("username")) or original(self, *a, **kw),
    )
    locked = client.post("/login/", {"username": "alice", "password": PASSWORD})
    assert locked.status_code == 429
    assert 1 <= int(locked["Retry-After"]) <= settings.MC_LOGIN_LOCKOUT_S
    page = locked.content.decode()
    assert "Too many failed logins for this account" in page and 'role="alert"' in page
    assert checked == []  # the password was not even checked
    assert "_auth_user_id" not in client.session  # still anonymous

    clock.now += settings.MC_LOGIN_LOCKOUT_S + 1
    ok = client.post("/login/", {"username": "alice", "password": PASSWORD})
    assert ok.status_code == 302 and checked == ["alice"]
    assert client.session["_auth_user_id"] == str(alice.pk)


def test_web_and_api_logins_share_the_counts(alice, clock):
    import base64

    from rest_framework.test import APIClient

    for i in range(5):
        Client().post("/login/", {"username": "alice", "password": f"guess-{i}"})
    creds = base64.b64encode(b"alice:wrong").decode()
    for _ in range(5):
        assert APIClient().post("/api/v1/auth/tokens/", {}, HTTP_AUTHORIZATION=f"Basic {creds}").status_code == 401
    assert Client().post("/login/", {"username": "alice", "password": PASSWORD}).status_code == 429


def test_web_login_address_limit_honours_trusted_proxies_only(settings, clock):
    settings.MC_LOGIN_FAILURES_PER_ADDRESS = 3
    spoofed = [
        Client()
        .post(
            "/login/",
            {"username": f"user{i}", "password": "x"},
            REMOTE_ADDR="198.51.100.7",
            HTTP_X_FORWARDED_FOR=f"203.0.113.{i}",
        )
        .status_code
        for i in range(4)
    ]
    assert spoofed == [200, 200, 200, 429]
    settings.MC_TRUSTED_PROXIES = 1
    proxied = [
        Client()
        .post(
            "/login/",
            {"username": f"user{i}", "password": "x"},
            REMOTE_ADDR="10.0.0.2",
            HTTP_X_FORWARDED_FOR=f"203.0.113.{i}",
        )
        .status_code
        for i in range(4)
    ]
    assert proxied == [200, 200, 200, 200]


def test_a_successful_web_login_keeps_working(client, alice, clock):
    response = client.post("/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(alice.pk)


def test_signup_logs_in_with_the_limited_backend(client):
    response = client.post(
        "/signup/",
        {
            "username": "newbie",
            "email": "newbie@example.org",
            "password1": "a-long-pass-phrase-9",
            "password2": "a-long-pass-phrase-9",
        },
    )
    assert response.status_code == 302
    assert client.session["_auth_user_backend"] == "apps.accounts.backends.LimitedModelBackend"
    assert client.get("/tokens/").status_code == 200  # the session holds: its backend is a configured one


def test_admin_login_is_limited_the_same_way(maintainer, clock):
    maintainer.is_staff = True
    maintainer.save(update_fields=["is_staff"])
    for i in range(10):
        assert Client().post("/admin/login/", {"username": "maintainer", "password": f"g{i}"}).status_code == 200
    locked = Client().post("/admin/login/", {"username": "maintainer", "password": PASSWORD})
    assert locked.status_code == 429 and "Retry-After" in locked
    assert "Too many failed logins for this account" in locked.content.decode()
