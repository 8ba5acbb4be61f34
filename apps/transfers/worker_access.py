"""Workers fetch the files of any revision, drafts and private ones included, from an internal endpoint that
nobody else may use (issue 13 part 5). A worker mints itself a token for each blob it fetches: the blob's sha256
and an expiry, signed (django.core.signing, HMAC-SHA256) with MC_WORKER_SECRET and a salt of this purpose, so a
token opens one blob for MC_WORKER_TOKEN_TTL_S seconds and is useless for anything else (a user's API token,
another blob, another signed value of the platform)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings
from django.core import signing

SALT = "modelcommons.transfers.worker-blob"


@dataclass(frozen=True)
class WorkerGrant:
    """What a valid worker token allows: reading the blob `sha256` until `expires_at` (a Unix time)."""

    sha256: str
    expires_at: int


class InvalidWorkerToken(Exception):
    """The token is malformed, not signed with the worker secret, or expired."""


def _secret() -> str:
    return str(settings.MC_WORKER_SECRET or settings.SECRET_KEY)


def worker_blob_token(sha256: str, *, ttl_s: float | None = None, now: float | None = None) -> str:
    """A token that lets its bearer read the blob `sha256` for `ttl_s` seconds (MC_WORKER_TOKEN_TTL_S)."""
    ttl = float(settings.MC_WORKER_TOKEN_TTL_S if ttl_s is None else ttl_s)
    expires_at = int((time.time() if now is None else now) + ttl)
    return signing.dumps({"sha256": sha256.lower(), "exp": expires_at}, key=_secret(), salt=SALT)


def worker_blob_grant(token: str, *, now: float | None = None) -> WorkerGrant:
    """The grant a token carries; raises InvalidWorkerToken when it is not one or has expired."""
    try:
        data = signing.loads(token, key=_secret(), salt=SALT)
    except signing.BadSignature:
        raise InvalidWorkerToken("The worker token is not valid (bad signature).") from None
    if not isinstance(data, dict) or not isinstance(data.get("sha256"), str) or not isinstance(data.get("exp"), int):
        raise InvalidWorkerToken("The worker token is not valid (unexpected content).")
    if data["exp"] <= (time.time() if now is None else now):
        raise InvalidWorkerToken("The worker token has expired: mint a new one.")
    return WorkerGrant(sha256=data["sha256"], expires_at=data["exp"])
