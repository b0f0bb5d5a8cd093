"""Issue 23, the note page that explains itself: its observables table (first and last seen,
sightings, related notes) counts only notes the reader may read; ATT&CK techniques show by
name and tactic; CVEs with the CVSS the STIX carries ("not given" otherwise); the graph's
JSON holds the note's objects, its links and the readable related notes, and nothing of a
note the reader cannot read; the STIX cards are collapsed below, the raw JSON stays."""
import re
from datetime import UTC, datetime

import pytest

from alliance.extensions import db
from alliance.notes import comments, compose, editing, graph, posting, reading, summary
from alliance.sharing.policy import Principal
from tests import factories
from tests.notes.helpers import STAMP, indicator, sid

X, Y, PRIVATE = "45.77.12.9", "evil-login.example", "10.0.0.1"


def _day(day: int) -> datetime:
    return datetime(2026, 3, day, 9, 0, tzinfo=UTC)


def _post(author, alliance, title, values, day, *, tlp="GREEN", recipients=()):
    objects = [indicator(f"[domain-name:value = '{v}']" if "." in v and not v[0].isdigit()
                         else f"[ipv4-addr:value = '{v}']", name=v) for v in values]
    note = posting.post_note(author, posting.NoteDraft(
        title=title, tlp=tlp, alliance_ids=[alliance.id], kind="indicators",
        recipient_ids=list(recipients), objects=objects))
    note.created_at = _day(day)
    db.session.commit()
    return note


@pytest.fixture
def world(member, member_admin, coordinator, outsider, alliance):
    """The member's note A (day 10: X, Y, a private address) and, holding X too: B by a
    colleague alliance member (day 12, readable, with a sighting), and notes the member may
    not read: C in another alliance (day 20, with sightings), D a TLP:RED note naming a
    colleague of theirs, not them (day 1), E retracted (day 25)."""
    pacific = factories.make_alliance(outsider, slug="pacific", name="Pacific Alliance")
    a = _post(member, alliance, "Mine", [X, Y, PRIVATE], 10)
    b = _post(coordinator, alliance, "Colleague", [X], 12)
    c = _post(outsider, pacific, "Elsewhere", [X, Y], 20)
    d = _post(coordinator, alliance, "Red", [X], 1, tlp="RED", recipients=[member_admin.id])
    e = _post(coordinator, alliance, "Withdrawn", [X, Y], 25)
    editing.retract_note(coordinator, e, "Wrong address.")
    comments.add_comment(member, b, "sighting", "Seen at our gateway.")
    comments.add_comment(outsider, c, "sighting", "Seen here too.")
    comments.add_comment(outsider, c, "sighting", "And again.")
    return {"a": a, "b": b, "c": c, "d": d, "e": e}


def test_the_observables_table_counts_only_readable_notes(world, member):
    rows = {r.value: r for r in summary.observable_rows(Principal.of(member), world["a"])}
    assert set(rows) == {X, Y, PRIVATE}
    x, y, private = rows[X], rows[Y], rows[PRIVATE]
    # X: in A (day 10) and B (day 12); not C, D (day 1, earlier) or E (day 25, later).
    assert (x.first_seen, x.last_seen, x.notes, x.related) == (_day(10), _day(12), 2, 1)
    assert x.sightings == 1  # B's, not C's two
    assert (y.first_seen, y.last_seen, y.related, y.sightings) == (_day(10), _day(10), 0, 0)
    assert private.warning.id == "rfc1918" and not private.correlated and x.correlated


def test_the_observables_table_of_another_reader_counts_their_notes(world, outsider):
    """The outsider reads C (their own) and not A's alliance: X and Y in C alone."""
    rows = {r.value: r for r in summary.observable_rows(Principal.of(outsider), world["c"])}
    assert (rows[X].first_seen, rows[X].last_seen, rows[X].related) == (_day(20), _day(20), 0)
    assert rows[X].sightings == 2


def test_the_page_shows_the_observables_table_at_the_top(world, as_member):
    page = as_member.get(f"/notes/{world['a'].uuid}").get_data(as_text=True)
    table = page[page.index('id="observables-table"'):page.index("</table>",
                                                                 page.index('id="observables'))]
    row = table[table.rindex("<tr", 0, table.index(f"<code class=\"break\">{X}</code>")):]
    row = row[:row.index("</tr>")]
    assert ">2026-03-10</time>" in row and ">2026-03-12</time>" in row
    assert f'href="/notes/?q={X}">1 note</a>' in row
    assert f'data-copy="{X}" hidden>Copy' in row
    private = table[table.index(PRIVATE):]
    private = private[:private.index("</tr>")]
    assert "not correlated" in private and "RFC 1918 private space" in private
    # Above the STIX cards, which are collapsed; the raw JSON stays.
    assert page.index('id="observables-table"') < page.index('id="objects-details"')
    assert '<details class="card obj-all" id="objects-details">' in page
    assert '<details id="raw-json">' in page
    for hidden in ("c", "d", "e"):
        assert world[hidden].uuid not in page


def test_attack_techniques_show_by_name_and_tactic_above_the_cards(as_member, member, alliance):
    objects = compose.incident_report(member.organisation, "AMBER", compose.IncidentDraft(
        title="Lure", observables_text="evil-login.example", attack_ids_text="T1566.001 T1059"))
    note = posting.post_note(member, posting.NoteDraft(
        title="Lure", tlp="AMBER", alliance_ids=[alliance.id], objects=objects, kind="incident"))
    page = as_member.get(f"/notes/{note.uuid}").get_data(as_text=True)
    top = page[page.index('id="attack-techniques"'):page.index('id="observables"')]
    assert re.search(r"T1566\.001</code> <strong class=\"technique-name\">Spearphishing "
                     r"Attachment</strong> <span class=\"muted\">· tactic: Initial Access", top)
    assert "Command and Scripting Interpreter</strong>" in top and "Execution" in top
    nodes = as_member.get(f"/notes/{note.uuid}/graph.json").get_json()["nodes"]
    assert "T1566.001 Spearphishing Attachment" in {n["label"] for n in nodes}


def _vulnerability(cve: str, **extra) -> dict:
    obj = {"type": "vulnerability", "spec_version": "2.1", "id": sid("vulnerability"),
           "created": STAMP, "modified": STAMP, "name": cve,
           "external_references": [{"source_name": "cve", "external_id": cve}]}
    obj.update(extra)
    return obj


VECTOR = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"


def test_cves_show_the_cvss_the_stix_carries(as_member, member, alliance):
    nvd = ("https://nvd.nist.gov/vuln-metrics/cvss/v3-calculator?vector="
           "AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H&version=3.1")
    objects = [
        _vulnerability("CVE-2024-3400", x_opencti_cvss_base_score=10.0,
                       x_opencti_cvss_base_severity="CRITICAL",
                       x_opencti_cvss_vector_string=VECTOR),
        _vulnerability("CVE-2023-4966", x_cvss={"baseScore": 9.4, "vectorString":
                                                "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:L"}),
        _vulnerability("CVE-2021-44228", external_references=[
            {"source_name": "cve", "external_id": "CVE-2021-44228"},
            {"source_name": "cvss", "url": nvd, "external_id": "CVSS:3.1/AV:N/AC:L/PR:N/"
             "UI:N/S:C/C:H/I:H/A:H"}]),
        _vulnerability("CVE-2020-0601"),
    ]
    note = posting.post_note(member, posting.NoteDraft(
        title="Edge devices", tlp="AMBER", alliance_ids=[alliance.id], objects=objects))
    page = as_member.get(f"/notes/{note.uuid}").get_data(as_text=True)

    def item(cve):
        start = page.index(f'id="cve-{cve}"')
        return page[start:page.index("</li>", start)]

    assert "<strong class=\"cvss-score\">10.0</strong>" in item("CVE-2024-3400")
    assert "(critical)" in item("CVE-2024-3400") and VECTOR in item("CVE-2024-3400")
    assert "9.4</strong>" in item("CVE-2023-4966")
    assert "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H" in item("CVE-2021-44228")
    assert "not given" in item("CVE-2020-0601") and "cvss-score" not in item("CVE-2020-0601")
    assert page.index('id="cves"') < page.index('id="objects-details"')


def test_cvss_of_reads_an_extension_and_a_v2_vector():
    body = {"extensions": {"extension-definition--1": {"cvss": {
        "score": "7.5", "vector": "AV:N/AC:L/Au:N/C:P/I:P/A:P"}}}}
    assert summary.cvss_of(body) == summary.Cvss(7.5, "AV:N/AC:L/Au:N/C:P/I:P/A:P", None)
    assert not summary.cvss_of({"x_cvss_score": 11, "description": VECTOR}).given


def test_the_graph_holds_the_objects_their_links_and_readable_related_notes(
        world, as_member, member, alliance):
    objects = compose.incident_report(member.organisation, "GREEN", compose.IncidentDraft(
        title="Incident", observables_text=f"{X}\n{PRIVATE}", attack_ids_text="T1566",
        countries=["DE"]))
    note = posting.post_note(member, posting.NoteDraft(
        title="Incident", tlp="GREEN", alliance_ids=[alliance.id], objects=objects, kind="incident"))
    data = as_member.get(f"/notes/{note.uuid}/graph.json").get_json()
    nodes = {n["id"]: n for n in data["nodes"]}
    incident = next(o for o in objects if o["type"] == "incident")
    x_indicator = next(o for o in objects if o.get("name") == X)
    assert nodes[incident["id"]]["card"].startswith("obj-")
    assert {n["type"] for n in data["nodes"]} >= {"incident", "indicator", "attack-pattern",
                                                  "location", "note"}
    assert not any(n["type"] in ("relationship", "report", "marking-definition")
                   for n in data["nodes"])
    links = {(e["source"], e["target"], e["label"]) for e in data["edges"]}
    assert (incident["id"], x_indicator["id"], "related to") in links
    # One hop out: A and B (readable) share X; C, D, E hold it but the member may not read
    # them; nothing shares the private address.
    related = {n["id"] for n in data["nodes"] if n["group"] == "related"}
    assert related == {f"note--{world['a'].uuid}", f"note--{world['b'].uuid}"}
    assert (x_indicator["id"], f"note--{world['b'].uuid}", f"shares {X}") in links
    body = as_member.get(f"/notes/{note.uuid}/graph.json").get_data(as_text=True)
    for hidden in ("c", "d", "e"):
        assert world[hidden].uuid not in body and world[hidden].title not in body
    assert (data["shown"], data["truncated"]) == (len(data["nodes"]), False)


def test_the_graph_answers_like_the_note(world, client, outsider, as_member):
    c = world["c"]
    assert as_member.get(f"/notes/{c.uuid}/graph.json").status_code == 404
    assert as_member.get(f"/notes/{c.uuid}").status_code == 404
    missing = "00000000-0000-4000-8000-000000000000"
    assert as_member.get(f"/notes/{missing}/graph.json").status_code == 404
    assert as_member.get("/notes/not-a-uuid/graph.json").status_code == 404


def test_the_graph_stops_at_its_cap_and_the_page_says_so(world, as_member, member):
    a = world["a"]
    objects = reading.note_objects(a)
    related = reading.correlated(Principal.of(member), a)
    full = graph.note_graph(a, objects, related)
    capped = graph.note_graph(a, objects, related, limit=2)
    assert full["total"] == capped["total"] == len(full["nodes"]) == 4  # 3 indicators, B
    assert (capped["shown"], len(capped["nodes"]), capped["truncated"]) == (2, 2, True)
    shown = {n["id"] for n in capped["nodes"]}
    assert all(e["source"] in shown and e["target"] in shown for e in capped["edges"])


def test_a_graph_over_the_cap_is_cut_with_a_message(as_member, member, alliance, monkeypatch):
    monkeypatch.setattr(graph, "MAX_NODES", 3)
    objects = [indicator(f"[ipv4-addr:value = '45.77.13.{n}']", name=f"n{n}")
               for n in range(5)]
    note = posting.post_note(member, posting.NoteDraft(
        title="Many", tlp="GREEN", alliance_ids=[alliance.id], kind="indicators", objects=objects))
    page = as_member.get(f"/notes/{note.uuid}").get_data(as_text=True)
    assert "Showing 3 of 5" in page and "the graph stops at 3" in page
    assert len(as_member.get(f"/notes/{note.uuid}/graph.json").get_json()["nodes"]) == 3


def test_without_script_the_graph_is_a_table_of_the_same_links(world, as_member, member):
    a = world["a"]
    page = as_member.get(f"/notes/{a.uuid}").get_data(as_text=True)
    table = page[page.index('id="graph-table"'):]
    table = table[:table.index("</details>")]
    data = as_member.get(f"/notes/{a.uuid}/graph.json").get_json()
    assert table.count("<tr><td") == len(data["edges"]) == 1  # X's indicator -> B
    assert f'href="/notes/{world["b"].uuid}">Colleague</a>' in table
    assert 'class="graph-canvas" id="graph-canvas" data-src=' in page


@pytest.fixture
def crowded(member, coordinator, outsider, alliance, monkeypatch):
    """Issue 22, correlation capped (holders.CORRELATION_HOLDERS, lowered to 3): the member's
    note A (day 1) holds Y, and five notes after it do: R1, R2, R3 by a colleague (days
    2-4), U in another alliance (day 5, unreadable), R4 (day 6). The newest three holders
    besides A are R4, U and R3."""
    from alliance.notes import holders

    pacific = factories.make_alliance(outsider, slug="pacific", name="Pacific Alliance")
    notes = {"a": _post(member, alliance, "Mine", [Y], 1)}
    for name, day in (("r1", 2), ("r2", 3), ("r3", 4)):
        notes[name] = _post(coordinator, alliance, name, [Y], day)
    notes["u"] = _post(outsider, pacific, "Elsewhere", [Y], 5)
    notes["r4"] = _post(coordinator, alliance, "r4", [Y], 6)
    comments.add_comment(member, notes["r1"], "sighting", "Seen, long ago.")
    comments.add_comment(member, notes["r4"], "sighting", "Seen today.")
    monkeypatch.setattr(holders, "CORRELATION_HOLDERS", 3)
    return notes


def test_correlation_reads_the_newest_holders_of_a_value(crowded, member, monkeypatch):
    from alliance.notes import holders

    principal = Principal.of(member)
    related = reading.correlated(principal, crowded["a"])
    # R4 and R3 of the newest three; U is unreadable, R1 and R2 are past the cap.
    assert [note.id for note, _values in related] == [crowded["r4"].id, crowded["r3"].id]
    assert related[0][1] == [Y]
    row = summary.observable_rows(principal, crowded["a"])[0]
    assert (row.notes, row.related, row.sightings, row.capped) == (3, 2, 1, True)
    assert row.related_at_least and row.last_seen == _day(6)
    # The oldest of those read, or this note's own day when older.
    assert row.first_seen == _day(1)
    # From R4: the newest three besides it are U, R3, R2 — first seen is R2's day.
    row = summary.observable_rows(principal, crowded["r4"])[0]
    assert (row.first_seen, row.notes, row.capped) == (_day(3), 3, True)
    monkeypatch.setattr(holders, "CORRELATION_HOLDERS", 1000)
    assert len(reading.correlated(principal, crowded["a"])) == 4
    row = summary.observable_rows(principal, crowded["a"])[0]
    assert (row.notes, row.related, row.sightings, row.capped) == (5, 4, 2, False)


def test_correlation_checks_candidates_newest_first_a_batch_at_a_time(crowded, member,
                                                                      monkeypatch):
    """Candidates go through the rule newest first, CANDIDATES_AT_ONCE at a time, until
    `limit` are readable: batches of 2 (R4, U; then R3, R2; then R1) give what one batch
    gives, and a limit of 2 stops after the second batch with the two newest readable."""
    from alliance.notes import holders

    monkeypatch.setattr(holders, "CORRELATION_HOLDERS", 1000)
    principal = Principal.of(member)
    whole = [note.id for note, _values in reading.correlated(principal, crowded["a"])]
    assert whole == [crowded[n].id for n in ("r4", "r3", "r2", "r1")]
    monkeypatch.setattr(reading, "CANDIDATES_AT_ONCE", 2)
    assert [note.id for note, _v in reading.correlated(principal, crowded["a"])] == whole
    asked = []
    among = reading.readable_among
    monkeypatch.setattr(reading, "readable_among",
                        lambda p, ids: asked.append(list(ids)) or among(p, ids))
    assert [note.id for note, _v in reading.correlated(principal, crowded["a"], limit=2)] == [
        crowded["r4"].id, crowded["r3"].id]
    assert asked == [[crowded["r4"].id, crowded["u"].id], [crowded["r3"].id, crowded["r2"].id]]


def test_the_page_says_at_least_for_a_capped_value(crowded, as_member):
    page = as_member.get(f"/notes/{crowded['a'].uuid}").get_data(as_text=True)
    table = page[page.index('id="observables-table"'):]
    row = table[table.rindex("<tr", 0, table.index(f'<code class="break">{Y}</code>')):]
    row = row[:row.index("</tr>")]
    assert f'href="/notes/?q={Y}">2+ notes</a>' in row
    assert "on or before</span>" in row and ">1+</td>" in row
    assert "Of a value that 3 other notes or more hold, only the newest 3 are read" in \
        " ".join(page.split())
    assert crowded["u"].uuid not in page and crowded["r1"].uuid not in page


# Issue 23 (p95 < 200 ms for a note of 1,000 objects): a large note's page shows its cards a
# page at a time (cards.PER_PAGE), the first rows of its observables table
# (views.OBSERVABLES_SHOWN, all of them on asking) and the newest rows of its history
# (views.HISTORY_SHOWN). Lowered here so a small note shows it.

def test_cards_page_of_orders_cuts_and_indexes_every_page():
    from alliance.notes import cards

    class Obj:
        def __init__(self, i, stix_type):
            self.id, self.type, self.stix_id, self.body = i, stix_type, f"{stix_type}--{i}", {}

    objects = ([Obj(i, "relationship") for i in range(3)] + [Obj(10 + i, "indicator")
                                                              for i in range(4)]
               + [Obj(20, "x-custom-thing"), Obj(30, "report")])
    per = cards.PER_PAGE
    try:
        cards.PER_PAGE = 4
        first, last = cards.page_of(objects, None), cards.page_of(objects, "99")
        bad = cards.page_of(objects, "two")
    finally:
        cards.PER_PAGE = per
    # The report and indicators first, an unknown kind next, relationships last.
    assert [(k.type, k.count, k.page) for k in first.kinds] == [
        ("report", 1, 1), ("indicator", 4, 1), ("x-custom-thing", 1, 2), ("relationship", 3, 2)]
    assert (first.page, first.pages, first.first, first.last, first.total) == (1, 3, 1, 4, 9)
    assert [[o.id for o in m] for _t, m in first.groups] == [[30], [10, 11, 12]]
    assert (bad.page, last.page, last.first, last.last) == (1, 3, 9, 9)
    assert [o.id for _t, m in last.groups for o in m] == [2]
    # A reference links to the card on its page: None on this page.
    assert first.index["indicator--13"].page == 2 and first.index["report--30"].page is None
    assert last.index["relationship--2"].page is None and last.index["report--30"].page == 1
    assert first.object_ids == frozenset(o.id for o in objects)


@pytest.fixture
def large(member, alliance, monkeypatch):
    """A note of 12 addresses (and 12 indicators) whose page shows 5 cards, 4 observables
    and 3 versions at a time."""
    from alliance.notes import cards, views

    monkeypatch.setattr(cards, "PER_PAGE", 5)
    monkeypatch.setattr(views, "OBSERVABLES_SHOWN", 4)
    monkeypatch.setattr(views, "HISTORY_SHOWN", 3)
    values = [f"198.51.100.{i}" for i in range(10, 22)]
    objects = [indicator(f"[ipv4-addr:value = '{v}']", name=v) for v in values]
    malware = {"type": "malware", "spec_version": "2.1", "id": sid("malware"), "created": STAMP,
               "modified": STAMP, "name": "Nimbus", "is_family": True}
    objects += [malware, {"type": "relationship", "spec_version": "2.1",
                          "id": sid("relationship"), "created": STAMP, "modified": STAMP,
                          "relationship_type": "indicates",
                          "source_ref": min(o["id"] for o in objects),  # the first card
                          "target_ref": malware["id"]}]
    note = posting.post_note(member, posting.NoteDraft(
        title="Twelve addresses", tlp="GREEN", alliance_ids=[alliance.id], kind="indicators",
        objects=objects))
    return note, values


def _card_ids(html: str) -> list[str]:
    return re.findall(r'<article[^>]*id="obj-(\d+)"', html)


def test_a_large_note_shows_its_cards_a_page_at_a_time(large, as_member):
    note, _values = large
    objects = reading.note_objects(note)
    pages = [as_member.get(f"/notes/{note.uuid}", query_string=q)
             for q in ({}, {"objects": 2}, {"objects": 3})]
    assert [p.status_code for p in pages] == [200, 200, 200]
    html = [p.get_data(as_text=True) for p in pages]
    seen = [_card_ids(h) for h in html]
    # The report, 12 indicators, the malware and the relationship (last).
    assert [len(s) for s in seen] == [5, 5, 5]
    assert sorted(int(i) for s in seen for i in s) == sorted(o.id for o in objects)
    assert "Objects 1–5 of 15" in html[0] and "Objects 11–15 of 15" in html[2]
    assert 'href="?objects=2#objects-details" rel="next"' in html[0]
    assert 'rel="next"' not in html[2] and 'href="?objects=2#objects-details" rel="prev"' in html[2]
    # Asked for a page, the cards are open; the first view keeps them collapsed.
    assert re.search(r'id="objects-details"\s+open', html[1])
    assert not re.search(r'id="objects-details"\s+open', html[0])
    # The relationship (page 3) links to its indicator's card on that card's page, and to
    # the malware's on its own page.
    on_page = {int(i): n + 1 for n, s in enumerate(seen) for i in s}
    relationship = next(o for o in objects if o.type == "relationship")
    source = next(o for o in objects if o.stix_id == relationship.body["source_ref"])
    target = next(o for o in objects if o.stix_id == relationship.body["target_ref"])
    assert (on_page[source.id], on_page[relationship.id], on_page[target.id]) == (1, 3, 3)
    assert f'href="?objects=1#obj-{source.id}"' in html[2]
    assert f'href="#obj-{target.id}"' in html[2]


def test_a_large_note_shows_the_first_observables_and_all_on_asking(large, as_member):
    note, values = large
    first = as_member.get(f"/notes/{note.uuid}").get_data(as_text=True)
    every = as_member.get(f"/notes/{note.uuid}?observables=all").get_data(as_text=True)
    rows = re.findall(r'<tr id="observable-\d+"', first)
    assert len(rows) == 4 and len(re.findall(r'<tr id="observable-\d+"', every)) == 12
    assert "The first 4 of 12 values." in first and 'href="?observables=all#observables"' in first
    assert 'id="observables-more"' not in every
    # "Copy all" copies every value, shown or not.
    copied = re.search(r'id="copy-all" data-copy="([^"]*)"', first).group(1)
    assert sorted(copied.split("\n")) == sorted(values)


def test_a_large_note_shows_the_newest_versions(large, as_member):
    note, _values = large
    html = as_member.get(f"/notes/{note.uuid}").get_data(as_text=True)
    history = html[html.index('id="history-table"'):html.index('id="raw"')]
    assert history.count("<tr>") == 1 + 3  # the head and three versions
    assert "The other 12 versions" in history
