"""Checklist writes, one module per responsibility: :mod:`.templates` (versioned), :mod:`.instances` (made at
submission, detective runs, levels, the openness class), :mod:`.answers` (answers and verification),
:mod:`.components` (MOF components), and :mod:`.problems` (the rules of an answer, shared).

Every service locks what it changes, records an audit event in the same transaction, and leaves side effects to
`transaction.on_commit`. Imports go one way: components → answers → instances → templates → problems. This module
re-exports the public API: ``from apps.checklists import services`` keeps working."""

from .answers import ANSWERABLE_STATUSES, VERIFIABLE_STATUSES, can_answer, checklist_item_answer, item_etag
from .components import COMPONENT_EDITABLE_STATUSES, component_delete, component_set
from .instances import checklist_ensure, checklist_reevaluate, checklists_reevaluate, openness_store
from .problems import answer_problems
from .templates import (
    ITEM_DEFAULTS,
    ITEM_FIELDS,
    MAX_ITEMS,
    default_template_file,
    template_create,
    template_default,
    template_items_clean,
    template_load_file,
    template_make_default,
    template_new_version,
    template_update,
)

__all__ = [
    "ANSWERABLE_STATUSES",
    "COMPONENT_EDITABLE_STATUSES",
    "ITEM_DEFAULTS",
    "ITEM_FIELDS",
    "MAX_ITEMS",
    "VERIFIABLE_STATUSES",
    "answer_problems",
    "can_answer",
    "checklist_ensure",
    "checklist_item_answer",
    "checklist_reevaluate",
    "checklists_reevaluate",
    "component_delete",
    "component_set",
    "default_template_file",
    "item_etag",
    "openness_store",
    "template_create",
    "template_default",
    "template_items_clean",
    "template_load_file",
    "template_make_default",
    "template_new_version",
    "template_update",
]
