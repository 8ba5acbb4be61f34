"""Registry writes, one module per responsibility. Each service locks what it changes, checks the rules, and records
an audit event in the same transaction; side effects (hooks of other apps, file clean-up) run after commit.

- :mod:`.card_import`: a Hub model card (README.md) imported as a new variant or an update;
- :mod:`.variants`: create, update (metadata, card, lineage) and delete;
- :mod:`.ownership`: transfers between namespaces (with the old name's redirect) and collaborators;
- :mod:`.revisions`: a new revision, submit, withdraw, and the state machine step that stores the snapshot the
  reviewers judge and the public sees;
- :mod:`.artifacts`: records and uploads, their path, format, digest and header checks;
- :mod:`.lineage`: the lineage lock, parent links without cycles, licence compatibility down the lineage;
- :mod:`.validation`: cleaning of variant input (fields, card front matter, declared parents).

Inside the package imports go one way: card_import → variants → lineage and validation; revisions and artifacts →
validation; ownership imports none of them. This module re-exports the public API: ``from apps.registry import
services`` keeps working."""

from .artifacts import (
    ARTIFACT_PATH_SCHEMA,
    artifact_add,
    artifact_add_local_file,
    clean_artifact_format,
    clean_artifact_path,
)
from .card_import import variant_import_card
from .lineage import LINEAGE_LOCK_KEY, variant_license_compat_refresh
from .ownership import MAX_COLLABORATORS, collaborator_add, collaborator_remove, variant_transfer
from .revisions import revision_create, revision_submit, revision_transition, revision_withdraw
from .validation import EDITABLE_FIELDS, MAX_PARAMETERS, MAX_PARENTS, MAX_TAGS
from .variants import variant_create, variant_delete, variant_update

__all__ = [
    "ARTIFACT_PATH_SCHEMA",
    "EDITABLE_FIELDS",
    "LINEAGE_LOCK_KEY",
    "MAX_COLLABORATORS",
    "MAX_PARAMETERS",
    "MAX_PARENTS",
    "MAX_TAGS",
    "artifact_add",
    "artifact_add_local_file",
    "clean_artifact_format",
    "clean_artifact_path",
    "collaborator_add",
    "collaborator_remove",
    "revision_create",
    "revision_submit",
    "revision_transition",
    "revision_withdraw",
    "variant_create",
    "variant_delete",
    "variant_import_card",
    "variant_license_compat_refresh",
    "variant_transfer",
    "variant_update",
]
