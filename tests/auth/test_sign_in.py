"""Sign-in and sign-out: sessions, throttling, cookies and where the user is sent afterwards."""
import threading

import pytest
from sqlalchemy import select

from alliance.audit.models import AuditEvent
from alliance.auth.models import User
from alliance.extensions import db
from tests import factories
from tests.auth.helpers import SIGN_IN, is_signed_in, sign_in
from tests.factories import PASSWORD

WRONG = "Wrong-Password-Entirely-99"


@pytest.fixture
def analyst(db):
    org = factories.make_org("Analyst Org")
    return factories.make_user(org, "analyst@analyst.example")


def lockout_events():
    db.session.expire_all()
    return db.session.scalars(select(AuditEvent).where(AuditEvent.action == "signin.lockout")
                              .order_by(AuditEvent.id)).all()


# --- success and failure ---------------------------------------------------------------------

def test_sign_in_with_right_password_redirects_home_and_starts_a_session(client, analyst):
    response = sign_in(client, analyst.email)

    assert response.status_code == 302
    assert response.location == "/"
    with client.session_transaction() as sess:
        assert sess["_user_id"] == f"{analyst.id}:{analyst.session_version}"
    assert is_signed_in(client)
    assert factories.fresh(analyst).last_sign_in_at is not None


def test_sign_in_ignores_case_and_spaces_in_the_email(client, analyst):
    response = sign_in(client, "  Analyst@ANALYST.example ")

    assert response.status_code == 302
    assert is_signed_in(client)


def test_wrong_password_is_refused_without_a_session(client, analyst):
    response = sign_in(client, analyst.email, WRONG)

    assert response.status_code == 401
    assert not is_signed_in(client)
    with client.session_transaction() as sess:
        assert "_user_id" not in sess


def test_wrong_password_and_unknown_email_give_the_same_answer(make_client, analyst):
    wrong_password = sign_in(make_client(), analyst.email, WRONG)
    unknown_email = sign_in(make_client(), "nobody@analyst.example", WRONG)

    assert wrong_password.status_code == unknown_email.status_code == 401
    # The form echoes the typed address; apart from that the pages must not differ.
    assert (wrong_password.get_data(as_text=True).replace(analyst.email, "EMAIL")
            == unknown_email.get_data(as_text=True).replace("nobody@analyst.example", "EMAIL"))


@pytest.mark.parametrize("email", ["analyst\x00@analyst.example", "\x00", "a\x00"])
def test_an_address_with_a_nul_byte_is_an_unknown_account_not_an_error(make_client, analyst,
                                                                        email):
    # PostgreSQL refuses NUL in a query: before anyone signs in, that must not be a 500.
    odd = sign_in(make_client(), email, WRONG)
    unknown = sign_in(make_client(), "nobody@analyst.example", WRONG)

    assert odd.status_code == unknown.status_code == 401
    assert not is_signed_in(make_client())


# --- throttling ------------------------------------------------------------------------------

def test_account_is_locked_after_five_failures_even_for_the_right_password(client, analyst):
    for _ in range(5):
        assert sign_in(client, analyst.email, WRONG).status_code == 401

    response = sign_in(client, analyst.email, PASSWORD)

    assert response.status_code == 429
    assert not is_signed_in(client)
    events = lockout_events()
    assert len(events) == 1
    assert events[0].target_type == "account"
    assert events[0].target_id == str(analyst.id)
    assert events[0].target_label == analyst.email
    assert events[0].organisation_id == analyst.organisation_id


def test_lockout_counts_spellings_of_the_same_address_together(client, analyst):
    for spelling in ("ANALYST@analyst.example", "analyst@Analyst.Example",
                     " analyst@analyst.example", "Analyst@analyst.example",
                     "analyst@ANALYST.EXAMPLE"):
        assert sign_in(client, spelling, WRONG).status_code == 401

    assert sign_in(client, analyst.email, PASSWORD).status_code == 429


def test_lockout_is_audited_once_per_burst_not_once_per_refused_attempt(client, analyst):
    for _ in range(5):
        sign_in(client, analyst.email, WRONG)
    for _ in range(3):
        assert sign_in(client, analyst.email, WRONG).status_code == 429

    assert len(lockout_events()) == 1


def test_unknown_account_is_locked_and_audited_like_a_known_one(make_client, analyst):
    for _ in range(5):
        sign_in(make_client(), analyst.email, WRONG)
        sign_in(make_client(), "ghost@analyst.example", WRONG)

    known = sign_in(make_client(), analyst.email, PASSWORD)
    unknown = sign_in(make_client(), "ghost@analyst.example", WRONG)

    assert known.status_code == unknown.status_code == 429
    assert known.get_data() == unknown.get_data()
    events = lockout_events()
    assert [e.target_label for e in events] == [analyst.email, "ghost@analyst.example"]
    assert events[1].target_id is None


def test_lockout_of_one_account_does_not_lock_others(client, analyst):
    other = factories.make_user(analyst.organisation, "colleague@analyst.example")
    for _ in range(5):
        sign_in(client, analyst.email, WRONG)

    assert sign_in(client, other.email, PASSWORD).status_code == 302


def test_successful_sign_ins_do_not_count_towards_the_lockout(make_client, analyst):
    for _ in range(6):
        assert sign_in(make_client(), analyst.email).status_code == 302


@pytest.mark.parametrize("spread", [False, True], ids=["one-address", "many-addresses"])
def test_wrong_passwords_sent_at_the_same_moment_get_no_more_guesses_than_the_limit(
        app, make_client, analyst, monkeypatch, spread):
    """Eight guesses in flight at once against an account allowed five, from one address
    (the per-address limit) or from eight (the account's ceiling, lowered to five here):
    each is counted before its password is checked, so five are checked. (Counted after the
    answer, all eight passed the check before any was counted.) The password check is held
    until five are inside it, as scrypt's 0.2 s would hold them."""
    from alliance.auth import services

    limit = 5
    if spread:
        monkeypatch.setitem(app.config, "SIGNIN_LIMIT_ACCOUNT_CEILING", "5 per 15 minutes")
    inside = threading.Barrier(limit, timeout=5)
    checked = []

    def slow_wrong_password(email, password):
        checked.append(password)
        try:
            inside.wait()
        except threading.BrokenBarrierError:
            pass
        return None

    monkeypatch.setattr(services, "authenticate", slow_wrong_password)
    email, statuses = analyst.email, []

    def attempt(i):
        with app.app_context():
            statuses.append(sign_in(make_client(), email, f"{WRONG}-{i}",
                                    ip=f"10.0.0.{i + 1}" if spread else "10.0.0.1"
                                    ).status_code)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    assert len(checked) == limit
    assert sorted(statuses) == [401] * limit + [429] * 3


def test_a_sign_in_clears_the_failed_attempts_before_it(make_client, analyst):
    for _ in range(4):
        assert sign_in(make_client(), analyst.email, WRONG).status_code == 401
    assert sign_in(make_client(), analyst.email).status_code == 302
    for _ in range(4):
        assert sign_in(make_client(), analyst.email, WRONG).status_code == 401


def test_too_many_attempts_from_one_address_are_refused_but_other_addresses_are_not(
        app, make_client, analyst, monkeypatch):
    monkeypatch.setitem(app.config, "SIGNIN_LIMIT_IP", "3 per 15 minutes")
    for n in range(3):  # three different accounts: no account limit is near
        assert sign_in(make_client(), f"user{n}@nowhere.example", WRONG,
                       ip="203.0.113.7").status_code == 401

    assert sign_in(make_client(), analyst.email, ip="203.0.113.7").status_code == 429
    assert sign_in(make_client(), analyst.email, ip="198.51.100.4").status_code == 302


def test_an_ipv6_client_is_one_client_across_its_64(app, make_client, analyst, monkeypatch):
    """An IPv6 client holds at least a /64 and could send each attempt from another address
    in it: the per-address limit counts the /64 (and its lockout is audited once)."""
    monkeypatch.setitem(app.config, "SIGNIN_LIMIT_IP", "3 per 15 minutes")
    for n in range(3):
        assert sign_in(make_client(), f"user{n}@nowhere.example", WRONG,
                       ip=f"2001:db8:1:2::{n + 1:x}").status_code == 401
    for n in range(3, 6):
        assert sign_in(make_client(), f"user{n}@nowhere.example", WRONG,
                       ip=f"2001:db8:1:2:{n:x}::1").status_code == 429
    assert sign_in(make_client(), analyst.email, ip="2001:db8:1:3::1").status_code == 302
    assert [e.target_label for e in lockout_events()] == ["2001:db8:1:2::/64"]


def test_too_many_attempts_from_one_address_are_audited_once_per_burst(
        app, make_client, monkeypatch):
    """Many accounts tried from one address (password spraying) is a lockout no account's own
    limit shows; it is audited like one, once per burst however long the hammering goes on."""
    monkeypatch.setitem(app.config, "SIGNIN_LIMIT_IP", "3 per 15 minutes")
    for n in range(3):
        sign_in(make_client(), f"user{n}@nowhere.example", WRONG, ip="203.0.113.7")
    for n in range(3, 6):
        assert sign_in(make_client(), f"user{n}@nowhere.example", WRONG,
                       ip="203.0.113.7").status_code == 429

    [event] = lockout_events()
    assert (event.target_type, event.target_label) == ("ip", "203.0.113.7")
    assert event.details["limit"].startswith("3 per 15")


# --- lockouts that tell nothing and lock nobody out --------------------------------------------

def _lock_out(make_client, email, *, ip="127.0.0.1", attempts=5):
    for _ in range(attempts):
        sign_in(make_client(), email, WRONG, ip=ip)


def _same_answer(known, unknown):
    assert known.status_code == unknown.status_code == 429
    assert known.get_data() == unknown.get_data()
    # Per request or per client, never per account: the date, the request id, the cookie.
    strip = {"Date", "X-Request-ID", "Set-Cookie"}
    assert ({k: v for k, v in known.headers if k not in strip}
            == {k: v for k, v in unknown.headers if k not in strip})
    assert (len(known.headers.getlist("Set-Cookie"))
            == len(unknown.headers.getlist("Set-Cookie")))


@pytest.mark.parametrize("tripped", ["account-address", "account-ceiling", "address"])
def test_a_refused_sign_in_answers_the_same_for_known_and_unknown_accounts(
        app, make_client, analyst, monkeypatch, tripped):
    """Whichever limit refuses the attempt, a known account (with its right password) and an
    unknown one get the same status, body and headers: the answer does not tell which
    addresses have accounts, nor which limit was reached."""
    ghost = "ghost@analyst.example"
    if tripped == "account-address":
        for email in (analyst.email, ghost):
            _lock_out(make_client, email)
        ips = ("127.0.0.1", "127.0.0.1")
    elif tripped == "account-ceiling":
        monkeypatch.setitem(app.config, "SIGNIN_LIMIT_ACCOUNT_CEILING", "4 per 15 minutes")
        for n in range(4):
            for email in (analyst.email, ghost):
                sign_in(make_client(), email, WRONG, ip=f"198.51.100.{n + 1}")
        ips = ("192.0.2.1", "192.0.2.2")
    else:
        monkeypatch.setitem(app.config, "SIGNIN_LIMIT_IP", "3 per 15 minutes")
        for n in range(3):
            for ip in ("203.0.113.7", "203.0.113.8"):
                sign_in(make_client(), f"user{n}@nowhere.example", WRONG, ip=ip)
        ips = ("203.0.113.7", "203.0.113.8")

    known = sign_in(make_client(), analyst.email, PASSWORD, ip=ips[0])
    unknown = sign_in(make_client(), ghost, WRONG, ip=ips[1])

    _same_answer(known, unknown)
    assert "one-time sign-in link" in known.get_data(as_text=True)


def test_the_refused_answer_is_the_same_whichever_limit_refused_it(app, make_client, analyst,
                                                                    monkeypatch):
    monkeypatch.setitem(app.config, "SIGNIN_LIMIT_IP", "5 per 15 minutes")
    _lock_out(make_client, analyst.email, ip="198.51.100.1")
    by_account = sign_in(make_client(), analyst.email, ip="198.51.100.1")
    for n in range(5):
        sign_in(make_client(), f"user{n}@nowhere.example", WRONG, ip="198.51.100.2")
    by_address = sign_in(make_client(), analyst.email, ip="198.51.100.2")

    _same_answer(by_account, by_address)


def test_an_unknown_account_is_checked_against_a_dummy_hash_as_long_as_a_known_one(
        make_client, analyst, monkeypatch):
    """The same work for both: a password hash is checked whether or not the account
    exists, so the time of the answer does not tell either."""
    from alliance.auth import services

    checked = []
    real = services.check_password_hash
    monkeypatch.setattr(services, "check_password_hash",
                        lambda stored, password: checked.append(stored) or real(stored, password))

    sign_in(make_client(), analyst.email, WRONG)
    sign_in(make_client(), "ghost@analyst.example", WRONG)

    assert checked == [analyst.password_hash, services._DUMMY_HASH]
    assert checked[1].startswith("scrypt:") and checked[0].split("$")[0] == checked[1].split("$")[0]


def test_the_owner_signs_in_from_another_address_while_an_attacker_address_is_locked_out(
        make_client, analyst):
    _lock_out(make_client, analyst.email, ip="203.0.113.66")
    assert sign_in(make_client(), analyst.email, PASSWORD, ip="203.0.113.66").status_code == 429

    owner = make_client()
    assert sign_in(owner, analyst.email, PASSWORD, ip="198.51.100.20").status_code == 302
    assert is_signed_in(owner)
    # The owner's sign-in does not lift the attacker's lockout.
    assert sign_in(make_client(), analyst.email, WRONG, ip="203.0.113.66").status_code == 429


def test_the_account_ceiling_refuses_guesses_spread_over_many_addresses(
        app, make_client, analyst, monkeypatch):
    monkeypatch.setitem(app.config, "SIGNIN_LIMIT_ACCOUNT_CEILING", "12 per 15 minutes")
    for n in range(6):  # two guesses from each of six addresses: no address is near its limit
        for _ in range(2):
            assert sign_in(make_client(), analyst.email, WRONG,
                           ip=f"198.51.100.{n + 1}").status_code == 401

    response = sign_in(make_client(), analyst.email, PASSWORD, ip="192.0.2.50")

    assert response.status_code == 429
    [event] = lockout_events()
    assert (event.target_type, event.target_id, event.target_label) == (
        "account", str(analyst.id), analyst.email)
    assert event.details["kind"] == "ceiling"
    assert event.details["limit"].startswith("12 per 15")
    # Still refused, and audited once, from yet another address.
    assert sign_in(make_client(), analyst.email, PASSWORD, ip="192.0.2.51").status_code == 429
    assert len(lockout_events()) == 1


def test_attempts_refused_for_one_address_do_not_count_towards_the_account_ceiling(
        app, make_client, analyst, monkeypatch):
    """One address hammering a locked account must not trip the ceiling, which would lock
    the owner out everywhere: only the attempts its own limit lets through count."""
    monkeypatch.setitem(app.config, "SIGNIN_LIMIT_ACCOUNT_CEILING", "10 per 15 minutes")
    _lock_out(make_client, analyst.email, ip="203.0.113.66", attempts=40)

    assert sign_in(make_client(), analyst.email, ip="198.51.100.20").status_code == 302


def test_a_sign_in_takes_back_its_own_attempt_but_not_the_others_from_the_ceiling(
        app, make_client, analyst, monkeypatch):
    monkeypatch.setitem(app.config, "SIGNIN_LIMIT_ACCOUNT_CEILING", "4 per 15 minutes")
    for n in range(3):
        sign_in(make_client(), analyst.email, WRONG, ip=f"198.51.100.{n + 1}")
    for _ in range(3):  # the owner's sign-ins neither count nor clear the guesses
        assert sign_in(make_client(), analyst.email, ip="192.0.2.9").status_code == 302

    assert sign_in(make_client(), analyst.email, WRONG, ip="198.51.100.9").status_code == 401
    assert sign_in(make_client(), analyst.email, ip="192.0.2.9").status_code == 429


def test_lockouts_of_one_account_from_two_addresses_are_audited_once_each(make_client,
                                                                          analyst):
    for ip in ("203.0.113.1", "203.0.113.2"):
        _lock_out(make_client, analyst.email, ip=ip, attempts=7)

    events = lockout_events()
    assert [(e.target_label, e.details["kind"], e.details["network"]) for e in events] == [
        (analyst.email, "address", "203.0.113.1"), (analyst.email, "address", "203.0.113.2")]


def test_a_wrong_password_page_does_not_offer_the_sign_in_link(make_client, analyst):
    page = sign_in(make_client(), analyst.email, WRONG).get_data(as_text=True)

    assert "one-time sign-in link" not in page


# --- the session cookie ----------------------------------------------------------------------

def _session_cookie_header(response) -> str:
    headers = [h for h in response.headers.getlist("Set-Cookie")
               if h.startswith("alliance_session=")]
    assert headers, "the response set no session cookie"
    return headers[-1]


def test_session_cookie_is_http_only_and_same_site_lax(client, analyst):
    header = _session_cookie_header(sign_in(client, analyst.email))

    assert "HttpOnly" in header
    assert "SameSite=Lax" in header


@pytest.fixture
def production_app(app, database_url):
    """An app built from the production configuration (with a key and the test database)."""
    from alliance import create_app
    from config import ProductionConfig

    class Production(ProductionConfig):
        SECRET_KEY = "production-like-secret-key-for-tests-only-0123456789"
        SQLALCHEMY_DATABASE_URI = database_url
        WTF_CSRF_ENABLED = False

    production = create_app(Production)
    yield production
    with production.app_context():
        db.engine.dispose()
    app.extensions["celery"].set_default()  # create_app made the new app's Celery the default


def test_production_session_cookie_is_also_secure(production_app, analyst):
    response = sign_in(production_app.test_client(), analyst.email)

    assert response.status_code == 302
    header = _session_cookie_header(response)
    assert "Secure" in header
    assert "HttpOnly" in header
    assert "SameSite=Lax" in header


def test_testing_session_cookie_is_not_marked_secure_over_plain_http(client, analyst):
    # The counterpart of the production test: the flag comes from the configuration.
    assert "Secure" not in _session_cookie_header(sign_in(client, analyst.email))


def test_production_refuses_to_start_without_a_secret_key(monkeypatch):
    from alliance import create_app
    from config import ProductionConfig

    monkeypatch.setattr(ProductionConfig, "SECRET_KEY", None)
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app("production")


# --- session lifetime ------------------------------------------------------------------------

def test_sign_in_starts_a_new_session_without_what_was_planted_before(client, analyst):
    with client.session_transaction() as sess:
        sess["planted"] = "fixed-by-an-attacker"

    sign_in(client, analyst.email)

    with client.session_transaction() as sess:
        assert "planted" not in sess
        assert "_user_id" in sess


def _copy_session(source, target) -> None:
    cookie = source.get_cookie("alliance_session")
    target.set_cookie("alliance_session", cookie.value)


def test_copied_session_cookie_is_refused_after_sign_out(make_client, analyst):
    browser, thief = make_client(), make_client()
    sign_in(browser, analyst.email)
    _copy_session(browser, thief)
    assert is_signed_in(thief)  # the copy works while the session lives

    browser.post("/auth/sign-out")

    assert not is_signed_in(browser)
    assert not is_signed_in(thief)
    response = thief.get("/alliances/")
    assert response.status_code == 302
    assert response.location.startswith(SIGN_IN)


def test_sign_out_by_get_is_not_allowed_and_keeps_the_session(client, analyst):
    sign_in(client, analyst.email)

    response = client.get("/auth/sign-out")

    assert response.status_code == 405
    assert is_signed_in(client)


def test_changing_password_ends_other_sessions_but_keeps_the_current_one(make_client, analyst):
    laptop, phone = make_client(), make_client()
    sign_in(laptop, analyst.email)
    sign_in(phone, analyst.email)
    new_password = "Velvet-Harbour-Lantern-8841"

    response = laptop.post("/auth/password", data={"current_password": PASSWORD,
                                                   "password": new_password,
                                                   "confirm": new_password})

    assert response.status_code == 302
    assert is_signed_in(laptop)
    assert not is_signed_in(phone)
    assert sign_in(make_client(), analyst.email, new_password).status_code == 302


def test_changing_password_with_a_wrong_current_password_changes_nothing(make_client, analyst):
    laptop, phone = make_client(), make_client()
    sign_in(laptop, analyst.email)
    sign_in(phone, analyst.email)
    old_hash = analyst.password_hash

    response = laptop.post("/auth/password", data={"current_password": WRONG,
                                                   "password": "Velvet-Harbour-Lantern-8841",
                                                   "confirm": "Velvet-Harbour-Lantern-8841"})

    assert response.status_code == 422
    assert factories.fresh(analyst).password_hash == old_hash
    assert is_signed_in(phone)


def test_changing_password_refuses_an_overlong_current_password_without_hashing_it(
        make_client, analyst, monkeypatch):
    from alliance.auth import services

    laptop = make_client()
    sign_in(laptop, analyst.email)
    checked = []
    monkeypatch.setattr(services, "check_password_hash", lambda *a: checked.append(a) or False)

    response = laptop.post("/auth/password", data={"current_password": "x" * 100_000,
                                                   "password": "Velvet-Harbour-Lantern-8841",
                                                   "confirm": "Velvet-Harbour-Lantern-8841"})

    assert response.status_code == 422
    assert checked == []
    assert factories.fresh(analyst).password_hash == analyst.password_hash


# --- where to go after signing in ------------------------------------------------------------

@pytest.mark.parametrize("target", [
    "https://evil.example",
    "//evil.example",
    "/\\evil.example",
    "javascript:alert(1)",
    "http:/evil.example",
    "/\t/evil.example",
    "https:evil.example",
])
def test_sign_in_ignores_next_pointing_off_site(client, analyst, target):
    response = sign_in(client, analyst.email, next=target)

    assert response.status_code == 302
    assert response.location == "/"


def test_sign_in_ignores_an_off_site_next_in_the_query_string(client, analyst):
    response = sign_in(client, analyst.email, query="?next=//evil.example/steal")

    assert response.location == "/"


def test_sign_in_follows_next_to_a_page_of_this_site(client, analyst):
    response = sign_in(client, analyst.email, query="?next=/alliances/")

    assert response.status_code == 302
    assert response.location == "/alliances/"


def test_member_page_sends_visitors_to_sign_in_with_next(client):
    response = client.get("/alliances/")

    assert response.status_code == 302
    assert response.location.startswith(SIGN_IN)
    assert "next=%2Falliances%2F" in response.location


# --- deactivated accounts --------------------------------------------------------------------

def _deactivate(user) -> None:
    from alliance.core.models import utcnow

    user = db.session.get(User, user.id)
    user.deactivated_at = utcnow()
    db.session.commit()


def test_deactivated_users_session_is_dropped(client, analyst):
    sign_in(client, analyst.email)
    assert is_signed_in(client)

    _deactivate(analyst)

    assert not is_signed_in(client)


def test_deactivated_user_cannot_sign_in_and_looks_like_a_wrong_password(make_client, analyst):
    _deactivate(analyst)

    deactivated = sign_in(make_client(), analyst.email, PASSWORD)
    wrong = sign_in(make_client(), analyst.email, WRONG)

    assert deactivated.status_code == 401
    assert deactivated.get_data() == wrong.get_data()


def test_signed_in_users_opening_sign_in_are_sent_home(client, analyst):
    sign_in(client, analyst.email)

    response = client.get(SIGN_IN)

    assert response.status_code == 302
    assert response.location == "/"


def test_a_lockout_is_found_again_in_its_window_when_the_limits_live_in_redis(
        app, db, redis_server):
    """Production keeps the limits in Redis, which gives a window's end from the key's TTL in
    whole seconds: the window start read back wandered by up to half a second, so a burst's
    own event, recorded at its first refusal, fell outside it and each later refusal was
    audited again (three events for one burst over two gunicorn processes). Real Redis,
    real limits storage; read back every tenth of a second across a full second."""
    import time

    from flask_limiter import RequestLimit
    from limits import parse
    from limits.storage import storage_from_string
    from limits.strategies import FixedWindowRateLimiter

    from alliance.audit.services import record
    from alliance.auth.views import _lockout_recorded

    class Extension:  # what RequestLimit reads of the limiter extension: its strategy
        limiter = FixedWindowRateLimiter(storage_from_string(redis_server.url))

    extension, limit = Extension(), parse("5 per 15 minutes")
    extension.limiter.hit(limit, "signin:redis", "signin-account")
    record("signin.lockout", None, ("account", None, "redis@analyst.example"))
    db.session.commit()

    found = []
    for _ in range(12):
        window = RequestLimit(extension, limit, ["signin:redis", "signin-account"], True, False)
        found.append(_lockout_recorded("account", "redis@analyst.example", window))
        time.sleep(0.1)
    assert found == [True] * 12


def test_a_sign_in_takes_its_attempt_back_from_the_ceiling_when_the_limits_live_in_redis(
        redis_server):
    """A success takes back its own hit on the account's ceiling with a hit of cost -1: in
    the fixed-window strategy that is a decrement, in Redis as in memory."""
    from limits import parse
    from limits.storage import storage_from_string
    from limits.strategies import FixedWindowRateLimiter

    limiter = FixedWindowRateLimiter(storage_from_string(redis_server.url))
    limit, args = parse("3 per 15 minutes"), ("signin:taken-back", "signin-account-ceiling")
    for _ in range(3):
        assert limiter.hit(limit, *args)
    limiter.hit(limit, *args, cost=-1)

    assert limiter.hit(limit, *args)
    assert not limiter.hit(limit, *args)
