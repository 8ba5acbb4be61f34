"""OpenAPI generation: the schema says what the code does, so clients (and schemathesis in CI) can rely on it.

- `AutoSchema` marks a read's authentication optional (`{}` among its security requirements) when an anonymous
  request passes the view's permission checks: public reads are documented as public.
- Arrays carry the limits the code enforces (`allow_empty=False` is `minItems: 1`, a list serializer's
  min_length/max_length are minItems/maxItems), and a serializer that refuses unknown keys
  (`refuses_unknown_fields = True`) says `additionalProperties: false`; a PATCH body the view validates whole
  (`patch_validated_whole = True`) keeps its required fields.
- Request bodies are documented as JSON (the API's format); the form encodings DRF also parses are documented
  only where a body carries files (uploads), since nested objects and lists have no form encoding.
- `StrictFilterExtension` documents each filter query parameter by the form field that parses it.
- `add_problem_responses` (a postprocessing hook) documents the problem+json errors every operation can return,
  gives every documented error response without a body the problem+json body it has, says that text query
  and path parameters hold no NUL character (refused with a 400: core.middleware.NulRefusalMiddleware, and
  DRF's and django-filter's fields), and types digit-only path ids as integers.
- Read-only text and choice fields of a blank model field may be "" in responses (DRF drops their allow_blank)."""

from __future__ import annotations

import copy
import re
from typing import Any

from django import forms
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from drf_spectacular import openapi
from drf_spectacular.contrib.django_filters import DjangoFilterExtension
from drf_spectacular.plumbing import build_mock_request, force_instance, is_list_serializer
from rest_framework import permissions, serializers

PROBLEM_MEDIA_TYPE = "application/problem+json"

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
    "required": ["type", "title", "status", "detail"],
    "additionalProperties": True,
}

ERROR_STATUSES = {
    "400": "Validation failed or malformed request",
    "401": "Missing, invalid, expired or revoked credentials",
    "403": "Authenticated but not allowed (role or token scope)",
    "404": "No such object, or not visible to you",
    "406": "Not acceptable",
    "409": "Conflict or illegal state transition",
    "412": "If-Match precondition failed",
    "413": "Payload too large",
    "414": "Request line (URL) too long",
    "415": "Unsupported media type",
    "429": "Throttled or over quota (see Retry-After)",
}
FORM_MEDIA_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# Text without NUL (U+0000): what Django's and DRF's CharFields accept (ProhibitNullCharactersValidator).
NO_NUL_PATTERN = "^[^\\u0000]*$"
DIGITS_PATTERN = re.compile(r"\^\[0-9\](?:\+|\{1,(\d+)\})\$")
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's AutoSchema, with public operations documented as such.

    drf-spectacular recognises only AllowAny and IsAuthenticatedOrReadOnly; this project's views leave reads
    open through their own permission classes (visibility is the selectors' job). So the question is asked
    directly: does an anonymous request get past the view's permission checks for this method? Only reads are
    asked; a write is documented as needing credentials."""

    def get_auth(self) -> list[dict[str, Any]]:
        auths = super().get_auth()
        if {} not in auths and self.method in permissions.SAFE_METHODS and self._anonymous_allowed():
            auths.append({})
        return auths

    def _map_serializer_field(self, field: Any, direction: str, bypass_extensions: bool = False) -> Any:
        if _blank_model_text(field):
            # DRF drops allow_blank from read-only model fields, so an empty evidence_url or resolution would be
            # documented as a URI or one of the choices only; the model allows "", and so does the schema.
            field = copy.copy(field)
            field.allow_blank = True
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if isinstance(schema, dict) and schema.get("type") == "array":
            if getattr(field, "allow_empty", True) is False:
                schema["minItems"] = max(schema.get("minItems", 0), 1)
            if is_list_serializer(field):
                min_length, max_length = getattr(field, "min_length", None), getattr(field, "max_length", None)
                if min_length is not None:
                    schema["minItems"] = max(schema.get("minItems", 0), min_length)
                if max_length is not None:
                    schema["maxItems"] = max_length
        return schema

    def _insert_field_validators(self, field: Any, schema: Any) -> None:
        if _blank_model_text(field):  # as in _map_serializer_field: "" is a value of a blank model field
            field = copy.copy(field)
            field.allow_blank = True
        super()._insert_field_validators(field, schema)
        # drf-spectacular offers "" as `oneOf: [<format>, {maxLength: 0}]`; a validator that does not check the
        # format finds "" valid under both and refuses it. anyOf says the same without that trap.
        if schema.get("oneOf", [None])[-1] == {"type": "string", "maxLength": 0}:
            schema["anyOf"] = schema.pop("oneOf")

    def _map_basic_serializer(self, serializer: Any, direction: str) -> Any:
        schema = super()._map_basic_serializer(serializer, direction)
        if getattr(serializer, "refuses_unknown_fields", False):
            schema["additionalProperties"] = False
        return schema

    def _get_request_for_media_type(self, serializer: Any, direction: str = "request") -> Any:
        # drf-spectacular documents every PATCH body as partial (nothing required), as DRF's UpdateModelMixin
        # validates it. A view that validates its PATCH body whole says so on the serializer; its schema then
        # keeps the required fields, under the component name a whole body gets.
        if self.method == "PATCH" and getattr(force_instance(serializer), "patch_validated_whole", False):
            self.method = "PUT"
            try:
                return super()._get_request_for_media_type(serializer, direction)
            finally:
                self.method = "PATCH"
        return super()._get_request_for_media_type(serializer, direction)

    def map_parsers(self) -> list[Any]:
        media_types = super().map_parsers()
        if "application/json" in media_types and not self._request_has_files():
            media_types = [media_type for media_type in media_types if media_type not in FORM_MEDIA_TYPES]
        return media_types

    def _request_has_files(self) -> bool:
        fields = getattr(force_instance(self.get_request_serializer()), "fields", None) or {}
        return any(isinstance(field, serializers.FileField) for field in fields.values())

    def _anonymous_allowed(self) -> bool:
        request = build_mock_request(self.method, self.path, self.view, None)
        request.user = AnonymousUser()
        request.auth = None
        try:
            return all(permission.has_permission(request, self.view) for permission in self.view.get_permissions())
        except Exception:  # noqa: BLE001 - a permission that cannot judge a mock request: document auth as needed
            return False


class StrictFilterExtension(DjangoFilterExtension):
    """Filter query parameters as the code parses them: the filter's form field decides (an IntegerFilter is an
    integer with its min_value/max_value, a boolean filter a boolean), never a filter method's type hint (a
    `value: Any` hint made the parameter untyped, so `min_parameters=null` was schema-valid and refused)."""

    target_class = "apps.core.filters.StrictFilterBackend"
    match_subclasses = True
    priority = 1

    def _get_filter_method_hint(self, filter_method: Any) -> Any:
        return super()._get_filter_method_hint(None)  # "no hint": the filter's class decides

    def resolve_filter_field(
        self, auto_schema: Any, model: Any, filterset_class: Any, field_name: str, filter_field: Any
    ) -> list[dict[str, Any]]:
        params = super().resolve_filter_field(auto_schema, model, filterset_class, field_name, filter_field)
        if issubclass(filter_field.field_class, forms.IntegerField):
            for param in params:
                schema = param["schema"]
                schema["type"] = "integer"
                schema.pop("format", None)
                for key, bound in (("min_value", "minimum"), ("max_value", "maximum")):
                    if filter_field.extra.get(key) is not None:
                        schema[bound] = filter_field.extra[key]
        return params


def _blank_model_text(field: Any) -> bool:
    """A read-only text or choice field of a ModelSerializer whose model field may be blank."""
    if not getattr(field, "read_only", False) or getattr(field, "allow_blank", True):
        return False
    model = getattr(getattr(getattr(field, "parent", None), "Meta", None), "model", None)
    source = getattr(field, "source", "") or ""
    if model is None or not source or "." in source or source == "*":
        return False
    try:
        model_field = model._meta.get_field(source)
    except FieldDoesNotExist:
        return False
    return isinstance(model_field, models.CharField | models.TextField) and model_field.blank


def _problem_content(ref: dict[str, str]) -> dict[str, Any]:
    return {PROBLEM_MEDIA_TYPE: {"schema": ref}}


def add_problem_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Every operation documents the problem+json errors the API answers with (the one DRF exception handler and
    the 404/500 handlers make every error under /api/ a problem); an error response an operation declared
    without a body (e.g. `OpenApiResponse(description=...)`) gets the problem+json body it really has."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = PROBLEM_SCHEMA
    ref = {"$ref": "#/components/schemas/Problem"}
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in HTTP_METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for code, description in ERROR_STATUSES.items():
                responses.setdefault(code, {"description": description, "content": _problem_content(ref)})
            for code, response in responses.items():
                if str(code)[0] in "45" and not response.get("content"):
                    response["content"] = _problem_content(ref)
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                digits = DIGITS_PATTERN.fullmatch(schema.get("pattern", "")) if schema.get("type") == "string" else None
                if parameter.get("in") == "path" and digits:
                    # An id the URL converter takes as digits ([0-9]+ or [0-9]{1,18}) is an integer, as the other
                    # ids are (one client type for every id), and no bigger than the database's.
                    schema.pop("pattern")
                    width = int(digits.group(1) or 18)
                    schema.update({"type": "integer", "minimum": 0, "maximum": min(10**width - 1, 2**63 - 1)})
                if (
                    parameter.get("in") in ("query", "path")
                    and schema.get("type") == "string"
                    and not {"pattern", "enum", "format"} & set(schema)
                ):
                    schema["pattern"] = NO_NUL_PATTERN
    return result
