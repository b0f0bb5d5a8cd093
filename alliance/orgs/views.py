"""Organisation registration, profile and users; vetting by platform admins."""
import json

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user

from alliance.alliances.services import memberships_of_org
from alliance.auth.access import admin_required, member_required
from alliance.auth.forms import AcceptInviteForm
from alliance.auth.services import sign_in
from alliance.core.errors import DomainError
from alliance.core.unit import unit_of_work
from alliance.core.views import flash_error, run_and_flash
from alliance.extensions import db, limiter
from alliance.orgs import services
from alliance.orgs.forms import (
    ConfirmRegistrationForm,
    DeactivateForm,
    InviteUserForm,
    RegisterOrganisationForm,
    RoleForm,
    VetForm,
)
from alliance.orgs.models import Organisation

bp = Blueprint("orgs", __name__)

# Ids in addresses stay within the database's integer column (PostgreSQL's is 32-bit); a
# larger number is a 404 from the router instead of an overflow (a 500) in the query.
ID = "int(min=1, max=2147483647)"


@bp.route("/register", methods=["GET", "POST"])
@limiter.limit("10 per hour", methods=["POST"])
def register():
    if current_user.is_authenticated:
        return redirect(url_for("dashboard.index"))
    form = RegisterOrganisationForm()
    if form.validate_on_submit():
        try:
            services.register_organisation(
                name=form.org_name.data, country=form.country.data, sectors=form.sectors.data,
                website=form.website.data, domain=form.domain.data, user_name=form.name.data,
                email=form.email.data, password=form.password.data)
        except DomainError as exc:
            if exc.field == "name":
                exc.field = "org_name"
            flash_error(exc, form)
        else:
            # The same answer for every address (one that has an account already is told
            # so by mail): the organisation is created from the link mailed to it.
            session["registration_sent_to"] = form.email.data.strip()
            return redirect(url_for("orgs.registered"))
    return render_template("orgs/register.html", form=form), 422 if form.errors else 200


@bp.route("/register/sent")
def registered():
    address = session.get("registration_sent_to")
    if address is None:
        return redirect(url_for("orgs.register"))
    return render_template("orgs/registered.html", address=address)


def _not_confirmed(exc: DomainError):
    # A link that is not (or no longer) valid is a bad request; a clash is a 409.
    return render_template("auth/message.html", title="Registration not completed",
                           message=exc.message), (400 if type(exc) is DomainError
                                                  else exc.status_code)


@bp.route("/register/confirm/<token>", methods=["GET", "POST"])
@limiter.limit("30 per hour")
def confirm_registration(token):
    # GET (and HEAD) only show the button: mail scanners and link previews open links
    # before people do, and opening must not register anything. The POST, with its CSRF
    # token, creates the organisation and the account.
    try:
        pending = services.read_registration(token)
    except DomainError as exc:
        return _not_confirmed(exc)
    form = ConfirmRegistrationForm()
    if not form.validate_on_submit():
        return render_template("orgs/confirm_registration.html", form=form,
                               org_name=pending.details["name"], email=pending.email)
    try:
        user = services.confirm_registration(token)
    except DomainError as exc:
        return _not_confirmed(exc)
    flash(f"{user.organisation.name} is registered and your address is confirmed. Sign in: "
          "a platform administrator vets the organisation, and you get an e-mail when that "
          "is done.", "success")
    return redirect(url_for("auth.sign_in"))


@bp.route("/organisations/<slug>")
@member_required
def profile(slug):
    org = services.get_organisation_by_slug(slug)
    if org.id != current_user.organisation_id and not org.is_approved:
        abort(404)
    own = org.id == current_user.organisation_id
    return render_template("orgs/profile.html", org=org, own=own,
                           identity_json=json.dumps(org.stix_identity, indent=2, sort_keys=True),
                           memberships=memberships_of_org(org.id) if own else [])


def _inviter_key() -> str:
    return f"invite:{current_user.id}"


@bp.route("/organisations/<slug>/users", methods=["GET", "POST"])
@member_required
# Every invitation is a mail to an address the admin typed: a limit per admin keeps the
# platform from being used to send them in bulk. Only sent invitations count.
@limiter.limit(lambda: current_app.config["INVITE_LIMIT"], methods=["POST"],
               key_func=_inviter_key, deduct_when=lambda response: response.status_code == 302)
def users(slug):
    org = services.get_organisation_by_slug(slug)
    if org.id != current_user.organisation_id or not current_user.is_org_admin:
        abort(404)
    form = InviteUserForm()
    if form.validate_on_submit():
        try:
            services.invite_user(current_user, form.email.data, form.role.data)
        except DomainError as exc:
            flash_error(exc, form)
        else:
            flash(f"Invitation sent to {form.email.data}.", "success")
            return redirect(url_for("orgs.users", slug=slug))
    return render_template("orgs/users.html", org=org, form=form, role_form=RoleForm(),
                           deactivate_form=DeactivateForm()), 422 if form.errors else 200


def _managed_user(slug: str, user_id: int):
    """The user with this id in the organisation at this address, when the current user is
    an admin of it. Anyone else gets 404, as on the users page: a plain member's refused
    action must not look like a form error, and another organisation's users do not exist."""
    if not current_user.is_org_admin or current_user.organisation.slug != slug:
        abort(404)
    return services.get_org_user(current_user, user_id)


@bp.route(f"/organisations/<slug>/users/<{ID}:user_id>/role", methods=["POST"])
@member_required
def change_role(slug, user_id):
    form = RoleForm()
    user = _managed_user(slug, user_id)
    if not form.validate_on_submit():
        abort(400)
    run_and_flash(lambda: services.change_role(current_user, user, form.role.data),
                  lambda _: f"{user.name} is now "
                            f"{'an organisation admin' if user.is_org_admin else 'a member'}.")
    return redirect(url_for("orgs.users", slug=slug))


@bp.route(f"/organisations/<slug>/users/<{ID}:user_id>/deactivate", methods=["POST"])
@member_required
def deactivate(slug, user_id):
    form = DeactivateForm()
    user = _managed_user(slug, user_id)
    if not form.validate_on_submit():
        abort(400)
    run_and_flash(lambda: services.deactivate_user(current_user, user, form.reason.data or ""),
                  f"{user.name} is deactivated and signed out everywhere.")
    return redirect(url_for("orgs.users", slug=slug))


@bp.route("/admin/organisations")
@admin_required
def vetting():
    return render_template("orgs/vetting.html", pending=services.pending_organisations(),
                           recent=services.recently_vetted(), form=VetForm())


@bp.route(f"/admin/organisations/<{ID}:org_id>/vet", methods=["POST"])
@admin_required
def vet(org_id):
    org = db.session.get(Organisation, org_id) or abort(404)
    form = VetForm()
    if not form.validate_on_submit():
        flash("Choose approve or reject.", "error")
        return redirect(url_for("orgs.vetting"))
    run_and_flash(lambda: services.vet_organisation(
        current_user, org, approve=form.decision.data == "approve", reason=form.reason.data or ""),
        lambda _: f"{org.name} is {org.status}; its administrators have been mailed.",
        prefix=f"{org.name}: ")
    # The dashboard's inbox approves with one click and sends back=dashboard.
    back = "dashboard.index" if request.form.get("back") == "dashboard" else "orgs.vetting"
    return redirect(url_for(back))


# Under /auth/ where the invitation mails have always pointed.
@bp.route("/auth/invite/<token>", methods=["GET", "POST"])
def accept_invite(token):
    try:
        invitation = services.read_invitation(token)
    except DomainError as exc:
        status = exc.status_code if exc.status_code != 422 else 400
        return render_template("auth/message.html", title="Invitation not valid",
                               message=exc.message), status
    form = AcceptInviteForm()
    if form.validate_on_submit():
        try:
            with unit_of_work():
                user = services.accept_invitation(token, name=form.name.data,
                                                   password=form.password.data)
                sign_in(user)
        except DomainError as exc:
            flash_error(exc, form)
        else:
            flash(f"Welcome to {user.organisation.name}.", "success")
            return redirect(url_for("dashboard.index"))
    return render_template("orgs/accept_invite.html", form=form, invitation=invitation), \
        422 if form.errors else 200
