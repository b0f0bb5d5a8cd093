"""What the note page shows first (issue 23, "the note page explains itself"): the note's
observables with what the platform knows of each across the notes the reader may read, and
its CVEs with their CVSS where the STIX carries it.

Every figure about other notes comes through the read rule (sharing.policy.readable_notes):
first and last seen, sightings and related notes (by value, and for addresses and networks
by range: ranges) never count a note the reader cannot read.
A value on a warning list (warninglists) is not correlated: its row tells what this note
alone says of it."""
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from alliance.extensions import db
from alliance.notes import holders, ranges, warninglists
from alliance.notes.models import Note, NoteComment, Observable
from alliance.sharing.policy import Principal, readable_notes
from alliance.stix import observables

KIND_LABELS = {"ipv4": "IPv4", "ipv6": "IPv6", "cidr4": "IPv4 range", "cidr6": "IPv6 range",
               "domain": "Domain", "url": "URL", "email": "E-mail", "md5": "MD5",
               "sha1": "SHA-1", "sha256": "SHA-256", "cve": "CVE"}


@dataclass(frozen=True)
class ObservableRow:
    """One observable of the note, as its table shows it. `notes`: the readable notes that
    hold the value, this one included; `sightings`: "we saw this too" responses to them."""

    kind: str
    value: str
    warning: warninglists.WarningList | None
    first_seen: datetime
    last_seen: datetime
    notes: int
    sightings: int
    # Other readable notes holding an address or network inside or around this one
    # (ranges), for an address or network; None for other kinds.
    by_range: int | None = None
    # The value has holders.CORRELATION_HOLDERS holders or more besides this note: the
    # figures are over the newest of them only. `notes`, `sightings` and `related` (but by
    # range) are then "at least", and the first seen is the oldest among those read.
    capped: bool = False

    @property
    def kind_label(self) -> str:
        return KIND_LABELS.get(self.kind, self.kind)

    @property
    def related(self) -> int:
        """Other readable notes holding the value, or for an address or network one inside
        or around it (0 for a value that is not correlated)."""
        return self.by_range if self.by_range is not None else self.notes - 1

    @property
    def cap(self) -> int:
        """The holders read per value (holders.CORRELATION_HOLDERS), for the page to say."""
        return holders.CORRELATION_HOLDERS

    @property
    def related_at_least(self) -> bool:
        """`related` is a lower bound (a capped value; a count by range is never capped)."""
        return self.capped and self.by_range is None

    @property
    def correlated(self) -> bool:
        return self.warning is None and self.value not in observables.COMMON_VALUES


def _seen(principal: Principal, note: Note, values: list[str]) -> dict[str, tuple]:
    """value -> (first posted, last posted, number of notes) over the readable notes among
    the value's newest holders.CORRELATION_HOLDERS holders, this note left out: one grouped
    query through the read rule per holders.CHUNK values, each value an index walk of at
    most that many entries (issue 22)."""
    found: dict[str, tuple] = {}
    for chunk in holders.chunks(values):
        held, params = holders.newest(chunk, note.id)
        stmt = (readable_notes(principal).join(held, held.c.note_id == Note.id)
                .with_only_columns(held.c.value, func.min(Note.created_at),
                                   func.max(Note.created_at), func.count(Note.id.distinct()))
                .group_by(held.c.value))
        found.update((value, (first, last, n)) for value, first, last, n
                     in db.session.execute(stmt, params))
    return found


def _sightings(principal: Principal, note: Note, values: list[str]) -> dict[str, int]:
    """value -> "we saw this too" responses to the readable notes among the value's newest
    holders (as _seen), this note left out."""
    found: dict[str, int] = {}
    for chunk in holders.chunks(values):
        held, params = holders.newest(chunk, note.id)
        stmt = (readable_notes(principal).join(held, held.c.note_id == Note.id)
                .join(NoteComment, NoteComment.note_id == Note.id)
                .where(NoteComment.kind == "sighting")
                .with_only_columns(held.c.value, func.count(NoteComment.id.distinct()))
                .group_by(held.c.value))
        found.update(db.session.execute(stmt, params).all())
    return found


def _own_sightings(note: Note) -> int:
    return db.session.scalars(select(func.count()).select_from(NoteComment).where(
        NoteComment.note_id == note.id, NoteComment.kind == "sighting")).one()  # COUNT: one row


@dataclass(frozen=True)
class ObservableTable:
    """The note's observables table: `rows`, the first `limit` of them (or every one), and
    `values`, every value of the note in the table's order (for "copy all")."""

    rows: list[ObservableRow]
    values: list[str]

    @property
    def partial(self) -> bool:
        return len(self.rows) < len(self.values)


def observable_rows(principal: Principal, note: Note) -> list[ObservableRow]:
    """Every row of the note's observables table (observable_table)."""
    return observable_table(principal, note).rows


def observable_table(principal: Principal, note: Note, limit: int | None = None,
                     by_range: dict | None = None) -> ObservableTable:
    """The note's observables (as stored for search and correlation), each once, by kind
    and value, with first and last seen, notes and sightings across the readable notes
    that hold it — of a value many notes hold, this note and the newest
    holders.CORRELATION_HOLDERS others (ObservableRow.capped). Only the first `limit` rows
    (None: all) are correlated and returned, so a note of 1,000 values costs a page of them.
    `by_range`: ranges.related_by_range's answer, read here when None. `note` was read
    through the policy by the caller."""
    own: dict[tuple[str, str], str | None] = {}
    for kind, value, warning in db.session.execute(
            select(Observable.kind, Observable.value, Observable.warning)
            .where(Observable.note_id == note.id).order_by(Observable.id)):
        own.setdefault((kind, value), warning)
    ordered = sorted(own.items(), key=_table_order)
    shown = ordered if limit is None else ordered[:limit]
    wanted = sorted({value for (_kind, value), warning in shown
                     if warning is None and value not in observables.COMMON_VALUES})
    seen, sightings = _seen(principal, note, wanted), _sightings(principal, note, wanted)
    crowded = holders.crowded(wanted, note.id)
    mine = _own_sightings(note)
    if by_range is None:
        by_range = ranges.related_by_range(principal, note)
    counted: dict[str, int] = {}
    for values in by_range.values():
        for value in values:
            counted[value] = counted.get(value, 0) + 1
    rows = []
    for (kind, value), warning in shown:
        first, last, notes = _with_this_note(note, seen.get(value) if value in wanted else None)
        rows.append(ObservableRow(
            kind, value, _warning_list(warning), first, last, notes,
            mine + (sightings.get(value, 0) if value in wanted else 0),
            counted.get(value, 0) if kind in ranges.IP_KINDS and value in wanted else None,
            capped=value in crowded))
    return ObservableTable(rows, [value for (_kind, value), _warning in ordered])


def _with_this_note(note: Note, others: tuple | None) -> tuple:
    """(first, last, notes) of a value: the note itself and the other readable notes
    holding it (_seen's figures, None when there are none)."""
    if others is None:
        return note.created_at, note.created_at, 1
    first, last, n = others
    return min(first, note.created_at), max(last, note.created_at), n + 1


def _table_order(item) -> tuple:
    """Addresses, names, URLs, e-mail, hashes, CVEs (KIND_LABELS' order), then by value."""
    (kind, value), _warning = item
    return (list(KIND_LABELS).index(kind) if kind in KIND_LABELS else len(KIND_LABELS), value)


def _warning_list(list_id: str | None) -> warninglists.WarningList | None:
    if not list_id:
        return None
    return warninglists.BY_ID.get(list_id) or warninglists.WarningList(
        list_id, list_id, frozenset())


# --- CVEs and their CVSS ---------------------------------------------------------------------

# A CVSS v3/v4 vector ("CVSS:3.1/AV:N/AC:L/...") or a v2 one ("AV:N/AC:L/Au:N/C:P/I:P/A:P").
VECTOR_RE = re.compile(r"CVSS:[234]\.\d(?:/[A-Za-z]{1,3}:[A-Za-z]{1,2})+"
                       r"|AV:[LAN]/AC:[HML]/Au:[MSN]/C:[NPC]/I:[NPC]/A:[NPC]")


@dataclass(frozen=True)
class Cvss:
    score: float | None = None
    vector: str | None = None
    severity: str | None = None

    @property
    def given(self) -> bool:
        return self.score is not None or self.vector is not None


@dataclass(frozen=True)
class Cve:
    """A vulnerability of the note named by its CVE id; `object_id`: its card's row."""

    id: str
    name: str | None
    object_id: int
    cvss: Cvss


def _score(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        score = float(value)
    except ValueError:
        return None
    return score if 0 <= score <= 10 else None


def _vector(value) -> str | None:
    match = VECTOR_RE.search(value) if isinstance(value, str) else None
    return match.group(0) if match else None


def _cvss_in(mapping: dict, found: dict, inside: bool = False, depth: int = 0) -> None:
    """Fill `found` (score, vector, severity) from the CVSS-named properties of a mapping:
    custom ones (x_cvss_score, OpenCTI's x_opencti_cvss_base_score and _vector_string), an
    extension's, or a CVSS JSON object under such a name (baseScore, vectorString, ...).
    `inside`: the mapping is under a CVSS-named property already."""
    for key, value in mapping.items():
        name = str(key).lower().replace("_", "")
        here = inside or "cvss" in name
        if isinstance(value, dict):
            if depth < 3 and (here or name.startswith("extension")):
                _cvss_in(value, found, here, depth + 1)
        elif here and "vector" in name and _vector(value):
            found.setdefault("vector", _vector(value))
        elif here and "severity" in name and isinstance(value, str):
            found.setdefault("severity", value[:20])
        elif here and "score" in name and _score(value) is not None:
            found.setdefault("score", _score(value))
        elif here and _vector(value):
            found.setdefault("vector", _vector(value))


def cvss_of(body: dict) -> Cvss:
    """The CVSS a vulnerability object carries, wherever producers put it: CVSS-named
    properties (custom or in an extension), or an external reference naming CVSS (its
    external_id, description or url holding the vector, as NVD's calculator links do).
    Cvss() when it carries none; never computed or looked up."""
    found: dict = {}
    _cvss_in(body, found)
    for ref in body.get("external_references") or ():
        if not isinstance(ref, dict):
            continue
        if "cvss" in str(ref.get("source_name", "")).lower() or "cvss" in str(ref.get("url", "")):
            for part in ("external_id", "description", "url"):
                if _vector(ref.get(part)):
                    found.setdefault("vector", _vector(ref.get(part)))
    return Cvss(found.get("score"), found.get("vector"), found.get("severity"))


def cves(objects) -> list[Cve]:
    """The note's vulnerabilities that name a CVE (external_references, source_name "cve"),
    each CVE once, in id order, with its CVSS."""
    found = {}
    for row in objects:
        if row.type != "vulnerability":
            continue
        for cve_id in (kind_value[1] for kind_value in observables.extract(row.body)):
            if cve_id not in found:
                name = row.body.get("name")
                found[cve_id] = Cve(cve_id, name if isinstance(name, str) and name != cve_id
                                    else None, row.id, cvss_of(row.body))
    return [found[key] for key in sorted(found)]
