"""The audit log: coordinators see their alliance's events, platform admins all of them."""
from flask import Blueprint, render_template, request
from flask_login import current_user

from alliance.alliances.services import get_alliance, require_coordinator
from alliance.audit.services import list_events
from alliance.auth.access import admin_required, member_required
from alliance.sharing.policy import Principal

bp = Blueprint("audit", __name__)

# The largest id the database's integer column holds (PostgreSQL's is 32-bit).
_MAX_ID = 2147483647


def _before() -> int | None:
    """The ?before= page cursor: an event id, or None (newest first) when it is missing, not a
    number, or outside the column's range (which would overflow the query: a 500)."""
    value = request.args.get("before", type=int)
    return value if value is not None and 0 < value <= _MAX_ID else None


@bp.route("/alliances/<slug>/audit")
@member_required
def alliance_log(slug):
    alliance = get_alliance(slug)
    require_coordinator(current_user, alliance)
    events = list_events(alliance=alliance, before_id=_before(),
                         reader=Principal.of(current_user))
    return render_template("audit/log.html", events=events, alliance=alliance)


@bp.route("/admin/audit")
@admin_required
def platform_log():
    events = list_events(before_id=_before(), reader=Principal.of(current_user))
    return render_template("audit/log.html", events=events, alliance=None)
