"""OpenAPI post-processing: every operation documents the problem+json errors it can return."""

from __future__ import annotations

from typing import Any

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
    "415": "Unsupported media type",
    "429": "Throttled or over quota (see Retry-After)",
}


def add_problem_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = PROBLEM_SCHEMA
    ref = {"$ref": "#/components/schemas/Problem"}
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            responses = operation.setdefault("responses", {})
            for code, description in ERROR_STATUSES.items():
                responses.setdefault(
                    code,
                    {"description": description, "content": {"application/problem+json": {"schema": ref}}},
                )
    return result
