"""Fill the gaps in the admin so that every model is in the moderation console.

Runs from ModerationConfig.ready(), after the admin autodiscovered every app's admin.py: a model that its own app
registered keeps that app's admin (we only attach our inlines and bulk actions to the registry's revisions and
variants); a model nobody registered gets ours, or a generated read-only one with filters and search."""

from __future__ import annotations

import logging
from typing import Any

from django.apps import apps
from django.contrib import admin
from django.db import models

from apps.accounts.console import MaintainerConsoleMixin, ReasonActionForm

logger = logging.getLogger(__name__)

# Project apps whose models belong in the console; third-party and framework models are left alone.
CONSOLE_APPS = (
    "accounts",
    "orgs",
    "audit",
    "registry",
    "benchmarks",
    "leaderboards",
    "checklists",
    "reviews",
    "notifications",
    "moderation",
)
MAX_FILTER_CHOICES = 50


def _generated_admin(model: type[models.Model]) -> type[admin.ModelAdmin]:
    """A read-only console for a model: filters on choices, booleans and dates; search on short text."""
    fields = [f for f in model._meta.concrete_fields]
    display = ["__str__", *[f.name for f in fields if not isinstance(f, (models.TextField, models.JSONField))][:7]]
    filters = [
        f.name
        for f in fields
        if (f.choices and len(f.choices) <= MAX_FILTER_CHOICES)
        or isinstance(f, (models.BooleanField, models.DateTimeField))
    ]
    search = [f.name for f in fields if isinstance(f, models.CharField) and not f.choices][:5]
    search += [
        f"{f.name}__username"
        for f in fields
        if isinstance(f, models.ForeignKey)
        and f.related_model is not None
        and f.related_model._meta.label == "accounts.User"
    ][:2]
    attrs = {"list_display": display, "list_filter": filters[:8], "search_fields": search, "__module__": __name__}
    return type(f"{model.__name__}Console", (MaintainerConsoleMixin, admin.ModelAdmin), attrs)


def _attach(model_admin: admin.ModelAdmin, *, actions: list[Any], inlines: list[Any]) -> None:
    present = list(model_admin.actions or [])
    names = {getattr(a, "__name__", a) for a in present}
    model_admin.actions = [*present, *[a for a in actions if a.__name__ not in names]]
    have = set(model_admin.inlines or [])
    model_admin.inlines = [*list(model_admin.inlines or []), *[i for i in inlines if i not in have]]  # type: ignore[misc]  # per-instance, on purpose
    if model_admin.action_form is admin.helpers.ActionForm:
        model_admin.action_form = ReasonActionForm  # type: ignore[misc]


def complete_admin(site: admin.AdminSite | None = None) -> None:
    from apps.registry.models import Artifact, Revision, Variant

    from . import admin as consoles

    site = site or admin.site
    checklist = consoles.checklist_inline()
    revision_inlines = [
        consoles.ArtifactInline,
        consoles.ReviewInline,
        consoles.ReviewAssignmentInline,
        consoles.JobInline,
        *([checklist] if checklist else []),
    ]
    variant_inlines = [consoles.ParentInline, consoles.RevisionInline, consoles.CommentInline, consoles.FlagInline]
    ours: dict[type[models.Model], tuple[type[admin.ModelAdmin], list[Any]]] = {
        Variant: (consoles.VariantConsole, variant_inlines),
        Revision: (consoles.RevisionConsole, revision_inlines),
        Artifact: (consoles.ArtifactConsole, []),
    }
    from apps.reviews.admin_actions import REVISION_ACTIONS

    for model, (console, inlines) in ours.items():
        if site.is_registered(model):
            _attach(
                site._registry[model],
                actions=REVISION_ACTIONS if model is not Artifact else [],
                inlines=[
                    i
                    for i in inlines
                    if i not in (consoles.ArtifactInline, consoles.ParentInline, consoles.RevisionInline)
                ],
            )
        else:
            site.register(
                model, type(console.__name__, (console,), {"inlines": inlines, "__module__": console.__module__})
            )
    for app_label in CONSOLE_APPS:
        for model in apps.get_app_config(app_label).get_models():
            if model._meta.proxy or site.is_registered(model):
                continue
            site.register(model, _generated_admin(model))
            logger.debug("moderation console: generated admin for %s", model._meta.label)
