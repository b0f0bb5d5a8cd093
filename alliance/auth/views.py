"""Sign-in and sign-out, e-mail verification, password reset and change, invitations."""
from datetime import UTC, datetime

from flask import (
    Blueprint,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_limiter import RequestLimit
from flask_login import current_user, login_required
from sqlalchemy import select

from alliance.audit.models import AuditEvent
from alliance.audit.services import record
from alliance.auth import services
from alliance.auth.forms import (
    ChangePasswordForm,
    ConfirmEmailForm,
    NewPasswordForm,
    PasswordResetRequestForm,
    SignInForm,
    SignInLinkForm,
    SignInLinkRequestForm,
)
from alliance.core.errors import DomainError
from alliance.core.unit import unit_of_work
from alliance.core.urls import is_safe_next
from alliance.core.views import flash_error
from alliance.extensions import client_network, db, limiter

bp = Blueprint("auth", __name__)
# Sign-in is limited three ways (OWASP's authentication guidance): per account and client
# address, which stops one client guessing one account without letting it lock the owner out
# from anywhere else; per account from every address together, a ceiling (by default ten
# times higher) on guessing spread over many addresses; and per client address, whatever
# the account (password spraying). Flask-Limiter counts limits with shorter windows first and,
# among equal windows, in the order declared below from the bottom up; it stops at the first
# one reached. So attempts refused for an address do not count towards the account's ceiling
# and one address cannot trip it, as long as the ceiling's window is not the shortest.
ACCOUNT_SCOPE = "signin-account"
CEILING_SCOPE = "signin-account-ceiling"
IP_SCOPE = "signin-ip"
PASSWORD_SCOPE = "password-change"  # noqa: S105 (a limit's name)
WINDOW_SLACK_SECONDS = 1


def _typed_email() -> str:
    # The address typed, whether or not it exists: an unknown account is throttled exactly
    # like a known one, so no limit tells which addresses have accounts.
    return services.normalise_email(request.form.get("email", ""))[:254]


def _account_key() -> str:
    return f"signin:{_typed_email()}|{client_network()}"


def _ceiling_key() -> str:
    return "signin:" + _typed_email()


def _forget_failed_attempts(scope: str) -> None:
    """Signed in (or the password changed): the attempts so far no longer count. Every
    attempt is counted before its password is checked (attempts sent at the same moment
    cannot all pass a test made before any of them is counted), so a success takes its own
    back with the rest."""
    for limit in limiter.current_limits:
        if limit.request_args[-1].endswith(":" + scope):
            limit.limiter.clear(limit.limit, *limit.request_args)


def _take_back_attempt(scope: str) -> None:
    """Signed in: this attempt no longer counts towards the limit, but the others do. The
    account's ceiling is not cleared by the owner's sign-in, which would hand attackers
    spread over many addresses a fresh allowance each time the owner signs in. (A hit of
    cost -1 is a decrement in the fixed-window strategy, the limiter's default, in memory
    and in Redis alike.)"""
    for limit in limiter.current_limits:
        if limit.request_args[-1].endswith(":" + scope):
            limit.limiter.hit(limit.limit, *limit.request_args, cost=-1)


def _lockout_recorded(target_type: str, label: str, limit: RequestLimit,
                      action: str = "signin.lockout", **details) -> bool:
    # Audited once per lockout burst. The limiter calls on_breach for every refused attempt, so
    # a burst that is already in the log (an event since the limit's current window began) is
    # not recorded again: hammering a locked account must not flood the audit log. The check
    # is in the database, so it holds across processes. Redis gives a window's end from the
    # key's TTL in whole seconds (rounded), so the start it implies wanders by up to half a
    # second each time it is read: a second's slack keeps a burst's own event in its window.
    # details (e.g. the limit's kind and the client network) tell bursts of one target apart.
    window_start = datetime.fromtimestamp(
        limit.window.reset_time - limit.limit.get_expiry() - WINDOW_SLACK_SECONDS, UTC)
    query = select(AuditEvent.id).where(
        AuditEvent.action == action, AuditEvent.target_type == target_type,
        AuditEvent.target_label == label[:300], AuditEvent.created_at >= window_start)
    for name, value in details.items():
        query = query.where(AuditEvent.details[name].as_string() == value)
    return db.session.scalar(query.limit(1)) is not None


def _locked_page():
    """The answer to every refused sign-in, whichever limit refused it and whether or not the
    account exists: the same status, body and headers (the typed address is not echoed), so
    that neither the limit nor the answer tells which addresses have accounts. It offers the
    one-time sign-in link by mail, the owner's way in while their account is locked."""
    return make_response(render_template("auth/sign_in.html", form=SignInForm(formdata=None),
                                         link_form=SignInLinkRequestForm(formdata=None),
                                         locked=True, next=None), 429)


def _record_lockout(kind: str, limit: RequestLimit):
    """A per-account limit was reached: one account (known or not) is being guessed, from
    one client (kind "address") or from many (kind "ceiling")."""
    # Shown, not matched: a NUL (which no stored address holds) is written out, as
    # PostgreSQL refuses it in text and the lockout must still be recorded.
    email = _typed_email().replace("\x00", "\\x00")
    network = client_network() or "unknown"
    burst = {"kind": kind, "network": network} if kind == "address" else {"kind": kind}
    if not _lockout_recorded("account", email, limit, **burst):
        user = services.find_user_by_email(email)
        with unit_of_work():
            record("signin.lockout", None, ("account", getattr(user, "id", None), email),
                   organisation=getattr(user, "organisation", None), ip=request.remote_addr,
                   limit=str(limit.limit), **burst)
    return _locked_page()


def _record_account_lockout(limit: RequestLimit):
    return _record_lockout("address", limit)


def _record_ceiling_lockout(limit: RequestLimit):
    return _record_lockout("ceiling", limit)


def _record_ip_lockout(limit: RequestLimit):
    """The per-address limit was reached: one client is trying many accounts (password
    spraying, credential stuffing), which no single account's limit shows."""
    network = client_network() or "unknown"
    if not _lockout_recorded("ip", network, limit):
        with unit_of_work():
            record("signin.lockout", None, ("ip", None, network), ip=request.remote_addr,
                   limit=str(limit.limit))
    return _locked_page()


@bp.route("/sign-in", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["SIGNIN_LIMIT_ACCOUNT_CEILING"], methods=["POST"],
               key_func=_ceiling_key, on_breach=_record_ceiling_lockout, scope=CEILING_SCOPE)
@limiter.limit(lambda: current_app.config["SIGNIN_LIMIT_IP"], methods=["POST"],
               on_breach=_record_ip_lockout, scope=IP_SCOPE)
@limiter.limit(lambda: current_app.config["SIGNIN_LIMIT_ACCOUNT"], methods=["POST"],
               key_func=_account_key, on_breach=_record_account_lockout, scope=ACCOUNT_SCOPE)
def sign_in():
    if current_user.is_authenticated:
        return redirect(url_for("dashboard.index"))
    form = SignInForm()
    next_url = request.values.get("next")
    if form.validate_on_submit():
        user = services.authenticate(form.email.data, form.password.data)
        if user is not None:
            services.sign_in(user)
            _forget_failed_attempts(ACCOUNT_SCOPE)
            _take_back_attempt(CEILING_SCOPE)
            return redirect(next_url if is_safe_next(next_url) else url_for("dashboard.index"))
        form.password.errors.append("The e-mail address or the password is not correct.")
    status = 200 if request.method == "GET" else 401
    return render_template("auth/sign_in.html", form=form,
                           next=next_url if is_safe_next(next_url) else None), status


@bp.route("/sign-in/link", methods=["GET", "POST"])
@limiter.limit("10 per hour", methods=["POST"])
def request_sign_in_link():
    form = SignInLinkRequestForm()
    if form.validate_on_submit():
        services.request_sign_in_link(form.link_email.data)
        minutes = current_app.config["SIGNIN_LINK_MAX_AGE"] // 60
        return render_template("auth/message.html", title="Check your mail",
                               message="If an account uses that address, we sent it a "
                                       "one-time sign-in link. The link works once, for "
                                       f"{minutes} minutes.")
    return render_template("auth/sign_in_link_request.html", form=form), \
        422 if form.errors else 200


@bp.route("/sign-in/link/<token>", methods=["GET", "POST"])
@limiter.limit("10 per 15 minutes", methods=["POST"])
def sign_in_with_link(token):
    # GET only shows the button: mail scanners open links before people do, and the link
    # must still work when its owner clicks it. The POST (with its CSRF token) signs in.
    try:
        user = services.read_sign_in_link(token)
    except DomainError as exc:
        return render_template("auth/message.html", title="Sign-in link not valid",
                               message=exc.message), 400
    form = SignInLinkForm()
    if form.validate_on_submit():
        try:
            services.sign_in_with_link(token, ip=request.remote_addr)
        except DomainError as exc:
            return render_template("auth/message.html", title="Sign-in link not valid",
                                   message=exc.message), 400
        return redirect(url_for("dashboard.index"))
    return render_template("auth/sign_in_link.html", form=form, email=user.email)


@bp.route("/sign-out", methods=["POST"])
def sign_out():
    if current_user.is_authenticated:
        services.sign_out(current_user._get_current_object())
    flash("You are signed out.", "info")
    return redirect(url_for("auth.sign_in"))


@bp.route("/verify/<token>", methods=["GET", "POST"])
def verify_email(token):
    """Opening the link (GET, HEAD) shows a button; its POST confirms the address. A GET
    never changes state: a mail scanner that opens links must not confirm an address."""
    form = ConfirmEmailForm()
    try:
        if not form.validate_on_submit():
            user = services.verification_user(token)
            return render_template("auth/confirm_email.html", form=form, email=user.email)
        services.verify_email(token)
    except DomainError as exc:
        return render_template("auth/message.html", title="E-mail not confirmed",
                               message=exc.message), 400
    flash("Your e-mail address is confirmed.", "success")
    return redirect(url_for("dashboard.index"))


@bp.route("/verify/resend", methods=["POST"])
@login_required
@limiter.limit("3 per hour")
def resend_verification():
    if not current_user.is_verified:
        with unit_of_work():
            services.send_verification(current_user)
    flash("We sent a new confirmation link to your e-mail address.", "info")
    return redirect(url_for("core.status"))


@bp.route("/reset", methods=["GET", "POST"])
@limiter.limit("10 per hour", methods=["POST"])
def request_reset():
    form = PasswordResetRequestForm()
    if form.validate_on_submit():
        services.request_password_reset(form.email.data)
        return render_template("auth/message.html", title="Check your mail",
                               message="If an account uses that address, we sent it a link to "
                                       "choose a new password. The link works for one hour.")
    return render_template("auth/reset_request.html", form=form), 422 if form.errors else 200


@bp.route("/reset/<token>", methods=["GET", "POST"])
def reset_password(token):
    form = NewPasswordForm()
    if form.validate_on_submit():
        try:
            services.reset_password(token, form.password.data)
        except DomainError as exc:
            flash_error(exc, form)
        else:
            flash("Your password is changed. Sign in with the new one.", "success")
            return redirect(url_for("auth.sign_in"))
    return render_template("auth/reset_password.html", form=form), 422 if form.errors or \
        request.method == "POST" else 200


def _password_change_key() -> str:
    # The limiter runs before login_required: a visitor signed out is keyed by address.
    return f"password-change:{current_user.get_id() or client_network()}"


@unit_of_work()
def _record_password_lockout(limit: RequestLimit):
    """The current password was guessed too often: whoever holds this session is not sure
    of it. Audited once per burst, as a sign-in lockout is."""
    if not current_user.is_authenticated:
        return None
    user = current_user._get_current_object()
    if _lockout_recorded("user", user.email, limit, action="password.lockout"):
        return None
    record("password.lockout", user, ("user", user.id, user.email),
           organisation=user.organisation, ip=request.remote_addr, limit=str(limit.limit))
    return None


@bp.route("/password", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["SIGNIN_LIMIT_ACCOUNT"], methods=["POST"],
               key_func=_password_change_key, on_breach=_record_password_lockout,
               scope=PASSWORD_SCOPE)
@login_required
def change_password():
    form = ChangePasswordForm()
    if form.validate_on_submit():
        try:
            services.change_password(current_user._get_current_object(),
                                     form.current_password.data, form.password.data)
        except DomainError as exc:
            flash_error(exc, form)
        else:
            _forget_failed_attempts(PASSWORD_SCOPE)
            flash("Your password is changed; your other sessions are signed out.", "success")
            return redirect(url_for("dashboard.index"))
    return render_template("auth/change_password.html", form=form), 422 if form.errors else 200
