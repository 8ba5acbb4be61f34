"""factory_boy factories shared by app and flow tests. Each app keeps its own in `apps/<app>/tests/factories.py`;
this module re-exports the ones the suite-wide fixtures use."""

from __future__ import annotations

from apps.accounts.tests.factories import PersonalAccessTokenFactory, UserFactory

__all__ = ["PersonalAccessTokenFactory", "UserFactory"]
