"""Alliances, membership and coordinators.

Every membership change goes through _move(), which allows only the DESIGN.md state machine:
    requested -> active | rejected      invited -> active
    active <-> suspended                active -> left
    active | suspended -> removed
plus how a membership starts or starts again: (none | rejected | left) -> requested and
(none | rejected | left | removed) -> invited, and invited -> rejected when the organisation
declines an invitation (it may ask to join, or be invited, again). A removed organisation
comes back only when a coordinator invites it. Coordinators act only while their own
organisation is an active member; an alliance always keeps at least one such coordinator."""
import re
from datetime import timedelta

from sqlalchemy import func, select

from alliance.alliances.models import JOIN_POLICIES, Alliance, Coordinator, Membership
from alliance.audit.services import latest_event_at, record
from alliance.auth.models import User
from alliance.core.errors import Conflict, DomainError, NotAllowed, NotFound
from alliance.core.models import utcnow
from alliance.core.text import slugify
from alliance.core.urls import external_url
from alliance.core.vocab import policy_tag_choices
from alliance.extensions import db
from alliance.mail.services import queue_mail
from alliance.orgs.models import Organisation
from alliance.stix.tlp import TLP_LEVELS

STATE_EDGES = frozenset({
    (None, "requested"), ("rejected", "requested"), ("left", "requested"),
    (None, "invited"), ("rejected", "invited"), ("left", "invited"), ("removed", "invited"),
    ("invited", "rejected"),
    ("requested", "active"), ("requested", "rejected"), ("invited", "active"),
    ("active", "suspended"), ("suspended", "active"), ("active", "left"),
    ("active", "removed"), ("suspended", "removed"),
})
SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,58}[a-z0-9])?$")
# Addresses the alliances blueprint uses itself: /alliances/new is the creation form, so an
# alliance with that slug could never be opened.
RESERVED_SLUGS = frozenset({"new"})
SETTINGS_FIELDS = ("name", "description", "charter", "policy_tags", "join_policy",
                   "allowed_tlps", "default_tlp", "publish_clear_allowed", "digest_frequency",
                   "digest_hour")
DIGEST_FREQUENCIES = ("off", "daily", "weekly")


def can_move(from_state: str | None, to_state: str) -> bool:
    return (from_state, to_state) in STATE_EDGES


def _check_move(from_state: str | None, to_state: str) -> None:
    """Refuse, with a message naming both states, a move the state machine does not allow."""
    if not can_move(from_state, to_state):
        raise Conflict(f"A membership that is {from_state or 'not there'} cannot become "
                       f"{to_state}.")


def _move(membership: Membership, to_state: str) -> str | None:
    """Change a membership's state along an allowed edge, else refuse with a clear message."""
    from_state = membership.state
    _check_move(from_state, to_state)
    membership.state = to_state
    membership.updated_at = utcnow()
    return from_state


# --- reading -------------------------------------------------------------------------------

def get_alliance(slug: str) -> Alliance:
    # A slug is made of SLUG_RE's characters; anything else (a NUL byte above all, which
    # PostgreSQL refuses in a query) is simply not found, without asking the database.
    if not SLUG_RE.match(slug or ""):
        raise NotFound("No such alliance.")
    alliance = db.session.scalar(select(Alliance).where(Alliance.slug == slug))
    if alliance is None:
        raise NotFound("No such alliance.")
    return alliance


def list_alliances() -> list[tuple[Alliance, int]]:
    """Every alliance with its number of active member organisations, by name."""
    active = (select(Membership.alliance_id, func.count(Membership.id).label("n"))
              .where(Membership.state == "active").group_by(Membership.alliance_id).subquery())
    rows = db.session.execute(
        select(Alliance, func.coalesce(active.c.n, 0))
        .outerjoin(active, active.c.alliance_id == Alliance.id).order_by(Alliance.name)).all()
    return [(a, n) for a, n in rows]


def membership_of(org_id: int | None, alliance: Alliance) -> Membership | None:
    if org_id is None:
        return None
    return db.session.scalar(select(Membership).where(
        Membership.alliance_id == alliance.id, Membership.organisation_id == org_id))


def is_active_member(org_id: int | None, alliance: Alliance) -> bool:
    m = membership_of(org_id, alliance)
    return m is not None and m.state == "active"


def active_alliances_of(org_id: int | None) -> list[Alliance]:
    if org_id is None:
        return []
    return db.session.scalars(
        select(Alliance).join(Membership).where(Membership.organisation_id == org_id,
                                                Membership.state == "active")
        .order_by(Alliance.name)).all()


def memberships_of_org(org_id: int) -> list[Membership]:
    return db.session.scalars(select(Membership).where(Membership.organisation_id == org_id)
                              .order_by(Membership.updated_at.desc())).all()


def memberships_of(alliance: Alliance) -> list[Membership]:
    order = {"requested": 0, "invited": 1, "active": 2, "suspended": 3}
    rows = db.session.scalars(select(Membership).where(Membership.alliance_id == alliance.id)).all()
    return sorted(rows, key=lambda m: (order.get(m.state, 9), m.organisation.name.lower()))


def get_membership(alliance: Alliance, membership_id: int) -> Membership:
    """A membership of this alliance. One of another alliance is not found, so that a
    coordinator of A cannot act on B's memberships by guessing ids."""
    m = db.session.scalar(select(Membership).where(Membership.id == membership_id,
                                                   Membership.alliance_id == alliance.id))
    if m is None:
        raise NotFound("No such membership in this alliance.")
    return m


def _effective_coordinators(alliance: Alliance):
    """Coordinator rows whose user is active and whose organisation is an active member."""
    return (select(Coordinator).join(User, User.id == Coordinator.user_id)
            .join(Membership, (Membership.organisation_id == User.organisation_id)
                  & (Membership.alliance_id == Coordinator.alliance_id))
            .where(Coordinator.alliance_id == alliance.id, User.deactivated_at.is_(None),
                   Membership.state == "active"))


def coordinators_of(alliance: Alliance) -> list[User]:
    return db.session.scalars(
        select(User).join(Coordinator, Coordinator.user_id == User.id)
        .where(Coordinator.alliance_id == alliance.id).order_by(User.name)).all()


def is_coordinator(user, alliance: Alliance) -> bool:
    if not getattr(user, "is_authenticated", False) or not user.can_act:
        return False
    query = _effective_coordinators(alliance).where(Coordinator.user_id == user.id)
    return db.session.scalar(select(func.count()).select_from(query.subquery())) > 0


def require_coordinator(user, alliance: Alliance) -> None:
    if not is_coordinator(user, alliance):
        raise NotAllowed("Only a coordinator of this alliance can do that.")


def coordinated_alliances(user) -> list[Alliance]:
    """The alliances the user acts for as a coordinator now (is_coordinator's rule: an
    active user whose organisation is an active member), by name."""
    if not getattr(user, "is_authenticated", False) or not user.can_act:
        return []
    return db.session.scalars(
        select(Alliance).join(Coordinator, Coordinator.alliance_id == Alliance.id)
        .join(Membership, (Membership.alliance_id == Alliance.id)
              & (Membership.organisation_id == user.organisation_id))
        .where(Coordinator.user_id == user.id, Membership.state == "active")
        .order_by(Alliance.name)).all()


def can_see_members(user, alliance: Alliance) -> bool:
    """Members are visible to users of active member organisations and platform admins."""
    if not getattr(user, "is_authenticated", False):
        return False
    return user.is_admin or (user.can_act and is_active_member(user.organisation_id, alliance))


def _org_admin_emails(org: Organisation) -> list[str]:
    return [u.email for u in org.users if u.is_org_admin and u.is_active]


def _coordinator_emails(alliance: Alliance) -> list[str]:
    return [c.user.email for c in db.session.scalars(_effective_coordinators(alliance)).all()]


def lock_alliance(alliance: Alliance) -> None:
    """Serialise the changes to one alliance's memberships and coordinators, then read afresh.

    The rules here read, then write: "another coordinator remains", "this membership is
    requested". Two requests at once — two coordinators removing each other, an approval and
    a rejection of the same request — would each pass its check against what the other is
    about to change, and leave an alliance without coordinators or a membership moved twice.
    The row lock (SELECT ... FOR UPDATE on PostgreSQL; SQLite lets one writer in at a time
    anyway) makes the second request wait for the first to commit; expiring the session then
    makes it check what the first one wrote. Call it first, before any change."""
    db.session.execute(select(Alliance.id).where(Alliance.id == alliance.id).with_for_update())
    db.session.expire_all()


def _require_org_admin(actor) -> Organisation:
    if not (actor.can_act and actor.is_org_admin):
        raise NotAllowed("Only an administrator of your organisation can do that.")
    return actor.organisation


# --- creating and configuring --------------------------------------------------------------

def _clean_settings(data: dict) -> dict:
    """Validate alliance settings; raise DomainError naming the field at fault."""
    clean = {k: data[k] for k in SETTINGS_FIELDS if k in data}
    if "name" in clean:
        clean["name"] = (clean["name"] or "").strip()
        if not clean["name"]:
            raise DomainError("Give the alliance a name.", field="name")
    if "join_policy" in clean and clean["join_policy"] not in JOIN_POLICIES:
        raise DomainError("Choose open, approval or invite.", field="join_policy")
    known_tags = {t for t, _ in policy_tag_choices()}
    if "policy_tags" in clean:
        unknown = sorted(set(clean["policy_tags"]) - known_tags)
        if unknown:
            raise DomainError(f"Unknown policy tags: {', '.join(unknown)}.", field="policy_tags")
        clean["policy_tags"] = sorted(set(clean["policy_tags"]))
    if "digest_frequency" in clean and clean["digest_frequency"] not in DIGEST_FREQUENCIES:
        raise DomainError("Choose a daily, weekly or no digest.", field="digest_frequency")
    if "digest_hour" in clean and (isinstance(clean["digest_hour"], bool)
                                   or not isinstance(clean["digest_hour"], int)
                                   or not 0 <= clean["digest_hour"] <= 23):
        raise DomainError("Choose an hour from 00:00 to 23:00.", field="digest_hour")
    if "allowed_tlps" in clean:
        levels = [t for t in TLP_LEVELS if t in set(clean["allowed_tlps"])]
        if not levels or len(levels) != len(set(clean["allowed_tlps"])):
            raise DomainError("Choose at least one TLP level from CLEAR, GREEN, AMBER, "
                              "AMBER+STRICT and RED.", field="allowed_tlps")
        clean["allowed_tlps"] = levels
    return clean


def _check_tlp_settings(allowed: list[str], default: str, publish_clear: bool) -> None:
    if default not in allowed:
        raise DomainError("The default TLP must be one of the allowed levels.", field="default_tlp")
    if publish_clear and "CLEAR" not in allowed:
        raise DomainError("Publishing TLP:CLEAR posts needs TLP:CLEAR among the allowed levels.",
                          field="publish_clear_allowed")


def create_alliance(actor, *, slug: str | None = None, **settings) -> Alliance:
    """An org admin of a vetted organisation founds an alliance: the organisation becomes its
    first active member and the founder its first coordinator."""
    org = _require_org_admin(actor)
    clean = _clean_settings(settings)
    for required in ("name", "join_policy", "allowed_tlps", "default_tlp"):
        if required not in clean:
            raise DomainError(f"{required.replace('_', ' ').capitalize()} is required.",
                              field=required)
    _check_tlp_settings(clean["allowed_tlps"], clean["default_tlp"],
                        clean.get("publish_clear_allowed", False))
    slug = (slug or "").strip().lower() or slugify(clean["name"])
    if not SLUG_RE.match(slug):
        raise DomainError("Use lower-case letters, digits and dashes (at most 60).", field="slug")
    if slug in RESERVED_SLUGS:
        raise DomainError("This address is reserved; choose another slug.", field="slug")
    if db.session.scalar(select(Alliance.id).where(Alliance.slug == slug)):
        raise Conflict("This address is taken; choose another slug.", field="slug")
    if db.session.scalar(select(Alliance.id)
                         .where(func.lower(Alliance.name) == clean["name"].lower())):
        raise Conflict("An alliance with this name exists already.", field="name")
    alliance = Alliance(slug=slug, created_by_id=actor.id, **clean)
    membership = Membership(alliance=alliance, organisation=org, state="active",
                            charter_accepted_at=utcnow())
    db.session.add_all([alliance, membership, Coordinator(alliance=alliance, user=actor)])
    db.session.flush()
    record("alliance.created", actor, alliance, alliance=alliance, organisation=org)
    record("coordinator.appointed", actor, actor, alliance=alliance, organisation=org)
    db.session.commit()
    return alliance


def update_settings(actor, alliance: Alliance, **settings) -> list[str]:
    """A coordinator changes the alliance's settings; returns the names of changed fields."""
    require_coordinator(actor, alliance)
    clean = _clean_settings(settings)
    _check_tlp_settings(clean.get("allowed_tlps", alliance.allowed_tlps),
                        clean.get("default_tlp", alliance.default_tlp),
                        clean.get("publish_clear_allowed", alliance.publish_clear_allowed))
    if "name" in clean and clean["name"].lower() != alliance.name.lower() and db.session.scalar(
            select(Alliance.id).where(func.lower(Alliance.name) == clean["name"].lower())):
        raise Conflict("An alliance with this name exists already.", field="name")
    changes = {k: {"old": getattr(alliance, k), "new": v} for k, v in clean.items()
               if getattr(alliance, k) != v}
    for key, change in changes.items():
        setattr(alliance, key, change["new"])
    if changes:
        record("alliance.settings_changed", actor, alliance, alliance=alliance,
               changes=changes)
    db.session.commit()
    return sorted(changes)


# --- organisations joining and leaving -----------------------------------------------------

def request_to_join(actor, alliance: Alliance, *, message: str = "",
                    accept_charter: bool = False) -> Membership:
    """An org admin asks to join. Open alliances admit at once; approval alliances ask their
    coordinators (who are mailed); invite-only alliances refuse."""
    lock_alliance(alliance)
    org = _require_org_admin(actor)
    if alliance.join_policy == "invite":
        raise Conflict("This alliance admits members by invitation only. Ask a coordinator "
                       "to invite your organisation.")
    if alliance.charter.strip() and not accept_charter:
        raise DomainError("Accept the alliance's charter to ask to join.", field="accept_charter")
    membership = membership_of(org.id, alliance) or Membership(alliance=alliance,
                                                               organisation=org, state=None)
    _move(membership, "requested")
    membership.request_message = (message or "").strip() or None
    membership.decision_reason = None
    membership.charter_accepted_at = utcnow()
    db.session.add(membership)
    db.session.flush()
    record("membership.requested", actor, org, alliance=alliance, organisation=org,
           reason=membership.request_message)
    if alliance.join_policy == "open":
        _move(membership, "active")
        record("membership.approved", actor, org, alliance=alliance, organisation=org,
               reason="open alliance: admitted on request")
        queue_mail(_coordinator_emails(alliance), "member_joined",
                   f"{org.name} joined {alliance.name}", org_name=org.name,
                   alliance_name=alliance.name,
                   link=external_url("alliances.members", slug=alliance.slug))
    else:
        queue_mail(_coordinator_emails(alliance), "membership_requested",
                   f"{org.name} asks to join {alliance.name}", org_name=org.name,
                   alliance_name=alliance.name, message=membership.request_message or "",
                   link=external_url("alliances.members", slug=alliance.slug))
    db.session.commit()
    return membership


def _open_invitation(actor, alliance: Alliance, outcome: str):
    """(organisation, membership) of the actor's organisation's open invitation to the
    alliance, under the alliance's lock; refused unless the actor is its org admin and the
    membership is invited (`outcome`: what answering it does, for the refusal)."""
    lock_alliance(alliance)
    org = _require_org_admin(actor)
    membership = membership_of(org.id, alliance)
    if membership is None:
        raise Conflict("Your organisation has no open invitation to this alliance.")
    if membership.state != "invited":
        raise Conflict(f"Your organisation's membership is {membership.state}: only an invited "
                       f"one {outcome} an invitation.")
    return org, membership


def accept_invitation(actor, alliance: Alliance, *, accept_charter: bool = False) -> Membership:
    org, membership = _open_invitation(actor, alliance, "becomes active by accepting")
    if alliance.charter.strip() and not accept_charter:
        raise DomainError("Accept the alliance's charter to join.", field="accept_charter")
    _move(membership, "active")
    membership.charter_accepted_at = utcnow()
    record("membership.accepted", actor, org, alliance=alliance, organisation=org)
    queue_mail(_coordinator_emails(alliance), "member_joined", f"{org.name} joined {alliance.name}",
               org_name=org.name, alliance_name=alliance.name,
               link=external_url("alliances.members", slug=alliance.slug))
    db.session.commit()
    return membership


def decline_invitation(actor, alliance: Alliance) -> Membership:
    """An org admin declines an invitation to their organisation: the membership becomes
    rejected, from where the organisation may still ask to join or be invited again."""
    org, membership = _open_invitation(actor, alliance, "becomes rejected by declining")
    _move(membership, "rejected")
    membership.decision_reason = "Invitation declined by the organisation."
    record("membership.declined", actor, org, alliance=alliance, organisation=org)
    db.session.commit()
    return membership


def _check_keeps_a_coordinator(alliance: Alliance, losing_org_id: int) -> None:
    """Refuse a change that would leave the alliance with no effective coordinator."""
    remaining = db.session.scalar(select(func.count()).select_from(
        _effective_coordinators(alliance).where(User.organisation_id != losing_org_id).subquery()))
    if remaining == 0:
        raise Conflict("This organisation holds the alliance's only coordinators. Appoint a "
                       "coordinator from another member organisation first.")


def _drop_coordinators_of_org(actor, alliance: Alliance, org: Organisation) -> None:
    rows = db.session.scalars(select(Coordinator).join(User, User.id == Coordinator.user_id)
                              .where(Coordinator.alliance_id == alliance.id,
                                     User.organisation_id == org.id)).all()
    for row in rows:
        record("coordinator.removed", actor, row.user, alliance=alliance, organisation=org,
               reason="organisation no longer a member")
        db.session.delete(row)


def leave(actor, alliance: Alliance) -> Membership:
    lock_alliance(alliance)
    org = _require_org_admin(actor)
    membership = membership_of(org.id, alliance)
    if membership is None:
        raise Conflict("Your organisation is not a member of this alliance.")
    # Every check before any change, so that a refusal leaves the session untouched too.
    _check_move(membership.state, "left")
    _check_keeps_a_coordinator(alliance, org.id)
    _move(membership, "left")
    _drop_coordinators_of_org(actor, alliance, org)
    record("membership.left", actor, org, alliance=alliance, organisation=org)
    db.session.commit()
    return membership


# --- coordinators deciding -----------------------------------------------------------------

_DECISIONS = {
    # action: (states it applies to, target state, audit action, reason required, mail subject)
    # Approve applies to requests only: an invitation becomes active when the organisation
    # accepts it (and the charter) itself, never on a coordinator's say-so.
    "approve": (("requested",), "active", "membership.approved", False,
                "Welcome to {alliance}"),
    "reject": (("requested",), "rejected", "membership.rejected", True,
               "Your request to join {alliance}"),
    "suspend": (("active",), "suspended", "membership.suspended", True,
                "Membership of {alliance} suspended"),
    "reinstate": (("suspended",), "active", "membership.reinstated", False,
                  "Membership of {alliance} reinstated"),
    "remove": (("active", "suspended"), "removed", "membership.removed", True,
               "Removed from {alliance}"),
}
DECISION_ACTIONS = tuple(_DECISIONS)


def decide(actor, alliance: Alliance, membership: Membership, action: str,
           reason: str = "") -> Membership:
    """A coordinator approves or rejects a request, suspends, reinstates or removes a member.
    The organisation's admins are mailed the decision and the reason."""
    lock_alliance(alliance)
    require_coordinator(actor, alliance)
    if membership.alliance_id != alliance.id:
        raise NotFound("No such membership in this alliance.")
    if action not in _DECISIONS:
        raise NotFound("No such action.")
    sources, to_state, audit_action, needs_reason, subject = _DECISIONS[action]
    if membership.state not in sources:
        raise Conflict(f"Cannot {action} a membership that is {membership.state}: only one that "
                       f"is {' or '.join(sources)} can become {to_state} this way.")
    reason = (reason or "").strip()
    if needs_reason and not reason:
        raise DomainError("Give a reason; it is mailed to the organisation.", field="reason")
    # Every check before any change, so that a refusal leaves the session untouched too.
    _check_move(membership.state, to_state)
    if to_state in ("suspended", "removed"):
        _check_keeps_a_coordinator(alliance, membership.organisation_id)
    from_state = _move(membership, to_state)
    if to_state == "removed":
        _drop_coordinators_of_org(actor, alliance, membership.organisation)
    membership.decision_reason = reason or None
    org = membership.organisation
    record(audit_action, actor, org, alliance=alliance, organisation=org, reason=reason,
           previous_state=from_state)
    queue_mail(_org_admin_emails(org), "membership_decision",
               subject.format(alliance=alliance.name), org_name=org.name,
               alliance_name=alliance.name, state=to_state, action=action, reason=reason,
               link=external_url("alliances.detail", slug=alliance.slug))
    db.session.commit()
    return membership


def invite_organisation(actor, alliance: Alliance, org: Organisation) -> Membership:
    lock_alliance(alliance)
    require_coordinator(actor, alliance)
    if not org.is_approved:
        raise Conflict(f"{org.name} has not been vetted yet.")
    membership = membership_of(org.id, alliance) or Membership(alliance=alliance,
                                                               organisation=org, state=None)
    _move(membership, "invited")
    membership.decision_reason = None
    db.session.add(membership)
    db.session.flush()
    record("membership.invited", actor, org, alliance=alliance, organisation=org)
    queue_mail(_org_admin_emails(org), "membership_invited",
               f"{alliance.name} invites {org.name}", org_name=org.name,
               alliance_name=alliance.name, inviter=actor.name,
               link=external_url("alliances.detail", slug=alliance.slug))
    db.session.commit()
    return membership


# One reminder a day at most: each is a mail to the invited organisation's administrators.
REMINDER_INTERVAL = timedelta(days=1)


def remind_invitation(actor, alliance: Alliance, membership: Membership) -> Membership:
    """A coordinator mails the administrators of an invited organisation that has not
    answered yet the invitation again, at most once every REMINDER_INTERVAL."""
    lock_alliance(alliance)
    require_coordinator(actor, alliance)
    if membership.alliance_id != alliance.id:
        raise NotFound("No such membership in this alliance.")
    org = membership.organisation
    if membership.state != "invited":
        raise Conflict(f"{org.name} is {membership.state}, not invited: there is no open "
                       "invitation to remind it of.")
    last = latest_event_at("membership.reminded", alliance=alliance, target=org)
    if last is not None and utcnow() - last < REMINDER_INTERVAL:
        raise Conflict(f"{org.name} was reminded less than a day ago; give its "
                       "administrators time to answer.")
    record("membership.reminded", actor, org, alliance=alliance, organisation=org)
    queue_mail(_org_admin_emails(org), "membership_invited",
               f"Reminder: {alliance.name} invites {org.name}", org_name=org.name,
               alliance_name=alliance.name, inviter=actor.name,
               link=external_url("alliances.detail", slug=alliance.slug))
    db.session.commit()
    return membership


def appoint_coordinator(actor, alliance: Alliance, user_id: int) -> User:
    lock_alliance(alliance)
    require_coordinator(actor, alliance)
    user = db.session.get(User, user_id)
    if user is None or not user.can_act or not is_active_member(user.organisation_id, alliance):
        raise NotFound("Coordinators are chosen among active users of active member "
                       "organisations.", field="user_id")
    if db.session.scalar(select(Coordinator.id).where(Coordinator.alliance_id == alliance.id,
                                                      Coordinator.user_id == user.id)):
        raise Conflict(f"{user.name} is already a coordinator.")
    db.session.add(Coordinator(alliance=alliance, user=user))
    record("coordinator.appointed", actor, user, alliance=alliance,
           organisation=user.organisation)
    db.session.commit()
    return user


def remove_coordinator(actor, alliance: Alliance, user_id: int) -> None:
    lock_alliance(alliance)
    require_coordinator(actor, alliance)
    row = db.session.scalar(select(Coordinator).where(Coordinator.alliance_id == alliance.id,
                                                      Coordinator.user_id == user_id))
    if row is None:
        raise NotFound("No such coordinator.")
    others = db.session.scalar(select(func.count()).select_from(
        _effective_coordinators(alliance).where(Coordinator.user_id != user_id).subquery()))
    if others == 0:
        raise Conflict("An alliance keeps at least one coordinator: appoint another first.")
    record("coordinator.removed", actor, row.user, alliance=alliance,
           organisation=row.user.organisation)
    db.session.delete(row)
    db.session.commit()


def check_user_can_leave_coordination(user: User) -> None:
    """Refuse deactivating a user who is the last effective coordinator of an alliance. Locks
    each alliance the user coordinates (see lock_alliance), in id order so that two such
    checks cannot wait on each other, until the caller's transaction ends."""
    alliances = db.session.scalars(select(Alliance).join(Coordinator)
                                   .where(Coordinator.user_id == user.id)
                                   .order_by(Alliance.id)).all()
    for alliance in alliances:
        lock_alliance(alliance)
    for alliance in alliances:
        others = db.session.scalar(select(func.count()).select_from(
            _effective_coordinators(alliance).where(Coordinator.user_id != user.id).subquery()))
        if others == 0:
            raise Conflict(f"{user.name} is the last coordinator of {alliance.name}; "
                           "appoint another coordinator first.")


def invitable_organisations(alliance: Alliance) -> list[Organisation]:
    """Vetted organisations that are not (or no longer) members and have no open invitation."""
    busy = select(Membership.organisation_id).where(
        Membership.alliance_id == alliance.id,
        Membership.state.in_(("requested", "invited", "active", "suspended")))
    return db.session.scalars(select(Organisation).where(
        Organisation.status == "approved", Organisation.id.not_in(busy))
        .order_by(Organisation.name)).all()


def coordinator_candidates(alliance: Alliance) -> list[User]:
    """Active, verified users of active member organisations who are not coordinators yet."""
    current = select(Coordinator.user_id).where(Coordinator.alliance_id == alliance.id)
    return db.session.scalars(
        select(User).join(Membership, Membership.organisation_id == User.organisation_id)
        .where(Membership.alliance_id == alliance.id, Membership.state == "active",
               User.deactivated_at.is_(None), User.email_verified_at.is_not(None),
               User.id.not_in(current)).order_by(User.name)).all()
