"""Odd input on the notes pages is a clear 404/422, never a 500 (PostgreSQL refuses NUL)."""
import pytest
from sqlalchemy import func, select

from alliance.extensions import db
from alliance.notes.models import Note
from tests import factories


def test_a_note_address_that_is_not_a_uuid_is_a_404(client, member):
    factories.login(client, member)
    for path in ("/notes/%00", "/notes/not-a-uuid", "/notes/%00/bundle.json",
                 "/insights/%00", "/notes/" + "a" * 300):
        assert client.get(path).status_code == 404, path


def test_control_characters_in_a_title_are_refused_and_nothing_is_stored(client, member,
                                                                          alliance):
    factories.login(client, member)
    response = client.post("/notes/new/indicators", data={
        "title": "bad\x00title", "tlp": "GREEN", "alliances": str(alliance.id),
        "observables": "bad.example", "post": "1"})
    assert response.status_code == 422
    assert b"one line" in response.data
    assert db.session.scalar(select(func.count()).select_from(Note)) == 0


def test_a_nul_in_a_search_is_refused_not_an_error(client, member):
    factories.login(client, member)
    assert client.get("/notes/?q=%00").status_code == 400


def test_the_compose_form_offers_only_levels_the_users_alliances_allow(client, member, alliance):
    from alliance.alliances import services as alliances

    alliances.update_settings(alliances.coordinators_of(alliance)[0], alliance,
                              allowed_tlps=["GREEN", "AMBER"], default_tlp="AMBER")
    factories.login(client, member)
    page = client.get("/notes/new/incident").get_data(as_text=True)
    assert 'value="AMBER"' in page and 'value="GREEN"' in page
    assert 'value="RED"' not in page and 'value="CLEAR"' not in page
    response = client.post("/notes/new/indicators", data={
        "title": "x", "tlp": "RED", "alliances": str(alliance.id),
        "observables": "bad.example", "post": "1"})
    assert response.status_code == 422
    assert db.session.scalar(select(func.count()).select_from(Note)) == 0


def test_a_valid_until_in_the_past_without_valid_from_is_a_422_naming_the_field(client, member,
                                                                               alliance):
    """valid_from left empty is now: a valid_until before it was a 500 from stix2."""
    factories.login(client, member)
    response = client.post("/notes/new/indicators", data={
        "title": "Old", "tlp": "GREEN", "alliances": str(alliance.id),
        "observables": "bad.example", "valid_until": "2001-01-01T00:00", "post": "1"})
    assert response.status_code == 422
    assert "Valid until must be later than valid from" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Note)) == 0


@pytest.mark.parametrize("kind", ["indicators", "incident"])
def test_more_observables_than_a_form_takes_is_a_422_pointing_elsewhere(client, app, member,
                                                                        alliance, monkeypatch,
                                                                        kind):
    """Each is built by the stix2 library (about 0.4 ms): 30,000 pasted lines held the
    request for over 10 s. The limit is COMPOSE_MAX_OBSERVABLES (5,000; 3 here)."""
    monkeypatch.setitem(app.config, "COMPOSE_MAX_OBSERVABLES", 3)
    factories.login(client, member)

    def send(count):
        return client.post(f"/notes/new/{kind}", data={
            "title": "Many", "tlp": "GREEN", "alliances": str(alliance.id), "post": "1",
            "observables": "\n".join(f"203.0.113.{i}" for i in range(count)) + "\n\n"})

    refused = send(4)
    assert refused.status_code == 422
    assert ("At most 3 observables per form; this has 4. Upload more as a STIX bundle, or "
            "import them with the CLI.") in refused.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Note)) == 0
    assert send(3).status_code == 302  # blank lines do not count


def test_the_atom_feed_stays_well_formed_with_characters_xml_cannot_hold(client, member,
                                                                        alliance):
    """U+FFFE and U+FFFF pass the one-line and plain-text checks (they are not control
    characters), but XML 1.0 forbids them: one published title made the whole public feed
    unreadable for every subscriber."""
    import xml.etree.ElementTree as ET

    from alliance.alliances import services as alliances

    alliances.update_settings(alliances.coordinators_of(alliance)[0], alliance,
                              publish_clear_allowed=True)
    factories.login(client, member)
    posted = client.post("/notes/new/analysis", data={
        "title": "Policy \uffff note", "tlp": "CLEAR", "alliances": str(alliance.id),
        "description": "Text \ufffe here.", "publish_public": "y"})
    assert posted.status_code == 302

    feed = ET.fromstring(client.get("/insights/feed.atom").data)  # noqa: S314 (our own feed)

    atom = "{http://www.w3.org/2005/Atom}"
    [entry] = feed.findall(f"{atom}entry")
    assert entry.find(f"{atom}title").text == "Policy  note"
    assert entry.find(f"{atom}summary").text == "Text  here."
