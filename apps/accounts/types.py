"""Who acts and who looks: the user types that services and selectors take.

- ``Actor``: a signed-in user. Services that change state take one (``actor: Actor``, or ``Actor | None`` where the
  system itself may act, as a management command or a recovery task does).
- ``Viewer``: whoever asks to see something, possibly anonymous: ``request.user`` as Django and DRF hand it over.
  Selectors, querysets' ``visible_to`` and permission checks take one.

Modules that would otherwise not import accounts' models import these names under ``TYPE_CHECKING`` (annotations are
strings everywhere, ``from __future__ import annotations``), so typing adds no import at run time."""

from __future__ import annotations

from typing import TypeAlias

from django.contrib.auth.models import AnonymousUser

from apps.core.errors import NotAuthenticated

from .models import User

Actor: TypeAlias = User
Viewer: TypeAlias = User | AnonymousUser

__all__ = ["Actor", "Viewer", "signed_in"]


def signed_in(user: Viewer) -> Actor:
    """The user of a request that only signed-in users reach (``IsAuthenticated``, ``login_required``, the admin),
    as the actor a service takes. Should an anonymous request get this far, it is refused, not passed on."""
    if not user.is_authenticated:
        raise NotAuthenticated("Sign in first.")
    return user
