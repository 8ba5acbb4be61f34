"""Every app with models has tests/factories.py (factory_boy); each factory builds a valid object."""

from __future__ import annotations

import importlib.util

import pytest
from django.apps import apps

from apps.accounts.roles import is_maintainer
from apps.accounts.tests.factories import PersonalAccessTokenFactory, UserFactory
from apps.audit.services import audit_chain_verify
from apps.audit.tests.factories import AuditEventFactory
from apps.benchmarks.tests.factories import BenchmarkFactory
from apps.notifications.tests.factories import NotificationFactory, WebhookSubscriptionFactory
from apps.reviews.tests.factories import CommentFactory, FlagFactory
from apps.transfers.tests.factories import UploadSessionFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "config", [c for c in apps.get_app_configs() if c.name.startswith("apps.")], ids=lambda c: c.label
)
def test_every_app_with_models_has_factories(config):
    if all(model._meta.proxy for model in config.get_models()):
        return  # no tables of its own (moderation's admin views are proxies)
    assert importlib.util.find_spec(f"{config.name}.tests.factories") is not None, config.name


def test_users_tokens_and_roles():
    user = UserFactory(roles=["maintainer"])
    assert is_maintainer(user) and user.check_password("pw-Secret-123")
    token = PersonalAccessTokenFactory(user=user, scopes=["read", "write"])
    assert token.is_active and token.plaintext and token.scopes == ["read", "write"]


def test_audit_events_extend_the_log():
    first, second = AuditEventFactory(), AuditEventFactory()
    assert second.seq > first.seq and second.hash != first.hash
    assert audit_chain_verify().ok


def test_benchmark_notification_and_webhook():
    assert BenchmarkFactory().primary_metric == "accuracy"
    assert NotificationFactory().read_at is None
    hook = WebhookSubscriptionFactory()
    assert hook.wants("job.finished") and hook.secret.startswith("whsec_")


def test_comments_flags_and_uploads_go_through_the_services():
    comment = CommentFactory()
    assert comment.body_html and comment.variant.is_public
    flag = FlagFactory(variant=comment.variant)
    assert flag.status == "open" and flag.variant == comment.variant
    session = UploadSessionFactory()
    assert session.status == "open" and session.revision.variant.owner == session.created_by
    assert UploadSessionFactory().revision != session.revision
