"""Notes: feed and search, compose and upload, the note page, retraction, responses, the
public Insights page and Atom feed. Every read goes through alliance.sharing.policy."""
import hashlib
import json
import re
from datetime import UTC, date, datetime, time, timedelta

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
from alliance.extensions import db
from alliance.notes import compose, services, tombstones, warninglists
from alliance.notes.forms import (
    AnalysisForm,
    CommentForm,
    EditNoteForm,
    FeedFilterForm,
    IncidentForm,
    IndicatorsForm,
    RetractForm,
    UploadForm,
)
from alliance.sharing.policy import (
    Principal,
    can_moderate,
    get_readable_note,
    get_readable_note_or_404,
)
from alliance.stix import attack
from alliance.stix.markings import created_by_others, looser_than
from alliance.stix.validation import BundleRejected, parse_bundle

bp = Blueprint("notes", __name__)

RAW_JSON_MAX_OBJECTS = 300
FORMS = {"incident": IncidentForm, "indicators": IndicatorsForm, "analysis": AnalysisForm}
TITLES = {"incident": "Incident report", "indicators": "Indicator set",
          "analysis": "Policy analysis", "bundle": "Upload a STIX bundle"}


def _cursor(raw: str | None):
    try:
        stamp, note_id = raw.split("_", 1)
        created, note_id = datetime.fromtimestamp(int(stamp) / 1_000_000, tz=UTC), int(note_id)
    except (AttributeError, ValueError, OverflowError, OSError):
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
    if not form.validate():
        # On the feed itself, beside the filter at fault, with every filter as sent: fixing
        # one is an edit, not a fresh start from an error page. 400: no note list answers it.
        return render_template("notes/feed.html", form=form, notes=[], seen_value=None,
                               seen_in=[], next_url=None, invalid=True), 400
    since, until = form.since.data, form.until.data
    notes, cursor = services.feed(
        principal, alliance_id=int(form.alliance.data) if form.alliance.data else None,
        tlp=form.tlp.data or None, stix_type=(form.type.data or "").strip().lower() or None,
        sector=form.sector.data or None, country=form.country.data or None,
        policy_tag=form.tag.data or None, query=form.q.data or None,
        since=datetime.combine(since, time.min, UTC) if since else None,
        # Up to the end of that day; the last day there is has no end to put.
        until=datetime.combine(until, time.min, UTC) + timedelta(days=1)
        if until and until < date.max else None,
        before=_cursor(request.args.get("before")))
    value, seen_in = services.who_has_seen(principal, form.q.data or "")
    # The filters only: any other name (url_for's own "endpoint", "_external", ...) is dropped.
    args = {k: v for k, v in request.args.items() if k in form and k != "before"}
    return render_template("notes/feed.html", form=form, notes=notes, seen_value=value,
                           seen_in=seen_in, next_url=url_for("notes.feed", **args,
                                                             before=_cursor_text(cursor))
                           if cursor else None)


def _sending(form) -> services.Sending | None:
    """The form's token (new on each page showing it) with a digest of what was sent in it,
    the upload included, and the digest alone: the same form sent twice with the same
    content posts once, while one sent again changed (back, edit, send) is a new post.
    None without a token."""
    token = form.submission.data
    if not token:
        return None
    digest = hashlib.sha256(orjson.dumps(request.path))
    for name, value in sorted(request.form.items(multi=True)):
        if name not in ("csrf_token", "submission"):
            digest.update(orjson.dumps([name, value]))
    for name, upload in sorted(request.files.items(multi=True), key=lambda item: item[0]):
        digest.update(orjson.dumps([name, upload.filename or ""]))
        stream = upload.stream
        stream.seek(0)
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
        stream.seek(0)
    content = digest.hexdigest()
    return services.Sending(key=hashlib.sha256(orjson.dumps([token, content])).hexdigest(),
                            content=content)


def _already_posted(exc: services.AlreadyPosted, note=None):
    """Where a form sent twice leads: to what its first sending posted."""
    flash("That form was sent twice; it is posted once, here.", "info")
    note = note or services.submitted_note(current_user, exc.note_id)
    if note is None:
        return redirect(url_for("notes.feed"))
    return redirect(url_for("notes.show", uuid=note.uuid)
                    + ("#responses" if exc.comment_id else ""))


def _form(kind: str):
    alliances = services.audience_choices(current_user)
    chosen = request.form.getlist("alliances", type=int)
    recipients = services.recipient_choices(current_user, chosen or [a.id for a in alliances])
    form = FORMS.get(kind, UploadForm)(alliances=alliances, recipients=recipients)
    # Offer only the levels at least one of the user's alliances allows (each alliance's own
    # rule is checked again when posting, for the alliances actually chosen).
    allowed = {level for a in alliances for level in a.allowed_tlps}
    form.tlp.choices = [(v, label) for v, label in form.tlp.choices if v in allowed]
    if request.method == "GET":
        # No audience is chosen for the poster: a form that opened with an alliance ticked
        # shared with it whenever the poster forgot to untick it. Share without one is an
        # error on the field.
        form.alliances.data = []
        form.tlp.data = alliances[0].default_tlp if alliances else "AMBER"
    return form, alliances


def _objects_for(kind: str, form) -> tuple[list[dict], list[str], set[str] | None]:
    """The objects to post, warnings, and their references if parsing gathered them."""
    org, tlp = current_user.organisation, form.tlp.data
    if kind == "incident":
        return compose.incident_report(
            org, tlp, title=form.title.data, description=form.description.data or "",
            details=form.details.data or "", observables_text=form.observables.data or "",
            attack_ids_text=form.attack_ids.data or "", sectors=form.sectors.data or [],
            countries=form.countries.data or []), [], None
    if kind == "indicators":
        def utc(value):
            return value.replace(tzinfo=UTC) if value else None
        return compose.indicator_set(
            org, tlp, observables_text=form.observables.data,
            valid_from=utc(form.valid_from.data), valid_until=utc(form.valid_until.data),
            confidence=form.confidence.data), [], None
    if kind == "analysis":
        return compose.policy_analysis(org, tlp, title=form.title.data,
                                       description=form.description.data or "",
                                       policy_tags=form.policy_tags.data or []), [], None
    source = compose.bundle_source(form, current_user.id)
    raw = source.raw if source else (form.bundle_text.data or "").encode()
    if not raw.strip():
        raise DomainError("Choose a bundle file or paste one.", field="bundle_text")
    parsed = parse_bundle(raw)
    return parsed.objects, parsed.warnings, parsed.refs


def _form_error(exc: DomainError, form) -> None:
    """A domain error on the field it names, else among the form's own errors: either way in
    the summary at the top of the compose form, not in a flash above the page. Once."""
    errors = form[exc.field].errors if exc.field and exc.field in form else form.form_errors
    if exc.message in errors:
        return
    if exc.field and exc.field in form:
        form[exc.field].errors = list(errors) + [exc.message]
    else:
        form.form_errors.append(exc.message)


# Fields the STIX content is built from that stix2 refuses when out of range (a confidence of
# 500): while one of them is refused, the content is not built.
_CONTENT_INPUTS = ("tlp", "valid_from", "valid_until", "confidence", "sectors", "countries",
                   "policy_tags")


def _every_error(kind: str, form, *, content: bool = True) -> list | None:
    """What Share refuses besides what was found already, put on the form so that a refused
    Share (and a preview) lists every error at once: the audience, as post_note checks it,
    and with `content` the form's STIX content (observables, ATT&CK ids, the bundle). Returns
    the bundle's problems, if any. A field refused already is not checked again."""
    if not any(form[name].errors for name in ("tlp", "alliances", "recipients",
                                              "publish_public")):
        try:
            services.check_audience(current_user, form.tlp.data, form.alliances.data or [],
                                    form.recipients.data or [], bool(form.publish_public.data))
        except DomainError as exc:
            _form_error(exc, form)
    if not content or any(name in form and form[name].errors for name in _CONTENT_INPUTS):
        return None
    try:
        _objects_for(kind, form)
    except BundleRejected as exc:
        return exc.problems
    except DomainError as exc:
        _form_error(exc, form)
    return None


def _preview_objects(kind: str, form) -> tuple[list[dict], list[dict], list | None, list]:
    """For the preview: the form's objects built and checked as Share would (observables,
    ATT&CK ids, the bundle), their errors put on the form. For a form that carries STIX
    objects of the poster's (the upload): the objects marked looser than the chosen TLP, those
    created by another identity (served as posted, with their own markings or none), and the
    problems parsing found, if any. Last, for every form: the observables on a warning list
    (warninglists.Flag), which Share asks to confirm."""
    try:
        objects = _objects_for(kind, form)[0]
    except BundleRejected as exc:
        return [], [], exc.problems, []
    except DomainError as exc:
        # No bundle chosen yet is no error here: the preview is of the audience alone.
        if not (kind == "bundle" and exc.field == "bundle_text"):
            _form_error(exc, form)
        return [], [], None, []
    flagged = warninglists.flagged_in(objects) if "confirm_flagged" in form else []
    if "confirm_looser" not in form:
        return [], [], None, flagged
    return (looser_than(objects, form.tlp.data),
            created_by_others(objects, current_user.organisation.stix_id), None, flagged)


@bp.route("/new/<kind>", methods=["GET", "POST"])
@member_required
def compose_note(kind):
    if kind not in TITLES:
        abort(404)
    form, alliances = _form(kind)
    if not alliances:
        return render_template("notes/no_audience.html"), 200
    preview = problems = None
    looser, others, flagged = [], [], []
    status = 200
    if form.validate_on_submit():
        if "preview" in request.form:
            preview = services.audience_preview(current_user, form.alliances.data,
                                                form.tlp.data, form.recipients.data or [])
            looser, others, problems, flagged = _preview_objects(kind, form)
            _every_error(kind, form, content=False)
        else:
            objects = []
            try:
                sending = _sending(form)
                objects, warnings, refs = _objects_for(kind, form)
                note = services.post_note(
                    current_user, title=form.title.data, tlp=form.tlp.data,
                    alliance_ids=form.alliances.data, objects=objects, kind=kind,
                    description=form.description.data or "",
                    recipient_ids=form.recipients.data or [],
                    policy_tags=form.policy_tags.data or [],
                    sectors=getattr(form, "sectors", None) and form.sectors.data or [],
                    countries=getattr(form, "countries", None) and form.countries.data or [],
                    publish_public=form.publish_public.data, warnings=warnings, refs=refs,
                    submission=sending,
                    looser_confirmed="confirm_looser" in form and form.confirm_looser.data,
                    flagged_confirmed="confirm_flagged" not in form
                    or bool(form.confirm_flagged.data))
            except services.AlreadyPosted as exc:
                return _already_posted(exc)
            except BundleRejected as exc:
                db.session.rollback()
                problems, status = exc.problems, exc.status_code
                _every_error(kind, form, content=False)
            except DomainError as exc:
                db.session.rollback()
                _form_error(exc, form)
                status = exc.status_code
                if exc.field == "confirm_looser":
                    looser = looser_than(objects, form.tlp.data)
                if exc.field == "confirm_flagged":
                    flagged = warninglists.flagged_in(objects)
                _every_error(kind, form, content=False)
            else:
                for warning in warnings:
                    flash(f"Note: {warning}.", "info")
                flash("Your note is shared.", "success")
                return redirect(url_for("notes.show", uuid=note.uuid))
    elif request.method == "POST":
        status = 422
        problems = _every_error(kind, form)
    kept, kept_fits = compose.carry_upload(form, current_user.id) \
        if request.method == "POST" and kind == "bundle" else (None, False)
    return render_template("notes/compose.html", form=form, kind=kind, title=TITLES[kind],
                           preview=preview, problems=problems, looser=looser,
                           others=others, kept=kept, kept_fits=kept_fits, flagged=flagged,
                           techniques=_techniques_typed(form)), status


def _techniques_typed(form) -> list:
    """The ATT&CK techniques the form's field names, by name, to echo beside it (ids that are
    not ATT&CK ids are the field's error already)."""
    if "attack_ids" not in form or not form.attack_ids.data:
        return []
    try:
        return attack.techniques(compose.parse_attack_ids(form.attack_ids.data))
    except DomainError:
        return []


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
    objects = services.note_objects(note)
    return render_template(
        "notes/show.html", note=note, objects=objects,
        flags=warninglists.flags_of(note, objects),
        techniques={t.id: t for t in attack.techniques(
            i for o in objects for i in attack.technique_ids(o.body))},
        comments=services.comments_of(note),
        related=services.correlated(Principal.of(current_user), note),
        history=services.history(Principal.of(current_user), note),
        can_moderate=can_moderate(current_user, note),
        can_edit=services.can_edit(current_user, note),
        retract_form=RetractForm(), comment_form=comment_form or CommentForm(),
        # The raw view of a very large note (an ATT&CK bundle) would make a 10 MB page.
        raw=_pretty_json(services.note_bundle(note, objects))
        if len(objects) <= RAW_JSON_MAX_OBJECTS else None)


def _pretty_json(value) -> str:
    """Indented JSON with sorted keys for the note page's raw view. orjson: json.dumps with
    `indent` runs the pure-Python encoder (~1 ms for a 50-object note, 35 times orjson). The
    same text but for non-ASCII characters, shown as themselves (the template escapes it);
    json.dumps for what orjson refuses (an integer wider than 64 bits in a custom property)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, indent=2, sort_keys=True)


@bp.route("/<uuid>/bundle.json")
@member_required
def download(uuid):
    note = _note_or_404(uuid)
    body = json.dumps(services.note_bundle(note), indent=2, sort_keys=True)
    return Response(body, mimetype="application/stix+json;version=2.1", headers={
        "Content-Disposition": f'attachment; filename="{note.uuid}.json"'})


@bp.route("/<uuid>/edit", methods=["GET", "POST"])
@member_required
def edit(uuid):
    note = _note_or_404(uuid)
    if not services.can_edit(current_user, note):
        abort(403)
    form = EditNoteForm(obj=note)
    if form.validate_on_submit():
        try:
            services.edit_note(current_user, note, title=form.title.data,
                               description=form.description.data or "")
        except DomainError as exc:
            db.session.rollback()
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
        services.retract_note(current_user, note, form.reason.data)
    except DomainError as exc:
        db.session.rollback()
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
            services.add_comment(current_user, note, form.kind.data, form.text.data or "",
                                 form.opinion.data or None, submission=_sending(form))
        except services.AlreadyPosted as exc:
            return _already_posted(exc, note)
        except DomainError as exc:
            db.session.rollback()
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
    notes, _ = services.feed(Principal.anonymous(), limit=50)
    return render_template("notes/insights.html", notes=notes)


@public_bp.route("/insights/<uuid>")
def insight(uuid):
    note = get_readable_note_or_404(Principal.anonymous(), _report_id(uuid))
    return render_template("notes/insight.html", note=note)


@public_bp.route("/insights/feed.atom")
def atom():
    notes, _ = services.feed(Principal.anonymous(), limit=50)
    body = render_template("notes/insights.atom", notes=notes,
                           base_url=current_app.config["BASE_URL"].rstrip("/"),
                           updated=services.feed_updated(notes))
    response = Response(body, mimetype="application/atom+xml")
    # Feed readers poll: the same feed answers If-None-Match with a 304 (RFC 9110 13.1.2).
    response.add_etag()
    return response.make_conditional(request)
