"""E-mail verification: the mail sent on registration, its link, and what an unverified user
may open."""
import pytest

from alliance.auth.services import send_verification
from alliance.auth.tokens import make_token
from alliance.extensions import db
from tests import factories
from tests.auth.helpers import mails_with, path_of, token_from


@pytest.fixture
def unverified(db):
    org = factories.make_org("Fresh Org")
    return factories.make_user(org, "new@fresh.example", verified=False)


@pytest.fixture
def verification_link(unverified):
    send_verification(unverified)
    db.session.commit()
    [mail] = mails_with("verify_email")
    return mail["context"]["link"]


def test_registration_mails_a_link_to_confirm_the_address(client, db):
    client.post("/register", data={
        "org_name": "Verify Org", "country": "FR", "sectors": ["government"],
        "name": "Vera", "email": "vera@verify.example",
        "password": "Tidal-Compass-Orchard-2719", "confirm": "Tidal-Compass-Orchard-2719"})

    [mail] = mails_with("register_confirm")
    assert mail["to"] == "vera@verify.example"
    assert mail["context"]["link"].startswith("http://alliance.test/register/confirm/")


def test_opening_the_link_confirms_nothing_and_its_button_does(client, unverified,
                                                              verification_link):
    """A GET or HEAD never changes state: a mail scanner that opens the link must not
    confirm the address. The page it opens has the button; its POST confirms."""
    for method in (client.get, client.head):
        response = method(path_of(verification_link))
        assert response.status_code == 200
        assert factories.fresh(unverified).email_verified_at is None
    page = client.get(path_of(verification_link)).get_data(as_text=True)
    assert 'id="confirm-email"' in page and unverified.email in page

    response = client.post(path_of(verification_link))

    assert response.status_code == 302
    assert factories.fresh(unverified).email_verified_at is not None


def test_verification_link_works_for_the_visitor_without_signing_them_in(
        client, unverified, verification_link):
    client.post(path_of(verification_link))

    with client.session_transaction() as sess:
        assert "_user_id" not in sess


def test_tampered_verification_token_is_refused_and_changes_nothing(client, unverified,
                                                                     verification_link):
    token = token_from({"context": {"link": verification_link}})
    tampered = token[:-3] + ("aaa" if not token.endswith("aaa") else "bbb")

    response = client.get(f"/auth/verify/{tampered}")

    assert response.status_code == 400
    assert client.post(f"/auth/verify/{tampered}").status_code == 400
    assert factories.fresh(unverified).email_verified_at is None


def test_expired_verification_token_is_refused_and_changes_nothing(app, client, unverified,
                                                                    verification_link,
                                                                    monkeypatch):
    monkeypatch.setitem(app.config, "EMAIL_VERIFY_MAX_AGE", -1)

    response = client.get(path_of(verification_link))

    assert response.status_code == 400
    assert client.post(path_of(verification_link)).status_code == 400
    assert factories.fresh(unverified).email_verified_at is None


def test_token_made_for_another_purpose_does_not_verify(client, unverified):
    # Same data, other salt: a reset or invitation token can never confirm an address.
    token = make_token("reset-password", {"uid": unverified.id, "email": unverified.email})

    response = client.get(f"/auth/verify/{token}")

    assert response.status_code == 400
    assert factories.fresh(unverified).email_verified_at is None


def test_verification_token_for_a_previous_address_is_refused(client, unverified,
                                                               verification_link):
    unverified.email = "changed@fresh.example"
    db.session.commit()

    response = client.get(path_of(verification_link))

    assert response.status_code == 400
    assert factories.fresh(unverified).email_verified_at is None


def test_unverified_user_is_sent_to_the_status_page_from_member_pages(client, unverified):
    factories.login(client, unverified)

    for page in ("/alliances/", "/", f"/organisations/{unverified.organisation.slug}"):
        response = client.get(page)
        assert response.status_code == 302, page
        assert response.location == "/status", page


def test_unverified_user_sees_the_status_page(client, unverified):
    factories.login(client, unverified)

    assert client.get("/status").status_code == 200


def test_verified_user_is_not_held_on_the_status_page(client, unverified, verification_link):
    client.post(path_of(verification_link))
    factories.login(client, factories.fresh(unverified))

    response = client.get("/status")

    assert response.status_code == 302
    assert response.location == "/"


def test_resend_queues_a_new_link_only_for_unverified_users(make_client, unverified):
    verified = factories.make_user(unverified.organisation, "done@fresh.example")
    first, second = make_client(), make_client()
    factories.login(first, unverified)
    factories.login(second, verified)

    first.post("/auth/verify/resend")
    second.post("/auth/verify/resend")

    assert [m["to"] for m in mails_with("verify_email")] == [unverified.email]
