"""Request bodies and query numbers: capped before parsing, strictly parsed, a 400 or 413 problem, never a 500
(issue 12, finding 8)."""

import io
import json

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.exceptions import ParseError
from rest_framework.parsers import MultiPartParser
from rest_framework.views import APIView

from apps.core.errors import PayloadTooLarge
from apps.core.parsers import CAPPED_PARSERS, JSONParser, json_loads_strict

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


def problem(response, status):
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status
    return body


def post_raw(client, body, url="/api/v1/jobs/", content_type="application/json"):
    return client.post(url, data=body, content_type=content_type)


# --- JSON: size ---------------------------------------------------------------------------------------


def test_json_body_over_the_cap_is_413_before_parsing(client_for, alice, settings, monkeypatch):
    settings.MC_JSON_MAX_BYTES = 1000
    parsed = []
    monkeypatch.setattr("apps.core.parsers.json_loads_strict", lambda *a, **k: parsed.append(1))
    body = problem(post_raw(client_for(alice), json.dumps({"variant": "a/b", "benchmark": "x" * 2000})), 413)
    assert "1000-byte limit" in body["detail"] and body["limit_bytes"] == 1000
    assert parsed == []


def test_json_cap_holds_on_views_with_their_own_parser_list(client_for, alice, settings):
    """VariantViewSet, import-card, reviews, webhooks ... name their parsers: they get the capped one."""
    settings.MC_JSON_MAX_BYTES = 100
    resp = client_for(alice).post("/api/v1/variants/", {"name": "x", "summary": "y" * 500}, format="json")
    problem(resp, 413)


def test_json_cap_counts_bytes_without_content_length():
    """A chunked body (no Content-Length) or one that lies: the parser reads at most limit + 1 bytes."""
    stream = io.BytesIO(b"[" + b"1," * 10_000 + b"1]")

    class Request:
        META = {"CONTENT_LENGTH": "5"}  # lies

    from django.test import override_settings

    with override_settings(MC_JSON_MAX_BYTES=1000), pytest.raises(PayloadTooLarge):
        JSONParser().parse(stream, "application/json", {"request": Request()})
    assert stream.tell() == 1001


def test_declared_content_length_over_the_cap_is_refused_unread():
    class Unreadable:
        def read(self, *args):
            raise AssertionError("read although Content-Length was over the cap")

    class Request:
        META = {"CONTENT_LENGTH": str(10 * 1024 * 1024)}

    with pytest.raises(PayloadTooLarge):
        JSONParser().parse(Unreadable(), "application/json", {"request": Request()})


def test_form_body_over_the_cap_is_413(client_for, alice, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    resp = post_raw(
        client_for(alice), "variant=a%2Fb&benchmark=" + "x" * 5000, content_type="application/x-www-form-urlencoded"
    )
    problem(resp, 413)


# --- JSON: shape --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    ["[" * 50_000, "[" * 100 + "]" * 100, '{"a":' * 65 + "1" + "}" * 65],
    ids=["50000-open-brackets", "100-deep-list", "65-deep-object"],
)
def test_deep_nesting_is_400(client_for, alice, raw):
    body = problem(post_raw(client_for(alice), raw), 400)
    assert "nested" in body["detail"] or "JSON" in body["detail"]


def test_64_levels_are_fine():
    assert json_loads_strict("[" * 64 + "]" * 64) is not None


@pytest.mark.parametrize(
    "raw",
    [
        '{"variant": NaN}',
        '{"variant": Infinity}',
        '{"variant": -Infinity}',
        '{"config": {"limit": 1e999}}',
        '{"config": {"limit": -1E400}}',
        '{"config": {"limit": ' + "9" * 100_000 + "}}",
    ],
    ids=["NaN", "Infinity", "-Infinity", "1e999", "-1E400", "100000-digit-integer"],
)
def test_odd_numerals_are_400(client_for, alice, raw):
    body = problem(post_raw(client_for(alice), raw), 400)
    assert body["detail"].startswith("JSON parse error")


@pytest.mark.parametrize(
    "raw",
    [
        '{"variant": "a\\u0000b", "benchmark": "digits"}',
        '{"variant": "alice/x", "benchmark": "digits", "config": {"k\\u0000": 1}}',
        '{"variant": "alice/x", "benchmark": "digits", "config": {"k": ["\\ud800"]}}',
    ],
    ids=["NUL-in-value", "NUL-in-key", "lone-surrogate"],
)
def test_strings_the_database_cannot_hold_are_400(client_for, alice, raw):
    body = problem(post_raw(client_for(alice), raw), 400)
    assert "NUL" in body["detail"] or "surrogate" in body["detail"]


def test_ordinary_json_still_parses():
    assert json_loads_strict('{"a": [1, 2.5, -3e10, "é", null, true]}') == {"a": [1, 2.5, -3e10, "é", None, True]}
    with pytest.raises(ValueError):
        json_loads_strict("[1e400]")


def test_parser_errors_are_parse_errors():
    with pytest.raises(ParseError):
        JSONParser().parse(io.BytesIO(b"\xff\xfe"), "application/json", {})


# --- every API view parses with a capped parser -------------------------------------------------------


def _views(patterns, prefix=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _views(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry.callback


def test_every_api_view_parses_with_capped_parsers():
    """DRF's own JSONParser and FormParser read the whole body: a view that names them (instead of
    apps.core.parsers) would bring back unbounded bodies and RecursionErrors."""
    from apps.registry.api.markdown import MarkdownParser

    allowed = (*CAPPED_PARSERS, MarkdownParser)
    offenders = []
    for route, callback in _views(get_resolver().url_patterns):
        cls = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
        if not (isinstance(cls, type) and issubclass(cls, APIView)):
            continue
        for parser in cls().get_parsers():
            if not isinstance(parser, allowed) or (
                isinstance(parser, MultiPartParser) and type(parser) is not MultiPartParser
            ):
                offenders.append(f"{route}: {type(parser).__module__}.{type(parser).__name__}")
    assert not offenders, offenders


# --- query numbers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "page=²",
        "page=١",
        "page_size=²",
        "page_size=٣",
        "page=" + "9" * 5000,
        "page_size=" + "1" * 5000,
        "page_size=0",
        "page_size=101",
        "page=0",
        "page=-1",
        "page=last",
        "page= 1",
    ],
)
def test_page_numbers_are_ascii_integers_in_range(api, query):
    body = problem(api.get(f"/api/v1/variants/?{query}"), 400)
    assert set(body["errors"]) <= {"page", "page_size"}


@pytest.mark.parametrize("query", ["page_size=²", "page_size=101", "page_size=0", "page_size=" + "1" * 5000])
def test_cursor_pages_too(client_for, alice, query):
    problem(client_for(alice).get(f"/api/v1/jobs/?{query}"), 400)


@pytest.mark.parametrize("query", ["page=²", "page=" + "9" * 5000, "page=1001", "page_size=²", "page_size=101"])
def test_board_pages_too(query):
    from rest_framework.exceptions import ValidationError
    from rest_framework.request import Request
    from rest_framework.test import APIRequestFactory

    from apps.leaderboards.api.pagination import BoardPagination

    with pytest.raises(ValidationError):
        BoardPagination().paginate_queryset([], Request(APIRequestFactory().get(f"/?{query}")))


def test_page_in_range_is_fine(api):
    assert api.get("/api/v1/variants/?page=1&page_size=100").status_code == 200
    assert api.get("/api/v1/variants/?page=7").status_code == 404  # past the end: a problem 404, not a 500


def test_schema_documents_the_page_limits(api):
    schema = api.get("/api/schema/?format=json").json()
    params = {p["name"]: p["schema"] for p in schema["paths"]["/api/v1/variants/"]["get"]["parameters"]}
    assert params["page_size"]["minimum"] == 1 and params["page_size"]["maximum"] == 100
    assert params["page"]["minimum"] == 1
