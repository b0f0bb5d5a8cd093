"""The password policy and how passwords are stored."""
import pytest

from alliance.auth.services import (
    check_password_policy,
    hash_password,
    normalise_email,
    set_password,
)
from alliance.core.errors import DomainError
from tests import factories
from tests.auth.helpers import is_signed_in, sign_in, sign_in_write_fails


@pytest.mark.parametrize("password", ["short-pw-1", "Xy7#kq2!Lm0"])  # 10 and 11 characters
def test_password_shorter_than_twelve_characters_is_refused(password):
    with pytest.raises(DomainError, match="12 characters") as caught:
        check_password_policy(password)
    assert caught.value.field == "password"


@pytest.mark.parametrize("password", ["password1234", "qwertyuiop123", "PASSWORD1234"])
def test_common_password_is_refused_even_when_long_enough(password):
    with pytest.raises(DomainError) as caught:
        check_password_policy(password)
    assert caught.value.field == "password"


def test_users_own_email_address_as_password_is_refused(db):
    org = factories.make_org("Own Org")
    user = factories.make_user(org, "jane.doe@cert2024.example", name="Jane Doe")

    with pytest.raises(DomainError):
        set_password(user, "jane.doe@cert2024.example")


def test_overlong_password_is_refused():
    with pytest.raises(DomainError, match="at most"):
        check_password_policy("Tidal-Compass-Orchard-" * 12)


@pytest.mark.parametrize("password", ["Tidal-Compass-Orchard-2719",
                                      "correct horse battery staple",
                                      "Velvet harbour lantern under 7 moons"])
def test_strong_passphrase_is_accepted(password):
    check_password_policy(password)  # raises when refused


def test_stored_hash_is_scrypt_and_not_the_password(db):
    org = factories.make_org("Hash Org")
    user = factories.make_user(org, "hash@hash.example")

    set_password(user, "Velvet-Harbour-Lantern-8841")
    db.session.commit()

    stored = factories.fresh(user).password_hash
    assert stored.startswith("scrypt:")
    assert "Velvet-Harbour-Lantern-8841" not in stored


def test_same_password_hashes_differently_each_time():
    # A salt per hash: equal passwords cannot be spotted by equal hashes.
    password = "Tidal-Compass-Orchard-2719"
    assert hash_password(password) != hash_password(password)


def test_weak_new_password_leaves_the_old_one_in_place(db):
    org = factories.make_org("Weak Org")
    user = factories.make_user(org, "weak@weak.example")
    before = user.password_hash

    with pytest.raises(DomainError):
        set_password(user, "password1234")

    assert user.password_hash == before


def test_change_password_page_refuses_a_common_password(make_client, db):
    org = factories.make_org("Change Org")
    user = factories.make_user(org, "change@change.example")
    client = make_client()
    sign_in(client, user.email)

    response = client.post("/auth/password", data={"current_password": factories.PASSWORD,
                                                   "password": "qwertyuiop123",
                                                   "confirm": "qwertyuiop123"})

    assert response.status_code == 422
    fresh = factories.fresh(user)
    assert fresh.password_hash == user.password_hash
    assert fresh.session_version == user.session_version


@pytest.mark.parametrize(("given", "expected"), [
    (" Kadri@Cert.Baltic.Example ", "kadri@cert.baltic.example"),
    ("victim@\uff25\uff38\uff21\uff2d\uff30\uff2c\uff25.com", "victim@example.com"),
    ("victim@xn--bcher-kva.example", "victim@bücher.example"),
    ("victim@BÜCHER.example", "victim@bücher.example"),
])
def test_one_spelling_per_mailbox(given, expected):
    assert normalise_email(given) == expected


def test_a_password_change_that_fails_part_way_changes_nothing(make_client, db):
    """The new password, the end of other sessions and the renewed sign-in are one write:
    the error page's "nothing was changed" is true, and the old password still works."""
    org = factories.make_org("Change Org")
    user = factories.make_user(org, "change@change.example")
    elsewhere, client = make_client(), make_client()
    sign_in(elsewhere, user.email)
    sign_in(client, user.email)

    with sign_in_write_fails():
        response = client.post("/auth/password", data={
            "current_password": factories.PASSWORD, "password": "Harbour-Lantern-Quill-5823",
            "confirm": "Harbour-Lantern-Quill-5823"})

    assert response.status_code == 500
    fresh = factories.fresh(user)
    assert fresh.password_hash == user.password_hash
    assert fresh.session_version == user.session_version
    assert is_signed_in(elsewhere)
    assert sign_in(make_client(), user.email).status_code == 302


def test_guessing_the_current_password_on_the_change_form_is_throttled_and_audited(
        make_client, db):
    """Whoever holds a stolen or unattended session must not try current passwords without
    end: the form allows SIGNIN_LIMIT_ACCOUNT (5 in 15 minutes) per user, like sign-in, the
    right one included once the limit is reached, and a lockout is audited once."""
    from sqlalchemy import select

    from alliance.audit.models import AuditEvent

    org = factories.make_org("Guess Org")
    user = factories.make_user(org, "guessed@guess.example")
    client = make_client()
    sign_in(client, user.email)
    new = "Velvet-Harbour-Lantern-8841"

    def change(current):
        return client.post("/auth/password", data={
            "current_password": current, "password": new, "confirm": new}).status_code

    assert [change(f"Wrong-Password-Entirely-{i}") for i in range(7)] == [422] * 5 + [429] * 2
    assert change(factories.PASSWORD) == 429
    assert factories.fresh(user).password_hash == user.password_hash
    db.session.expire_all()
    assert [int(e.target_id) for e in db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "password.lockout"))] == [user.id]


def test_a_password_change_clears_the_attempts_before_it(make_client, db):
    org = factories.make_org("Typo Org")
    user = factories.make_user(org, "typo@typo.example")
    client = make_client()
    sign_in(client, user.email)
    new = "Velvet-Harbour-Lantern-8841"
    for i in range(4):
        assert client.post("/auth/password", data={
            "current_password": f"Wrong-{i}-Password-Entirely", "password": new,
            "confirm": new}).status_code == 422
    assert client.post("/auth/password", data={
        "current_password": factories.PASSWORD, "password": new,
        "confirm": new}).status_code == 302
    sign_in(client, user.email, new)
    for i in range(4):
        assert client.post("/auth/password", data={
            "current_password": f"Wrong-{i}-Password-Entirely", "password": PASSWORD_AGAIN,
            "confirm": PASSWORD_AGAIN}).status_code == 422


PASSWORD_AGAIN = "Saffron-Meridian-Quartz-5520"
