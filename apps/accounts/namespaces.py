"""One name space for users and organizations (SPEC §2, wave 2): `{owner}/{name}` means the same thing whoever
the owner is, so a user may not take an organization's name, an organization may not take a user's, and neither
may take a name the platform's own paths use.

Accounts sits below the organizations app and must not import it. The organizations app registers a claim in
`NAMESPACE_CLAIMS` (from its AppConfig.ready()): a callable that says why a name is taken, or None."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings

#: Names nobody may take, compared without case: top-level paths of the site and the API (the Hub-compatible
#: `/{owner}/{name}/resolve/…` paths live at the root), the maintainers' `commons`, and words that would mislead.
RESERVED_NAMES = frozenset(
    {
        "about",
        "accounts",
        "admin",
        "administrator",
        "anonymous",
        "api",
        "audit",
        "benchmarks",
        "blog",
        "commons",
        "dashboard",
        "datasets",
        "docs",
        "flags",
        "healthz",
        "help",
        "invitations",
        "jobs",
        "leaderboards",
        "login",
        "logout",
        "maintainers",
        "me",
        "media",
        "models",
        "new",
        "none",
        "notifications",
        "null",
        "organizations",
        "orgs",
        "password_reset",
        "readyz",
        "reviewers",
        "reviews",
        "root",
        "search",
        "security",
        "settings",
        "signup",
        "spaces",
        "static",
        "suites",
        "support",
        "system",
        "tokens",
        "undefined",
        "uploads",
        "users",
        "variants",
        "webhooks",
        "www",
    }
)

#: fn(name) -> a reason the name is taken (e.g. "An organization already has this name."), or None.
NAMESPACE_CLAIMS: list[Callable[[str], str | None]] = []


def name_is_reserved(name: str) -> bool:
    folded = name.strip().lower()
    return folded in RESERVED_NAMES or folded == settings.MC_COMMONS_USERNAME.lower()


def namespace_claim(name: str) -> str | None:
    """Why another kind of owner (an organization) holds this name, or None."""
    for claim in list(NAMESPACE_CLAIMS):
        reason = claim(name)
        if reason:
            return reason
    return None


def username_problem(name: str) -> str | None:
    """Why a new account may not be called `name` (beyond the User model's own validation), or None."""
    if name_is_reserved(name):
        return f"“{name}” is reserved by the platform; choose another name."
    return namespace_claim(name)
