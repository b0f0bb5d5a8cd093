"""Test data built through the models (fast) or the services (when the test is about them)."""
import uuid
from functools import cache

from sqlalchemy import select

from alliance.alliances.models import Membership
from alliance.auth.models import User
from alliance.core.models import utcnow
from alliance.extensions import db
from alliance.orgs.models import Organisation
from alliance.orgs.services import build_identity

PASSWORD = "Tidal-Compass-Orchard-2719"


@cache
def _password_hash() -> str:
    from alliance.auth.services import hash_password

    return hash_password(PASSWORD)


def make_org(name: str, status: str = "approved", country: str = "DE",
             sectors=("government",)) -> Organisation:
    from alliance.core.text import slugify

    org = Organisation(name=name, slug=slugify(name), country=country, sectors=list(sectors),
                       status=status, stix_id=f"identity--{uuid.uuid4()}",
                       vetted_at=utcnow() if status != "pending" else None)
    org.stix_identity = build_identity(org)
    db.session.add(org)
    db.session.commit()
    return org


def make_user(org, email: str, role: str = "member", verified: bool = True,
              name: str | None = None) -> User:
    user = User(email=email, name=name or email.split("@")[0].title(), role=role,
                organisation=org, password_hash=_password_hash(),
                email_verified_at=utcnow() if verified else None)
    db.session.add(user)
    db.session.commit()
    return user


def make_admin(email: str) -> User:
    user = User(email=email, name="Platform Admin", is_admin=True,
                password_hash=_password_hash(), email_verified_at=utcnow())
    db.session.add(user)
    db.session.commit()
    return user


def make_alliance(founder, slug="atlantic", name="Atlantic Alliance", **settings):
    from alliance.alliances.services import create_alliance

    values = {"name": name, "description": "Shares threat notes.", "charter": "Be kind.",
              "policy_tags": ["nis2"], "join_policy": "approval",
              "allowed_tlps": ["CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED"],
              "default_tlp": "AMBER", "publish_clear_allowed": False}
    values.update(settings)
    return create_alliance(founder, slug=slug, **values)


def add_member(alliance, org, state: str = "active") -> Membership:
    """Put an organisation straight into a membership state (no services, no mail)."""
    m = db.session.scalar(select(Membership).where(Membership.alliance_id == alliance.id,
                                                   Membership.organisation_id == org.id))
    if m is None:
        m = Membership(alliance_id=alliance.id, organisation_id=org.id, state=state)
        db.session.add(m)
    m.state = state
    db.session.commit()
    return m


def login(client, user) -> None:
    """Sign a test client in as the user, as a real sign-in would leave the session."""
    with client.session_transaction() as sess:
        sess["_user_id"] = user.get_id()
        sess["_fresh"] = True


def queued_mails(kind: str = "mail") -> list[dict]:
    """Payloads of mail the outbox holds (what the worker would send)."""
    from alliance.outbox.models import OutboxMessage

    db.session.expire_all()
    rows = db.session.scalars(select(OutboxMessage).where(OutboxMessage.kind == kind)
                              .order_by(OutboxMessage.id)).all()
    return [r.payload for r in rows]


def fresh(obj):
    """Reload an object from the database (a request ran in another session)."""
    db.session.expire_all()
    return db.session.get(type(obj), obj.id)


def as_served(obj: dict, poster_identity: str, tlp: str | None = None) -> dict:
    """A posted object as the platform serves it (DESIGN.md, "Posting"): an object that can
    name its creator (one with `created`, not an SCO, an identity or a marking definition)
    and names none is served created by the poster's organisation; with the note's `tlp`,
    an object the poster created or that names no creator, with no TLP marking of its own
    (not a marking definition), is served with the note's marking after its others."""
    from alliance.stix.markings import level_of, marking_id
    from alliance.stix.validation import is_sco

    if ("created" in obj and "created_by_ref" not in obj and not is_sco(obj)
            and obj.get("type") not in ("identity", "marking-definition")):
        obj = {**obj, "created_by_ref": poster_identity}
    refs = obj.get("object_marking_refs") or []
    if (tlp is not None and obj.get("type") != "marking-definition"
            and obj.get("created_by_ref", poster_identity) == poster_identity
            and not any(level_of(r) for r in refs)):
        obj = {**obj, "object_marking_refs": [*refs, marking_id(tlp)]}
    return obj
