"""factory_boy factories of the notifications app."""

from __future__ import annotations

import factory

from apps.accounts.tests.factories import UserFactory
from apps.notifications.choices import NotificationKind, WebhookEvent
from apps.notifications.models import Notification, WebhookSubscription
from apps.notifications.signing import secret_generate


class NotificationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Notification

    user = factory.SubFactory(UserFactory)
    kind = NotificationKind.JOB_FINISHED
    title = factory.Sequence(lambda n: f"Job {n} succeeded")


class WebhookSubscriptionFactory(factory.django.DjangoModelFactory):
    """A stored subscription (no URL resolution: tests that deliver stub the transport)."""

    class Meta:
        model = WebhookSubscription

    owner = factory.SubFactory(UserFactory)
    url = factory.Sequence(lambda n: f"https://hooks.example.org/{n}")
    events = factory.LazyFunction(lambda: [WebhookEvent.JOB_FINISHED.value])
    secret = factory.LazyFunction(secret_generate)
