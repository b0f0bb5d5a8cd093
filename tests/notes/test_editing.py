"""Editing a note creates a new version of its report; the history keeps the old ones."""
import pytest
from sqlalchemy import func, select, update

from alliance.core.errors import Conflict, NotAllowed
from alliance.extensions import db
from alliance.notes import compose, editing, posting, reading
from alliance.notes.models import Note, NoteObject, StixObject
from alliance.sharing.policy import Principal
from tests import factories


@pytest.fixture
def note(member, alliance):
    objects = compose.indicator_set(member.organisation, "GREEN",
                                    observables_text="bad.example")
    return posting.post_note(member, posting.NoteDraft(
        title="First title", tlp="GREEN", alliance_ids=[alliance.id], objects=objects, kind="indicators",
        description="first text"))


def _report_versions(note):
    return db.session.scalars(select(StixObject).where(StixObject.stix_id == note.report_id)
                              .order_by(StixObject.modified)).all()


def test_editing_adds_a_report_version_and_keeps_the_old_one(member, note):
    editing.edit_note(member, note, title="Second title", description="second text")
    versions = _report_versions(note)
    assert [v.body["name"] for v in versions] == ["First title", "Second title"]
    assert versions[1].modified > versions[0].modified
    assert versions[1].body["created"] == versions[0].body["created"]
    assert note.version == 2
    bundle = reading.note_bundle(note)
    reports = [o for o in bundle["objects"] if o["type"] == "report"]
    assert [r["name"] for r in reports] == ["Second title"]  # the download holds the current one
    shown = reading.history(Principal.of(member), note)
    assert {v.modified for v in shown if v.stix_id == note.report_id} == \
        {v.modified for v in versions}


def test_an_edit_of_a_version_someone_else_replaced_meanwhile_is_a_409(member, note):
    """Two edits at once: the second read the note before the first stored its version.
    Before, both replaced the first report and the note held two."""
    editing.edit_note(member, note, title="Second title", description="")
    db.session.execute(update(Note).where(Note.id == note.id).values(version=Note.version + 1),
                       execution_options={"synchronize_session": False})  # what `note` missed

    with pytest.raises(Conflict):
        editing.edit_note(member, note, title="Third title", description="")

    db.session.expire_all()
    held = db.session.scalars(select(StixObject.body).join(
        NoteObject, NoteObject.object_id == StixObject.id).where(
        NoteObject.note_id == note.id, StixObject.type == "report")).all()
    assert [b["name"] for b in held] == ["Second title"]

def test_only_the_author_organisation_edits(note, coordinator):
    with pytest.raises(NotAllowed):
        editing.edit_note(coordinator, note, title="Hijacked", description="")
    assert len(_report_versions(note)) == 1


def test_the_edit_page_saves_a_version_and_the_note_page_shows_the_history(client, member, note):
    factories.login(client, member)
    response = client.post(f"/notes/{note.uuid}/edit",
                           data={"title": "Edited <b>title</b>", "description": "new"})
    assert response.status_code == 302
    page = client.get(f"/notes/{note.uuid}").get_data(as_text=True)
    assert "Edited &lt;b&gt;title&lt;/b&gt;" in page
    assert db.session.scalar(select(func.count()).select_from(StixObject).where(
        StixObject.stix_id == note.report_id)) == 2


def test_someone_outside_the_organisation_cannot_open_the_edit_page(client, coordinator, note):
    factories.login(client, coordinator)
    assert client.get(f"/notes/{note.uuid}/edit").status_code == 403
