"""Reading the audit log: the events a reader may see, filtered, as sentences and as CSV
(the pages in views.py). Writing it is alliance/audit/services.py."""
import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Integer, case, cast, or_, select
from sqlalchemy.orm import joinedload

from alliance.audit.models import AuditEvent
from alliance.auth.models import User
from alliance.extensions import db
from alliance.sharing.policy import names_readable_note


@dataclass(frozen=True)
class EventFilter:
    """What the audit pages' filter form narrows the events to: who acted, the action, and
    the UTC dates from `since` to `until` (both inclusive). None filters nothing."""

    actor_id: int | None = None
    action: str | None = None
    since: date | None = None
    until: date | None = None


NO_FILTER = EventFilter()


def list_events(*, alliance=None, limit: int | None = 200, before_id: int | None = None,
                reader=None, alliance_ids=None, filters: EventFilter = NO_FILTER):
    """Newest first. With alliance: that alliance's events only (the coordinators' view);
    with alliance_ids: the events of those alliances only (a coordinator's view of every
    alliance they coordinate: events attached to no alliance are left out); with neither:
    every event (platform admins' view). Callers check who may see which. With `reader` (a
    Principal), an event about a note (posted, answered, edited, retracted) is listed only
    when the reader may read that note: the log would otherwise tell who posted and who
    answered a TLP:RED note, or one in an alliance the reader is not in.

    `filters` (EventFilter) narrow further. limit=None lists every matching event (the CSV
    export)."""
    query = (_scoped(alliance=alliance, alliance_ids=alliance_ids, reader=reader)
             .options(joinedload(AuditEvent.actor).joinedload(User.organisation),
                      joinedload(AuditEvent.alliance))
             .order_by(AuditEvent.id.desc()))
    if limit is not None:
        query = query.limit(limit)
    if before_id:
        query = query.where(AuditEvent.id < before_id)
    if filters.actor_id is not None:
        query = query.where(AuditEvent.actor_id == filters.actor_id)
    if filters.action:
        query = query.where(AuditEvent.action == filters.action)
    if filters.since is not None:
        query = query.where(AuditEvent.created_at >= _day_start(filters.since))
    if filters.until is not None:
        query = query.where(AuditEvent.created_at
                            < _day_start(filters.until + timedelta(days=1)))
    return db.session.scalars(query).unique().all()


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _scoped(*, alliance=None, alliance_ids=None, reader=None):
    """The events a reader may see in a view (see list_events), before any filter."""
    query = select(AuditEvent)
    if alliance is not None:
        query = query.where(AuditEvent.alliance_id == alliance.id)
    if alliance_ids is not None:
        query = query.where(AuditEvent.alliance_id.in_(list(alliance_ids)))
    if reader is not None:
        about_note = AuditEvent.target_type == "note"
        note_id = case((about_note, cast(AuditEvent.target_id, Integer)), else_=None)
        query = query.where(or_(~about_note, names_readable_note(reader, note_id)))
    return query


def event_actors(*, alliance=None, alliance_ids=None, reader=None) -> Sequence[User]:
    """The people who did something in the events a view shows (its actor filter's
    choices), by name: taken from the same events as list_events, so that the choices name
    nobody the reader could not see in the log itself."""
    scoped = _scoped(alliance=alliance, alliance_ids=alliance_ids, reader=reader)
    actor_ids = scoped.with_only_columns(AuditEvent.actor_id).where(
        AuditEvent.actor_id.is_not(None)).distinct()
    return db.session.scalars(select(User).where(User.id.in_(actor_ids))
                              .order_by(User.name, User.id)).all()


# --- the log in words ----------------------------------------------------------------------

# What each action is called in the action filter.
ACTION_LABELS = {
    "membership.requested": "Asked to join",
    "membership.approved": "Request approved",
    "membership.rejected": "Request rejected",
    "membership.invited": "Invited",
    "membership.reminded": "Invitation reminder",
    "membership.accepted": "Invitation accepted",
    "membership.declined": "Invitation declined",
    "membership.suspended": "Suspended",
    "membership.reinstated": "Reinstated",
    "membership.removed": "Removed",
    "membership.left": "Left",
    "coordinator.appointed": "Coordinator appointed",
    "coordinator.removed": "Coordinator removed",
    "alliance.created": "Alliance created",
    "alliance.settings_changed": "Settings changed",
    "organisation.registered": "Organisation registered",
    "organisation.approved": "Organisation approved",
    "organisation.rejected": "Organisation rejected",
    "user.invited": "User invited",
    "user.joined": "User joined",
    "user.role_changed": "Role changed",
    "user.deactivated": "User deactivated",
    "user.made_admin": "Platform admin made",
    "apikey.created": "API key created",
    "apikey.revoked": "API key revoked",
    "note.posted": "Note posted",
    "note.edited": "Note edited",
    "note.retracted": "Note retracted",
    "note.comment": "Comment",
    "note.opinion": "Opinion",
    "note.sighting": "Sighting",
    "signin.link": "Signed in with a link",
    "signin.lockout": "Sign-ins locked",
    "password.lockout": "Password checks locked",
}

# The sentence for each action, after its subject (who did it). {target} is what the event
# is about (as it was named then), {alliance} the alliance it happened in.
_SENTENCES = {
    "membership.requested": "asked for {target} to join {alliance}",
    "membership.approved": "approved the request from {target} to join {alliance}",
    "membership.rejected": "rejected the request from {target} to join {alliance}",
    "membership.invited": "invited {target} to join {alliance}",
    "membership.reminded": "reminded {target} of the invitation to join {alliance}",
    "membership.accepted": "accepted, for {target}, the invitation to join {alliance}",
    "membership.declined": "declined, for {target}, the invitation to join {alliance}",
    "membership.suspended": "suspended {target} from {alliance}",
    "membership.reinstated": "reinstated {target} in {alliance}",
    "membership.removed": "removed {target} from {alliance}",
    "membership.left": "took {target} out of {alliance}",
    "coordinator.appointed": "appointed {target} coordinator of {alliance}",
    "coordinator.removed": "removed {target} as coordinator of {alliance}",
    "alliance.created": "created {alliance}",
    "alliance.settings_changed": "changed the settings of {alliance}",
    "organisation.registered": "registered {target}",
    "organisation.approved": "approved the registration of {target}",
    "organisation.rejected": "rejected the registration of {target}",
    "user.invited": "invited {target} to {organisation}",
    "user.joined": "joined {organisation}",
    "user.role_changed": "changed the role of {target}",
    "user.deactivated": "deactivated the account of {target}",
    "user.made_admin": "made {target} a platform administrator",
    "apikey.created": "created the API key \u201c{target}\u201d",
    "apikey.revoked": "revoked the API key \u201c{target}\u201d",
    "note.posted": "posted {target}",
    "note.edited": "edited {target}",
    "note.retracted": "retracted {target}",
    "note.comment": "commented on {target}",
    "note.opinion": "gave an opinion on {target}",
    "note.sighting": "reported a sighting of {target}",
    "signin.link": "signed in with a one-time link",
    "signin.lockout": "locked sign-ins for {target} after repeated failures",
    "password.lockout": "locked password checks for {target} after repeated failures",
}
# When the actor acts for their own organisation, the sentence says so without repeating it.
_OWN_ORGANISATION = {
    "membership.requested": "asked to join {alliance}",
    "membership.approved": "joined {alliance}",  # an open alliance admits on request
    "membership.accepted": "accepted the invitation to join {alliance}",
    "membership.declined": "declined the invitation to join {alliance}",
    "membership.left": "left {alliance}",
}
# When the actor acts on themself: the founder of an alliance is its first coordinator.
_THEMSELF = {"coordinator.appointed": "became coordinator of {alliance}"}
# The actions an alliance's log can hold (the others are attached to no alliance).
ALLIANCE_ACTIONS = frozenset(a for a in ACTION_LABELS
                             if a.startswith(("membership.", "coordinator.", "alliance.")))
_ROLES: dict[object, str] = {"member": "member", "org_admin": "organisation admin"}


def _who(user) -> str:
    if user is None:
        return "The platform"
    if user.organisation is not None:
        return f"{user.name} of {user.organisation.name}"
    return user.name


def describe_event(event: AuditEvent) -> str:
    """The event as one plain-text sentence: who did what to whom, where, and why ("Ingrid
    Larsen of Nordic CERT suspended Sunrise Telecom from European Energy Sharing Alliance:
    reason"). Plain text: templates escape it, the CSV export guards it."""
    actor = event.actor
    target = event.target_label or "(unnamed)"
    own_org = (actor is not None and event.target_type == "organisation"
               and event.target_id == str(actor.organisation_id))
    themself = (actor is not None and event.target_type == "user"
                and event.target_id == str(actor.id))
    pattern = ((own_org and _OWN_ORGANISATION.get(event.action))
               or (themself and _THEMSELF.get(event.action)) or _SENTENCES.get(event.action))
    if pattern is None:
        pattern = f"{event.action} {{target}}"
    alliance = event.alliance.name if event.alliance is not None else "an alliance"
    organisation = actor.organisation.name if actor is not None and actor.organisation \
        else "an organisation"
    sentence = f"{_who(actor)} " + pattern.format(target=target, alliance=alliance,
                                                 organisation=organisation)
    details = event.details or {}
    if event.action == "alliance.settings_changed" and details.get("changes"):
        sentence += " (" + ", ".join(k.replace("_", " ") for k in sorted(details["changes"])) + ")"
    elif event.action == "user.role_changed" and "new" in details:
        sentence += (f" from {_ROLES.get(details.get('old'), details.get('old'))}"
                     f" to {_ROLES.get(details['new'], details['new'])}")
    elif event.action == "user.invited" and details.get("role"):
        sentence += f" as {_ROLES.get(details['role'], details['role'])}"
    if event.reason:
        sentence += f": {event.reason}"
    return sentence


# Spreadsheet programs run a cell that starts with one of these as a formula (OWASP, "CSV
# injection"); tab and carriage return too, since some programs strip them and then look.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_COLUMNS = ("time", "event", "action", "actor", "actor_organisation", "target_type",
               "target", "alliance", "reason")


def _cell(value) -> str:
    """One CSV cell that a spreadsheet shows as text: a leading formula character gets a
    quote in front, so that "=HYPERLINK(...)" in a reason stays words."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def events_csv(events) -> str:
    """The events as CSV (RFC 4180), a header row first, every cell safe to open in a
    spreadsheet. The caller chooses the events, through the same read rule as its page."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for e in events:
        actor = e.actor
        writer.writerow([_cell(v) for v in (
            e.created_at.strftime("%Y-%m-%dT%H:%M:%SZ") if e.created_at else "",
            describe_event(e), e.action, actor.name if actor else "",
            actor.organisation.name if actor and actor.organisation else "",
            e.target_type, e.target_label, e.alliance.name if e.alliance else "", e.reason)])
    return out.getvalue()
