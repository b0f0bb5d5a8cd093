"""Who a note may be shared with: the alliances a poster may post to, the people a TLP:RED
note may name, a preview of who will read it, and the checks post_note makes of an
audience (check_audience, also run alone by the compose form)."""
from collections.abc import Sequence

from sqlalchemy import select

from alliance.alliances.models import Alliance, Membership
from alliance.alliances.services import active_alliances_of
from alliance.auth.models import User
from alliance.core.errors import DomainError
from alliance.extensions import db
from alliance.orgs.models import Organisation
from alliance.stix.tlp import TLP_LEVELS


def audience_choices(user) -> Sequence[Alliance]:
    """Alliances the user's organisation may post to: those where it is an active member."""
    return active_alliances_of(user.organisation_id)


def _postable(user, alliance_ids) -> list[int]:
    """Of these alliance ids (as posted, unchecked), those the user may post to: who is in
    another alliance is not the user's to list."""
    allowed = {a.id for a in audience_choices(user)}
    return [i for i in alliance_ids or [] if i in allowed]


def recipient_choices(user, alliance_ids) -> Sequence[User]:
    """Users who may be named on a TLP:RED note to these alliances (those of them the user
    may post to): active users of organisations that are active members of at least one."""
    alliance_ids = _postable(user, alliance_ids)
    if not alliance_ids:
        return []
    return db.session.scalars(
        select(User).join(Membership, Membership.organisation_id == User.organisation_id)
        .where(Membership.alliance_id.in_(alliance_ids), Membership.is_active,
               User.can_act)
        .distinct().order_by(User.name)).all()


def audience_preview(user, alliance_ids, tlp: str, recipient_ids=()) -> dict:
    """Exactly who will be able to read a note with this audience (the alliances of it the
    user may post to), as the rule says today."""
    alliance_ids = _postable(user, alliance_ids)
    orgs = db.session.execute(
        select(Membership.organisation_id).where(Membership.alliance_id.in_(alliance_ids or [0]),
                                                 Membership.is_active).distinct()).all()
    org_ids = {row[0] for row in orgs} | {user.organisation_id}
    organisations = db.session.scalars(select(Organisation).where(Organisation.id.in_(org_ids))
                                       .order_by(Organisation.name)).all()
    if tlp == "RED":
        allowed = {u.id: u for u in recipient_choices(user, alliance_ids)}
        users = [allowed[i] for i in recipient_ids if i in allowed]
        return {"everyone": False, "organisations": [], "users": [user] + users}
    return {"everyone": tlp == "CLEAR", "organisations": organisations, "users": []}


def check_audience(actor, tlp: str, alliance_ids, recipient_ids=(),
                   publish_public: bool = False) -> tuple[list[Alliance], list[int]]:
    """The audience checks of post_note: a DomainError on the field at fault, else the
    alliances and the recipients' ids, each once. Also run alone by a compose form that lists
    every error of a refused Share at once, and by its preview."""
    if tlp not in TLP_LEVELS:
        raise DomainError("Choose a TLP level.", field="tlp")
    allowed = {a.id: a for a in audience_choices(actor)}
    alliance_ids = sorted(set(alliance_ids or []))
    if not alliance_ids:
        raise DomainError("Choose at least one alliance to share with.", field="alliances")
    for alliance_id in alliance_ids:
        if alliance_id not in allowed:
            raise DomainError("You can share only with alliances your organisation is an "
                              "active member of.", field="alliances")
        if tlp not in allowed[alliance_id].allowed_tlps:
            raise DomainError(f"{allowed[alliance_id].name} does not allow TLP:{tlp}.",
                              field="tlp")
    recipient_ids = _checked_recipients(actor, tlp, alliance_ids, recipient_ids)
    if publish_public and (tlp != "CLEAR" or not any(
            allowed[a].publish_clear_allowed for a in alliance_ids)):
        raise DomainError("Only TLP:CLEAR notes in an alliance that allows it can be "
                          "published on the public Insights page.", field="publish_public")
    return [allowed[a] for a in alliance_ids], recipient_ids


def _checked_recipients(actor, tlp: str, alliance_ids: list[int], recipient_ids) -> list[int]:
    """The named recipients, each once: required on a TLP:RED note, among those it may name
    (recipient_choices), and refused on any other."""
    recipient_ids = sorted(set(recipient_ids or []))
    if tlp != "RED":
        if recipient_ids:
            raise DomainError("Named recipients are only for TLP:RED notes.",
                              field="recipients")
        return recipient_ids
    if not recipient_ids:
        raise DomainError("Name the people who receive a TLP:RED note.", field="recipients")
    eligible = {u.id for u in recipient_choices(actor, alliance_ids)}
    if not set(recipient_ids) <= eligible:
        raise DomainError("Recipients must be active users of organisations in the chosen "
                          "alliances.", field="recipients")
    return recipient_ids
