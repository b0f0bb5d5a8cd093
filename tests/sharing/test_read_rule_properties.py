"""The one read rule, tested as a property: in random worlds of organisations, users,
alliances, memberships in every state, coordinators and notes of every TLP (with audiences,
RED recipients, public publishing and retractions), every read path returns exactly the notes
that a small, independent model of the DESIGN.md table ("Who may read a note") allows.

The model below is written from DESIGN.md in plain Python over the world's description; it
does not import or mirror alliance.sharing.policy. Notes are stored as rows directly (not
through post_note, which requires the author's organisation to be an active member at posting
time), and memberships are set after the notes exist, so access that changed after posting,
old notes and states the posting service would refuse are all covered."""
import uuid
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import orjson
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from alliance.alliances.models import Alliance, Coordinator
from alliance.core.models import utcnow
from alliance.dashboard import services as dashboard
from alliance.dashboard.charts import window
from alliance.digests.models import WatchTerm
from alliance.extensions import db
from alliance.notes import comments, export, listing, reading
from alliance.notes.models import (
    Note,
    NoteAudience,
    NoteComment,
    NoteObject,
    NoteRecipient,
    Observable,
    StixObject,
)
from alliance.sharing.policy import (
    Principal,
    can_read,
    count_readable,
    get_readable_note,
    readable_notes,
)
from alliance.stix import observables
from alliance.taxii.collections import collect_objects
from tests import factories
from tests.sharing.helpers import reset_database

TLPS = ("CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED")
STATES = ("requested", "invited", "active", "rejected", "suspended", "left", "removed")
# Observable pool: (kind, value as indexed, value as someone would type it in a search box).
# 8.8.8.8 is a public resolver: searchable, but never a correlation hint (DESIGN.md, Reading).
VALUES = (
    ("domain", "evil-relay.example", "EVIL-Relay.example."),
    ("ipv4", "203.0.113.7", "203.0.113.7"),
    ("md5", "44d88612fea8a8f36de82e1278abb02f", "44D88612FEA8A8F36DE82E1278ABB02F"),
    ("ipv4", "8.8.8.8", "8.8.8.8"),
)
COMMON = frozenset({"8.8.8.8"})
WORDS = ("kestrel", "lantern", "meridian")
BASE_TIME = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

SETTINGS = settings(max_examples=60, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


# --- the world, as plain data -------------------------------------------------------------

RESPONSE_KINDS = ("comment", "opinion", "sighting")

@dataclass(frozen=True)
class UserSpec:
    org: int
    active: bool
    verified: bool


@dataclass(frozen=True)
class AllianceSpec:
    publish_clear_allowed: bool
    coordinators: frozenset  # user indexes


@dataclass(frozen=True)
class NoteSpec:
    author: int  # user index
    tlp: str
    audience: frozenset  # alliance indexes
    recipients: frozenset  # user indexes
    publish_public: bool
    retracted: bool
    created: int  # minutes after BASE_TIME; small range, so that keyset pages meet ties
    values: frozenset  # indexes into VALUES
    word: str  # in the title
    label: str
    commenters: tuple  # user indexes
    # A version of one of the author organisation's indicators (slot 0 or 1), or none: notes of
    # one organisation with the same slot hold versions of the same STIX object.
    slot: int | None = None


@dataclass(frozen=True)
class World:
    orgs: tuple  # status per organisation
    users: tuple
    alliances: tuple
    memberships: dict  # (alliance index, org index) -> state
    notes: tuple
    # One filter and search of each kind per world (TLP, alliance index, word, VALUES index):
    # checking them all for every principal is slow; the examples vary them instead.
    probe: tuple = ("AMBER", 0, WORDS[0], 0)


likely = st.sampled_from((True, True, True, False))
unlikely = st.sampled_from((False, False, False, True))


@st.composite
def worlds(draw):
    n_orgs = draw(st.integers(2, 4))
    odd = draw(st.none() | st.integers(0, n_orgs - 1))  # at most one organisation not vetted
    orgs = tuple("approved" if i != odd else draw(st.sampled_from(("pending", "rejected")))
                 for i in range(n_orgs))
    users = tuple(UserSpec(org=o, active=draw(likely), verified=draw(likely))
                  for o in range(n_orgs) for _ in range(draw(st.integers(1, 3))))
    user_ix = st.integers(0, len(users) - 1)
    n_alliances = draw(st.integers(1, 3))
    alliances = tuple(AllianceSpec(publish_clear_allowed=draw(st.booleans()),
                                   coordinators=frozenset(draw(st.sets(user_ix, max_size=2))))
                      for _ in range(n_alliances))
    memberships = {}
    for a in range(n_alliances):
        for o in range(n_orgs):
            state = draw(st.sampled_from((None, "active", "active", "active") + STATES))
            if state is not None:
                memberships[(a, o)] = state
    notes = []
    for _ in range(draw(st.integers(1, 8))):
        tlp = draw(st.sampled_from(TLPS))
        notes.append(NoteSpec(
            author=draw(user_ix), tlp=tlp,
            audience=frozenset(draw(st.sets(st.integers(0, n_alliances - 1),
                                            min_size=1, max_size=2))),
            # Recipient rows on a non-RED note grant nothing; a few are stored to check that.
            recipients=frozenset(draw(st.sets(user_ix, max_size=3)))
            if tlp == "RED" or draw(unlikely) else frozenset(),
            # publish_public on a non-CLEAR note (say, one whose TLP was raised later) must
            # never reach the public page.
            publish_public=draw(st.booleans()) if tlp == "CLEAR" else draw(unlikely),
            retracted=draw(unlikely),
            created=draw(st.integers(0, 3)),
            values=frozenset(draw(st.sets(st.integers(0, len(VALUES) - 1), max_size=3))),
            word=draw(st.sampled_from(WORDS)),
            label=draw(st.sampled_from(WORDS)),
            commenters=tuple(draw(st.lists(user_ix, max_size=2))),
            slot=draw(st.sampled_from((None, 0, 1)))))
    probe = (draw(st.sampled_from(TLPS)), draw(st.integers(0, n_alliances - 1)),
             draw(st.sampled_from(WORDS)), draw(st.integers(0, len(VALUES) - 1)))
    return World(orgs, users, alliances, memberships, tuple(notes), probe)


def _note(author, tlp, audience=(0,), recipients=(), *, public=False, retracted=False,
          created=0, values=(), word=WORDS[0], label=WORDS[0], commenters=(), slot=0) -> NoteSpec:
    return NoteSpec(author, tlp, frozenset(audience), frozenset(recipients), public, retracted,
                    created, frozenset(values), word, label, tuple(commenters), slot)


OK = UserSpec
# Corners that random generation reaches only now and then, checked on every run.
EXAMPLE_WORLDS = {
    # Retraction: the author's organisation, and coordinators whose organisation is an active
    # member, still read the note — within the rule (a coordinator who is not named on a RED
    # note does not read it because it was retracted). A suspended coordinator reads nothing.
    "retraction and coordinators": World(
        orgs=("approved",) * 4,
        users=(OK(0, True, True), OK(1, True, True), OK(2, True, True), OK(3, True, True),
               OK(0, True, True)),
        alliances=(AllianceSpec(False, frozenset({1, 2})),),
        memberships={(0, 0): "active", (0, 1): "active", (0, 2): "suspended", (0, 3): "active"},
        notes=(_note(0, "RED", recipients={3}, retracted=True, values={0}),
               _note(0, "RED", recipients={1}, retracted=True, values={0}),
               _note(0, "GREEN", retracted=True, values={0}, commenters=(1,)),
               _note(0, "CLEAR", public=True, retracted=True, created=1, values={0, 3}),
               _note(0, "RED", recipients={1, 2, 3}, created=2, values={0, 3}),
               _note(3, "AMBER+STRICT", created=2, values={0, 1}, label=WORDS[1])),
        probe=("RED", 0, WORDS[1], 0)),
    # The public page: CLEAR, published, in an alliance that allows it, not retracted — and a
    # deactivated or unverified user reads only that, like an anonymous visitor. Ties on
    # created_at everywhere, for the keyset pagination.
    "public page": World(
        orgs=("approved", "approved"),
        users=(OK(0, True, True), OK(1, False, True), OK(1, True, False)),
        alliances=(AllianceSpec(True, frozenset()), AllianceSpec(False, frozenset())),
        memberships={(0, 0): "active", (1, 0): "active", (0, 1): "active"},
        notes=(_note(0, "CLEAR", (0,), public=True), _note(0, "CLEAR", (1,), public=True),
               _note(0, "CLEAR", (0, 1), public=True), _note(0, "CLEAR", (0,)),
               _note(0, "GREEN", (0,), public=True), _note(0, "RED", (0,), {0}, public=True),
               _note(0, "CLEAR", (0,), public=True, retracted=True)),
        probe=("CLEAR", 1, WORDS[0], 3)),
    # Read time decides: the author's organisation left (it still reads its own notes, the
    # author their RED one), a named recipient's organisation is suspended in the audience
    # alliance and active only elsewhere, a recipient's organisation is not vetted.
    "access after posting": World(
        orgs=("approved", "approved", "pending"),
        users=(OK(0, True, True), OK(0, True, True), OK(1, True, True), OK(2, True, True)),
        alliances=(AllianceSpec(True, frozenset({0})), AllianceSpec(False, frozenset({2}))),
        memberships={(0, 0): "left", (0, 1): "suspended", (1, 1): "active", (0, 2): "active"},
        notes=(_note(0, "RED", (0,), {1, 2, 3}, values={1}),
               _note(0, "GREEN", (0,), values={1}, word=WORDS[2]),
               _note(1, "AMBER", (0,), retracted=True, values={1}),
               _note(2, "AMBER", (1,), values={1}, created=3)),
        probe=("AMBER", 0, WORDS[2], 1)),
}


def _with_examples(test):
    for world in EXAMPLE_WORLDS.values():
        test = example(world=world)(test)
    return test


def _with_examples_probing_everyone(test):
    for world in EXAMPLE_WORLDS.values():
        test = example(world=world, sample=set(range(len(world.users))))(test)
    return test


# --- the reference model: DESIGN.md's table, in plain Python ------------------------------

class Model:
    def __init__(self, world: World):
        self.w = world

    def usable(self, u) -> bool:
        """Signed in for real: an active, verified user of a vetted organisation. Anyone else
        (and a platform admin without an organisation) reads as an anonymous visitor."""
        if u is None:
            return False
        spec = self.w.users[u]
        return spec.active and spec.verified and self.w.orgs[spec.org] == "approved"

    def active_in(self, org: int, alliance: int) -> bool:
        return self.w.memberships.get((alliance, org)) == "active"

    def may_read(self, u, i: int) -> bool:
        note = self.w.notes[i]
        if not self.usable(u):
            return (note.tlp == "CLEAR" and note.publish_public and not note.retracted
                    and any(self.w.alliances[a].publish_clear_allowed for a in note.audience))
        org = self.w.users[u].org
        own_org = self.w.users[note.author].org == org
        member = any(self.active_in(org, a) for a in note.audience)
        if note.tlp == "CLEAR":
            allowed = True
        elif note.tlp in ("GREEN", "AMBER", "AMBER+STRICT"):
            allowed = own_org or member
        elif note.tlp == "RED":
            allowed = note.author == u or (u in note.recipients and member)
        else:
            allowed = False
        if allowed and note.retracted:
            coordinator = any(u in self.w.alliances[a].coordinators and self.active_in(org, a)
                              for a in note.audience)
            allowed = own_org or coordinator
        return allowed

    def readable(self, u) -> set[int]:
        return {i for i in range(len(self.w.notes)) if self.may_read(u, i)}

    def values_of(self, i: int) -> set[str]:
        return {VALUES[v][1] for v in self.w.notes[i].values}

    def object_of(self, i: int):
        """Which STIX object note i holds a version of, besides its report."""
        note = self.w.notes[i]
        return None if note.slot is None else (self.w.users[note.author].org, note.slot)

    def history(self, u, i: int) -> set[tuple[str, int]]:
        """Versions listed for readable note i: its report, and every version of its
        indicator that a note the reader may read holds."""
        shown = {("report", i)}
        if self.object_of(i) is not None:
            shown |= {("indicator", j) for j in self.readable(u)
                      if self.object_of(j) == self.object_of(i)}
        return shown


# --- the world, as rows -------------------------------------------------------------------

@dataclass
class Built:
    users: list
    admin: object
    alliances: list
    notes: list
    comments: dict  # note index -> comment ids
    versions: dict  # ("report" | "indicator", note index) -> stix_objects.id


def marker(i: int) -> str:
    """A string that appears on a page only where note i is shown."""
    return f"qmark{i}zq"


def build(world: World) -> Built:
    reset_database()
    orgs = [factories.make_org(f"World Org {i}", status=status)
            for i, status in enumerate(world.orgs)]
    users = []
    for i, spec in enumerate(world.users):
        user = factories.make_user(orgs[spec.org], f"user{i}@org{spec.org}.example",
                                   verified=spec.verified)
        if not spec.active:
            user.deactivated_at = utcnow()
        users.append(user)
    admin = factories.make_admin("root@platform.example")
    alliances = [Alliance(name=f"World Alliance {i}", slug=f"world-{i}", join_policy="approval",
                          allowed_tlps=list(TLPS), default_tlp="AMBER",
                          publish_clear_allowed=spec.publish_clear_allowed,
                          created_by_id=users[0].id)
                 for i, spec in enumerate(world.alliances)]
    db.session.add_all(alliances)
    db.session.flush()
    for alliance, spec in zip(alliances, world.alliances, strict=True):
        db.session.add_all(Coordinator(alliance_id=alliance.id, user_id=users[u].id)
                           for u in sorted(spec.coordinators))
    notes = []
    for i, spec in enumerate(world.notes):
        author = users[spec.author]
        stamp = BASE_TIME + timedelta(minutes=spec.created)
        note = Note(report_id=f"report--{uuid.uuid4()}", organisation_id=author.organisation_id,
                    author_id=author.id, kind="incident", title=f"{marker(i)} {spec.word}",
                    description=f"Body of {marker(i)}.", labels=[spec.label], tlp=spec.tlp,
                    types=["report"], publish_public=spec.publish_public, created_at=stamp,
                    updated_at=stamp)
        if spec.retracted:
            note.retracted_at = stamp + timedelta(hours=1)
            note.retracted_by_id = author.id
            note.retraction_reason = "Withdrawn."
        note.audiences = [NoteAudience(alliance_id=alliances[a].id) for a in sorted(spec.audience)]
        note.recipients = [NoteRecipient(user_id=users[u].id) for u in sorted(spec.recipients)]
        db.session.add(note)
        notes.append(note)
    db.session.flush()
    comments, versions = {}, {}
    for i, (note, spec) in enumerate(zip(notes, world.notes, strict=True)):
        db.session.add_all(Observable(note_id=note.id, kind=VALUES[v][0], value=VALUES[v][1])
                           for v in sorted(spec.values))
        report = StixObject(stix_id=note.report_id, type="report", modified="2025-03-01T12:00:00Z",
                            organisation_id=note.organisation_id, first_note_id=note.id,
                            body={"type": "report", "id": note.report_id, "name": note.title},
                            body_hash=note.report_id)
        held = [report]
        if spec.slot is not None:
            org = world.users[spec.author].org
            stix_id = f"indicator--{uuid.uuid5(uuid.NAMESPACE_URL, f'org{org}/{spec.slot}')}"
            held.append(StixObject(
                stix_id=stix_id, type="indicator", modified=f"2025-03-01T12:{i:02d}:00.000Z",
                organisation_id=note.organisation_id, first_note_id=note.id, body_hash=stix_id,
                body={"type": "indicator", "id": stix_id, "name": f"Seen in {marker(i)}"}))
        db.session.add_all(held)
        db.session.flush()
        db.session.add_all(NoteObject(note_id=note.id, object_id=row.id) for row in held)
        db.session.flush()
        # As posting does: the alliance collections TAXII walks.
        collect_objects(note)
        versions[("report", i)] = report.id
        if spec.slot is not None:
            versions[("indicator", i)] = held[1].id
        # Comments, opinions and sightings in turn: each is a read path of its own.
        rows = [NoteComment(note_id=note.id, kind=RESPONSE_KINDS[(i + k) % 3],
                            author_id=users[u].id, organisation_id=users[u].organisation_id,
                            text=f"On {marker(i)}", stix={})
                for k, u in enumerate(spec.commenters)]
        db.session.add_all(rows)
        db.session.flush()
        comments[i] = {row.id for row in rows}
    db.session.commit()
    # Memberships last: whatever happened after posting is what counts at read time.
    for (a, o), state in sorted(world.memberships.items()):
        factories.add_member(alliances[a], orgs[o], state)
    return Built(users, admin, alliances, notes, comments, versions)


def principals(built: Built, model: Model):
    """(label, principal, model reader) for every user, the platform admin and anonymous."""
    yield "anonymous", Principal.anonymous(), None
    yield "Principal.of(None)", Principal.of(None), None
    yield "platform admin", Principal.of(built.admin), None
    for u, user in enumerate(built.users):
        yield f"user {u}", Principal.of(user), u


# --- the checks ---------------------------------------------------------------------------

def _ids(notes) -> set[int]:
    return {n.id for n in notes}


def _feed_pages(principal, limit, **filters) -> list[int]:
    """Every page of the feed, following the cursor."""
    ids, before = [], None
    for _ in range(50):
        notes, before = reading.feed(principal, limit=limit, before=before, **filters)
        ids += [n.id for n in notes]
        if before is None:
            return ids
    raise AssertionError("the feed cursor does not come to an end")


def check_principal(label, principal, reader, model: Model, built: Built, world: World):
    expected_ix = model.readable(reader)
    note_id = {i: n.id for i, n in enumerate(built.notes)}
    expected = {note_id[i] for i in expected_ix}

    def where(pred) -> set[int]:
        return {note_id[i] for i in expected_ix if pred(i)}

    assert _ids(db.session.scalars(readable_notes(principal))) == expected, label
    assert count_readable(principal) == len(expected), label
    for i, note in enumerate(built.notes):
        found = get_readable_note(principal, note.report_id)
        assert (found is not None) == (i in expected_ix), (label, f"note {i}")
        assert can_read(principal, note.id) == (i in expected_ix), (label, f"note {i}")

    # The feed (and, for anonymous, the Insights page and Atom feed, which are this call):
    # every page, in order, newest first with the id breaking ties, nothing twice.
    order = [note_id[i] for i in sorted(expected_ix, key=lambda i: (world.notes[i].created,
                                                                    note_id[i]), reverse=True)]
    for limit in (2, reading.FEED_PAGE):
        assert _feed_pages(principal, limit) == order, (label, f"feed limit {limit}")
    # Filters and search (one of each per example keeps it fast; the examples vary them).
    tlp, a, word, v = world.probe
    # Conditions put before the rule (readable_notes(p, *first)) only narrow what it allows.
    assert _ids(db.session.scalars(readable_notes(principal, Note.id > 0))) == expected, label
    assert _ids(db.session.scalars(readable_notes(principal, Note.tlp == tlp))) == where(
        lambda i: world.notes[i].tlp == tlp), (label, f"first {tlp}")
    _kind, value, typed = VALUES[v]
    assert set(_feed_pages(principal, 50, tlp=tlp)) == where(
        lambda i: world.notes[i].tlp == tlp), (label, tlp)
    assert set(_feed_pages(principal, 50, alliance_id=built.alliances[a].id)) == where(
        lambda i: a in world.notes[i].audience), (label, f"alliance {a}")
    assert set(_feed_pages(principal, 50, query=word)) == where(
        lambda i: word in (world.notes[i].word, world.notes[i].label)), (label, f"search {word}")
    assert set(_feed_pages(principal, 50, query=typed)) == where(
        lambda i: value in model.values_of(i)), (label, f"search {typed}")

    # "Has anyone I share with seen this?"
    for _kind, value, typed in VALUES:
        normalised, seen = reading.who_has_seen(principal, typed)
        assert normalised == value, (label, typed)
        want = set() if value in COMMON else where(
            lambda i, value=value: value in model.values_of(i))
        assert _ids(seen) == want, (label, f"who has seen {typed}")

    # Correlation hints, comments and version history of every note the principal reads.
    for i in expected_ix:
        note = get_readable_note(principal, built.notes[i].report_id)
        mine = model.values_of(i) - COMMON
        want = {note_id[j]: sorted(mine & model.values_of(j)) for j in expected_ix
                if j != i and mine & model.values_of(j)}
        got = {other.id: values for other, values in reading.correlated(principal, note)}
        assert got == want, (label, f"correlated with note {i}")
        assert {c.id for c in comments.comments_of(note)} == built.comments[i], (label, i)
        assert {row.id for row in reading.history(principal, note)} == {
            built.versions[key] for key in model.history(reader, i)}, (label, f"history {i}")


def check_counts_and_exports(label, principal, reader, model: Model, built: Built,
                             world: World) -> None:
    """The feed's counts (notes.listing.page_facts), asked about every note: a readable
    note's own observables and responses, nothing for one the principal may not read. The
    exports (notes.export): exactly the readable notes' reports and observables, labelled
    with the strictest TLP among them."""
    readable = model.readable(reader)
    facts = listing.page_facts(principal, built.notes)
    for i, note in enumerate(built.notes):
        kinds = Counter(RESPONSE_KINDS[(i + k) % 3]
                        for k in range(len(world.notes[i].commenters)))
        want = ((len(world.notes[i].values), kinds["comment"] + kinds["opinion"],
                 kinds["sighting"]) if i in readable else (0, 0, 0))
        got = facts[note.id]
        assert (got.observables, got.responses, got.sightings) == want, (label, f"counts {i}")
    level = max((world.notes[i].tlp for i in readable), key=TLPS.index, default="CLEAR")
    bundle = export.export(principal, "stix", {})
    assert bundle.tlp == level, (label, "export label")
    held = {o["id"] for o in orjson.loads("".join(bundle.chunks)).get("objects", [])
            if o["type"] == "report"}
    assert held == {built.notes[i].report_id for i in readable}, (label, "exported bundle")
    rows = "".join(export.export(principal, "csv", {}).chunks).splitlines()[2:]
    assert sorted(tuple(row.split(",")[:3]) for row in rows) == sorted(
        (built.notes[i].report_id, VALUES[v][0], VALUES[v][1])
        for i in readable for v in world.notes[i].values), (label, "exported observables")


def check_world(world: World) -> None:
    """Build the world and check every principal's every read path against the model."""
    assert COMMON <= observables.COMMON_VALUES  # the model's premise about the common list
    built = build(world)
    model = Model(world)
    checked = {}
    for label, principal, reader in principals(built, model):
        assert principal.is_anonymous == (not model.usable(reader)), label
        if principal in checked:  # the same principal (anonymous) reads the same notes
            assert model.readable(reader) == checked[principal], label
            continue
        check_principal(label, principal, reader, model, built, world)
        check_counts_and_exports(label, principal, reader, model, built, world)
        checked[principal] = model.readable(reader)


@SETTINGS
@given(world=worlds())
@_with_examples
def test_every_read_path_returns_exactly_what_the_model_allows(db, world):
    check_world(world)


def _former_in_model(world, u, i: int) -> bool:
    """Note i is retracted and the model lets u read it as if it were not. Anonymous
    visitors (u is None, or not a usable account) are nobody's former readers."""
    note = world.notes[i]
    if not note.retracted or u is None or not Model(world).usable(u):
        return False
    unretracted = replace(world, notes=tuple(
        replace(n, retracted=False) if j == i else n for j, n in enumerate(world.notes)))
    return Model(unretracted).may_read(u, i)


# --- the same over HTTP, for a sample of readers --------------------------------------------

def _markers_on(body: str, world: World) -> set[int]:
    return {i for i in range(len(world.notes)) if marker(i) in body}


def _correlated_in_model(model: Model, readable: set[int], i: int) -> set[int]:
    mine = model.values_of(i) - COMMON
    return {j for j in readable if j != i and mine & model.values_of(j)}


@settings(SETTINGS, max_examples=20)
@given(world=worlds(), sample=st.sets(st.integers(0, 11), min_size=1, max_size=3))
@_with_examples_probing_everyone
def test_pages_answer_exactly_what_the_model_allows(db, app, world, sample):
    """Note page, bundle download, feed, search and the public pages, over HTTP, for a sample
    of users (indexes wrap around the world's users) and an anonymous visitor."""
    built = build(world)
    model = Model(world)
    _tlp, _a, word, v = world.probe
    _kind, value, typed = VALUES[v]
    for u in sorted({n % len(world.users) for n in sample}):
        who = f"user {u}"
        client = app.test_client()
        factories.login(client, built.users[u])
        readable = model.readable(u)
        for i, note in enumerate(built.notes):
            page = client.get(f"/notes/{note.uuid}")
            bundle = client.get(f"/notes/{note.uuid}/bundle.json")
            if not model.usable(u):
                # Not a usable account: sent to sign in or to the status page, never shown.
                assert (page.status_code, bundle.status_code) == (302, 302), (who, i)
            elif i not in readable:
                # A retracted note its reader could read before is a tombstone (410), with
                # none of its content; to anyone else it does not exist (404).
                gone = 410 if _former_in_model(world, u, i) else 404
                assert (page.status_code, bundle.status_code) == (gone, gone), (who, i)
                if gone == 404:
                    assert marker(i) not in page.get_data(as_text=True)
                else:  # its title, and none of its STIX content
                    assert note.report_id not in page.get_data(as_text=True), (who, i)
            else:
                assert (page.status_code, bundle.status_code) == (200, 200), (who, i)
                # The note itself, its comments, and the readable notes that share a value.
                assert _markers_on(page.get_data(as_text=True), world) == (
                    {i} | _correlated_in_model(model, readable, i)), (who, i)
                assert _markers_on(bundle.get_data(as_text=True), world) <= {i}, (who, i)
                assert note.report_id in bundle.get_data(as_text=True)
        pages = {"/notes/": readable,
                 f"/notes/?q={word}": {i for i in readable
                                       if word in (world.notes[i].word, world.notes[i].label)},
                 f"/notes/?q={typed}": {i for i in readable if value in model.values_of(i)}}
        # The feed's exports hold the readable notes, over HTTP too.
        pages["/notes/export/bundle.json"] = readable
        pages[f"/notes/export/bundle.json?q={word}"] = pages[f"/notes/?q={word}"]
        for path, want in pages.items():
            response = client.get(path)
            if model.usable(u):
                assert response.status_code == 200, (who, path)
                assert _markers_on(response.get_data(as_text=True), world) == want, (who, path)
            else:
                assert response.status_code == 302, (who, path)

    anonymous = app.test_client()
    public = model.readable(None)
    for i, note in enumerate(built.notes):
        assert anonymous.get(f"/notes/{note.uuid}").status_code == 302
        response = anonymous.get(f"/insights/{note.uuid}")
        assert response.status_code == (200 if i in public else 404), ("/insights/", i)
        assert _markers_on(response.get_data(as_text=True), world) == ({i} & public)
    for path in ("/insights/", "/insights/feed.atom"):
        response = anonymous.get(path)
        assert response.status_code == 200, path
        assert _markers_on(response.get_data(as_text=True), world) == public, path


# --- the dashboards' charts: every figure counts only what the model lets its viewer read ----

DASHBOARD_NOW = BASE_TIME + timedelta(days=1)


def _figures(chart) -> dict:
    """{(category, series): value} of a chart, the zeros left out."""
    return {(label, s.label): s.values[i] for s in chart.series
            for i, label in enumerate(chart.labels) if s.values[i]}


def check_dashboard(label, principal, reader, model: Model, built: Built, world: World):
    readable = model.readable(reader)
    win = window(30, DASHBOARD_NOW)
    day = BASE_TIME.date().isoformat()
    assert _figures(dashboard.activity(principal, win)) == dict(
        Counter((day, world.notes[i].tlp) for i in readable)), (label, "activity")
    assert _figures(dashboard.top_observables(principal, win)) == dict(Counter(
        (f"{VALUES[v][1]} ({VALUES[v][0]})", "Notes")
        for i in readable for v in world.notes[i].values)), (label, "observables")
    for a, alliance in enumerate(built.alliances):
        mine = [i for i in readable if a in world.notes[i].audience]
        assert _figures(dashboard.tlp_mix(principal, alliance, win)) == dict(Counter(
            (f"TLP:{world.notes[i].tlp}", "Notes") for i in mine)), (label, "tlp mix", a)
        assert _figures(dashboard.posting_by_organisation(principal, alliance, win)) == dict(
            Counter((f"World Org {world.users[world.notes[i].author].org}", "Notes")
                    for i in mine)), (label, "posting", a)
    if reader is None or not model.usable(reader):
        assert dashboard.by_alliance(principal, win).labels == [], label
        return
    org = world.users[reader].org
    assert _figures(dashboard.by_alliance(principal, win)) == dict(Counter(
        (f"World Alliance {a}", world.notes[i].tlp) for i in readable
        for a in world.notes[i].audience if model.active_in(org, a))), (label, "alliances")
    own = [i for i in readable if world.users[world.notes[i].author].org == org]
    want = {}
    for i in own:
        kinds = [RESPONSE_KINDS[(i + k) % 3] for k in range(len(world.notes[i].commenters))]
        title = f"{built.notes[i].title} (TLP:{world.notes[i].tlp})"
        want[(title, "Responses")] = sum(k != "sighting" for k in kinds)
        want[(title, "Sightings")] = kinds.count("sighting")
    assert _figures(dashboard.own_notes(principal, win)) == {
        k: v for k, v in want.items() if v}, (label, "own notes")
    _kind, value, _typed = VALUES[world.probe[3]]
    assert _figures(dashboard.watch_hits(principal, built.users[reader].id, win)) == (
        {(f"{value} (value)", "Notes"): n} if (n := sum(
            value in model.values_of(i) for i in readable)) else {}), (label, "watch terms")


@settings(SETTINGS, max_examples=25)
@given(world=worlds())
@_with_examples
def test_every_dashboard_chart_counts_exactly_what_the_model_allows(db, app, world):
    """Activity (in all and per alliance), top observables, the organisation's notes with
    their responses, watch-term hits, and each alliance's TLP mix and posting per
    organisation, for every principal."""
    built = build(world)
    _kind, value, _typed = VALUES[world.probe[3]]
    db.session.add_all(WatchTerm(user_id=user.id, kind="value", value=value)
                       for user in built.users)
    db.session.commit()
    model = Model(world)
    with app.test_request_context():
        for label, principal, reader in principals(built, model):
            check_dashboard(label, principal, reader, model, built, world)
