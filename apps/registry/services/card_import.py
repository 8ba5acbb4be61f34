"""Import of a Hugging Face Hub model card (README.md) as a new variant or an update of an existing one."""

from __future__ import annotations

import re

from django.db import transaction

from apps.accounts.models import User
from apps.core.errors import PermissionDenied, ValidationFailed

from ..cards import card_split
from ..models import NAME_RE, Variant
from ..permissions import can_create_in
from .variants import variant_create, variant_update


def variant_import_card(*, owner: User, actor: User, text: str, name: str | None = None) -> tuple[Variant, bool]:
    """Create or update `owner/name` from a Hub README.md (YAML front matter + markdown body).

    Returns (variant, created). Without a name, the card's model-index name is used if it is a valid one.
    Someone who may not write in `owner`'s namespace gets one answer whether or not the name exists there
    (creating and updating would refuse with different messages, telling a stranger which drafts exist)."""
    if not can_create_in(actor, owner):
        raise PermissionDenied(
            f"You may not import cards into {owner.username}'s namespace.",
            errors={"owner": ["Import into your own namespace (maintainers: also commons)."]},
        )
    front, body = card_split(text)
    if front is None:
        raise ValidationFailed(
            "The card has no YAML front matter.",
            errors={"card": ["A Hub model card starts with YAML metadata between two '---' lines."]},
        )
    if not name:
        index = front.get("model-index")
        first = index[0] if isinstance(index, list) and index and isinstance(index[0], dict) else {}
        candidate = first.get("name")
        if isinstance(candidate, str) and re.match(NAME_RE, candidate.rsplit("/", 1)[-1]):
            name = candidate.rsplit("/", 1)[-1]
        else:
            raise ValidationFailed("Name the variant.", errors={"name": ["Required (the card does not name it)."]})
    with transaction.atomic():
        existing = Variant.objects.filter(owner=owner, name__iexact=name).first()
        if existing is not None:
            return variant_update(variant=existing, actor=actor, infer=True, card=body, card_data=front), False
        return variant_create(owner=owner, actor=actor, name=name, card=body, card_data=front), True
