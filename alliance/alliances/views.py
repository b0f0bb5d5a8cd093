"""Alliance directory, pages, settings, membership and coordinators."""
from flask import (
    Blueprint,
    abort,
    flash,
    has_request_context,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user

from alliance.alliances import coordinators, services, transitions
from alliance.alliances.forms import (
    AcceptInvitationForm,
    AllianceSettingsForm,
    ConfirmForm,
    CoordinatorForm,
    DecisionForm,
    InviteOrganisationForm,
    JoinForm,
    NewAllianceForm,
)
from alliance.auth.access import member_required
from alliance.auth.models import User
from alliance.core.errors import DomainError
from alliance.core.views import flash_error, run_and_flash
from alliance.extensions import db
from alliance.orgs.models import Organisation

bp = Blueprint("alliances", __name__)

# Ids in addresses stay within the database's integer column (PostgreSQL's is 32-bit); a
# larger number is a 404 from the router instead of an overflow (a 500) in the query.
ID = "int(min=1, max=2147483647)"


@bp.route("/")
@member_required
def directory():
    return render_template("alliances/directory.html", alliances=services.list_alliances())


@bp.route("/new", methods=["GET", "POST"])
@member_required
def create():
    if not current_user.is_org_admin:
        abort(403)
    form = NewAllianceForm(data={"allowed_tlps": ["CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED"],
                                 "default_tlp": "AMBER", "join_policy": "approval"}
                           if request.method == "GET" else None)
    if form.validate_on_submit():
        try:
            alliance = services.create_alliance(current_user, slug=form.slug.data,
                                                **_settings_from(form))
        except DomainError as exc:
            flash_error(exc, form)
        else:
            flash(f"{alliance.name} is created; you are its first coordinator.", "success")
            return redirect(url_for("alliances.detail", slug=alliance.slug))
    return render_template("alliances/new.html", form=form), 422 if form.errors else 200


def _settings_from(form) -> dict:
    return {name: form[name].data for name in services.SETTINGS_FIELDS}


@bp.route("/<slug>")
@member_required
def detail(slug):
    alliance = services.get_alliance(slug)
    membership = services.membership_of(current_user.organisation_id, alliance)
    return render_template(
        "alliances/detail.html", alliance=alliance, membership=membership,
        coordinators=services.coordinators_of(alliance),
        is_coordinator=services.is_coordinator(current_user, alliance),
        members=services.memberships_of(alliance)
        if services.can_see_members(current_user, alliance) else None,
        join_form=JoinForm(), accept_form=AcceptInvitationForm(), confirm_form=ConfirmForm())


@bp.route("/<slug>/settings", methods=["GET", "POST"])
@member_required
def settings(slug):
    alliance = services.get_alliance(slug)
    services.require_coordinator(current_user, alliance)
    form = AllianceSettingsForm(obj=alliance)
    if form.validate_on_submit():
        try:
            changed = services.update_settings(current_user, alliance, **_settings_from(form))
        except DomainError as exc:
            flash_error(exc, form)
        else:
            flash(f"The settings of {alliance.name} were saved: "
                  f"{', '.join(c.replace('_', ' ') for c in changed)} changed." if changed
                  else f"Nothing changed in the settings of {alliance.name}.", "success")
            return redirect(url_for("alliances.detail", slug=alliance.slug))
    return render_template("alliances/settings.html", alliance=alliance, form=form), \
        422 if form.errors else 200


def _back(endpoint: str, **values) -> str:
    """Where a POST button returns to: the dashboard when it was pressed there (its inbox
    sends back=dashboard), else the given page. Only these two: no open redirect."""
    if request.form.get("back") == "dashboard":
        return url_for("dashboard.index")
    return url_for(endpoint, **values)


def _act(slug, do, success):
    """Run a state-changing service for a POST button on the alliance page. `do` may return
    a better success message than the default; success may be a function of the alliance."""
    alliance = services.get_alliance(slug)
    default = success(alliance) if callable(success) else success
    run_and_flash(lambda: do(alliance), lambda message: message or default)
    return redirect(_back("alliances.detail", slug=slug))


@bp.route("/<slug>/join", methods=["POST"])
@member_required
def join(slug):
    form = JoinForm()
    if not form.validate_on_submit():
        abort(400)

    def do(alliance):
        m = transitions.request_to_join(current_user, alliance, message=form.message.data or "",
                                     accept_charter=form.accept_charter.data)
        return f"Your organisation joined {alliance.name}." if m.is_active else None
    return _act(slug, do, lambda a: f"Your request to join {a.name} was sent; its "
                                    "coordinators will decide.")


@bp.route("/<slug>/accept", methods=["POST"])
@member_required
def accept(slug):
    form = AcceptInvitationForm()
    if not form.validate_on_submit():
        abort(400)
    return _act(slug, lambda a: transitions.accept_invitation(
        current_user, a, accept_charter=form.accept_charter.data) and None,
        lambda a: f"The invitation was accepted: {current_user.organisation.name} is now a "
                  f"member of {a.name}.")


@bp.route("/<slug>/decline", methods=["POST"])
@member_required
def decline(slug):
    if not ConfirmForm().validate_on_submit():
        abort(400)
    return _act(slug, lambda a: transitions.decline_invitation(current_user, a) and None,
                lambda a: f"The invitation to join {a.name} was declined.")


@bp.route("/<slug>/leave", methods=["POST"])
@member_required
def leave(slug):
    if not ConfirmForm().validate_on_submit():
        abort(400)
    return _act(slug, lambda a: transitions.leave(current_user, a) and None,
                lambda a: f"{current_user.organisation.name} left {a.name}.")


@bp.route("/<slug>/members")
@member_required
def members(slug):
    alliance = services.get_alliance(slug)
    services.require_coordinator(current_user, alliance)
    invite_form = InviteOrganisationForm()
    invite_form.organisation_id.choices = [
        (o.id, o.name) for o in transitions.invitable_organisations(alliance)]
    return render_template("alliances/members.html", alliance=alliance,
                           members=services.memberships_of(alliance),
                           coordinators=services.coordinators_of(alliance),
                           decision_form=DecisionForm(), invite_form=invite_form,
                           coordinator_form=_coordinator_form(alliance),
                           confirm_form=ConfirmForm())


def _coordinator_form(alliance) -> CoordinatorForm:
    form = CoordinatorForm()
    form.user_id.choices = [(u.id, f"{u.name} ({u.organisation.name})")
                            for u in coordinators.coordinator_candidates(alliance)]
    return form


@bp.route(f"/<slug>/memberships/<{ID}:membership_id>/<action>", methods=["POST"])
@member_required
def decide(slug, membership_id, action):
    if action not in transitions.DECISION_ACTIONS:
        abort(404)
    form = DecisionForm()
    if not form.validate_on_submit():
        abort(400)
    alliance = services.get_alliance(slug)
    services.require_coordinator(current_user, alliance)
    membership = services.get_membership(alliance, membership_id)
    name = membership.organisation.name
    run_and_flash(lambda: transitions.decide(current_user, alliance, membership, action,
                                          form.reason.data or ""),
                  DECIDED[action].format(org=name, alliance=alliance.name), prefix=f"{name}: ")
    return redirect(_back("alliances.members", slug=slug))


# What a decision did, for its flash message.
DECIDED = {
    "approve": "The request from {org} was approved: {org} is now a member of {alliance}.",
    "reject": "The request from {org} was rejected; its administrators were mailed the reason.",
    "suspend": "{org} was suspended from {alliance}; its administrators were mailed the reason.",
    "reinstate": "{org} was reinstated in {alliance}.",
    "remove": "{org} was removed from {alliance}; its administrators were mailed the reason.",
}


@bp.route(f"/<slug>/memberships/<{ID}:membership_id>/remind", methods=["POST"])
@member_required
def remind(slug, membership_id):
    if not ConfirmForm().validate_on_submit():
        abort(400)
    alliance = services.get_alliance(slug)
    services.require_coordinator(current_user, alliance)
    membership = services.get_membership(alliance, membership_id)
    name = membership.organisation.name
    run_and_flash(lambda: transitions.remind_invitation(current_user, alliance, membership),
                  f"{name} was reminded of the invitation to join {alliance.name}; its "
                  "administrators have been mailed again.", prefix=f"{name}: ")
    return redirect(_back("alliances.members", slug=slug))


@bp.route("/<slug>/invite", methods=["POST"])
@member_required
def invite(slug):
    alliance = services.get_alliance(slug)
    services.require_coordinator(current_user, alliance)
    form = InviteOrganisationForm()
    form.organisation_id.choices = [(o.id, o.name)
                                    for o in transitions.invitable_organisations(alliance)]
    if not form.validate_on_submit():
        flash("Choose an organisation to invite.", "error")
        return redirect(url_for("alliances.members", slug=slug))
    org = db.session.get(Organisation, form.organisation_id.data) or abort(404)
    run_and_flash(lambda: transitions.invite_organisation(current_user, alliance, org),
                  f"{org.name} was invited to join {alliance.name}; its administrators have "
                  "been mailed.")
    return redirect(url_for("alliances.members", slug=slug))


@bp.route("/<slug>/coordinators", methods=["POST"])
@member_required
def add_coordinator(slug):
    alliance = services.get_alliance(slug)
    services.require_coordinator(current_user, alliance)
    form = _coordinator_form(alliance)
    if not form.validate_on_submit():
        flash("Choose an active user of a member organisation.", "error")
        return redirect(url_for("alliances.members", slug=slug))
    run_and_flash(lambda: coordinators.appoint_coordinator(current_user, alliance, form.user_id.data),
                  lambda user: f"{user.name} of {user.organisation.name} is now a "
                               f"coordinator of {alliance.name}.")
    return redirect(url_for("alliances.members", slug=slug))


@bp.route(f"/<slug>/coordinators/<{ID}:user_id>/remove", methods=["POST"])
@member_required
def remove_coordinator(slug, user_id):
    if not ConfirmForm().validate_on_submit():
        abort(400)
    alliance = services.get_alliance(slug)
    services.require_coordinator(current_user, alliance)
    user = db.session.get(User, user_id)
    name = user.name if user is not None else "The coordinator"
    run_and_flash(lambda: coordinators.remove_coordinator(current_user, alliance, user_id),
                  f"{name} is no longer a coordinator of {alliance.name}.")
    return redirect(url_for("alliances.members", slug=slug))


@bp.app_context_processor
def navigation():
    """The alliances of the signed-in user's organisation, for the navigation of every page."""
    if not has_request_context():  # mails rendered in a worker have no signed-in user
        return {}
    if not current_user.is_authenticated or not current_user.can_act:
        return {"nav_alliances": []}
    return {"nav_alliances": services.active_alliances_of(current_user.organisation_id)}
