"""The import workload of generated indicators and the floors an import is measured against
(bench/run.py), with no app set-up: a test checks that the floor stores what an import stores.

floor         orjson parse plus plain SQLite inserts of the same rows an import stores for
              the objects (tests/bench/test_import_floor.py compares them row for row): the
              object versions with their indexes, the note's links, the alliance and
              organisation collection rows, the observables; into the migrated database, in
              the app's WAL mode with foreign keys on, in one transaction. The goal (import
              within 4x of it) is measured against this. What is worked out from the objects
              rather than parsed (the observables, the body hashes) is worked out before the
              clock starts: the floor only parses and inserts.
single_table  orjson parse plus one plain insert per object into a table with no index, in
              SQLite's default journal mode: what storing the bodies alone costs, shown for
              comparison."""
import hashlib
import os
import sqlite3
import time
import uuid
from datetime import UTC, datetime

import orjson


def indicators_bundle(n: int) -> bytes:
    """A bundle of n indicators, each with an IPv4 pattern (an observable of its own)."""
    stamp = "2024-01-01T00:00:00.000Z"
    objects = [{"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}",
                "created": stamp, "modified": stamp, "name": f"203.0.{i // 250 % 250}.{i % 250}",
                "pattern": f"[ipv4-addr:value = '10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}']",
                "pattern_type": "stix", "valid_from": stamp} for i in range(n)]
    return orjson.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": objects})


def rich_indicators_bundle(n: int, templates: int = 50) -> bytes:
    """A bundle of n richer indicators as stix2 makes them (its property order, its
    timestamps): a name, a description, indicator types, labels, a confidence, two kill chain
    phases, an external reference and a pattern of two observables (an address and a domain,
    each its own). `templates` objects are made by stix2; the rest are copies of them with
    their own id, name and values (stix2 makes about 1,500 objects a second)."""
    import stix2

    made = []
    for t in range(templates):
        made.append(orjson.loads(stix2.Indicator(
            name=f"Phishing infrastructure {t}", pattern_type="stix",
            pattern="[ipv4-addr:value = '192.0.2.1'] OR [domain-name:value = 'a.example']",
            description="Seen delivering credential-phishing pages to finance staff; "
                        "blocks at the perimeter are advised. " * 2,
            indicator_types=["malicious-activity", "attribution"], labels=["phishing", "ta-x"],
            confidence=70, valid_from="2024-01-01T00:00:00Z",
            kill_chain_phases=[stix2.KillChainPhase(kill_chain_name="mitre-attack",
                                                    phase_name="initial-access"),
                               stix2.KillChainPhase(kill_chain_name="mitre-attack",
                                                    phase_name="command-and-control")],
            external_references=[stix2.ExternalReference(
                source_name="vendor-report", url=f"https://reports.example/{t}",
                description="The vendor's write-up")]).serialize()))
    objects = []
    for i in range(n):
        obj = dict(made[i % templates])
        address = f"45.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"
        obj["id"] = f"indicator--{uuid.uuid4()}"
        obj["name"] = f"Phishing infrastructure {i}"
        obj["pattern"] = (f"[ipv4-addr:value = '{address}'] OR "
                          f"[domain-name:value = 'host{i}.phish.example']")
        objects.append(obj)
    return orjson.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": objects})


def single_table(raw: bytes, directory: str) -> float:
    """Objects per second: orjson parse and one row per object in a table of its own."""
    start = time.perf_counter()
    objects = orjson.loads(raw)["objects"]
    conn = sqlite3.connect(os.path.join(directory, f"floor-{uuid.uuid4().hex}.db"))
    conn.execute("CREATE TABLE o (stix_id TEXT, type TEXT, modified TEXT, body TEXT)")
    conn.executemany("INSERT INTO o VALUES (?, ?, ?, ?)",
                     [(o["id"], o["type"], o.get("modified", ""), orjson.dumps(o).decode())
                      for o in objects])
    conn.commit()
    conn.close()
    return len(objects) / (time.perf_counter() - start)


def same_rows(path: str, note_id: int, org_id: int, raw: bytes) -> float:
    """Objects per second: the rows an import of `raw` stores for its objects, added to an
    existing note (`note_id`, of organisation `org_id`, with its audience) in the migrated
    SQLite database at `path`."""
    from sqlalchemy.dialects import sqlite

    from alliance.notes.authorship import needs_creator, with_note_marking
    from alliance.notes.models import NoteObject
    from alliance.stix.observables import extract
    from alliance.taxii.collections import collect_statements

    conn = sqlite3.connect(path, isolation_level=None)
    creator = conn.execute("SELECT stix_id FROM organisations WHERE id = ?",
                           (org_id,)).fetchone()[0]
    tlp = conn.execute("SELECT tlp FROM notes WHERE id = ?", (note_id,)).fetchone()[0]

    def fill(objects):
        """What an import stores (the one rule, notes.authorship): the poster as the creator
        of objects that name none, and the note's TLP marking on the poster's objects that
        carry none."""
        return [with_note_marking({**o, "created_by_ref": creator} if needs_creator(o) else o,
                                  tlp, creator) for o in objects]

    before = fill(orjson.loads(raw)["objects"])
    found = sorted({hit for obj in before for hit in extract(obj)})
    hashes = [hashlib.sha256(orjson.dumps(o)).hexdigest() for o in before]
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA journal_mode=WAL")
    last = conn.execute("SELECT coalesce(max(id), 0) FROM stix_objects").fetchone()[0]
    added = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    start = time.perf_counter()
    objects = fill(orjson.loads(raw)["objects"])
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO stix_objects (stix_id, type, modified, organisation_id, first_note_id, "
        "body, body_hash, date_added) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(o["id"], o["type"], o.get("modified") or o.get("created") or "", org_id, note_id,
          orjson.dumps(o).decode(), digest, added) for o, digest in zip(objects, hashes, strict=True)])
    conn.execute("INSERT INTO note_objects (note_id, object_id, note_version) SELECT ?, id, 1 "
                 "FROM stix_objects WHERE first_note_id = ? AND id > ? ORDER BY id",
                 (note_id, note_id, last))
    for statement in collect_statements("sqlite", NoteObject.note_id == note_id):
        conn.execute(str(statement.compile(dialect=sqlite.dialect(),
                                           compile_kwargs={"literal_binds": True})))
    conn.executemany("INSERT INTO observables (note_id, kind, value) VALUES (?, ?, ?)",
                     [(note_id, kind, value) for kind, value in found])
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return len(objects) / elapsed
