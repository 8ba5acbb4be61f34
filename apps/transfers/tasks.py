"""Celery beat tasks of downloads and uploads: thin interfaces that call the services.

They are registered by TransfersConfig.ready(), so every worker and beat that loads Django has them."""

from __future__ import annotations

from celery import shared_task

from .downloads import downloads_flush as downloads_flush_service
from .services import uploads_expire as uploads_expire_service


@shared_task(name="transfers.downloads_flush", ignore_result=True)
def downloads_flush() -> int:
    """Write the download counts gathered in Redis (or in this process) to the database in one statement."""
    return downloads_flush_service()


@shared_task(name="transfers.uploads_expire", ignore_result=True)
def uploads_expire() -> int:
    """Close upload sessions past their expiry and delete their partial files."""
    return uploads_expire_service()
