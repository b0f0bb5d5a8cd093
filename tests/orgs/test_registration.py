"""Registering an organisation together with its first user."""
import pytest
import stix2
from sqlalchemy import func, select

from alliance.audit.models import AuditEvent
from alliance.auth.models import User
from alliance.extensions import db
from alliance.orgs.models import Organisation, PendingRegistration
from alliance.orgs.services import build_identity
from alliance.outbox.models import OutboxMessage
from tests import factories
from tests.auth.helpers import mails_with, path_of, sign_in
from tests.factories import queued_mails

PASSWORD = "Tidal-Compass-Orchard-2719"


def form(**overrides):
    data = {"org_name": "Baltic CERT", "country": "EE",
            "sectors": ["government", "technology"], "website": "https://cert.baltic.example",
            "domain": "Cert.Baltic.Example", "name": "Kadri Tamm",
            "email": "Kadri@Cert.Baltic.example", "password": PASSWORD, "confirm": PASSWORD}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def start(client, **overrides):
    """Post the registration form (nothing is created yet)."""
    return client.post("/register", data=form(**overrides))


def confirm_path(email="kadri@cert.baltic.example") -> str:
    [mail] = [m for m in mails_with("register_confirm") if m["to"] == email][-1:]
    return path_of(mail["context"]["link"])


def register(client, **overrides):
    """What a new user does: post the form, then open the link mailed to the address.
    Returns the form's answer."""
    before = len(mails_with("register_confirm"))
    response = start(client, **overrides)
    mailed = mails_with("register_confirm")[before:]
    if mailed:
        client.post(path_of(mailed[-1]["context"]["link"]))  # the button on the link's page
    return response


def pending_count() -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(PendingRegistration))


def counts() -> tuple[int, int, int, int]:
    db.session.expire_all()
    return tuple(db.session.scalar(select(func.count()).select_from(model))
                 for model in (Organisation, User, OutboxMessage, AuditEvent))


def the_org(name="Baltic CERT") -> Organisation:
    db.session.expire_all()
    return db.session.scalar(select(Organisation).where(Organisation.name == name))


def test_registration_creates_a_pending_org_with_its_first_user_as_org_admin(client):
    response = register(client)

    assert response.status_code == 302
    assert response.location == "/register/sent"
    org = the_org()
    assert org.status == "pending"
    assert org.vetted_at is None
    assert org.country == "EE"
    assert org.sectors == ["government", "technology"]
    assert org.domain == "cert.baltic.example"
    [user] = org.users
    assert user.email == "kadri@cert.baltic.example"
    assert user.role == "org_admin"
    assert not user.is_admin
    assert user.is_verified  # by the link itself
    assert user.password_hash.startswith("scrypt:")
    assert pending_count() == 0


def test_the_form_creates_nothing_and_says_to_check_the_mail(client, platform_admin):
    before = counts()[:2]
    response = start(client)
    page = client.get(response.location)

    assert page.status_code == 200
    assert b"Check your e-mail" in page.data and b"Kadri@Cert.Baltic.example" in page.data
    assert counts()[:2] == before and the_org() is None and pending_count() == 1
    [mail] = mails_with("register_confirm")
    assert mail["to"] == "kadri@cert.baltic.example"
    assert mail["context"]["link"].startswith("http://alliance.test/register/confirm/")
    assert mails_with("org_to_vet") == []  # admins hear of it once it exists
    with client.session_transaction() as sess:
        assert "_user_id" not in sess


def test_the_link_creates_the_organisation_and_the_user_signs_in(client):
    start(client)

    confirmed = client.post(confirm_path())
    assert confirmed.status_code == 302 and confirmed.location == "/auth/sign-in"
    assert "Baltic CERT is registered" in client.get("/auth/sign-in").get_data(as_text=True)
    sign_in(client, "kadri@cert.baltic.example", PASSWORD)

    with client.session_transaction() as sess:
        assert sess["_user_id"] == the_org().users[0].get_id()
    assert client.get("/").location == "/status"


def test_opening_the_link_registers_nothing_the_button_does(app, client):
    """Before: a GET or HEAD of the mailed link (a mail scanner, a link preview) created the
    organisation and the account. A GET or HEAD changes nothing (RFC 9110 9.2.1): the page
    it opens confirms with a POST carrying its CSRF token."""
    start(client)
    path = confirm_path()
    before = counts()

    assert client.head(path).status_code == 200
    page = client.get(path)

    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Baltic CERT" in text and 'method="post"' in text
    assert counts() == before and the_org() is None and pending_count() == 1
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        assert client.post(path).status_code == 400  # no CSRF token: refused
        assert the_org() is None and pending_count() == 1
    finally:
        app.config["WTF_CSRF_ENABLED"] = False
    assert client.post(path).status_code == 302
    assert the_org() is not None and pending_count() == 0


def test_the_link_works_once(client):
    start(client)
    path = confirm_path()
    client.post(path)
    before = counts()

    assert client.get(path).status_code == 400
    again = client.post(path)

    assert again.status_code == 400 and b"not valid any more" in again.data
    assert counts() == before


@pytest.mark.parametrize("token", ["x" * 43, "", "%00"])
def test_an_unknown_link_is_refused_and_creates_nothing(client, token):
    start(client)
    before = counts()

    response = client.post(f"/register/confirm/{token}")

    assert response.status_code in (400, 404)
    assert client.get(f"/register/confirm/{token}").status_code in (400, 404)
    assert counts() == before and pending_count() == 1


def test_an_old_link_is_refused_and_creates_nothing(app, client, monkeypatch):
    start(client)
    path = confirm_path()
    monkeypatch.setitem(app.config, "EMAIL_VERIFY_MAX_AGE", 0)

    response = client.post(path)

    assert response.status_code == 400
    assert the_org() is None


def test_a_name_taken_meanwhile_is_refused_at_the_link(make_client):
    first, second = make_client(), make_client()
    start(first)
    start(second, email="other@elsewhere.example")  # the same name, not taken yet
    first.post(confirm_path())

    response = second.post(confirm_path("other@elsewhere.example"))

    assert response.status_code == 409 and b"registered in the meantime" in response.data
    assert [u.email for u in the_org().users] == ["kadri@cert.baltic.example"]


def test_two_links_for_one_address_make_one_account(make_client):
    first, second = make_client(), make_client()
    start(first)
    start(second, org_name="Second Baltic CERT")
    links = [path_of(m["context"]["link"]) for m in mails_with("register_confirm")]
    first.post(links[0])

    response = second.post(links[1])

    assert response.status_code == 409 and b"has an account already" in response.data
    assert the_org("Second Baltic CERT") is None


def test_the_check_your_mail_page_without_a_registration_leads_to_the_form(client):
    response = client.get("/register/sent")

    assert response.status_code == 302 and response.location == "/register"


def test_registration_records_an_audit_event(client):
    register(client)

    org = the_org()
    event = db.session.scalar(select(AuditEvent).where(
        AuditEvent.action == "organisation.registered"))
    assert event.organisation_id == org.id
    assert event.actor_id == org.users[0].id


def test_registered_org_has_a_valid_stix_2_1_identity(client):
    register(client)

    org = the_org()
    identity = stix2.parse(org.stix_identity, allow_custom=False)
    assert identity.spec_version == "2.1"
    assert identity.type == "identity"
    assert identity.id == org.stix_id
    assert identity.identity_class == "organization"
    assert identity.name == "Baltic CERT"
    assert sorted(identity.sectors) == ["government", "technology"]


def test_stix_identity_id_and_created_stay_the_same_when_rebuilt(client):
    register(client)
    org = the_org()
    first = org.stix_identity

    rebuilt = build_identity(org)

    assert rebuilt["id"] == first["id"] == org.stix_id
    assert rebuilt["created"] == first["created"]
    assert rebuilt["modified"] >= first["modified"]
    stix2.parse(rebuilt, allow_custom=False)


def test_registration_without_sectors_still_gives_a_valid_identity(client):
    register(client, sectors=None, website=None, domain=None)

    identity = stix2.parse(the_org().stix_identity, allow_custom=False)
    assert identity.identity_class == "organization"
    assert "sectors" not in identity


def test_platform_admins_are_mailed_that_an_org_waits_for_vetting(client, platform_admin):
    register(client)

    [mail] = mails_with("org_to_vet")
    assert mail["to"] == platform_admin.email
    assert mail["context"]["org_name"] == "Baltic CERT"
    assert mail["context"]["link"] == "http://alliance.test/admin/organisations"


def test_deactivated_admins_are_not_mailed_about_vetting(client, platform_admin):
    from alliance.core.models import utcnow

    platform_admin.deactivated_at = utcnow()
    db.session.commit()

    register(client)

    assert mails_with("org_to_vet") == []


@pytest.mark.parametrize("name", ["Baltic CERT", "baltic cert", "  BALTIC CERT  "])
def test_duplicate_org_name_is_refused_and_nothing_is_stored(make_client, name):
    register(make_client())
    before = counts()

    response = register(make_client(), org_name=name, email="other@elsewhere.example")

    assert response.status_code in (409, 422)
    assert b"already registered" in response.data
    assert counts() == before


def _answer(client, email: str, **overrides) -> tuple:
    """What a visitor sees of a registration form: the status, where it leads, and that
    page (the address typed made generic)."""
    response = start(client, email=email, **overrides)
    page = client.get(response.location).get_data(as_text=True) if response.location else ""
    return (response.status_code, response.location,
            page.replace(email, "ADDRESS") or response.get_data(as_text=True))


@pytest.mark.parametrize("email", ["kadri@cert.baltic.example", "KADRI@cert.baltic.EXAMPLE",
                                   # The same domain in full-width letters (UTS 46 maps it).
                                   "kadri@\uff43\uff45\uff52\uff54.baltic.example"])
def test_an_address_with_an_account_gets_the_same_answer_and_a_notice(make_client, email):
    """Registering must not tell anyone which addresses have accounts: the answer is that of
    a new address, and the account holder is mailed instead of a link."""
    register(make_client())
    before, mailed = counts()[:2], len(queued_mails())

    existing = _answer(make_client(), email, org_name="Another CERT")
    fresh = _answer(make_client(), "newcomer@another.example", org_name="Third CERT")

    assert existing == fresh and existing[:2] == (302, "/register/sent")
    assert counts()[:2] == before  # nothing exists before a link is opened
    assert [(m["template"], m["to"]) for m in queued_mails()[mailed:]] == [
        ("register_existing", "kadri@cert.baltic.example"),
        ("register_confirm", "newcomer@another.example")]


def test_an_address_with_an_account_costs_a_password_hash_like_a_registration(make_client,
                                                                          monkeypatch):
    """The same work either way (scrypt is most of a registration's time), so the time of
    the answer does not tell either."""
    from alliance.orgs import services

    register(make_client())
    hashed = []
    real = services.hash_password
    monkeypatch.setattr(services, "hash_password", lambda p: hashed.append(p) or real(p))

    start(make_client(), org_name="Another CERT", email="kadri@cert.baltic.example")
    start(make_client(), org_name="Third CERT", email="newcomer@another.example")

    assert hashed == [PASSWORD, PASSWORD]


def test_a_weak_password_is_refused_alike_for_an_address_with_an_account(make_client):
    register(make_client())
    before = len(queued_mails())

    existing = _answer(make_client(), "kadri@cert.baltic.example", org_name="Another CERT",
                       password="password1234", confirm="password1234")
    fresh = _answer(make_client(), "newcomer@another.example", org_name="Another CERT",
                    password="password1234", confirm="password1234")

    assert existing[0] == fresh[0] == 422
    assert existing[2].replace("kadri@cert.baltic.example", "ADDRESS") == fresh[2].replace(
        "newcomer@another.example", "ADDRESS")
    assert len(queued_mails()) == before and pending_count() == 0


@pytest.mark.parametrize("field, value", [
    ("country", "XX"),
    ("country", ""),
    ("sectors", ["government", "not-a-sector"]),
    ("website", "javascript:alert(1)"),
    ("domain", "not a domain"),
    ("email", "not-an-address"),
])
def test_invalid_values_are_refused_with_422_and_nothing_is_stored(client, field, value):
    before = counts()

    response = register(client, **{field: value})

    assert response.status_code == 422
    assert counts() == before


def test_weak_password_refuses_the_registration_and_stores_nothing(client):
    before = counts()

    response = register(client, password="password1234", confirm="password1234")

    assert response.status_code == 422
    assert counts() == before


def test_mismatched_password_confirmation_is_refused(client):
    response = register(client, confirm=PASSWORD + "x")

    assert response.status_code == 422
    assert the_org() is None


def test_extra_fields_in_the_registration_form_are_ignored(client, outsider):
    response = register(client, org_id=str(outsider.organisation_id),
                        organisation_id=str(outsider.organisation_id), role="member",
                        is_admin="y", status="approved", stix_id="identity--attacker")

    assert response.status_code == 302
    org = the_org()
    assert org.id != outsider.organisation_id
    assert org.status == "pending"
    assert org.stix_id != "identity--attacker"
    [user] = org.users
    assert user.organisation_id == org.id
    assert user.role == "org_admin"
    assert not user.is_admin
    assert [u.email for u in factories.fresh(outsider.organisation).users] == [outsider.email]


def _register_and_sign_in(client):
    register(client)
    sign_in(client, "kadri@cert.baltic.example", PASSWORD)


def test_pending_orgs_user_is_sent_to_the_status_page(client):
    _register_and_sign_in(client)

    for page in ("/alliances/", "/", "/alliances/new"):
        response = client.get(page)
        assert response.status_code == 302, page
        assert response.location == "/status", page
    assert client.get("/status").status_code == 200


def test_pending_orgs_verified_user_is_still_held_on_the_status_page(client):
    _register_and_sign_in(client)
    user = the_org().users[0]
    from alliance.core.models import utcnow

    user.email_verified_at = utcnow()
    db.session.commit()

    response = client.get("/alliances/")

    assert response.status_code == 302
    assert response.location == "/status"


def test_signed_in_user_opening_register_is_sent_home(client, outsider):
    factories.login(client, outsider)
    before = counts()

    response = register(client)

    assert response.status_code == 302
    assert counts() == before


def test_registration_queues_no_admin_mail_when_it_fails(client, platform_admin):
    register(client, country="XX")

    assert queued_mails() == []


@pytest.mark.parametrize("email", ["newcomer@another.example", "kadri@cert.baltic.example"])
def test_one_address_gets_a_bounded_number_of_registration_mails(app, make_client, monkeypatch,
                                                                  email):
    """Whoever registers with an address, from however many clients: at most
    REGISTER_MAIL_LIMIT mails reach it; the answer stays the same."""
    from alliance.extensions import limiter

    register(make_client())
    limiter.reset()  # that registration's own mail does not count here
    monkeypatch.setitem(app.config, "REGISTER_MAIL_LIMIT", "3 per hour")
    mailed = len(queued_mails())

    answers = {_answer(make_client(), email, org_name=f"Flood CERT {i}") for i in range(5)}

    assert len(answers) == 1 and next(iter(answers))[:2] == (302, "/register/sent")
    assert [m["to"] for m in queued_mails()[mailed:]] == [email] * 3
