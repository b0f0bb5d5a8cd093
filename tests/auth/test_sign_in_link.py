"""One-time sign-in links by mail: the owner's way in while their account is locked."""
import pytest
from sqlalchemy import select

from alliance.audit.models import AuditEvent
from alliance.extensions import db
from tests import factories
from tests.auth.helpers import is_signed_in, mails_with, path_of, run_outbox, sign_in
from tests.factories import PASSWORD

WRONG = "Wrong-Password-Entirely-99"
LINK_REQUEST = "/auth/sign-in/link"


@pytest.fixture
def owner(db):
    org = factories.make_org("Link Org")
    return factories.make_user(org, "owner@link.example")


def request_link(client, email, *, ip="127.0.0.1"):
    """Ask for a link, then let the worker do its part (it looks the address up)."""
    response = client.post(LINK_REQUEST, data={"link_email": email},
                           environ_base={"REMOTE_ADDR": ip})
    run_outbox("auth.sign_in_link")
    return response


@pytest.fixture
def link_path(client, owner):
    request_link(client, owner.email)
    [mail] = mails_with("sign_in_link")
    return path_of(mail["context"]["link"])


def link_events():
    db.session.expire_all()
    return db.session.scalars(select(AuditEvent).where(AuditEvent.action == "signin.link")).all()


def test_a_locked_out_owner_gets_in_by_a_link_sent_by_mail(make_client, owner):
    attacker, browser = make_client(), make_client()
    for _ in range(5):
        sign_in(attacker, owner.email, WRONG)
    locked = sign_in(browser, owner.email, PASSWORD)  # the owner, behind the same address
    assert locked.status_code == 429
    assert 'id="sign-in-link-form"' in locked.get_data(as_text=True)

    asked = request_link(browser, owner.email)
    assert asked.status_code == 200
    [mail] = mails_with("sign_in_link")
    assert mail["to"] == owner.email
    assert mail["context"]["link"].startswith("http://alliance.test/auth/sign-in/link/")
    assert mail["context"]["minutes"] == 15

    response = browser.post(path_of(mail["context"]["link"]))

    assert response.status_code == 302
    assert response.location == "/"
    assert is_signed_in(browser)
    [event] = link_events()
    assert (event.target_type, event.target_id, event.target_label) == (
        "user", str(owner.id), owner.email)
    assert event.actor_id == owner.id
    assert event.organisation_id == owner.organisation_id


def test_opening_the_link_shows_a_button_and_signs_nobody_in(client, owner, link_path):
    """Mail scanners open links before people do: a GET changes nothing."""
    before = factories.fresh(owner).last_sign_in_at

    for _ in range(3):
        page = client.get(link_path)
        assert page.status_code == 200
        assert 'id="sign-in-link-confirm"' in page.get_data(as_text=True)
        assert 'method="post"' in page.get_data(as_text=True)

    assert not is_signed_in(client)
    assert factories.fresh(owner).last_sign_in_at == before
    assert link_events() == []
    assert client.post(link_path).status_code == 302  # and the link still works afterwards


def test_a_link_works_once(make_client, owner, link_path):
    first, second = make_client(), make_client()
    assert first.post(link_path).status_code == 302

    again = second.post(link_path)

    assert again.status_code == 400
    assert "has been used" in again.get_data(as_text=True)
    assert not is_signed_in(second)
    assert second.get(link_path).status_code == 400
    assert len(link_events()) == 1


def test_an_expired_link_is_refused(app, client, owner, link_path, monkeypatch):
    monkeypatch.setitem(app.config, "SIGNIN_LINK_MAX_AGE", -1)

    response = client.post(link_path)

    assert response.status_code == 400
    assert "expired" in response.get_data(as_text=True)
    assert not is_signed_in(client)
    assert link_events() == []


def test_a_link_used_by_another_request_at_the_same_moment_signs_in_only_once(
        make_client, owner, link_path, monkeypatch):
    """Both requests read the link as valid before either signs in: the claim, one
    conditional UPDATE, lets only one of them through."""
    from alliance.auth import services

    read = services.read_sign_in_link

    def read_then_lose_the_race(token):
        user = read(token)
        with db.engine.begin() as conn:  # the other request's sign-in, committed meanwhile
            conn.execute(db.text("UPDATE users SET last_sign_in_at = :at WHERE id = :id"),
                         {"at": "2030-01-01 00:00:00.000000", "id": user.id})
        return user

    monkeypatch.setattr(services, "read_sign_in_link", read_then_lose_the_race)
    loser = make_client()

    assert loser.post(link_path).status_code == 400
    assert not is_signed_in(loser)
    assert link_events() == []


def test_signing_in_otherwise_makes_an_unused_link_stale(make_client, owner, link_path):
    assert sign_in(make_client(), owner.email).status_code == 302

    assert make_client().post(link_path).status_code == 400


def test_a_link_for_another_purpose_is_refused(client, owner):
    from alliance.auth.tokens import make_token

    token = make_token("reset-password", {"uid": owner.id, "fp": "x"})

    assert client.post(f"{LINK_REQUEST}/{token}").status_code == 400
    assert client.post(f"{LINK_REQUEST}/not-a-token").status_code == 400
    assert not is_signed_in(client)


def test_asking_for_a_link_answers_the_same_for_known_and_unknown_addresses(make_client,
                                                                            owner):
    known = request_link(make_client(), owner.email)
    unknown = request_link(make_client(), "nobody@link.example")

    assert known.status_code == unknown.status_code == 200
    assert known.get_data() == unknown.get_data()
    assert "If an account uses that address" in known.get_data(as_text=True)
    assert [m["to"] for m in mails_with("sign_in_link")] == [owner.email]


@pytest.mark.parametrize("state", ["unverified", "deactivated"])
def test_no_link_is_mailed_to_an_unverified_or_deactivated_account(make_client, owner, state):
    from alliance.core.models import utcnow

    user = factories.fresh(owner)
    if state == "unverified":
        user.email_verified_at = None
    else:
        user.deactivated_at = utcnow()
    db.session.commit()

    response = request_link(make_client(), owner.email)

    assert response.status_code == 200
    assert mails_with("sign_in_link") == []


def test_a_link_for_an_account_deactivated_since_is_refused(client, owner, link_path):
    from alliance.core.models import utcnow

    factories.fresh(owner).deactivated_at = utcnow()
    db.session.commit()

    assert client.post(link_path).status_code == 400
    assert not is_signed_in(client)


def test_links_mailed_to_one_account_are_capped(make_client, owner):
    for n in range(5):
        request_link(make_client(), owner.email, ip=f"198.51.100.{n + 1}")

    assert len(mails_with("sign_in_link")) == 3


def test_asking_for_links_is_limited_per_address(make_client, owner):
    statuses = [make_client().post(LINK_REQUEST, data={"link_email": f"u{n}@link.example"}
                                   ).status_code for n in range(11)]

    assert statuses == [200] * 10 + [429]


def test_using_links_is_limited_per_address(make_client, owner):
    statuses = [make_client().post(f"{LINK_REQUEST}/not-a-token-{n}").status_code
                for n in range(11)]

    assert statuses == [400] * 10 + [429]
