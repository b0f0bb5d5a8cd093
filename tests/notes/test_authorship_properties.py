"""Who speaks for whom, as a property: random sequences of posts by several organisations
(new objects, newer versions, revocations, creators named, left out, forged or third-party),
with members removed and re-joined on the way, are checked after every step against a small
reference model of the rules in DESIGN.md ("Posting": authorship) and docs/posting.md's "Who
speaks for whom": which posts are accepted, and, per collection and object id, which creator
and which latest version TAXII serves.

The model is plain Python over the sequence; it does not import alliance.notes."""
import copy
import uuid
from dataclasses import dataclass, field

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from alliance.alliances.models import Membership
from alliance.core.errors import DomainError
from alliance.extensions import db
from alliance.notes import posting
from alliance.notes.models import SERVED_WITH
from alliance.stix.markings import marking_id, tlp2_objects
from alliance.taxii import reading as taxii_reading
from alliance.taxii import services as taxii
from alliance.taxii.filters import parse_filters
from tests import factories
from tests.sharing.helpers import reset_database

ORGS = 3            # posting organisations 0..2; a fourth only reads
ALLIANCES = {"x": (0, 1, 2), "y": (1, 2)}  # founding members
IDS = [f"indicator--{n:08d}-0000-4000-8000-000000000000" for n in (1, 2)]
THIRD_PARTY = "identity--00000000-0000-4000-8000-00000000abcd"  # no platform organisation
CREATED = "2024-01-01T00:00:00.000Z"
THIRD_PARTY_IDENTITY = {"type": "identity", "spec_version": "2.1", "id": THIRD_PARTY,
                        "created": CREATED, "modified": CREATED, "name": "A Vendor",
                        "identity_class": "organization"}
MODIFIED = ["2024-01-01T00:00:00.000Z", "2024-02-01T00:00:00.000Z",
            "2024-03-01T00:00:00.000Z"]
# An organisation's identity is made today: its versions are later.
IDENTITY_MODIFIED = ["2098-01-01T00:00:00.000Z", "2098-02-01T00:00:00.000Z",
                     "2098-03-01T00:00:00.000Z"]

SETTINGS = settings(max_examples=60, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@dataclass(frozen=True)
class Post:
    org: int
    alliance: str
    obj: int          # index into IDS
    version: int      # index into MODIFIED
    creator: str      # "none", "self", "org:<k>" or "third"
    revoked: bool


@dataclass(frozen=True)
class PostIdentity:
    """An identity object under organisation `whose`'s id, named as organisation `named`."""
    org: int
    whose: int
    named: int
    version: int


@dataclass(frozen=True)
class PostMarking:
    org: int
    level: str
    forged: bool


@dataclass(frozen=True)
class Membership_:
    org: int
    alliance: str
    active: bool


posts = st.builds(Post, org=st.integers(0, ORGS - 1), alliance=st.sampled_from(sorted(ALLIANCES)),
                  obj=st.integers(0, len(IDS) - 1), version=st.integers(0, len(MODIFIED) - 1),
                  creator=st.sampled_from(["none", "self", "third", "third", "none"]
                                          + [f"org:{k}" for k in range(ORGS)]),
                  revoked=st.booleans())
identities = st.builds(PostIdentity, org=st.integers(0, ORGS - 1),
                       whose=st.integers(0, ORGS - 1), named=st.integers(0, ORGS - 1),
                       version=st.integers(0, len(MODIFIED) - 1))
markings = st.builds(PostMarking, org=st.integers(0, ORGS - 1),
                     level=st.sampled_from(["CLEAR", "GREEN", "AMBER"]), forged=st.booleans())
moves = st.builds(Membership_, org=st.integers(0, ORGS - 1),
                  alliance=st.sampled_from(sorted(ALLIANCES)), active=st.booleans())
steps = st.lists(st.one_of(posts, posts, posts, identities, markings, moves), min_size=1,
                 max_size=10)


# --- the reference model --------------------------------------------------------------------

@dataclass
class Row:
    number: int
    stix_id: str
    modified: str
    org: int
    creator: str
    revoked: bool
    alliances: set = field(default_factory=set)  # where a note holds it


@dataclass
class Model:
    identities: dict  # org -> its identity id
    active: set = field(default_factory=set)  # (org, alliance)
    rows: list = field(default_factory=list)

    def visible(self, org: int) -> list[Row]:
        reach = {a for o, a in self.active if o == org}
        return [r for r in self.rows if r.org == org or r.alliances & reach]

    def post(self, step: Post) -> bool:
        """Whether the rules accept the post; the model's rows change as the platform's."""
        if (step.org, step.alliance) not in self.active:
            return False  # only to alliances the organisation is an active member of
        stix_id, modified = IDS[step.obj], MODIFIED[step.version]
        kind, _, other = step.creator.partition(":")
        if kind == "org" and int(other) != step.org:
            return False  # nobody speaks as another platform organisation
        seen = [r for r in self.visible(step.org) if r.stix_id == stix_id]
        filled = kind == "none"
        creator = {"self": self.identities[step.org], "third": THIRD_PARTY,
                   "org": self.identities[step.org]}.get(kind)
        if filled:  # the creator of what the poster re-shares, else the poster
            creator = seen[0].creator if seen else self.identities[step.org]
        same = [r for r in seen if r.modified == modified]
        if same:  # an identical version is linked; a different one conflicts
            match = next((r for r in same if (r.creator, r.revoked) == (creator, step.revoked)),
                         None)
            if match is None:
                return False
            match.alliances.add(step.alliance)
            return True
        every = [r for r in self.rows if r.stix_id == stix_id]
        first = every[0] if every else None
        if (first is None or first.org == step.org
                or (first.creator == THIRD_PARTY and creator == THIRD_PARTY)
                or (filled and any(r.org == first.org and r.modified == modified
                                   for r in every))):
            self.rows.append(Row(len(self.rows), stix_id, modified, step.org, creator,
                                 step.revoked, {step.alliance}))
            return True
        return False  # only the first poster adds versions of a platform organisation's object

    def post_identity(self, step: PostIdentity, alliance: str) -> bool:
        """Only an organisation's own identity, under its vetted name."""
        if (step.org, alliance) not in self.active or step.whose != step.org \
                or step.named != step.org:
            return False
        stix_id, modified = self.identities[step.org], IDENTITY_MODIFIED[step.version]
        same = [r for r in self.rows if r.stix_id == stix_id and r.modified == modified]
        if same:
            same[0].alliances.add(alliance)
        else:
            self.rows.append(Row(len(self.rows), stix_id, modified, step.org, None, False,
                                 {alliance}))
        return True

    def served(self, alliance: str, stix_id: str) -> tuple | None:
        """(creator, modified, revoked) of the version the collection serves as the latest."""
        held = [r for r in self.rows if r.stix_id == stix_id and alliance in r.alliances]
        if not held:
            return None

        def first_row(org):
            return min(r.number for r in self.rows if r.stix_id == stix_id and r.org == org)

        winner = min({r.org for r in held}, key=first_row)
        latest = max((r for r in held if r.org == winner), key=lambda r: r.modified)
        return latest.creator, latest.modified, latest.revoked


# --- the platform ---------------------------------------------------------------------------

def _body(step: Post, identities: dict) -> dict:
    obj = {"type": "indicator", "spec_version": "2.1", "id": IDS[step.obj], "created": CREATED,
           "modified": MODIFIED[step.version], "name": f"Indicator {step.obj}",
           "pattern": f"[domain-name:value = 'host{step.obj}.example']",
           "pattern_type": "stix", "valid_from": CREATED}
    kind, _, other = step.creator.partition(":")
    if kind == "self":
        obj["created_by_ref"] = identities[step.org]
    elif kind == "org":
        obj["created_by_ref"] = identities[int(other)]
    elif kind == "third":
        obj["created_by_ref"] = THIRD_PARTY
    if step.revoked:
        obj["revoked"] = True
    return obj


def _identity_body(step: PostIdentity, users: list) -> dict:
    whose = users[step.whose].organisation
    return dict(whose.stix_identity, modified=IDENTITY_MODIFIED[step.version],
                name=users[step.named].organisation.name)


def _marking_body(step: PostMarking) -> dict:
    obj = copy.deepcopy(tlp2_objects()[step.level])
    if step.forged:  # the same id, claiming to be TLP:CLEAR
        obj["name"] = "TLP:CLEAR" if step.level != "CLEAR" else "TLP:RED"
    return obj


@SETTINGS
@given(sequence=steps)
# A third-party object's copy beside its first poster's versions, in one collection and alone
# in another; a former member's revocation after re-joining.
@example(sequence=[Post(0, "x", 0, 0, "third", False), Post(1, "x", 0, 2, "third", True),
                   Post(2, "y", 0, 1, "third", True), Post(1, "y", 0, 2, "none", False)])
@example(sequence=[Post(1, "y", 1, 0, "none", False), Membership_(1, "y", False),
                   Post(1, "x", 1, 1, "none", True), Post(2, "y", 1, 1, "org:1", True),
                   Membership_(1, "y", True), Post(2, "x", 1, 2, "self", True),
                   Post(0, "x", 1, 0, "none", False)])
def test_served_creators_and_latest_versions_follow_the_rules(app, sequence):
    reset_database()
    users = [factories.make_user(factories.make_org(f"Poster {i}"), f"p{i}@org{i}.example",
                                 role="org_admin") for i in range(ORGS)]
    reader = factories.make_user(factories.make_org("Reader"), "r@reader.example")
    alliances = {}
    model = Model({i: u.organisation.stix_id for i, u in enumerate(users)})
    for slug, members in ALLIANCES.items():
        alliances[slug] = factories.make_alliance(users[members[0]], slug=slug, name=slug)
        for org in members[1:]:
            factories.add_member(alliances[slug], users[org].organisation)
        factories.add_member(alliances[slug], reader.organisation)
        model.active |= {(org, slug) for org in members}
    db.session.commit()
    collections = {slug: taxii.get_collection(reader, taxii.alliance_collection_id(a.id))
                   for slug, a in alliances.items()}

    for step in sequence:
        if isinstance(step, Membership_):
            db.session.execute(Membership.__table__.update().where(
                Membership.organisation_id == users[step.org].organisation_id,
                Membership.alliance_id == alliances[step.alliance].id).values(
                state="active" if step.active else "removed"))
            db.session.commit()
            if any(m.organisation_id == users[step.org].organisation_id
                   for m in db.session.scalars(db.select(Membership).where(
                       Membership.alliance_id == alliances[step.alliance].id))):
                (model.active.add if step.active else model.active.discard)(
                    (step.org, step.alliance))
            continue
        alliance = getattr(step, "alliance", "x")
        if isinstance(step, PostIdentity):
            expected = model.post_identity(step, alliance)
            objects = [_identity_body(step, users)]
        elif isinstance(step, PostMarking):
            expected = (step.org, alliance) in model.active and not step.forged
            objects = [_marking_body(step), dict(_body(Post(step.org, alliance, 0, 0, "self",
                                                             False), model.identities),
                                                  id=f"indicator--{uuid.uuid4()}",
                                                  object_marking_refs=[marking_id(step.level)])]
        else:
            expected = model.post(step)
            objects = [_body(step, model.identities)] + (
                [THIRD_PARTY_IDENTITY] if step.creator == "third" else [])
        try:
            posting.post_note(users[step.org], posting.NoteDraft(
                title="Step", tlp="AMBER", alliance_ids=[alliances[alliance].id], objects=objects))
            accepted = True
        except DomainError:
            db.session.rollback()
            accepted = False
        assert accepted == expected, (step, model.rows)

        # What is served under an official TLP id is the official object.
        for collection in collections.values():
            for level, official in tlp2_objects().items():
                result = taxii_reading.page(reader, 0, collection, parse_filters(
                    MultiDict({"match[id]": official["id"]})), None, None)
                assert all(r.body == official for r in result.rows), level

        for slug, collection in collections.items():
            for stix_id in IDS + list(model.identities.values()):
                result = taxii_reading.page(reader, 0, collection, parse_filters(
                    MultiDict({"match[id]": stix_id})), None, None)
                got = [(r.body.get("created_by_ref"), r.body["modified"],
                        r.body.get("revoked", False)) for r in result.rows
                       if r.scope != SERVED_WITH]  # the platform's, tests/taxii/test_served_with
                want = model.served(slug, stix_id)
                assert got == ([want] if want else []), (slug, stix_id, sequence, model.rows)
