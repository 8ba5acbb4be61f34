"""factory_boy factories of the audit app. Events are appended through the service, so the hash chain holds."""

from __future__ import annotations

import factory

from apps.accounts.tests.factories import UserFactory
from apps.audit.models import AuditEvent


class AuditEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AuditEvent

    actor = factory.SubFactory(UserFactory)
    verb = "thing.made"
    target_type = "thing"
    target_id = factory.Sequence(str)
    after = None

    @classmethod
    def _create(cls, model_class, *args, **kwargs):  # type: ignore[no-untyped-def]
        from apps.audit.services import audit_record

        return audit_record(
            actor=kwargs["actor"],
            verb=kwargs["verb"],
            target=(kwargs["target_type"], kwargs["target_id"]),
            after=kwargs["after"],
        )
