"""Odd input on the organisation pages is refused (404, 400 or 422) with nothing changed, and
never reaches the database as an error (a 500): ids past the integer column, NUL bytes
(PostgreSQL refuses them in text), line breaks in names that go into e-mail subjects."""
import pytest
from sqlalchemy import func, select

from alliance.audit.models import AuditEvent
from alliance.auth.models import User
from alliance.extensions import db
from alliance.orgs.models import Organisation
from alliance.outbox.models import OutboxMessage
from tests import factories
from tests.auth.helpers import mails_with, path_of

PASSWORD = "Tidal-Compass-Orchard-2719"


def registration(**overrides):
    data = {"org_name": "Baltic CERT", "country": "EE", "sectors": ["government"],
            "name": "Kadri Tamm", "email": "kadri@cert.baltic.example", "password": PASSWORD,
            "confirm": PASSWORD}
    data.update(overrides)
    return data


def _world():
    db.session.expire_all()
    return (db.session.execute(select(Organisation.id, Organisation.name, Organisation.status,
                                      Organisation.status_reason).order_by(Organisation.id))
            .all(),
            db.session.execute(select(User.id, User.name, User.role, User.deactivated_at)
                               .order_by(User.id)).all(),
            db.session.scalar(select(func.count()).select_from(AuditEvent)),
            db.session.scalar(select(func.count()).select_from(OutboxMessage)))


@pytest.mark.parametrize("field, value", [
    ("org_name", "Evil Org\r\nBcc: everyone@example.com"),
    ("org_name", "Evil\nOrg"),
    ("org_name", "Nul\x00Org"),
    ("org_name", "Line\u2029Separator Org"),
    ("org_name", "Trusted\u202egrO"),
    ("name", "Eve\r\nBcc: everyone@example.com"),
    ("name", "Eve\x00"),
])
def test_registration_refuses_control_characters_in_names(client, field, value):
    before = _world()

    response = client.post("/register", data=registration(**{field: value}))

    assert response.status_code == 422
    assert _world() == before


def test_registration_accepts_names_in_any_script(client):
    response = client.post("/register", data=registration(
        org_name="Zürich Ünïcode CERT – 東京", name="Zoë O’Brien-Ødegård"))
    [mail] = mails_with("register_confirm")
    client.post(path_of(mail["context"]["link"]))  # the organisation is created from the link

    assert response.status_code == 302
    assert db.session.scalar(select(Organisation.name)) == "Zürich Ünïcode CERT – 東京"


@pytest.mark.parametrize("path", ["/organisations/%00", "/organisations/%00/users",
                                  "/organisations/Outside-Org", "/organisations/" + "a" * 300])
def test_an_organisation_address_that_cannot_be_a_slug_is_a_404(as_outsider, path):
    assert as_outsider.get(path).status_code == 404


@pytest.mark.parametrize("action, data", [("role", {"role": "org_admin"}), ("deactivate", {})])
@pytest.mark.parametrize("user_id", ["2147483648", "1000000000000000000000000000000", "0"])
def test_a_user_id_past_the_integer_column_is_a_404_and_changes_nothing(as_outsider, outsider,
                                                                         action, data, user_id):
    before = _world()

    response = as_outsider.post(f"/organisations/outside-org/users/{user_id}/{action}",
                                data=data)

    assert response.status_code == 404
    assert _world() == before


def test_vetting_an_organisation_id_past_the_integer_column_is_a_404(as_admin):
    before = _world()

    response = as_admin.post("/admin/organisations/1000000000000000000000000000000/vet",
                             data={"decision": "approve"})

    assert response.status_code == 404
    assert _world() == before


def test_a_vetting_reason_with_a_nul_byte_is_refused(as_admin):
    org = factories.make_org("Waiting Org", status="pending")
    before = _world()

    response = as_admin.post(f"/admin/organisations/{org.id}/vet",
                             data={"decision": "reject", "reason": "No\x00"})

    assert response.status_code == 302  # back to the vetting page, with the error flashed
    assert _world() == before
    assert factories.fresh(org).status == "pending"


def test_a_deactivation_reason_with_a_line_break_is_refused(as_outsider, outsider):
    colleague = factories.make_user(outsider.organisation, "colleague@outside.example")
    before = _world()

    response = as_outsider.post(f"/organisations/outside-org/users/{colleague.id}/deactivate",
                                data={"reason": "Left\r\nthe company"})

    assert response.status_code == 400
    assert _world() == before
