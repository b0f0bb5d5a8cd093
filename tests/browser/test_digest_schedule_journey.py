"""A member's digest keeps its word, in a real browser (Playwright driving Debian's chromium)
against the app on loopback with real parts: redis-server as the broker, a Celery worker
process, an SMTP server (aiosmtpd), and the `flask alliance digests run` command run as its
own process, as an operator or cron runs it, told the instant with --at (nothing sleeps until
23:00).

The walk (issue 20): daily at 08:00; the 08:00 run finds nothing and records the day as
empty; at midday the member moves the hour to 23:00 and the page promises 23:00 today; a
note is shared; the member previews the digest and sends themselves a test mail (which
arrives marked as a test and changes nothing); at 23:00 the digest comes, as the preview
showed it; then the page promises tomorrow at 23:00."""
import os
import re
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from email.header import decode_header, make_header
from zoneinfo import ZoneInfo

import pytest
from werkzeug.serving import make_server

from alliance.digests import schedule
from tests.browser.helpers import sign_out, signed_in_page
from tests.digests import helpers as digest_helpers
from tests.servers import ROOT, CeleryWorker, free_port

pytestmark = [pytest.mark.browser, pytest.mark.servers]
NOTE_URL = re.compile(r"/notes/[0-9a-f-]{36}$")


@pytest.fixture(scope="module")
def site(app, tmp_root, redis_server, smtp):
    """The app on a loopback port as production runs it (Redis broker, SMTP mail), a Celery
    worker with the same settings, and the environment for CLI runs against them. The beat
    in the worker looks for due digests once an hour only: the test runs the scheduler
    itself, for the instants it names."""
    from alliance import create_app

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    instance = os.path.join(tmp_root, f"schedule-journey-{port}")
    os.makedirs(instance, exist_ok=True)
    env = {"ALLIANCE_ENV": "testing",
           "TEST_DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"].replace(
               "postgresql+psycopg://", "postgresql://"),
           "REDIS_URL": redis_server.url, "MAIL_URL": smtp.url, "BASE_URL": base_url,
           "INSTANCE_PATH": instance, "OUTBOX_RELAY_SECONDS": "1",
           "DIGEST_SCAN_SECONDS": "3600"}
    web = create_app({"SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
                      "REDIS_URL": redis_server.url, "MAIL_URL": smtp.url,
                      "BASE_URL": base_url, "INSTANCE_PATH": instance,
                      "OUTBOX_PUBLISH_TIMEOUT": 0.5, "RATELIMIT_STORAGE_URI": "memory://"})
    server = make_server("127.0.0.1", port, web, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    worker = CeleryWorker(env, logfile=os.path.join(tmp_root, f"schedule-worker-{port}.log"))
    worker.start()
    deadline = time.monotonic() + 60
    while "ready." not in worker.log():
        if time.monotonic() > deadline or worker.proc.poll() is not None:
            raise RuntimeError("the Celery worker did not start:\n" + worker.log()[-3000:])
        time.sleep(0.2)
    yield {"url": base_url, "env": env, "worker": worker}
    worker.stop()
    server.shutdown()


def _digests_run(site, at: datetime) -> str:
    """`flask --app wsgi alliance digests run --at ...`, a process of its own."""
    done = subprocess.run(
        [os.path.join(ROOT, ".venv", "bin", "flask"), "--app", "wsgi", "alliance", "digests",
         "run", "--at", at.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")],
        cwd=ROOT, env={**os.environ, **site["env"], "PYTHONPATH": ROOT},
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def _midday_zone(now: datetime) -> str:
    """A zone where it is now late morning or midday, on a day without a clock change: the
    day's 08:00 has passed and its 23:00 is hours away, whatever the hour the tests run."""
    for zone in schedule.valid_timezones():
        tz = ZoneInfo(zone)
        local = now.astimezone(tz)
        start = datetime.combine(local.date(), datetime.min.time(), tz)
        steady = start.utcoffset() == (start + timedelta(hours=23, minutes=59)).utcoffset()
        if 10 <= local.hour < 14 and steady and local.utcoffset().seconds % 3600 == 0:
            return zone
    raise AssertionError("no zone is at midday now")  # every whole-hour offset exists


def _subject(mail) -> str:
    return str(make_header(decode_header(mail["Subject"])))


def _text(mail) -> str:
    return mail.get_body(("plain",)).get_content()


def _comparable(text: str) -> str:
    """Whitespace collapsed, the unsubscribe token (signed with the time it was made) out."""
    return re.sub(r"/digests/unsubscribe/\S+", "/digests/unsubscribe/…", " ".join(text.split()))


def _mails_to(smtp, address: str, count: int, timeout: float = 60.0) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with smtp.lock:
            found = [m for m in smtp.messages if m["To"] == address]
        if len(found) >= count:
            return found
        time.sleep(0.2)
    return found


def ledger(user, kind="digest"):
    """The user's ledger rows as the other processes left them (a fresh transaction)."""
    from alliance.extensions import db

    db.session.rollback()
    return digest_helpers.ledger(user, kind)


def _promise(page) -> str:
    return " ".join(page.inner_text("#next-digest").split())


def test_a_schedule_change_after_an_empty_run_delivers_the_days_digest_at_the_promised_hour(
        site, browser, smtp, member, coordinator, alliance):
    base = site["url"]
    smtp.clear()
    zone = _midday_zone(datetime.now(UTC))
    tz = ZoneInfo(zone)
    today = datetime.now(UTC).astimezone(tz).date()
    at_8 = schedule.delivery_instant(today, 8, tz)
    at_23 = schedule.delivery_instant(today, 23, tz)
    day = f"{today:%A} {today.day} {today:%B}"

    # Daily at 08:00, chosen on the page.
    context, page = signed_in_page(browser, base, member.email)
    page.goto(f"{base}/digests/preferences")
    page.check("input[name=frequency][value=daily]")
    page.select_option("select[name=hour]", "8")
    page.select_option("select[name=timezone]", zone)
    page.click("#preferences-submit")
    page.wait_for_load_state()

    # The 08:00 run: nothing new, recorded as empty.
    _digests_run(site, at_8 + timedelta(minutes=5))
    assert [r.state for r in ledger(member, "digest")] == ["empty"]

    # At midday the member moves the hour to 23:00: the page promises 23:00 today.
    page.goto(f"{base}/digests/preferences")
    page.select_option("select[name=hour]", "23")
    page.click("#preferences-submit")
    page.wait_for_load_state()
    assert f"{day} at 23:00" in _promise(page), _promise(page)
    assert "Due now" not in _promise(page)

    # Another organisation shares a note.
    coordinator_context, poster = signed_in_page(browser, base, coordinator.email)
    poster.goto(f"{base}/notes/new/indicators")
    poster.fill("input[name=title]", "Scanner seen at the harbour authority")
    poster.fill("textarea[name=observables]", "198.51.100.44")
    poster.select_option("select[name=tlp]", "GREEN")
    poster.check(f"input[name=alliances][value='{alliance.id}']")
    poster.click("#post-submit")
    poster.wait_for_url(NOTE_URL)
    note_path = poster.url.removeprefix(base)
    sign_out(poster)
    coordinator_context.close()

    # Preview: built as the member, shown, not sent.
    page.goto(f"{base}/digests/preferences")
    page.click("#preview-link")
    page.wait_for_load_state()
    assert f"{day} at 23:00" in page.inner_text("#preview-when")
    preview_subject = page.inner_text("#preview-subject")
    preview_text = page.inner_text("#preview-text")
    assert "Scanner seen at the harbour authority" in preview_text
    assert note_path in preview_text
    assert preview_subject.startswith("[TLP:GREEN] CyberPeace digest — 1 new note")

    # A test mail: through Redis, the worker and SMTP; marked as a test; nothing recorded.
    page.click("#test-mail-submit")
    page.wait_for_load_state()
    assert "on its way" in page.inner_text("main")
    [test_mail] = _mails_to(smtp, member.email, 1)
    assert _subject(test_mail) == preview_subject.replace("] ", "] [TEST] ", 1)
    assert _text(test_mail).startswith("TEST MAIL")
    assert "Scanner seen at the harbour authority" in _text(test_mail)
    assert test_mail["Message-ID"].startswith(f"<test-digest-{member.id}-")
    assert [r.state for r in ledger(member, "digest")] == ["empty"]

    # 23:00: the day's digest comes, as the preview showed it.
    _digests_run(site, at_23 + timedelta(minutes=5))
    mails = _mails_to(smtp, member.email, 2)
    digests = [m for m in mails if m["Message-ID"].startswith(f"<digest-{member.id}-")]
    assert len(digests) == 1, [m["Subject"] for m in mails]
    [digest] = digests
    assert _subject(digest) == preview_subject
    assert _comparable(_text(digest)) == _comparable(preview_text)
    assert f"{base}{note_path}" in _text(digest)  # links from BASE_URL, the site's
    last = ledger(member, "digest")[-1]
    assert (last.state, last.window_start, last.window_end) == ("sent", at_8, at_23)

    # And the page now promises tomorrow at 23:00.
    tomorrow = today + timedelta(days=1)
    page.goto(f"{base}/digests/preferences")
    assert f"{tomorrow:%A} {tomorrow.day} {tomorrow:%B} at 23:00" in _promise(page)
    context.close()
