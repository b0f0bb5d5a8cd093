"""The feed's columns and counts, its STIX type choice list, saved searches, and the bulk
export of a filtered feed (STIX bundle, CSV of observables, indicator list): through the read
rule, labelled with the strictest TLP held, streamed page by page, rate-limited as TAXII."""
import csv
import io
import re
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
import stix2
from sqlalchemy import event, select

from alliance.extensions import db
from alliance.notes import comments, export, listing, posting
from alliance.notes.models import SavedSearch
from alliance.sharing.policy import Principal
from alliance.stix.validation import parse_bundle
from tests import factories
from tests.notes.helpers import identity

SCO_TYPES = {"ip": "ipv4-addr", "domain": "domain-name", "url": "url"}


def sco(value: str) -> dict:
    kind = ("url" if value.startswith("http") else
            "ip" if re.fullmatch(r"[\d.]+", value) else "domain")
    stix_type = SCO_TYPES[kind]
    return {"type": stix_type, "spec_version": "2.1", "id": f"{stix_type}--{uuid.uuid4()}",
            "value": value}


def post(author, alliances, title, *, tlp="GREEN", values=(), recipients=(), **extra):
    draft = posting.NoteDraft(title=title, tlp=tlp, alliance_ids=[a.id for a in alliances],
                              objects=[identity(title), *map(sco, values)],
                              recipient_ids=[u.id for u in recipients], **extra)
    return posting.post_note(author, draft)


def respond(author, note, comment=0, opinion=0, sighting=0):
    for _ in range(comment):
        comments.add_comment(author, note, "comment", "Seen here too.")
    for _ in range(opinion):
        comments.add_comment(author, note, "opinion", "", opinion="agree")
    for _ in range(sighting):
        comments.add_comment(author, note, "sighting", "")


def item(html: str, note) -> str:
    """The feed's list item of a note."""
    found = re.search(rf'<li class="note-item" id="note-{note.uuid}">(.*?)</li>\s*(?=<li class'
                      r'="note-item"|</ul>)', html, re.S)
    assert found, f"note {note.title} is not in the feed"
    return found.group(1)


def counts_in(fragment: str) -> dict[str, int]:
    return {name: int(n) for n, name in re.findall(
        r'data-count="[a-z]+">(\d+) (observable|response|sighting)', fragment)}


@pytest.fixture
def pacific(coordinator, member):
    other = factories.make_alliance(coordinator, slug="pacific", name="Pacific Alliance")
    factories.add_member(other, member.organisation, "active")
    return other


@pytest.fixture
def outside_reader(alliance):
    """A member of another organisation in 'atlantic', reading what others posted."""
    org = factories.make_org("Reader Org")
    factories.add_member(alliance, org, "active")
    return factories.make_user(org, "reader@reader.example")


class Statements:
    """Counts the SQL statements the app runs (the feed and exports must not run one per
    note)."""

    def __init__(self):
        self.n = 0

    def __enter__(self):
        event.listen(db.engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *exc):
        event.remove(db.engine, "before_cursor_execute", self._count)

    def _count(self, *args):
        self.n += 1


# --- the feed ----------------------------------------------------------------------------

def test_each_note_shows_its_alliances_organisation_tlp_and_counts(
        client, member, coordinator, alliance, pacific, outside_reader):
    both = post(member, [alliance, pacific], "Shared twice", tlp="AMBER",
                values=["203.0.113.7", "evil.example", "https://evil.example/x"])
    quiet = post(coordinator, [alliance], "Nothing yet", values=["198.51.100.1"])
    respond(outside_reader, both, comment=2, opinion=1, sighting=3)
    respond(member, both, sighting=1)
    respond(member, quiet, comment=1)

    factories.login(client, outside_reader)
    html = client.get("/notes/").get_data(as_text=True)

    shared = item(html, both)
    assert "Atlantic Alliance" in shared and "Pacific Alliance" in shared
    assert "Member Org" in shared and "TLP:AMBER" in shared
    assert counts_in(shared) == {"observable": 3, "response": 3, "sighting": 4}
    other = item(html, quiet)
    assert "Atlantic Alliance" in other and "Pacific Alliance" not in other
    assert "Coordinating Org" in other
    assert counts_in(other) == {"observable": 1, "response": 1, "sighting": 0}


def test_counts_never_include_a_note_the_reader_cannot_read(member, coordinator, alliance,
                                                            outside_reader):
    """page_facts counts a note's observables and responses only if the rule lets the reader
    read it: a RED note not addressed to them gets no counts, even when asked about."""
    red = post(member, [alliance], "Red", tlp="RED", values=["203.0.113.9"],
               recipients=[coordinator])
    green = post(member, [alliance], "Green", values=["203.0.113.10"])
    respond(member, red, comment=2, sighting=1)
    respond(member, green, sighting=1)

    facts = listing.page_facts(Principal.of(outside_reader), [red, green])
    assert facts[red.id].observables == facts[red.id].responses == facts[red.id].sightings == 0
    assert (facts[green.id].observables, facts[green.id].sightings) == (1, 1)
    mine = listing.page_facts(Principal.of(member), [red])
    assert (mine[red.id].observables, mine[red.id].responses, mine[red.id].sightings) == (1, 2, 1)


def test_the_feed_runs_as_many_statements_for_25_notes_as_for_2(as_member, member, alliance):
    for i in range(2):
        post(member, [alliance], f"First {i}", values=[f"203.0.113.{i + 1}"])
    with Statements() as few:
        assert as_member.get("/notes/").status_code == 200
    notes = [post(member, [alliance], f"More {i}", values=[f"198.51.100.{i + 1}"])
             for i in range(23)]
    respond(member, notes[0], comment=1, sighting=1)
    with Statements() as many:
        html = as_member.get("/notes/").get_data(as_text=True)
    assert html.count('class="note-item"') == 25
    assert many.n == few.n


def test_the_stix_type_filter_is_a_choice_list(as_member, member, alliance):
    html = as_member.get("/notes/").get_data(as_text=True)
    select_ = re.search(r'<select[^>]*name="type"[^>]*>(.*?)</select>', html, re.S)
    assert select_, "the STIX type filter is not a select"
    options = re.findall(r'<option[^>]*value="([^"]*)"', select_.group(1))
    assert {"", "indicator", "ipv4-addr", "report", "x509-certificate"} <= set(options)
    assert "bundle" not in options
    bad = as_member.get("/notes/?type=not-a-type")
    assert bad.status_code == 400 and "STIX type" in bad.get_data(as_text=True)
    assert as_member.get("/notes/?type=Indicator").status_code == 200


def test_export_links_keep_the_current_filters(as_member, member, alliance):
    post(member, [alliance], "Anything")
    html = as_member.get("/notes/?tlp=GREEN&sector=energy&before=1_1").get_data(as_text=True)
    for anchor in ("export-bundle", "export-csv"):
        href = re.search(rf'href="([^"]+)" id="{anchor}"', html).group(1).replace("&amp;", "&")
        assert parse_qs(urlsplit(href).query) == {"tlp": ["GREEN"], "sector": ["energy"]}
    form = re.search(r'<form method="get" action="([^"]+)" id="export-indicators">(.*?)</form>',
                     html, re.S)
    assert form.group(1) == "/notes/export/indicators.txt"
    hidden = dict(re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', form.group(2)))
    assert hidden == {"tlp": "GREEN", "sector": "energy"}


# --- saved searches ------------------------------------------------------------------------

def _saved(user) -> list[tuple[str, str]]:
    db.session.expire_all()
    return [(s.name, s.query) for s in db.session.scalars(
        select(SavedSearch).where(SavedSearch.user_id == user.id).order_by(SavedSearch.id))]


def test_save_list_run_and_delete_a_search(as_member, member, alliance):
    post(member, [alliance], "Energy note", sectors=["energy"])
    saved = as_member.post("/notes/searches", data={
        "name": "Energy", "query": "sector=energy&tlp=GREEN&before=5_5&evil=1"})
    assert saved.status_code == 302
    assert saved.headers["Location"] == "/notes/?tlp=GREEN&sector=energy"
    assert _saved(member) == [("Energy", "tlp=GREEN&sector=energy")]

    html = as_member.get("/notes/").get_data(as_text=True)
    search_id = db.session.scalar(select(SavedSearch.id))
    assert f'href="/notes/searches/{search_id}">Energy</a>' in html
    run = as_member.get(f"/notes/searches/{search_id}")
    assert run.status_code == 302 and run.headers["Location"] == "/notes/?tlp=GREEN&sector=energy"
    assert "Energy note" in as_member.get(run.headers["Location"]).get_data(as_text=True)

    # The same name again replaces its filters.
    as_member.post("/notes/searches", data={"name": "Energy", "query": "tlp=AMBER"})
    assert _saved(member) == [("Energy", "tlp=AMBER")]

    assert as_member.post(f"/notes/searches/{search_id}/delete").status_code == 302
    assert _saved(member) == []
    assert as_member.get(f"/notes/searches/{search_id}").status_code == 404


def test_a_search_with_invalid_or_no_filters_is_not_saved(as_member, member):
    as_member.post("/notes/searches", data={"name": "Bad", "query": "since=yesterday"})
    as_member.post("/notes/searches", data={"name": "Empty", "query": "before=1_1"})
    as_member.post("/notes/searches", data={"name": "", "query": "tlp=GREEN"})
    assert _saved(member) == []


def test_another_users_saved_search_is_a_404(client, member, outside_reader):
    factories.login(client, member)
    client.post("/notes/searches", data={"name": "Mine", "query": "tlp=RED"})
    search_id = db.session.scalar(select(SavedSearch.id))
    factories.login(client, outside_reader)
    assert client.get(f"/notes/searches/{search_id}").status_code == 404
    assert client.post(f"/notes/searches/{search_id}/delete").status_code == 404
    assert "Mine" not in client.get("/notes/").get_data(as_text=True)
    assert _saved(member) == [("Mine", "tlp=RED")]


def test_saving_and_deleting_need_the_csrf_token(app, as_member, member):
    as_member.post("/notes/searches", data={"name": "Kept", "query": "tlp=GREEN"})
    search_id = db.session.scalar(select(SavedSearch.id))
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        assert as_member.post("/notes/searches", data={
            "name": "Forged", "query": "tlp=AMBER"}).status_code == 400
        assert as_member.post(f"/notes/searches/{search_id}/delete").status_code == 400
    finally:
        app.config["WTF_CSRF_ENABLED"] = False
    assert _saved(member) == [("Kept", "tlp=GREEN")]


# --- exports ---------------------------------------------------------------------------------

@pytest.fixture
def shared(member, coordinator, alliance, pacific, outside_reader):
    """Notes of every kind of reach: GREEN and AMBER ones everyone in 'atlantic' reads, one
    in 'pacific' (not the outside reader's), a RED one addressed to the outside reader and
    one addressed to nobody else."""
    return {
        "green": post(member, [alliance], "Green note", values=["203.0.113.7", "10.0.0.1"],
                      sectors=["energy"]),
        "amber": post(coordinator, [alliance], "Amber note", tlp="AMBER",
                      values=["evil.example", "https://evil.example/login"]),
        "pacific": post(member, [pacific], "Pacific only", tlp="GREEN",
                        values=["pacific-only.example"]),
        "red to reader": post(member, [alliance], "Red to reader", tlp="RED",
                              values=["198.51.100.66"], recipients=[outside_reader]),
        "red": post(member, [alliance], "Red, to someone else", tlp="RED",
                    values=["secret-red.example"], recipients=[coordinator]),
    }


def _download(client, path: str):
    response = client.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return response, response.get_data(as_text=True)


def _label(response) -> tuple[str, str]:
    filename = re.search(r'filename="([^"]+)"', response.headers["Content-Disposition"]).group(1)
    return response.headers["X-TLP"], filename


def test_the_stix_bundle_holds_the_readable_notes_objects(client, shared, outside_reader):
    factories.login(client, outside_reader)
    response, body = _download(client, "/notes/export/bundle.json")
    bundle = stix2.parse(body, allow_custom=True, version="2.1")
    ids = {obj.id for obj in bundle.objects}
    held = {"green", "amber", "red to reader"}
    for key, note in shared.items():
        assert (note.report_id in ids) == (key in held), key
    assert "secret-red.example" not in body and "pacific-only.example" not in body
    assert len(ids) == len(bundle.objects)  # each object once
    # What the objects need beside them: their creators' identities and TLP definitions.
    creators = {obj.created_by_ref for obj in bundle.objects if "created_by_ref" in obj}
    assert creators and creators <= ids
    markings = {ref for obj in bundle.objects for ref in obj.get("object_marking_refs", [])}
    assert markings and markings <= ids
    assert _label(response)[0] == "TLP:RED"
    assert response.mimetype == "application/stix+json"
    # And the platform's own upload takes it back: every object valid, none twice.
    assert len(parse_bundle(body.encode()).objects) == len(bundle.objects)


def test_the_csv_lists_each_observable_with_its_note(client, shared, outside_reader):
    factories.login(client, outside_reader)
    response, body = _download(client, "/notes/export/observables.csv")
    first, rest = body.split("\r\n", 1)
    assert first == "# TLP:RED"
    rows = list(csv.DictReader(io.StringIO(rest)))
    assert list(rows[0]) == list(export.CSV_COLUMNS)
    got = {(r["note_id"], r["type"], r["value"], r["tlp"], r["alliances"], r["warning"])
           for r in rows}
    s = shared
    assert got == {
        (s["green"].report_id, "ipv4", "203.0.113.7", "TLP:GREEN", "Atlantic Alliance", ""),
        (s["green"].report_id, "ipv4", "10.0.0.1", "TLP:GREEN", "Atlantic Alliance",
         next(r["warning"] for r in rows if r["value"] == "10.0.0.1")),
        (s["amber"].report_id, "domain", "evil.example", "TLP:AMBER", "Atlantic Alliance", ""),
        (s["amber"].report_id, "url", "https://evil.example/login", "TLP:AMBER",
         "Atlantic Alliance", ""),
        (s["red to reader"].report_id, "ipv4", "198.51.100.66", "TLP:RED", "Atlantic Alliance",
         ""),
    }
    assert next(r["warning"] for r in rows if r["value"] == "10.0.0.1")  # on a warning list
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["first_seen"]) for r in rows)
    assert response.mimetype == "text/csv"
    _response, body = _download(client, "/notes/export/observables.csv?kind=domain&kind=url")
    rows = list(csv.DictReader(io.StringIO(body.split("\r\n", 1)[1])))
    assert sorted(r["value"] for r in rows) == ["evil.example", "https://evil.example/login"]


def test_the_indicator_list_is_one_value_a_line_by_type(client, shared, outside_reader):
    factories.login(client, outside_reader)
    _response, body = _download(client, "/notes/export/indicators.txt?kind=ipv4")
    lines = body.splitlines()
    assert lines[0] == "# TLP:RED"
    values = [line for line in lines if not line.startswith("#")]
    # 10.0.0.1 is on a warning list (private space): a firewall must not be fed it.
    assert values == ["198.51.100.66", "203.0.113.7"] or sorted(values) == [
        "198.51.100.66", "203.0.113.7"]
    _response, body = _download(client, "/notes/export/indicators.txt?kind=domain&kind=url")
    assert sorted(v for v in body.splitlines() if not v.startswith("#")) == [
        "evil.example", "https://evil.example/login"]
    _response, body = _download(client, "/notes/export/indicators.txt")
    assert len([v for v in body.splitlines() if not v.startswith("#")]) == 4


@pytest.mark.parametrize(("query", "level"), [
    ("", "TLP:RED"), ("tlp=AMBER", "TLP:AMBER"), ("tlp=GREEN", "TLP:GREEN"),
    ("sector=energy", "TLP:GREEN"), ("tlp=CLEAR", "TLP:CLEAR"), ("q=evil.example", "TLP:AMBER"),
])
def test_every_export_carries_the_strictest_tlp_it_holds(client, shared, outside_reader,
                                                         query, level):
    factories.login(client, outside_reader)
    for path, ext in (("bundle.json", "json"), ("observables.csv", "csv"),
                      ("indicators.txt", "txt")):
        response, body = _download(client, f"/notes/export/{path}?{query}")
        header, filename = _label(response)
        assert header == level, path
        assert re.fullmatch(rf"notes-{re.escape(level.replace(':', '-'))}-"
                            rf"\d{{4}}-\d\d-\d\d\.{ext}", filename), filename
        if ext != "json":
            assert body.splitlines()[0] == f"# {level}"
        assert response.headers["Cache-Control"] == "private, no-store"


def test_an_export_holds_nothing_the_reader_cannot_read(client, shared, outsider):
    factories.login(client, outsider)
    for path in ("bundle.json", "observables.csv", "indicators.txt"):
        response, body = _download(client, f"/notes/export/{path}")
        assert response.headers["X-TLP"] == "TLP:CLEAR"
        for note in shared.values():
            assert note.report_id not in body and note.title not in body
        for value in ("203.0.113.7", "evil.example", "198.51.100.66", "secret-red.example"):
            assert value not in body
    bundle = stix2.parse(client.get("/notes/export/bundle.json").get_data(as_text=True),
                         allow_custom=True, version="2.1")
    assert "objects" not in bundle


def test_a_note_stricter_than_the_label_is_left_out(member, pacific, shared):
    """The label is found before the first byte; a note stricter than it that turns up while
    the export runs (just posted, or just shared) is not written under a looser label."""
    org = factories.make_org("Pacific Reader Org")
    factories.add_member(pacific, org, "active")
    reader = Principal.of(factories.make_user(org, "reader@pacific.example"))
    found = export.export(reader, "list", {})
    assert found.tlp == "GREEN"
    post(member, [pacific], "Amber, later", tlp="AMBER", values=["later-amber.example"])
    written = "".join(found.chunks)
    assert "pacific-only.example" in written and "later-amber.example" not in written
    assert export.export(reader, "list", {}).tlp == "AMBER"


def test_exports_are_streamed(client, shared, outside_reader):
    factories.login(client, outside_reader)
    for path in ("bundle.json", "observables.csv", "indicators.txt"):
        response = client.get(f"/notes/export/{path}", buffered=False)
        assert response.is_streamed, path
        assert not isinstance(response.response, list | tuple | bytes | str), path
        response.get_data()
        response.close()


def test_an_export_runs_as_many_statements_for_a_full_page_as_for_a_few_notes(
        monkeypatch, client, member, alliance):
    """Bounded work: statements per page of notes, never per note or per object."""
    monkeypatch.setattr(export, "PAGE", 30)
    factories.login(client, member)

    def statements() -> dict[str, int]:
        found = {}
        for path in ("bundle.json", "observables.csv", "indicators.txt"):
            with Statements() as run:
                client.get(f"/notes/export/{path}").get_data()
            found[path] = run.n
        return found

    for i in range(3):
        post(member, [alliance], f"Few {i}", values=[f"203.0.113.{i + 1}", f"few{i}.example"])
    few = statements()
    for i in range(25):
        post(member, [alliance], f"Many {i}", tlp="GREEN",
             values=[f"198.51.100.{i + 1}", f"many{i}.example", f"https://many{i}.example/"])
    assert statements() == few


def test_pages_follow_the_feed_and_hold_every_note_once(monkeypatch, client, member, alliance):
    monkeypatch.setattr(export, "PAGE", 2)
    notes = [post(member, [alliance], f"Paged {i}", values=[f"203.0.113.{i + 1}"])
             for i in range(7)]
    factories.login(client, member)
    _response, body = _download(client, "/notes/export/observables.csv")
    rows = list(csv.DictReader(io.StringIO(body.split("\r\n", 1)[1])))
    assert sorted(r["note_id"] for r in rows) == sorted(n.report_id for n in notes)
    bundle = stix2.parse(client.get("/notes/export/bundle.json").get_data(as_text=True),
                         allow_custom=True, version="2.1")
    reports = [o.id for o in bundle.objects if o.type == "report"]
    assert reports == [n.report_id for n in reversed(notes)]


def test_exports_share_the_taxii_rate_limit(app, monkeypatch, client, member):
    monkeypatch.setitem(app.config, "TAXII_RATE_LIMIT", "3 per minute")
    factories.login(client, member)
    statuses = [client.get(f"/notes/export/{path}").status_code
                for path in ("bundle.json", "observables.csv", "indicators.txt", "bundle.json")]
    assert statuses == [200, 200, 200, 429]


@pytest.mark.parametrize("query", [
    "since=yesterday", "until=2025-13-01", "tlp=PURPLE", "sector=nope", "type=not-a-type",
    "alliance=999999", "alliance=abc", "kind=ipv9", "since=2025-03-05&until=2025-03-01",
    "q=" + "x" * 300,
])
def test_a_bad_filter_is_a_400_with_a_message(as_member, member, query):
    for path in ("bundle.json", "observables.csv", "indicators.txt"):
        response = as_member.get(f"/notes/export/{path}?{query}")
        assert response.status_code == 400, (path, query)
        assert "not valid" in response.get_data(as_text=True)


def test_an_exports_memory_does_not_grow_with_the_notes_it_holds(monkeypatch, member, alliance):
    """Constant memory: what an export holds while it writes 40 notes is what it holds for
    10 (pages of 5 notes, parts of 10 rows). Measured after a garbage collection at every
    chunk (the ORM's loading leaves reference cycles that the collector frees as it goes);
    only the bounded sets of what was written grow, by an entry an object."""
    import gc
    import tracemalloc

    monkeypatch.setattr(export, "PAGE", 5)
    monkeypatch.setattr(export, "PART", 10)
    principal = Principal.of(member)

    def held(fmt: str) -> int:
        db.session.expire_all()
        gc.collect()
        tracemalloc.start()
        try:
            most = 0
            for _chunk in export.export(principal, fmt, {}).chunks:
                gc.collect()
                most = max(most, tracemalloc.get_traced_memory()[0])
            return most
        finally:
            tracemalloc.stop()

    def post_many(start: int, n: int) -> None:
        for i in range(start, start + n):
            post(member, [alliance], f"Bulk {i}", values=[f"198.51.{i // 250}.{i % 250 + 1}",
                                                         f"bulk{i}.example"])

    post_many(0, 10)
    for fmt in ("stix", "csv", "list"):
        held(fmt)  # the first run compiles the statements (cached for the process)
    few = {fmt: held(fmt) for fmt in ("stix", "csv", "list")}
    post_many(10, 30)
    many = {fmt: held(fmt) for fmt in ("stix", "csv", "list")}
    for fmt in few:
        assert many[fmt] < few[fmt] * 1.1 + 32_000, (fmt, few[fmt], many[fmt])
