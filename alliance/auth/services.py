"""Accounts: passwords, sign-in and sign-out, one-time sign-in links, e-mail verification and
password reset.

Session invalidation: every session carries the user's session_version (User.get_id); the
user loader refuses a session whose version is older, so bumping the version signs out every
session of that user at once, in every process, with no server-side session store."""
import hashlib
import hmac
from functools import cache
from typing import cast

import idna
from flask import current_app, session
from flask_login import login_user, logout_user
from limits import parse as parse_limit
from sqlalchemy import CursorResult, func, select, update
from werkzeug.security import check_password_hash, generate_password_hash

from alliance.audit.services import record
from alliance.auth.models import User
from alliance.auth.tokens import make_token, read_token
from alliance.core.errors import DomainError
from alliance.core.models import utcnow
from alliance.core.unit import unit_of_work
from alliance.core.urls import external_url
from alliance.extensions import db, limiter
from alliance.mail.services import queue_mail
from alliance.outbox.services import Handler, enqueue

RESET_REQUESTED = "auth.password_reset"
SIGN_IN_LINK_REQUESTED = "auth.sign_in_link"
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 256
# Checked against when the e-mail is unknown, so both answers take the same time. Written
# out, not hashed at import: scrypt is slow on purpose, and every process (a command-line
# start too) would pay for it:
# generate_password_hash("not-a-real-password-0000", method="scrypt"), with the cost
# hash_password uses (tests/core/test_startup.py checks they stay the same).
_DUMMY_HASH = ("scrypt:32768:8:1$4NQyPl2GxuKxq1ZQ$e39d9f21947a2913d980b84cf60220de08c18ea7c9e07b"
               "711d5dbee484339ce455a28c1e74c6e3f29bb8a6a1816b971b880f2cead638a8a894dd510406b4a"
               "ac2")


# zxcvbn is imported where a password is checked: its word lists are large to load, and
# every process (a command-line start too) imports this module.
@cache
def _common_passwords() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def normalise_email(email: str) -> str:
    """One spelling per mailbox: lower case, and an internationalised domain in its one
    Unicode form (UTS 46: "ＥＸＡＭＰＬＥ.com" and "example.com", "xn--bcher-kva.example"
    and "bücher.example" are the same domain), so an address cannot get a second account by
    another spelling of its domain. Mail goes out to the ASCII form of the domain."""
    email = (email or "").strip().lower()
    local, at, domain = email.rpartition("@")
    if at and (not domain.isascii() or "xn--" in domain):
        try:
            domain = idna.decode(idna.encode(domain, uts46=True))
        except (idna.IDNAError, UnicodeError):
            pass  # not a domain name: the form's own check refuses it
        return f"{local}@{domain}"
    return email


def check_password_policy(password: str, *, user_inputs: tuple = ()) -> None:
    """Raise DomainError unless the password is long enough and not a common or guessable one
    (zxcvbn's list of 30,000 common passwords, and a strength score of at least 3 of 4)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise DomainError(f"Use at least {MIN_PASSWORD_LENGTH} characters.", field="password")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise DomainError(f"Use at most {MAX_PASSWORD_LENGTH} characters.", field="password")
    if password.lower() in _common_passwords():
        raise DomainError("This password is on a list of common passwords; choose another.",
                          field="password")
    from zxcvbn import zxcvbn

    # zxcvbn is slow on very long inputs; a long passphrase is strong enough by length.
    result = zxcvbn(password[:64], user_inputs=[str(i) for i in user_inputs if i])
    if result["score"] < 3:
        hint = result["feedback"].get("warning") or "It would be easy to guess."
        raise DomainError(f"This password is too weak: {hint} Try a longer passphrase.",
                          field="password")


def hash_password(password: str) -> str:
    return generate_password_hash(password, method="scrypt")


def set_password(user: User, password: str) -> None:
    check_password_policy(password, user_inputs=(user.email, user.name))
    user.password_hash = hash_password(password)


def find_user_by_email(email: str) -> User | None:
    email = normalise_email(email)
    # No stored address holds a NUL byte (forms validate addresses), and PostgreSQL refuses one
    # in a query: answer "no such user" instead of a 500 before anyone has signed in.
    if not email or "\x00" in email:
        return None
    return db.session.scalar(select(User).where(func.lower(User.email) == email))


def authenticate(email: str, password: str) -> User | None:
    """The active user with this e-mail and password, else None. Unknown e-mail, wrong password
    and deactivated account look the same and take the same time."""
    user = find_user_by_email(email)
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    if not check_password_hash(user.password_hash, password) or not user.is_active:
        return None
    return user


@unit_of_work()
def sign_in(user: User) -> None:
    """Start a fresh session for the user: the old session's contents (and id) are dropped
    first, so a session fixed before sign-in is worth nothing after."""
    session.clear()
    login_user(user, remember=False)
    session.permanent = True
    user.last_sign_in_at = utcnow()


def sign_out(user: User | None) -> None:
    """End this session and every other session of the user (the cookie may have been copied)."""
    if user is not None and getattr(user, "id", None):
        with unit_of_work():
            user.session_version += 1
    logout_user()
    session.clear()


def load_user(user_id: str) -> User | None:
    """Flask-Login's user loader: refuses sessions of deactivated users and sessions whose
    version is older than the user's (signed out elsewhere, password changed)."""
    try:
        raw_id, raw_version = user_id.split(":", 1)
        uid, version = int(raw_id), int(raw_version)
    except (ValueError, AttributeError):
        return None
    user = db.session.get(User, uid)
    if user is None or not user.is_active or user.session_version != version:
        return None
    return user


@unit_of_work()
def change_password(user: User, current: str, new: str) -> None:
    """Change the password; every other session of the user ends, this one is renewed."""
    if not check_password_hash(user.password_hash, current):
        raise DomainError("Your current password is not correct.", field="current_password")
    set_password(user, new)
    user.session_version += 1
    sign_in(user)  # one unit: a failure leaves the old password and sessions


# --- e-mail verification -------------------------------------------------------------------

def send_verification(user: User) -> None:
    token = make_token("verify-email", {"uid": user.id, "email": user.email})
    queue_mail(user.email, "verify_email", "Confirm your e-mail address",
               name=user.name, link=external_url("auth.verify_email", token=token))


def verification_user(token: str) -> User:
    """The user a confirmation link is for, if it is still good (changes nothing: opening
    the link only shows the button that confirms)."""
    data = read_token("verify-email", token, current_app.config["EMAIL_VERIFY_MAX_AGE"])
    user = db.session.get(User, data.get("uid"))
    if user is None or user.email != data.get("email"):
        raise DomainError("This link is not valid any more.")
    return user


def verify_email(token: str) -> User:
    user = verification_user(token)
    if user.email_verified_at is None:
        with unit_of_work():
            user.email_verified_at = utcnow()
    return user


# --- password reset -----------------------------------------------------------------------

def _password_fingerprint(user: User) -> str:
    # Ties a reset token to the current password hash: once used (or after any password
    # change) the token no longer matches, so each reset link works once.
    return hmac.new(current_app.config["SECRET_KEY"].encode(), user.password_hash.encode(),
                    hashlib.sha256).hexdigest()[:32]


@unit_of_work()
def request_password_reset(email: str) -> None:
    """Ask for a reset link to be mailed to this address; say nothing about whether it has an
    account. The request does the same work either way — it writes one outbox row, relayed
    like any other — and the worker looks the address up (send_password_reset). Looking it up
    here would answer a known address measurably later than an unknown one (a mail row more
    to write, and to hand to the broker before the response), which tells which addresses
    have accounts as surely as saying so."""
    enqueue(RESET_REQUESTED, email=normalise_email(email)[:254])


def _mailed_user(message, limit: str, scope: str, verified: bool = False) -> User | None:
    """The active account (with a confirmed address, if `verified`) a mailed link asked for
    by address is for, while the `limit` setting allows it one more mail; else None. The
    worker looks the address up, so the request takes the same time for every address."""
    user = find_user_by_email(message.payload.get("email", ""))
    if user is None or not user.is_active or (verified and not user.is_verified):
        return None
    if not limiter.limiter.hit(parse_limit(current_app.config[limit]), scope, str(user.id)):
        return None
    return user


def send_password_reset(message) -> None:
    """Outbox handler: queue a reset link to the address asked for, when an active account
    uses it; otherwise do nothing. At most RESET_MAIL_LIMIT to one account: the form is
    limited per client, and anyone may ask for a link to any address from many clients.
    Counted here, in the worker, so the request takes the same time for every address."""
    user = _mailed_user(message, "RESET_MAIL_LIMIT", "reset-mail")
    if user is None:
        return
    token = make_token("reset-password", {"uid": user.id, "fp": _password_fingerprint(user)})
    queue_mail(user.email, "reset_password", "Reset your password", name=user.name,
               link=external_url("auth.reset_password", token=token))


@unit_of_work()
def reset_password(token: str, new_password: str) -> User:
    data = read_token("reset-password", token, current_app.config["PASSWORD_RESET_MAX_AGE"])
    user = db.session.get(User, data.get("uid"))
    if user is None or not user.is_active or data.get("fp") != _password_fingerprint(user):
        raise DomainError("This reset link has been used or is no longer valid. Ask for a new one.")
    set_password(user, new_password)
    user.session_version += 1
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()  # the link proved the address
    return user


# --- one-time sign-in link ----------------------------------------------------------------
# The way in while sign-in by password is locked for an account (anyone can lock an account
# by guessing at it; OWASP's authentication guidance asks that the owner still get in). It
# proves the mailbox, as a password reset link does, and it is made like one: asked for
# without saying whether the address has an account, mailed by the worker, signed, short-lived.

def _sign_in_fingerprint(user: User) -> str:
    # Ties a sign-in link to the account's state when the link was made: its last sign-in,
    # session version and password. Any sign-in (by this link or otherwise), a sign-out
    # (which ends every session) or a password change makes the link stale: it works once.
    last = user.last_sign_in_at.isoformat() if user.last_sign_in_at else "never"
    state = f"{user.id}:{user.session_version}:{last}:{user.password_hash}"
    return hmac.new(current_app.config["SECRET_KEY"].encode(), state.encode(),
                    hashlib.sha256).hexdigest()[:32]


@unit_of_work()
def request_sign_in_link(email: str) -> None:
    """Ask for a one-time sign-in link to be mailed to this address; say nothing about
    whether it has an account. Like request_password_reset, the request does the same work
    for every address (one outbox row) and the worker looks the address up."""
    enqueue(SIGN_IN_LINK_REQUESTED, email=normalise_email(email)[:254])


def send_sign_in_link(message) -> None:
    """Outbox handler: mail a one-time sign-in link to the address asked for when an active
    account with a confirmed address uses it (the link proves the mailbox, so it goes only
    to a mailbox already proven); otherwise do nothing. At most SIGNIN_LINK_MAIL_LIMIT to one
    account, counted here so the request takes the same time for every address."""
    user = _mailed_user(message, "SIGNIN_LINK_MAIL_LIMIT", "signin-link-mail", verified=True)
    if user is None:
        return
    token = make_token("sign-in-link", {"uid": user.id, "fp": _sign_in_fingerprint(user)})
    queue_mail(user.email, "sign_in_link", "Your one-time sign-in link", name=user.name,
               link=external_url("auth.sign_in_with_link", token=token),
               minutes=current_app.config["SIGNIN_LINK_MAX_AGE"] // 60)


def read_sign_in_link(token: str) -> User:
    """The user a sign-in link is for while it is valid (signed, not expired, not used,
    account active with a confirmed address); else a DomainError. Reading changes nothing:
    mail scanners open links before people do."""
    data = read_token("sign-in-link", token, current_app.config["SIGNIN_LINK_MAX_AGE"])
    user = db.session.get(User, data.get("uid"))
    if (user is None or not user.is_active or not user.is_verified
            or not hmac.compare_digest(str(data.get("fp", "")), _sign_in_fingerprint(user))):
        raise DomainError("This sign-in link has been used or is no longer valid. "
                          "Ask for a new one.")
    return user


@unit_of_work()
def sign_in_with_link(token: str, *, ip: str | None = None) -> User:
    """Sign in with a one-time link (read_sign_in_link's checks), audited. The link is
    claimed by one conditional UPDATE of the state it was made from: of two requests with
    the same link at the same moment, the database lets one change that state and the
    other finds it changed, so only one signs in."""
    user = read_sign_in_link(token)
    last = (User.last_sign_in_at.is_(None) if user.last_sign_in_at is None
            else User.last_sign_in_at == user.last_sign_in_at)
    # An UPDATE answers with a CursorResult, which counts the rows it changed.
    claimed = cast(CursorResult, db.session.execute(
        update(User).where(User.id == user.id, User.session_version == user.session_version,
                           User.password_hash == user.password_hash, last)
        .values(last_sign_in_at=utcnow()).execution_options(synchronize_session=False)))
    if claimed.rowcount != 1:
        raise DomainError("This sign-in link has been used or is no longer valid. "
                          "Ask for a new one.")
    record("signin.link", user, ("user", user.id, user.email),
           organisation=user.organisation, ip=ip)
    sign_in(user)  # the claim, the audit event and the session: one unit
    return user


# The outbox kinds this slice runs: registered by the application factory
# (alliance.configure_outbox), not by importing this module.
HANDLERS = {
    RESET_REQUESTED: Handler(send_password_reset),
    SIGN_IN_LINK_REQUESTED: Handler(send_sign_in_link),
}
