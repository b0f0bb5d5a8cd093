"""Correlation by address range (issue 23): an address inside a network another note shares
(198.51.100.23 and 198.51.100.0/24) correlates with it, and a search by a network finds the
addresses inside it.

On PostgreSQL the values are compared as inet (overlap, &&) through a GiST index on the
value cast to inet (ix_observables_network, inet_ops). SQLite has no such type: each address
or network observable is stored with its first and last address (Observable.net_lo / net_hi)
as fixed-width text, the IP version then the address as 32 hex digits, which sorts as the
numbers do, so "inside" is two comparisons that the (kind, net_lo, net_hi) B-tree index
answers: a network's addresses are a range scan of its kinds from its first address; the
networks holding an address are a scan of the network kinds only (few rows: networks are
rare beside addresses). Both databases store the bounds, which also say, once rows are
found, which of a note's values each relates to. Values on a warning list and the very
common values stay out, as in exact correlation.

Every read goes through the read rule (sharing.policy.readable_notes)."""
from collections.abc import Sequence
from typing import Any
from typing import cast as type_cast

from sqlalchemy import (
    ColumnClause,
    Integer,
    Row,
    and_,
    cast,
    literal,
    literal_column,
    or_,
    select,
)

from alliance.core.queries import one_of
from alliance.extensions import db
from alliance.notes import warninglists
from alliance.notes.models import Note, Observable
from alliance.sharing.policy import Principal, readable_notes
from alliance.stix import observables

ADDRESS_KINDS = {4: "ipv4", 6: "ipv6"}
NETWORK_KINDS = {4: "cidr4", 6: "cidr6"}
IP_KINDS = frozenset(ADDRESS_KINDS.values()) | frozenset(NETWORK_KINDS.values())
MAX_RANGES = 100  # of one note's values, per query


def _key(version: int, address: int) -> str:
    return f"{version}{address:032x}"


def bounds(kind: str, value: str) -> tuple[str | None, str | None]:
    """(net_lo, net_hi) stored for an observable: its first and last address for an
    address or network kind, (None, None) for any other."""
    found = observables.network_of(kind, value) if kind in IP_KINDS else None
    if found is None:
        return None, None
    version, first, prefix = found
    last = first | ((1 << ((32 if version == 4 else 128) - prefix)) - 1)
    return _key(version, first), _key(version, last)


# PostgreSQL: the value as inet for address and network kinds, NULL for the rest, as the
# GiST index ix_observables_network (migration f3a8c6e2d9b1) has it: the planner uses the
# index for an expression written the same, constants included.
PG_NETWORK: ColumnClause[Any] = literal_column(
    "(CASE WHEN observables.kind IN ('ipv4', 'ipv6', 'cidr4', 'cidr6') "
    "THEN observables.value::inet END)")


def _related_clause(kind: str, value: str, lo: str, hi: str, postgresql: bool):
    """The observables whose range holds [lo, hi] or lies inside it (an address, or a
    network inside or around it), of the same IP version. On PostgreSQL, inet's "overlaps"
    through the GiST index (networks are nested or apart, so overlapping is exactly inside
    or around); elsewhere two comparisons of the fixed-width bounds."""
    if postgresql:
        # Imported here: sqlalchemy.dialects.postgresql is heavy, and SQLite never needs it.
        from sqlalchemy.dialects.postgresql import INET

        return PG_NETWORK.op("&&")(cast(literal(value), INET))
    version = int(lo[0])
    around = and_(Observable.kind == NETWORK_KINDS[version], Observable.net_lo <= lo,
                  Observable.net_hi >= hi)
    if kind in ADDRESS_KINDS.values():
        return or_(around, and_(Observable.kind == kind, Observable.net_lo == lo))
    inside = and_(Observable.kind.in_((ADDRESS_KINDS[version], NETWORK_KINDS[version])),
                  Observable.net_lo >= lo, Observable.net_lo <= hi, Observable.net_hi <= hi)
    return or_(around, inside)


def _mine(note: Note) -> Sequence[tuple[str, str, str, str]]:
    """(kind, value, lo, hi) of the note's correlatable addresses and networks."""
    # Cast: the rows are tuple-like, and net_lo / net_hi are set together (bounds), so the
    # net_lo IS NOT NULL below leaves no None.
    return type_cast(Sequence[tuple[str, str, str, str]], db.session.execute(
        select(Observable.kind, Observable.value, Observable.net_lo, Observable.net_hi)
        .where(Observable.note_id == note.id, Observable.kind.in_(IP_KINDS),
               Observable.net_lo.is_not(None), Observable.warning.is_(None),
               Observable.value.not_in(observables.COMMON_VALUES))
        .order_by(Observable.id).limit(MAX_RANGES)).all())


def _holding(principal: Principal, ranges: Sequence[tuple[str, str, str, str]],
             *first) -> Sequence[Row[int, str, str, str]]:
    """(note id, value, net_lo, net_hi) of the observables of readable notes in a range
    relation (around or inside) with one of `ranges` ((kind, value, lo, hi)), correlatable
    only."""
    postgresql = db.session.get_bind().dialect.name == "postgresql"
    related = or_(*(_related_clause(*r, postgresql) for r in ranges))
    return db.session.execute(
        readable_notes(principal, *first, related, Observable.warning.is_(None),
                       Observable.value.not_in(observables.COMMON_VALUES))
        .join(Observable, Observable.note_id == Note.id)
        .with_only_columns(Note.id, Observable.value, Observable.net_lo, Observable.net_hi)
        ).all()


def _within(lo: str, hi: str, other_lo: str, other_hi: str) -> bool:
    return lo[0] == other_lo[0] and (other_lo <= lo <= hi <= other_hi
                                     or lo <= other_lo <= other_hi <= hi)


def related_by_range(principal: Principal, note: Note) -> dict[int, set[str]]:
    """Other readable notes holding an address or network inside or around one of this
    note's, with the note's values that relate: {note id: {this note's values}}. An equal
    value is a range relation too (exact correlation finds it as well)."""
    mine = _mine(note)
    if not mine:
        return {}
    found: dict[int, set[str]] = {}
    rows = _holding(principal, mine, Observable.note_id != note.id)
    for note_id, _value, other_lo, other_hi in rows:
        for _kind, value, lo, hi in mine:
            if _within(lo, hi, other_lo, other_hi):
                found.setdefault(note_id, set()).add(value)
    return found


def correlated(principal: Principal, note: Note, exact: list, by_range: dict | None = None,
               limit: int = 50) -> list:
    """reading.correlated's answer (`exact`: [(note, shared values)], readable notes only)
    with the notes related by range (`by_range`: related_by_range's answer, read here when
    None) added: newest first, at most `limit`."""
    if by_range is None:
        by_range = related_by_range(principal, note)
    merged = {other.id: (other, set(values)) for other, values in exact}
    missing = [note_id for note_id in by_range if note_id not in merged]
    if missing:
        for other in db.session.scalars(readable_notes(principal).where(
                one_of(Note.id, missing, Integer))):
            merged[other.id] = (other, set())
    for note_id, values in by_range.items():
        if note_id in merged:
            merged[note_id][1].update(values)
    ordered = sorted(merged.values(), key=lambda pair: (pair[0].created_at, pair[0].id),
                     reverse=True)
    return [(other, sorted(values)) for other, values in ordered[:limit]]


def notes_in_range(principal: Principal, kind: str, value: str,
                   limit: int = 50) -> Sequence[Note]:
    """For a search by an address or network: the readable notes holding an address or
    network inside it or around it (a search by 198.51.100.0/24 finds 198.51.100.23),
    newest first. [] for a value of another kind, a warning-listed or a common one."""
    lo, hi = bounds(kind, value)
    # (bounds gives both or neither: `hi is None` only tells the type checker so.)
    if lo is None or hi is None or value in observables.COMMON_VALUES or warninglists.check(
            kind, value):
        return []
    ids = {note_id for note_id, *_rest in _holding(principal, [(kind, value, lo, hi)])}
    if not ids:
        return []
    return db.session.scalars(readable_notes(principal).where(Note.id.in_(sorted(ids)))
                              .order_by(Note.created_at.desc()).limit(limit)).all()
