"""The beat's sealer (audit.seal) is on the schedule and seals what the services wrote."""

from __future__ import annotations

import pytest

from apps.audit.models import AuditSeal
from apps.audit.services import audit_chain_verify, audit_record
from apps.audit.tasks import audit_seal

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_beat_seals_what_was_written(alice, settings):
    settings.MC_AUDIT_SEAL_EVERY_S = 0  # no sealing after commits: the beat's task does it
    assert settings.CELERY_BEAT_SCHEDULE["audit-seal"]["task"] == audit_seal.name == "audit.seal"
    for i in range(3):
        audit_record(actor=alice, verb="test.write", target=alice, after={"i": i})
    sealed_before = sum(AuditSeal.objects.values_list("count", flat=True))
    audit_seal.apply()
    assert sum(AuditSeal.objects.values_list("count", flat=True)) > sealed_before
    assert audit_chain_verify().ok
