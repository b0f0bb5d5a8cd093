"""The TLP of a note posted over TAXII: the strictest TLP marking its objects carry, and never
looser than the alliance's default (AMBER here) while any object carries no marking."""
import json

import pytest
from sqlalchemy import select

from alliance.apikeys.services import create_key
from alliance.extensions import db
from alliance.notes.models import Note
from alliance.stix.markings import marking_id
from alliance.taxii.services import alliance_collection_id
from tests.auth.helpers import sign_in
from tests.notes.helpers import identity, indicator

TAXII = "application/taxii+json;version=2.1"


def _marked(obj, level):
    return dict(obj, object_marking_refs=[marking_id(level)])


def _post(client, user, alliance, objects):
    key = create_key(user, "SIEM")[1]
    response = client.post(
        f"/taxii2/api/collections/{alliance_collection_id(alliance.id)}/objects/",
        data=json.dumps({"objects": objects}), content_type=TAXII,
        headers={"Authorization": f"Bearer {key}", "Accept": TAXII})
    assert response.status_code == 202, response.get_data(as_text=True)
    return db.session.scalars(select(Note).order_by(Note.id.desc())).first()


@pytest.mark.parametrize(("levels", "expected"), [
    ([None], "AMBER"),                       # nothing marked: the alliance's default
    (["GREEN", "GREEN"], "GREEN"),           # every object marked: its marking
    (["CLEAR", None], "AMBER"),              # one unmarked object keeps the default
    (["GREEN", None], "AMBER"),
    (["AMBER+STRICT", None], "AMBER+STRICT"),  # stricter than the default: the marking
    (["CLEAR", "AMBER"], "AMBER"),
])
def test_the_note_takes_the_strictest_marking_and_unmarked_objects_the_default(
        client, member, alliance, levels, expected):
    objects = [indicator(f"[domain-name:value = 'n{n}.example']") if n else identity("Us")
               for n in range(len(levels))]
    objects = [_marked(o, level) if level else o for o, level in zip(objects, levels,
                                                                      strict=True)]

    assert _post(client, member, alliance, objects).tlp == expected


def test_a_clear_object_beside_an_unmarked_one_does_not_make_the_note_public(
        client, make_client, member, outsider, alliance):
    """Before, one TLP:CLEAR-marked identity made the whole envelope TLP:CLEAR, so the
    unmarked indicator beside it became readable by every signed-in user."""
    secret = indicator("[domain-name:value = 'unmarked-secret.example']")
    note = _post(client, member, alliance, [_marked(identity("Us"), "CLEAR"), secret])

    reader, stranger = make_client(), make_client()
    sign_in(reader, member.email)
    sign_in(stranger, outsider.email)
    search = "/notes/?q=unmarked-secret.example"
    # The controls: the page exists and the search finds it, for a member.
    assert reader.get(f"/notes/{note.uuid}").status_code == 200
    assert note.uuid in reader.get(search).get_data(as_text=True)

    assert stranger.get(f"/notes/{note.uuid}").status_code == 404
    assert note.uuid not in stranger.get(search).get_data(as_text=True)
