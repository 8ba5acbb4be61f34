"""The profile's quota comes from the app that counts jobs, through accounts.hooks (accounts imports no engine)."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from apps.accounts import hooks
from apps.benchmarks.selectors import quota_status as engine_quota_status

pytestmark = pytest.mark.django_db


def test_the_engine_provides_the_quota_of_the_profile(alice):
    assert hooks.quota_status(alice) == engine_quota_status(user=alice)


def test_without_a_provider_the_quota_is_a_configuration_error(alice, monkeypatch):
    monkeypatch.setattr(hooks, "_quota_status", [])
    with pytest.raises(ImproperlyConfigured, match="No app reports quota status"):
        hooks.quota_status(alice)


def test_registering_again_keeps_one_provider(alice, monkeypatch):
    monkeypatch.setattr(hooks, "_quota_status", [])
    hooks.register_quota_status(lambda user: {"who": user.username})
    hooks.register_quota_status(lambda user: {"who": user.username.upper()})
    assert len(hooks._quota_status) == 1 and hooks.quota_status(alice) == {"who": "ALICE"}
