"""A person's journey in a real browser (Playwright driving Debian's chromium) against the
app served on loopback, with a real Celery worker on the embedded filesystem broker writing
mail to a maildir: register, get vetted, found an alliance, have another organisation ask to
join, approve it, see the audit entry and the decision mail."""
import mailbox
import os
import re
import time

import pytest

from tests import factories
from tests.browser.helpers import mail_text, sign_in, sign_out

pytestmark = pytest.mark.browser
ARTIFACTS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "artifacts")


def _mails(maildir, predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.isdir(maildir):
            found = [m for m in mailbox.Maildir(maildir, create=False) if predicate(m)]
            if found:
                return found
        time.sleep(0.3)
    return []


def test_register_vet_found_alliance_request_approve_audit_and_mail(live, browser, db):
    base, maildir = live["url"], live["maildir"]
    factories.make_admin("root@platform.example")
    second = factories.make_org("Second Responders")
    factories.make_user(second, "lead@second.example", role="org_admin", name="Lee Second")

    page = browser.new_page()
    # 1. Register an organisation with its first user.
    page.goto(f"{base}/register")
    page.fill("input[name=org_name]", "Harbour CERT")
    page.select_option("select[name=country]", "NL")
    page.select_option("select[name=sectors]", ["government", "infrastructure"])
    page.fill("input[name=name]", "Hanna Harbour")
    page.fill("input[name=email]", "hanna@harbour.example")
    page.fill("input[name=password]", factories.PASSWORD)
    page.fill("input[name=confirm]", factories.PASSWORD)
    page.click("button:has-text('Register organisation')")
    page.wait_for_load_state()
    assert "/register/sent" in page.url and "Check your e-mail" in page.content()
    # Confirm the e-mail address with the link the worker mailed (that creates the
    # organisation), then sign in.
    verify = _mails(maildir, lambda m: m["To"] == "hanna@harbour.example"
                    and "Confirm" in m["Subject"])
    assert verify, "no confirmation mail:\n" + live["worker"].log()[-3000:]
    link = re.search(r"http://\S+/register/confirm/\S+", mail_text(verify[0])).group(0)
    page.goto(link)  # opening it registers nothing: its button does
    page.click("#confirm-registration-submit")
    page.wait_for_load_state()
    assert "/auth/sign-in" in page.url and "Harbour CERT is registered" in page.content()
    sign_in(page, base, "hanna@harbour.example")
    assert "/status" in page.url and "pending" in page.content().lower()
    sign_out(page)

    # 2. The platform admin vets it.
    sign_in(page, base, "root@platform.example")
    page.goto(f"{base}/admin/organisations")
    card = page.locator("article.vet-card", has_text="Harbour CERT")
    card.locator("input[value=approve]").check()
    card.locator("button:has-text('Send decision')").click()
    page.wait_for_load_state()
    assert "Harbour CERT is approved" in page.content()
    sign_out(page)

    # 3. Hanna founds an alliance.
    sign_in(page, base, "hanna@harbour.example")
    page.goto(f"{base}/alliances/new")
    page.fill("input[name=name]", "North Sea Alliance")
    page.fill("input[name=slug]", "north-sea")
    page.fill("textarea[name=charter]", "Share in good faith.")
    page.click("button:has-text('Create alliance')")
    page.wait_for_load_state()
    assert page.url.endswith("/alliances/north-sea")
    sign_out(page)

    # 4. A second organisation asks to join.
    sign_in(page, base, "lead@second.example")
    page.goto(f"{base}/alliances/north-sea")
    page.fill("textarea[name=message]", "We run the port's SOC.")
    page.check("input[name=accept_charter]")
    page.click("button:has-text('Ask to join')")
    page.wait_for_load_state()
    assert "request" in page.content().lower()
    sign_out(page)

    # 5. The coordinator approves, and sees it in the audit log.
    sign_in(page, base, "hanna@harbour.example")
    page.goto(f"{base}/alliances/north-sea/members")
    page.locator("form", has_text="Approve").filter(
        has=page.locator("button:has-text('Approve')")).first.locator(
        "button:has-text('Approve')").click()
    page.wait_for_load_state()
    page.goto(f"{base}/alliances/north-sea/audit")
    log = page.content()
    assert "membership.approved" in log and "Second Responders" in log
    page.goto(f"{base}/alliances/north-sea")
    assert "Second Responders" in page.content()
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.screenshot(path=os.path.join(ARTIFACTS, "alliance-page.png"), full_page=True)
    sign_out(page)

    # 6. The decision mail reached the requesting org admin; the admin reads it on the page.
    decision = _mails(maildir, lambda m: m["To"] == "lead@second.example"
                      and "North Sea Alliance" in m["Subject"])
    assert decision, "no decision mail:\n" + live["worker"].log()[-3000:]
    sign_in(page, base, "root@platform.example")
    page.goto(f"{base}/admin/mail/")
    assert "lead@second.example" in page.content()
    page.click(f"a:has-text('{decision[0]['Subject']}')")
    page.wait_for_load_state()
    assert "North Sea Alliance" in page.content()
    page.close()
