"""bench-data (bench/benchdata.py) writes what the app itself writes: a small generated database
(on SQLite, or PostgreSQL with ALLIANCE_TEST_DB=postgresql) is read through the normal
services — the feed through the read rule, search, correlation, TAXII pages, digests — and
every answer is checked against the reference model of DESIGN.md's read table
(tests/sharing/test_read_rule_properties.Model), built from the generated rows."""
import json
import re
from datetime import timedelta

import pytest
import stix2
from sqlalchemy import func, select, text

from alliance.alliances.models import Alliance, Coordinator, Membership
from alliance.audit.models import AuditEvent
from alliance.auth.models import User
from alliance.core.models import utcnow
from alliance.digests.building import build_digest
from alliance.extensions import db
from alliance.notes import posting, reading, storage
from alliance.notes.models import (
    CollectionObject,
    Note,
    NoteAudience,
    NoteFacet,
    NoteObject,
    NoteRecipient,
    Observable,
    StixObject,
    facet_rows,
)
from alliance.orgs.models import Organisation
from alliance.sharing.policy import Principal, count_readable
from alliance.stix import observables
from alliance.stix.validation import version_key
from alliance.taxii import reading as taxii_reading
from alliance.taxii import services as taxii
from alliance.taxii.filters import parse_filters
from bench.benchdata import bench_data_command
from tests.sharing.test_read_rule_properties import (
    AllianceSpec,
    Model,
    NoteSpec,
    UserSpec,
    World,
)

NOTES, ORGS, ALLIANCES, SEED = 300, 10, 6, 7


def fill(app, notes=NOTES, orgs=ORGS, alliances=ALLIANCES, seed=SEED) -> dict:
    result = app.test_cli_runner().invoke(bench_data_command, [
        "--notes", str(notes), "--orgs", str(orgs),
        "--alliances", str(alliances), "--seed", str(seed), "--json"])
    assert result.exit_code == 0, result.output
    db.session.expire_all()
    return json.loads(result.stdout)


class Generated:
    """The generated rows, read back plainly (tests may read tables directly), and the
    reference model's world built from them."""

    def __init__(self):
        self.orgs = db.session.scalars(select(Organisation).order_by(Organisation.id)).all()
        self.users = db.session.scalars(select(User).order_by(User.id)).all()
        self.alliances = db.session.scalars(select(Alliance).order_by(Alliance.id)).all()
        self.notes = db.session.scalars(select(Note).order_by(Note.id)).all()
        org_ix = {o.id: i for i, o in enumerate(self.orgs)}
        self.user_ix = {u.id: i for i, u in enumerate(self.users)}
        al_ix = {a.id: i for i, a in enumerate(self.alliances)}
        coordinators = {}
        for row in db.session.scalars(select(Coordinator)):
            coordinators.setdefault(row.alliance_id, set()).add(self.user_ix[row.user_id])
        audiences, recipients = {}, {}
        for row in db.session.scalars(select(NoteAudience)):
            audiences.setdefault(row.note_id, set()).add(al_ix[row.alliance_id])
        for row in db.session.scalars(select(NoteRecipient)):
            recipients.setdefault(row.note_id, set()).add(self.user_ix[row.user_id])
        self.world = World(
            orgs=tuple(o.status for o in self.orgs),
            users=tuple(UserSpec(org=org_ix[u.organisation_id], active=u.deactivated_at is None,
                                 verified=u.email_verified_at is not None) for u in self.users),
            alliances=tuple(AllianceSpec(a.publish_clear_allowed,
                                         frozenset(coordinators.get(a.id, ())))
                            for a in self.alliances),
            memberships={(al_ix[m.alliance_id], org_ix[m.organisation_id]): m.state
                         for m in db.session.scalars(select(Membership))},
            notes=tuple(NoteSpec(
                author=self.user_ix[n.author_id], tlp=n.tlp,
                audience=frozenset(audiences[n.id]),
                recipients=frozenset(recipients.get(n.id, ())),
                publish_public=n.publish_public, retracted=n.retracted_at is not None,
                created=0, values=frozenset(), word="", label="", commenters=())
                for n in self.notes))
        self.model = Model(self.world)

    def readable(self, user) -> set[int]:
        u = None if user is None else self.user_ix[user.id]
        return {self.notes[i].id for i in self.model.readable(u)}

    def user(self, email: str) -> User:
        return next(u for u in self.users if u.email == email)


def _feed(principal, **filters) -> list[int]:
    ids, before = [], None
    while True:
        notes, before = reading.feed(principal, limit=100, before=before, **filters)
        ids += [n.id for n in notes]
        if before is None:
            return ids


def _principals(gen: Generated, made: dict):
    """The reader of the benchmarks, and users of every kind the generator makes."""
    reader = gen.user(made["reader"]["email"])
    picked = {reader.id: reader}
    kinds = {
        "deactivated": lambda u: u.deactivated_at is not None,
        "unverified": lambda u: u.email_verified_at is None,
        "org not vetted": lambda u: u.organisation.status != "approved",
        "coordinator": lambda u: any(u.id in {c.user_id for c in a.coordinators}
                                     for a in gen.alliances),
        "RED recipient": lambda u: u.id in {r.user_id for r in db.session.scalars(
            select(NoteRecipient))},
    }
    for _kind, test in kinds.items():
        user = next((u for u in gen.users if u.id not in picked and test(u)), None)
        if user is not None:
            picked[user.id] = user
    for user in gen.users[::7]:
        picked.setdefault(user.id, user)
    return list(picked.values())


def test_bench_data_makes_every_kind_of_row_the_read_rule_cares_about(app):
    made = fill(app)
    gen = Generated()
    assert made["notes"] == len(gen.notes) == NOTES
    assert made["objects"] == db.session.scalar(select(func.count()).select_from(StixObject))
    tlps = {n.tlp for n in gen.notes}
    assert tlps == {"CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED"}
    assert all(gen.world.notes[i].recipients for i, n in enumerate(gen.notes) if n.tlp == "RED")
    assert {m for m in gen.world.memberships.values()} >= {"active", "left", "suspended"}
    assert any(len(n.audience) > 1 for n in gen.world.notes)
    assert any(n.retracted for n in gen.world.notes)
    assert any(n.version > 1 for n in gen.notes)
    assert any(n.publish_public for n in gen.world.notes)
    reader = gen.user(made["reader"]["email"])
    active = db.session.scalar(select(func.count()).select_from(Membership).where(
        Membership.organisation_id == reader.organisation_id, Membership.state == "active"))
    assert active == 5


def test_generated_rows_are_what_posting_writes(app):
    fill(app)
    objects = db.session.scalars(select(StixObject)).all()
    by_id = {o.id: o for o in objects}
    # Bodies are stored as posted, hashed as post_note hashes them, valid STIX 2.1.
    assert all(o.body_hash == storage.hash_body(o.body) for o in objects)
    assert all(o.stix_id == o.body["id"] and o.type == o.body["type"] for o in objects)
    for stix_type in sorted({o.type for o in objects}):
        for row in [o for o in objects if o.type == stix_type][:5]:
            stix2.parse(row.body, allow_custom=False, version="2.1")
    links = {}
    for link in db.session.scalars(select(NoteObject)):
        links.setdefault(link.note_id, []).append(by_id[link.object_id])
    # The alliance collections TAXII walks: every version a served note (not RED, not
    # retracted) holds, under each audience alliance, dated when the first such note
    # brought it there (its post, or the version's storing when later).
    audiences = {}
    for row in db.session.scalars(select(NoteAudience)):
        audiences.setdefault(row.note_id, set()).add(row.alliance_id)
    notes = {n.id: n for n in db.session.scalars(select(Note))}
    wanted = {}
    for note_id, held in links.items():
        note = notes[note_id]
        if note.tlp == "RED" or note.retracted_at is not None:
            continue
        for o in held:
            for a in audiences.get(note_id, ()):
                entered = max(note.created_at, o.date_added)
                if (a, o.id) not in wanted or entered < wanted[(a, o.id)][1]:
                    wanted[(a, o.id)] = (o.type, entered)
    collected = {(r.alliance_id, r.object_id): (r.type, r.date_added)
                 for r in db.session.scalars(select(CollectionObject))}
    assert {k: v[0] for k, v in collected.items()} == {k: v[0] for k, v in wanted.items()}
    # Each dated no earlier than it entered, every date of a collection its own, in the
    # order the versions entered (TAXII pages by date added: added_after walks them once).
    assert all(collected[k][1] >= wanted[k][1] for k in wanted)
    for alliance_id in {a for a, _ in collected}:
        rows = sorted((wanted[k][1], k[1], collected[k][1]) for k in collected
                      if k[0] == alliance_id)
        dates = [date for _, _, date in rows]
        assert dates == sorted(set(dates)), alliance_id
    found = {}
    for row in db.session.scalars(select(Observable)):
        found.setdefault(row.note_id, set()).add((row.kind, row.value))
    facets = {}
    for row in db.session.scalars(select(NoteFacet)):
        facets.setdefault(row.note_id, set()).add((row.facet, row.value, row.note_id))
    for note in db.session.scalars(select(Note)):
        held = links[note.id]
        reports = [o for o in held if o.type == "report"]
        # One current report version, the note's, named like the note, refs = the rest.
        assert [r.stix_id for r in reports] == [note.report_id]
        report = reports[0].body
        assert report["name"] == note.title
        others = sorted({o.stix_id for o in held if o.type != "report"})
        assert report["object_refs"] == others
        assert note.types == sorted({o.type for o in held})
        for o in held:
            if "object_marking_refs" in o.body:
                assert o.body["object_marking_refs"] == report["object_marking_refs"] or \
                    o.first_note_id != note.id
        assert found.get(note.id, set()) == {
            hit for o in held if o.type != "report" for hit in observables.extract(o.body)}
        assert facets.get(note.id, set()) == {
            (r["facet"], r["value"], r["note_id"]) for r in facet_rows(
                note.id, types=note.types, sectors=note.sectors, countries=note.countries,
                policy_tags=note.policy_tags)}
        # An edited note keeps its earlier report versions, held by no note (as edit_note).
        versions = [o for o in objects if o.stix_id == note.report_id]
        assert len(versions) == note.version
        assert note.organisation_id == reports[0].organisation_id
    events = db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "note.posted"))
    assert events == NOTES
    if db.session.get_bind().dialect.name == "sqlite":
        # The FTS5 index was filled by the triggers, one row per note.
        rowids = set(db.session.scalars(text("SELECT rowid FROM note_search")))
        assert rowids == {n.id for n in db.session.scalars(select(Note))}


def test_the_feed_search_and_correlation_agree_with_the_reference_model(app):
    made = fill(app)
    gen = Generated()
    popular = db.session.execute(
        select(Observable.value, func.count()).where(
            Observable.value.not_in(observables.COMMON_VALUES))
        .group_by(Observable.value).order_by(func.count().desc(), Observable.value)
        .limit(1)).first()[0]
    holding = set(db.session.scalars(select(Observable.note_id).where(
        Observable.value == popular)))
    words_of = {n.id: set(re.findall(r"\w+", f"{n.title} {n.description} "
                                              f"{' '.join(n.labels)}".lower()))
                for n in gen.notes}
    created = {n.id: (n.created_at, n.id) for n in gen.notes}
    for user in _principals(gen, made) + [None]:
        principal = Principal.of(user)
        expected = gen.readable(user)
        label = user.email if user else "anonymous"
        assert _feed(principal) == sorted(expected, key=created.get, reverse=True), label
        assert count_readable(principal) == len(expected), label
        assert set(_feed(principal, query="phishing")) == {
            i for i in expected if "phishing" in words_of[i]}, label
        assert set(_feed(principal, query=popular.upper())) == expected & holding, label
        if user is None:
            continue
        assert {n.id for n in reading.who_has_seen(principal, popular, limit=10_000)[1]} \
            == expected & holding, label
        note = next((n for n in gen.notes if n.id in expected & holding), None)
        if note is not None:
            related = {n.id for n, _values in reading.correlated(principal, note, limit=10_000)}
            mine = set(db.session.scalars(select(Observable.value).where(
                Observable.note_id == note.id,
                Observable.value.not_in(observables.COMMON_VALUES))))
            sharing = set(db.session.scalars(select(Observable.note_id).where(
                Observable.value.in_(mine)))) - {note.id}
            assert related == expected & sharing, label
    assert gen.readable(gen.user(made["reader"]["email"]))  # the reader reads something


def _taxii_rows(user, collection, **args) -> list[int]:
    filters = parse_filters({"limit": "40", **args})
    rows, token = [], None
    while True:
        page = taxii_reading.page(user, 1, collection, filters, "40", token)
        rows += [r.id for r in page.rows]
        if not page.more:
            return rows
        token = page.next


def test_taxii_serves_exactly_the_objects_of_readable_notes_in_the_collection(app):
    made = fill(app)
    gen = Generated()
    objects = {o.id: o for o in db.session.scalars(select(StixObject))}
    held = {}
    for link in db.session.scalars(select(NoteObject)):
        held.setdefault(link.note_id, set()).add(link.object_id)
    audiences = {}
    for row in db.session.scalars(select(NoteAudience)):
        audiences.setdefault(row.alliance_id, set()).add(row.note_id)
    notes = {n.id: n for n in gen.notes}
    reader = gen.user(made["reader"]["email"])
    checked = versioned = 0
    for user in [reader] + [u for u in _principals(gen, made) if u.can_act][1:3]:
        readable = gen.readable(user)
        for collection in taxii.collections_for(user):
            if collection.alliance is None:
                continue
            served_notes = {i for i in readable & audiences.get(collection.alliance.id, set())
                            if notes[i].tlp != "RED" and notes[i].retracted_at is None}
            held_here = set().union(*(held[i] for i in served_notes)) if served_notes else set()
            # One version is served once: an SCO id stored by two organisations is two rows
            # of one version, and the first row is the one served.
            first_row = {}
            for row_id in sorted(held_here):
                o = objects[row_id]
                first_row.setdefault((o.stix_id, version_key(o.modified)), row_id)
            every = set(first_row.values())
            all_rows = _taxii_rows(user, collection, **{"match[version]": "all"})
            assert len(all_rows) == len(set(all_rows)) and set(all_rows) == every
            # Default: the last version of each id among those served.
            newest = {}
            for row_id in every:
                o = objects[row_id]
                newest[o.stix_id] = max(newest.get(o.stix_id, ""), o.modified)
            last = {i for i in every if objects[i].modified == newest[objects[i].stix_id]}
            versioned += len(every - last)
            assert set(_taxii_rows(user, collection)) == last
            assert set(_taxii_rows(user, collection, **{"match[type]": "indicator"})) == {
                i for i in last if objects[i].type == "indicator"}
            # Keyset order: (date added to the collection, row id), ascending.
            added = dict(db.session.execute(select(
                CollectionObject.object_id, CollectionObject.date_added).where(
                CollectionObject.alliance_id == collection.alliance.id)).all())
            keys = [(added[i], i) for i in all_rows]
            assert keys == sorted(keys)
            checked += len(all_rows)
    assert checked > 100 and versioned > 0  # earlier versions were served with "all" only


def test_digests_list_only_readable_notes_and_every_new_one(app):
    made = fill(app)
    gen = Generated()
    end = utcnow()
    start = end - timedelta(days=40)
    notes = {n.id: n for n in gen.notes}
    audiences = {}
    for row in db.session.scalars(select(NoteAudience)):
        audiences.setdefault(row.note_id, set()).add(row.alliance_id)
    checked = 0
    for user in _principals(gen, made):
        if not user.can_act:
            continue
        active = set(db.session.scalars(select(Membership.alliance_id).where(
            Membership.organisation_id == user.organisation_id, Membership.state == "active")))
        readable = gen.readable(user)
        digest = build_digest(user, start, end)
        listed = {item.note.id for _name, items in digest.groups for item in items}
        assert listed <= readable
        assert all(notes[i].tlp != "RED" and notes[i].retracted_at is None for i in listed)
        new = {i for i in readable if notes[i].retracted_at is None
               and start <= notes[i].created_at < end and notes[i].author_id != user.id
               and audiences[i] & active}
        assert {i for i in new if notes[i].tlp != "RED"} <= listed
        assert digest.red_count >= len({i for i in new if notes[i].tlp == "RED"})
        checked += len(listed)
    assert checked > 0


def test_posting_and_a_second_run_fit_on_top_of_generated_data(app):
    """Ids reserved by the generator leave the tables' own sequences consistent."""
    made = fill(app, notes=50, seed=3)
    again = fill(app, notes=50, seed=3)
    assert again["tag"] != made["tag"]
    assert db.session.scalar(select(func.count()).select_from(StixObject)) == \
        made["objects"] + again["objects"]
    reader = db.session.scalar(select(User).where(User.email == made["reader"]["email"]))
    alliance = db.session.scalar(select(Alliance).where(
        Alliance.slug == made["reader"]["alliances"][0]))
    stamp = "2025-01-01T00:00:00.000Z"
    note = posting.post_note(reader, posting.NoteDraft(title="Posted after bench-data", tlp="GREEN",
                              alliance_ids=[alliance.id], objects=[{
                                  "type": "indicator", "spec_version": "2.1",
                                  "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
                                  "created": stamp, "modified": stamp,
                                  "pattern": "[ipv4-addr:value = '198.18.0.1']",
                                  "pattern_type": "stix", "valid_from": stamp}]))
    notes, _cursor = reading.feed(Principal.of(reader), query="198.18.0.1", limit=1000)
    assert note.id in {n.id for n in notes}


@pytest.mark.parametrize("bad", [["--notes", "0"], ["--orgs", "0"]])
def test_bench_data_refuses_empty_plans(app, bad):
    args = {"--notes": "5", "--orgs": "2", "--alliances": "1"}
    args.update(dict(zip(bad[::2], bad[1::2], strict=True)))
    result = app.test_cli_runner().invoke(bench_data_command,
                                          [x for kv in args.items() for x in kv])
    assert result.exit_code == 2 and "Invalid value" in result.output


def test_bench_data_is_a_bench_command_not_an_app_command(app):
    """The app carries no benchmark tooling; `flask --app bench.benchdata` adds the command."""
    from bench import benchdata

    assert "bench-data" not in app.cli.commands["alliance"].commands
    assert "bench-data" not in app.cli.commands
    with_it = benchdata.create_app(
        {"SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"]})
    assert with_it.cli.commands["bench-data"] is bench_data_command
