"""The feed's filters, its keyset pagination and full-text search (SQLite FTS5 by default,
PostgreSQL full text in the second CI pass), always inside the read rule."""
import re
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from sqlalchemy import delete, update

from alliance.extensions import db
from alliance.notes import reading, search
from alliance.notes.editing import edit_note
from alliance.notes.models import Note
from alliance.notes.posting import NoteDraft, post_note
from tests import factories
from tests.notes.helpers import identity, indicator


@pytest.fixture(autouse=True, params=["as chosen", "walked"])
def feed_plan(request, monkeypatch):
    """Every test twice: as the feed chooses to read these few notes (their filter's rows
    looked up, the matches sorted), and with every filter value taken as common (a walk of
    the feed index that looks each note up: alliance.notes.reading.feed). The same notes
    either way."""
    if request.param == "walked":
        monkeypatch.setattr(reading, "_held_by_many", lambda *args: True)
        monkeypatch.setattr(search, "matches_often", lambda *args: True)
    return request.param


def _post(author, alliance, title, *, tlp="GREEN", objects=None, **extra):
    return post_note(author, NoteDraft(
        title=title, tlp=tlp, alliance_ids=[alliance.id], objects=objects or [identity(title)], **extra))


def _titles(client, query: str) -> list[str]:
    response = client.get(f"/notes/?{query}")
    assert response.status_code == 200, response.get_data(True)[:300]
    return re.findall(r'<a class="note-title" href="[^"]*">([^<]+)</a>', response.get_data(True))


@pytest.fixture
def posted(member, alliance):
    """Notes with distinct facets, by a member of 'atlantic'."""
    return {
        "energy": _post(member, alliance, "Grid operator phishing", sectors=["energy"],
                        countries=["DE"], policy_tags=["gdpr"],
                        objects=[indicator("[domain-name:value = 'grid-login.example']")]),
        "health": _post(member, alliance, "Hospital ransomware", tlp="AMBER",
                        sectors=["healthcare"], countries=["FR"], labels=["ransomware"],
                        description="Encrypted imaging servers; the note mentions Zürich."),
        "plain": _post(member, alliance, "Weekly round-up"),
    }


def test_the_note_list_markup_is_what_the_helper_reads(as_coordinator, posted):
    assert sorted(_titles(as_coordinator, "")) == sorted(n.title for n in posted.values())


@pytest.mark.parametrize(("query", "expected"), [
    ("sector=energy", {"energy"}),
    ("sector=healthcare", {"health"}),
    ("country=FR", {"health"}),
    ("tag=gdpr", {"energy"}),
    ("tlp=AMBER", {"health"}),
    ("type=indicator", {"energy"}),
    ("type=identity", {"health", "plain"}),
    ("type=report", {"energy", "health", "plain"}),
    ("sector=energy&country=FR", set()),
    ("sector=agriculture", set()),
])
def test_each_filter_keeps_exactly_the_matching_notes(as_coordinator, posted, query, expected):
    assert set(_titles(as_coordinator, query)) == {posted[k].title for k in expected}


def test_the_alliance_filter(as_coordinator, coordinator, member, alliance, posted):
    other = factories.make_alliance(coordinator, slug="pacific", name="Pacific Alliance")
    factories.add_member(other, member.organisation, "active")
    elsewhere = _post(member, other, "Only in Pacific")
    assert _titles(as_coordinator, f"alliance={other.id}") == [elsewhere.title]
    assert elsewhere.title not in _titles(as_coordinator, f"alliance={alliance.id}")


def test_the_date_filter_is_inclusive_of_both_days(as_coordinator, posted):
    days = {"energy": datetime(2025, 3, 1, 23, 59, tzinfo=UTC),
            "health": datetime(2025, 3, 2, 0, 0, tzinfo=UTC),
            "plain": datetime(2025, 3, 5, 12, 0, tzinfo=UTC)}
    for key, when in days.items():
        db.session.execute(update(Note).where(Note.id == posted[key].id).values(created_at=when))
    db.session.commit()
    assert set(_titles(as_coordinator, "since=2025-03-02")) == {posted["health"].title,
                                                                 posted["plain"].title}
    assert set(_titles(as_coordinator, "until=2025-03-02")) == {posted["energy"].title,
                                                                 posted["health"].title}
    assert _titles(as_coordinator, "since=2025-03-02&until=2025-03-02") == [posted["health"].title]


def test_a_bad_filter_is_a_400_that_names_it(as_coordinator, posted):
    for query, name in (("since=yesterday", "Posted from"), ("sector=nope", "Sector"),
                        ("since=2025-03-05&until=2025-03-01", "Posted until")):
        response = as_coordinator.get(f"/notes/?{query}")
        assert response.status_code == 400
        assert name in response.get_data(True)


@pytest.mark.parametrize("name", ["alliance", "tlp", "sector", "country", "tag"])
@pytest.mark.parametrize("blank", [" ", "\t", "\r\n"])
def test_a_blank_filter_is_no_filter(as_coordinator, posted, name, blank):
    """A select filter of only spaces stopped at Optional(), whose "not a valid choice" went
    with it: the alliance filter then did int(" "), a 500."""
    assert set(_titles(as_coordinator, f"{name}={quote(blank)}")) == set(
        _titles(as_coordinator, ""))


def test_keyset_pages_hold_every_note_once_newest_first(as_coordinator, member, alliance):
    notes = [_post(member, alliance, f"Bulletin {i:02d}") for i in range(57)]
    # Several notes share one creation instant: the id breaks the tie.
    same = datetime(2025, 6, 1, tzinfo=UTC)
    db.session.execute(update(Note).where(Note.id.in_([n.id for n in notes[20:40]]))
                       .values(created_at=same))
    db.session.commit()
    expected = [n.title for n in sorted(notes, key=lambda n: (
        same if 20 <= notes.index(n) < 40 else n.created_at, n.id), reverse=True)]
    seen, url, pages = [], "/notes/", 0
    while url:
        html = as_coordinator.get(url).get_data(True)
        seen += re.findall(r'<a class="note-title" href="[^"]*">([^<]+)</a>', html)
        found = re.search(r'href="(/notes/\?[^"]*before=[^"]+)"', html)
        url = found.group(1).replace("&amp;", "&") if found else None
        pages += 1
    assert seen == expected
    assert pages == 3


def _sparse(member, alliance):
    """12 notes of sector energy, newest last: the oldest 3 TLP:AMBER, the 9 newer GREEN.
    Together, sector=energy and tlp=AMBER hold only the oldest three."""
    return [_post(member, alliance, f"Grid {i:02d}", tlp="AMBER" if i < 3 else "GREEN",
                  sectors=["energy"]) for i in range(12)]


def test_a_bounded_walk_passes_at_most_scan_notes_a_page_and_misses_none(
        member, alliance, feed_plan):
    """feed's `scan`: a walk of common filters that hold few notes together stops after
    `scan` notes; its short page's cursor goes on from there, and the pages together hold
    every match once, newest first."""
    from alliance.sharing.policy import Principal

    _sparse(member, alliance)
    principal, pages, before = Principal.of(member), [], None
    while True:
        notes, before = reading.feed(principal, sector="energy", tlp="AMBER", limit=2, scan=4,
                                     before=before)
        pages.append([n.title for n in notes])
        if before is None:
            break
    assert [t for page in pages for t in page] == ["Grid 02", "Grid 01", "Grid 00"]
    if feed_plan == "walked":
        # 4 notes passed a page: Grid 11-08 and 07-04 hold no match; 03-00 fill a page.
        assert pages == [[], [], ["Grid 02", "Grid 01"], ["Grid 00"]]
    else:  # 12 notes of energy are few: looked up and sorted, never walked
        assert pages == [["Grid 02", "Grid 01"], ["Grid 00"]]
    # Without `scan` (exports, counts) the walk goes on to the page's end.
    assert [n.title for n in reading.feed(principal, sector="energy", tlp="AMBER")[0]] == \
        ["Grid 02", "Grid 01", "Grid 00"]


def test_a_bounded_walk_counts_and_names_only_notes_the_reader_may_read(
        member, alliance, feed_plan):
    """A walk passes `scan` notes, readable or not; the cursor going on from there (and the
    date the page shows) names a note the reader may read, never a note of an alliance they
    are not in, whose posting time would otherwise show: here the walk stops at a hidden
    note, and the cursor names the member's next older note, included in the next page."""
    from alliance.sharing.policy import Principal

    org = factories.make_org("Elsewhere Org")
    admin = factories.make_user(org, "admin@elsewhere.example", role="org_admin")
    pacific = factories.make_alliance(admin, slug="pacific", name="Pacific Alliance")
    mine = []
    for i in range(12):
        mine.append(_post(member, alliance, f"Grid {i:02d}", tlp="AMBER" if i < 3 else "GREEN",
                          sectors=["energy"]))
        for k in range(2):  # newer than each of the member's notes: hidden from the member
            _post(admin, pacific, f"Hidden {i:02d}{k}", tlp="AMBER", sectors=["energy"])
    # 36 notes of energy: common, walked either way.
    notes, cursor = reading.feed(Principal.of(member), sector="energy", tlp="AMBER", limit=2,
                                 scan=4)
    # Passed: Hidden 111, Hidden 110, Grid 11, Hidden 101. Next: Grid 10 and older.
    assert notes == [] and cursor == (mine[10].created_at, mine[10].id + 1)
    rest = reading.feed(Principal.of(member), sector="energy", tlp="AMBER", before=cursor)[0]
    assert [n.title for n in rest] == ["Grid 02", "Grid 01", "Grid 00"]


def test_the_feed_page_says_how_far_back_it_searched_and_offers_to_go_on(
        as_member, member, alliance, feed_plan, monkeypatch):
    monkeypatch.setattr(reading, "FEED_SCAN", 4)
    notes = _sparse(member, alliance)
    url, seen, said = "/notes/?sector=energy&tlp=AMBER", [], []
    while url:
        html = as_member.get(url).get_data(True)
        seen += re.findall(r'<a class="note-title" href="[^"]*">([^<]+)</a>', html)
        said += re.findall(r"No (?:other )?note posted since ([^<]+?) matches", html)
        found = re.search(r'href="(/notes/\?[^"]*before=[^"]+)"[^>]*id="older-notes"', html)
        url = found.group(1).replace("&amp;", "&") if found else None
    assert seen == ["Grid 02", "Grid 01", "Grid 00"]
    if feed_plan == "walked":
        # The first page passed Grid 11-08 and the second 07-04, matching none: each says
        # since when it searched (the oldest note passed) and offers to search further back.
        oldest_passed = [notes[8].created_at, notes[4].created_at]
        assert said == [t.strftime("%Y-%m-%d %H:%M UTC") for t in oldest_passed]
    else:
        assert said == []


@pytest.mark.parametrize(("words", "expected"), [
    ("phishing", {"energy"}),                 # title
    ("PHISHING grid", {"energy"}),            # case-insensitive, every word
    ("phishing hospital", set()),             # all words must match
    ("imaging", {"health"}),                  # description
    ("zurich", {"health"}),                   # accents folded
    ("ransomware", {"health"}),               # title and label
    ("round-up", {"plain"}),                  # punctuation splits words on both engines
    ("grid-login.example", {"energy"}),       # an observable value, normalised
    ("phish", set()),                         # whole words only
])
def test_search(as_coordinator, posted, words, expected):
    assert set(_titles(as_coordinator, f"q={words}")) == {posted[k].title for k in expected}


def test_search_finds_labels(as_coordinator, member, alliance):
    note = _post(member, alliance, "Untitled", labels=["kerberoasting"])
    assert _titles(as_coordinator, "q=kerberoasting") == [note.title]


def test_search_follows_edits(as_coordinator, member, posted):
    edit_note(member, posted["plain"], title="Monthly digest of scanners", description="")
    assert _titles(as_coordinator, "q=weekly") == []
    assert _titles(as_coordinator, "q=scanners") == ["Monthly digest of scanners"]


def test_search_forgets_deleted_notes_even_when_ids_are_reused(as_coordinator, member, alliance):
    gone = _post(member, alliance, "Vanished heliotrope")
    db.session.execute(delete(Note).where(Note.id == gone.id))
    db.session.commit()
    _post(member, alliance, "Fresh marigold")
    assert _titles(as_coordinator, "q=heliotrope") == []
    assert _titles(as_coordinator, "q=marigold") == ["Fresh marigold"]


def test_search_stays_inside_the_read_rule(client, outsider, member, alliance, posted):
    factories.login(client, outsider)
    assert _titles(client, "q=phishing") == []
    assert _titles(client, "q=grid-login.example") == []


def test_search_with_only_punctuation_matches_nothing_and_is_no_error(as_coordinator, posted):
    assert len(_titles(as_coordinator, "q=%21%21%21")) == 0
    assert as_coordinator.get("/notes/?q=%22%27%2A").status_code == 200
