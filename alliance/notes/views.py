"""Notes: feed and search, compose and upload, the note page, retraction, responses, the
public Insights page and Atom feed. Every read goes through alliance.sharing.policy."""
import json
import re
from datetime import UTC, datetime

import orjson
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user

from alliance.alliances.services import active_alliances_of
from alliance.auth.access import member_required
from alliance.core.errors import DomainError
from alliance.core.views import flash_error
from alliance.notes import (
    cards,
    comments,
    editing,
    graph,
    listing,
    ranges,
    reading,
    saved,
    submissions,
    summary,
    tombstones,
    warninglists,
)
from alliance.notes.compose_views import already_posted, sending_of
from alliance.notes.forms import (
    OBSERVABLE_KINDS,
    CommentForm,
    EditNoteForm,
    FeedFilterForm,
    RetractForm,
    SavedSearchForm,
)
from alliance.sharing.policy import (
    Principal,
    can_moderate,
    get_readable_note,
    get_readable_note_or_404,
)
from alliance.stix import attack

bp = Blueprint("notes", __name__)

RAW_JSON_MAX_OBJECTS = 300
# The observables table's rows on the note page (all of them with ?observables=all): each is
# correlated across the platform, so a note of 1,000 values shows the first 100 at once.
OBSERVABLES_SHOWN = 100
# The version history's rows on the note page, newest first.
HISTORY_SHOWN = 100


def _cursor(raw: str | None):
    if raw is None:
        return None
    try:
        stamp, number = raw.split("_", 1)
        created, note_id = datetime.fromtimestamp(int(stamp) / 1_000_000, tz=UTC), int(number)
    except (ValueError, OverflowError, OSError):
        return None
    # Outside an id column's range, the query itself would overflow (a 500).
    return (created, note_id) if 0 < note_id <= 2_147_483_647 else None


def _cursor_text(cursor) -> str | None:
    if cursor is None:
        return None
    created, note_id = cursor
    return f"{int(created.timestamp() * 1_000_000)}_{note_id}"


@bp.route("/")
@member_required
def feed():
    principal = Principal.of(current_user)
    form = FeedFilterForm(request.args, alliances=active_alliances_of(current_user.organisation_id))
    # The filters only, blank ones left out: for the next page, the exports, a saved search.
    filters = listing.filter_args(request.args)
    page = {"form": form, "filters": filters, "saved": saved.saved_searches(current_user),
            "save_form": SavedSearchForm(query=listing.filter_query(request.args)),
            "kinds": OBSERVABLE_KINDS}
    if not form.validate():
        # On the feed itself, beside the filter at fault, with every filter as sent: fixing
        # one is an edit, not a fresh start from an error page. 400: no note list answers it.
        return render_template("notes/feed.html", **page, notes=[], facts={}, seen_value=None,
                               seen_in=[], next_url=None, invalid=True), 400
    notes, cursor = reading.feed(principal, **listing.feed_filters(form),
                                  before=_cursor(request.args.get("before")),
                                  scan=reading.FEED_SCAN)
    value, seen_in = reading.who_has_seen(principal, form.q.data or "")
    # A short page that goes on: the walk passed FEED_SCAN notes (reading.feed's `scan`);
    # the page says how far back it looked and offers to look further.
    searched_to = cursor[0] if cursor and len(notes) < reading.FEED_PAGE else None
    return render_template("notes/feed.html", **page, notes=notes,
                           facts=listing.page_facts(principal, notes), seen_value=value,
                           seen_in=seen_in, searched_to=searched_to, next_url=url_for(
                               "notes.feed", **filters, before=_cursor_text(cursor))
                           if cursor else None)


UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _report_id(uuid: str) -> str:
    """The report id for a note address; anything that is not a UUID is a 404 before any
    query (PostgreSQL refuses some bytes, e.g. NUL, in text)."""
    if not UUID_RE.match(uuid or ""):
        abort(404)
    return f"report--{uuid}"


def _note_or_404(uuid: str):
    """The note, if the reader may read it; its tombstone (410) if it is retracted and they
    could read it before; otherwise the same 404 as for a note that never existed."""
    principal, report_id = Principal.of(current_user), _report_id(uuid)
    note = get_readable_note(principal, report_id)
    if note is None:
        tombstones.abort_if_former_reader(principal, report_id)
        abort(404)
    return note


@bp.route("/<uuid>")
@member_required
def show(uuid):
    return _note_page(_note_or_404(uuid))


def _note_page(note, comment_form=None):
    """The note page; `comment_form`: a response form sent with errors, shown beside it."""
    principal = Principal.of(current_user)
    objects = reading.note_objects(note)
    by_range = ranges.related_by_range(principal, note)
    related = _related(principal, note, by_range)
    everything = request.args.get("observables") == "all"
    return render_template(
        "notes/show.html", note=note, objects=objects,
        cards=cards.page_of(objects, request.args.get("objects")),
        cards_asked="objects" in request.args, HISTORY_SHOWN=HISTORY_SHOWN,
        flags=warninglists.flags_of(note, objects),
        techniques={t.id: t for t in attack.techniques(
            i for o in objects for i in attack.technique_ids(o.body))},
        observables=summary.observable_table(
            principal, note, None if everything else OBSERVABLES_SHOWN, by_range),
        cves=summary.cves(objects),
        graph=graph.note_graph(note, objects, related),
        comments=comments.comments_of(note),
        related=related,
        history=reading.history(principal, note),
        can_moderate=can_moderate(current_user, note),
        can_edit=editing.can_edit(current_user, note),
        retract_form=RetractForm(), comment_form=comment_form or CommentForm(),
        # The raw view of a very large note (an ATT&CK bundle) would make a 10 MB page.
        raw=_pretty_json(reading.note_bundle(note, objects))
        if len(objects) <= RAW_JSON_MAX_OBJECTS else None)


def _pretty_json(value) -> str:
    """Indented JSON with sorted keys for the note page's raw view. orjson: json.dumps with
    `indent` runs the pure-Python encoder, many times slower on a note of many objects. The
    same text but for non-ASCII characters, shown as themselves (the template escapes it);
    json.dumps for what orjson refuses (an integer wider than 64 bits in a custom property)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, indent=2, sort_keys=True)


@bp.route("/<uuid>/graph.json")
@member_required
def graph_data(uuid):
    """The note page's graph (static/js/graph.js draws it): the same 404 as the note."""
    note = _note_or_404(uuid)
    principal = Principal.of(current_user)
    return graph.note_graph(note, reading.note_objects(note), _related(
        principal, note, ranges.related_by_range(principal, note)))


def _related(principal, note, by_range):
    """The readable notes sharing a value with this one, or an address inside or around
    one of its networks (`by_range`: ranges.related_by_range), newest first."""
    return ranges.correlated(principal, note, reading.correlated(principal, note), by_range)


@bp.route("/<uuid>/bundle.json")
@member_required
def download(uuid):
    note = _note_or_404(uuid)
    body = json.dumps(reading.note_bundle(note), indent=2, sort_keys=True)
    return Response(body, mimetype="application/stix+json;version=2.1", headers={
        "Content-Disposition": f'attachment; filename="{note.uuid}.json"'})


@bp.route("/<uuid>/edit", methods=["GET", "POST"])
@member_required
def edit(uuid):
    note = _note_or_404(uuid)
    if not editing.can_edit(current_user, note):
        abort(403)
    form = EditNoteForm(obj=note)
    if form.validate_on_submit():
        try:
            editing.edit_note(current_user, note, title=form.title.data,
                               description=form.description.data or "")
        except DomainError as exc:
            flash_error(exc, form)
        else:
            flash(f"Saved as version {note.version}; earlier versions stay in the history.",
                  "success")
            return redirect(url_for("notes.show", uuid=uuid))
    return render_template("notes/edit.html", note=note, form=form), 422 if form.errors else 200


@bp.route("/<uuid>/retract", methods=["POST"])
@member_required
def retract(uuid):
    note = _note_or_404(uuid)
    form = RetractForm()
    if not form.validate_on_submit():
        flash("Say why the note is retracted.", "error")
        return redirect(url_for("notes.show", uuid=uuid))
    try:
        editing.retract_note(current_user, note, form.reason.data)
    except DomainError as exc:
        if exc.status_code in (403, 404):
            abort(exc.status_code)
        flash(exc.message, "error")
    else:
        flash("The note is retracted; only your organisation and the coordinators see it now.",
              "success")
    return redirect(url_for("notes.show", uuid=uuid))


@bp.route("/<uuid>/responses", methods=["POST"])
@member_required
def respond(uuid):
    note = _note_or_404(uuid)
    form = CommentForm()
    if form.validate_on_submit():
        try:
            comments.add_comment(current_user, note, form.kind.data, form.text.data or "",
                                 form.opinion.data or None, submission=sending_of(form))
        except submissions.AlreadyPosted as exc:
            return already_posted(exc, note)
        except DomainError as exc:
            if exc.status_code in (403, 404):
                abort(exc.status_code)
            if exc.field and exc.field in form:
                flash_error(exc, form)
            else:
                form.form_errors.append(exc.message)
        else:
            return redirect(url_for("notes.show", uuid=uuid) + "#responses")
    # The page again, with what was typed and the error beside the response form: the form's
    # action carries #response-form, which the browser keeps and scrolls to (a flash at the
    # top of the page sat some 8,600 px above where it landed).
    return _note_page(note, comment_form=form), 422


# --- public Insights ---------------------------------------------------------------------

public_bp = Blueprint("insights", __name__)


@public_bp.route("/insights/")
def insights():
    notes, _ = reading.feed(Principal.anonymous(), limit=50)
    return render_template("notes/insights.html", notes=notes)


@public_bp.route("/insights/<uuid>")
def insight(uuid):
    note = get_readable_note_or_404(Principal.anonymous(), _report_id(uuid))
    return render_template("notes/insight.html", note=note)


@public_bp.route("/insights/feed.atom")
def atom():
    notes, _ = reading.feed(Principal.anonymous(), limit=50)
    body = render_template("notes/insights.atom", notes=notes,
                           base_url=current_app.config["BASE_URL"].rstrip("/"),
                           updated=reading.feed_updated(notes))
    response = Response(body, mimetype="application/atom+xml")
    # Feed readers poll: the same feed answers If-None-Match with a 304 (RFC 9110 13.1.2).
    response.add_etag()
    return response.make_conditional(request)
