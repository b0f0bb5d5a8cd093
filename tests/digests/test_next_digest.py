""""Next digest" is the truth (issue 20, "Digests (members)"): the preferences page promises
the instant the scheduler really builds the next digest, because both ask one function
(scheduling.plan_digest); and a change of delivery hour, zone, weekday or frequency neither
skips nor doubles a period that has content. Periods are told apart by their content window,
not by the day or the hour a digest ran.

The clock is injected: the page reads scheduling.utcnow and previews.utcnow (monkeypatched),
the scheduler gets the instant (`digests run --at`, or schedule_due(now)). Nothing sleeps."""
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update

from alliance.digests import preferences, previews, scheduling
from alliance.extensions import db
from alliance.notes.models import Note
from tests.alliances.helpers import element_text
from tests.digests.helpers import Mailbox, ledger, parts, post, run_digests, run_outbox

DAY = datetime(2026, 1, 14, tzinfo=UTC)  # a Wednesday
H = timedelta(hours=1)
D = timedelta(days=1)
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
PROMISE = re.compile(r"(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday) (\d{1,2}) "
                     rf"({'|'.join(MONTHS)}) at (\d\d):(\d\d)")


@pytest.fixture
def mails(app):
    return Mailbox(app.config["MAIL_URL"])


def _clock(monkeypatch, when: datetime) -> None:
    """What "now" is for the pages and the services (not for the scheduler: it is told).
    The views' clock too, should they ever read one of their own (they used to)."""
    from alliance.digests import views

    monkeypatch.setattr(scheduling, "utcnow", lambda: when)
    monkeypatch.setattr(previews, "utcnow", lambda: when)
    monkeypatch.setattr(views, "utcnow", lambda: when, raising=False)


def _posted_at(note, when: datetime) -> None:
    db.session.execute(update(Note).where(Note.id == note.id).values(created_at=when))
    db.session.commit()


def _save(client, frequency="daily", hour=8, timezone="UTC", weekday=0) -> None:
    """The member changes their schedule on the preferences page."""
    response = client.post("/digests/preferences", data={
        "frequency": frequency, "hour": str(hour), "timezone": timezone,
        "weekday": str(weekday), "scope": "all", "alerts": "y"})
    assert response.status_code == 302, response.get_data(as_text=True)


def _next_digest_card(client) -> str:
    page = client.get("/digests/preferences")
    assert page.status_code == 200
    return element_text(page.data, "next-digest")


def _promised(client, now: datetime, zone: str) -> datetime:
    """The instant the page's "Next digest" card names, read as a person reads it."""
    card = _next_digest_card(client)
    found = PROMISE.search(card)
    assert found, card
    weekday, day, month, hour, minute = found.groups()
    local_now = now.astimezone(ZoneInfo(zone))
    for year in (local_now.year - 1, local_now.year, local_now.year + 1):
        at = datetime(year, MONTHS.index(month) + 1, int(day), int(hour), int(minute),
                      tzinfo=ZoneInfo(zone))
        if abs(at - now) < timedelta(days=60):
            break
    assert at.strftime("%A") == weekday, card
    if at <= now:
        assert "Due now" in card, card
    else:
        assert "Due now" not in card, card
    return at.astimezone(UTC)


def _carrying(mails, user, title: str) -> int:
    return sum(title in parts(m)[0] for m in mails.to(user, "digest"))


# --- the two journeys of the issue ----------------------------------------------------------

def test_moving_the_hour_later_after_an_empty_run_delivers_that_day_at_the_new_hour(
        app, monkeypatch, mails, as_member, member, coordinator, alliance):
    """Daily at 08:00; the 08:00 run found nothing (recorded as empty). At 10:00 the member
    moves the hour to 23:00: the page promises 23:00 today, and at 23:00 today the day's
    digest comes (it used to come a day later: the day had been recorded under the old hour)."""
    preferences.save_preferences(member, frequency="daily", hour=8, timezone="UTC")
    run_digests(app, DAY + 8 * H + timedelta(minutes=5))
    assert [r.state for r in ledger(member, "digest")] == ["empty"]

    _clock(monkeypatch, DAY + 10 * H)
    _save(as_member, hour=23)
    assert _promised(as_member, DAY + 10 * H, "UTC") == DAY + 23 * H
    _posted_at(post(coordinator, "Midday note", "GREEN", [alliance]), DAY + 12 * H)

    run_digests(app, DAY + 23 * H + timedelta(minutes=5))

    assert _carrying(mails, member, "Midday note") == 1
    last = ledger(member, "digest")[-1]
    assert (last.state, last.window_start, last.window_end) == ("sent", DAY + 8 * H,
                                                                 DAY + 23 * H)


def test_moving_the_hour_to_midnight_promises_when_the_mail_really_comes(
        app, monkeypatch, mails, as_member, member, coordinator, alliance):
    """Daily at 08:00, the day's digest sent; at 02:00 the next night the hour moves to
    00:00. That midnight has passed and no window has closed at it: the digest is due now,
    and the page says so (it used to promise the following midnight, a day late)."""
    preferences.save_preferences(member, frequency="daily", hour=8, timezone="UTC")
    _posted_at(post(coordinator, "Morning note", "GREEN", [alliance]), DAY + 7 * H)
    run_digests(app, DAY + 8 * H + timedelta(minutes=5))
    _posted_at(post(coordinator, "Evening note", "GREEN", [alliance]), DAY + 20 * H)

    change = DAY + D + 2 * H
    _clock(monkeypatch, change)
    _save(as_member, hour=0)
    promised = _promised(as_member, change, "UTC")
    assert promised == DAY + D  # Thursday 15 January at 00:00: due now

    run_digests(app, change + timedelta(minutes=5))

    assert _carrying(mails, member, "Morning note") == 1
    assert _carrying(mails, member, "Evening note") == 1
    last = ledger(member, "digest")[-1]
    assert (last.state, last.window_start, last.window_end) == ("sent", DAY + 8 * H, promised)


# --- the page and the scheduler agree at every step, whatever the change --------------------

def _walk(client, monkeypatch, member, events, start, end, zone_at):
    """Step the clock hourly (at five past) from start to end. At each step: apply the
    events due by then, read the page's promise, run one scheduling cycle, and check that a
    digest is built at this cycle exactly when the page promised one at or before now, with
    its window ending at the promised instant and starting where the last one ended."""
    events = sorted(events, key=lambda e: e[0])
    now = start
    while now <= end:
        while events and events[0][0] <= now:
            when, action = events.pop(0)
            _clock(monkeypatch, when)
            action()
        _clock(monkeypatch, now)
        promised = _promised(client, now, zone_at(now))
        before = ledger(member, "digest")
        scheduling.schedule_due(now, publish=False)
        built = ledger(member, "digest")[len(before):]
        if promised <= now:
            assert len(built) == 1, (now, promised)
            assert built[0].window_end == promised, (now, promised)
            if before:
                assert built[0].window_start == before[-1].window_end
        else:
            assert built == [], (now, promised, [(r.window_start, r.window_end) for r in built])
        now += H


SCENARIOS = {
    # name: (events as (when, preferences) , notes as (title, when), walk start, walk end)
    "hour later the day of an empty run": (
        [(DAY, ("daily", 8, "UTC", 0)), (DAY + 10 * H, ("daily", 23, "UTC", 0))],
        [("Noon note", DAY + 12 * H), ("Late note", DAY + 23 * H + timedelta(minutes=30))],
        DAY, DAY + 2 * D),
    "hour to midnight": (
        [(DAY, ("daily", 8, "UTC", 0)), (DAY + D + 2 * H, ("daily", 0, "UTC", 0))],
        [("Early note", DAY + 7 * H), ("Night note", DAY + 20 * H),
         ("After note", DAY + D + 3 * H)],
        DAY, DAY + 3 * D),
    "hour earlier after the day's digest": (
        [(DAY, ("daily", 20, "UTC", 0)), (DAY + 21 * H, ("daily", 8, "UTC", 0))],
        [("Noon note", DAY + 12 * H), ("Late note", DAY + 22 * H)],
        DAY, DAY + 2 * D + 12 * H),
    "daily to weekly on Mondays": (
        [(DAY, ("daily", 8, "UTC", 0)), (DAY + 10 * H, ("weekly", 8, "UTC", 0))],
        [("Noon note", DAY + 12 * H), ("Friday note", DAY + 2 * D)],
        DAY, DAY + 6 * D),
    "weekly to daily": (
        [(DAY - 2 * D, ("weekly", 8, "UTC", 0)), (DAY + 10 * H, ("daily", 8, "UTC", 0))],
        [("Tuesday note", DAY - D), ("Noon note", DAY + 12 * H)],
        DAY - 2 * D, DAY + 2 * D),
    "across the date line": (
        [(DAY, ("daily", 8, "Pacific/Kiritimati", 0)),
         (DAY + 20 * H, ("daily", 8, "Pacific/Pago_Pago", 0))],
        [("East note", DAY + 12 * H), ("West note", DAY + D + 12 * H)],
        DAY, DAY + 3 * D),
    "hour into the spring-forward gap": (  # Europe/Berlin, 2026-03-29 02:00 -> 03:00
        [(datetime(2026, 3, 27, tzinfo=UTC), ("daily", 8, "Europe/Berlin", 0)),
         (datetime(2026, 3, 28, 12, tzinfo=UTC), ("daily", 2, "Europe/Berlin", 0)),
         (datetime(2026, 3, 29, 1, 30, tzinfo=UTC), ("daily", 3, "Europe/Berlin", 0))],
        [("Friday note", datetime(2026, 3, 27, 12, tzinfo=UTC)),
         ("Saturday note", datetime(2026, 3, 28, 20, tzinfo=UTC)),
         ("Sunday note", datetime(2026, 3, 29, 10, tzinfo=UTC))],
        datetime(2026, 3, 27, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC)),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_the_page_promises_what_the_scheduler_builds_and_no_note_is_skipped_or_doubled(
        name, app, monkeypatch, mails, as_member, member, coordinator, alliance):
    changes, notes, start, end = SCENARIOS[name]
    zones = [(when, prefs[2]) for when, prefs in changes]

    def zone_at(now):
        return [zone for when, zone in zones if when <= now][-1]

    def change(frequency, hour, zone, weekday):
        return lambda: _save(as_member, frequency, hour, zone, weekday)

    def posting(title, when):
        return lambda: _posted_at(post(coordinator, title, "GREEN", [alliance]), when)

    # The member has had the first schedule for a while: its current period is built.
    (first_at, first), *later = changes
    _clock(monkeypatch, first_at)
    change(*first)()
    scheduling.schedule_due(first_at, publish=False)
    events = [(when, change(*prefs)) for when, prefs in later]
    events += [(when, posting(title, when)) for title, when in notes]
    _walk(as_member, monkeypatch, member, events, start + timedelta(minutes=5), end, zone_at)

    run_outbox("digest")
    rows = ledger(member, "digest")
    assert all(a.window_end == b.window_start for a, b in zip(rows, rows[1:], strict=False))
    for title, when in notes:
        assert _carrying(mails, member, title) == 1, (title, when)


# --- preview my digest ----------------------------------------------------------------------

@pytest.fixture
def reading(app, monkeypatch, member, coordinator, alliance, outsider):
    """The member, daily at 23:00 UTC, last digest window ended yesterday at 23:00; it is
    noon. Notes of the morning: GREEN, AMBER, a RED one addressed to the member, one in an
    alliance the member is not in, and the member's own."""
    from tests import factories

    preferences.save_preferences(member, frequency="daily", hour=23, timezone="UTC")
    run_digests(app, DAY - H + timedelta(minutes=5))
    other = factories.make_alliance(outsider, slug="elsewhere", name="Elsewhere Alliance")
    for title, tlp, where, recipients, author in [
            ("Green phishing kit", "GREEN", [alliance], [], coordinator),
            ("Amber supplier breach", "AMBER", [alliance], [], coordinator),
            ("Red named actor", "RED", [alliance], [member], coordinator),
            ("Elsewhere note", "GREEN", [other], [], outsider),
            ("My own note", "GREEN", [alliance], [], member)]:
        note = post(author, title, tlp, where, f"Summary of {title}.", recipients=recipients)
        _posted_at(note, DAY + 10 * H)
    _clock(monkeypatch, DAY + 12 * H)
    return member


def test_preview_shows_the_next_digest_so_far_as_the_member_gets_it(as_member, reading,
                                                                       mails):
    from sqlalchemy import func, select

    from alliance.outbox.models import OutboxMessage

    outbox_before = db.session.scalar(select(func.count()).select_from(OutboxMessage))
    rows_before = len(ledger(reading))

    page = as_member.get("/digests/preview")

    assert page.status_code == 200
    assert "Wednesday 14 January at 23:00" in element_text(page.data, "preview-when")
    assert element_text(page.data, "preview-subject") == (
        "[TLP:AMBER] CyberPeace digest — 3 new notes in 1 alliance (Wed 14 Jan)")
    text = element_text(page.data, "preview-text")
    assert "Green phishing kit" in text and "Summary of Green phishing kit." in text
    assert "Amber supplier breach" in text and "Summary of Amber supplier breach" not in text
    assert "1 TLP:RED note addressed to you" in text and "Red named actor" not in text
    assert "Elsewhere note" not in text and "My own note" not in text
    # Shown, not sent: nothing in the ledger, the outbox or the mailbox.
    db.session.expire_all()
    assert len(ledger(reading)) == rows_before
    assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == outbox_before
    assert mails.all() == []


def test_the_preview_html_is_the_mail_html_under_a_strict_policy(as_member, reading):
    response = as_member.get("/digests/preview.html")

    assert response.status_code == 200
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    body = response.get_data(as_text=True)
    assert "Green phishing kit" in body and "Red named actor" not in body


def _comparable(text: str) -> str:
    """A part's text with whitespace collapsed and the unsubscribe token (signed with the
    time it was made) left out."""
    return re.sub(r"/digests/unsubscribe/\S+", "/digests/unsubscribe/…", " ".join(text.split()))


def test_the_preview_shows_what_the_mail_then_carries(app, as_member, reading, mails):
    page = as_member.get("/digests/preview")
    subject = element_text(page.data, "preview-subject")
    text = element_text(page.data, "preview-text")

    run_digests(app, DAY + 23 * H + timedelta(minutes=5))

    [mail] = mails.to(reading, "digest")
    assert mail["Subject"] == subject
    assert _comparable(parts(mail)[0]) == _comparable(text)


def test_preview_with_digests_off_sends_the_member_back_to_the_settings(as_member, member):
    preferences.save_preferences(member, frequency="off", hour=8, timezone="UTC")

    response = as_member.get("/digests/preview", follow_redirects=True)

    assert response.request.path == "/digests/preferences"
    assert "Your digests are off" in response.get_data(as_text=True)
    assert as_member.get("/digests/preview.html").status_code == 404


def test_the_preview_needs_a_signed_in_member(client, outsider):
    assert client.get("/digests/preview").status_code in (302, 401)


def test_the_preferences_page_links_to_the_preview(as_member, reading):
    page = as_member.get("/digests/preferences")
    assert 'href="/digests/preview"' in page.get_data(as_text=True)


# --- a test mail ----------------------------------------------------------------------------

@pytest.fixture
def fresh_limits():
    from alliance.extensions import limiter

    limiter.reset()
    yield
    limiter.reset()


def _test_messages():
    from sqlalchemy import select

    from alliance.outbox.models import OutboxMessage

    db.session.expire_all()
    return db.session.scalars(select(OutboxMessage).where(
        OutboxMessage.kind == "digest-test")).all()


def test_a_test_mail_goes_the_way_a_digest_goes_marked_as_a_test_and_changes_nothing(
        app, as_member, reading, mails, fresh_limits):
    response = as_member.post("/digests/preview/test-mail", follow_redirects=True)

    assert response.request.path == "/digests/preview"
    assert "A test mail of your next digest is on its way" in response.get_data(as_text=True)
    [message] = _test_messages()
    assert mails.all() == []  # queued, for a worker to send
    run_outbox("digest-test")

    [mail] = mails.all()
    assert mail["To"] == reading.email
    assert mail["Subject"] == (
        "[TLP:AMBER] [TEST] CyberPeace digest — 3 new notes in 1 alliance (Wed 14 Jan)")
    assert mail["Message-ID"].startswith(f"<test-digest-{reading.id}-{message.id}@")
    assert mail["List-Unsubscribe"]
    text, html = parts(mail)
    assert text.startswith("TEST MAIL") and "Test mail" in html
    assert "Wednesday 14 January at 23:00" in text
    assert "Green phishing kit" in text and "Red named actor" not in text
    assert [r.window_end for r in ledger(reading, "digest")] == [DAY - H]  # nothing marked

    # The period is not marked delivered: the digest still comes, once, at 23:00.
    run_digests(app, DAY + 23 * H + timedelta(minutes=5))
    [digest] = mails.to(reading, "digest")
    assert "Green phishing kit" in parts(digest)[0] and "[TEST]" not in digest["Subject"]


def test_a_test_mail_needs_digests_on(as_member, member, fresh_limits):
    preferences.save_preferences(member, frequency="off", hour=8, timezone="UTC")

    response = as_member.post("/digests/preview/test-mail", follow_redirects=True)

    assert "Your digests are off" in response.get_data(as_text=True)
    assert _test_messages() == []


def test_test_mails_are_limited_per_member(as_member, reading, fresh_limits):
    for _ in range(5):
        as_member.post("/digests/preview/test-mail")
    response = as_member.post("/digests/preview/test-mail", follow_redirects=True)

    assert "several test mails in the last hour" in response.get_data(as_text=True)
    assert len(_test_messages()) == 5


@pytest.fixture(scope="module")
def csrf_app(app):
    from alliance import create_app

    return create_app({"WTF_CSRF_ENABLED": True,
                       "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
                       "MAIL_URL": app.config["MAIL_URL"], "BASE_URL": app.config["BASE_URL"]})


def test_the_test_mail_needs_the_forms_csrf_token(csrf_app, member, fresh_limits):
    from tests import factories

    preferences.save_preferences(member, frequency="daily", hour=8, timezone="UTC")
    client = csrf_app.test_client()
    factories.login(client, member)

    assert client.post("/digests/preview/test-mail").status_code == 400
    assert _test_messages() == []

    page = client.get("/digests/preview")
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                      page.get_data(as_text=True)).group(1)
    assert client.post("/digests/preview/test-mail",
                       data={"csrf_token": token}).status_code == 302
    assert len(_test_messages()) == 1


# --- `alliance digests run` -----------------------------------------------------------------

def test_run_now_takes_no_argument_and_means_now(app, reader):
    from alliance.core.models import utcnow
    from alliance.digests import schedule

    prefs = preferences.preferences_of(reader)
    result = app.test_cli_runner().invoke(args=["alliance", "digests", "run", "--now"])

    assert result.exit_code == 0, result.output
    current = schedule.current_period(utcnow(), "daily", prefs.hour, prefs.timezone)
    assert [r.window_end for r in ledger(reader, "digest")] == [current.end]


def test_run_at_names_the_moment(app, member):
    preferences.save_preferences(member, frequency="daily", hour=8, timezone="UTC")

    result = app.test_cli_runner().invoke(
        args=["alliance", "digests", "run", "--at", "2026-01-14T08:05Z"])

    assert result.exit_code == 0, result.output
    [row] = ledger(member, "digest")
    assert (row.window_start, row.window_end) == (DAY - 16 * H, DAY + 8 * H)


@pytest.mark.parametrize(("args", "message"), [
    (["--now", "--at", "2026-01-14T08:05Z"], "not both"),
    (["--at", "yesterday"], "not an ISO 8601 instant"),
    (["--at", "0001-01-01T00:00:00Z"], "out of range"),
    (["--now", "2026-01-14T08:05Z"], "unexpected extra argument"),
])
def test_run_refuses_what_is_not_a_moment(app, args, message):
    result = app.test_cli_runner().invoke(args=["alliance", "digests", "run", *args])
    assert result.exit_code != 0 and message in result.output


def test_links_in_mail_built_by_the_cli_come_from_base_url(app, mails, member, coordinator,
                                                            alliance):
    """Even when something around the command holds a request for another host (Flask's
    CLI has none; url_for would fall back to "localhost"), every link is BASE_URL's."""
    preferences.save_preferences(member, frequency="daily", hour=8, timezone="UTC")
    note = post(coordinator, "Linked note", "GREEN", [alliance])
    _posted_at(note, DAY + 7 * H)

    with app.test_request_context("/", base_url="http://localhost:5000"):
        result = app.test_cli_runner().invoke(
            args=["alliance", "digests", "run", "--at", "2026-01-14T08:05Z"])

    assert result.exit_code == 0, result.output
    assert "BASE_URL=http://alliance.test" in result.output
    [mail] = mails.to(member, "digest")
    text, html = parts(mail)
    links = re.findall(r"https?://[^\s\"'<>]+", text + html) + [mail["List-Unsubscribe"][1:-1]]
    assert f"http://alliance.test/notes/{note.uuid}" in links
    assert links and all(link.startswith("http://alliance.test") for link in links), links


# --- the subject's TLP tag ------------------------------------------------------------------

@pytest.mark.parametrize(("levels", "tag"), [
    (["RED"], "CLEAR"),
    (["GREEN", "RED"], "GREEN"),
    (["CLEAR", "AMBER", "RED"], "AMBER"),
])
def test_the_subject_names_the_strictest_content_the_mail_carries(
        app, mails, member, coordinator, alliance, levels, tag):
    """A TLP:RED note reaches mail as a count only: a mail whose strictest content is a
    count of RED notes carries no RED tag."""
    preferences.save_preferences(member, frequency="daily", hour=8, timezone="UTC")
    for level in levels:
        note = post(coordinator, f"{level} title", level, [alliance],
                    recipients=[member] if level == "RED" else ())
        _posted_at(note, DAY + 7 * H)

    run_digests(app, DAY + 8 * H + timedelta(minutes=5))

    [mail] = mails.to(member, "digest")
    assert mail["Subject"].startswith(f"[TLP:{tag}] CyberPeace digest — {len(levels)} new note")
    assert "1 TLP:RED note addressed to you" in parts(mail)[0]
    assert "RED title" not in parts(mail)[0]
    assert ledger(member, "digest")[0].strictest_tlp == tag
