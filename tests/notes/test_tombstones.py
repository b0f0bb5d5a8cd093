"""A retracted note tells its former readers (issue 20): those who could read it before its
retraction (the one read rule as if it were not retracted) find a tombstone at its address,
410 Gone, with its title, who retracted it, when and why, and that its indicators should no
longer be used; nothing of its content. Everyone else gets exactly the 404 of a note that
never existed, byte for byte."""
import re
import uuid

import pytest

from alliance.notes import editing, posting
from alliance.sharing.policy import Principal, former_reader
from tests import factories
from tests.notes.helpers import identity, indicator

SECRET_VALUE = "198.51.100.211"
REASON = "The address belongs to a hospital, not to the actor."


def _post(user, alliance, tlp="GREEN", **extra):
    return posting.post_note(user, posting.NoteDraft(
        title="Phishing relay", tlp=tlp, alliance_ids=[alliance.id],
        description="Relay seen in the March wave.",
        objects=[identity(), indicator(pattern=f"[ipv4-addr:value = '{SECRET_VALUE}']")], **extra))


@pytest.fixture
def third(alliance):
    """A user of a third organisation, an active member of the alliance: a reader."""
    org = factories.make_org("Third Org")
    factories.add_member(alliance, org, "active")
    return factories.make_user(org, "reader@third.example", name="Rhea Reader")


def _body(response) -> str:
    """The page with what changes from one request to the next (the sign-out form's CSRF
    token, signed with a time stamp) taken out."""
    return re.sub(r'name="csrf_token" value="[^"]*"', 'name="csrf_token"',
                  response.get_data(as_text=True))


def test_a_former_reader_finds_a_tombstone_with_who_when_and_why(client, member, coordinator,
                                                                 alliance, third):
    note = _post(member, alliance)
    editing.retract_note(coordinator, note, REASON)
    factories.login(client, third)

    response = client.get(f"/notes/{note.uuid}")

    assert response.status_code == 410
    page = response.get_data(as_text=True)
    assert 'id="tombstone-title">Phishing relay<' in page
    who = re.sub(r"\s+", " ", page.split('id="tombstone-who"', 1)[1].split("</p>", 1)[0])
    assert "Coord" in who and "(Coordinating Org)" in who  # the coordinator who retracted it
    assert note.retracted_at.strftime("%Y-%m-%d %H:%M UTC") in who
    assert "a coordinator of an alliance it was shared with" in who
    assert REASON.replace(",", "") in page.replace(",", "")
    assert "should no longer be used" in page
    assert "Member Org" in page  # whose note it was
    # Nothing of its content: not the description, not an indicator.
    assert SECRET_VALUE not in page and "March wave" not in page
    assert "indicator--" not in page and 'id="objects"' not in page
    # Still out of the feed and search.
    assert "Phishing relay" not in client.get(f"/notes/?q={SECRET_VALUE}").get_data(True)
    assert "Phishing relay" not in client.get("/notes/").get_data(True)


def test_an_outsider_gets_the_404_of_a_note_that_never_existed(client, member, coordinator,
                                                               alliance, outsider):
    note = _post(member, alliance)
    editing.retract_note(coordinator, note, REASON)
    factories.login(client, outsider)

    retracted = client.get(f"/notes/{note.uuid}")
    never = client.get(f"/notes/{uuid.uuid4()}")

    assert retracted.status_code == never.status_code == 404
    assert _body(retracted) == _body(never)
    assert "Phishing relay" not in _body(retracted) and REASON not in _body(retracted)
    for path in ("bundle.json",):
        assert client.get(f"/notes/{note.uuid}/{path}").status_code == 404


def test_a_member_not_named_on_a_red_note_is_no_former_reader(client, member, coordinator,
                                                              alliance, third):
    named = factories.make_user(coordinator.organisation, "named@coord.example")
    note = _post(member, alliance, tlp="RED", recipient_ids=[named.id])
    editing.retract_note(member, note, REASON)

    factories.login(client, named)
    assert client.get(f"/notes/{note.uuid}").status_code == 410
    factories.login(client, third)  # in the alliance, not named
    unnamed, never = client.get(f"/notes/{note.uuid}"), client.get(f"/notes/{uuid.uuid4()}")
    assert unnamed.status_code == 404 and _body(unnamed) == _body(never)


def test_an_organisation_that_left_since_is_told_nothing(client, member, coordinator,
                                                         alliance, third):
    """Decided at read time, as the rule is: it could read the note once, not any more."""
    note = _post(member, alliance)
    editing.retract_note(coordinator, note, REASON)
    factories.add_member(alliance, third.organisation, "left")
    factories.login(client, third)

    gone, never = client.get(f"/notes/{note.uuid}"), client.get(f"/notes/{uuid.uuid4()}")
    assert gone.status_code == 404 and _body(gone) == _body(never)


def test_the_author_organisation_and_coordinators_still_read_the_note(client, member,
                                                                      coordinator, alliance):
    note = _post(member, alliance)
    editing.retract_note(member, note, REASON)
    for user in (member, coordinator):
        factories.login(client, user)
        response = client.get(f"/notes/{note.uuid}")
        assert response.status_code == 200
        assert SECRET_VALUE in response.get_data(as_text=True)


def test_every_address_of_the_note_answers_a_former_reader_with_the_tombstone(
        client, member, alliance, third):
    note = _post(member, alliance)
    editing.retract_note(member, note, REASON)
    factories.login(client, third)

    download = client.get(f"/notes/{note.uuid}/bundle.json")
    respond = client.post(f"/notes/{note.uuid}/responses",
                          data={"kind": "comment", "text": "Still there?"})
    for response in (download, respond):
        assert response.status_code == 410
        page = response.get_data(as_text=True)
        assert "should no longer be used" in page and SECRET_VALUE not in page
    who = page.split('id="tombstone-who"', 1)[1].split("</p>", 1)[0]
    assert "for the organisation that posted it" in who and "Analyst" in who


def test_former_reader_is_the_rule_without_its_retraction_term(member, coordinator, alliance,
                                                              third, outsider):
    note = _post(member, alliance)
    assert not former_reader(Principal.of(third), note)  # not retracted: a reader, not former
    editing.retract_note(coordinator, note, REASON)
    assert former_reader(Principal.of(third), note)
    assert former_reader(Principal.of(member), note)
    assert not former_reader(Principal.of(outsider), note)
    assert not former_reader(Principal.anonymous(), note)
