"""The audit log: every vetting decision, membership transition, role change, settings change
and sign-in lockout. Written in the same transaction as the change it records."""
from sqlalchemy import Integer, case, cast, or_, select

from alliance.audit.models import AuditEvent
from alliance.extensions import db
from alliance.sharing.policy import names_readable_note


def record(action: str, actor, target, *, organisation=None, alliance=None,
           reason: str | None = None, **details) -> AuditEvent:
    """Add an audit event to the current transaction. target is a model instance (its class
    name and id are kept, with a readable label) or a (type, id, label) tuple."""
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


def list_events(*, alliance=None, limit: int = 200, before_id: int | None = None,
                reader=None):
    """Newest first. With alliance: that alliance's events only (the coordinators' view);
    without: every event (platform admins' view). Callers check who may see which. With
    `reader` (a Principal), an event about a note (posted, answered, edited, retracted) is
    listed only when the reader may read that note: the log would otherwise tell who posted
    and who answered a TLP:RED note, or one in an alliance the reader is not in."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if alliance is not None:
        query = query.where(AuditEvent.alliance_id == alliance.id)
    if before_id:
        query = query.where(AuditEvent.id < before_id)
    if reader is not None:
        about_note = AuditEvent.target_type == "note"
        note_id = case((about_note, cast(AuditEvent.target_id, Integer)), else_=None)
        query = query.where(or_(~about_note, names_readable_note(reader, note_id)))
    return db.session.scalars(query).all()
