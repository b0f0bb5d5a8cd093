"""Coordinators: appointing and removing them, who may be appointed, and the rule that an
alliance always keeps one who may act (a user who coordinates cannot leave it without one)."""
from collections.abc import Sequence

from sqlalchemy import func, select

from alliance.alliances.models import Alliance, Coordinator, Membership
from alliance.alliances.services import (
    effective_coordinators,
    is_active_member,
    lock_alliance,
    require_coordinator,
)
from alliance.audit.services import record
from alliance.auth.models import User
from alliance.core.errors import Conflict, NotFound
from alliance.core.unit import unit_of_work
from alliance.extensions import db


@unit_of_work()
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
    return user


@unit_of_work()
def remove_coordinator(actor, alliance: Alliance, user_id: int) -> None:
    lock_alliance(alliance)
    require_coordinator(actor, alliance)
    row = db.session.scalar(select(Coordinator).where(Coordinator.alliance_id == alliance.id,
                                                      Coordinator.user_id == user_id))
    if row is None:
        raise NotFound("No such coordinator.")
    others = db.session.scalar(select(func.count()).select_from(
        effective_coordinators(alliance).where(Coordinator.user_id != user_id).subquery()))
    if others == 0:
        raise Conflict("An alliance keeps at least one coordinator: appoint another first.")
    record("coordinator.removed", actor, row.user, alliance=alliance,
           organisation=row.user.organisation)
    db.session.delete(row)


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
            effective_coordinators(alliance).where(Coordinator.user_id != user.id).subquery()))
        if others == 0:
            raise Conflict(f"{user.name} is the last coordinator of {alliance.name}; "
                           "appoint another coordinator first.")


def coordinator_candidates(alliance: Alliance) -> Sequence[User]:
    """Active, verified users of active member organisations who are not coordinators yet."""
    current = select(Coordinator.user_id).where(Coordinator.alliance_id == alliance.id)
    return db.session.scalars(
        select(User).join(Membership, Membership.organisation_id == User.organisation_id)
        .where(Membership.alliance_id == alliance.id, Membership.is_active,
               User.deactivated_at.is_(None), User.email_verified_at.is_not(None),
               User.id.not_in(current)).order_by(User.name)).all()
