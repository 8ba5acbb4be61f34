"""The shared cache of personal access tokens (issue 16): the token row, its user and the user's roles, by token
hash, so that an authenticated API request makes no query to learn who it is.

Only when the default cache is Redis (apps.core.cache.RedisCache); with any other cache (`make run`'s database
cache) BearerTokenAuthentication reads the database every time, as before.

Revocation stays immediate, and no reader can bring back what a writer invalidated. Each user has a generation in
Redis (`{auth}:gen:<user id>`); an entry records the generation its reader saw BEFORE reading the database, and a
lookup accepts an entry only while that generation is still the user's current one. Every write that may change
what an entry holds (the token saved or deleted, the user saved or deleted, their groups changed, a role group
renamed or deleted) bumps the user's generation right away and again once the transaction commits: a reader that
read the database before the commit (so saw the old rows) recorded an older generation, and its entry is refused.
One Redis round trip looks up an entry: a Lua script reads the token's generation key (`{auth}:tok:<hash>:gen`,
written with the first entry) and the entry, and returns the current generation with the entry if it matches.
On a token's first sighting (or once that key expired) its reader has no generation read before its database
read: it records the key, reads the generation, and reads the database again; later misses read the generation
first and then the database. A generation that vanished (eviction, expiry) comes back as a fresh
random number, so it never matches an entry written before. Expiry, revocation and the user's is_active are checked
in Python on every hit. Entries live ENTRY_TTL seconds at most, as a safety net only.

Nothing about organizations is cached (`_mc_access`, namespace roles): the user's roles are its groups and its
superuser bit. The password hash is never written to Redis: the cached user has `password` deferred (reading it,
which the API never does, is a query)."""

from __future__ import annotations

import pickle
import secrets
from collections.abc import Iterable
from typing import Any

from django.core.cache import caches
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models import DEFERRED, Model

from apps.core.cache import RedisCache

from .models import PersonalAccessToken, User

ENTRY_TTL = 300
GEN_TTL = 24 * 3600

# KEYS[1]: the token's generation-key key, KEYS[2]: the entry (a hash: gen, data); ARGV[1]: a fresh generation
# should the user's have vanished, ARGV[2]: its TTL. Returns false (the token never seen), {gen} (a miss: the
# current generation, to record with the entry the caller will write) or {gen, data} (a hit).
_LOOKUP = """
local gen_key = redis.call('GET', KEYS[1])
if not gen_key then return false end
local gen = redis.call('GET', gen_key)
if not gen then
  gen = ARGV[1]
  redis.call('SET', gen_key, gen, 'EX', ARGV[2])
end
local entry = redis.call('HMGET', KEYS[2], 'gen', 'data')
if entry[1] == gen and entry[2] then return {gen, entry[2]} end
return {gen}
"""

# KEYS[1]: the token's generation-key key, KEYS[2]: the user's generation key; ARGV as _LOOKUP's. Records the
# one in the other and returns the user's current generation.
_FIRST_SIGHTING = """
redis.call('SET', KEYS[1], KEYS[2], 'EX', ARGV[2])
local gen = redis.call('GET', KEYS[2])
if not gen then
  gen = ARGV[1]
  redis.call('SET', KEYS[2], gen, 'EX', ARGV[2])
end
return gen
"""

# KEYS: users' generation keys; ARGV[1]: a fresh generation for those that vanished, ARGV[2]: the TTL.
_BUMP = """
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then redis.call('INCR', key) else redis.call('SET', key, ARGV[1]) end
  redis.call('EXPIRE', key, ARGV[2])
end
return #KEYS
"""


def shared_cache() -> RedisCache | None:
    cache = caches["default"]
    return cache if isinstance(cache, RedisCache) else None


def _fresh_generation() -> int:
    # Random, so that a generation recreated after it vanished matches no entry written before.
    return secrets.randbits(48)


# Every key of the token cache carries the hash tag {auth}: on a Redis Cluster they all live in one slot, so each
# script (which follows a token's generation key to its user's generation, and bumps several users at once) and
# pipeline touches one node, as the cluster requires. The cost is that one node holds every entry: a few hundred
# bytes per token in use.
KEY_TAG = "{auth}"


def _gen_key(cache: RedisCache, user_id: int) -> str:
    return cache.make_and_validate_key(f"{KEY_TAG}:gen:{user_id}")


def _keys(cache: RedisCache, token_hash: str) -> tuple[str, str]:
    return (
        cache.make_and_validate_key(f"{KEY_TAG}:tok:{token_hash}:gen"),
        cache.make_and_validate_key(f"{KEY_TAG}:tok:{token_hash}"),
    )


def _token_fields() -> list[str]:
    return [f.attname for f in PersonalAccessToken._meta.concrete_fields]


def _user_fields() -> list[str]:
    return [f.attname for f in User._meta.concrete_fields if f.attname != "password"]


def _rebuild(model: type[Model], values: dict[str, Any]) -> Any:
    # Fields the entry does not hold (the password; a field added since it was written) are deferred.
    names = [f.attname for f in model._meta.concrete_fields]
    return model.from_db(DEFAULT_DB_ALIAS, names, [values.get(name, DEFERRED) for name in names])


def lookup(cache: RedisCache, token_hash: str) -> tuple[bytes | None, PersonalAccessToken | None]:
    """(the user's current generation, or None if the token was never seen; the cached token with its user and
    the user's roles, or None on a miss)."""
    reply = cache.run_script(_LOOKUP, list(_keys(cache, token_hash)), [_fresh_generation(), GEN_TTL])
    if not reply:
        return None, None
    gen = reply[0]
    if len(reply) < 2:
        return gen, None
    # Our own key in the shared cache, which Django's Redis backend fills with pickles too.
    data = pickle.loads(reply[1])  # noqa: S301
    token = _rebuild(PersonalAccessToken, data["token"])
    user = _rebuild(User, data["user"])
    user._mc_roles = list(data["roles"])
    token.user = user
    return gen, token


def first_sighting(cache: RedisCache, token_hash: str, user_id: int) -> bytes:
    """Record which user's generation governs this token and return that generation: the caller must then read
    the token from the database (again) before it may `store` what it read with it."""
    keys = [_keys(cache, token_hash)[0], _gen_key(cache, user_id)]
    return bytes(cache.run_script(_FIRST_SIGHTING, keys, [_fresh_generation(), GEN_TTL]))


def store(cache: RedisCache, token_hash: str, gen: bytes, token: PersonalAccessToken) -> None:
    """Write `token` (with its user and roles: `user._mc_roles` must be set) as read from the database after
    `gen` was read."""
    gen_key_key, entry_key = _keys(cache, token_hash)
    user = token.user
    data = {
        "token": {name: getattr(token, name) for name in _token_fields()},
        "user": {name: getattr(user, name) for name in _user_fields()},
        "roles": list(user._mc_roles),
    }
    pipe = cache.raw_client().pipeline(transaction=False)
    pipe.set(gen_key_key, _gen_key(cache, token.user_id), ex=GEN_TTL)
    pipe.hset(entry_key, mapping={"gen": gen, "data": pickle.dumps(data, pickle.HIGHEST_PROTOCOL)})
    pipe.expire(entry_key, ENTRY_TTL)
    pipe.execute()


def _bump(user_ids: list[int]) -> None:
    cache = shared_cache()
    if cache is None or not user_ids:
        return
    keys = [_gen_key(cache, uid) for uid in sorted(set(user_ids))]
    cache.run_script(_BUMP, keys, [_fresh_generation(), GEN_TTL])


def invalidate(user_ids: Iterable[int | None]) -> None:
    """Every cached token of these users is refused from now on: bump their generations now (what this
    transaction's own later reads see) and again once it commits (refusing the entries that readers wrote from
    the rows before the commit)."""
    if shared_cache() is None:
        return
    ids = [uid for uid in user_ids if uid is not None]
    if not ids:
        return
    _bump(ids)
    transaction.on_commit(lambda: _bump(ids))


# --- what invalidates: signals, so that every write is covered (services, the admin, the shell, cascades) ----------
# Queryset .update() sends no signal: no code updates users or tokens that way but the last-used stamp, which the
# entry carries itself (BearerTokenAuthentication rewrites it).


def _user_saved(sender: Any, instance: User, created: bool = False, **kwargs: Any) -> None:
    if not created:  # a new user has no token yet
        invalidate([instance.pk])


def _token_saved(sender: Any, instance: PersonalAccessToken, created: bool = False, **kwargs: Any) -> None:
    if not created:  # a new token is in no entry yet
        invalidate([instance.user_id])


def _token_deleted(sender: Any, instance: PersonalAccessToken, **kwargs: Any) -> None:
    invalidate([instance.user_id])


def _groups_changed(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set: set[int] | None, **kwargs: Any
) -> None:
    if action not in ("post_add", "post_remove", "pre_clear"):
        return
    if not reverse:  # user.groups.add(...)
        invalidate([instance.pk])
    elif action == "pre_clear":  # group.user_set.clear(): the members, before they go
        invalidate(instance.user_set.values_list("pk", flat=True))
    else:  # group.user_set.add(...)
        invalidate(pk_set or ())


def _group_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    # A role is a group's name: renaming or deleting a group (whose rows go without an m2m signal) changes roles.
    if instance.pk is not None:
        invalidate(User.objects.filter(groups=instance).values_list("pk", flat=True))


def connect() -> None:
    from django.contrib.auth.models import Group
    from django.db.models import signals

    uid = "apps.accounts.token_cache"
    signals.post_save.connect(_user_saved, sender=User, dispatch_uid=f"{uid}.user_saved")
    signals.post_delete.connect(_user_saved, sender=User, dispatch_uid=f"{uid}.user_deleted")
    signals.post_save.connect(_token_saved, sender=PersonalAccessToken, dispatch_uid=f"{uid}.token_saved")
    signals.post_delete.connect(_token_deleted, sender=PersonalAccessToken, dispatch_uid=f"{uid}.token_deleted")
    signals.m2m_changed.connect(_groups_changed, sender=User.groups.through, dispatch_uid=f"{uid}.groups")
    signals.post_save.connect(_group_changed, sender=Group, dispatch_uid=f"{uid}.group_saved")
    signals.pre_delete.connect(_group_changed, sender=Group, dispatch_uid=f"{uid}.group_deleted")
