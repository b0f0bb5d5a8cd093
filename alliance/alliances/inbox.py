"""What waits for whom in alliances: the dashboard's inbox, read only (the buttons beside
each thing call alliances.services)."""
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select

from alliance.alliances.models import Membership
from alliance.alliances.services import coordinated_alliances
from alliance.extensions import db


@dataclass
class CoordinatorInbox:
    """What waits for a coordinator across their alliances: requests to decide, invitations
    the invited organisation has not answered, suspended members to reinstate or remove.
    (Notes have no moderation queue: a coordinator retracts a harmful note from its page.)"""

    alliances: Sequence
    requests: list
    invitations: list
    suspended: list

    @property
    def waiting(self) -> int:
        """How many things need the coordinator (the unanswered invitations need the invited
        organisation, not the coordinator, so they do not count)."""
        return len(self.requests) + len(self.suspended)


def coordinator_inbox(user) -> CoordinatorInbox:
    """The memberships waiting in every alliance the user coordinates, oldest first."""
    alliances = coordinated_alliances(user)
    rows = db.session.scalars(
        select(Membership).where(Membership.alliance_id.in_([a.id for a in alliances]),
                                 Membership.state.in_(("requested", "invited", "suspended")))
        .order_by(Membership.updated_at, Membership.id)).all() if alliances else []
    return CoordinatorInbox(
        alliances=alliances,
        requests=[m for m in rows if m.state == "requested"],
        invitations=[m for m in rows if m.state == "invited"],
        suspended=[m for m in rows if m.state == "suspended"])


def invitations_to(org_id: int | None) -> Sequence[Membership]:
    """The open invitations to an organisation, oldest first."""
    if org_id is None:
        return []
    return db.session.scalars(select(Membership).where(
        Membership.organisation_id == org_id, Membership.state == "invited")
        .order_by(Membership.updated_at, Membership.id)).all()
