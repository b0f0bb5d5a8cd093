"""The feed's saved searches and its exports (the feed page itself is notes.views.feed). Every
read goes through alliance.sharing.policy: an export walks the feed, a saved search opens it."""
from urllib.parse import parse_qsl

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    request,
    stream_with_context,
    url_for,
)
from flask_login import current_user
from werkzeug.datastructures import MultiDict

from alliance.alliances.services import active_alliances_of
from alliance.auth.access import member_required
from alliance.core.errors import DomainError
from alliance.extensions import client_network, limiter
from alliance.notes import export, listing, saved
from alliance.notes.forms import ExportForm, FeedFilterForm, SavedSearchForm
from alliance.sharing.policy import Principal

bp = Blueprint("feeds", __name__)

# Ids in addresses stay within the database's integer column.
ID = "int(min=1, max=2147483647)"


def _export_key() -> str:
    """Each signed-in user's own allowance; anyone else's counts against their address (they
    are sent to sign in)."""
    if current_user.is_authenticated:
        return f"export-user:{current_user.id}"
    return f"export-ip:{client_network()}"


# The same limit as TAXII's (config TAXII_RATE_LIMIT), shared by the three formats: an export
# is the feed's content in bulk, as a TAXII page is a collection's.
_limited = limiter.shared_limit(lambda: current_app.config["TAXII_RATE_LIMIT"],
                                scope="feed-export", key_func=_export_key)


def _export(fmt: str) -> Response:
    form = ExportForm(request.args, alliances=active_alliances_of(current_user.organisation_id))
    if not form.validate():
        problems = "; ".join(f"{f.label.text}: {' '.join(f.errors)}" for f in form if f.errors)
        return Response(f"A filter is not valid, so nothing is exported. {problems}\n",
                        status=400, mimetype="text/plain")
    found = export.export(Principal.of(current_user), fmt, listing.feed_filters(form),
                          kinds=form.kind.data or ())
    return Response(stream_with_context(found.chunks), mimetype=found.mimetype, headers={
        "Content-Disposition": f'attachment; filename="{found.filename}"',
        "X-TLP": f"TLP:{found.tlp}",
        # What the reader may read now, decided at read time: no cache keeps a copy.
        "Cache-Control": "private, no-store"})


@bp.route("/export/bundle.json")
@member_required
@_limited
def export_bundle():
    return _export("stix")


@bp.route("/export/observables.csv")
@member_required
@_limited
def export_csv():
    return _export("csv")


@bp.route("/export/indicators.txt")
@member_required
@_limited
def export_indicators():
    return _export("list")


@bp.route("/searches", methods=["POST"])
@member_required
def save_search():
    form = SavedSearchForm()
    query = saved.clean_query(form.query.data or "")
    if form.validate_on_submit():
        filters = FeedFilterForm(MultiDict(parse_qsl(query)),
                                 alliances=active_alliances_of(current_user.organisation_id))
        try:
            if not filters.validate():
                raise DomainError("These filters are not valid; correct them first.")
            found, new = saved.save_search(current_user, form.name.data, query)
        except DomainError as exc:
            flash(exc.message, "error")
        else:
            flash(f"Saved “{found.name}”." if new else f"“{found.name}” now has these filters.",
                  "success")
    else:
        flash(" ".join(e for errors in form.errors.values() for e in errors), "error")
    return redirect(url_for("notes.feed") + (f"?{query}" if query else ""))


@bp.route(f"/searches/<{ID}:search_id>")
@member_required
def run_search(search_id):
    found = saved.get_saved_search(current_user, search_id)
    return redirect(url_for("notes.feed") + (f"?{found.query}" if found.query else ""))


@bp.route(f"/searches/<{ID}:search_id>/delete", methods=["POST"])
@member_required
def delete_search(search_id):
    found = saved.delete_saved_search(current_user, search_id)
    flash(f"Deleted the saved search “{found.name}”.", "success")
    return redirect(url_for("notes.feed"))
