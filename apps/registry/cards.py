"""Hugging Face Hub model cards: README.md with YAML front matter, parsed into variant fields and rendered back.

Mapping (front matter key -> variant):
- `license` -> license (`license: other` + `license_name: <known id>` maps back to that id)
- `base_model` (string or list) -> parents, resolved by our full name or by `Variant.hub_id`
- `base_model_relation` -> relation; our extra relations (original, distilled, pruned) travel in `model_commons`
- `pipeline_tag` -> task, `tags` -> tags
- `model_commons: {relation, parameters, precision, architecture, summary, hub_id}` -> those fields
- everything else (datasets, language, library_name, self-reported model-index, ...) -> `Variant.card_data`

On export `model-index` gets the verified results, marked with `source.name: Model Commons`; on import those
entries are dropped again (they are regenerated from our own results), so import -> export -> import is
stable.
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml
from django.conf import settings

from apps.core.errors import ValidationFailed
from apps.core.parsers import string_problem

from .choices import HUB_RELATIONS, Relation

MODEL_COMMONS_KEY = "model_commons"
RESULT_SOURCE_NAME = "Model Commons"
FIELD_KEYS = ("license", "base_model", "base_model_relation", "pipeline_tag", "tags", MODEL_COMMONS_KEY)
EXTENSION_FIELDS = ("relation", "parameters", "precision", "architecture", "summary", "hub_id")
EXPORT_ORDER = (
    "license",
    "license_name",
    "license_link",
    "base_model",
    "base_model_relation",
    "datasets",
    "language",
    "library_name",
    "pipeline_tag",
    "tags",
)
QUANTIZED_TAGS = frozenset({"gguf", "gptq", "awq", "exl2", "quantized", "4-bit", "8-bit", "bitsandbytes", "mlx"})
ADAPTER_TAGS = frozenset({"lora", "qlora", "peft", "adapter"})
MAX_DEPTH = 24
MAX_NODES = 20_000

_FRONT_MATTER = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?)(?:\r?\n)?^---[ \t]*(?:\r?\n|\Z)", re.S | re.M)


class _CardLoader(yaml.SafeLoader):
    """Safe YAML without aliases (an alias bomb would expand when stored as JSON), nested at most MAX_DEPTH
    levels (PyYAML composes recursively: 3,000 nested `[` would end in a RecursionError), and with dates kept
    as the strings they were written as (JSON has no date type)."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("YAML aliases (*name) are not allowed in card metadata")
        if self._depth > MAX_DEPTH:
            raise yaml.YAMLError(f"card metadata is nested more than {MAX_DEPTH} levels deep")
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


_CardLoader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _json_safe(value: Any, where: str, budget: list[int], depth: int = 0) -> Any:
    """Only what JSON (and PostgreSQL jsonb) can hold: finite numbers, strings, lists, string-keyed maps."""
    budget[0] -= 1
    if budget[0] < 0:
        raise ValidationFailed("Card metadata is too large.", errors={where: ["Too many values in the metadata."]})
    if depth > MAX_DEPTH:
        raise ValidationFailed("Card metadata is nested too deeply.", errors={where: ["Nested too deeply."]})
    if isinstance(value, str):
        problem = string_problem(value)
        if problem:
            raise ValidationFailed("Card metadata holds text that cannot be stored.", errors={where: [problem]})
        return value
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationFailed(
                "Card metadata holds a non-finite number.", errors={where: ["NaN and infinity are not allowed."]}
            )
        return value
    if isinstance(value, list | tuple):
        return [_json_safe(v, where, budget, depth + 1) for v in value]
    if isinstance(value, dict):
        return {_json_key(k, where): _json_safe(v, where, budget, depth + 1) for k, v in value.items()}
    raise ValidationFailed(
        "Card metadata holds an unsupported value.",
        errors={where: [f"Unsupported YAML value of type {type(value).__name__}."]},
    )


def _json_key(key: Any, where: str) -> str:
    text = str(key)
    problem = string_problem(text)
    if problem:
        raise ValidationFailed("Card metadata holds text that cannot be stored.", errors={where: [problem]})
    return text


def json_safe(value: Any, where: str = "card_data") -> Any:
    return _json_safe(value, where, [MAX_NODES])


def card_split(text: str) -> tuple[dict[str, Any] | None, str]:
    """(front matter or None, markdown body). The size limit holds before any YAML is parsed."""
    limit = settings.MC_CARD_MAX_CHARS
    if len(text) > limit:
        raise ValidationFailed(
            "The card is too long.", errors={"card": [f"Must be markdown of at most {limit} characters."]}
        )
    problem = string_problem(text)
    if problem:
        raise ValidationFailed("The card holds text that cannot be stored.", errors={"card": [problem]})
    match = _FRONT_MATTER.match(text)
    if not match:
        return None, text
    try:
        data = yaml.load(match.group(1), Loader=_CardLoader)  # noqa: S506 - _CardLoader is a SafeLoader
    except (yaml.YAMLError, RecursionError) as exc:
        raise ValidationFailed(
            "The card's YAML front matter does not parse.", errors={"card": [f"Invalid YAML front matter: {exc}"]}
        )
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValidationFailed(
            "The card's front matter must be a mapping.",
            errors={"card": ["YAML front matter must be a mapping of keys to values."]},
        )
    return json_safe(data, "card"), text[match.end() :].lstrip("\r\n")


def _strip_our_results(model_index: Any) -> Any:
    """Drop the results we generated (source Model Commons); they come back from verified results."""
    if not isinstance(model_index, list):
        return model_index
    out = []
    for entry in model_index:
        if isinstance(entry, dict) and isinstance(entry.get("results"), list):
            kept = [
                r
                for r in entry["results"]
                if not (
                    isinstance(r, dict)
                    and isinstance(r.get("source"), dict)
                    and r["source"].get("name") == RESULT_SOURCE_NAME
                )
            ]
            if not kept:
                continue
            entry = {**entry, "results": kept}
        out.append(entry)
    return out


def _str_list(value: Any, key: str, errors: dict[str, list[str]]) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    errors.setdefault(f"card_data.{key}", []).append("Must be a string or a list of strings.")
    return None


def metadata_to_fields(meta: dict[str, Any], *, infer: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split Hub front matter into (variant fields, remaining card_data).

    Field values are unvalidated; the services validate them like any other input. `parents` holds
    references (full names or Hub ids). With `infer`, a card that states no relation gets the one the Hub
    would infer (a whole card being imported); without it (a partial update) the relation is left alone."""
    errors: dict[str, list[str]] = {}
    fields: dict[str, Any] = {}
    extras = {k: v for k, v in meta.items() if k not in FIELD_KEYS}

    license_id = meta.get("license")
    if isinstance(license_id, str) and license_id:
        fields["license"] = license_id
        if license_id.lower() == "other" and isinstance(meta.get("license_name"), str):
            # The Hub only knows its own ids; other SPDX ids travel as `other` + `license_name`.
            from .licenses import license_lookup

            named = license_lookup(meta["license_name"])
            if named is not None:
                fields["license"] = named.id
                extras.pop("license_name", None)
    elif license_id is not None:
        errors.setdefault("card_data.license", []).append("Must be a single licence id.")

    base = _str_list(meta.get("base_model"), "base_model", errors)
    if base is not None:
        fields["parents"] = base
    tags = _str_list(meta.get("tags"), "tags", errors)
    if tags is not None:
        fields["tags"] = tags
    if isinstance(meta.get("pipeline_tag"), str):
        fields["task"] = meta["pipeline_tag"]

    ours = meta.get(MODEL_COMMONS_KEY) or {}
    if not isinstance(ours, dict):
        errors.setdefault(f"card_data.{MODEL_COMMONS_KEY}", []).append("Must be a mapping.")
        ours = {}
    for key in EXTENSION_FIELDS:
        if ours.get(key) is not None:
            fields[key] = ours[key]

    if "relation" not in fields:
        stated = meta.get("base_model_relation")
        if isinstance(stated, str) and stated in HUB_RELATIONS:
            fields["relation"] = stated
        elif stated is not None:
            errors.setdefault("card_data.base_model_relation", []).append(
                f"Must be one of {', '.join(sorted(HUB_RELATIONS))}."
            )
        elif infer:
            fields["relation"] = infer_relation(base or [], tags or [], extras)

    if "model-index" in extras:
        stripped = _strip_our_results(extras["model-index"])
        if stripped:
            extras["model-index"] = stripped
        else:
            extras.pop("model-index")
    if errors:
        raise ValidationFailed("The card metadata is not valid.", errors=errors)
    return fields, extras


def infer_relation(parents: list[str], tags: list[str], extras: dict[str, Any]) -> str:
    """What the Hub infers when a card has no base_model_relation."""
    if not parents:
        return Relation.ORIGINAL
    if len(parents) > 1:
        return Relation.MERGE
    lowered = {t.lower() for t in tags}
    if lowered & QUANTIZED_TAGS:
        return Relation.QUANTIZED
    if lowered & ADAPTER_TAGS or str(extras.get("library_name", "")).lower() == "peft":
        return Relation.ADAPTER
    return Relation.FINETUNE


def summary_from_body(body: str) -> str:
    """The first paragraph of prose (no heading, list, table, quote or HTML), for an empty summary."""
    for block in re.split(r"\n\s*\n", body):
        text = block.strip()
        if not text or text[0] in "#|<>-*`![" or text.startswith("```"):
            continue
        return " ".join(text.split())[:500]
    return ""


def _result_entries(variant: Any, results: list[dict[str, Any]], base_url: str) -> list[dict[str, Any]]:
    entries = []
    for result in results:
        metrics = [
            {"type": name, "value": value, "name": name}
            for name, value in result["metrics"].items()
            if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        ]
        if not metrics:
            continue
        entries.append(
            {
                "task": {"type": result.get("task") or variant.task or "other"},
                "dataset": {
                    "name": result["benchmark_name"],
                    "type": result["benchmark"],
                    "revision": str(result["benchmark_version"]),
                },
                "metrics": metrics,
                "source": {"name": RESULT_SOURCE_NAME, "url": f"{base_url}/api/v1/jobs/{result['job_id']}/"},
            }
        )
    return entries


def card_metadata(
    variant: Any, parents: list[Any] | None = None, results: list[dict[str, Any]] | None = None, base_url: str = ""
) -> dict[str, Any]:
    """The Hub front matter of a variant, from its fields and card_data (plus verified results if given)."""
    from .licenses import license_lookup

    extras = dict(variant.card_data or {})
    meta: dict[str, Any] = {}
    lic = license_lookup(variant.license)
    if variant.license:
        if lic is not None and lic.source != "hub":
            meta["license"] = "other"
            meta["license_name"] = lic.id
        else:
            meta["license"] = lic.id if lic else variant.license
    if parents is None:
        parents = [link.parent for link in variant.parent_links.all()]
    refs = [p.hub_id or p.full_name for p in parents]
    if refs:
        meta["base_model"] = refs[0] if len(refs) == 1 else refs
        meta["base_model_relation"] = variant.relation if variant.relation in HUB_RELATIONS else "finetune"
    if variant.task:
        meta["pipeline_tag"] = variant.task
    if variant.tags:
        meta["tags"] = list(variant.tags)
    ordered: dict[str, Any] = {}
    for key in EXPORT_ORDER:
        if key in meta:
            ordered[key] = meta[key]
        elif key in extras:
            ordered[key] = extras[key]
    for key, value in extras.items():
        if key not in ordered and key != "model-index":
            ordered[key] = value
    model_index = [dict(e) if isinstance(e, dict) else e for e in extras.get("model-index") or []]
    ours = _result_entries(variant, results or [], base_url)
    if ours:
        first = next((e for e in model_index if isinstance(e, dict)), None)
        if first is None:
            model_index.append({"name": variant.name, "results": ours})
        else:
            first["results"] = [*(first.get("results") or []), *ours]
    if model_index:
        ordered["model-index"] = model_index
    extension = {
        "relation": variant.relation,
        "parameters": variant.parameters,
        "precision": variant.precision,
        "architecture": variant.architecture,
        "summary": variant.summary,
        "hub_id": variant.hub_id,
    }
    ordered[MODEL_COMMONS_KEY] = {k: v for k, v in extension.items() if v not in (None, "")}
    return ordered


def card_render(
    variant: Any, *, parents: list[Any] | None = None, results: list[dict[str, Any]] | None = None, base_url: str = ""
) -> str:
    """A README.md the Hub accepts: YAML front matter, then the markdown body."""
    meta = card_metadata(variant, parents, results, base_url)
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100_000)
    body = variant.card or f"# {variant.name}\n\n{variant.summary}\n"
    return f"---\n{front}---\n\n{body}"
