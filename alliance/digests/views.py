"""Digest pages: a member's preferences and watch terms, the one-click unsubscribe, the
platform admins' delivery ledger and a coordinator's view of the alliance's digests."""
from collections.abc import Sequence

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user

from alliance.alliances.services import get_alliance, require_coordinator
from alliance.auth.access import admin_required, member_required
from alliance.auth.models import User
from alliance.core.errors import DomainError, NotFound
from alliance.core.views import flash_error, run_and_flash
from alliance.core.vocab import country_choices, policy_tag_choices, sector_choices
from alliance.digests import preferences as digest_prefs
from alliance.digests import (
    previews,
    schedule,
    scheduling,
    stats,
    watch_terms,
)
from alliance.digests.forms import (
    WATCH_KIND_LABELS,
    PreferencesForm,
    PreviewForm,
    RemoveWatchTermForm,
    TestMailForm,
    WatchTermForm,
)
from alliance.digests.models import LEDGER_STATES
from alliance.extensions import csrf
from alliance.sharing.policy import Principal, readable_among

bp = Blueprint("digests", __name__)

# The mail's HTML shown on its own: its inline styles may apply, nothing else may run or load.
PREVIEW_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
               "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


# --- preferences and watch terms ------------------------------------------------------------

def _preferences_form(prefs, alliances, formdata=None) -> PreferencesForm:
    """The form filled with the user's current (or default) preferences. formdata=None keeps
    it from reading a POST meant for another form on the page."""
    return PreferencesForm(formdata=formdata, alliances=alliances, data={
        "frequency": prefs.frequency, "weekday": prefs.weekday, "hour": prefs.hour,
        "timezone": prefs.timezone, "alerts": prefs.alerts,
        "scope": "all" if prefs.alliance_ids is None else "chosen",
        "alliances": prefs.alliance_ids if prefs.alliance_ids is not None
        else [a.id for a in alliances]})


def _scan_minutes() -> int:
    """How soon a due digest goes out: the beat looks for due digests this often."""
    return max(1, round(current_app.config["DIGEST_SCAN_SECONDS"] / 60))


def _same_as_defaults(prefs, defaults) -> bool:
    return (prefs.frequency, prefs.hour, prefs.timezone, prefs.alliance_ids, prefs.alerts) == (
        defaults.frequency, defaults.hour, defaults.timezone, defaults.alliance_ids,
        defaults.alerts) and (prefs.frequency != schedule.WEEKLY
                              or prefs.weekday == defaults.weekday)


def _preferences_page(form=None, watch_form=None):
    user = current_user
    prefs = digest_prefs.preferences_of(user)
    defaults = digest_prefs.default_preferences(user)
    alliances = digest_prefs.member_alliances(user)
    failed = any(f is not None and f.errors for f in (form, watch_form))
    # The scheduler's own answer (scheduling.plan_digest), never a second calculation.
    plan = scheduling.next_digest(user)
    return render_template(
        "digests/preferences.html", prefs=prefs, defaults=defaults,
        same_as_defaults=_same_as_defaults(prefs, defaults), alliances=alliances,
        form=form if form is not None else _preferences_form(prefs, alliances),
        watch_form=watch_form if watch_form is not None else WatchTermForm(formdata=None),
        remove_form=RemoveWatchTermForm(formdata=None), terms=watch_terms.watch_terms_of(user),
        next_plan=plan,
        scan_minutes=_scan_minutes(), test_form=TestMailForm(formdata=None),
        kind_labels=WATCH_KIND_LABELS,
        term_choices={"sector": sector_choices(), "country": country_choices(),
                      "policy_tag": policy_tag_choices()}), 422 if failed else 200


@bp.route("/preferences", methods=["GET", "POST"])
@member_required
def preferences():
    alliances = digest_prefs.member_alliances(current_user)
    form = PreferencesForm(alliances=alliances) if request.method == "POST" else None
    if form is not None and form.validate_on_submit():
        try:
            digest_prefs.save_preferences(
                current_user, frequency=form.frequency.data, weekday=form.weekday.data,
                hour=form.hour.data, timezone=form.timezone.data,
                alliance_ids=form.chosen_alliances(), alerts=form.alerts.data)
        except DomainError as exc:
            flash_error(exc, form)
        else:
            flash("Your digest preferences are saved.", "success")
            return redirect(url_for("digests.preferences"))
    return _preferences_page(form=form)


@bp.route("/watch-terms", methods=["POST"])
@member_required
def add_watch_term():
    form = WatchTermForm()
    if form.validate_on_submit():
        before = {t.id for t in watch_terms.watch_terms_of(current_user)}
        try:
            term = watch_terms.add_watch_term(current_user, form.kind.data, form.value.data)
        except DomainError as exc:
            flash_error(exc, form)
        else:
            flash(f"You watch {term.value} already." if term.id in before else
                  f"You now watch {term.value}.", "info" if term.id in before else "success")
            return redirect(url_for("digests.preferences") + "#watch-terms")
    return _preferences_page(watch_form=form)


@bp.route("/watch-terms/remove", methods=["POST"])
@member_required
def remove_watch_term():
    form = RemoveWatchTermForm()
    if not form.validate_on_submit():
        abort(400, "That is not a watch term of yours to remove.")
    run_and_flash(lambda: watch_terms.remove_watch_term(current_user, form.term_id.data),
                  "Watch term removed.")
    return redirect(url_for("digests.preferences") + "#watch-terms")


# --- preview my digest, and a test mail -----------------------------------------------------

@bp.route("/preview")
@member_required
def preview():
    """The member's next digest as it stands now: built as them, shown, never sent."""
    try:
        own = previews.preview_own_digest(current_user)
    except DomainError as exc:
        flash(exc.message, "info")
        return redirect(url_for("digests.preferences"))
    return render_template("digests/preview.html", preview=own, scan_minutes=_scan_minutes(),
                           test_form=TestMailForm(formdata=None))


@bp.route("/preview.html")
@member_required
def preview_html():
    """The preview's HTML part as the member's mail client would show it."""
    try:
        own = previews.preview_own_digest(current_user)
    except DomainError as exc:
        abort(404, exc.message)
    response = make_response(own.html)
    response.headers["Content-Security-Policy"] = PREVIEW_CSP
    return response


@bp.route("/preview/test-mail", methods=["POST"])
@member_required
def send_test_mail():
    form = TestMailForm()
    if not form.validate_on_submit():
        abort(400, "The form expired: open the preview again and send it from there.")
    run_and_flash(lambda: previews.request_test_digest(current_user),
                  f"A test mail of your next digest is on its way to {current_user.email}. "
                  "It changes nothing: your digest still comes when it is due.")
    return redirect(url_for("digests.preview"))


# --- one-click unsubscribe ------------------------------------------------------------------

def _invalid_link(exc: DomainError):
    status = 404 if isinstance(exc, NotFound) else 400
    return render_template("digests/unsubscribe.html", state="invalid",
                           message=exc.message), status


@bp.route("/unsubscribe/<token>", methods=["GET", "POST"])
@csrf.exempt  # RFC 8058: mail clients POST "List-Unsubscribe=One-Click" with no session
def unsubscribe(token):
    """GET asks (link checkers and previews open links; they must not unsubscribe anyone);
    POST unsubscribes. The signed token is the only credential either needs."""
    try:
        if request.method == "POST":
            user = digest_prefs.unsubscribe(token)
            return render_template("digests/unsubscribe.html", state="done", user=user)
        user = digest_prefs.unsubscribe_user(token)
    except DomainError as exc:
        return _invalid_link(exc)
    prefs = digest_prefs.preferences_of(user)
    return render_template("digests/unsubscribe.html", state="confirm", user=user,
                           already=prefs.frequency == schedule.OFF and not prefs.alerts)


# --- the delivery ledger (platform admins) --------------------------------------------------

@bp.route("/admin/deliveries")
@admin_required
def deliveries():
    state = request.args.get("state", "")
    if state and state not in LEDGER_STATES:
        abort(400, "Choose a state from the list.")
    counts = stats.delivery_counts()
    rows = stats.recent_deliveries(state or None)
    # An alert's note is named, with its TLP and item count, only when the admin may read
    # it; a digest's strictest TLP and item count never: they tell what the recipient
    # reads (a TLP:RED note addressed to them, how busy their alliances are).
    readable = readable_among(Principal.of(current_user),
                              {d.note_id for d in rows if d.note_id is not None})
    return render_template(
        "digests/deliveries.html", state=state, states=LEDGER_STATES, rows=rows,
        readable=readable, chart=[(s, counts.get(s, 0)) for s in LEDGER_STATES],
        total=sum(counts.values()))


# --- an alliance's digests (coordinators) ---------------------------------------------------

def _preview_form(alliance) -> tuple[PreviewForm, Sequence[User]]:
    recipients = stats.alliance_recipients(alliance)
    form = PreviewForm(request.args)
    form.user_id.choices = [(u.id, f"{u.name} · {u.organisation.name}") for u in recipients]
    return form, recipients


def _preview(alliance, form):
    """The preview the query string asks for, or None (nothing asked, or a bad choice)."""
    if "user_id" not in request.args or not form.validate():
        return None
    return previews.preview_digest(current_user, alliance, form.user_id.data,
                                   form.period.data or "day")


@bp.route("/alliance/<slug>")
@member_required
def alliance_digests(slug):
    alliance = get_alliance(slug)
    require_coordinator(current_user, alliance)
    form, recipients = _preview_form(alliance)
    preview = _preview(alliance, form)
    counts = stats.alliance_digest_stats(alliance)
    return render_template("digests/alliance.html", alliance=alliance, stats=counts,
                           chart=list(counts.items()), recipients=recipients, form=form,
                           preview=preview), 422 if form.errors else 200


@bp.route("/alliance/<slug>/preview.html")
@member_required
def alliance_preview_html(slug):
    """The preview's HTML part as the member's mail client would show it."""
    alliance = get_alliance(slug)
    require_coordinator(current_user, alliance)
    form, _ = _preview_form(alliance)
    preview = _preview(alliance, form)
    if preview is None:
        abort(400, "Choose a member and a period on the alliance's digest page.")
    response = make_response(preview[3])
    response.headers["Content-Security-Policy"] = PREVIEW_CSP
    return response
