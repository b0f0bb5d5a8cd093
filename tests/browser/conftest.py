"""The browser tests' servers: the app on a loopback port with a real Celery worker, and
Debian's chromium driven by Playwright. Module-scoped: each test module gets its own.
Every page a test visits is checked with axe-core (tests/browser/axe.py): a serious or
critical violation fails the test."""
import os
import threading

import pytest
from werkzeug.serving import make_server

from tests.browser.axe import AxeAudit
from tests.servers import CeleryWorker, free_port

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def live(app, tmp_root):
    """The app on a loopback port, with its own instance folder, maildir and worker.
    "requests" lists the (method, path) of every request the server was sent, as it
    received them: what the browser really sent, which a page cannot tell."""
    from alliance import create_app

    port = free_port()
    instance = os.path.join(tmp_root, "browser-instance")
    maildir = os.path.join(tmp_root, "browser-maildir")
    os.makedirs(instance, exist_ok=True)
    base_url = f"http://127.0.0.1:{port}"
    live_app = create_app({"SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
                           "MAIL_URL": maildir, "BASE_URL": base_url,
                           "INSTANCE_PATH": instance})
    received = []
    inner = live_app.wsgi_app

    def logged(environ, start_response):
        received.append((environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")))
        return inner(environ, start_response)

    live_app.wsgi_app = logged
    server = make_server("127.0.0.1", port, live_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    worker = CeleryWorker({
        "ALLIANCE_ENV": "testing",
        "TEST_DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"].replace(
            "postgresql+psycopg://", "postgresql://"),
        "MAIL_URL": maildir, "BASE_URL": base_url, "INSTANCE_PATH": instance,
        "OUTBOX_RELAY_SECONDS": "1",
    }, logfile=os.path.join(tmp_root, f"browser-worker-{port}.log")).start()
    yield {"url": base_url, "maildir": maildir, "worker": worker, "requests": received}
    worker.stop()
    server.shutdown()


@pytest.fixture(scope="module")
def axe():
    """The axe-core audit of the browser's pages; the test's violations fail it."""
    try:
        audit = AxeAudit()
    except RuntimeError as missing:
        pytest.fail(str(missing))
    uninstall = audit.install()
    yield audit
    uninstall()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """A test that visited a page with serious or critical axe violations fails, once its own
    assertions have passed (a failure of its own is the one to read first)."""
    audit = item.funcargs.get("axe")
    if audit is None:
        return (yield)
    audit.begin()
    try:
        result = yield
    except BaseException:
        try:
            report = audit.finish()
        except Exception as error:  # the test's own failure is the one to report
            report = f"axe-core could not finish: {error}"
        if report:  # shown beside the test's own failure
            item.add_report_section("call", "axe-core", report)
        raise
    report = audit.finish()
    if report:
        pytest.fail(report, pytrace=False)
    return result


def _audited(browser, audit):
    """Every context and page this browser opens is watched by the audit."""
    new_context, new_page = browser.new_context, browser.new_page

    def audited_context(*args, **kwargs):
        context = new_context(*args, **kwargs)
        audit.watch_context(context)
        return context

    def audited_page(*args, **kwargs):
        page = new_page(*args, **kwargs)  # in a context of its own, closed with the page
        audit.watch_context(page.context)
        return page

    browser.new_context, browser.new_page = audited_context, audited_page
    return browser


@pytest.fixture(scope="module")
def browser(axe):
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian's chromium is missing: make test installs it as root "
                    "(apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield _audited(browser, axe)
        browser.close()
