"""Property-based fuzzing of every operation in the OpenAPI schema, with every schemathesis check.

New endpoints are fuzzed automatically because the schema is generated from the code."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def api_schema(transactional_db):  # type: ignore[no-untyped-def]
    from modelcommons.wsgi import application

    return schemathesis.openapi.from_wsgi("/api/schema/", application)


@pytest.fixture
def fuzz_auth(transactional_db):  # type: ignore[no-untyped-def]
    """A seeded world and a maintainer token with every scope, so deep code paths are reached."""
    from apps.accounts.models import User
    from apps.accounts.services import token_create
    from apps.core.demo import seed_demo

    seed_demo("commons-demo")
    _, raw = token_create(user=User.objects.get(username="maintainer"), name="fuzz",
                          scopes=["read", "write", "jobs", "review", "admin"])
    return {"Authorization": f"Bearer {raw}"}


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_conforms_to_its_schema(case, fuzz_auth):
    case.call_and_validate(headers=fuzz_auth)
