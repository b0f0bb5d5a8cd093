"""Digests and watch terms in a real browser (Playwright driving Debian's chromium) against
the app on loopback with a real Celery worker writing mail to a maildir: a member makes the
digest settings their own and watches an address; another organisation shares a note
carrying it; the alert arrives once, naming the term (TLP:GREEN) and linking the note; the
member stops watching it."""
import mailbox
import os
import re
import time
from email.header import decode_header, make_header

import pytest

from tests.browser.helpers import mail_text, sign_in, sign_out, signed_in_page

pytestmark = pytest.mark.browser
NOTE_URL = re.compile(r"/notes/[0-9a-f-]{36}$")


def _mails_to(maildir, address, timeout=60.0, settle=2.0) -> list:
    """The mails to an address once one has arrived, after `settle` more seconds (a second
    one would have come by then)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.isdir(maildir) and any(m["To"] == address
                                          for m in mailbox.Maildir(maildir, create=False)):
            time.sleep(settle)
            return [m for m in mailbox.Maildir(maildir, create=False) if m["To"] == address]
        time.sleep(0.3)
    return []


def _why_no_mail(live) -> str:
    """What the outbox and the worker say, for a failure message."""
    from sqlalchemy import select

    from alliance.digests.models import Delivery
    from alliance.extensions import db
    from alliance.outbox.models import OutboxMessage

    db.session.rollback()
    rows = db.session.execute(select(OutboxMessage.id, OutboxMessage.kind, OutboxMessage.done_at,
                                     OutboxMessage.failed_at, OutboxMessage.claimed_until,
                                     OutboxMessage.run_attempts, OutboxMessage.last_error)
                              .order_by(OutboxMessage.id)).all()
    ledger = db.session.execute(select(Delivery.user_id, Delivery.kind, Delivery.state,
                                       Delivery.note_id)).all()
    return (f"outbox: {rows[-20:]}\nledger: {ledger[-20:]}\n"
            f"worker log:\n{live['worker'].log()[-6000:]}")


def test_settings_a_watch_term_and_its_alert_mail(live, browser, member, coordinator, alliance):
    base, maildir = live["url"], live["maildir"]
    context, page = signed_in_page(browser, base, member.email)
    page.goto(f"{base}/digests/preferences")
    assert "You have not chosen yet" in page.inner_text("#defaults-status")
    page.check("input[name=frequency][value=weekly]")
    page.select_option("select[name=weekday]", "2")
    page.select_option("select[name=hour]", "7")
    page.select_option("select[name=timezone]", "Europe/Vilnius")
    page.check("input[name=alerts]")
    page.click("#preferences-submit")
    page.wait_for_load_state()
    page.goto(f"{base}/digests/preferences")  # what was stored, not what the form kept
    assert "These are your own settings" in page.inner_text("#defaults-status")
    assert page.is_checked("input[name=frequency][value=weekly]")
    assert page.input_value("select[name=weekday]") == "2"
    assert page.input_value("select[name=hour]") == "7"
    assert page.input_value("select[name=timezone]") == "Europe/Vilnius"
    assert "No watch terms yet" in page.inner_text("#watch-terms")

    page.select_option("#watch-kind", "value")
    page.fill("#watch-value", "203.0.113.99")
    page.click("#add-value-submit")
    page.wait_for_load_state()
    assert "203.0.113.99" in page.inner_text("#watch-term-list")
    sign_out(page)

    sign_in(page, base, coordinator.email)
    page.goto(f"{base}/notes/new/indicators")
    page.fill("input[name=title]", "Beacon seen at the port authority")
    page.fill("textarea[name=observables]", "203.0.113.99")
    page.select_option("select[name=tlp]", "GREEN")
    page.check(f"input[name=alliances][value='{alliance.id}']")
    page.click("#post-submit")
    page.wait_for_url(NOTE_URL)
    note_path = page.url.removeprefix(base)
    sign_out(page)

    mails = _mails_to(maildir, member.email)
    assert len(mails) == 1, _why_no_mail(live)
    [alert] = mails
    subject = str(make_header(decode_header(alert["Subject"])))
    assert subject == "[TLP:GREEN] CyberPeace alert — 203.0.113.99 in a new note"
    body = mail_text(alert)
    assert "Beacon seen at the port authority" in body and note_path in body

    sign_in(page, base, member.email)
    page.goto(f"{base}/digests/preferences")
    page.click("#watch-term-list button:has-text('Remove')")
    page.wait_for_load_state()
    assert page.locator("#watch-term-list").count() == 0
    assert "No watch terms yet" in page.inner_text("#watch-terms")
    context.close()
