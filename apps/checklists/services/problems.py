"""Field problems of checklist writes: the {field: [messages]} helper, and the evidence rules an answer must
meet (OpenSSF-style, each message starting with its rule's name), which carried-over answers meet too."""

from __future__ import annotations

from urllib.parse import urlparse

from django.conf import settings

from ..choices import Evidence, ItemStatus
from ..models import TemplateItem


def add_problem(errors: dict[str, list[str]], field: str, message: str) -> None:
    errors.setdefault(field, []).append(message)


def answer_problems(item: TemplateItem, status: str, justification: str, evidence_url: str) -> dict[str, list[str]]:
    """The evidence rules of an item, OpenSSF-style; each message starts with the rule's name."""
    errors: dict[str, list[str]] = {}
    minimum = settings.MC_CHECKLIST_MIN_JUSTIFICATION_CHARS
    if status == ItemStatus.NA:
        if not item.na_allowed:
            add_problem(errors, "status", "na_not_allowed: this item cannot be answered N/A.")
        if len(justification.strip()) < minimum:
            add_problem(
                errors,
                "justification",
                f"na_needs_justification: say why the item does not apply (at least {minimum} characters).",
            )
    if status == ItemStatus.MET:
        if item.needs_evidence == Evidence.URL and not evidence_url:
            add_problem(errors, "evidence_url", "met_needs_url: give the URL of the evidence (evidence_url).")
        if item.needs_evidence == Evidence.JUSTIFICATION and len(justification.strip()) < minimum:
            add_problem(
                errors,
                "justification",
                f"met_needs_justification: explain how the item is met (at least {minimum} characters).",
            )
    if evidence_url:
        parsed = urlparse(evidence_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            add_problem(errors, "evidence_url", "evidence_url_invalid: an http(s) URL is required.")
    return errors
