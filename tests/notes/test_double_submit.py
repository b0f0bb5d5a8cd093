"""A compose or response form sent twice (a double click on "Post", a reload of the POST, a
retry after a timeout, Back and send again) posts once, and leads the second time to what the
first posted. The same form sent again with other content (back, edit, send) is a new post,
the same content long after is a new post, and a token never leads to another user's post."""
import io
import re
from datetime import timedelta

import orjson
from sqlalchemy import func, select

from alliance.extensions import db
from alliance.notes import comments, posting, submissions
from alliance.notes.models import FormSubmission, Note, NoteComment
from tests import factories
from tests.notes.helpers import bundle, counts, identity, indicator

TOKEN = re.compile(r'name="submission" type="hidden" value="([A-Za-z0-9_-]+)"')


def _token(client, path) -> str:
    page = client.get(path).get_data(as_text=True)
    return TOKEN.search(page).group(1)


def _indicator_form(alliance, token, title="Double click", **extra):
    return {"title": title, "tlp": "GREEN", "alliances": str(alliance.id),
            "observables": "203.0.113.9\nbad.example", "submission": token, "post": "1",
            **extra}


def _notes() -> list[Note]:
    db.session.expire_all()
    return db.session.scalars(select(Note).order_by(Note.id)).all()


def test_a_compose_form_sent_twice_posts_one_note_and_leads_to_it(client, member, alliance):
    factories.login(client, member)
    token = _token(client, "/notes/new/indicators")
    first = client.post("/notes/new/indicators", data=_indicator_form(alliance, token))
    before = counts()
    second = client.post("/notes/new/indicators", data=_indicator_form(alliance, token))

    [note] = _notes()
    assert first.status_code == second.status_code == 302
    assert first.headers["Location"] == second.headers["Location"] == f"/notes/{note.uuid}"
    assert counts() == before  # not a row more: no objects, no links
    page = client.get(second.headers["Location"]).get_data(as_text=True)
    assert "That form was sent twice; it is posted once, here." in page


def test_the_same_content_from_a_page_of_its_own_posts_once_until_some_time_has_passed(
        client, member, alliance):
    """Back re-fetches the compose page (signed-in pages are not cached): a new token, and
    the browser fills the fields in again. Sent again soon after, it is the same post; the
    same content posted again later is a new note."""
    factories.login(client, member)
    tokens = [_token(client, "/notes/new/indicators") for _ in range(3)]
    assert len(set(tokens)) == 3
    first = client.post("/notes/new/indicators", data=_indicator_form(alliance, tokens[0]))
    before = counts()
    again = client.post("/notes/new/indicators", data=_indicator_form(alliance, tokens[1]))
    assert again.status_code == 302
    assert again.headers["Location"] == first.headers["Location"]
    assert counts() == before
    assert len(_notes()) == 1

    for row in db.session.scalars(select(FormSubmission)):
        row.created_at -= submissions.RESENT_WITHIN + timedelta(seconds=1)
    db.session.commit()
    later = client.post("/notes/new/indicators", data=_indicator_form(alliance, tokens[2]))
    assert later.status_code == 302
    assert later.headers["Location"] != first.headers["Location"]
    assert len(_notes()) == 2


def test_the_same_content_to_another_form_or_by_another_user_is_another_post(
        client, member, alliance):
    colleague = factories.make_user(member.organisation, "colleague@member.example")
    factories.login(client, member)
    form = _indicator_form(alliance, _token(client, "/notes/new/indicators"))
    assert client.post("/notes/new/indicators", data=form).status_code == 302
    incident = {**form, "submission": _token(client, "/notes/new/incident")}
    assert client.post("/notes/new/incident", data=incident).status_code == 302
    factories.login(client, colleague)
    theirs = {**form, "submission": _token(client, "/notes/new/indicators")}
    assert client.post("/notes/new/indicators", data=theirs).status_code == 302
    assert [(n.kind, n.author_id) for n in _notes()] == [
        ("indicators", member.id), ("incident", member.id), ("indicators", colleague.id)]


def test_the_form_sent_again_with_other_content_is_a_new_note(client, member, alliance):
    """Back, edit, send: the browser keeps the page's token, the content differs."""
    factories.login(client, member)
    token = _token(client, "/notes/new/indicators")
    client.post("/notes/new/indicators", data=_indicator_form(alliance, token))
    client.post("/notes/new/indicators", data=_indicator_form(alliance, token, title="Edited"))
    assert [n.title for n in _notes()] == ["Double click", "Edited"]


def test_a_refused_sending_keeps_its_token_and_the_corrected_one_posts(client, member,
                                                                     alliance):
    factories.login(client, member)
    token = _token(client, "/notes/new/indicators")
    refused = client.post("/notes/new/indicators",
                          data=_indicator_form(alliance, token, observables="not an observable"))
    assert refused.status_code == 422
    assert TOKEN.search(refused.get_data(as_text=True)).group(1) == token
    assert db.session.scalar(select(func.count()).select_from(FormSubmission)) == 0

    assert client.post("/notes/new/indicators",
                       data=_indicator_form(alliance, token)).status_code == 302
    assert len(_notes()) == 1


def test_an_uploaded_bundle_sent_twice_is_one_note_and_another_file_is_another(
        client, member, alliance):
    """The upload is part of the content: the same file again is the same sending."""
    factories.login(client, member)
    token = _token(client, "/notes/new/bundle")
    raw = orjson.dumps(bundle(identity("Uploaded"), indicator()))
    other = orjson.dumps(bundle(identity("Another upload"), indicator()))

    def send(data: bytes):
        return client.post("/notes/new/bundle", content_type="multipart/form-data", data={
            "title": "Upload", "tlp": "GREEN", "alliances": str(alliance.id), "post": "1",
            "submission": token, "bundle_file": (io.BytesIO(data), "bundle.json")})

    first, second = send(raw), send(raw)
    assert first.status_code == second.status_code == 302
    assert first.headers["Location"] == second.headers["Location"]
    assert len(_notes()) == 1
    assert send(other).status_code == 302
    assert len(_notes()) == 2


def test_a_token_never_leads_to_another_users_note(client, member, alliance):
    colleague = factories.make_user(member.organisation, "colleague@member.example")
    factories.login(client, member)
    token = _token(client, "/notes/new/indicators")
    mine = client.post("/notes/new/indicators", data=_indicator_form(alliance, token))

    factories.login(client, colleague)
    theirs = client.post("/notes/new/indicators", data=_indicator_form(alliance, token))
    assert theirs.status_code == 302
    assert theirs.headers["Location"] != mine.headers["Location"]
    assert [n.author_id for n in _notes()] == [member.id, colleague.id]


def test_a_response_sent_twice_is_one_comment(client, member, coordinator, alliance):
    note = posting.post_note(member, posting.NoteDraft(
        title="Asked", tlp="GREEN", alliance_ids=[alliance.id], objects=[indicator()]))
    factories.login(client, coordinator)
    token = TOKEN.search(client.get(f"/notes/{note.uuid}").get_data(as_text=True)).group(1)
    data = {"kind": "comment", "text": "Seen here too", "submission": token}
    first = client.post(f"/notes/{note.uuid}/responses", data=data)
    second = client.post(f"/notes/{note.uuid}/responses", data=data)
    assert first.status_code == second.status_code == 302
    assert second.headers["Location"] == f"/notes/{note.uuid}#responses"
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(NoteComment)) == 1
    assert client.post(f"/notes/{note.uuid}/responses",
                       data={**data, "text": "And again, later"}).status_code == 302
    assert db.session.scalar(select(func.count()).select_from(NoteComment)) == 2


def test_two_sendings_at_the_same_moment_store_one_note(member, alliance, monkeypatch):
    """Both pass the check before either commits: the second's record of the sending fails
    on the unique key, and it stores nothing of its own."""
    monkeypatch.setattr(posting, "check_submission", lambda actor, key: None)

    def post():
        return posting.post_note(member, posting.NoteDraft(
            title="Raced", tlp="GREEN", alliance_ids=[alliance.id], objects=[indicator()]),
            submission=submissions.Sending("k" * 64, "K" * 64))

    first = post()
    before = counts()
    try:
        post()
    except submissions.AlreadyPosted as exc:
        assert exc.note_id == first.id
    else:
        raise AssertionError("the second sending was stored")
    assert counts() == before


def test_a_comment_sent_twice_at_the_same_moment_is_stored_once(member, coordinator, alliance,
                                                               monkeypatch):
    note = posting.post_note(member, posting.NoteDraft(
        title="Asked", tlp="GREEN", alliance_ids=[alliance.id], objects=[indicator()]))
    monkeypatch.setattr(comments, "check_submission", lambda actor, key: None)
    sending = submissions.Sending("c" * 64, "C" * 64)
    first = comments.add_comment(coordinator, note, "comment", "once", submission=sending)
    try:
        comments.add_comment(coordinator, note, "comment", "once", submission=sending)
    except submissions.AlreadyPosted as exc:
        assert exc.comment_id == first.id
    else:
        raise AssertionError("the second sending was stored")
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(NoteComment)) == 1
