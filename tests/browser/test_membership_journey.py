"""A person's journey in a real browser (Playwright driving Debian's chromium) against the
app served on loopback, with a real Celery worker on the embedded filesystem broker writing
mail to a maildir: register, get vetted, found an alliance, have another organisation ask to
join, approve it, see the audit entry and the decision mail."""
import mailbox
import os
import re
import threading
import time

import pytest
from werkzeug.serving import make_server

from tests import factories
from tests.servers import CeleryWorker, free_port

pytestmark = pytest.mark.browser
ARTIFACTS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "artifacts")
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def live(app, tmp_root):
    """The app on a loopback port, with its own instance folder, maildir and worker."""
    from alliance import create_app

    port = free_port()
    instance = os.path.join(tmp_root, "browser-instance")
    maildir = os.path.join(tmp_root, "browser-maildir")
    os.makedirs(instance, exist_ok=True)
    base_url = f"http://127.0.0.1:{port}"
    live_app = create_app({"SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
                           "MAIL_URL": maildir, "BASE_URL": base_url,
                           "INSTANCE_PATH": instance})
    server = make_server("127.0.0.1", port, live_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    worker = CeleryWorker({
        "ALLIANCE_ENV": "testing",
        "TEST_DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"].replace(
            "postgresql+psycopg://", "postgresql://"),
        "MAIL_URL": maildir, "BASE_URL": base_url, "INSTANCE_PATH": instance,
        "OUTBOX_RELAY_SECONDS": "1",
    }, logfile=os.path.join(tmp_root, "browser-worker.log")).start()
    yield {"url": base_url, "maildir": maildir, "worker": worker}
    worker.stop()
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian's chromium is missing: make test installs it as root "
                    "(apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield browser
        browser.close()


def _mails(maildir, predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.isdir(maildir):
            found = [m for m in mailbox.Maildir(maildir, create=False) if predicate(m)]
            if found:
                return found
        time.sleep(0.3)
    return []


def _text(mail) -> str:
    for part in mail.walk():
        if part.get_content_type() == "text/plain":
            return part.get_payload(decode=True).decode()
    return ""


def _sign_in(page, base, email, password=factories.PASSWORD):
    page.goto(f"{base}/auth/sign-in")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button:has-text('Sign in')")
    page.wait_for_load_state()


def _sign_out(page):
    page.click("button:has-text('Sign out')")
    page.wait_for_load_state()


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
    link = re.search(r"http://\S+/register/confirm/\S+", _text(verify[0])).group(0)
    page.goto(link)
    assert "/auth/sign-in" in page.url and "Harbour CERT is registered" in page.content()
    _sign_in(page, base, "hanna@harbour.example")
    assert "/status" in page.url and "pending" in page.content().lower()
    _sign_out(page)

    # 2. The platform admin vets it.
    _sign_in(page, base, "root@platform.example")
    page.goto(f"{base}/admin/organisations")
    card = page.locator("article.vet-card", has_text="Harbour CERT")
    card.locator("input[value=approve]").check()
    card.locator("button:has-text('Send decision')").click()
    page.wait_for_load_state()
    assert "Harbour CERT is approved" in page.content()
    _sign_out(page)

    # 3. Hanna founds an alliance.
    _sign_in(page, base, "hanna@harbour.example")
    page.goto(f"{base}/alliances/new")
    page.fill("input[name=name]", "North Sea Alliance")
    page.fill("input[name=slug]", "north-sea")
    page.fill("textarea[name=charter]", "Share in good faith.")
    page.click("button:has-text('Create alliance')")
    page.wait_for_load_state()
    assert page.url.endswith("/alliances/north-sea")
    _sign_out(page)

    # 4. A second organisation asks to join.
    _sign_in(page, base, "lead@second.example")
    page.goto(f"{base}/alliances/north-sea")
    page.fill("textarea[name=message]", "We run the port's SOC.")
    page.check("input[name=accept_charter]")
    page.click("button:has-text('Ask to join')")
    page.wait_for_load_state()
    assert "request" in page.content().lower()
    _sign_out(page)

    # 5. The coordinator approves, and sees it in the audit log.
    _sign_in(page, base, "hanna@harbour.example")
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
    _sign_out(page)

    # 6. The decision mail reached the requesting org admin; the admin reads it on the page.
    decision = _mails(maildir, lambda m: m["To"] == "lead@second.example"
                      and "North Sea Alliance" in m["Subject"])
    assert decision, "no decision mail:\n" + live["worker"].log()[-3000:]
    _sign_in(page, base, "root@platform.example")
    page.goto(f"{base}/admin/mail/")
    assert "lead@second.example" in page.content()
    page.click(f"a:has-text('{decision[0]['Subject']}')")
    page.wait_for_load_state()
    assert "North Sea Alliance" in page.content()
    page.close()
