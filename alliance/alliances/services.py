"""Alliances: finding and listing them, who is a member and who coordinates, creating and
configuring them. Membership moves are in transitions.py; appointing coordinators in
coordinators.py."""
import re
from collections.abc import Sequence

from sqlalchemy import func, select

from alliance.alliances.models import JOIN_POLICIES, Alliance, Coordinator, Membership
from alliance.audit.services import record
from alliance.auth.models import User
from alliance.core.errors import Conflict, DomainError, NotAllowed, NotFound
from alliance.core.models import utcnow
from alliance.core.states import Frequency
from alliance.core.states import MembershipState as State
from alliance.core.text import slugify
from alliance.core.unit import unit_of_work
from alliance.core.vocab import policy_tag_choices
from alliance.extensions import db
from alliance.orgs.models import Organisation
from alliance.stix.tlp import TLP_LEVELS

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,58}[a-z0-9])?$")
# Addresses the alliances blueprint uses itself: /alliances/new is the creation form, so an
# alliance with that slug could never be opened.
RESERVED_SLUGS = frozenset({"new"})
SETTINGS_FIELDS = ("name", "description", "charter", "policy_tags", "join_policy",
                   "allowed_tlps", "default_tlp", "publish_clear_allowed", "digest_frequency",
                   "digest_hour")


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
              .where(Membership.is_active).group_by(Membership.alliance_id).subquery())
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
    return m is not None and m.is_active


def active_alliances_of(org_id: int | None) -> Sequence[Alliance]:
    if org_id is None:
        return []
    return db.session.scalars(
        select(Alliance).join(Membership).where(Membership.organisation_id == org_id,
                                                Membership.is_active)
        .order_by(Alliance.name)).all()


def memberships_of_org(org_id: int) -> Sequence[Membership]:
    return db.session.scalars(select(Membership).where(Membership.organisation_id == org_id)
                              .order_by(Membership.updated_at.desc())).all()


def memberships_of(alliance: Alliance) -> list[Membership]:
    order: dict[str, int] = {State.REQUESTED: 0, State.INVITED: 1, State.ACTIVE: 2,
                             State.SUSPENDED: 3}
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


def effective_coordinators(alliance: Alliance):
    """Coordinator rows whose user is active and whose organisation is an active member."""
    return (select(Coordinator).join(User, User.id == Coordinator.user_id)
            .join(Membership, (Membership.organisation_id == User.organisation_id)
                  & (Membership.alliance_id == Coordinator.alliance_id))
            .where(Coordinator.alliance_id == alliance.id, User.deactivated_at.is_(None),
                   Membership.is_active))


def coordinators_of(alliance: Alliance) -> Sequence[User]:
    return db.session.scalars(
        select(User).join(Coordinator, Coordinator.user_id == User.id)
        .where(Coordinator.alliance_id == alliance.id).order_by(User.name)).all()


def is_coordinator(user, alliance: Alliance) -> bool:
    if not getattr(user, "is_authenticated", False) or not user.can_act:
        return False
    query = effective_coordinators(alliance).where(Coordinator.user_id == user.id)
    return db.session.execute(
        select(func.count()).select_from(query.subquery())).scalar_one() > 0


def require_coordinator(user, alliance: Alliance) -> None:
    if not is_coordinator(user, alliance):
        raise NotAllowed("Only a coordinator of this alliance can do that.")


def coordinated_alliances(user) -> Sequence[Alliance]:
    """The alliances the user acts for as a coordinator now (is_coordinator's rule: an
    active user whose organisation is an active member), by name."""
    if not getattr(user, "is_authenticated", False) or not user.can_act:
        return []
    return db.session.scalars(
        select(Alliance).join(Coordinator, Coordinator.alliance_id == Alliance.id)
        .join(Membership, (Membership.alliance_id == Alliance.id)
              & (Membership.organisation_id == user.organisation_id))
        .where(Coordinator.user_id == user.id, Membership.is_active)
        .order_by(Alliance.name)).all()


def can_see_members(user, alliance: Alliance) -> bool:
    """Members are visible to users of active member organisations and platform admins."""
    if not getattr(user, "is_authenticated", False):
        return False
    return user.is_admin or (user.can_act and is_active_member(user.organisation_id, alliance))


def org_admin_emails(org: Organisation) -> list[str]:
    return [u.email for u in org.users if u.is_org_admin and u.is_active]


def coordinator_emails(alliance: Alliance) -> list[str]:
    return [c.user.email for c in db.session.scalars(effective_coordinators(alliance)).all()]


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


def require_org_admin(actor) -> Organisation:
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
    if "digest_frequency" in clean and clean["digest_frequency"] not in tuple(Frequency):
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


@unit_of_work()
def create_alliance(actor, *, slug: str | None = None, **settings) -> Alliance:
    """An org admin of a vetted organisation founds an alliance: the organisation becomes its
    first active member and the founder its first coordinator."""
    org = require_org_admin(actor)
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
    membership = Membership(alliance=alliance, organisation=org, state=State.ACTIVE,
                            charter_accepted_at=utcnow())
    db.session.add_all([alliance, membership, Coordinator(alliance=alliance, user=actor)])
    db.session.flush()
    record("alliance.created", actor, alliance, alliance=alliance, organisation=org)
    record("coordinator.appointed", actor, actor, alliance=alliance, organisation=org)
    return alliance


@unit_of_work()
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
    return sorted(changes)


# --- organisations joining and leaving -----------------------------------------------------


# --- coordinators deciding -----------------------------------------------------------------
