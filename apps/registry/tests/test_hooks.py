"""The card export asks for verified results through registry.hooks; the benchmark engine answers."""

import pytest

from apps.registry import hooks, selectors

pytestmark = pytest.mark.django_db


def test_without_an_engine_the_card_has_no_results(monkeypatch):
    monkeypatch.setattr(hooks, "_verified_results", [])
    assert selectors.verified_results(object(), None) == []


def test_the_registered_provider_answers_with_the_variant_and_the_user(monkeypatch):
    seen = []
    monkeypatch.setattr(hooks, "_verified_results", [])
    hooks.register_verified_results(lambda variant, user: seen.append((variant, user)) or [{"benchmark": "b"}])
    hooks.register_verified_results(lambda variant, user: seen.append((variant, user)) or [{"benchmark": "b"}])
    assert selectors.verified_results("v", "u") == [{"benchmark": "b"}] and seen == [("v", "u")]


def test_the_engine_is_registered():
    from apps.benchmarks.selectors import verified_results

    assert hooks._verified_results == [verified_results]
