"""What coordinators and platform admins see of digests: who in an alliance gets what, and
the delivery ledger (failures and counts at /digests/admin/deliveries)."""
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from alliance.alliances.models import Membership
from alliance.auth.models import User
from alliance.digests.models import Delivery
from alliance.digests.preferences import effective_preferences
from alliance.extensions import db
from alliance.orgs.models import Organisation


def alliance_recipients(alliance) -> Sequence[User]:
    """Users who may get this alliance's notes by mail: active and verified, in a vetted
    organisation that is an active member of it."""
    return db.session.scalars(
        select(User).join(Organisation, Organisation.id == User.organisation_id)
        .join(Membership, Membership.organisation_id == User.organisation_id)
        .where(Membership.alliance_id == alliance.id, Membership.is_active, User.can_act)
        .order_by(Organisation.name, User.name, User.id)).all()


def alliance_digest_stats(alliance) -> dict[str, int]:
    """How many users of the alliance's active member organisations get what."""
    counts = {"daily": 0, "weekly": 0, "off": 0, "not covering this alliance": 0}
    for p in effective_preferences(alliance_recipients(alliance)).values():
        if p.frequency != "off" and p.alliance_ids is not None and \
                alliance.id not in p.alliance_ids:
            counts["not covering this alliance"] += 1
        else:
            counts[p.frequency] += 1
    return counts



def recent_deliveries(state: str | None = None, limit: int = 200) -> Sequence[Delivery]:
    """The newest ledger rows, of one state if given, with their users loaded."""
    stmt = select(Delivery).options(selectinload(Delivery.user))
    if state:
        stmt = stmt.where(Delivery.state == state)
    return db.session.scalars(stmt.order_by(Delivery.created_at.desc(), Delivery.id.desc())
                              .limit(limit)).all()


def delivery_counts() -> dict[str, int]:
    """state -> how many ledger rows are in it."""
    return dict(db.session.execute(select(Delivery.state, func.count())
                                   .group_by(Delivery.state)).all())
