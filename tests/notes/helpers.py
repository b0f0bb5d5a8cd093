"""Shared by the notes tests: the shared STIX corpus, row counts, small STIX builders."""
import uuid
from pathlib import Path

from sqlalchemy import func, select

from alliance.extensions import db
from alliance.notes.models import SERVED_WITH, Note, NoteObject, StixObject

# A copy of ../shared/data/stix (the public corpus, with its PROVENANCE.md and licences), kept
# in the repository so that a clone anywhere runs every test.
CORPUS = Path(__file__).parents[1] / "data" / "stix"

STAMP = "2024-05-01T12:00:00.000Z"


def counts() -> tuple[int, int, int]:
    """(notes, stix_objects, note_objects) rows of what was posted, read fresh: not the
    platform's objects served beside them (scope SERVED_WITH: alliance.notes.served_with,
    tested in tests/taxii/test_served_with.py), which no row holds without its note."""
    db.session.expire_all()
    posted = StixObject.scope != SERVED_WITH
    return (db.session.scalar(select(func.count()).select_from(Note)),
            db.session.scalar(select(func.count()).select_from(StixObject).where(posted)),
            db.session.scalar(select(func.count()).select_from(NoteObject).join(
                StixObject, StixObject.id == NoteObject.object_id).where(posted)))


def sid(stix_type: str) -> str:
    return f"{stix_type}--{uuid.uuid4()}"


def identity(name="Sample Org", *, created=STAMP, modified=STAMP, **extra) -> dict:
    obj = {"type": "identity", "spec_version": "2.1", "id": sid("identity"), "created": created,
           "modified": modified, "name": name, "identity_class": "organization"}
    obj.update(extra)
    return {k: v for k, v in obj.items() if v is not None}


def indicator(pattern="[ipv4-addr:value = '203.0.113.7']", **extra) -> dict:
    obj = {"type": "indicator", "spec_version": "2.1", "id": sid("indicator"), "created": STAMP,
           "modified": STAMP, "name": "C2 address", "pattern": pattern, "pattern_type": "stix",
           "valid_from": STAMP}
    obj.update(extra)
    return obj


def bundle(*objects) -> dict:
    return {"type": "bundle", "id": sid("bundle"), "objects": list(objects)}
