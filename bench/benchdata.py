"""Realistic data at scale for benchmarks and query-plan tests: generate(), and the
`bench-data` command that runs it (not an app command: tests/bench and the benchmarks
register it where they use it; by hand, `flask --app bench.benchdata bench-data --help`).

generate() fills the database with organisations, users, alliances, memberships in every
state, coordinators, watch terms and notes — mixed TLPs (RED with named recipients),
audiences over several alliances, observables and indicators, notes edited into several
versions, new versions of earlier indicators, a few retracted notes — and writes exactly the
rows the app itself writes for them (alliance.notes.posting.post_note, editing.edit_note,
retract_note): the note, its audience and recipients, its STIX report and objects (bodies,
hashes, date added), the note-object links, the normalised observables, the facet rows, the
search index (SQLite: the FTS5 triggers fire on insert; PostgreSQL: the GIN expression index)
and the audit events. The read rule, the feed, search, correlation, TAXII and digests then
work on it as on posted data (tests/bench/test_bench_data.py checks that). For the read-path
benchmark (bench/paths.py) and the query-plan tests it can also make notes of 1,000 objects
the reader can read, a value many notes share (SHARED_VALUE) and rare words (Plan.large_notes,
shared_value_notes, rare_words; off by default, when the data is the same as without them).

Speed: the small tables go through the ORM; the big ones are written in chunks, with COPY
(psycopg 3) on PostgreSQL and executemany in one transaction on SQLite. Row ids are reserved
up front (PostgreSQL: from the tables' sequences, so concurrent writers cannot collide), so no
row has to be read back.

Deterministic for a seed, apart from the time it runs at (notes end "now")."""
import hashlib
import json
import random
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import click
import orjson
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import JSON, func, select, text

from alliance import create_app as create_alliance_app
from alliance.alliances.models import Alliance, Coordinator, Membership
from alliance.auth.models import User
from alliance.core.models import utcnow
from alliance.core.vocab import policy_tag_choices, sector_choices
from alliance.digests.models import WatchTerm
from alliance.extensions import db
from alliance.notes.models import (
    Note,
    NoteObject,
    facet_rows,
)
from alliance.notes.storage import hash_body, insert_rows
from alliance.orgs.models import Organisation
from alliance.orgs.services import build_identity
from alliance.stix import observables
from alliance.stix.markings import marking_id
from alliance.taxii.collections import collect_every_note

# STIX 2.1's namespace for deterministic SCO ids (uuid5 over the id-contributing properties).
SCO_NAMESPACE = uuid.UUID("00abedb4-aa42-466c-9c01-fed23315a9b7")
TLP_WEIGHTS = (("CLEAR", 15), ("GREEN", 35), ("AMBER", 28), ("AMBER+STRICT", 10), ("RED", 12))
# Membership states an organisation may be in after having been active (it posted then).
ONCE_ACTIVE = ("active", "suspended", "left", "removed")
STATE_WEIGHTS = (("active", 80), ("suspended", 5), ("left", 6), ("removed", 2),
                 ("requested", 4), ("invited", 2), ("rejected", 1))
KIND_WEIGHTS = (("incident", 40), ("indicators", 30), ("analysis", 15), ("bundle", 15))
REPORT_TYPES = {"incident": "threat-report", "indicators": "indicator",
                "analysis": "threat-report"}
ADJECTIVES = ("kestrel", "lantern", "meridian", "cobalt", "juniper", "granite", "harbour",
              "saffron", "tundra", "velvet", "quartz", "ember", "falcon", "orchid", "nimbus")
THREATS = ("phishing", "ransomware", "botnet", "ddos", "espionage", "wiper", "credential",
           "supply-chain", "skimming", "disinformation", "intrusion", "extortion")
TARGETS = ("operators", "ministries", "hospitals", "banks", "ports", "universities",
           "municipalities", "telecoms", "newsrooms", "grids")
LABELS = ("apt", "crimeware", "hacktivism", "opportunistic", "targeted", "state-sponsored")
COUNTRIES = ("DE", "FR", "IN", "US", "GB", "NL", "EE", "SG", "JP", "BR", "KE", "ZA", "PL",
             "IT", "ES", "SE", "FI", "AU", "CA", "MX", "NG", "ID", "KR", "UA", "LT", "LV")
TECHNIQUES = ("T1566", "T1566.001", "T1190", "T1059", "T1078", "T1486", "T1498", "T1071",
              "T1105", "T1027", "T1110", "T1204")
MALWARE = ("lockbit", "emotet", "qakbot", "icedid", "cobaltstrike", "sliver", "mirai",
           "agenttesla", "redline", "plugx")
CHUNK = 2000  # notes per batch of writes (and per progress update)
# A value many notes share (Plan.shared_value_notes), from the documentation range of
# RFC 5737 (the pool's values are in 198.18.0.0/15): no pool value is ever the same.
SHARED_VALUE = "192.0.2.77"
RARE_WORD_NOTES = 5


def rare_word(k: int) -> str:
    """The k-th invented word of Plan.rare_words: one search token, in RARE_WORD_NOTES
    notes whatever their number."""
    return f"{ADJECTIVES[k % len(ADJECTIVES)]}{k:03d}q"


def _spread(count: int, total: int) -> dict[int, int]:
    """`count` note positions spread evenly over `total` notes: position -> its rank."""
    count = min(count, total)
    return {k * total // count: k for k in range(count)} if count > 0 else {}


@dataclass
class Plan:
    notes: int
    orgs: int
    alliances: int
    seed: int = 1
    users_per_org: int = 4
    objects_per_note: float = 10.0  # mean, the report included
    days: int = 365  # notes are spread over this many days, ending now
    password: str = "bench-password-2719"  # noqa: S105 (benchmark accounts, refused in production)
    # For bench/paths.py (all off by default; the rest of the data is the same either way):
    large_notes: int = 0  # notes of large_note_objects objects, GREEN, in the reader's
    large_note_objects: int = 1000  # first alliance, by another organisation active in it
    shared_value_notes: int = 0  # notes that also hold an indicator of SHARED_VALUE
    rare_words: int = 0  # invented words (rare_word(k)), each in RARE_WORD_NOTES descriptions


@dataclass
class _World:
    """The small tables, as created, and what the note generator needs to know of them."""
    orgs: list = field(default_factory=list)  # Organisation
    users: dict = field(default_factory=dict)  # org id -> [User]
    alliances: list = field(default_factory=list)
    states: dict = field(default_factory=dict)  # (alliance id, org id) -> state
    authors: list = field(default_factory=list)  # org ids that may have posted
    reader: User | None = None
    reader_alliances: list = field(default_factory=list)


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def _weighted(rng: random.Random, pairs) -> str:
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]


# --- writing rows in bulk -----------------------------------------------------------------

class _Writer:
    """Bulk rows into one table at a time, in the session's transaction, with the app's bulk
    writer (alliance.notes.storage.insert_rows: COPY on PostgreSQL, executemany on SQLite),
    into ids reserved up front. Values are given as the app gives them, but JSON already
    serialised (a stored body is hashed as the text stored)."""

    def __init__(self):
        self.conn = db.session.connection()
        self.pg = self.conn.dialect.name == "postgresql"
        self._next: dict[str, int] = {}

    def reserve(self, table: str, count: int) -> list[int]:
        """`count` fresh ids for a table's integer primary key."""
        if count <= 0:
            return []
        if self.pg:
            rows = self.conn.execute(text(
                "SELECT nextval(pg_get_serial_sequence(:t, 'id')) "
                "FROM generate_series(1, :n)"), {"t": table, "n": count}).scalars().all()
            return sorted(rows)
        if table not in self._next:
            # SQLite: one writer at a time, and this transaction holds the write lock from
            # its first insert on; max(id) + 1 is what SQLite itself would assign.
            self._next[table] = self.conn.execute(text(
                f"SELECT coalesce(max(id), 0) + 1 FROM {table}")).scalar()  # noqa: S608 (ours)
        start = self._next[table]
        self._next[table] += count
        return list(range(start, start + count))

    def write(self, table: str, columns: tuple, rows: list[tuple]) -> None:
        target = db.metadata.tables[table]
        insert_rows(target, columns, rows, processed=tuple(
            name for name in columns if isinstance(target.c[name].type, JSON)))


def _utc(at: datetime) -> datetime:
    """In UTC (a UTCDateTime column refuses naive datetimes)."""
    return at.astimezone(UTC)


def _json(value) -> str:
    return orjson.dumps(value).decode()


# --- the small tables ---------------------------------------------------------------------

def _make_world(plan: Plan, rng: random.Random, tag: str) -> _World:
    from alliance.auth.services import hash_password

    world = _World()
    password_hash = hash_password(plan.password)
    now = utcnow()
    sectors = [s for s, _ in sector_choices()]
    for i in range(plan.orgs):
        # The first organisation (the benchmark's reader) is always vetted.
        status = "approved" if i == 0 or rng.random() > 0.05 else rng.choice(
            ("pending", "rejected"))
        org = Organisation(name=f"Bench Org {tag}-{i:04d}", slug=f"bench-{tag}-{i:04d}",
                           country=rng.choice(COUNTRIES), sectors=rng.sample(sectors, 2),
                           status=status,
                           stix_id=f"identity--{uuid.UUID(int=rng.getrandbits(128), version=4)}",
                           vetted_at=now if status != "pending" else None)
        org.stix_identity = build_identity(org)
        world.orgs.append(org)
    db.session.add_all(world.orgs)
    db.session.flush()
    for i, org in enumerate(world.orgs):
        people = []
        for j in range(plan.users_per_org):
            odd = i != 0 or j != 0  # the reader is an active, verified org admin
            user = User(email=f"user{j}@bench-{tag}-{i:04d}.example", name=f"Analyst {i}-{j}",
                        role="org_admin" if j == 0 else "member", organisation=org,
                        password_hash=password_hash,
                        email_verified_at=None if odd and rng.random() < 0.03 else now,
                        deactivated_at=now if odd and rng.random() < 0.03 else None)
            people.append(user)
        world.users[org.id] = people
        db.session.add_all(people)
    db.session.flush()
    approved = [o for o in world.orgs if o.status == "approved"]
    for k in range(plan.alliances):
        founder_org = approved[(k + 1) % len(approved)] if len(approved) > 1 else approved[0]
        founder = world.users[founder_org.id][0]
        alliance = Alliance(name=f"Bench Alliance {tag}-{k:03d}", slug=f"bench-{tag}-a{k:03d}",
                            description="Generated for benchmarks.", charter="Share responsibly.",
                            policy_tags=[], join_policy=rng.choice(("open", "approval", "invite")),
                            allowed_tlps=[t for t, _ in TLP_WEIGHTS], default_tlp="AMBER",
                            publish_clear_allowed=k % 3 == 0, created_by_id=founder.id)
        world.alliances.append(alliance)
        db.session.add(alliance)
        db.session.flush()
        world.states[(alliance.id, founder_org.id)] = "active"
        db.session.add(Coordinator(alliance_id=alliance.id, user_id=founder.id))
        if rng.random() < 0.4 and len(world.users[founder_org.id]) > 1:
            db.session.add(Coordinator(alliance_id=alliance.id,
                                       user_id=world.users[founder_org.id][1].id))
    # The reader's organisation: active in (at most) 5 alliances, nothing else.
    reader_org = world.orgs[0]
    world.reader = world.users[reader_org.id][0]
    world.reader_alliances = world.alliances[:5]
    for alliance in world.reader_alliances:
        world.states[(alliance.id, reader_org.id)] = "active"
    founded = set(world.states)
    for org in world.orgs[1:]:
        count = min(plan.alliances, rng.randint(2, 8))
        for alliance in rng.sample(world.alliances, count):
            world.states.setdefault((alliance.id, org.id), _weighted(rng, STATE_WEIGHTS))
    # Even a small world has organisations that left, were suspended or removed.
    movable = sorted(k for k, state in world.states.items() if k not in founded
                     and state == "active")
    for state in ("left", "suspended", "removed"):
        if state not in world.states.values() and len(movable) > 3:
            world.states[movable.pop(rng.randrange(len(movable)))] = state
    db.session.add_all(
        Membership(alliance_id=a, organisation_id=o, state=state,
                   charter_accepted_at=now if state in ONCE_ACTIVE else None)
        for (a, o), state in sorted(world.states.items()))
    db.session.flush()
    world.authors = sorted({o for (_a, o), s in world.states.items() if s in ONCE_ACTIVE
                            and next(x for x in world.orgs if x.id == o).status == "approved"})
    return world


# --- notes --------------------------------------------------------------------------------

class _Pool:
    """Observable values with a skewed popularity, so that notes share values (correlation)."""

    def __init__(self, rng: random.Random, size: int, tag: str):
        self.rng, self.size, self.tag = rng, size, tag

    def pick(self) -> tuple[str, str]:
        n = int(self.size * self.rng.random() ** 2)
        kind = ("ipv4", "domain", "sha256", "url")[n % 4]
        if kind == "ipv4":  # 198.18.0.0/15, the benchmarking range (RFC 2544)
            return kind, f"198.{18 + (n >> 16) % 2}.{(n >> 8) % 256}.{n % 256}"
        if kind == "domain":
            return kind, f"{ADJECTIVES[n % len(ADJECTIVES)]}-{n}.{self.tag}.example"
        if kind == "sha256":
            return kind, hashlib.sha256(f"{self.tag}/{n}".encode()).hexdigest()
        return kind, f"http://{THREATS[n % len(THREATS)]}-{n}.{self.tag}.example/login"


class _Notes:
    """Builds the rows of notes, chunk by chunk."""

    def __init__(self, plan: Plan, rng: random.Random, world: _World, tag: str):
        self.plan, self.rng, self.world, self.tag = plan, rng, world, tag
        self.pool = _Pool(rng, max(200, plan.notes * 3), tag)
        self.sectors = [s for s, _ in sector_choices()]
        self.tags = [t for t, _ in policy_tag_choices()]
        self.end = utcnow().replace(microsecond=0)
        self.start = self.end - timedelta(days=plan.days)
        self.step = (self.end - self.start).total_seconds() / max(1, plan.notes)
        self.stored_sco: dict[tuple[int, str], int] = {}  # (org id, stix id) -> row id
        self.last_indicator: dict[int, dict] = {}  # org id -> a body it may version
        self.orgs = {o.id: o for o in world.orgs}
        self.alliance_ids = [a.id for a in world.alliances]
        self.totals = {"notes": 0, "objects": 0, "versions": 0, "retracted": 0, "red": 0}
        # bench/paths.py's notes (Plan.large_notes, shared_value_notes, rare_words).
        self.large = _spread(plan.large_notes, plan.notes)
        self.shared = _spread(plan.shared_value_notes, plan.notes)
        # Offset by one: the first note is neither large nor rare as well.
        self.rare = {i + 1: k for i, k in _spread(plan.rare_words * RARE_WORD_NOTES,
                                                 max(1, plan.notes - 1)).items()}
        self.large_alliance = world.reader_alliances[0].id if world.reader_alliances else None
        self.large_org = next((o for o in world.authors if o != world.orgs[0].id
                               and world.states.get((self.large_alliance, o)) == "active"),
                              world.orgs[0].id)
        self.large_report_ids: list[str] = []

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _audience(self, org_id: int) -> list[int]:
        once = [a for a in self.alliance_ids if self.world.states.get((a, org_id)) in ONCE_ACTIVE]
        size = min(len(once), self.rng.choices((1, 2, 3), weights=(70, 20, 10))[0])
        return sorted(self.rng.sample(once, size))

    def _recipients(self, author: User, audience: list[int]) -> list[int]:
        orgs = [o for o in self.world.authors
                if any(self.world.states.get((a, o)) in ONCE_ACTIVE for a in audience)]
        people = [u.id for o in orgs for u in self.world.users[o]
                  if u.email_verified_at is not None and u.id != author.id]
        return sorted(self.rng.sample(people, min(len(people), self.rng.randint(1, 3))))

    def _objects(self, kind: str, count: int, base: dict) -> list[dict]:
        """`count` STIX objects for a note of this kind (SCOs carry no marking: the same SCO
        posted again is the same stored version)."""
        rng, found = self.rng, []
        indicators = []

        def indicator():
            value_kind, value = self.pool.pick()
            obj = {"type": "indicator", "id": f"indicator--{self._uuid()}", **base,
                   "name": value, "indicator_types": ["malicious-activity"],
                   "pattern": observables.pattern_for(value_kind, value),
                   "pattern_type": "stix", "valid_from": base["created"]}
            indicators.append(obj)
            return obj

        def sco():
            value_kind, value = self.pool.pick()
            stix_type = {"ipv4": "ipv4-addr", "domain": "domain-name"}.get(value_kind)
            if stix_type is None:
                return indicator()
            sco_id = uuid.uuid5(SCO_NAMESPACE, orjson.dumps({"value": value}).decode())
            return {"type": stix_type, "spec_version": "2.1", "id": f"{stix_type}--{sco_id}",
                    "value": value}

        head = []
        if kind == "incident":
            technique = rng.choice(TECHNIQUES)
            head = [{"type": "incident", "id": f"incident--{self._uuid()}", **base,
                     "name": f"{rng.choice(THREATS).capitalize()} incident"},
                    {"type": "attack-pattern", "id": f"attack-pattern--{self._uuid()}", **base,
                     "name": technique, "external_references": [
                         {"source_name": "mitre-attack", "external_id": technique}]}]
        elif kind == "analysis":
            cve = f"CVE-2024-{rng.randint(1000, 1000 + self.plan.notes // 10 + 50):05d}"
            head = [{"type": "vulnerability", "id": f"vulnerability--{self._uuid()}", **base,
                     "name": cve, "external_references": [
                         {"source_name": "cve", "external_id": cve}]}]
        elif kind == "bundle":
            head = [{"type": "malware", "id": f"malware--{self._uuid()}", **base,
                     "name": rng.choice(MALWARE), "is_family": True}]
        found += head[:count]
        while len(found) < count:
            roll = rng.random()
            if kind == "incident" and roll < 0.3:
                found.append(sco())
            elif head and indicators and roll > 0.8:
                target = head[0]
                found.append({"type": "relationship", "id": f"relationship--{self._uuid()}",
                              **base, "relationship_type":
                              "indicates" if target["type"] == "malware" else "related-to",
                              "source_ref": rng.choice(indicators)["id"],
                              "target_ref": target["id"]})
            else:
                found.append(indicator())
        # The same SCO twice in one note would be a duplicate id in one bundle.
        seen, unique = set(), []
        for obj in found:
            if obj["id"] not in seen:
                seen.add(obj["id"])
                unique.append(obj)
        return unique

    def chunk(self, first: int, count: int, writer: _Writer, note_ids: list[int]) -> None:
        plan, rng = self.plan, self.rng
        notes, audiences, recipients, objects, links, found, facets, audit = \
            [], [], [], [], [], [], [], []
        bodies = []  # (note index in chunk, body, at) for stix_objects rows still to number
        plans = []
        for n in range(count):
            i = first + n
            note_id = note_ids[n]
            org_id = self.world.authors[rng.randrange(len(self.world.authors))]
            org = self.orgs[org_id]
            author = rng.choice([u for u in self.world.users[org_id]
                                 if u.email_verified_at is not None])
            at = self.start + timedelta(seconds=int(i * self.step))
            tlp = _weighted(rng, TLP_WEIGHTS)
            audience = self._audience(org_id)
            red = self._recipients(author, audience) if tlp == "RED" else []
            if tlp == "RED" and not red:
                tlp = "AMBER"
            kind = _weighted(rng, KIND_WEIGHTS)
            size = max(1, min(int(plan.objects_per_note * 5),
                              round(rng.expovariate(1 / max(0.5, plan.objects_per_note - 1)))))
            if i in self.large:  # a note the reader can read, of 1,000 objects
                org_id, tlp, red, kind = self.large_org, "GREEN", [], "indicators"
                org = self.orgs[org_id]
                author = next(u for u in self.world.users[org_id]
                              if u.email_verified_at is not None)
                audience, size = [self.large_alliance], plan.large_note_objects
            stamp = _stamp(at)
            base = {"spec_version": "2.1", "created": stamp, "modified": stamp,
                    "created_by_ref": org.stix_id, "object_marking_refs": [marking_id(tlp)]}
            objs = self._objects(kind, size, base)
            if i in self.shared:
                objs.append({"type": "indicator", "id": f"indicator--{self._uuid()}", **base,
                             "name": SHARED_VALUE, "indicator_types": ["malicious-activity"],
                             "pattern": observables.pattern_for("ipv4", SHARED_VALUE),
                             "pattern_type": "stix", "valid_from": stamp})
            if rng.random() < 0.04 and org_id in self.last_indicator:
                old = self.last_indicator.pop(org_id)
                if old["modified"] < stamp:
                    objs.append(dict(old, modified=stamp, confidence=rng.randint(10, 90),
                                     object_marking_refs=[marking_id(tlp)]))
            for obj in objs:
                if obj["type"] == "indicator" and rng.random() < 0.2:
                    self.last_indicator[org_id] = obj
            title = (f"{rng.choice(ADJECTIVES).capitalize()} {rng.choice(THREATS)} wave "
                     f"against {rng.choice(TARGETS)}")
            description = (f"Analysts of {org.name} saw {rng.choice(THREATS)} activity "
                           f"({len(objs)} objects) reported on {at:%d %B %Y}.")
            if i in self.rare:
                description += f" Tracked as {rare_word(self.rare[i] % plan.rare_words)}."
            labels = sorted(set(rng.sample(LABELS, rng.randint(0, 2))))
            sectors = sorted(set(rng.sample(self.sectors, rng.randint(0, 2))))
            countries = sorted(set(rng.sample(COUNTRIES, rng.randint(0, 2))))
            tags = sorted(set(rng.sample(self.tags, rng.randint(0 if kind != "analysis" else 1,
                                                                 2))))
            types = sorted({o["type"] for o in objs} | {"report"})
            edits = rng.choice((1, 2)) if rng.random() < 0.08 else 0
            # bench/paths.py's notes (large, holding the shared value) are never retracted.
            retracted = at + timedelta(hours=2) if rng.random() < 0.01 and not (
                i in self.large or i in self.shared) else None
            public = (tlp == "CLEAR" and rng.random() < 0.5 and any(
                self.world.alliances[self.alliance_ids.index(a)].publish_clear_allowed
                for a in audience))
            report_id = f"report--{self._uuid()}"
            if i in self.large:
                self.large_report_ids.append(report_id)
            versions = []  # (report body, date added)
            for v in range(edits + 1):
                edited_at = at + timedelta(hours=v * 6)
                name = title if v == 0 else f"{title} (update {v})"
                report = {"type": "report", "spec_version": "2.1", "id": report_id,
                          "created": stamp, "modified": _stamp(edited_at), "name": name,
                          "description": description, "published": stamp,
                          "report_types": [REPORT_TYPES.get(kind, "threat-report")],
                          "object_refs": sorted({o["id"] for o in objs}) or [org.stix_id],
                          "created_by_ref": org.stix_id,
                          "object_marking_refs": [marking_id(tlp)]}
                if labels:
                    report["labels"] = labels
                versions.append((report, edited_at))
            final_title = versions[-1][0]["name"]
            updated = versions[-1][1]
            notes.append((note_id, report_id, org_id, author.id, kind, final_title, description,
                          tlp, _json(tags), _json(sectors), _json(countries), _json(labels),
                          _json(types), public, edits + 1, _utc(at), _utc(updated),
                          _utc(retracted) if retracted else None,
                          author.id if retracted else None,
                          "Withdrawn by the author." if retracted else None))
            audiences += [(note_id, a) for a in audience]
            recipients += [(note_id, u) for u in red]
            for kind_value in sorted({hit for o in objs for hit in observables.extract(o)}):
                found.append((note_id, *kind_value))
            facets += [(r["facet"], r["value"], r["note_id"]) for r in facet_rows(
                note_id, types=types, sectors=sectors, countries=countries, policy_tags=tags)]
            audit.append(("note.posted", author.id, note_id, org_id, {"objects": len(objs),
                                                                        "warnings": []}, at))
            for v in range(1, edits + 1):
                audit.append(("note.edited", author.id, note_id, org_id,
                              {"version": v + 1, "changed": ["title"]}, versions[v][1]))
            if retracted:
                audit.append(("note.retracted", author.id, note_id, org_id, {}, retracted))
            plans.append((note_id, org_id, at, objs, versions))
            self.totals["notes"] += 1
            self.totals["versions"] += edits
            self.totals["retracted"] += retracted is not None
            self.totals["red"] += tlp == "RED"
        # Number the new object versions; an SCO the organisation stored before (or earlier
        # in this chunk) is linked, as post_note links an identical stored version.
        pending, later = {}, []  # (org id, stix id) -> index in bodies; links to resolve
        for note_id, org_id, at, objs, versions in plans:
            for report, added in versions[:-1]:
                bodies.append((note_id, org_id, report, added, None))
            bodies.append((note_id, org_id, versions[-1][0], versions[-1][1], len(versions)))
            for obj in objs:
                key = (org_id, obj["id"])
                if "modified" not in obj:
                    if key in self.stored_sco:
                        links.append((note_id, self.stored_sco[key], 1))
                        continue
                    if key in pending:
                        later.append((note_id, pending[key]))
                        continue
                    pending[key] = len(bodies)
                bodies.append((note_id, org_id, obj, at, 1))
        ids = writer.reserve("stix_objects", len(bodies))
        for row_id, (note_id, org_id, body, added, version) in zip(ids, bodies, strict=True):
            text = _json(body)
            objects.append((row_id, body["id"], body["type"],
                            body.get("modified") or body.get("created") or "", org_id,
                            note_id, text, hash_body(body, text), _utc(added)))
            if version is not None:
                links.append((note_id, row_id, version))
            if "modified" not in body:
                self.stored_sco[(org_id, body["id"])] = row_id
        links += [(note_id, ids[index], 1) for note_id, index in later]
        self.totals["objects"] += len(objects)
        writer.write("notes", ("id", "report_id", "organisation_id", "author_id", "kind",
                               "title", "description", "tlp", "policy_tags", "sectors",
                               "countries", "labels", "types", "publish_public", "version",
                               "created_at", "updated_at", "retracted_at", "retracted_by_id",
                               "retraction_reason"), notes)
        writer.write("note_audiences", ("note_id", "alliance_id"), audiences)
        writer.write("note_recipients", ("note_id", "user_id"), recipients)
        writer.write("stix_objects", ("id", "stix_id", "type", "modified", "organisation_id",
                                      "first_note_id", "body", "body_hash", "date_added"),
                     objects)
        writer.write("note_objects", ("note_id", "object_id", "note_version"), links)
        writer.write("observables", ("id", "note_id", "kind", "value"),
                     [(i, *row) for i, row in zip(writer.reserve("observables", len(found)),
                                                  found, strict=True)])
        writer.write("note_facets", ("facet", "value", "note_id"), facets)
        writer.write("audit_events", ("id", "created_at", "actor_id", "action", "target_type",
                                      "target_id", "target_label", "organisation_id",
                                      "details"),
                     [(i, _utc(when), actor, action, "note", str(note_id), f"note #{note_id}",
                       org_id, _json(details))
                      for i, (action, actor, note_id, org_id, details, when) in zip(
                          writer.reserve("audit_events", len(audit)), audit, strict=True)])


def _note_ids(writer: _Writer, count: int, first_row: dict | None) -> list[int]:
    """Ids for `count` new notes. PostgreSQL: from the sequence. SQLite: the first note goes
    in through the ORM (SQLite assigns it max + 1); the rest follow it, in this transaction."""
    if writer.pg:
        return writer.reserve("notes", count)
    placeholder = Note(**first_row)
    db.session.add(placeholder)
    db.session.flush()
    first = placeholder.id
    # The placeholder only fixed the id: the generated row replaces it (the search trigger
    # follows the delete).
    db.session.delete(placeholder)
    db.session.flush()
    return list(range(first, first + count))


# Notes per statement that fills the TAXII collections.
COLLECT_NOTES = 250


def _collect(note_ids: list[int]) -> None:
    """The TAXII collections (alliances' and organisations') of what these notes hold, as
    post_note fills them for one note: set-based statements, COLLECT_NOTES notes each. Each
    row's date starts from its collection's latest date, an index probe that passes over the
    rows the same statement inserted before it (not visible to it yet): one statement for
    every note of a run was quadratic (20,000 notes on PostgreSQL: over 15 minutes)."""
    for start in range(0, len(note_ids), COLLECT_NOTES):
        collect_every_note(NoteObject.note_id.in_(note_ids[start:start + COLLECT_NOTES]))


def _watch_terms(world: _World, notes: _Notes, rng: random.Random) -> None:
    rows, now = [], utcnow()
    for people in world.users.values():
        for user in people:
            if rng.random() < 0.25:
                rows.append(WatchTerm(user_id=user.id, kind="value", value=notes.pool.pick()[1],
                                      created_at=now))
                if rng.random() < 0.5:
                    rows.append(WatchTerm(user_id=user.id, kind="sector",
                                          value=rng.choice(notes.sectors), created_at=now))
    db.session.add_all(rows)


def generate(plan: Plan, progress=None) -> dict:
    """Fill the database as described in the module docstring; returns what was made and who
    the benchmark's reader is (a user whose organisation is an active member of 5 alliances).
    `progress`, if given, is called with the number of notes written after each chunk."""
    if plan.notes < 1 or plan.orgs < 1 or plan.alliances < 1:
        raise ValueError("bench-data needs at least one note, organisation and alliance")
    # Names and STIX ids must not meet an earlier run's: the tag (the seed and how many
    # organisations there are already) names everything and seeds the generator.
    taken = db.session.scalar(select(func.count()).select_from(Organisation))
    tag = f"s{plan.seed}n{taken}"
    rng = random.Random(tag)
    world = _make_world(plan, rng, tag)
    if not world.authors:
        raise ValueError("no vetted organisation is a member of an alliance; add organisations")
    builder = _Notes(plan, rng, world, tag)
    _watch_terms(world, builder, rng)
    db.session.flush()
    writer = _Writer()
    placeholder = {"report_id": f"report--{uuid.uuid4()}", "organisation_id": world.orgs[0].id,
                   "author_id": world.reader.id, "kind": "bundle", "title": "placeholder",
                   "tlp": "RED", "created_at": utcnow(), "updated_at": utcnow()}
    done, ids = 0, []
    while done < plan.notes:
        count = min(CHUNK, plan.notes - done)
        if writer.pg or not ids:
            ids = _note_ids(writer, count, placeholder)
        else:  # SQLite: this transaction's notes follow each other
            ids = list(range(ids[-1] + 1, ids[-1] + 1 + count))
        builder.chunk(done, count, writer, ids)
        _collect(ids)
        done += count
        if writer.pg:
            db.session.commit()  # COPY chunks commit as they go: a 1M-row run stays bounded
            writer = _Writer()
        if progress:
            progress(count)
    db.session.commit()
    return {"seed": plan.seed, "tag": tag, **builder.totals,
            "organisations": len(world.orgs), "users": sum(map(len, world.users.values())),
            "alliances": len(world.alliances), "memberships": len(world.states),
            "large_notes": builder.large_report_ids,
            "shared_value": SHARED_VALUE if builder.shared else None,
            "shared_value_notes": len(builder.shared),
            "rare_words": [rare_word(k) for k in range(plan.rare_words)],
            "reader": {"email": world.reader.email, "password": plan.password,
                       "alliances": [a.slug for a in world.reader_alliances]}}


def analyze() -> None:
    """PostgreSQL: VACUUM ANALYZE after a bulk load — what autovacuum does a little later:
    the planner's statistics, and the visibility map that lets index-only scans skip the
    table. Done here, a benchmark measures the database as it settles, not while autovacuum
    works through a million fresh rows beside it. SQLite keeps no statistics unless asked,
    and the app does not ask: left alone."""
    db.session.commit()
    if db.session.get_bind().dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))


@click.command("bench-data")
@click.option("--notes", type=click.IntRange(1), required=True, help="How many notes.")
@click.option("--orgs", type=click.IntRange(1), required=True, help="How many organisations.")
@click.option("--alliances", type=click.IntRange(1), required=True, help="How many alliances.")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--users-per-org", type=click.IntRange(1), default=4, show_default=True)
@click.option("--objects-per-note", type=click.FloatRange(1), default=10.0, show_default=True,
              help="Mean number of STIX objects per note, its report included.")
@click.option("--large-notes", type=click.IntRange(0), default=0, show_default=True,
              help="Notes of 1,000 objects the reader can read.")
@click.option("--shared-value-notes", type=click.IntRange(0), default=0, show_default=True,
              help=f"Notes that also hold an indicator of {SHARED_VALUE}.")
@click.option("--rare-words", type=click.IntRange(0), default=0, show_default=True,
              help=f"Invented words, each in {RARE_WORD_NOTES} notes.")
@click.option("--json", "as_json", is_flag=True, help="Print what was made as JSON.")
@with_appcontext
def bench_data_command(notes, orgs, alliances, seed, users_per_org, objects_per_note,
                       large_notes, shared_value_notes, rare_words, as_json):
    """Fill the database with realistic generated notes for benchmarks."""
    if current_app.config["ENV_NAME"] == "production":
        raise click.ClickException("bench-data does not run in production: its accounts "
                                   "share a public password.")
    plan = Plan(notes=notes, orgs=orgs, alliances=alliances, seed=seed,
                users_per_org=users_per_org, objects_per_note=objects_per_note,
                large_notes=large_notes, shared_value_notes=shared_value_notes,
                rare_words=rare_words)
    with click.progressbar(length=notes, label="Generating notes", file=sys.stderr) as bar:
        made = generate(plan, progress=bar.update)
    analyze()
    if as_json:
        click.echo(json.dumps(made, indent=2))
        return
    click.echo(f"{made['notes']:,} notes, {made['objects']:,} STIX objects, "
               f"{made['organisations']} organisations, {made['alliances']} alliances. "
               f"Reader (5 alliances): {made['reader']['email']}")


def create_app(config=None):
    """The app with `bench-data` beside its own commands, for `flask --app bench.benchdata`:
    the command is benchmark tooling, so the app itself does not carry it."""
    app = create_alliance_app(config)
    app.cli.add_command(bench_data_command)
    return app
