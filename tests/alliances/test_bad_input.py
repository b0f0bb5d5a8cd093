"""Odd input on the alliance pages is refused (404, 400 or 422) with nothing changed, and never
reaches the database as an error (a 500): ids past the integer column, NUL bytes (PostgreSQL
refuses them in text), line breaks in names that go into e-mail subjects."""
import pytest
from sqlalchemy import select

from alliance.alliances import transitions
from alliance.alliances.models import Alliance, Coordinator, Membership
from alliance.extensions import db
from tests import factories
from tests.alliances.helpers import count_events, count_outbox

SETTINGS = {"name": "Baltic Sea Alliance", "description": "Shares.", "charter": "Be kind.",
            "join_policy": "approval", "allowed_tlps": ["CLEAR", "AMBER"],
            "default_tlp": "AMBER"}


def _world():
    db.session.expire_all()
    return (db.session.execute(select(Membership.id, Membership.state, Membership.decision_reason,
                                      Membership.request_message).order_by(Membership.id)).all(),
            db.session.execute(select(Coordinator.alliance_id, Coordinator.user_id)
                               .order_by(Coordinator.id)).all(),
            db.session.execute(select(Alliance.slug, Alliance.name, Alliance.description,
                                      Alliance.charter).order_by(Alliance.id)).all(),
            count_events(), count_outbox())


@pytest.fixture
def request_pending(alliance, candidate_admin):
    return transitions.request_to_join(candidate_admin, alliance, accept_charter=True)


@pytest.mark.parametrize("path", [
    "/alliances/atlantic/memberships/2147483648/approve",  # one past PostgreSQL's integer
    "/alliances/atlantic/memberships/1000000000000000000000000000000/approve",  # past int64
    "/alliances/atlantic/memberships/0/approve",
    "/alliances/atlantic/coordinators/1000000000000000000000000000000/remove",
    "/alliances/atlantic/coordinators/2147483648/remove",
])
def test_an_id_past_the_integer_column_is_a_404_and_changes_nothing(as_coordinator,
                                                                     request_pending, path):
    before = _world()

    response = as_coordinator.post(path, data={"reason": "x", "confirm": "1"})

    assert response.status_code == 404
    assert _world() == before


def test_the_largest_id_the_column_holds_is_still_looked_up(as_coordinator, request_pending):
    response = as_coordinator.post("/alliances/atlantic/memberships/2147483647/approve")

    assert response.status_code == 404  # no such membership, answered by the service


@pytest.mark.parametrize("path", ["/alliances/%00", "/alliances/atlantic%00",
                                  "/alliances/%00/settings", "/alliances/%00/members",
                                  "/alliances/%00/audit", "/alliances/" + "a" * 300,
                                  "/alliances/Atlantic"])
def test_an_alliance_address_that_cannot_be_a_slug_is_a_404(as_coordinator, alliance, path):
    assert as_coordinator.get(path).status_code == 404


def test_a_nul_byte_in_a_posted_alliance_address_is_a_404(as_coordinator, alliance):
    before = _world()

    response = as_coordinator.post("/alliances/%00/join", data={"accept_charter": "y"})

    assert response.status_code == 404
    assert _world() == before


@pytest.mark.parametrize("field, value", [
    ("name", "Evil\r\nBcc: everyone@example.com"),
    ("name", "Evil\nAlliance"),
    ("name", "Nul\x00Alliance"),
    ("name", "Line\u2028Separator"),
    ("name", "Trusted\u202eecnaillA"),  # a right-to-left override
    ("description", "Nul\x00byte"),
    ("charter", "Escape \x1b[31m red"),
])
def test_creating_an_alliance_refuses_control_characters(as_coordinator, field, value):
    before = _world()

    response = as_coordinator.post("/alliances/new", data=dict(SETTINGS, **{field: value}))

    assert response.status_code == 422
    assert _world() == before


def test_multi_line_texts_keep_their_line_breaks_and_tabs(as_coordinator):
    response = as_coordinator.post("/alliances/new", data=dict(
        SETTINGS, name="Zürich – Ōsaka Alliance", description="One\r\nTwo\tthree",
        charter="1. Share.\n2. Be kind."))

    assert response.status_code == 302
    alliance = db.session.scalar(select(Alliance).where(Alliance.name == "Zürich – Ōsaka Alliance"))
    assert alliance.charter == "1. Share.\n2. Be kind."
    assert "\t" in alliance.description


def test_settings_refuse_a_name_with_a_line_break(as_coordinator, alliance):
    before = _world()

    response = as_coordinator.post("/alliances/atlantic/settings", data=dict(
        SETTINGS, name="Atlantic\r\nBcc: everyone@example.com"))

    assert response.status_code == 422
    assert _world() == before


def test_a_join_message_with_a_nul_byte_is_refused(client, alliance, candidate_admin):
    factories.login(client, candidate_admin)
    before = _world()

    response = client.post("/alliances/atlantic/join",
                           data={"message": "Hello\x00", "accept_charter": "y"})

    assert response.status_code == 400
    assert _world() == before


def test_a_decision_reason_with_a_nul_byte_is_refused(as_coordinator, request_pending):
    before = _world()

    response = as_coordinator.post(
        f"/alliances/atlantic/memberships/{request_pending.id}/reject",
        data={"reason": "No\x00"})

    assert response.status_code == 400
    assert _world() == before
