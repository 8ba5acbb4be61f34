"""Licence ids (SPDX + Hugging Face Hub, shipped in fixtures/licenses/licenses.json) and compatibility.

`license_compat()` produces the document stored in `Variant.license_compat`, which the checklist reads:

    {"version": 1,
     "status": "compatible" | "review" | "incompatible" | "undeclared",
     "license": "llama3.1", "family": "llama",
     "checked": [{"variant": "commons/Llama-3.1-8B", "license": "llama3.1", "family": "llama", "depth": 1}],
     "issues": [{"severity": "error" | "warning", "code": "...", "variant": "...", "license": "...",
                 "message": "..."}],
     "inherited_terms": ["llama3.1"]}

Every ancestor is checked, not only the parents, so terms that must be carried down (Llama, Gemma, RAIL,
non-commercial) are caught even when an intermediate variant declared something else.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.conf import settings

from .choices import CompatStatus, LicenseFamily

F = LicenseFamily
COMPAT_VERSION = 1

# Later versions a share-alike licence explicitly allows derivatives to move to.
SHARE_ALIKE_SUCCESSORS: dict[str, frozenset[str]] = {
    "cc-by-sa-3.0": frozenset({"cc-by-sa-4.0"}),
    "cc-by-sa-4.0": frozenset({"gpl-3.0", "gpl-3.0-only", "gpl-3.0-or-later"}),
    "gpl-2.0-or-later": frozenset({"gpl-3.0", "gpl-3.0-only", "gpl-3.0-or-later"}),
    "lgpl-2.1": frozenset({"lgpl-3.0", "gpl-2.0", "gpl-3.0"}),
    "lgpl-3.0": frozenset({"gpl-3.0"}),
    "cc-by-nc-sa-3.0": frozenset({"cc-by-nc-sa-4.0"}),
}


# Families whose terms every derivative must carry: (issue code, what must be carried).
CARRIED_TERMS: dict[str, tuple[str, str]] = {
    F.RAIL.value: ("use_restrictions_dropped", "its use-based restrictions"),
    F.LLAMA.value: ("llama_terms_required", "the Llama licence and acceptable-use policy"),
    F.GEMMA.value: ("gemma_terms_required", "the Gemma Terms of Use and prohibited-use policy"),
}


@dataclass(frozen=True)
class License:
    id: str
    name: str
    family: str
    source: str
    commercial_use: bool | None
    derivatives: bool | None
    share_alike: str | None
    use_restrictions: bool
    name_prefix: str | None = None
    osi_approved: bool = False
    deprecated: bool = False

    @property
    def reviewable(self) -> bool:
        """False for `other` and `unknown`: only a human can say what they allow."""
        return self.family not in (F.OTHER, F.UNKNOWN)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "family": self.family,
            "source": self.source,
            "osi_approved": self.osi_approved,
            "commercial_use": self.commercial_use,
            "derivatives": self.derivatives,
            "share_alike": self.share_alike,
            "use_restrictions": self.use_restrictions,
        }


@lru_cache(maxsize=1)
def _catalogue() -> tuple[dict[str, License], tuple[str, ...]]:
    path = Path(settings.FIXTURES_DIR) / "licenses" / "licenses.json"
    rows = json.loads(path.read_text())["licenses"]
    index: dict[str, License] = {}
    for row in rows:
        key = row["id"].lower()
        if key in index:  # the Hub's spelling comes first in the file and wins over SPDX's
            continue
        index[key] = License(
            id=row["id"],
            name=row["name"],
            family=row["family"],
            source=row["source"],
            commercial_use=row.get("commercial_use"),
            derivatives=row.get("derivatives"),
            share_alike=row.get("share_alike"),
            use_restrictions=bool(row.get("use_restrictions")),
            name_prefix=row.get("name_prefix"),
            osi_approved=bool(row.get("osi_approved")),
            deprecated=bool(row.get("deprecated")),
        )
    return index, tuple(lic.id for lic in index.values())


def license_lookup(value: str) -> License | None:
    """The licence with this id, ignoring case; None when unknown."""
    if not value:
        return None
    return _catalogue()[0].get(value.strip().lower())


def _squash(value: str) -> str:
    return re.sub(r"[^a-z0-9]", "", value.lower())


def license_suggestions(value: str, limit: int = 5) -> list[str]:
    """Close matches for an unknown id (`apache2` -> `apache-2.0`), Hub ids first."""
    index, ids = _catalogue()
    lowered = [i.lower() for i in ids]
    by_lower = {i.lower(): i for i in ids}
    query = value.strip().lower()
    found: list[str] = []
    # Punctuation-insensitive exact matches first ("apache2.0", "Apache 2.0", "llama-3.1").
    squashed = _squash(query)
    for key in lowered:
        if squashed and (_squash(key) == squashed or _squash(key) == squashed + "0"):
            found.append(by_lower[key])
    for key in difflib.get_close_matches(query, lowered, n=limit * 2, cutoff=0.6):
        if by_lower[key] not in found:
            found.append(by_lower[key])
    hub_first = sorted(found, key=lambda i: (index[i.lower()].source != "hub", found.index(i)))
    return hub_first[:limit]


def license_catalogue() -> list[License]:
    return list(_catalogue()[0].values())


def _issue(severity: str, code: str, ancestor: dict[str, Any], message: str) -> dict[str, Any]:
    return {
        "severity": severity,
        "code": code,
        "variant": ancestor["variant"],
        "license": ancestor["license"],
        "message": message,
    }


def _check_against(
    child: License, child_name: str, anc: dict[str, Any], parent: License | None
) -> list[dict[str, Any]]:
    """The rules for one ancestor licence against the child's licence."""
    who = f"{anc['variant']} ({anc['license'] or 'no licence'})"
    if parent is None or not parent.reviewable:
        return [
            _issue(
                "warning",
                "ancestor_license_unclear",
                anc,
                f"{who}: its licence cannot be checked automatically; a reviewer must read it.",
            )
        ]
    issues: list[dict[str, Any]] = []
    same = child.id.lower() == parent.id.lower()
    child_unclear = not child.reviewable
    if parent.derivatives is False:
        issues.append(
            _issue("error", "no_derivatives", anc, f"{who} forbids sharing derivatives (no-derivatives terms).")
        )
    if parent.commercial_use is False and child.commercial_use is not False:
        issues.append(
            _issue(
                "warning" if child_unclear else "error",
                "non_commercial_parent",
                anc,
                f"{who} is non-commercial; a derivative cannot be licensed under "
                f"{child.id}, which allows commercial use.",
            )
        )
    if parent.share_alike == "strong" and not same:
        allowed = SHARE_ALIKE_SUCCESSORS.get(parent.id.lower(), frozenset())
        if child.id.lower() not in allowed:
            issues.append(
                _issue(
                    "warning" if child_unclear else "error",
                    "share_alike",
                    anc,
                    f"{who} is share-alike: derivatives must use the same licence, not {child.id}.",
                )
            )
    elif parent.share_alike == "weak" and not same:
        issues.append(
            _issue(
                "warning",
                "weak_copyleft",
                anc,
                f"{who} is weak copyleft: modified parts stay under {parent.id}; check {child.id} "
                "covers only new work.",
            )
        )
    if parent.family in (F.RAIL, F.LLAMA, F.GEMMA):
        carried = child.family == parent.family
        code = CARRIED_TERMS[parent.family][0]
        what = CARRIED_TERMS[parent.family][1]
        if not carried:
            issues.append(
                _issue(
                    "warning" if child_unclear else "error",
                    code,
                    anc,
                    f"{who}: derivatives must carry {what}; {child.id} does not.",
                )
            )
        elif parent.family == F.LLAMA and not same:
            issues.append(
                _issue(
                    "warning",
                    "llama_version",
                    anc,
                    f"{who}: a derivative is normally licensed under {parent.id}, not {child.id}.",
                )
            )
        if parent.name_prefix and not child_name.lower().startswith(parent.name_prefix.lower()):
            issues.append(
                _issue(
                    "warning",
                    "name_prefix",
                    anc,
                    f"{who} asks derivatives to put \u201c{parent.name_prefix}\u201d at the "
                    f"beginning of their name; '{child_name}' does not.",
                )
            )
    elif parent.use_restrictions and not same:
        issues.append(
            _issue(
                "warning" if child_unclear else "error",
                "use_restrictions_dropped",
                anc,
                f"{who} restricts use; derivatives must keep its terms, not {child.id}.",
            )
        )
    return issues


def license_compat(*, license_id: str, name: str, ancestors: list[dict[str, Any]]) -> dict[str, Any]:
    """Check a variant's licence against every ancestor's.

    `ancestors` is a list of {"variant": full_name, "license": id, "depth": n} (depth 1 = parent).
    """
    child = license_lookup(license_id)
    checked = []
    for anc in sorted(ancestors, key=lambda a: (a["depth"], a["variant"])):
        parent = license_lookup(anc["license"])
        checked.append({**anc, "family": parent.family if parent else F.UNKNOWN})
    inherited = sorted({c["license"] for c in checked if c["family"] in (F.LLAMA, F.GEMMA, F.RAIL, F.NON_COMMERCIAL)})
    doc: dict[str, Any] = {
        "version": COMPAT_VERSION,
        "license": child.id if child else license_id,
        "family": child.family if child else F.UNKNOWN,
        "checked": checked,
        "inherited_terms": inherited,
    }
    if child is None:
        doc.update(status=CompatStatus.UNDECLARED.value, issues=[])
        return doc
    issues: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for anc in checked:
        for issue in _check_against(child, name, anc, license_lookup(anc["license"])):
            # The nearest ancestor with a given licence speaks for the ones above it.
            key = (issue["code"], (issue["license"] or "").lower())
            if key not in seen:
                seen.add(key)
                issues.append(issue)
    if child.family == F.UNKNOWN or child.family == F.OTHER:
        if checked:
            issues.append(
                {
                    "severity": "warning",
                    "code": "license_unclear",
                    "variant": None,
                    "license": child.id,
                    "message": f"'{child.id}' cannot be checked automatically against the parents' "
                    "licences; a reviewer must read it.",
                }
            )
    if any(i["severity"] == "error" for i in issues):
        status = CompatStatus.INCOMPATIBLE
    elif issues:
        status = CompatStatus.REVIEW
    else:
        status = CompatStatus.COMPATIBLE
    doc.update(status=status.value, issues=issues)
    return doc
