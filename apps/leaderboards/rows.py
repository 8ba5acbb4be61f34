"""The leaderboard row (SPEC §3: rank, variant, revision, score, metrics, verified, delta_vs_parents, flags).

One builder for every consumer: the services store each row's JSON document (everything but `rank`, which
depends on the filters) in the summary table, the API splices stored documents into its response without
decoding them, and the web pages build the same dicts from `.values()` rows. After changing the representation,
run `manage.py leaderboard_rebuild` to rewrite the stored documents."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from rest_framework.utils.encoders import JSONEncoder


def deltas(score: float, parents: list[list[Any]]) -> dict[str, float | None]:
    """{parent full name: score minus the parent's score on the same board, or None}."""
    return {name: None if parent_score is None else round(score - parent_score, 6) for _, name, parent_score in parents}


def _common(row: Mapping[str, Any], metrics: Any) -> dict[str, Any]:
    return {
        "variant": row["variant_name"],
        "revision": row["revision_number"],
        "score": row["score"],
        "metrics": metrics,
        "verified": row["verified"],
        "delta_vs_parents": row["delta_vs_parents"]
        if "delta_vs_parents" in row
        else deltas(row["score"], row["parents"]),
        "flags": row["flags"],
        "contaminated": row["contaminated"],
        "relation": row["relation"],
        "precision": row["precision"],
        "license": row["license"],
        "task": row["task"],
        "parameters": row["parameters"],
    }


def entry_document(row: Mapping[str, Any]) -> dict[str, Any]:
    """A benchmark board row without its rank."""
    return {**_common(row, row["metrics"]), "job": row["job_id"], "result_at": row["result_at"]}


def suite_document(row: Mapping[str, Any]) -> dict[str, Any]:
    """A suite board row without its rank; `metrics` are the normalized (0..100) scores per benchmark."""
    normalized = {slug: comp["normalized"] for slug, comp in row["components"].items()}
    return {
        **_common(row, normalized),
        "components": row["components"],
        "complete": row["complete"],
        "missing": row["missing"],
    }


def entry_row(rank: int, row: Mapping[str, Any]) -> dict[str, Any]:
    return {"rank": rank, **entry_document(row)}


def suite_row(rank: int, row: Mapping[str, Any]) -> dict[str, Any]:
    return {"rank": rank, **suite_document(row)}


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def dump(document: dict[str, Any]) -> str:
    """JSON text exactly as the API's renderer would write it (DRF encoder, compact, UTF-8). A runner's NaN or
    infinity becomes null: JSON has no spelling for them."""
    try:
        return json.dumps(document, cls=JSONEncoder, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:
        return json.dumps(_finite(document), cls=JSONEncoder, ensure_ascii=False, separators=(",", ":"))


def entry_text(entry: Any) -> str:
    """The stored document of a LeaderboardEntry."""
    return dump(
        entry_document(
            {
                "variant_name": entry.variant_name,
                "revision_number": entry.revision_number,
                "score": entry.score,
                "metrics": entry.metrics,
                "verified": entry.verified,
                "parents": entry.parents,
                "flags": entry.flags,
                "contaminated": entry.contaminated,
                "relation": entry.relation,
                "precision": entry.precision,
                "license": entry.license,
                "task": entry.task,
                "parameters": entry.parameters,
                "job_id": entry.job_id,
                "result_at": entry.result_at,
            }
        )
    )


def suite_text(score: Any) -> str:
    """The stored document of a SuiteScore."""
    return dump(
        suite_document(
            {
                "variant_name": score.variant_name,
                "revision_number": score.revision_number,
                "score": score.score,
                "components": score.components,
                "verified": score.verified,
                "parents": score.parents,
                "flags": score.flags,
                "contaminated": score.contaminated,
                "complete": score.complete,
                "missing": score.missing,
                "relation": score.relation,
                "precision": score.precision,
                "license": score.license,
                "task": score.task,
                "parameters": score.parameters,
            }
        )
    )


def with_rank(rank: int, document: str) -> str:
    """Prefix a stored document (a JSON object) with its rank, without decoding it."""
    if len(document) <= 2:  # "{}": a row not yet materialized
        return '{"rank":%d}' % rank  # noqa: UP031
    return '{"rank":%d,%s' % (rank, document[1:])  # noqa: UP031 - hot path, no reformatting of the document
