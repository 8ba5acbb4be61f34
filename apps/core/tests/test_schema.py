"""The OpenAPI schema says what the code does (issue 12, finding 15): public reads are public, every error is
documented as problem+json, nullable fields are nullable, parameters and bodies carry the limits the code
enforces. tests/test_schemathesis.py fuzzes the whole API against it; these pin the rules one by one."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.core.errors import ValidationFailed

pytestmark = pytest.mark.django_db

HTTP_METHODS = {"get", "put", "post", "patch", "delete"}


@pytest.fixture(scope="module")
def schema(django_db_setup, django_db_blocker) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    from rest_framework.test import APIClient

    with django_db_blocker.unblock():
        response = APIClient().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200, response.content[:500]
    return response.json()


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if method in HTTP_METHODS
    ]


def parameter(op: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in op["parameters"] if p["name"] == name)


def test_public_reads_are_documented_as_public_and_the_rest_as_authenticated(schema):
    paths = schema["paths"]
    # Anonymous readers may call these: authentication is optional ({} among the requirements).
    for path in (
        "/api/v1/users/{username}/",
        "/api/v1/variants/",
        "/api/v1/variants/{owner}/{name}/",
        "/api/v1/benchmarks/",
        "/api/v1/jobs/{id}/",
    ):
        assert {} in paths[path]["get"]["security"], path
    # These need credentials.
    for path, method in (
        ("/api/v1/users/{username}/", "patch"),
        ("/api/v1/notifications/", "get"),
        ("/api/v1/webhooks/", "get"),
        ("/api/v1/variants/", "post"),
        ("/api/v1/me/", "get"),
    ):
        assert {} not in paths[path][method]["security"], (method, path)
        assert {"bearerAuth": []} in paths[path][method]["security"]


def test_anonymous_access_matches_the_schema(schema, api, digits_world):
    """What the schema calls public answers an anonymous GET; what it calls authenticated refuses it."""
    assert api.get("/api/v1/users/alice/").status_code == 200
    assert {} in schema["paths"]["/api/v1/users/{username}/"]["get"]["security"]
    assert api.get("/api/v1/notifications/").status_code == 401
    assert {} not in schema["paths"]["/api/v1/notifications/"]["get"]["security"]


def test_every_error_response_is_documented_as_problem_json(schema):
    for path, method, op in operations(schema):
        responses = op["responses"]
        for code in ("400", "401", "403", "404", "413", "414", "429"):
            assert code in responses, (method, path, code)
        for code, response in responses.items():
            if code[0] in "45":
                assert list(response["content"]) == ["application/problem+json"], (method, path, code)
    # An error declared with only a description (the Idempotency-Key reuse) still documents its body.
    assert "application/problem+json" in schema["paths"]["/api/v1/jobs/"]["post"]["responses"]["422"]["content"]


def test_job_verifies_is_nullable(schema):
    verifies = schema["components"]["schemas"]["Job"]["properties"]["verifies"]
    assert verifies["type"] == "integer" and verifies["nullable"] is True


@pytest.mark.parametrize(
    ("key", "accepted"),
    [
        ("a", True),
        ("3f2c1a9e-7b7e-4c8e-9d41-0c6d2d1e5b77", True),
        ("a b", True),
        ("!~", True),
        ("x" * 255, True),
        ("", False),
        (" a", False),
        ("a ", False),
        ("x" * 256, False),
        ("é", False),
        ("a\tb", False),
        ("a\n", False),
    ],
)
def test_idempotency_key_schema_is_the_rule_the_code_enforces(schema, key, accepted):
    from apps.benchmarks.idempotency import _check_key

    for path in ("/api/v1/jobs/", "/api/v1/jobs/batch/"):
        documented = parameter(schema["paths"][path]["post"], "Idempotency-Key")["schema"]
        valid = (
            documented["minLength"] <= len(key) <= documented["maxLength"]
            and re.search(documented["pattern"], key) is not None
            and not key.endswith("\n")
        )
        assert valid is accepted, (path, key)
    if accepted:
        assert _check_key(key) == key
    else:
        with pytest.raises(ValidationFailed):
            _check_key(key)


def test_filters_are_typed_by_the_field_that_parses_them(schema):
    variants = schema["paths"]["/api/v1/variants/"]["get"]
    assert parameter(variants, "min_parameters")["schema"] == {"type": "integer", "minimum": 0}
    assert parameter(variants, "relation")["schema"]["enum"]
    jobs = schema["paths"]["/api/v1/jobs/"]["get"]
    assert parameter(jobs, "mine")["schema"]["type"] == "boolean"
    assert parameter(jobs, "page_size")["schema"] == {"type": "integer", "minimum": 1, "maximum": 100}


def test_text_query_parameters_hold_no_nul(schema, api):
    search = parameter(schema["paths"]["/api/v1/variants/"]["get"], "search")["schema"]
    assert re.search(search["pattern"], "digits") and not re.search(search["pattern"], "dig\x00its")
    assert api.get("/api/v1/variants/", {"search": "dig\x00its"}).status_code == 400


def test_bodies_carry_the_limits_the_code_enforces(schema):
    components = schema["components"]["schemas"]
    jobs = components["JobBatchRequest"]["properties"]["jobs"]
    assert (jobs["minItems"], jobs["maxItems"]) == (1, 500)
    assert components["BenchmarkWriteRequest"]["properties"]["metrics"]["minItems"] == 1
    assert components["BenchmarkWriteRequest"]["properties"]["config_schema"]["type"] == "object"
    # The preferences PATCH refuses unknown kinds, and says so.
    assert components["PatchedPreferencesUpdateRequest"]["additionalProperties"] is False
    url = components["WebhookCreateRequest"]["properties"]["url"]
    assert re.search(url["pattern"], "https://hooks.example.org/") and not re.search(url["pattern"], "ftp://x/")


def test_preferences_refuse_what_the_schema_refuses(client_for, digits_world):
    alice = client_for(digits_world["users"]["alice"])
    assert alice.patch("/api/v1/notifications/preferences/", {}, format="json").status_code == 200
    refused = alice.patch("/api/v1/notifications/preferences/", {"no_such_kind": {"email": False}}, format="json")
    assert refused.status_code == 400 and "no_such_kind" in refused.json()["errors"]


def test_request_bodies_are_json_and_multipart_only_for_files(schema):
    for path, method, op in operations(schema):
        content = op.get("requestBody", {}).get("content", {})
        assert "application/x-www-form-urlencoded" not in content, (method, path)
        if "multipart/form-data" in content:
            assert path.endswith("/artifacts/"), (method, path)
    upload = schema["paths"]["/api/v1/variants/{owner}/{name}/revisions/{number}/artifacts/"]["post"]
    assert {"application/json", "multipart/form-data"} <= set(upload["requestBody"]["content"])


def test_basic_authentication_is_a_documented_scheme(schema):
    assert schema["components"]["securitySchemes"]["basicAuth"] == {
        "type": "http",
        "scheme": "basic",
        "description": "Username and password; failed logins are limited (429 with Retry-After).",
    }


@pytest.mark.parametrize(
    ("ordering", "status"),
    [
        ("name", 200),
        ("-parameters,name", 200),
        ("", 200),
        ("nope", 400),
        ("name, created_at", 400),
        ("--name", 400),
        ("name,", 400),
        ("na\x00me", 400),
    ],
)
def test_ordering_is_what_the_schema_documents_and_nothing_else(schema, api, digits_world, ordering, status):
    """DRF ignored an ordering it did not know (schemathesis: schema-violating requests accepted); now the code
    takes exactly what the documented pattern describes."""
    documented = parameter(schema["paths"]["/api/v1/variants/"]["get"], "ordering")["schema"]["pattern"]
    assert (re.fullmatch(documented, ordering) is not None) == (status == 200)
    resp = api.get("/api/v1/variants/", {"ordering": ordering})
    assert resp.status_code == status, resp.content[:300]
    if status == 400 and "\x00" not in ordering:  # a NUL is refused before the view (NulRefusalMiddleware)
        assert "ordering" in resp.json()["errors"]


def test_a_list_in_a_fixed_order_has_no_ordering_parameter(schema, client_for, digits_world):
    jobs = schema["paths"]["/api/v1/jobs/"]["get"]
    assert "ordering" not in [p["name"] for p in jobs["parameters"]]
    refused = client_for(digits_world["users"]["alice"]).get("/api/v1/jobs/", {"ordering": "id"})
    assert refused.status_code == 400 and refused.json()["errors"]["ordering"] == ["This list has a fixed order."]
    ordered = api_names(client_for(digits_world["users"]["alice"]), "-name")
    assert ordered == sorted(ordered, reverse=True)


def api_names(client, ordering):  # type: ignore[no-untyped-def]
    return [v["name"] for v in client.get("/api/v1/variants/", {"ordering": ordering}).json()["results"]]


def test_a_patch_body_validated_whole_keeps_its_required_fields(schema, client_for, digits_world):
    """PATCH bodies are partial by default; a comment edit needs its body, and the schema says so."""
    edit = schema["paths"]["/api/v1/comments/{id}/"]["patch"]["requestBody"]
    component = edit["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert edit["required"] is True and schema["components"]["schemas"][component]["required"] == ["body"]
    variant_patch = schema["paths"]["/api/v1/variants/{owner}/{name}/"]["patch"]["requestBody"]
    assert "required" not in variant_patch  # the variant PATCH is partial, and so is its schema
    alice = client_for(digits_world["users"]["alice"])
    comment = alice.post("/api/v1/variants/commons/digits-mlp/comments/", {"body": "first"}, format="json").json()
    refused = alice.patch(f"/api/v1/comments/{comment['id']}/", {}, format="json")
    assert refused.status_code == 400 and "body" in refused.json()["errors"]


def test_blank_model_text_in_responses_may_be_empty(schema):
    """DRF drops allow_blank from read-only model fields; the schema keeps "" where the model allows it (a flag
    with only an excerpt has evidence_url "", an open flag has resolution "")."""
    import jsonschema

    components = schema["components"]["schemas"]
    flag = components["VariantFlag"]["properties"]
    resolver = {"components": schema["components"]}
    for name in ("evidence_url", "resolution"):
        jsonschema.validate("", {**flag[name], **resolver})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate("maybe", {**flag["resolution"], **resolver})


@pytest.mark.parametrize(
    ("path", "valid"),
    [
        ("model.safetensors", True),
        ("1_Pooling/config.json", True),
        ("a\\b.bin", True),
        ("a b/c d", True),
        ("", False),
        (" ", False),
        ("/etc/passwd", False),
        ("a/../b", False),
        ("./a", False),
        ("a/", False),
        ("a//b", False),
        ("a\x17b", False),
        (" a", True),
        ("a ", True),
        ("..", False),
        (" ../a", False),
        ("a/.. ", False),
        ("a/ .. /b", True),
        ("x" * 501, False),
        ("x" * 500, True),
        ("a/.hidden", True),
        ("a/...", True),
        ("\x1c", False),
    ],
)
def test_file_paths_are_documented_as_the_registry_takes_them(schema, path, valid):
    from apps.registry.services import ARTIFACT_PATH_SCHEMA, clean_artifact_path

    documented = parameter(
        schema["paths"]["/api/v1/variants/{owner}/{name}/revisions/{number}/files/{path}"]["get"], "path"
    )["schema"]
    assert documented == ARTIFACT_PATH_SCHEMA
    matches = len(path) <= documented["maxLength"] and re.search(documented["pattern"], path) is not None
    errors: dict[str, list[str]] = {}
    clean_artifact_path(path, errors)
    assert matches is valid and (not errors) is valid, (path, errors)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], derandomize=True
)
@given(st.text(alphabet=st.sampled_from([" ", ".", "/", "\\", "a", "b", "\x17", "\x1c", "\t", "é"]), max_size=10))
def test_the_file_path_pattern_is_the_registry_rule(path):
    from apps.registry.services import ARTIFACT_PATH_SCHEMA, clean_artifact_path

    errors: dict[str, list[str]] = {}
    clean_artifact_path(path, errors)
    assert (re.search(ARTIFACT_PATH_SCHEMA["pattern"], path) is not None) == (not errors), (path, errors)


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/variants/al%00ice/x/",
        "/api/v1/benchmarks/di%00gits/",
        "/api/v1/leaderboards/digits/?version=a%00b",
        "/api/v1/variants/?owner=a%00",
        "/api/v1/jobs/?variant=a%00/b",
    ],
)
def test_nul_in_a_url_is_a_problem_400_not_a_database_error(api, digits_world, url):
    """schemathesis: `?version=` with a NUL reached PostgreSQL and answered 500; so did NUL in path parameters."""
    resp = api.get(url)
    assert resp.status_code == 400 and resp["Content-Type"].startswith("application/problem+json"), resp.content


def test_nul_in_a_page_url_is_a_400(client, digits_world):
    assert client.get("/leaderboards/digits/?version=a%00b").status_code == 400
    assert client.get("/variants/al%00ice/x/").status_code == 400


def test_path_ids_and_text_parameters_are_typed_as_the_code_takes_them(schema):
    for path, method, op in operations(schema):
        for param in op.get("parameters", []):
            if param["in"] == "path" and param["name"] in ("id", "webhook_pk", "number"):
                assert param["schema"]["type"] == "integer", (method, path, param)
            if param["in"] in ("path", "query") and param["schema"].get("type") == "string":
                assert {"pattern", "enum", "format"} & set(param["schema"]), (method, path, param)
    board = schema["paths"]["/api/v1/leaderboards/{benchmark_slug}/"]["get"]
    assert parameter(board, "version")["schema"]["maxLength"] == 32
