"""The audit log: coordinators see their alliances' events, platform admins all of them;
each as a page with filters and as a CSV download under the same read rule."""
from collections.abc import Sequence
from dataclasses import dataclass, field

from flask import Blueprint, Response, redirect, render_template, request, url_for
from flask_login import current_user

from alliance.alliances.services import (
    coordinated_alliances,
    get_alliance,
    list_alliances,
    require_coordinator,
)
from alliance.audit.forms import AuditFilterForm
from alliance.audit.log import (
    ACTION_LABELS,
    ALLIANCE_ACTIONS,
    EventFilter,
    describe_event,
    event_actors,
    events_csv,
    list_events,
)
from alliance.auth.access import admin_required, member_required
from alliance.core.errors import NotAllowed
from alliance.core.models import utcnow
from alliance.sharing.policy import Principal

bp = Blueprint("audit", __name__)
bp.add_app_template_filter(describe_event, "audit_sentence")

# The largest id the database's integer column holds (PostgreSQL's is 32-bit).
_MAX_ID = 2147483647
PAGE_SIZE = 200
# A CSV export holds at most this many events, newest first (the page says so).
CSV_LIMIT = 50000


def _before() -> int | None:
    """The ?before= page cursor: an event id, or None (newest first) when it is missing, not a
    number, or outside the column's range (which would overflow the query: a 500)."""
    value = request.args.get("before", type=int)
    return value if value is not None and 0 < value <= _MAX_ID else None


@dataclass
class _Log:
    """One view of the log: which events its reader may see (list_events' alliance= or
    alliance_ids=), the alliances its alliance filter offers (none: no such filter), and the
    endpoint of the page and its CSV."""

    endpoint: str
    scope: dict
    alliances: Sequence = field(default_factory=list)
    alliance: object = None
    endpoint_args: dict = field(default_factory=dict)


def _filtered(log: _Log, *, limit: int, before: int | None):
    """The filter form read from the query string, and the events it selects under the
    log's read rule (none while a filter is invalid: its error is shown beside it)."""
    reader = Principal.of(current_user)
    form = AuditFilterForm(request.args)
    if log.alliances:
        form.alliance.choices = [("", "Every alliance")] + [(a.slug, a.name)
                                                            for a in log.alliances]
    else:
        del form.alliance
    form.actor.choices = [("", "Anyone")] + [
        (str(u.id), f"{u.name} ({u.organisation.name})" if u.organisation else u.name)
        for u in event_actors(**log.scope, reader=reader)]
    actions = [(a, label) for a, label in ACTION_LABELS.items()
               if not log.scope or a in ALLIANCE_ACTIONS]
    form.action.choices = [("", "Anything")] + sorted(actions, key=lambda item: item[1])
    if not form.validate():
        return form, []
    scope = dict(log.scope)
    if log.alliances and form.alliance.data:
        scope["alliance"] = next(a for a in log.alliances if a.slug == form.alliance.data)
    filters = EventFilter(actor_id=int(form.actor.data) if form.actor.data else None,
                          action=form.action.data or None, since=form.since.data,
                          until=form.until.data)
    events = list_events(**scope, reader=reader, limit=limit, before_id=before,
                         filters=filters)
    return form, events


FILTERS = ("alliance", "actor", "action", "since", "until")


def _filter_args() -> dict:
    """The filters of the query string (nothing else: not the page cursor, and no name
    url_for would read as its own, such as _external): what the CSV link and pager keep."""
    return {k: request.args[k] for k in FILTERS if request.args.get(k)}


def _page(log: _Log):
    form, events = _filtered(log, limit=PAGE_SIZE, before=_before())
    args = _filter_args()
    older = (url_for(log.endpoint, **log.endpoint_args, **args, before=events[-1].id)
             if len(events) >= PAGE_SIZE else None)
    return render_template(
        "audit/log.html", events=events, alliance=log.alliance, form=form,
        filtered=form.active or bool(form.errors), older_url=older,
        newest_url=url_for(log.endpoint, **log.endpoint_args, **args),
        clear_url=url_for(log.endpoint, **log.endpoint_args),
        csv_url=url_for(log.endpoint + "_csv", **log.endpoint_args, **args),
        csv_limit=CSV_LIMIT, mine=log.endpoint == "audit.coordinator_log")


def _csv(log: _Log, name: str):
    form, events = _filtered(log, limit=CSV_LIMIT, before=None)
    if form.errors:  # the page shows what is wrong with the filters, beside them
        return redirect(url_for(log.endpoint, **log.endpoint_args, **_filter_args()))
    filename = f"audit-{name}-{utcnow():%Y%m%d-%H%M%S}.csv"
    return Response(events_csv(events), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"',
                             "Cache-Control": "no-store"})


def _alliance_log(slug) -> _Log:
    alliance = get_alliance(slug)
    require_coordinator(current_user, alliance)
    return _Log("audit.alliance_log", {"alliance": alliance}, alliance=alliance,
                endpoint_args={"slug": slug})


def _coordinator_log() -> _Log:
    alliances = coordinated_alliances(current_user)
    if not alliances:
        raise NotAllowed("The audit log is for the coordinators of an alliance.")
    return _Log("audit.coordinator_log", {"alliance_ids": [a.id for a in alliances]},
                alliances=alliances)


def _platform_log() -> _Log:
    return _Log("audit.platform_log", {}, alliances=[a for a, _ in list_alliances()])


@bp.route("/alliances/<slug>/audit")
@member_required
def alliance_log(slug):
    return _page(_alliance_log(slug))


@bp.route("/alliances/<slug>/audit.csv")
@member_required
def alliance_log_csv(slug):
    return _csv(_alliance_log(slug), slug)


@bp.route("/audit")
@member_required
def coordinator_log():
    """Every alliance the user coordinates, in one log (a platform admin who coordinates
    none is sent to the platform log)."""
    if current_user.is_admin and not coordinated_alliances(current_user):
        return redirect(url_for("audit.platform_log"))
    return _page(_coordinator_log())


@bp.route("/audit.csv")
@member_required
def coordinator_log_csv():
    return _csv(_coordinator_log(), "my-alliances")


@bp.route("/admin/audit")
@admin_required
def platform_log():
    return _page(_platform_log())


@bp.route("/admin/audit.csv")
@admin_required
def platform_log_csv():
    return _csv(_platform_log(), "platform")
