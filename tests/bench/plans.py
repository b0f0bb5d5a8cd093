"""Query plans: capture the SQL a real request or service call runs, EXPLAIN it, and name
every big table the planner would read by a full scan instead of through an index.

SQLite: EXPLAIN QUERY PLAN; a `SCAN <table>` line without an index is a full scan (a `SCAN
... USING INDEX` walks an index in order, as a keyset page does, and stops at the page's end).
PostgreSQL: EXPLAIN (FORMAT JSON); a `Seq Scan` node on a big table is a full scan."""
import itertools
import json
import re
from contextlib import contextmanager

from sqlalchemy import event

# The tables that grow with the data: a full scan of any of them makes a page's cost grow
# with the database instead of with the page.
BIG_TABLES = ("stix_objects", "notes", "note_objects", "note_facets", "observables",
              "collection_objects", "organisation_collection_objects")
_ALIAS = re.compile(r"\b(" + "|".join(BIG_TABLES) + r")\s+(?:AS\s+)?([a-z_][a-z0-9_]*)",
                    re.IGNORECASE)
_NOT_ALIAS = {"where", "on", "join", "left", "inner", "outer", "group", "order", "limit",
              "union", "set", "values", "natural", "cross", "using", "having", "window"}
_NONCE = itertools.count()
_SQLITE_SCAN = re.compile(r"^SCAN (\w+)(?: AS (\w+))?(.*)$")


@contextmanager
def captured(engine):
    """The SELECT statements (with their parameters) run on the engine inside the block."""
    found = []

    def record(conn, cursor, statement, parameters, context, executemany):
        # SET and RESET too: planner settings a service gives a statement (SET LOCAL) are
        # replayed before it is explained.
        if not executemany and statement.lstrip().upper().startswith(
                ("SELECT", "WITH", "SET ", "RESET ")):
            found.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield found
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _aliases(statement: str) -> dict[str, str]:
    names = {t: t for t in BIG_TABLES}
    for table, alias in _ALIAS.findall(statement):
        if alias.lower() not in _NOT_ALIAS:
            names[alias] = table
    return names


def explain(conn, statement: str, parameters):
    """The plan: SQLite's EXPLAIN QUERY PLAN lines, or PostgreSQL's JSON plan tree."""
    if conn.dialect.name == "postgresql":
        row = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters).scalar()
        return row if isinstance(row, list) else json.loads(row)
    # A fresh statement text each time: Python's sqlite3 caches prepared statements, and a
    # cached EXPLAIN keeps the plan it was prepared with even after the schema changed.
    nonce = next(_NONCE)
    return [r[3] for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN /* {nonce} */ {statement}",
                                               parameters)]


def pg_nodes(node):
    """Every node of a PostgreSQL JSON plan tree."""
    yield node
    for child in node.get("Plans", []):
        yield from pg_nodes(child)


def queries(conn, statements):
    """The captured statements to EXPLAIN; the SET/RESET ones among them (a TAXII page's
    planner settings) are run instead, so the statements after them are planned as the
    app planned them."""
    for statement, parameters in statements:
        if statement.lstrip().upper().startswith(("SET ", "RESET ")):
            conn.exec_driver_sql(statement, parameters)
            continue
        yield statement, parameters


def keyset_page(statement: str) -> str | None:
    """A feed or TAXII page: rows in the order of an index, up to a LIMIT. Such a statement
    must walk that index and stop at the page's end; sorting means it read every candidate
    first (its cost then grows with the data, even without a full scan of a table)."""
    flat = " ".join(statement.split())
    if " LIMIT " not in flat:
        return None
    if "ORDER BY notes.created_at DESC, notes.id DESC" in flat:
        return "notes"
    if "ORDER BY stix_objects.date_added, stix_objects.id" in flat:
        return "stix_objects"
    if "ORDER BY collection_objects.date_added, collection_objects.object_id" in flat:
        return "collection_objects"
    if ("ORDER BY organisation_collection_objects.date_added, "
            "organisation_collection_objects.object_id") in flat:
        return "organisation_collection_objects"
    return None


def full_scans(conn, statement: str, parameters, tables=BIG_TABLES,
               ordered: bool = False) -> list[str]:
    """The big tables this statement's plan reads in full, e.g. ['stix_objects (Seq Scan)'];
    with `ordered`, for a keyset page (keyset_page), also a sort of its rows instead of an
    index walk."""
    plan = explain(conn, statement, parameters)
    found = []
    ordered = ordered and keyset_page(statement)
    if conn.dialect.name == "postgresql":
        top = plan[0]["Plan"]
        for node in pg_nodes(top):
            if node["Node Type"] == "Seq Scan" and node.get("Relation Name") in tables:
                found.append(f"{node['Relation Name']} (Seq Scan)")
        # The page's own sort (under the Limit), not one inside a subquery.
        node = top
        while ordered and node.get("Plans") and node["Node Type"] in ("Limit", "Sort",
                                                                      "Incremental Sort"):
            if node["Node Type"] in ("Sort", "Incremental Sort"):
                found.append(f"{ordered} (page sorted, not read in index order)")
                break
            node = node["Plans"][0]
        return found
    names = _aliases(statement)
    for line in plan:
        if ordered and line.startswith("USE TEMP B-TREE FOR") and "ORDER BY" in line:
            found.append(f"{ordered} (page sorted: {line})")
        match = _SQLITE_SCAN.match(line)
        if not match:
            continue
        name, alias, rest = match.groups()
        table = names.get(alias or name) or names.get(name)
        if table in tables and "USING" not in rest and "VIRTUAL TABLE" not in rest:
            found.append(f"{table} ({line})")
    return found


def scans_in(conn, statements, tables=BIG_TABLES, ordered: bool = False) -> list[str]:
    """Every full scan of a big table in these captured statements, with the SQL's start
    (and with `ordered`, every keyset page that sorts instead of walking its index)."""
    problems = []
    for statement, parameters in queries(conn, statements):
        for scan in full_scans(conn, statement, parameters, tables, ordered):
            problems.append(f"{scan}: {' '.join(statement.split())[:300]}")
    return problems


def documents_per_row(conn, statements) -> list[str]:
    """PostgreSQL: plan nodes that compute the full-text search document (to_tsvector) for
    each row they read — a walk of the notes instead of a lookup in the search index."""
    if conn.dialect.name != "postgresql":
        return []  # SQLite's FTS5 table is always a lookup
    found = []
    for statement, parameters in queries(conn, statements):
        plan = explain(conn, statement, parameters)
        for node in pg_nodes(plan[0]["Plan"]):
            if "to_tsvector(" in node.get("Filter", ""):
                found.append(f"{node['Node Type']} on {node.get('Relation Name')}: "
                             f"{' '.join(statement.split())[:200]}")
    return found


def hashed_subplans(conn, statements, table: str = "note_audiences") -> list[str]:
    """PostgreSQL: subplans over `table` that the plan runs once to build a hash of every
    matching row (`hashed SubPlan n`), instead of looking up each row it is asked about. For
    the read rule that is a hash of every note addressed to the reader's alliances: built
    before a page's first row, and growing with the platform."""
    if conn.dialect.name != "postgresql":
        return []
    found = []
    for statement, parameters in queries(conn, statements):
        top = explain(conn, statement, parameters)[0]["Plan"]
        text = json.dumps(top)
        for node in pg_nodes(top):
            name = node.get("Subplan Name")
            if (node.get("Parent Relationship") == "SubPlan" and name
                    and re.search(rf"hashed {name}\b", text)
                    and any(n.get("Relation Name") == table for n in pg_nodes(node))):
                found.append(f"hashed {name} over {table}: {' '.join(statement.split())[:200]}")
    return found


def memberships_per_note(conn, statements) -> list[str]:
    """PostgreSQL: per-note subplans of the read rule (over note_audiences) that read the
    reader's memberships again for every note, instead of once per statement in an InitPlan
    (policy._in_active_alliances). The coordinators' term for retracted notes joins
    memberships per note by design: it is asked about retracted notes only."""
    if conn.dialect.name != "postgresql":
        return []

    def direct(node):  # the node and its descendants, but not what an InitPlan reads
        yield node
        for child in node.get("Plans", []):
            if child.get("Parent Relationship") != "InitPlan":
                yield from direct(child)

    found = []
    for statement, parameters in queries(conn, statements):
        top = explain(conn, statement, parameters)[0]["Plan"]
        for node in pg_nodes(top):
            if node.get("Parent Relationship") != "SubPlan":
                continue
            tables = {n.get("Relation Name") for n in direct(node)}
            if {"note_audiences", "memberships"} <= tables and \
                    "alliance_coordinators" not in tables:
                found.append(f"{node.get('Subplan Name')} reads memberships per note: "
                             f"{' '.join(statement.split())[:200]}")
    return found


def big_sorts(conn, statements, rows: int) -> list[str]:
    """PostgreSQL: sort and grouping steps the planner expects to feed more than `rows` rows
    — every match of a common value read and sorted (or grouped) before a page of a few
    dozen is cut from it, a cost that grows with the data. A plain aggregate (a count: one
    row out) is not one. SQLite: nothing (its plans carry no estimates; full_scans' keyset
    check holds there)."""
    if conn.dialect.name != "postgresql":
        return []
    found = []
    for statement, parameters in queries(conn, statements):
        top = explain(conn, statement, parameters)[0]["Plan"]
        for node in pg_nodes(top):
            if node["Node Type"] not in ("Sort", "Incremental Sort", "Aggregate") or \
                    node.get("Strategy") == "Plain":
                continue
            fed = max([node.get("Plan Rows", 0)]
                      + [child.get("Plan Rows", 0) for child in node.get("Plans", [])])
            if fed > rows:
                found.append(f"{node['Node Type']} of ~{fed:,} rows: "
                             f"{' '.join(statement.split())[:200]}")
    return found
