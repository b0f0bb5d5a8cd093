"""The dashboards: the home page ("/", the landing page for visitors), per role, with charts.
Each chart is a table in the page and a JSON data endpoint that static/js/charts.js draws."""
from datetime import datetime, timedelta

from flask import Blueprint, abort, jsonify, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required

from alliance.alliances.forms import ConfirmForm, DecisionForm
from alliance.alliances.inbox import coordinator_inbox, invitations_to
from alliance.alliances.services import coordinated_alliances, memberships_of_org
from alliance.auth.access import admin_required
from alliance.core.models import utcnow
from alliance.dashboard import health, services
from alliance.dashboard.charts import WINDOWS, window
from alliance.orgs.forms import VetForm
from alliance.orgs.services import pending_organisations
from alliance.sharing.policy import Principal

bp = Blueprint("dashboard", __name__)

# Where "new since your last visit" starts for someone whose session has not been here yet,
# and the pause between two page views that ends a visit.
FIRST_VISIT = timedelta(days=7)
VISIT_GAP = timedelta(minutes=30)
SINCE_KEY, LAST_KEY = "dashboard_since", "dashboard_last_seen"


def _window():
    return window(request.args.get("days"), utcnow())


def _session_time(key: str, now: datetime) -> datetime | None:
    try:
        value = datetime.fromisoformat(session.get(key) or "")
    except (TypeError, ValueError):
        return None
    return value if value.tzinfo is not None and value <= now else None


def _last_visit(now: datetime) -> datetime:
    """When this session's previous visit to the dashboard ended (a week ago on its first).
    Views less than VISIT_GAP apart are one visit: reloading the page, or coming back from a
    note, keeps what was new at the start of the visit."""
    since, last = _session_time(SINCE_KEY, now), _session_time(LAST_KEY, now)
    if last is None:
        since = now - FIRST_VISIT
    elif since is None or now - last > VISIT_GAP:
        since = last
    session[SINCE_KEY], session[LAST_KEY] = since.isoformat(), now.isoformat()
    return since


@bp.route("/")
def index():
    if not current_user.is_authenticated:
        return render_template("dashboard/landing.html")
    if not current_user.can_act and not current_user.is_admin:
        return redirect(url_for("core.status"))
    # The inbox first: what waits for this person, with a button to act on each.
    org_id = current_user.organisation_id
    win = _window()
    context = {
        "memberships": memberships_of_org(org_id) if org_id else [],
        "pending_orgs": pending_organisations() if current_user.is_admin else [],
        "inbox": coordinator_inbox(current_user),
        "invitations": invitations_to(org_id) if current_user.can_act
        and current_user.is_org_admin else [],
        "decision_form": DecisionForm(), "confirm_form": ConfirmForm(), "vet_form": VetForm(),
        "window": win, "windows": WINDOWS, "charts": [], "new": None,
    }
    context["dashboard_coordinates"] = bool(context["inbox"].alliances)
    if current_user.can_act:
        since = _last_visit(win.now)
        context["charts"] = services.analyst_charts(current_user, win)
        context["new"] = (since, *services.new_since(Principal.of(current_user), since))
    return render_template("dashboard/index.html", **context)


@bp.route("/dashboard/alliances")
@login_required
def alliances():
    """The coordinator's dashboard: the health of the alliances they coordinate."""
    coordinated = coordinated_alliances(current_user)
    if not coordinated:
        abort(404)
    win = _window()
    membership, sections = services.coordinator_charts(current_user, coordinated, win)
    return render_template("dashboard/alliances.html", membership_charts=membership,
                           sections=sections, window=win, windows=WINDOWS,
                           dashboard_coordinates=True)


@bp.route("/dashboard/platform")
@admin_required
def platform():
    """The platform admin's dashboard: registrations, vetting, outbox and deliveries."""
    win = _window()
    vetting, oldest_pending = health.vetting_queue(win.now)
    outbox, oldest_waiting = health.outbox(win.now)
    return render_template("dashboard/platform.html", window=win, windows=WINDOWS,
                           charts=[health.growth(win), vetting, outbox, health.deliveries(win)],
                           oldest_pending=oldest_pending, oldest_waiting=oldest_waiting,
                           dashboard_coordinates=bool(coordinated_alliances(current_user)))


@bp.route("/dashboard/data/<chart>.json")
@login_required
def data(chart):
    """One chart's figures as JSON, for the signed-in user, through the same read rule as the
    page; 404 for a chart that does not exist or that this user does not get."""
    if chart not in services.CHARTS:
        abort(404)
    found = services.chart_data(current_user, chart, _window(), request.args.get("alliance"))
    if found is None:
        abort(404)
    response = jsonify(found.as_json())
    response.headers["Cache-Control"] = "private, no-store"
    return response
