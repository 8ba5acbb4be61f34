"""Fixtures for checklist tests: the digits world, submission through the registry, jobs as the engine leaves them."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def submit(django_capture_on_commit_callbacks):  # type: ignore[no-untyped-def]
    """Submit a variant's current revision through the registry, running its after-commit hooks."""

    def run(variant: Any, actor: Any = None) -> Any:
        from apps.registry.models import Revision
        from apps.registry.services import revision_submit

        with django_capture_on_commit_callbacks(execute=True):
            revision_submit(revision=variant.current_revision, actor=actor or variant.owner)
        return Revision.objects.select_related("variant__owner").get(pk=variant.current_revision_id)

    return run


@pytest.fixture
def int8_submitted(digits_world, submit):  # type: ignore[no-untyped-def]
    return submit(digits_world["int8"])
