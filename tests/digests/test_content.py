"""What digest and alert mails carry (DESIGN.md, "Who may read a note" and "Digests and
alerts"): each TLP level as the design's table says, only notes the recipient may read at send
time, autoescaped, once. Mails are sent by `flask alliance digests run --at ...` or by running
the outbox messages as a worker would, into the test maildir, and read back from it."""
import io
import itertools
import json
import time
from datetime import timedelta
from email.generator import BytesGenerator

import itsdangerous.timed
import pytest
from sqlalchemy import update

from alliance.core.models import utcnow
from alliance.digests import building, content, delivery, preferences, rendering, scheduling, watch_terms
from alliance.digests.models import Delivery
from alliance.extensions import db
from alliance.notes.editing import retract_note
from alliance.notes.models import Note
from alliance.outbox.models import OutboxMessage
from alliance.outbox.services import enqueue, run_message
from tests import factories
from tests.digests.helpers import (
    far_hour,
    ledger,
    next_run,
    parts,
    post,
    run_alerts,
    run_digests,
    run_outbox,
)
from tests.notes.helpers import bundle, indicator


def _day(local_date) -> str:
    return f"{local_date:%a} {local_date.day} {local_date:%b}"


def _digest_of(mails, user):
    [mail] = mails.to(user, "digest")
    text, html = parts(mail)
    return mail, text, html


# --- each TLP level as the design's table says ---------------------------------------------

NOTES = {  # level: (title, description)
    "CLEAR": ("Clear title: botnet takedown", "Clear summary: the takedown worked."),
    "GREEN": ("Green title: phishing kit", "Green summary: kit reused across the sector."),
    "AMBER": ("Amber title: supplier breach", "Amber secret: the supplier is Acme."),
    "AMBER+STRICT": ("Strict title: internal incident", "Strict secret: our VPN was hit."),
    "RED": ("Red title: named actor", "Red secret: the actor is a former employee."),
}


def test_each_tlp_level_carries_what_the_design_allows(app, mails, coordinator, alliance,
                                                       reader):
    instant, local_day = next_run(preferences.preferences_of(reader).hour)
    for level, (title, description) in NOTES.items():
        post(coordinator, title, level, [alliance], description,
             recipients=[reader] if level == "RED" else ())

    run_digests(app, instant)

    mail, text, html = _digest_of(mails, reader)
    subject = mail["Subject"]
    for part in (text, html):
        for level in ("CLEAR", "GREEN"):
            title, summary = NOTES[level]
            assert title in part and summary in part, level
        for level in ("AMBER", "AMBER+STRICT"):
            title, secret = NOTES[level]
            assert title in part and secret not in part, level
        red_title, red_secret = NOTES["RED"]
        assert red_title not in part and red_secret not in part
        assert "1 TLP:RED note addressed to you" in part
        assert "http://alliance.test/notes/?tlp=RED" in part
        # Who posted it, with the kind and time, for CLEAR and GREEN only.
        assert part.count(f"Incident report · {coordinator.organisation.name} · ") == 2
    assert NOTES["RED"][0] not in subject
    # Four listed and one counted, all in Atlantic. The RED note is only counted, so the
    # strictest level whose content the mail carries is AMBER+STRICT (a title).
    assert subject == (f"[TLP:AMBER+STRICT] CyberPeace digest — 5 new notes in 1 alliance "
                       f"({_day(local_day)})")


def test_amber_items_do_not_name_who_posted_them(app, mails, coordinator, alliance, reader):
    """Title and link only: the author organisation of an AMBER incident report is often
    its victim. CLEAR and GREEN items show kind, organisation and time."""
    instant, _ = next_run(preferences.preferences_of(reader).hour)
    for level in ("AMBER", "AMBER+STRICT"):
        post(coordinator, NOTES[level][0], level, [alliance])

    run_digests(app, instant)

    _, text, html = _digest_of(mails, reader)
    for part in (text, html):
        assert NOTES["AMBER"][0] in part and NOTES["AMBER+STRICT"][0] in part
        assert coordinator.organisation.name not in part
        assert "Incident report" not in part


def test_the_subject_carries_the_strictest_level_and_the_counts(app, mails, coordinator,
                                                                 alliance, reader):
    instant, local_day = next_run(preferences.preferences_of(reader).hour)
    for level in ("CLEAR", "AMBER", "GREEN"):
        post(coordinator, NOTES[level][0], level, [alliance])

    run_digests(app, instant)

    mail, text, _ = _digest_of(mails, reader)
    assert mail["Subject"] == (f"[TLP:AMBER] CyberPeace digest — 3 new notes in 1 alliance "
                               f"({_day(local_day)})")
    # Newest first.
    positions = [text.index(NOTES[level][0]) for level in ("GREEN", "AMBER", "CLEAR")]
    assert positions == sorted(positions)
    [row] = ledger(reader, "digest")
    assert (row.state, row.items, row.strictest_tlp) == ("sent", 3, "AMBER")


def test_items_say_why_they_are_included_and_link_to_the_note(app, mails, coordinator,
                                                               alliance, reader):
    instant, _ = next_run(preferences.preferences_of(reader).hour)
    note = post(coordinator, "Incident at the port", "GREEN", [alliance])

    run_digests(app, instant)

    _, text, html = _digest_of(mails, reader)
    for part in (text, html):
        assert "new in Atlantic Alliance" in part
        assert f"http://alliance.test/notes/{note.uuid}" in part
        assert "Coordinating Org" in part and "Incident report" in part
    assert "== Atlantic Alliance ==" in text


def test_a_note_in_two_of_the_readers_alliances_appears_once(app, mails, coordinator,
                                                              alliance, reader):
    pacific = factories.make_alliance(coordinator, slug="pacific", name="Pacific Alliance")
    factories.add_member(pacific, reader.organisation, "active")
    instant, _ = next_run(preferences.preferences_of(reader).hour)
    post(coordinator, "Shared twice", "GREEN", [alliance, pacific])

    run_digests(app, instant)

    mail, text, html = _digest_of(mails, reader)
    assert text.count("Shared twice") == 1 and html.count("Shared twice") == 1
    assert "Pacific Alliance" not in text  # filed under the first of its alliances only
    assert "1 new note in 1 alliance" in mail["Subject"]


def test_an_empty_period_sends_nothing(app, mails, coordinator, alliance, reader):
    instant, _ = next_run(preferences.preferences_of(reader).hour)

    run_digests(app, instant)

    assert mails.to(reader) == []
    [row] = ledger(reader, "digest")
    assert row.state == "empty" and row.message_id is None


def test_a_retracted_note_is_not_included(app, mails, coordinator, alliance, reader):
    instant, _ = next_run(preferences.preferences_of(reader).hour)
    post(coordinator, "Kept note", "GREEN", [alliance])
    retracted = post(coordinator, "Retracted note", "GREEN", [alliance])
    retract_note(coordinator, retracted, "Posted by mistake.")

    run_digests(app, instant)

    _, text, html = _digest_of(mails, reader)
    assert "Kept note" in text and "Retracted note" not in text + html


def test_an_organisation_removed_after_scheduling_gets_nothing_of_the_alliance(
        app, mails, coordinator, alliance, reader):
    instant, _ = next_run(preferences.preferences_of(reader).hour)
    post(coordinator, "For members only", "GREEN", [alliance])
    created = scheduling.schedule_due(instant, publish=False)
    [row] = [r for r in ledger(reader, "digest") if r.id in created]
    [message] = [m for m in db.session.query(OutboxMessage).filter_by(kind="digest")
                 if m.payload["delivery_id"] == row.id]

    factories.add_member(alliance, reader.organisation, "removed")
    assert run_message(message.id) == "done"

    assert mails.to(reader) == []
    assert db.session.get(Delivery, row.id).state == "empty"


HOSTILE_TITLE = '<script>alert(1)</script> " onmouseover=alert(2) x="'
HOSTILE_TEXT = ('<img src=x onerror=alert(3)> [click](javascript:alert(4)) '
                '<a href="javascript:alert(5)">here</a>')


def test_hostile_strings_are_text_in_both_parts(app, mails, coordinator, alliance, reader):
    instant, _ = next_run(preferences.preferences_of(reader).hour)
    post(coordinator, HOSTILE_TITLE, "CLEAR", [alliance], HOSTILE_TEXT)

    run_digests(app, instant)

    mail, text, html = _digest_of(mails, reader)
    for part in (text, html):
        assert "<script" not in part and "<img" not in part
        assert '" onmouseover' not in part and '<a href="javascript' not in part
        # Shown as the characters typed (escaped), not dropped: the reader sees the title.
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in part
        assert "&lt;img src=x onerror=alert(3)&gt;" in part
    assert 'href="javascript' not in html.lower()
    assert HOSTILE_TITLE not in mail["Subject"]  # the subject names no note at all


def test_every_digest_has_one_click_unsubscribe_headers_and_a_stable_message_id(
        app, mails, monkeypatch, coordinator, alliance, reader):
    instant, _ = next_run(preferences.preferences_of(reader).hour)
    post(coordinator, "Anything", "GREEN", [alliance])
    sent = []
    deliver = delivery.send_message
    monkeypatch.setattr(delivery, "send_message", lambda msg: (sent.append(msg), deliver(msg)))
    # Every token made is dated a second after the one before: the header's link and the
    # body's must still be one link (made once per mail), not two made a tick apart.
    ticks = itertools.count(int(time.time()))
    monkeypatch.setattr(itsdangerous.timed.TimestampSigner, "get_timestamp",
                        lambda self: next(ticks))

    run_digests(app, instant)

    mail, text, html = _digest_of(mails, reader)
    # Keyed by where the digest's window ends (next_run: a minute after it), not by the day.
    end = instant - timedelta(minutes=1)
    assert mail["Message-ID"] == (
        f"<digest-{reader.id}-until.{end:%Y-%m-%dT%H.%M.%S}Z@alliance.test>")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail["List-Id"] == "CyberPeace Alliance digests and alerts <digests.alliance.test>"
    link = mail["List-Unsubscribe"]
    assert link.startswith("<http://alliance.test/digests/unsubscribe/") and link.endswith(">")
    assert link[1:-1] in text and link[1:-1] in html
    assert "http://alliance.test/digests/preferences" in text

    # As smtplib writes it: the URL itself, not RFC 2047 encoded words (which a 78-column
    # fold of a header with no space in it gives, and mail clients do not decode there).
    raw = io.BytesIO()
    [msg] = [m for m in sent if m["To"] == reader.email]
    BytesGenerator(raw).flatten(msg, linesep="\r\n")
    assert f"\r\nList-Unsubscribe: {link}\r\n".encode() in raw.getvalue()

    # The header's link works as RFC 8058 says: a POST with no session and no form token.
    response = app.test_client().post(link[1:-1].removeprefix("http://alliance.test"),
                                      data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    prefs = preferences.preferences_of(factories.fresh(reader))
    assert prefs.frequency == "off" and prefs.alerts is False


def test_running_twice_for_the_same_instant_sends_one_mail(app, mails, coordinator, alliance,
                                                           reader):
    instant, _ = next_run(preferences.preferences_of(reader).hour)
    post(coordinator, "Only once", "GREEN", [alliance])

    run_digests(app, instant)
    second = run_digests(app, instant)

    assert len(mails.to(reader, "digest")) == 1
    assert len(ledger(reader, "digest")) == 1
    assert "nothing due" in second.stdout


def test_a_digest_is_built_at_send_time_as_the_user(app, coordinator, alliance, member_admin,
                                                    reader):
    """build_digest and render_digest directly: the reader's own notes are not news to them,
    a RED note for someone else is not even counted."""
    start = utcnow() - timedelta(minutes=1)
    post(reader, "My own note", "GREEN", [alliance])
    post(coordinator, "Red for the admin", "RED", [alliance],
         recipients=[member_admin])
    post(coordinator, "Green for all", "GREEN", [alliance])
    end = utcnow() + timedelta(minutes=1)

    with app.test_request_context():
        digest = building.build_digest(reader, start, end)
        subject, text, _ = rendering.render_digest(digest, end.date())

    assert [i.note.title for _, items in digest.groups for i in items] == ["Green for all"]
    assert digest.red_count == 0 and digest.count == 1
    assert subject.startswith("[TLP:GREEN] CyberPeace digest — 1 new note in 1 alliance")
    assert "My own note" not in text and "Red for the admin" not in text


def test_a_long_period_lists_the_newest_and_counts_all_the_rest(app, monkeypatch, coordinator,
                                                                alliance, reader):
    monkeypatch.setattr(content, "DIGEST_ITEMS", 2)
    start = utcnow() - timedelta(minutes=1)
    for n in range(1, 6):
        post(coordinator, f"Busy day note {n}", "GREEN", [alliance])

    with app.test_request_context():
        digest = building.build_digest(reader, start, utcnow() + timedelta(minutes=1))
        subject, text, html = rendering.render_digest(digest, start.date())

    assert [i.note.title for _, items in digest.groups for i in items] == [
        "Busy day note 5", "Busy day note 4"]
    assert digest.more == 3 and "5 new notes" in subject
    assert "and 3 more" in text and "and 3 more" in html
    assert "http://alliance.test/notes/" in text.split("and 3 more")[1]


def test_a_note_whose_author_was_deleted_still_reaches_the_digest(app, coordinator, alliance,
                                                                  reader):
    start = utcnow() - timedelta(minutes=1)
    note = post(coordinator, "Orphaned note", "GREEN", [alliance])
    db.session.execute(update(Note).where(Note.id == note.id).values(author_id=None))
    db.session.commit()

    digest = building.build_digest(reader, start, utcnow() + timedelta(minutes=1))

    assert [i.note.title for _, items in digest.groups for i in items] == ["Orphaned note"]


# --- watch-term alerts ---------------------------------------------------------------------

@pytest.fixture
def watcher(member):
    watch_terms.add_watch_term(member, "value", "EVIL.example")
    return member


def test_a_watcher_gets_an_alert_naming_the_term_when_a_green_note_carries_it(
        mails, coordinator, alliance, watcher):
    note = post(coordinator, "Beacon to evil.example", "GREEN", [alliance],
                "Green detail: seen on three hosts.", domain="evil.example")

    run_alerts()

    [mail] = mails.to(watcher, "alert")
    text, html = parts(mail)
    assert mail["Subject"] == "[TLP:GREEN] CyberPeace alert — evil.example in a new note"
    assert mail["Message-ID"] == f"<alert-{watcher.id}-{note.id}@alliance.test>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail["List-Id"] == "CyberPeace Alliance digests and alerts <digests.alliance.test>"
    for part in (text, html):
        assert "Beacon to evil.example" in part and "Green detail" in part
        assert "matches your watch term" in part
    [row] = ledger(watcher, "alert")
    assert (row.state, row.note_id, row.watch_term) == ("sent", note.id, "evil.example")


@pytest.mark.parametrize("tlp", ["AMBER", "AMBER+STRICT"])
def test_an_amber_alert_is_title_and_link_only_and_does_not_name_the_term(
        mails, coordinator, alliance, watcher, tlp):
    """The term a note carries is a piece of its content: AMBER mail is title and link."""
    note = post(coordinator, "Beacon seen", tlp, [alliance],
                "Amber detail: seen on three hosts.", domain="evil.example")

    run_alerts()

    [mail] = mails.to(watcher, "alert")
    text, html = parts(mail)
    assert mail["Subject"] == f"[TLP:{tlp}] CyberPeace alert — a note matches a watch term"
    for part in (text, html):
        assert "Beacon seen" in part and f"/notes/{note.uuid}" in part
        assert "Amber detail" not in part and "evil.example" not in part
        assert "matches one of your watch terms" in part
        assert coordinator.organisation.name not in part  # who posted it: often the victim
    [row] = ledger(watcher, "alert")
    assert (row.state, row.note_id, row.watch_term) == ("sent", note.id, "evil.example")


def test_a_digest_names_a_watch_term_only_for_clear_and_green_notes(app, coordinator, alliance,
                                                                    watcher):
    start = utcnow() - timedelta(minutes=1)
    post(coordinator, "Green beacon", "GREEN", [alliance], domain="evil.example")
    post(coordinator, "Amber beacon", "AMBER", [alliance], domain="evil.example")
    end = utcnow() + timedelta(minutes=1)

    with app.test_request_context():
        digest = building.build_digest(watcher, start, end)
        _, text, html = rendering.render_digest(digest, end.date())

    why = {i.note.title: i.why for _, items in digest.groups for i in items}
    assert why["Green beacon"].endswith("matches your watch term evil.example")
    assert why["Amber beacon"].endswith("matches one of your watch terms")
    for part in (text, html):
        assert part.count("evil.example") == 1  # the GREEN note's reason, nowhere else


def test_a_red_alert_names_neither_the_note_nor_the_term(mails, coordinator, alliance,
                                                          watcher):
    """A count only (DESIGN.md): no title, no term, no link to the note (its address is its
    report id) and no word of what it matches; the link is the reader's TLP:RED feed."""
    note = post(coordinator, "Red beacon", "RED", [alliance], "Red detail",
                domain="evil.example", recipients=[watcher])

    run_alerts()

    [mail] = mails.to(watcher, "alert")
    text, html = parts(mail)
    for part in (text, html, mail["Subject"]):
        assert "Red beacon" not in part and "Red detail" not in part
        assert "evil.example" not in part and "one of your watch terms" not in part
        assert note.uuid not in part and note.report_id not in part
    # The mail carries a count, not RED content: its tag says so.
    assert mail["Subject"] == "[TLP:CLEAR] CyberPeace alert — 1 TLP:RED note addressed to you"
    for part in (text, html):
        assert "1 TLP:RED note addressed to you" in part
        assert "http://alliance.test/notes/?tlp=RED" in part


def test_no_alert_when_alerts_are_off(mails, coordinator, alliance, watcher):
    prefs = preferences.preferences_of(watcher)
    preferences.save_preferences(watcher, frequency=prefs.frequency, hour=prefs.hour,
                              timezone=prefs.timezone, alerts=False)
    post(coordinator, "Beacon", "GREEN", [alliance], domain="evil.example")

    run_alerts()

    assert mails.to(watcher) == [] and ledger(watcher, "alert") == []


def test_no_alert_for_a_note_the_watcher_cannot_read(mails, coordinator, alliance, watcher):
    pacific = factories.make_alliance(coordinator, slug="pacific", name="Pacific Alliance")
    post(coordinator, "Pacific only beacon", "AMBER", [pacific], domain="evil.example")

    run_alerts()

    assert mails.to(watcher) == []
    assert ledger(watcher, "alert") == []  # not even a row: the ledger is read by admins


def test_notes_the_watcher_cannot_read_do_not_use_up_their_alerts(
        app, mails, monkeypatch, coordinator, alliance, watcher):
    """Before, each matching note made a ledger row first (checked at send time), and those
    rows counted towards the hourly limit: notes posted where the watcher cannot read them
    held back the alerts of notes they can."""
    monkeypatch.setitem(app.config, "ALERT_LIMIT_PER_HOUR", 2)
    pacific = factories.make_alliance(coordinator, slug="pacific", name="Pacific Alliance")
    for n in (1, 2, 3):
        post(coordinator, f"Pacific beacon {n}", "GREEN", [pacific], domain="evil.example")
    readable = post(coordinator, "Atlantic beacon", "GREEN", [alliance], domain="evil.example")

    run_alerts()

    [mail] = mails.to(watcher, "alert")
    assert "Atlantic beacon" in parts(mail)[0]
    [row] = ledger(watcher, "alert")
    assert (row.state, row.note_id) == ("sent", readable.id)


def test_no_second_alert_for_the_same_note(mails, coordinator, alliance, watcher):
    note = post(coordinator, "Beacon", "GREEN", [alliance], domain="evil.example")
    run_alerts()
    enqueue("watch-scan", note_id=note.id)  # a second scan of the same note
    db.session.commit()

    run_alerts()

    assert len(mails.to(watcher, "alert")) == 1 and len(ledger(watcher, "alert")) == 1


def test_alerts_past_the_hourly_limit_are_folded_into_the_next_digest(
        app, mails, monkeypatch, coordinator, alliance, watcher):
    monkeypatch.setitem(app.config, "ALERT_LIMIT_PER_HOUR", 2)
    preferences.save_preferences(watcher, frequency="daily", hour=far_hour("UTC"), timezone="UTC")
    instant, _ = next_run(preferences.preferences_of(watcher).hour, "UTC")
    notes = [post(coordinator, f"Beacon number {n}", "GREEN", [alliance],
                  domain="evil.example") for n in (1, 2, 3)]

    run_alerts()

    assert len(mails.to(watcher, "alert")) == 2
    assert [r.state for r in ledger(watcher, "alert")] == ["sent", "sent", "folded"]
    for part in parts(mails.to(watcher, "alert")[0]):
        assert "more matches wait for your next" in part
    # Only the fold brings a note into the digest: the notes themselves are made older than
    # the digest's period.
    db.session.execute(update(Note).where(Note.id.in_([n.id for n in notes])).values(
        created_at=utcnow() - timedelta(days=3)))
    db.session.commit()

    run_digests(app, instant)

    _, text, html = _digest_of(mails, watcher)
    for part in (text, html):
        assert "Beacon number 3" in part
        assert "Beacon number 1" not in part and "Beacon number 2" not in part
        assert "matches your watch term evil.example" in part


def test_a_user_who_gets_no_digest_gets_every_alert_and_is_told_so(
        app, mails, monkeypatch, coordinator, alliance, watcher):
    """Alerts only (digests off, as the preferences form and the unsubscribe page offer):
    past the hourly limit there is no digest to fold a match into, so it is alerted too."""
    monkeypatch.setitem(app.config, "ALERT_LIMIT_PER_HOUR", 2)
    preferences.save_preferences(watcher, frequency="off", hour=8, timezone="UTC", alerts=True)
    for n in (1, 2, 3):
        post(coordinator, f"Beacon number {n}", "GREEN", [alliance], domain="evil.example")

    run_alerts()

    assert [r.state for r in ledger(watcher, "alert")] == ["sent", "sent", "sent"]
    alerts = mails.to(watcher, "alert")
    assert sorted(next(t for t in ("Beacon number 1", "Beacon number 2", "Beacon number 3")
                       if t in parts(m)[0]) for m in alerts) == [
        "Beacon number 1", "Beacon number 2", "Beacon number 3"]
    for part in parts(alerts[0])[:2]:
        assert "you get no digest" in part
        assert "wait for your next" not in part


def _write_bundle(tmp_path):
    path = tmp_path / "beacons.json"
    path.write_text(json.dumps(bundle(indicator("[domain-name:value = 'evil.example']"))))
    return path


def test_a_cli_import_sends_no_alert_unless_asked(app, tmp_path, mails, coordinator,
                                                  alliance, watcher):
    args = ["alliance", "import", str(_write_bundle(tmp_path)), "--org",
            coordinator.organisation.slug, "--alliance", alliance.slug, "--tlp", "GREEN"]
    assert app.test_cli_runner().invoke(args=args).exit_code == 0

    run_alerts()
    assert mails.to(watcher) == [] and ledger(watcher, "alert") == []

    # The control: the same import with --alert does alert.
    result = app.test_cli_runner().invoke(args=[*args, "--title", "Again", "--alert"])
    assert result.exit_code == 0, result.output
    run_alerts()
    assert len(mails.to(watcher, "alert")) == 1


def test_the_author_is_not_alerted_about_their_own_note(mails, alliance, watcher):
    post(watcher, "My own beacon", "GREEN", [alliance], domain="evil.example")

    run_outbox("watch-scan")
    run_outbox("alert")

    assert mails.to(watcher) == []


def test_the_authors_own_notes_do_not_use_up_their_alerts(
        app, mails, monkeypatch, coordinator, alliance, watcher):
    """Before, the scan made a pending row for the author's own note (skipped only at send
    time), and that row counted towards the hourly limit: a member who posted two notes
    lost the alert for a colleague's note that matched the same term."""
    monkeypatch.setitem(app.config, "ALERT_LIMIT_PER_HOUR", 2)
    for n in (1, 2):
        post(watcher, f"My own beacon {n}", "GREEN", [alliance], domain="evil.example")
    post(coordinator, "Their beacon", "GREEN", [alliance], domain="evil.example")

    run_alerts()

    [mail] = mails.to(watcher, "alert")
    assert "Their beacon" in parts(mail)[0]
    assert [r.state for r in ledger(watcher, "alert")] == ["sent"]
