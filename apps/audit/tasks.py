"""The beat's audit sealer: a thin interface to the service (registered by AuditConfig.ready())."""

from __future__ import annotations

from celery import shared_task

from .services import audit_seal as audit_seal_service


@shared_task(name="audit.seal", ignore_result=True)
def audit_seal() -> int:
    """Seal what is final into signed batches (skipped at once if another sealer is at work)."""
    return audit_seal_service(blocking=False)
