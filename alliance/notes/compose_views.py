"""Composing a note: the incident, indicators and analysis forms and the STIX upload, with their
preview (the audience, the markings, what a warning list flags) and the one post. Every post
goes through notes.posting.post_note with a NoteDraft."""
import hashlib
from dataclasses import dataclass, field
from datetime import UTC

import orjson
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user

from alliance.auth.access import member_required
from alliance.core.errors import DomainError
from alliance.notes import (
    audience,
    compose,
    posting,
    submissions,
    warninglists,
)
from alliance.notes.forms import (
    AnalysisForm,
    IncidentForm,
    IndicatorsForm,
    UploadForm,
)
from alliance.stix import attack
from alliance.stix.limits import StixLimits
from alliance.stix.markings import created_by_others, looser_than
from alliance.stix.validation import BundleRejected, parse_bundle

bp = Blueprint("compose", __name__)

FORMS = {"incident": IncidentForm, "indicators": IndicatorsForm, "analysis": AnalysisForm}
TITLES = {"incident": "Incident report", "indicators": "Indicator set",
          "analysis": "Policy analysis", "bundle": "Upload a STIX bundle"}


# Fields the STIX content is built from that stix2 refuses when out of range (a confidence of
# 500): while one of them is refused, the content is not built.
_CONTENT_INPUTS = ("tlp", "valid_from", "valid_until", "confidence", "sectors", "countries",
                   "policy_tags")



def sending_of(form) -> submissions.Sending | None:
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
    return submissions.Sending(key=hashlib.sha256(orjson.dumps([token, content])).hexdigest(),
                            content=content)


def already_posted(exc: submissions.AlreadyPosted, note=None):
    """Where a form sent twice leads: to what its first sending posted."""
    flash("That form was sent twice; it is posted once, here.", "info")
    note = note or submissions.submitted_note(current_user, exc.note_id)
    if note is None:
        return redirect(url_for("notes.feed"))
    return redirect(url_for("notes.show", uuid=note.uuid)
                    + ("#responses" if exc.comment_id else ""))


def _form(kind: str):
    alliances = audience.audience_choices(current_user)
    chosen = request.form.getlist("alliances", type=int)
    recipients = audience.recipient_choices(current_user, chosen or [a.id for a in alliances])
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
        return compose.incident_report(org, tlp, compose.IncidentDraft(
            title=form.title.data, description=form.description.data or "",
            details=form.details.data or "", observables_text=form.observables.data or "",
            attack_ids_text=form.attack_ids.data or "", sectors=form.sectors.data or [],
            countries=form.countries.data or [])), [], None
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
    parsed = parse_bundle(raw, StixLimits.from_config(current_app.config))
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


def _every_error(kind: str, form, *, content: bool = True) -> list | None:
    """What Share refuses besides what was found already, put on the form so that a refused
    Share (and a preview) lists every error at once: the audience, as post_note checks it,
    and with `content` the form's STIX content (observables, ATT&CK ids, the bundle). Returns
    the bundle's problems, if any. A field refused already is not checked again."""
    if not any(form[name].errors for name in ("tlp", "alliances", "recipients",
                                              "publish_public")):
        try:
            audience.check_audience(current_user, form.tlp.data, form.alliances.data or [],
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


@dataclass
class _ComposeAnswer:
    """What the compose page shows besides the form after a preview or a refused post."""

    preview: object = None
    problems: list | None = None
    looser: list = field(default_factory=list)
    others: list = field(default_factory=list)
    flagged: list = field(default_factory=list)
    status: int = 200


@bp.route("/new/<kind>", methods=["GET", "POST"])
@member_required
def compose_note(kind):
    if kind not in TITLES:
        abort(404)
    form, alliances = _form(kind)
    if not alliances:
        return render_template("notes/no_audience.html"), 200
    answer = _ComposeAnswer()
    if form.validate_on_submit():
        if "preview" in request.form:
            answer.preview = audience.audience_preview(current_user, form.alliances.data,
                                                       form.tlp.data, form.recipients.data or [])
            answer.looser, answer.others, answer.problems, answer.flagged = _preview_objects(
                kind, form)
            _every_error(kind, form, content=False)
        else:
            posted = _post_composed(kind, form, answer)
            if posted is not None:
                return posted
    elif request.method == "POST":
        answer.status = 422
        answer.problems = _every_error(kind, form)
    kept, kept_fits = compose.carry_upload(form, current_user.id) \
        if request.method == "POST" and kind == "bundle" else (None, False)
    return render_template("notes/compose.html", form=form, kind=kind, title=TITLES[kind],
                           preview=answer.preview, problems=answer.problems,
                           looser=answer.looser, others=answer.others, kept=kept,
                           kept_fits=kept_fits, flagged=answer.flagged,
                           techniques=_techniques_typed(form)), answer.status


def _post_composed(kind: str, form, answer: _ComposeAnswer):
    """Post the compose form's note: the response to send (the note's page, or the earlier
    note's when the form was sent twice), or None when it was refused, with what to show
    in `answer`."""
    objects: list[dict] = []
    try:
        sending = sending_of(form)
        objects, warnings, refs = _objects_for(kind, form)
        note = posting.post_note(current_user, posting.NoteDraft(
            title=form.title.data, tlp=form.tlp.data,
            alliance_ids=form.alliances.data, objects=objects, kind=kind,
            description=form.description.data or "",
            recipient_ids=form.recipients.data or [],
            policy_tags=form.policy_tags.data or [],
            sectors=getattr(form, "sectors", None) and form.sectors.data or [],
            countries=getattr(form, "countries", None) and form.countries.data or [],
            publish_public=form.publish_public.data, warnings=warnings, refs=refs,
            looser_confirmed="confirm_looser" in form and form.confirm_looser.data,
            flagged_confirmed="confirm_flagged" not in form
            or bool(form.confirm_flagged.data)), submission=sending)
    except submissions.AlreadyPosted as exc:
        return already_posted(exc)
    except BundleRejected as exc:
        answer.problems, answer.status = exc.problems, exc.status_code
        _every_error(kind, form, content=False)
        return None
    except DomainError as exc:
        _form_error(exc, form)
        answer.status = exc.status_code
        if exc.field == "confirm_looser":
            answer.looser = looser_than(objects, form.tlp.data)
        if exc.field == "confirm_flagged":
            answer.flagged = warninglists.flagged_in(objects)
        _every_error(kind, form, content=False)
        return None
    for warning in warnings:
        flash(f"Note: {warning}.", "info")
    flash("Your note is shared.", "success")
    return redirect(url_for("notes.show", uuid=note.uuid))


def _techniques_typed(form) -> list:
    """The ATT&CK techniques the form's field names, by name, to echo beside it (ids that are
    not ATT&CK ids are the field's error already)."""
    if "attack_ids" not in form or not form.attack_ids.data:
        return []
    try:
        return attack.techniques(compose.parse_attack_ids(form.attack_ids.data))
    except DomainError:
        return []
