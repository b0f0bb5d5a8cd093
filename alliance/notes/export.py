"""Bulk export of a filtered feed: a STIX 2.1 bundle of the notes' objects, a CSV of their
observables, and a plain indicator list (one value a line) for firewalls and SIEMs.

Every note comes from the feed (reading.feed, which composes the read rule), walked in its
keyset pages of PAGE notes; each page's objects or observables are read in one statement and
streamed in parts of PART rows. Memory holds a page and a part, whatever the number of
notes, plus two bounded sets: the object versions and values already written (at most
SEEN_MAX: past that, an object held by several notes may repeat; identical copies, which
STIX consumers and this platform's upload fold into one) and the platform's objects served
beside them (an identity per organisation, the TLP 2.0 definitions).

The strictest TLP of the notes the filters select is found first (a probe of the feed per
level, strictest first) and named before the first byte: in the file name, the X-TLP header,
and as the first line of the CSV and the list. A note stricter than that which became
readable while the export ran is left out: the export never holds more than its label says."""
import csv
import hashlib
import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from sqlalchemy import select

from alliance.alliances.models import Alliance
from alliance.extensions import db
from alliance.notes import reading, served_with
from alliance.notes.models import SERVED_WITH, NoteAudience, NoteObject, Observable, StixObject
from alliance.sharing.policy import Principal
from alliance.stix.tlp import TLP_LEVELS, TLP_RANK

PAGE = 200
PART = 500
SEEN_MAX = 100_000
FORMATS = {"stix": ("json", "application/stix+json;version=2.1"),
           "csv": ("csv", "text/csv; charset=utf-8"),
           "list": ("txt", "text/plain; charset=utf-8")}
# The types of what is served beside notes' objects; a note may hold one itself (an
# organisation's identity), which is then not served twice.
_BESIDE_TYPES = ("identity", "marking-definition", "extension-definition")
CSV_COLUMNS = ("note_id", "type", "value", "tlp", "alliances", "first_seen", "warning")
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Export:
    filename: str
    mimetype: str
    tlp: str
    chunks: Iterator[str]


def strictest_tlp(principal: Principal, filters: dict) -> str | None:
    """The strictest TLP among the readable notes the feed's filters select, or None when
    they select none: at most one feed query of one note per level."""
    levels = [filters["tlp"]] if filters.get("tlp") else list(reversed(TLP_LEVELS))
    for level in levels:
        if reading.feed(principal, **{**filters, "tlp": level}, limit=1)[0]:
            return level
    return None


def export(principal: Principal, fmt: str, filters: dict, kinds=()) -> Export:
    """The export of the feed's `filters` (reading.feed's keywords) in `fmt` ("stix",
    "csv" or "list"; `kinds`: the observable kinds the CSV and list hold, none for every kind) as
    the principal may read it. Its chunks are read as they are sent: iterate them inside the
    request (stream_with_context)."""
    level = strictest_tlp(principal, filters) or "CLEAR"
    ext, mimetype = FORMATS[fmt]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    chunks = {"stix": _bundle, "csv": _csv, "list": _indicator_list}[fmt](
        _pages(principal, filters, level), level, kinds)
    return Export(f"notes-TLP-{level}-{stamp}.{ext}", mimetype, level, chunks)


def _pages(principal: Principal, filters: dict, ceiling: str) -> Iterator[list]:
    """The feed's notes for these filters, a keyset page at a time, none stricter than
    `ceiling` (the level the export was labelled with)."""
    before = None
    while True:
        notes, before = reading.feed(principal, before=before, limit=PAGE, **filters)
        kept = [n for n in notes if TLP_RANK.get(n.tlp, len(TLP_LEVELS)) <= TLP_RANK[ceiling]]
        if kept:
            yield kept
        if before is None:
            return


class _Seen:
    """A bounded set of what was written: True the first time a key is added. Past `limit`
    keys it stops remembering (and answers True), so memory stays bounded."""

    def __init__(self, limit: int = SEEN_MAX):
        self.keys: set = set()
        self.limit = limit

    def add(self, key) -> bool:
        if key in self.keys:
            return False
        if len(self.keys) < self.limit:
            self.keys.add(key)
        return True


def _parts(stmt) -> Iterator:
    """The rows of a page's statement, PART at a time (a server-side cursor on PostgreSQL)."""
    yield from db.session.execute(stmt.execution_options(yield_per=PART)).partitions()


# --- STIX 2.1 bundle --------------------------------------------------------------------------

def _bundle(pages, level: str, _kinds) -> Iterator[str]:
    """A bundle of the notes' objects, then what they need beside them (served_with: the
    identities of the platform organisations that created them, marked for the strictest
    note exported, and the TLP 2.0 definitions they name), each once. A bundle of nothing
    has no "objects" (STIX 2.1 lists are never empty)."""
    yield f'{{"type":"bundle","id":"bundle--{uuid.uuid4()}"'
    own: set[str]
    beside: dict[str, dict]
    seen, own, beside, written = _Seen(), set(), {}, 0
    for notes in pages:
        refs: list[dict] = []
        stmt = (select(StixObject.id, StixObject.body)
                .join(NoteObject, NoteObject.object_id == StixObject.id)
                .where(NoteObject.note_id.in_([n.id for n in notes]),
                       StixObject.scope != SERVED_WITH)
                .order_by(NoteObject.note_id.desc(), StixObject.type, StixObject.stix_id))
        for part in _parts(stmt):
            bodies = [body for row_id, body in part if seen.add(row_id)]
            if len(own) < SEEN_MAX:
                own.update(b["id"] for b in bodies if b.get("type") in _BESIDE_TYPES)
            refs.extend(_needs(bodies))
            if bodies:
                yield _objects(bodies, written)
                written += len(bodies)
        # What the page's objects need, found once their rows are read (no statement runs
        # while the page's cursor is open).
        for _owner, body in served_with.needed(db.session, _distinct(refs), level):
            beside.setdefault(body["id"], body)
    extra = [body for stix_id, body in beside.items() if stix_id not in own]
    if extra:
        yield _objects(extra, written)
    yield "]}" if written or extra else "}"


def _objects(bodies: list[dict], written: int) -> str:
    """Objects of the bundle's list, the list opened before the first."""
    return ("," if written else ',"objects":[') + b",".join(map(orjson.dumps, bodies)).decode()


def _needs(bodies: list[dict]) -> list[dict]:
    """Stand-ins for what these objects reference that may need serving beside them (their
    creators and markings), without their bulk."""
    found = []
    for body in bodies:
        creator, marks = body.get("created_by_ref"), body.get("object_marking_refs")
        if isinstance(creator, str) or marks:
            found.append({"id": "", "created_by_ref": creator,
                          "object_marking_refs": marks if isinstance(marks, list) else []})
    return found


def _distinct(refs: list[dict]) -> list[dict]:
    creators = {r["created_by_ref"] for r in refs if isinstance(r["created_by_ref"], str)}
    marks = {m for r in refs for m in r["object_marking_refs"] if isinstance(m, str)}
    return ([{"id": "", "created_by_ref": c} for c in sorted(creators)]
            + [{"id": "", "object_marking_refs": sorted(marks)}])


# --- observables: CSV and the indicator list --------------------------------------------------

def _observables(notes, *conditions):
    return (select(Observable.note_id, Observable.kind, Observable.value, Observable.warning)
            .where(Observable.note_id.in_([n.id for n in notes]), *conditions)
            .order_by(Observable.note_id.desc(), Observable.kind, Observable.value))


def _alliance_names(notes) -> dict[int, str]:
    names: dict[int, list[str]] = {}
    for note_id, name in db.session.execute(
            select(NoteAudience.note_id, Alliance.name)
            .join(Alliance, Alliance.id == NoteAudience.alliance_id)
            .where(NoteAudience.note_id.in_([n.id for n in notes])).order_by(Alliance.name)):
        names.setdefault(note_id, []).append(name)
    return {note_id: "; ".join(found) for note_id, found in names.items()}


def _cell(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA) else value


def _csv(pages, level: str, kinds) -> Iterator[str]:
    """One row per observable value of each note (of the chosen kinds; none chosen: every
    kind): the note's STIX report id, the kind of value, the value (normalised, as
    correlation indexes it), the note's TLP, its alliances, when it was first seen here (the
    note's posting), and the warning list it is on."""
    conditions = [Observable.kind.in_(sorted(set(kinds)))] if kinds else []
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write(f"# TLP:{level}\r\n")
    writer.writerow(CSV_COLUMNS)
    yield buffer.getvalue()
    for notes in pages:
        by_id = {n.id: n for n in notes}
        alliances = _alliance_names(notes)
        for part in _parts(_observables(notes, *conditions)):
            buffer.seek(0)
            buffer.truncate()
            for note_id, kind, value, warning in part:
                note = by_id[note_id]
                writer.writerow((note.report_id, kind, _cell(value), f"TLP:{note.tlp}",
                                 _cell(alliances.get(note_id, "")),
                                 note.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                 warning or ""))
            yield buffer.getvalue()


def _indicator_list(pages, level: str, kinds) -> Iterator[str]:
    """Each distinct value of the chosen kinds once, one a line. Values on a warning list
    (private ranges, public resolvers, top sites) are left out: a firewall fed them would
    block what must not be blocked."""
    yield f"# TLP:{level}\n"
    chosen = sorted(set(kinds or ()))
    yield f"# CyberPeace Alliance indicators: {', '.join(chosen) or 'every type'}\n"
    conditions = [Observable.warning.is_(None)]
    if chosen:
        conditions.append(Observable.kind.in_(chosen))
    seen = _Seen()
    for notes in pages:
        for part in _parts(_observables(notes, *conditions)):
            lines = [value for _note, _kind, value, _warning in part
                     if seen.add(hashlib.blake2b(value.encode(), digest_size=8).digest())]
            if lines:
                yield "\n".join(lines) + "\n"
