"""Password reset by e-mailed link."""
import pytest

from alliance.extensions import db
from tests import factories
from tests.auth.helpers import is_signed_in, mails_with, path_of, run_outbox, sign_in
from tests.factories import PASSWORD

NEW = "Velvet-Harbour-Lantern-8841"


@pytest.fixture
def user(db):
    org = factories.make_org("Reset Org")
    return factories.make_user(org, "forgetful@reset.example")


def request_reset(client, email):
    """Ask for a reset link, then let the worker do its part (it looks the address up)."""
    response = client.post("/auth/reset", data={"email": email})
    run_outbox("auth.password_reset")
    return response


@pytest.fixture
def reset_path(client, user):
    request_reset(client, user.email)
    [mail] = mails_with("reset_password")
    return path_of(mail["context"]["link"])


def choose(client, path, password=NEW):
    return client.post(path, data={"password": password, "confirm": password})


def test_reset_request_for_a_known_address_queues_one_link_to_it(client, user):
    response = request_reset(client, user.email)

    assert response.status_code == 200
    [mail] = mails_with("reset_password")
    assert mail["to"] == user.email
    assert mail["context"]["link"].startswith("http://alliance.test/auth/reset/")


def test_reset_request_for_an_unknown_address_looks_the_same_and_queues_nothing(make_client,
                                                                                user):
    known = request_reset(make_client(), user.email)
    unknown = request_reset(make_client(), "nobody@reset.example")

    assert unknown.status_code == known.status_code == 200
    assert unknown.get_data() == known.get_data()
    assert [m["to"] for m in mails_with("reset_password")] == [user.email]


def test_reset_request_does_the_same_work_for_known_and_unknown_addresses(make_client, user):
    """The request itself never looks the address up: a known and an unknown address each
    leave exactly one outbox row of the same kind (published alike after the response), so
    the answer's timing does not tell which addresses have accounts. Only the worker, running
    that row, decides whether a mail goes out."""
    from sqlalchemy import select

    from alliance.outbox.models import OutboxMessage

    for email in (user.email, "nobody@reset.example"):
        make_client().post("/auth/reset", data={"email": email})
    db.session.expire_all()
    rows = db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()

    assert [(r.kind, r.payload) for r in rows] == [
        ("auth.password_reset", {"email": user.email}),
        ("auth.password_reset", {"email": "nobody@reset.example"})]

    assert run_outbox("auth.password_reset") == ["done", "done"]
    assert [m["to"] for m in mails_with("reset_password")] == [user.email]


def test_the_reset_mail_a_worker_queues_is_published_at_once_not_left_to_the_relay(
        app, client, user, monkeypatch):
    sent = []
    monkeypatch.setattr(app.extensions["celery"], "send_task",
                        lambda name, args, **kw: sent.append(args[0]))
    client.post("/auth/reset", data={"email": user.email})

    run_outbox("auth.password_reset")

    [mail_id] = [m.id for m in _outbox_rows("mail")]
    assert mail_id in sent


def _outbox_rows(kind):
    from sqlalchemy import select

    from alliance.outbox.models import OutboxMessage

    db.session.expire_all()
    return db.session.scalars(select(OutboxMessage).where(OutboxMessage.kind == kind)).all()


def test_reset_request_for_a_deactivated_account_queues_nothing(client, user):
    from alliance.core.models import utcnow

    user.deactivated_at = utcnow()
    db.session.commit()

    request_reset(client, user.email)

    assert mails_with("reset_password") == []


def test_reset_link_sets_the_new_password(client, make_client, user, reset_path):
    assert client.get(reset_path).status_code == 200

    response = choose(client, reset_path)

    assert response.status_code == 302
    assert response.location == "/auth/sign-in"
    assert sign_in(make_client(), user.email, NEW).status_code == 302
    assert sign_in(make_client(), user.email, PASSWORD).status_code == 401


def test_reset_link_works_only_once(client, user, reset_path):
    choose(client, reset_path)
    after_first = factories.fresh(user).password_hash

    response = choose(client, reset_path, "Another-Fresh-Passphrase-5150")

    assert response.status_code == 422
    assert factories.fresh(user).password_hash == after_first


def test_expired_reset_link_is_refused_and_the_password_kept(app, client, user, reset_path,
                                                            monkeypatch):
    monkeypatch.setitem(app.config, "PASSWORD_RESET_MAX_AGE", -1)

    response = choose(client, reset_path)

    assert response.status_code == 422
    assert factories.fresh(user).password_hash == user.password_hash


def test_tampered_reset_link_is_refused(client, user, reset_path):
    response = choose(client, reset_path[:-4] + "AAAA")

    assert response.status_code == 422
    assert factories.fresh(user).password_hash == user.password_hash


def test_reset_refuses_a_weak_password_and_the_link_still_works_afterwards(client, user,
                                                                           reset_path):
    assert choose(client, reset_path, "password1234").status_code == 422
    assert factories.fresh(user).password_hash == user.password_hash

    assert choose(client, reset_path).status_code == 302


def test_reset_ends_every_existing_session(make_client, user, reset_path):
    browser = make_client()
    sign_in(browser, user.email)
    version = factories.fresh(user).session_version

    choose(make_client(), reset_path)

    assert factories.fresh(user).session_version == version + 1
    assert not is_signed_in(browser)


def test_reset_confirms_an_unverified_address(client, db):
    org = factories.make_org("Unverified Reset Org")
    user = factories.make_user(org, "late@reset.example", verified=False)
    request_reset(client, user.email)
    [mail] = mails_with("reset_password")

    choose(client, path_of(mail["context"]["link"]))

    assert factories.fresh(user).email_verified_at is not None


def test_reset_mails_to_one_account_are_capped_whoever_asks(client, user):
    """The form is limited per client; an account gets at most RESET_MAIL_LIMIT (3 an hour)
    links however many clients ask, the rest dropped without a word to the asker."""
    for i in range(6):
        response = client.post("/auth/reset", data={"email": user.email},
                               environ_base={"REMOTE_ADDR": f"192.0.2.{i + 1}"})
        assert response.status_code == 200
        assert "If an account uses that address" in response.get_data(as_text=True)
    run_outbox("auth.password_reset")

    assert len([m for m in mails_with("reset_password") if m["to"] == user.email]) == 3
