"""Registering an organisation together with its first user."""
import pytest
import stix2
from sqlalchemy import func, select

from alliance.audit.models import AuditEvent
from alliance.auth.models import User
from alliance.extensions import db
from alliance.orgs.models import Organisation
from alliance.orgs.services import build_identity
from alliance.outbox.models import OutboxMessage
from tests import factories
from tests.auth.helpers import mails_with
from tests.factories import queued_mails

PASSWORD = "Tidal-Compass-Orchard-2719"


def form(**overrides):
    data = {"org_name": "Baltic CERT", "country": "EE",
            "sectors": ["government", "technology"], "website": "https://cert.baltic.example",
            "domain": "Cert.Baltic.Example", "name": "Kadri Tamm",
            "email": "Kadri@Cert.Baltic.example", "password": PASSWORD, "confirm": PASSWORD}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def register(client, **overrides):
    return client.post("/register", data=form(**overrides))


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
    assert response.location == "/status"
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
    assert not user.is_verified
    assert user.password_hash.startswith("scrypt:")


def test_registration_signs_the_new_user_in(client):
    register(client)

    with client.session_transaction() as sess:
        user = the_org().users[0]
        assert sess["_user_id"] == user.get_id()


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


@pytest.mark.parametrize("email", ["kadri@cert.baltic.example", "KADRI@cert.baltic.EXAMPLE"])
def test_duplicate_email_is_refused_and_nothing_is_stored(make_client, email):
    register(make_client())
    before = counts()

    response = register(make_client(), org_name="Another CERT", email=email)

    assert response.status_code in (409, 422)
    assert b"exists already" in response.data
    assert counts() == before


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


def test_pending_orgs_user_is_sent_to_the_status_page(client):
    register(client)

    for page in ("/alliances/", "/", "/alliances/new"):
        response = client.get(page)
        assert response.status_code == 302, page
        assert response.location == "/status", page
    assert client.get("/status").status_code == 200


def test_pending_orgs_verified_user_is_still_held_on_the_status_page(client):
    register(client)
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
