"""Hostile input found by an audit, each of which answered 500 (or hung a page, or skipped a
check): every one now gets a clear 4xx, or is taken as it safely can be, and stores nothing
it should not. Runs on SQLite and on PostgreSQL (where NUL in text is refused outright)."""
import base64
import io
import json
import uuid

import antlr4
import pytest
from sqlalchemy import select

from alliance.apikeys.services import create_key
from alliance.core.text import MARKDOWN_MAX, MARKDOWN_MAX_BRACKETS, render_markdown
from alliance.extensions import db
from alliance.notes.models import Note
from alliance.notes.posting import NoteDraft, post_note
from alliance.stix.observables import detect, normalise_url
from alliance.taxii.services import alliance_collection_id
from tests import factories
from tests.notes.helpers import STAMP, bundle, counts, identity, indicator, sid

TAXII = "application/taxii+json;version=2.1"
BAD_PORT = "http://evil.example:99999/x"


def _taxii_headers(key):
    return {"Authorization": f"Bearer {key}", "Accept": TAXII}


def _taxii_post(client, key, alliance, objects):
    return client.post(f"/taxii2/api/collections/{alliance_collection_id(alliance.id)}/objects/",
                       data=json.dumps({"objects": objects}), content_type=TAXII,
                       headers=_taxii_headers(key))


def _upload(client, alliance, text):
    return client.post("/notes/new/bundle", data={
        "title": "Upload", "tlp": "GREEN", "alliances": str(alliance.id), "bundle_text": text,
        "post": "1"})


# --- a URL whose port is not a port ----------------------------------------------------------

@pytest.mark.parametrize("url", [BAD_PORT, "http://evil.example:abc/", "https://e.example:-1/"])
def test_a_url_with_a_bad_port_is_not_an_observable(url):
    assert normalise_url(url) is None
    assert detect(url) is None or detect(url)[0] != "url"


def test_a_url_with_a_bad_port_is_taken_everywhere_without_a_500(client, member, alliance):
    factories.login(client, member)
    assert client.get("/notes/", query_string={"q": BAD_PORT}).status_code == 200
    added = client.post("/digests/watch-terms", data={"kind": "value", "value": BAD_PORT})
    assert added.status_code in (200, 302, 422)
    sco = {"type": "url", "spec_version": "2.1", "id": sid("url"), "value": BAD_PORT}
    assert _upload(client, alliance, json.dumps(bundle(sco))).status_code == 302
    key = create_key(member, "SIEM")[1]
    posted = _taxii_post(client, key, alliance, [indicator(f"[url:value = '{BAD_PORT}']")])
    assert posted.status_code == 202, posted.get_data(as_text=True)


# --- Markdown ------------------------------------------------------------------------------

@pytest.mark.parametrize("marker", ["- ", "1. ", "> "])
def test_deeply_nested_markdown_renders(marker):
    assert "deep" in str(render_markdown(marker * 8 + "deep"))
    # Past the nesting limit the rest is left out: no recursion error, no 500.
    html = str(render_markdown(marker * 2000 + "x"))
    assert html.startswith("<ul>" if marker == "- " else "<ol>" if marker == "1. " else "<bl")


@pytest.mark.parametrize("text", [
    "[" * MARKDOWN_MAX_BRACKETS + "x" * (MARKDOWN_MAX - MARKDOWN_MAX_BRACKETS),
    "![" * MARKDOWN_MAX_BRACKETS, "**a" * (MARKDOWN_MAX // 3), "*a" * (MARKDOWN_MAX // 2),
    "[a]: b\n" * (MARKDOWN_MAX_BRACKETS // 2) + "[a]" * (MARKDOWN_MAX_BRACKETS // 2),
    "| a " * 800 + "\n|" + "---|" * 800 + "\n" + "| b " * 800,
    "[" * (MARKDOWN_MAX + 1), "[" * 1_000_000, "[a]: b\n" * 3000 + "[a]" * 3000])
def test_pathological_markdown_renders_in_bounded_time(text):
    """Each of these took seconds to minutes (Python-Markdown: 11 s for 5,000 "["; markdown-it:
    25 s for 3,000 link references); within the limits, or shown as text, it is quick.
    Counted, not timed: the function calls rendering makes (at most ~310,000 for these)."""
    assert _calls(render_markdown, text) < MARKDOWN_CALLS


# Function calls (Python and C, sys.setprofile) that rendering the text of a note may make:
# ~3x the most the inputs above make within the limits (~310,000, "*a" * 5,000). Quadratic
# input, let through, makes tens of millions.
MARKDOWN_CALLS = 1_000_000


def _calls(fn, *args) -> int:
    """How many function calls fn(*args) makes: work, counted instead of timed (issue 21)."""
    import sys

    count = 0

    def profile(frame, event, arg):
        nonlocal count
        if event in ("call", "c_call"):
            count += 1

    render_markdown("warm")  # imports and caches, once
    sys.setprofile(profile)
    try:
        fn(*args)
    finally:
        sys.setprofile(None)
    return count


def test_text_over_the_limits_is_shown_escaped_as_it_is():
    for text in ("<b>" + "*x* " * MARKDOWN_MAX, "<b>" + "[x] " * (MARKDOWN_MAX_BRACKETS + 1)):
        html = str(render_markdown(text))
        assert html.startswith('<p class="plain-text">&lt;b&gt;')
        assert "<em>" not in html and "<b>" not in html
    assert "<em>x</em>" in str(render_markdown("*x* " * 100))


def test_a_note_with_pathological_markdown_shows(client, member, alliance):
    factories.login(client, member)
    posted = client.post("/notes/new/analysis", data={
        "title": "Nested", "tlp": "GREEN", "alliances": str(alliance.id),
        "description": "- " * 500 + "x", "post": "1"})
    assert posted.status_code == 302
    shown = []
    assert _calls(lambda: shown.append(client.get(posted.headers["Location"]))) < \
        PAGE_CALLS
    assert shown[0].status_code == 200


# The note page's whole request, the description's rendering included (~PAGE_CALLS / 3
# measured): a bound on the work, not a time.
PAGE_CALLS = 1_500_000


# --- timestamps and ids at the edges of their range ------------------------------------------

@pytest.mark.parametrize("param,value", [
    ("added_after", "0001-01-01T00:00:00+01:00"),
    ("added_after", "9999-12-31T23:59:59-01:00"),
    ("match[version]", "0001-01-01T00:00:00+01:00"),
])
def test_taxii_timestamps_out_of_range_are_a_400(client, member, alliance, param, value):
    key = create_key(member, "SIEM")[1]
    got = client.get(f"/taxii2/api/collections/{alliance_collection_id(alliance.id)}/objects/",
                     query_string={param: value}, headers=_taxii_headers(key))
    assert got.status_code == 400
    assert "out of range" in got.get_json()["description"]


def test_the_feed_takes_the_last_day_and_huge_cursors(client, member, alliance):
    note = post_note(member, NoteDraft(
        title="Dated", tlp="GREEN", alliance_ids=[alliance.id], objects=[identity("Dated")]))
    factories.login(client, member)
    page = client.get("/notes/?until=9999-12-31")
    assert page.status_code == 200 and note.title in page.get_data(as_text=True)
    page = client.get("/notes/?before=1714564800000000_99999999999999999999999")
    assert page.status_code == 200 and note.title in page.get_data(as_text=True)


def test_removing_a_watch_term_with_a_huge_id_is_a_400(client, member):
    factories.login(client, member)
    got = client.post("/digests/watch-terms/remove", data={"term_id": "9" * 23})
    assert got.status_code == 400


def test_the_feed_next_link_keeps_only_its_filters(client, member, alliance):
    for i in range(26):
        post_note(member, NoteDraft(
            title=f"Note {i}", tlp="GREEN", alliance_ids=[alliance.id], objects=[identity(f"Org {i}")]))
    factories.login(client, member)
    page = client.get("/notes/?endpoint=x&_external=1&_anchor=y&tlp=GREEN")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert 'href="/notes/?tlp=GREEN&amp;before=' in body
    assert "_anchor" not in body and "#y" not in body and "http://localhost/notes" not in body


def test_the_cli_refuses_a_digest_run_out_of_range(app):
    result = app.test_cli_runner().invoke(
        args=["alliance", "digests", "run", "--at", "0001-01-01T00:00:00Z"])
    assert result.exit_code != 0 and "out of range" in result.output


# --- TAXII envelopes with odd shapes ---------------------------------------------------------

@pytest.mark.parametrize("extra", [{"object_marking_refs": 5}, {"granular_markings": 7},
                                   {"object_marking_refs": True}])
def test_markings_of_the_wrong_type_are_a_422(client, member, alliance, extra):
    key = create_key(member, "SIEM")[1]
    got = _taxii_post(client, key, alliance, [indicator(**extra)])
    assert got.status_code == 422, got.get_data(as_text=True)
    assert counts() == (0, 0, 0)


def test_a_taxii_report_name_becomes_a_one_line_title(client, member, alliance):
    key = create_key(member, "SIEM")[1]
    ind = indicator()
    report = {"type": "report", "spec_version": "2.1", "id": sid("report"), "created": STAMP,
              "modified": STAMP, "name": "line1\nline2\u202e\tend", "published": STAMP,
              "object_refs": [ind["id"]]}
    assert _taxii_post(client, key, alliance, [report, ind]).status_code == 202
    assert db.session.scalars(select(Note.title)).all() == ["line1 line2 end"]


def test_a_lone_object_with_an_objects_property_has_its_references_checked(
        client, member, alliance):
    factories.login(client, member)
    custom = {"type": "x-foo", "spec_version": "2.1", "id": sid("x-foo"), "created": STAMP,
              "modified": STAMP, "created_by_ref": f"identity--{uuid.uuid4()}", "objects": []}
    assert _upload(client, alliance, json.dumps(bundle(custom))).status_code == 422
    alone = _upload(client, alliance, json.dumps(custom))
    assert alone.status_code == 422
    assert "an empty list" in alone.get_data(as_text=True)
    assert counts() == (0, 0, 0)


# --- NUL, and values longer than their columns -----------------------------------------------

def test_basic_auth_with_a_nul_is_a_401(client):
    token = base64.b64encode(b"key:cpa_ab\x00cd_secret").decode()
    got = client.get("/taxii2/", headers={"Authorization": f"Basic {token}", "Accept": TAXII})
    assert got.status_code == 401


@pytest.mark.parametrize("path,query,status", [
    ("objects/", {"match[id]": "indicator--\x00"}, 400),
    ("objects/", {"match[type]": "a\x00"}, 400),
    ("manifest/", {"match[type]": "a\x00"}, 400),
    ("objects/indicator--%00/", {}, 404),
    ("objects/indicator--%00/versions/", {}, 404),
])
def test_a_nul_in_a_taxii_address_is_a_400_or_404(client, member, alliance, path, query,
                                                   status):
    """A NUL in a query value is malformed (400); a path with one names nothing (404)."""
    key = create_key(member, "SIEM")[1]
    got = client.get(f"/taxii2/api/collections/{alliance_collection_id(alliance.id)}/{path}",
                     query_string=query, headers=_taxii_headers(key))
    assert got.status_code == status


def test_a_nul_in_other_addresses_is_a_404_or_400(client, member, alliance):
    key = create_key(member, "SIEM")[1]
    assert client.get("/taxii2/api/status/%00/", headers=_taxii_headers(key)).status_code == 404
    assert client.delete(f"/taxii2/api/collections/{alliance_collection_id(alliance.id)}"
                         "/objects/x%00/", headers=_taxii_headers(key)).status_code == 404
    factories.login(client, member)
    got = client.get("/notes/?type=%00")
    assert got.status_code == 400 and "NUL" in got.get_data(as_text=True)


@pytest.mark.parametrize("objects", [
    lambda: [{"type": "url", "spec_version": "2.1", "id": sid("url"),
              "value": "http://a.example/\x00x"}],
    lambda: [indicator(name="a\x00b")],
    lambda: [indicator(**{"x_a\x00b": "c"})],
])
def test_a_nul_in_stix_content_is_a_422(client, member, alliance, objects):
    key = create_key(member, "SIEM")[1]
    got = _taxii_post(client, key, alliance, objects())
    assert got.status_code == 422
    assert "NUL" in json.dumps(got.get_json())
    assert counts() == (0, 0, 0)


def test_an_escaped_backslash_before_u0000_is_not_a_nul(client, member, alliance):
    key = create_key(member, "SIEM")[1]
    got = _taxii_post(client, key, alliance, [indicator(name="C:\\u0000dir")])
    assert got.status_code == 202, got.get_data(as_text=True)


def test_an_id_longer_than_its_column_is_a_422(client, member, alliance):
    key = create_key(member, "SIEM")[1]
    stix_type = "x-" + "a" * 120
    got = _taxii_post(client, key, alliance, [
        {"type": stix_type, "spec_version": "2.1", "id": f"{stix_type}--{uuid.uuid4()}",
         "created": STAMP, "modified": STAMP}])
    assert got.status_code == 422
    assert "at most 100 characters" in json.dumps(got.get_json())
    assert counts() == (0, 0, 0)


def test_a_timestamp_longer_than_its_column_is_not_a_500(client, member, alliance):
    key = create_key(member, "SIEM")[1]
    stamp = "2024-05-01T12:00:00." + "0" * 40 + "1Z"
    got = _taxii_post(client, key, alliance, [indicator(created=STAMP, modified=stamp)])
    assert got.status_code in (202, 422), got.get_data(as_text=True)


# --- patterns only stix2's own parser can judge ------------------------------------------------

def _long_pattern(n: int) -> str:
    """A pattern the fast checker cannot vouch for (it does not parse): stix2's parser must."""
    return "[ipv4-addr:value = '192.0.2.1'" + " OR ipv4-addr:value = '192.0.2.1'" * n + " AND"


def test_patterns_for_the_slow_parser_have_a_budget_per_post(app, monkeypatch, client, member,
                                                             alliance):
    """stix2's pattern parser reads about 7 µs a character: 10 MB of patterns it must read
    held a worker for over a minute. Past STIX_MAX_SLOW_PATTERNS characters a post is
    refused, quickly, saying what to do."""
    monkeypatch.setitem(app.config, "STIX_MAX_SLOW_PATTERNS", 50_000)
    key = create_key(member, "SIEM")[1]
    heavy = [indicator(_long_pattern(100)) for _ in range(40)]  # ~130,000 characters
    read = []  # what stix2's (ANTLR) pattern parser is given to read: the work, not a time
    real_init = antlr4.InputStream.__init__

    def counting(self, data):
        read.append(len(data))
        real_init(self, data)

    with monkeypatch.context() as patch:
        patch.setattr(antlr4.InputStream, "__init__", counting)
        got = _taxii_post(client, key, alliance, heavy)
    assert 0 < sum(read) <= 50_000 + len(_long_pattern(100)), read
    assert got.status_code == 422
    reasons = [p["reason"] for p in got.get_json()["details"]["problems"]]
    assert any("post them in smaller bundles" in r for r in reasons)
    assert counts() == (0, 0, 0)
    # Within the budget, stix2's own verdict names the problem.
    got = _taxii_post(client, key, alliance, heavy[:3])
    reasons = [p["reason"] for p in got.get_json()["details"]["problems"]]
    assert got.status_code == 422 and not any("smaller bundles" in r for r in reasons)


def test_patterns_the_fast_checker_accepts_use_none_of_the_budget(app, monkeypatch, client,
                                                                  member, alliance):
    monkeypatch.setitem(app.config, "STIX_MAX_SLOW_PATTERNS", 10)
    key = create_key(member, "SIEM")[1]
    got = _taxii_post(client, key, alliance, [
        indicator(f"[ipv4-addr:value = '192.0.2.{i}']") for i in range(20)])
    assert got.status_code == 202, got.get_data(as_text=True)


# --- a TAXII status is stored with its note, or neither is -----------------------------------

def test_a_taxii_status_that_cannot_be_stored_leaves_no_note_and_a_retry_stores_one(
        client, member, alliance):
    from sqlalchemy import event
    from sqlalchemy.exc import OperationalError

    from alliance.taxii.models import TaxiiStatus

    key = create_key(member, "SIEM")[1]
    envelope = [indicator()]

    def disk_full(mapper, connection, target):
        raise OperationalError("INSERT INTO taxii_statuses", {}, Exception("disk I/O error"))

    event.listen(TaxiiStatus, "before_insert", disk_full)
    try:
        failed = _taxii_post(client, key, alliance, envelope)
    finally:
        event.remove(TaxiiStatus, "before_insert", disk_full)
    assert failed.status_code == 500  # a server fault, told as a TAXII error
    assert failed.content_type.startswith(TAXII)
    db.session.rollback()
    assert counts() == (0, 0, 0)  # the client saw an error: nothing of the envelope stays
    retried = _taxii_post(client, key, alliance, envelope)
    assert retried.status_code == 202, retried.get_data(as_text=True)
    status = db.session.get(TaxiiStatus, retried.get_json()["id"])
    assert status.successes == [{"id": envelope[0]["id"], "version": envelope[0]["modified"]}]
    assert counts()[0] == 1


def test_a_taxii_delete_refused_for_one_note_retracts_none(client, member, alliance):
    """A plain member may retract their own notes, not a colleague's: a DELETE of an object
    both hold is a 403, and before, the member's own note had been retracted all the same."""
    colleague = factories.make_user(member.organisation, "colleague@member.example")
    shared = indicator()
    mine = _taxii_post(client, create_key(member, "SIEM")[1], alliance, [shared])
    theirs = _taxii_post(client, create_key(colleague, "SIEM")[1], alliance, [shared])
    assert (mine.status_code, theirs.status_code) == (202, 202)

    got = client.delete(f"/taxii2/api/collections/{alliance_collection_id(alliance.id)}"
                        f"/objects/{shared['id']}/", headers=_taxii_headers(
                            create_key(member, "Delete")[1]))

    assert got.status_code == 403, got.get_data(as_text=True)
    assert "Nothing was deleted" in got.get_json()["description"]
    db.session.expire_all()
    assert db.session.scalars(select(Note.retracted_at)).all() == [None, None]


# --- forms sent other than as forms (an audit of every POST form) -------------------------

def _row_counts():
    from sqlalchemy import func

    from alliance.digests.models import WatchTerm
    from alliance.orgs.models import PendingRegistration

    db.session.expire_all()
    return tuple(db.session.scalar(select(func.count()).select_from(model))
                 for model in (Note, WatchTerm, PendingRegistration))


def test_a_text_field_sent_as_a_file_is_a_400_naming_it(client, member, alliance):
    """Flask-WTF reads uploads and fields as one form: a text field sent as a file reached
    the validators (len() of an upload) and our code (.encode()) as a 500, on every form,
    signed in or not."""
    for path, data, signed_in in (
            ("/auth/sign-in", {"email": (io.BytesIO(b"a@b.example"), "e.txt"),
                               "password": "x"}, False),
            ("/notes/new/bundle", {"title": "T", "tlp": "AMBER", "alliances": str(alliance.id),
                                   "post": "1",
                                   "bundle_text": (io.BytesIO(b"{}"), "b.json")}, True),
            ("/account/api-keys", {"name": "k", "expires": (io.BytesIO(b"x"), "d.txt")}, True)):
        if signed_in:
            factories.login(client, member)
        response = client.post(path, data=data, content_type="multipart/form-data")
        assert response.status_code == 400, (path, response.status_code)
        assert "was sent as a file; it takes text" in response.get_data(as_text=True)
    assert _row_counts() == (0, 0, 0)


def test_an_uploaded_bundle_is_still_taken(client, member, alliance):
    factories.login(client, member)
    raw = json.dumps(bundle(identity("Uploaded"))).encode()
    response = client.post("/notes/new/bundle", content_type="multipart/form-data", data={
        "title": "Upload", "tlp": "GREEN", "alliances": str(alliance.id), "post": "1",
        "bundle_file": (io.BytesIO(raw), "bundle.json")})
    assert response.status_code == 302
    assert _row_counts()[0] == 1


@pytest.mark.parametrize("body", [{"email": 1, "password": "x"}, [1, 2], 1, "x",
                                  {"title": {"a": 1}}])
def test_a_json_body_to_a_web_form_is_a_415(client, member, alliance, body):
    """Flask-WTF builds a form from a JSON body: a number, a list or a dict where text is
    expected answered 500."""
    assert client.post("/auth/sign-in", json=body).status_code == 415
    factories.login(client, member)
    response = client.post("/notes/new/indicators", json=body)
    assert response.status_code == 415
    assert "takes a form, not JSON" in response.get_data(as_text=True)
    assert _row_counts() == (0, 0, 0)


@pytest.mark.parametrize("value", ["a\x00b@evil.example", "http://x.example/\x00",
                                   "http://a\x00b.example/", "http://x.example/?q=\x00"])
def test_a_nul_in_an_observable_is_not_an_observable_and_nothing_is_stored(client, member,
                                                                         alliance, value):
    """PostgreSQL refuses NUL in text: a watch term or an observable holding one was a 500
    there (and was stored as it was on SQLite)."""
    assert detect(value) is None
    factories.login(client, member)
    watch = client.post("/digests/watch-terms", data={"kind": "value", "value": value})
    assert watch.status_code == 422
    assert "is not an IP address" in watch.get_data(as_text=True)
    posted = client.post("/notes/new/indicators", data={
        "title": "T", "tlp": "AMBER", "post": "1", "alliances": str(alliance.id),
        "observables": f"203.0.113.5\n{value}"})
    assert posted.status_code == 422
    assert _row_counts() == (0, 0, 0)


def test_a_sign_in_with_a_nul_is_locked_out_and_audited_like_any_other(client, member):
    """The lockout was recorded with a query PostgreSQL refused: a 500 on every attempt
    after the fifth, and no audit entry."""
    from alliance.audit.models import AuditEvent

    codes = [client.post("/auth/sign-in", data={"email": "a\x00@x.example",
                                                "password": "nope"}).status_code
             for _ in range(7)]
    assert codes == [401] * 5 + [429, 429]
    [event] = db.session.scalars(select(AuditEvent).where(
        AuditEvent.action == "signin.lockout")).all()
    assert event.target_label == "a\\x00@x.example"


def test_a_registration_with_a_nul_in_its_website_is_refused_before_it_is_stored(client, db):
    """It was stored pending, and on PostgreSQL every confirmation link then answered 500."""
    response = client.post("/register", data={
        "org_name": "Odd Org", "country": "DE", "sectors": "government",
        "website": "https://odd.example/\x00", "name": "Odd", "email": "odd@odd.example",
        "password": factories.PASSWORD, "confirm": factories.PASSWORD})
    assert response.status_code == 422
    assert "Use letters, digits and punctuation only" in response.get_data(as_text=True)
    assert _row_counts() == (0, 0, 0)
    assert factories.queued_mails() == []
