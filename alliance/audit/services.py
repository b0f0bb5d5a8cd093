"""The audit log: every vetting decision, membership transition, role change, settings change
and sign-in lockout. Written in the same transaction as the change it records (reading it:
alliance/audit/log.py)."""
from sqlalchemy import select
from werkzeug.local import LocalProxy

from alliance.audit.models import AuditEvent
from alliance.extensions import db


def _unwrap(obj):
    """The object behind a context-local proxy. Flask-Login's `current_user` is a
    LocalProxy: recorded as is, its class name ("localproxy") would stand in the log where
    "user" belongs."""
    return obj._get_current_object() if isinstance(obj, LocalProxy) else obj


def record(action: str, actor, target, *, organisation=None, alliance=None,
           reason: str | None = None, **details) -> AuditEvent:
    """Add an audit event to the current transaction. target is a model instance (its class
    name and id are kept, with a readable label) or a (type, id, label) tuple."""
    actor, target = _unwrap(actor), _unwrap(target)
    if isinstance(target, tuple):
        target_type, target_id, label = target
    else:
        target_type = type(target).__name__.lower()
        target_id = target.id
        label = getattr(target, "name", None) or getattr(target, "email", None) or str(target_id)
    event = AuditEvent(
        action=action,
        actor_id=getattr(actor, "id", None),
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        target_label=None if label is None else str(label)[:300],
        organisation_id=getattr(organisation, "id", None),
        alliance_id=getattr(alliance, "id", None),
        reason=reason or None,
        details=details,
    )
    db.session.add(event)
    return event


def latest_event_at(action: str, *, alliance, target):
    """When the newest `action` event about this target (a model instance) in this alliance
    happened, or None."""
    return db.session.scalar(
        select(AuditEvent.created_at).where(
            AuditEvent.action == action, AuditEvent.alliance_id == alliance.id,
            AuditEvent.target_type == type(target).__name__.lower(),
            AuditEvent.target_id == str(target.id))
        .order_by(AuditEvent.id.desc()).limit(1))
