"""The hot read paths use indexes: on a database filled by bench-data (~40,000 STIX objects
on SQLite, ~200,000 on PostgreSQL, vacuumed and analyzed), the SQL that the
real views and services run is captured and EXPLAINed, and a full scan of a big table
(stix_objects, notes, note_objects, note_facets, observables) fails the test, as does a feed
or TAXII page that sorts its candidates instead of walking its keyset index. A missing index
thus fails CI instead of showing up as a slow page at a million objects.

Runs on SQLite, and on PostgreSQL with ALLIANCE_TEST_DB=postgresql."""
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from alliance.core.models import utcnow
from alliance.extensions import db
from tests import factories
from tests.bench.plans import (
    big_sorts,
    captured,
    documents_per_row,
    explain,
    full_scans,
    hashed_subplans,
    keyset_page,
    memberships_per_note,
    pg_nodes,
    queries,
    scans_in,
)

TAXII = "application/taxii+json;version=2.1"


@pytest.fixture
def plans(plans_app):
    """The plans database's app context, pushed over the test's own."""
    with plans_app.app_context():
        yield plans_app
        db.session.remove()


@pytest.fixture
def reader(plans):
    from alliance.auth.models import User

    return db.session.scalar(select(User).where(
        User.email == plans.config["BENCH"]["reader"]["email"]))


@pytest.fixture
def signed_in(plans, reader):
    client = plans.test_client()
    factories.login(client, reader)
    return client


@pytest.fixture
def taxii_client(plans, reader):
    from alliance.apikeys.services import create_key
    from alliance.taxii.services import alliance_collection_id

    _key, plaintext = create_key(reader, f"plans {utcnow().timestamp()}")
    client = plans.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {plaintext}"
    client.environ_base["HTTP_ACCEPT"] = TAXII
    alliance_id = db.session.scalar(text("SELECT id FROM alliances WHERE slug = :s"),
                                    {"s": plans.config["BENCH"]["reader"]["alliances"][0]})
    client.objects = f"/taxii2/api/collections/{alliance_collection_id(alliance_id)}/objects/"
    return client


def _check(statements, ordered: bool = False) -> None:
    """No full scan of a big table; with `ordered`, keyset pages walk their index."""
    assert statements, "nothing was captured"
    with db.engine.connect() as conn:
        problems = scans_in(conn, statements, ordered=ordered)
    assert problems == [], "full scans of big tables:\n" + "\n".join(problems)


def _get(client, path, **kwargs):
    with captured(db.engine) as statements:
        response = client.get(path, **kwargs)
    assert response.status_code == 200, (path, response.status_code, response.text[:300])
    return response, statements


def test_the_feed_pages_of_a_member_of_five_alliances_use_indexes(signed_in):
    first, statements = _get(signed_in, "/notes/")
    _check(statements, ordered=True)
    cursor = first.text.split("before=", 1)[1].split('"', 1)[0].split("&", 1)[0]
    _second, statements = _get(signed_in, f"/notes/?before={cursor}")
    _check(statements, ordered=True)


def test_feed_and_taxii_pages_check_the_rule_note_by_note(signed_in, taxii_client):
    """PostgreSQL: a page's read-rule check looks up each note it walks, and never first
    hashes every note addressed to the reader's alliances (a cost that grows with the
    platform: ~20 ms at 1,000,000 objects, for a page of 50 notes)."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL planner choice; SQLite evaluates EXISTS per row")
    statements = _get(signed_in, "/notes/")[1] + _get(
        taxii_client, taxii_client.objects, query_string={"limit": "100"})[1]
    with db.engine.connect() as conn:
        problems = hashed_subplans(conn, statements)
    assert problems == [], "\n".join(problems)


def test_the_rule_reads_the_readers_alliances_once_per_statement(signed_in, taxii_client):
    """PostgreSQL: the rule's list of the reader's alliances is worked out once per statement
    (an InitPlan), not joined again for every note it checks: a 90-day count on the
    dashboard at 100,000 notes read the same memberships 17,000 times (133 ms; 45 ms once)."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL planner choice; SQLite runs an uncorrelated IN list once")
    statements = (_get(signed_in, "/notes/")[1] + _get(signed_in, "/?days=90")[1]
                  + _get(taxii_client, taxii_client.objects, query_string={"limit": "100"})[1])
    with db.engine.connect() as conn:
        problems = memberships_per_note(conn, statements)
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("query", ["phishing", "ransomware wave", "tlp"])
def test_search_by_words_uses_the_search_index(signed_in, query):
    _response, statements = _get(signed_in, f"/notes/?q={query}")
    _check(statements)


def _most_common(facet: str) -> str:
    from alliance.notes.models import NoteFacet

    return db.session.scalar(select(NoteFacet.value).where(NoteFacet.facet == facet)
                             .group_by(NoteFacet.value)
                             .order_by(func.count().desc(), NoteFacet.value).limit(1))


def _feed_filter(plans, name: str) -> dict:
    """The feed's query string for one filter, with a value that many notes of the plan data
    hold (bench/benchdata.py)."""
    if name == "type":  # in ~86% of notes (every note also holds a `report`)
        return {"type": "indicator"}
    if name == "tlp":
        return {"tlp": "GREEN"}  # the most common level (35%)
    if name == "alliance":
        return {"alliance": str(db.session.scalar(
            text("SELECT id FROM alliances WHERE slug = :s"),
            {"s": plans.config["BENCH"]["reader"]["alliances"][0]}))}
    if name == "dates":  # a range holding most notes (bench-data spreads them over a year)
        today = utcnow().date()
        return {"since": str(today - timedelta(days=300)), "until": str(today - timedelta(days=2))}
    if name == "q-phishing":  # one of 12 threats, in a title or description: ~16% of notes
        return {"q": "phishing"}
    if name == "q-wave":  # every generated title says "... wave against ..."
        return {"q": "wave"}
    return {name: _most_common({"tag": "policy_tag"}.get(name, name))}


@pytest.mark.parametrize("name", ["type", "tlp", "alliance", "sector", "country", "tag",
                                  "dates", "q-phishing", "q-wave"])
def test_a_filtered_feed_walks_the_feed_index_and_stops_at_the_page(plans, signed_in, name):
    """The feed filtered by a common value (issue 22: type=indicator, 86% of notes; a search
    for "phishing"): its first and next pages walk the notes' (created_at, id) index and
    check each note's filter on the way (an index lookup), stopping at the page's end,
    instead of reading every matching note and sorting them (a cost that grew 3.75x from 10k
    to 100k notes)."""
    from alliance.notes.reading import FEED_PAGE

    args = _feed_filter(plans, name)
    first, statements = _get(signed_in, "/notes/", query_string=args)
    assert first.text.count('class="note-item"') == FEED_PAGE
    _check(statements, ordered=True)
    assert "before=" in first.text, "the filter matches more than a page of the plan data"
    cursor = first.text.split("before=", 1)[1].split('"', 1)[0].split("&", 1)[0]
    _second, statements = _get(signed_in, "/notes/", query_string={**args, "before": cursor})
    _check(statements, ordered=True)


@pytest.mark.parametrize("args", [{"type": "campaign"}, {"q": "rare-word-nowhere"}])
def test_a_rare_filter_value_is_looked_up_not_walked_to(signed_in, args):
    """A value few notes hold (here: none) is read the other way round: its notes are looked
    up in the filter's index and sorted. A walk of the feed index would pass every stored
    note by before it came to the end of the page."""
    _response, statements = _get(signed_in, "/notes/", query_string=args)
    _check(statements)
    with db.engine.connect() as conn:
        problems = _unbounded_feed_walks(conn, [s for s in statements if keyset_page(s[0])])
    assert problems == [], "\n".join(problems)


def test_search_by_an_observable_value_uses_indexes(signed_in):
    from alliance.notes.models import Observable

    value = db.session.scalar(select(Observable.value).group_by(Observable.value)
                              .order_by(func.count().desc()).limit(1))
    _response, statements = _get(signed_in, "/notes/", query_string={"q": value})
    _check(statements)


# (A rare type, say malware, is rightly answered by sorting its few objects: not checked.)
@pytest.mark.parametrize("args", [{}, {"match[type]": "indicator"}, {"match[version]": "all"}])
def test_taxii_first_and_next_pages_use_indexes(taxii_client, args):
    first, statements = _get(taxii_client, taxii_client.objects,
                             query_string={"limit": "100", **args})
    _check(statements, ordered=True)
    body = first.get_json()
    assert body["objects"]
    if not body["more"]:  # a rare type: one page holds all of it
        return
    assert len(body["objects"]) == 100
    _second, statements = _get(taxii_client, taxii_client.objects,
                               query_string={"limit": "100", "next": body["next"], **args})
    _check(statements, ordered=True)


def test_lookups_by_stix_id_use_an_index(taxii_client):
    """match[id], an object's versions and a repost's versions check go through the unique
    (stix_id, modified, organisation_id) index (there is no one-column stix_id index)."""
    first = taxii_client.get(taxii_client.objects, query_string={"limit": "3"}).get_json()
    ids = [o["id"] for o in first["objects"]]
    _response, statements = _get(taxii_client, taxii_client.objects,
                                 query_string={"match[id]": ",".join(ids)})
    _check(statements)
    _response, statements = _get(taxii_client, f"{taxii_client.objects}{ids[0]}/versions/")
    _check(statements)


@pytest.mark.parametrize("path", ["{objects}{id}/", "{objects}{id}/versions/",
                                  "{objects}?match[id]={id}", "{manifest}?match[id]={id}"])
def test_an_object_by_id_is_looked_up_not_walked_to(taxii_client, path):
    """GET objects/{id}/, its versions and match[id] read the collection's rows of that id
    through its (object_id, alliance_id) index: not a walk of the collection in date order
    until the id turns up, whose cost grew with the collection (issue 22: 3.9x from 10k to
    100k objects)."""
    first = taxii_client.get(taxii_client.objects, query_string={"limit": "200"}).get_json()
    object_id = first["objects"][-1]["id"]  # far enough in for a walk to show
    url = path.format(objects=taxii_client.objects, id=object_id,
                      manifest=taxii_client.objects.replace("/objects/", "/manifest/"))
    response, statements = _get(taxii_client, url)
    assert response.status_code == 200
    assert (first["objects"][-1]["modified"] if "versions" in url else object_id) in \
        response.get_data(as_text=True)
    pages = [s for s in statements if keyset_page(s[0]) == "collection_objects"]
    assert len(pages) == 1
    with db.engine.connect() as conn:
        for statement, parameters in queries(conn, statements):
            if keyset_page(statement) != "collection_objects":
                continue
            plan = explain(conn, statement, parameters)
            if conn.dialect.name == "postgresql":
                nodes = [n for n in pg_nodes(plan[0]["Plan"])
                         if n.get("Relation Name") == "collection_objects"]
                assert nodes and all(
                    n.get("Index Name") == "ix_collection_objects_object_alliance"
                    for n in nodes), plan
            else:
                mine = [line for line in plan if "collection_objects" in line]
                assert mine and all("ix_collection_objects_object_alliance (object_id=?"
                                    in line for line in mine), plan


@pytest.mark.parametrize("query", ["rare-word-nowhere", "198.18.0.4"])
def test_search_looks_words_up_in_the_index_instead_of_reading_every_note(signed_in, query):
    _response, statements = _get(signed_in, "/notes/", query_string={"q": query})
    with db.engine.connect() as conn:
        assert documents_per_row(conn, statements) == []


def test_the_note_page_with_correlations_uses_indexes(signed_in, reader):
    from alliance.notes import reading
    from alliance.sharing.policy import Principal

    notes, _cursor = reading.feed(Principal.of(reader), limit=200)
    shown = 0
    for note in notes:
        related = reading.correlated(Principal.of(reader), note)
        if not related:
            continue
        _response, statements = _get(signed_in, f"/notes/{note.uuid}")
        _check(statements)
        shown += 1
        if shown == 3:
            break
    assert shown, "no readable note with correlations in the generated data"


def test_building_a_digest_uses_indexes(plans, reader):
    from alliance.digests.building import build_digest

    end = utcnow()
    with captured(db.engine) as statements:
        digest = build_digest(reader, end - timedelta(days=7), end)
    assert not digest.empty
    _check(statements)


def _unbounded_feed_walks(conn, statements) -> list[str]:
    """Statements that walk the notes' (created_at, id) index from end to end, with no bound
    on created_at: what a query of one period must not do (it would read every note stored
    when fewer than a page's worth match)."""
    found = []
    for statement, parameters in queries(conn, statements):
        plan = explain(conn, statement, parameters)
        flat = " ".join(statement.split())[:200]
        if conn.dialect.name == "postgresql":
            found += [f"{node['Node Type']} on ix_notes_feed, unbounded: {flat}"
                      for node in pg_nodes(plan[0]["Plan"])
                      if node.get("Index Name") == "ix_notes_feed" and "Index Cond" not in node]
        else:
            found += [f"{line}: {flat}" for line in plan
                      if "ix_notes_feed" in line and line.startswith("SCAN ")]
    return found


def test_a_digest_with_watch_terms_reads_only_its_period(plans, reader):
    """A reader who watches a value and a sector: the digest looks at the period's notes
    (and the alerts folded into it), never at every note stored."""
    from alliance.digests.building import build_digest
    from alliance.digests.models import WatchTerm
    from alliance.notes.models import Observable

    value = db.session.scalar(select(Observable.value).order_by(Observable.id.desc()).limit(1))
    terms = [WatchTerm(user_id=reader.id, kind="value", value=value),
             WatchTerm(user_id=reader.id, kind="sector", value="energy")]
    db.session.add_all(terms)
    db.session.commit()
    try:
        end = utcnow()
        with captured(db.engine) as statements:
            build_digest(reader, end - timedelta(days=1), end)
        with db.engine.connect() as conn:
            problems = _unbounded_feed_walks(conn, statements)
    finally:
        for term in terms:
            db.session.delete(term)
        db.session.commit()
    assert problems == [], "\n".join(problems)


# --- the checker itself -------------------------------------------------------------------

def test_the_checker_reports_a_full_scan(plans):
    with db.engine.connect() as conn:
        scans = full_scans(conn, "SELECT id FROM stix_objects WHERE body_hash = 'x'", ())
    assert [s.split(" ", 1)[0] for s in scans] == ["stix_objects"]


def test_the_checker_reports_a_sort_of_every_match(plans):
    """big_sorts: a page cut from every note sorted (or grouped) is reported; a page read in
    index order is not."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite's plans carry no row estimates")
    sorted_page = [("SELECT id FROM notes WHERE tlp = 'GREEN' ORDER BY title LIMIT 25", ())]
    grouped = [("SELECT note_id, count(*) FROM observables GROUP BY note_id LIMIT 25", ())]
    walked = [("SELECT id FROM notes ORDER BY created_at DESC, id DESC LIMIT 25", ())]
    with db.engine.connect() as conn:
        assert big_sorts(conn, sorted_page, SORTED_AT_MOST)
        assert big_sorts(conn, grouped, SORTED_AT_MOST)
        assert big_sorts(conn, walked, SORTED_AT_MOST) == []


def test_the_checker_reports_a_dropped_index(signed_in):
    """Without the feed's (created_at, id) index, a page reads every candidate row and
    sorts them: the tests above would fail. (DDL in a transaction, rolled back: the index
    comes back.) TAXII's alliance pages walk a primary key, which cannot be dropped: the
    test below checks they walk it."""
    index = "ix_notes_feed"
    _response, statements = _get(signed_in, "/notes/")
    page = [s for s in statements if keyset_page(s[0])]
    assert len(page) == 1
    db.session.remove()  # no open transaction of ours may hold a lock on the table
    with db.engine.connect() as conn:
        assert scans_in(conn, page, ordered=True) == []
        conn.rollback()
        if conn.dialect.name == "sqlite":
            # Python's sqlite3 would commit DDL at once; an explicit BEGIN keeps it undoable.
            conn.exec_driver_sql("BEGIN")
        else:
            conn.execute(text("SET LOCAL lock_timeout = '10s'"))
        try:
            conn.execute(text(f"DROP INDEX {index}"))
            problems = scans_in(conn, page, ordered=True)
        finally:
            conn.rollback()
        assert scans_in(conn, page, ordered=True) == []
    assert any(p.startswith("notes ") for p in problems), problems


def _second_page_walks(client, path: str, table: str, owner: str, args=None) -> None:
    """A collection's second page (a keyset page) walks `table`'s primary key from its
    owner column (`owner`: alliance_id, organisation_id): the collection's own objects,
    without a sort, a stix_objects index or (PostgreSQL) parallel workers."""
    args = args or {}
    first, _statements = _get(client, path, query_string={"limit": "100", **args})
    body = first.get_json()
    assert body["more"], "the generated collection holds more than a page"
    _second, statements = _get(client, path,
                               query_string={"limit": "100", "next": body["next"], **args})
    assert len([s for s in statements if keyset_page(s[0])]) == 1
    with db.engine.connect() as conn:
        # All of them: the page's planner settings (SET LOCAL) are replayed before it.
        for statement, parameters in queries(conn, statements):
            if not keyset_page(statement):
                continue
            plan = explain(conn, statement, parameters)
            if conn.dialect.name == "postgresql":
                nodes = list(pg_nodes(plan[0]["Plan"]))
                walked = [n for n in nodes if n.get("Index Name") == f"pk_{table}"]
                assert walked and owner in walked[0].get("Index Cond", ""), plan
                assert not any(n.get("Index Name", "").startswith("ix_stix_objects_")
                               for n in nodes), plan
                # No sort, and no parallel workers: starting them costs more than a walk.
                assert not any(n["Node Type"] == "Sort" or n["Node Type"].startswith("Gather")
                               for n in nodes), plan
            else:
                assert any(line.startswith(f"SEARCH {table} USING PRIMARY KEY ({owner}=?")
                           for line in plan), plan
                assert not any("TEMP B-TREE" in line or "ix_stix_objects_" in line
                               for line in plan), plan


@pytest.mark.parametrize("args", [{}, {"match[type]": "indicator"}])
def test_taxii_alliance_pages_walk_the_alliance_collection(taxii_client, args):
    """An alliance collection's page walks collection_objects' primary key (alliance_id,
    date_added, object_id): the alliance's own objects, whatever its share of the table,
    instead of every stored object checked one by one for the alliance."""
    _second_page_walks(taxii_client, taxii_client.objects, "collection_objects", "alliance_id",
                       args)


def test_taxii_organisation_pages_walk_the_organisation_collection(plans):
    """An organisation's own collection's page walks organisation_collection_objects'
    primary key (organisation_id, date_added, object_id): the organisation's objects, in
    the order they entered its collection, instead of sorting every object its notes hold."""
    from alliance.apikeys.services import create_key
    from alliance.auth.models import User
    from alliance.notes.models import OrganisationCollectionObject
    from alliance.taxii.services import organisation_collection_id

    org_id, held = db.session.execute(
        select(OrganisationCollectionObject.organisation_id, func.count())
        .group_by(OrganisationCollectionObject.organisation_id)
        .order_by(func.count().desc()).limit(1)).one()
    assert held > 200, "the generated data gives some organisation more than two pages"
    author = next(u for u in db.session.scalars(
        select(User).where(User.organisation_id == org_id).order_by(User.id)) if u.can_act)
    _key, plaintext = create_key(author, f"own plans {utcnow().timestamp()}")
    client = plans.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {plaintext}"
    client.environ_base["HTTP_ACCEPT"] = TAXII
    _second_page_walks(client, f"/taxii2/api/collections/{organisation_collection_id(org_id)}"
                               "/objects/", "organisation_collection_objects", "organisation_id")


# --- every read path of issue 22 (bench/paths.py times them at two sizes) -----------------

# More rows than a page, fewer than the matches of a common value in the plan data (a
# tenth of 20,000 notes): a sort or grouping this big read every match first.
SORTED_AT_MOST = 500


def _not_every_match(statements) -> None:
    """No full scan, keyset pages walk their index, and (PostgreSQL) no sort or grouping of
    more than SORTED_AT_MOST rows anywhere in the request."""
    _check(statements, ordered=True)
    with db.engine.connect() as conn:
        problems = big_sorts(conn, statements, SORTED_AT_MOST)
    assert problems == [], "every match read before the page is cut:\n" + "\n".join(problems)


@pytest.mark.parametrize("names", [("type", "tlp"), ("alliance", "dates"), ("tag", "type"),
                                   ("q-phishing", "type")])
def test_combined_feed_filters_walk_the_feed_index(plans, signed_in, names):
    """Common filter values combined (issue 22: type+TLP, alliance+date range, tag+type):
    the first and next pages walk the notes' (created_at, id) index and check each filter
    on the way, instead of gathering every note that matches them all and sorting it."""
    from alliance.notes.reading import FEED_PAGE

    args = {}
    for name in names:
        args.update(_feed_filter(plans, name))
    first, statements = _get(signed_in, "/notes/", query_string=args)
    assert first.text.count('class="note-item"') == FEED_PAGE, args
    _not_every_match(statements)
    cursor = first.text.split("before=", 1)[1].split('"', 1)[0].split("&", 1)[0]
    _second, statements = _get(signed_in, "/notes/", query_string={**args, "before": cursor})
    _not_every_match(statements)


def test_a_feed_filtered_by_an_uncommon_combination_looks_its_notes_up(plans, signed_in):
    """Every filter at once (few notes match them all): no full scan, whichever way the
    feed reads them."""
    args = {}
    for name in ("type", "tlp", "alliance", "sector", "country", "tag", "dates"):
        args.update(_feed_filter(plans, name))
    _response, statements = _get(signed_in, "/notes/", query_string=args)
    _check(statements)


def test_a_walk_of_common_filters_together_passes_a_bounded_stretch_of_the_feed(
        plans, signed_in, monkeypatch):
    """Six common values together may hold few notes (issue 22: the feed with every filter
    grew 2.34x at p95 from 10k to 100k notes): a walk passes at most FEED_SCAN notes, its
    read of the feed index bounded at both ends, instead of walking on to the oldest note.
    Whether the feed walks depends on how many notes of the plan data hold each value; here
    it is told every value is common, so that it does."""
    from alliance.notes import reading

    monkeypatch.setattr(reading, "_held_by_many", lambda *args: True)
    # Fewer than the plan data's notes, so that the walk has an end to stop at.
    monkeypatch.setattr(reading, "FEED_SCAN", 1000)
    assert db.session.scalar(text("SELECT count(*) FROM notes")) > reading.FEED_SCAN
    args = {}
    for name in ("type", "tlp", "alliance", "sector", "country", "tag"):
        args.update(_feed_filter(plans, name))
    _response, statements = _get(signed_in, "/notes/", query_string=args)
    _check(statements)
    # The statement finding where the walk stops reads FEED_SCAN index entries (its OFFSET):
    # bounded by its LIMIT, not by a condition.
    pages = [s for s in statements if keyset_page(s[0]) and not " ".join(s[0].split())
             .startswith("SELECT notes.created_at, notes.id FROM notes")]
    assert pages, "the feed page read no notes"
    with db.engine.connect() as conn:
        problems = _unbounded_feed_walks(conn, pages)
    assert problems == [], "\n".join(problems)


def test_search_for_a_common_observable_value_reads_a_page_not_every_holder(plans,
                                                                              signed_in):
    """An observable value a tenth of the notes hold (bench-data --shared-value-notes):
    the feed page and the "who has seen it" list read their page's worth of notes, not
    every note holding the value."""
    from alliance.notes.reading import FEED_PAGE

    value = plans.config["BENCH"]["shared_value"]
    first, statements = _get(signed_in, "/notes/", query_string={"q": value})
    assert first.text.count('class="note-item"') == FEED_PAGE
    _check(statements, ordered=True)  # the page: a walk of the feed index
    _not_every_match(statements)  # and the rest of the request


@pytest.mark.parametrize("word", ["rare", "phishing"])
def test_search_for_rare_and_common_words(plans, signed_in, word):
    """A word in 5 notes is looked up in the search index (its notes sorted: a handful);
    a word in a sixth of them walks the feed index. Neither computes every note's search
    document nor sorts every match."""
    if word == "rare":
        word = plans.config["BENCH"]["rare_words"][0]
    response, statements = _get(signed_in, "/notes/", query_string={"q": word})
    if word == "phishing":
        _check(statements, ordered=True)
    else:
        assert response.text.count('class="note-item"') >= 1, "the reader reads none of them"
        _check(statements)
        with db.engine.connect() as conn:
            assert documents_per_row(conn, statements) == []
    with db.engine.connect() as conn:
        assert big_sorts(conn, statements, SORTED_AT_MOST) == []


def _middle_of(client) -> str:
    """A date added half-way into the first 1,000 objects of the collection."""
    manifest = client.get(client.objects.replace("/objects/", "/manifest/"),
                          query_string={"limit": "1000"}).get_json()
    return manifest["objects"][len(manifest["objects"]) // 2]["date_added"]


@pytest.mark.parametrize(("resource", "args"), [
    ("manifest", {}),
    ("manifest", {"match[type]": "indicator"}),
    ("objects", {"match[spec_version]": "2.1"}),
    ("objects", {"match[version]": "first"}),
    ("objects", {"match[version]": "last"}),
    ("objects", {"added_after": "middle"}),
    ("objects", {"match[type]": "indicator", "match[version]": "last",
                 "match[spec_version]": "2.1", "added_after": "middle"}),
])
def test_taxii_filtered_pages_walk_the_collection(taxii_client, resource, args):
    """The manifest and every match[...] filter (and all of them at once): the first and
    next pages walk the alliance collection's primary key and check each row on the way,
    with no sort of the collection's matches (issue 22: every read path index-driven)."""
    if args.get("added_after") == "middle":
        args = {**args, "added_after": _middle_of(taxii_client)}
    url = taxii_client.objects.replace("/objects/", f"/{resource}/")
    first, statements = _get(taxii_client, url, query_string={"limit": "100", **args})
    _not_every_match(statements)
    body = first.get_json()
    assert body["more"], "the plan data holds more than a page of these"
    _second_page_walks(taxii_client, url, "collection_objects", "alliance_id", args)


# Issue 22: the note page's summary of its values (alliance/notes/summary.py) and its
# correlations (alliance/notes/reading.py correlated) read, per value, the newest
# holders.CORRELATION_HOLDERS notes holding it through ix_observables_value_note, not every
# note holding it (a Seq Scan of `observables` before, with a common value or 1,000 values).
def test_the_page_of_a_note_of_a_thousand_objects_uses_indexes(plans, signed_in):
    """bench-data --large-notes: its objects, their warnings, ATT&CK names, history and
    correlations are read through indexes."""
    from alliance.notes.models import Note

    note = db.session.scalar(select(Note).where(
        Note.report_id == plans.config["BENCH"]["large_notes"][0]))
    _response, statements = _get(signed_in, f"/notes/{note.uuid}")
    _check(statements)


def test_correlation_on_a_value_a_tenth_of_the_notes_share_reads_a_page(plans, signed_in,
                                                                         reader):
    """The page of a note holding a value that 2,000 notes hold: its correlations (50 at
    most) are read as a page, not by grouping and sorting every note sharing the value.
    A note of the usual size: the first holder is also one of the 1,000-object notes, whose
    page sorts its own objects (bounded by the note, not the platform; the test above)."""
    from alliance.notes.models import Note, Observable
    from alliance.sharing.policy import Principal, readable_notes

    note = db.session.scalars(readable_notes(Principal.of(reader)).where(
        Note.id.in_(select(Observable.note_id).where(
            Observable.value == plans.config["BENCH"]["shared_value"])),
        Note.report_id.not_in(plans.config["BENCH"]["large_notes"]))
        .order_by(Note.id).limit(1)).first()
    assert note is not None
    _response, statements = _get(signed_in, f"/notes/{note.uuid}")
    _check(statements)
    with db.engine.connect() as conn:
        problems = big_sorts(conn, statements, SORTED_AT_MOST)
    assert problems == [], "\n".join(problems)

