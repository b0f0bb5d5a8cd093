"""Membership transitions: the DESIGN.md state machine and every move along it.
Organisations ask to join, accept or decline invitations and leave; coordinators decide
requests, invite, remind, suspend, reinstate and remove.

Every membership change goes through _move(), which allows only the state machine:
    requested -> active | rejected      invited -> active
    active <-> suspended                active -> left
    active | suspended -> removed
plus how a membership starts or starts again: (none | rejected | left) -> requested and
(none | rejected | left | removed) -> invited, and invited -> rejected when the organisation
declines an invitation (it may ask to join, or be invited, again). A removed organisation
comes back only when a coordinator invites it. Coordinators act only while their own
organisation is an active member; an alliance always keeps at least one such coordinator."""
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import func, select

from alliance.alliances.models import Alliance, Coordinator, Membership
from alliance.alliances.services import (
    coordinator_emails,
    effective_coordinators,
    lock_alliance,
    membership_of,
    org_admin_emails,
    require_coordinator,
    require_org_admin,
)
from alliance.audit.services import latest_event_at, record
from alliance.auth.models import User
from alliance.core.errors import Conflict, DomainError, NotFound
from alliance.core.models import utcnow
from alliance.core.states import MembershipState as State
from alliance.core.unit import unit_of_work
from alliance.core.urls import external_url
from alliance.extensions import db
from alliance.mail.services import queue_mail
from alliance.orgs.models import Organisation

STATE_EDGES = frozenset({  # DESIGN.md's state machine (and invited -> rejected: a decline)
    (None, State.REQUESTED), (State.REJECTED, State.REQUESTED), (State.LEFT, State.REQUESTED),
    (None, State.INVITED), (State.REJECTED, State.INVITED), (State.LEFT, State.INVITED),
    (State.REMOVED, State.INVITED), (State.INVITED, State.REJECTED),
    (State.REQUESTED, State.ACTIVE), (State.REQUESTED, State.REJECTED),
    (State.INVITED, State.ACTIVE),
    (State.ACTIVE, State.SUSPENDED), (State.SUSPENDED, State.ACTIVE), (State.ACTIVE, State.LEFT),
    (State.ACTIVE, State.REMOVED), (State.SUSPENDED, State.REMOVED),
})


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


@unit_of_work()
def request_to_join(actor, alliance: Alliance, *, message: str = "",
                    accept_charter: bool = False) -> Membership:
    """An org admin asks to join. Open alliances admit at once; approval alliances ask their
    coordinators (who are mailed); invite-only alliances refuse."""
    lock_alliance(alliance)
    org = require_org_admin(actor)
    if alliance.join_policy == "invite":
        raise Conflict("This alliance admits members by invitation only. Ask a coordinator "
                       "to invite your organisation.")
    if alliance.charter.strip() and not accept_charter:
        raise DomainError("Accept the alliance's charter to ask to join.", field="accept_charter")
    membership = membership_of(org.id, alliance) or Membership(alliance=alliance,
                                                               organisation=org, state=None)
    _move(membership, State.REQUESTED)
    membership.request_message = (message or "").strip() or None
    membership.decision_reason = None
    membership.charter_accepted_at = utcnow()
    db.session.add(membership)
    db.session.flush()
    record("membership.requested", actor, org, alliance=alliance, organisation=org,
           reason=membership.request_message)
    if alliance.join_policy == "open":
        _move(membership, State.ACTIVE)
        record("membership.approved", actor, org, alliance=alliance, organisation=org,
               reason="open alliance: admitted on request")
        queue_mail(coordinator_emails(alliance), "member_joined",
                   f"{org.name} joined {alliance.name}", org_name=org.name,
                   alliance_name=alliance.name,
                   link=external_url("alliances.members", slug=alliance.slug))
    else:
        queue_mail(coordinator_emails(alliance), "membership_requested",
                   f"{org.name} asks to join {alliance.name}", org_name=org.name,
                   alliance_name=alliance.name, message=membership.request_message or "",
                   link=external_url("alliances.members", slug=alliance.slug))
    return membership


def _open_invitation(actor, alliance: Alliance, outcome: str):
    """(organisation, membership) of the actor's organisation's open invitation to the
    alliance, under the alliance's lock; refused unless the actor is its org admin and the
    membership is invited (`outcome`: what answering it does, for the refusal)."""
    lock_alliance(alliance)
    org = require_org_admin(actor)
    membership = membership_of(org.id, alliance)
    if membership is None:
        raise Conflict("Your organisation has no open invitation to this alliance.")
    if membership.state != State.INVITED:
        raise Conflict(f"Your organisation's membership is {membership.state}: only an invited "
                       f"one {outcome} an invitation.")
    return org, membership


@unit_of_work()
def accept_invitation(actor, alliance: Alliance, *, accept_charter: bool = False) -> Membership:
    org, membership = _open_invitation(actor, alliance, "becomes active by accepting")
    if alliance.charter.strip() and not accept_charter:
        raise DomainError("Accept the alliance's charter to join.", field="accept_charter")
    _move(membership, State.ACTIVE)
    membership.charter_accepted_at = utcnow()
    record("membership.accepted", actor, org, alliance=alliance, organisation=org)
    queue_mail(coordinator_emails(alliance), "member_joined", f"{org.name} joined {alliance.name}",
               org_name=org.name, alliance_name=alliance.name,
               link=external_url("alliances.members", slug=alliance.slug))
    return membership


@unit_of_work()
def decline_invitation(actor, alliance: Alliance) -> Membership:
    """An org admin declines an invitation to their organisation: the membership becomes
    rejected, from where the organisation may still ask to join or be invited again."""
    org, membership = _open_invitation(actor, alliance, "becomes rejected by declining")
    _move(membership, State.REJECTED)
    membership.decision_reason = "Invitation declined by the organisation."
    record("membership.declined", actor, org, alliance=alliance, organisation=org)
    return membership


def _check_keeps_a_coordinator(alliance: Alliance, losing_org_id: int) -> None:
    """Refuse a change that would leave the alliance with no effective coordinator."""
    remaining = db.session.scalar(select(func.count()).select_from(
        effective_coordinators(alliance).where(User.organisation_id != losing_org_id).subquery()))
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


@unit_of_work()
def leave(actor, alliance: Alliance) -> Membership:
    lock_alliance(alliance)
    org = require_org_admin(actor)
    membership = membership_of(org.id, alliance)
    if membership is None:
        raise Conflict("Your organisation is not a member of this alliance.")
    # Every check before any change, so that a refusal leaves the session untouched too.
    _check_move(membership.state, State.LEFT)
    _check_keeps_a_coordinator(alliance, org.id)
    _move(membership, State.LEFT)
    _drop_coordinators_of_org(actor, alliance, org)
    record("membership.left", actor, org, alliance=alliance, organisation=org)
    return membership


_DECISIONS = {
    # action: (states it applies to, target state, audit action, reason required, mail subject)
    # Approve applies to requests only: an invitation becomes active when the organisation
    # accepts it (and the charter) itself, never on a coordinator's say-so.
    "approve": ((State.REQUESTED,), State.ACTIVE, "membership.approved", False,
                "Welcome to {alliance}"),
    "reject": ((State.REQUESTED,), State.REJECTED, "membership.rejected", True,
               "Your request to join {alliance}"),
    "suspend": ((State.ACTIVE,), State.SUSPENDED, "membership.suspended", True,
                "Membership of {alliance} suspended"),
    "reinstate": ((State.SUSPENDED,), State.ACTIVE, "membership.reinstated", False,
                  "Membership of {alliance} reinstated"),
    "remove": ((State.ACTIVE, State.SUSPENDED), State.REMOVED, "membership.removed", True,
               "Removed from {alliance}"),
}


DECISION_ACTIONS = tuple(_DECISIONS)


@unit_of_work()
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
    if to_state in (State.SUSPENDED, State.REMOVED):
        _check_keeps_a_coordinator(alliance, membership.organisation_id)
    from_state = _move(membership, to_state)
    if to_state == State.REMOVED:
        _drop_coordinators_of_org(actor, alliance, membership.organisation)
    membership.decision_reason = reason or None
    org = membership.organisation
    record(audit_action, actor, org, alliance=alliance, organisation=org, reason=reason,
           previous_state=from_state)
    queue_mail(org_admin_emails(org), "membership_decision",
               subject.format(alliance=alliance.name), org_name=org.name,
               alliance_name=alliance.name, state=to_state, action=action, reason=reason,
               link=external_url("alliances.detail", slug=alliance.slug))
    return membership


@unit_of_work()
def invite_organisation(actor, alliance: Alliance, org: Organisation) -> Membership:
    lock_alliance(alliance)
    require_coordinator(actor, alliance)
    if not org.is_approved:
        raise Conflict(f"{org.name} has not been vetted yet.")
    membership = membership_of(org.id, alliance) or Membership(alliance=alliance,
                                                               organisation=org, state=None)
    _move(membership, State.INVITED)
    membership.decision_reason = None
    db.session.add(membership)
    db.session.flush()
    record("membership.invited", actor, org, alliance=alliance, organisation=org)
    queue_mail(org_admin_emails(org), "membership_invited",
               f"{alliance.name} invites {org.name}", org_name=org.name,
               alliance_name=alliance.name, inviter=actor.name,
               link=external_url("alliances.detail", slug=alliance.slug))
    return membership


# One reminder a day at most: each is a mail to the invited organisation's administrators.
REMINDER_INTERVAL = timedelta(days=1)


@unit_of_work()
def remind_invitation(actor, alliance: Alliance, membership: Membership) -> Membership:
    """A coordinator mails the administrators of an invited organisation that has not
    answered yet the invitation again, at most once every REMINDER_INTERVAL."""
    lock_alliance(alliance)
    require_coordinator(actor, alliance)
    if membership.alliance_id != alliance.id:
        raise NotFound("No such membership in this alliance.")
    org = membership.organisation
    if membership.state != State.INVITED:
        raise Conflict(f"{org.name} is {membership.state}, not invited: there is no open "
                       "invitation to remind it of.")
    last = latest_event_at("membership.reminded", alliance=alliance, target=org)
    if last is not None and utcnow() - last < REMINDER_INTERVAL:
        raise Conflict(f"{org.name} was reminded less than a day ago; give its "
                       "administrators time to answer.")
    record("membership.reminded", actor, org, alliance=alliance, organisation=org)
    queue_mail(org_admin_emails(org), "membership_invited",
               f"Reminder: {alliance.name} invites {org.name}", org_name=org.name,
               alliance_name=alliance.name, inviter=actor.name,
               link=external_url("alliances.detail", slug=alliance.slug))
    return membership


def invitable_organisations(alliance: Alliance) -> Sequence[Organisation]:
    """Vetted organisations that are not (or no longer) members and have no open invitation."""
    busy = select(Membership.organisation_id).where(
        Membership.alliance_id == alliance.id,
        Membership.state.in_((State.REQUESTED, State.INVITED, State.ACTIVE, State.SUSPENDED)))
    return db.session.scalars(select(Organisation).where(
        Organisation.status == "approved", Organisation.id.not_in(busy))
        .order_by(Organisation.name)).all()
