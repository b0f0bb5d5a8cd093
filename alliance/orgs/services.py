"""Organisations and their users: registration, vetting by a platform admin, invitations,
roles and deactivation. Every function takes the acting user explicitly and checks it."""
import json
import re
import secrets
import uuid
from collections.abc import Sequence
from datetime import timedelta

from flask import current_app
from limits import parse as parse_limit
from sqlalchemy import delete, func, select

from alliance.audit.services import record
from alliance.auth.models import User
from alliance.auth.services import (
    check_password_policy,
    find_user_by_email,
    hash_password,
    normalise_email,
    set_password,
)
from alliance.auth.tokens import make_token, read_token, secret_digest
from alliance.core.errors import Conflict, DomainError, NotAllowed, NotFound
from alliance.core.models import utcnow
from alliance.core.text import slugify
from alliance.core.unit import unit_of_work
from alliance.core.urls import external_url
from alliance.extensions import db, limiter
from alliance.mail.services import queue_mail
from alliance.orgs.models import Organisation, PendingRegistration

ORG_SLUG_RE = re.compile(r"^[a-z0-9-]{1,80}$")


def build_identity(org: Organisation) -> dict:
    """The organisation's STIX 2.1 identity. Its id never changes; a new version gets a new
    `modified`."""
    # stix2 is imported where it is used: it is heavy to import, and every process (a
    # command-line start too) imports this module.
    import stix2

    now = utcnow()
    created = org.stix_identity.get("created") if org.stix_identity else None
    identity = stix2.v21.Identity(
        id=org.stix_id, name=org.name, identity_class="organization",
        sectors=list(org.sectors or []) or None,
        contact_information=org.website or None,
        created=created or now, modified=now, allow_custom=False)
    return json.loads(identity.serialize())


def _unique_slug(model, name: str) -> str:
    base = slugify(name)
    slug, n = base, 2
    while db.session.scalar(select(model.id).where(model.slug == slug)) is not None:
        slug, n = f"{base}-{n}", n + 1
    return slug


def _name_taken(name: str) -> bool:
    return db.session.scalar(select(Organisation.id)
                             .where(func.lower(Organisation.name) == name.lower())) is not None


def _may_mail(address: str) -> bool:
    """Whether the address may get one more registration mail (REGISTER_MAIL_LIMIT): the
    registration form mails addresses people type, from any client."""
    limit = parse_limit(current_app.config["REGISTER_MAIL_LIMIT"])
    return limiter.limiter.hit(limit, "register-mail", address)


@unit_of_work()
def register_organisation(*, name: str, country: str, sectors: list[str], website: str | None,
                          domain: str | None, user_name: str, email: str,
                          password: str) -> None:
    """Start a registration: mail the address a link that creates the organisation and its
    first user (confirm_registration). Nothing is created before, so the answer and the
    work are the same for every address: an address that has an account already gets a mail
    saying so instead (sign in, or reset the password), after the same password checks and
    hashing. Only a name an organisation already has is refused here."""
    name = name.strip()
    if _name_taken(name):
        raise Conflict("An organisation with this name is already registered.", field="name")
    address = normalise_email(email)
    # The checks set_password makes for a new user, with the same inputs.
    check_password_policy(password, user_inputs=(address, user_name.strip()))
    password_hash = hash_password(password)
    max_age = current_app.config["EMAIL_VERIFY_MAX_AGE"]
    db.session.execute(delete(PendingRegistration).where(
        PendingRegistration.created_at < utcnow() - timedelta(seconds=max_age)))
    existing = find_user_by_email(address)
    if not _may_mail(address):  # someone sends this address registration mails in bulk
        return
    if existing is not None:
        queue_mail(existing.email, "register_existing",
                   "Your address already has a CyberPeace Alliance account",
                   name=existing.name, sign_in=external_url("auth.sign_in"),
                   reset=external_url("auth.request_reset"))
    else:
        token = secrets.token_urlsafe(32)
        db.session.add(PendingRegistration(
            token_hash=secret_digest(token), email=address, password_hash=password_hash,
            details={"name": name, "country": country, "sectors": sorted(set(sectors or [])),
                     "website": website or None,
                     "domain": (domain or "").strip().lower() or None,
                     "user_name": user_name.strip()}))
        queue_mail(address, "register_confirm", f"Confirm your address to register {name}",
                   name=user_name.strip(), org_name=name, hours=max_age // 3600,
                   link=external_url("orgs.confirm_registration", token=token))


def read_registration(token: str) -> PendingRegistration:
    """The registration a confirmation link is for while it is valid (not used, within
    EMAIL_VERIFY_MAX_AGE); else a DomainError. Reading changes nothing: mail scanners open
    links before people do, so the page the link opens confirms with a POST."""
    max_age = current_app.config["EMAIL_VERIFY_MAX_AGE"]
    pending = db.session.scalar(select(PendingRegistration).where(
        PendingRegistration.token_hash == secret_digest(token or "")))
    if pending is None or pending.created_at < utcnow() - timedelta(seconds=max_age):
        raise DomainError("This link is not valid any more: it was used already, or it is "
                          "too old. Register again.")
    return pending


def confirm_registration(token: str) -> User:
    """Create the organisation (pending until vetted) and its first user, an org admin whose
    address is confirmed by this very link. Platform admins are told there is an
    organisation to vet. The link works once, within EMAIL_VERIFY_MAX_AGE: it is used up
    even when the registration is refused."""
    with unit_of_work():
        pending = read_registration(token)
        db.session.delete(pending)
        refused = _registration_conflict(pending)
        if refused is None:
            return _create_registered(pending)
    raise refused


def _registration_conflict(pending: PendingRegistration) -> Conflict | None:
    if find_user_by_email(pending.email) is not None:
        return Conflict("This address has an account already (its registration was "
                        "confirmed from another link). Sign in with it.")
    if _name_taken(pending.details["name"]):
        return Conflict(f"An organisation named {pending.details['name']} was registered in "
                        "the meantime. Register again with another name.")
    return None


def _create_registered(pending: PendingRegistration) -> User:
    details = pending.details
    org = Organisation(name=details["name"], slug=_unique_slug(Organisation, details["name"]),
                       country=details["country"], sectors=details["sectors"],
                       website=details["website"], domain=details["domain"], status="pending",
                       stix_id=f"identity--{uuid.uuid4()}")
    org.stix_identity = build_identity(org)
    user = User(email=pending.email, name=details["user_name"], role="org_admin",
                organisation=org, password_hash=pending.password_hash,
                email_verified_at=utcnow())
    db.session.add_all([org, user])
    db.session.flush()
    record("organisation.registered", user, org, organisation=org)
    admins = db.session.scalars(select(User.email).where(User.is_admin,
                                                         User.deactivated_at.is_(None))).all()
    if admins:
        queue_mail(list(admins), "org_to_vet", f"New organisation to vet: {org.name}",
                   org_name=org.name, country=org.country,
                   link=external_url("orgs.vetting"))
    return user


def pending_organisations() -> Sequence[Organisation]:
    return db.session.scalars(select(Organisation).where(Organisation.status == "pending")
                              .order_by(Organisation.created_at)).all()


def recently_vetted(limit: int = 50) -> Sequence[Organisation]:
    return db.session.scalars(select(Organisation).where(Organisation.status != "pending")
                              .order_by(Organisation.vetted_at.desc()).limit(limit)).all()


def get_organisation_by_slug(slug: str) -> Organisation:
    # Slugs are slugify()'s output plus a "-n" suffix; anything else (a NUL byte above all,
    # which PostgreSQL refuses in a query) is simply not found, without asking the database.
    if not ORG_SLUG_RE.match(slug or ""):
        raise NotFound("No such organisation.")
    org = db.session.scalar(select(Organisation).where(Organisation.slug == slug))
    if org is None:
        raise NotFound("No such organisation.")
    return org


@unit_of_work()
def vet_organisation(actor: User, org: Organisation, *, approve: bool, reason: str) -> None:
    """A platform admin approves or rejects a pending organisation; its org admins are mailed."""
    if not actor.is_admin:
        raise NotAllowed("Only platform administrators vet organisations.")
    if org.status != "pending":
        raise Conflict(f"{org.name} is already {org.status}.")
    if not approve and not (reason or "").strip():
        raise DomainError("Say why the organisation is rejected; the reason is mailed to it.",
                          field="reason")
    org.status = "approved" if approve else "rejected"
    org.status_reason = (reason or "").strip() or None
    org.vetted_at = utcnow()
    record("organisation.approved" if approve else "organisation.rejected", actor, org,
           organisation=org, reason=org.status_reason)
    recipients = [u.email for u in org.users if u.is_org_admin and u.is_active]
    queue_mail(recipients, "org_vetted",
               f"{org.name} was {'approved' if approve else 'not approved'}",
               org_name=org.name, approved=approve, reason=org.status_reason or "",
               link=external_url("dashboard.index"))


# --- users of an organisation --------------------------------------------------------------

def _require_org_admin(actor: User, org: Organisation) -> None:
    if not (actor.can_act and actor.is_org_admin and actor.organisation_id == org.id):
        raise NotAllowed("Only an administrator of this organisation can do that.")


def get_org_user(actor: User, user_id: int) -> User:
    """A user of the actor's own organisation; another organisation's users are not found."""
    user = db.session.get(User, user_id)
    if user is None or user.organisation_id != actor.organisation_id:
        raise NotFound("No such user in your organisation.")
    return user


@unit_of_work()
def invite_user(actor: User, email: str, role: str = "member") -> str | None:
    """Mail a signed, expiring invitation to join the actor's organisation. Returns the link.

    An address that already has an account in another organisation gets no link (an account
    belongs to one organisation) but a mail saying so, and the inviter sees the same answer
    as for a new address: the invitation form must not tell an org admin which addresses
    have accounts on the platform. Returns None then. One of the inviter's own colleagues
    is refused: the users page lists them anyway."""
    org = actor.organisation
    _require_org_admin(actor, org)
    email = normalise_email(email)
    if role not in ("member", "org_admin"):
        raise DomainError("Unknown role.", field="role")
    existing = find_user_by_email(email)
    if existing is not None and existing.organisation_id == org.id:
        raise Conflict("This person already has an account in your organisation.",
                       field="email")
    subject = f"{actor.name} invites you to {org.name} on CyberPeace Alliance"
    link = None
    if existing is None:
        token = make_token("invite", {"org": org.id, "email": email, "role": role,
                                      "by": actor.id})
        link = external_url("orgs.accept_invite", token=token)
        queue_mail(email, "user_invite", subject, inviter=actor.name, org_name=org.name,
                   link=link, days=current_app.config["INVITE_MAX_AGE"] // 86400)
    else:
        queue_mail(existing.email, "user_invite_existing", subject, inviter=actor.name,
                   org_name=org.name, sign_in=external_url("auth.sign_in"))
    # The same record either way: the organisation's own log must not tell them apart.
    record("user.invited", actor, ("invitation", None, email), organisation=org, role=role)
    return link


def read_invitation(token: str) -> dict:
    """The data of a valid, unused invitation. An invitation stands only while the person who
    sent it is still an active admin of that organisation: once they are deactivated or
    demoted, links they sent (perhaps to themselves) no longer open the organisation."""
    data = read_token("invite", token, current_app.config["INVITE_MAX_AGE"])
    org = db.session.get(Organisation, data.get("org"))
    inviter = db.session.get(User, data["by"]) if data.get("by") else None
    if (org is None or not org.is_approved or inviter is None or not inviter.is_active
            or not inviter.is_org_admin or inviter.organisation_id != org.id):
        raise DomainError("This invitation is no longer valid.")
    if find_user_by_email(data["email"]):
        raise Conflict("This invitation has been used already. Sign in instead.")
    return {**data, "organisation": org}


@unit_of_work()
def accept_invitation(token: str, *, name: str, password: str) -> User:
    """Create the invited user. The address is verified: the link was mailed to it. The
    view signs the user in within the same unit of work (a failure leaves the invitation
    unused, to be tried again)."""
    data = read_invitation(token)
    user = User(email=data["email"], name=name.strip(), role=data["role"],
                organisation=data["organisation"], password_hash="!",  # noqa: S106
                email_verified_at=utcnow())
    set_password(user, password)
    db.session.add(user)
    db.session.flush()
    record("user.joined", user, user, organisation=data["organisation"], role=user.role,
           invited_by=data.get("by"))
    return user


def _lock_organisation(org: Organisation) -> None:
    """Serialise changes to one organisation's admins, then read afresh: two admins demoting
    (or deactivating) each other at once would each see the other as the remaining admin and
    leave the organisation with none. The row lock (PostgreSQL; SQLite lets one writer in at a
    time anyway) makes the second wait for the first to commit and then count again."""
    db.session.execute(select(Organisation.id).where(Organisation.id == org.id)
                       .with_for_update())
    db.session.expire_all()


def _active_org_admins(org_id: int | None) -> int:
    return db.session.execute(select(func.count(User.id)).where(
        User.organisation_id == org_id, User.role == "org_admin",
        User.deactivated_at.is_(None))).scalar_one()


@unit_of_work()
def change_role(actor: User, user: User, role: str) -> None:
    _require_org_admin(actor, user.organisation)
    _lock_organisation(user.organisation)
    _require_org_admin(actor, user.organisation)  # the actor may have been demoted meanwhile
    if role not in ("member", "org_admin"):
        raise DomainError("Unknown role.", field="role")
    if user.role == role:
        return
    if user.role == "org_admin" and _active_org_admins(user.organisation_id) <= 1:
        raise Conflict("This is the last administrator of the organisation; make someone else "
                       "an administrator first.")
    old = user.role
    user.role = role
    record("user.role_changed", actor, user, organisation=user.organisation,
           old=old, new=role)


@unit_of_work()
def deactivate_user(actor: User, user: User, reason: str = "") -> None:
    """Deactivate a user: every session ends now and the account cannot sign in."""
    from alliance.alliances.coordinators import check_user_can_leave_coordination

    _require_org_admin(actor, user.organisation)
    _lock_organisation(user.organisation)
    _require_org_admin(actor, user.organisation)  # the actor may have been demoted meanwhile
    if not user.is_active:
        raise Conflict("This user is already deactivated.")
    if user.id == actor.id:
        raise DomainError("You cannot deactivate yourself; ask another administrator.")
    if user.is_org_admin and _active_org_admins(user.organisation_id) <= 1:
        raise Conflict("This is the last administrator of the organisation.")
    check_user_can_leave_coordination(user)
    user.deactivated_at = utcnow()
    user.session_version += 1
    record("user.deactivated", actor, user, organisation=user.organisation, reason=reason)


@unit_of_work()
def create_admin(email: str, password: str, name: str = "Platform administrator") -> User:
    """Create (or promote) a platform administrator; used by the CLI."""
    user = find_user_by_email(email)
    if user is None:
        user = User(email=normalise_email(email), name=name, password_hash=hash_password("!"),
                    is_admin=True, email_verified_at=utcnow())
        db.session.add(user)
    user.is_admin = True
    user.email_verified_at = user.email_verified_at or utcnow()
    set_password(user, password)
    db.session.flush()
    record("user.made_admin", None, user)
    return user
