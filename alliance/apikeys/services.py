"""Creating, listing, revoking and checking API keys. Every key event is audited.

A key reads as its user: revoking the key, deactivating the user or the organisation's
membership ending all take effect on the next request, because nothing is cached — the
user is loaded and passed to the read rule (Principal.of) on every call."""
import hmac
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select, update

from alliance.apikeys.models import ApiKey
from alliance.audit.services import record
from alliance.auth.models import User
from alliance.auth.tokens import secret_digest
from alliance.core.errors import DomainError, NotAllowed, NotFound
from alliance.core.models import utcnow
from alliance.core.unit import unit_of_work
from alliance.extensions import db

KEY_PREFIX = "cpa"
MAX_KEYS_PER_USER = 20
# last_used_at is written at most this often per key (a busy client would otherwise write on
# every request).
TOUCH_EVERY = timedelta(minutes=1)


@unit_of_work()
def create_key(user, name: str, expires_at: datetime | None = None) -> tuple[ApiKey, str]:
    """A new key for the user; returns the row and the key itself, which is shown once."""
    if not getattr(user, "can_act", False):
        raise NotAllowed("Only members of vetted organisations can have API keys.")
    name = " ".join((name or "").split())
    if not name or len(name) > 100:
        raise DomainError("Give the key a name of at most 100 characters.", field="name")
    if expires_at is not None and expires_at <= utcnow():
        raise DomainError("The expiry must be in the future.", field="expires_at")
    count = len(keys_of(user, active_only=True))
    if count >= MAX_KEYS_PER_USER:
        raise DomainError(f"You have {MAX_KEYS_PER_USER} active keys; revoke one first.",
                          field="name")
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    key = ApiKey(user_id=user.id, organisation_id=user.organisation_id, name=name,
                 prefix=prefix, secret_hash=secret_digest(secret), expires_at=expires_at)
    db.session.add(key)
    db.session.flush()
    record("apikey.created", user, ("api_key", key.id, name), organisation=user.organisation,
           prefix=prefix, expires_at=expires_at.isoformat() if expires_at else None)
    return key, f"{KEY_PREFIX}_{prefix}_{secret}"


def keys_of(user, active_only: bool = False) -> Sequence[ApiKey]:
    keys = db.session.scalars(select(ApiKey).where(ApiKey.user_id == user.id)
                              .order_by(ApiKey.created_at.desc(), ApiKey.id.desc())).all()
    return [k for k in keys if k.state == "active"] if active_only else keys


def organisation_keys(actor) -> Sequence[ApiKey]:
    """Every key of the actor's organisation (org admins only)."""
    if not (getattr(actor, "can_act", False) and actor.is_org_admin):
        raise NotAllowed("Only your organisation's admins can see its API keys.")
    return db.session.scalars(select(ApiKey).where(
        ApiKey.organisation_id == actor.organisation_id)
        .order_by(ApiKey.created_at.desc(), ApiKey.id.desc())).all()


@unit_of_work()
def revoke_key(actor, key_id: int) -> ApiKey:
    """The key's user, or an admin of the key's organisation, revokes it."""
    key = db.session.get(ApiKey, key_id)
    if key is None or not (getattr(actor, "can_act", False) and (
            key.user_id == actor.id
            or (actor.is_org_admin and key.organisation_id == actor.organisation_id))):
        raise NotFound("No such API key.")
    if key.revoked_at is not None:
        return key
    key.revoked_at, key.revoked_by_id = utcnow(), actor.id
    record("apikey.revoked", actor, ("api_key", key.id, key.name),
           organisation=actor.organisation, prefix=key.prefix, owner_id=key.user_id)
    return key


def authenticate(presented: str | None) -> tuple[ApiKey, User] | None:
    """The key and its user for a presented key, or None: unknown, malformed, revoked or
    expired key, or a user who may not act (deactivated, unverified, organisation not
    vetted). Constant-time comparison of the hash."""
    if not presented or len(presented) > 200 or "\x00" in presented:  # NUL: PostgreSQL refuses
        return None
    parts = presented.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        return None
    key = db.session.scalar(select(ApiKey).where(ApiKey.prefix == parts[1]))
    if key is None or not hmac.compare_digest(key.secret_hash, secret_digest(parts[2])):
        return None
    if key.state != "active":
        return None
    user = db.session.get(User, key.user_id)
    if user is None or not user.can_act or user.organisation_id != key.organisation_id:
        return None
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at >= TOUCH_EVERY:
        with unit_of_work():
            db.session.execute(update(ApiKey).where(ApiKey.id == key.id)
                               .values(last_used_at=now))
    return key, user
