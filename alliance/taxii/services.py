"""TAXII 2.1 collections per user, and what a collection serves to a user.

A collection is an alliance the key's organisation is an active member of (read and write),
plus a read-only collection of the organisation's own notes. A collection serves the object
versions held by the readable notes posted to it — never TLP:RED, never retracted notes.
Reading pages of a collection is in taxii/reading.py (the URL parameters in
taxii/filters.py); adding, withdrawing and status resources in taxii/writing.py."""
import uuid
from dataclasses import dataclass

from alliance.alliances.models import Alliance
from alliance.alliances.services import active_alliances_of
from alliance.core.errors import DomainError
from alliance.notes.models import Note, NoteAudience, NoteObject, StixObject
from alliance.sharing.policy import Principal, readable_note_ids

# Collection ids are derived from this namespace and the alliance or organisation id, so they
# never change (not even when the site's address does).
NAMESPACE = uuid.UUID("6f1c2a52-3e0b-4f43-9a53-7c1d2b8c9e11")
STIX_MEDIA_TYPE = "application/stix+json;version=2.1"


class TaxiiError(DomainError):
    """An error the API answers as a TAXII error message with this HTTP status."""

    def __init__(self, status: int, title: str, description: str = "", details=None):
        super().__init__(title)
        self.status_code = status
        self.title = title
        self.description = description
        self.details = details


@dataclass
class Collection:
    id: str
    title: str
    description: str
    can_read: bool
    can_write: bool
    alliance: Alliance | None = None
    organisation_id: int | None = None

    def resource(self) -> dict:
        return {"id": self.id, "title": self.title, "description": self.description,
                "can_read": self.can_read, "can_write": self.can_write,
                "media_types": [STIX_MEDIA_TYPE]}


def stable_id(name: str) -> str:
    """A stable id in the form TAXII 2.1 requires (a version 4 UUID): the name's version 5
    UUID with the version bits set to 4. Before 2026-12 ids were those version 5 UUIDs
    themselves (legacy_id); they still answer."""
    return str(uuid.UUID(bytes=uuid.uuid5(NAMESPACE, name).bytes, version=4))


def legacy_id(name: str) -> str:
    return str(uuid.uuid5(NAMESPACE, name))


def alliance_collection_id(alliance_id: int) -> str:
    return stable_id(f"alliance:{alliance_id}")


def organisation_collection_id(organisation_id: int) -> str:
    return stable_id(f"organisation:{organisation_id}")


def _legacy_collection_id(collection: "Collection") -> str:
    if collection.alliance is not None:
        return legacy_id(f"alliance:{collection.alliance.id}")
    return legacy_id(f"organisation:{collection.organisation_id}")


def collections_for(user) -> list[Collection]:
    """One collection per alliance the user's organisation is an active member of, and the
    organisation's own notes (read-only). Decided on every request."""
    alliances = active_alliances_of(user.organisation_id)
    found = [Collection(alliance_collection_id(a.id), a.name,
                        a.description or f"Notes shared in {a.name}.", True, True, alliance=a)
             for a in alliances]
    org = user.organisation
    found.append(Collection(organisation_collection_id(org.id), f"{org.name}: own notes",
                            f"Every note {org.name} posted, in any alliance (read-only).",
                            True, False, organisation_id=org.id))
    return found


def get_collection(user, collection_id: str) -> Collection:
    for collection in collections_for(user):
        if collection_id in (collection.id, _legacy_collection_id(collection)):
            return collection
    raise TaxiiError(404, "Collection not found",
                     "There is no such collection, or your key cannot see it.")


# --- what a collection serves ---------------------------------------------------------------

def served_conditions(collection: Collection) -> list:
    """Conditions on readable notes: in the collection, not RED, not retracted."""
    where = [Note.tlp != "RED", Note.retracted_at.is_(None)]
    if collection.alliance is not None:
        where.append(Note.audiences.any(NoteAudience.alliance_id == collection.alliance.id))
    else:
        where.append(Note.organisation_id == collection.organisation_id)
    return where


def _note_ids(user, collection: Collection):
    return readable_note_ids(Principal.of(user)).where(*served_conditions(collection))


def held(user, collection: Collection, object_id):
    """EXISTS: a note of the collection that the user may read holds this object version.
    Correlated, i.e. checked row by row: a page then walks the (date_added, id) index and
    stops at its end. (`id IN (every visible object)` made SQLite list and sort every object
    of the collection on every page: not flat in the collection's size.) `OFFSET 0` keeps
    PostgreSQL from turning the check around into a join: planned from default estimates
    (no statistics yet, or stale ones) it then gathered every object of the collection's
    readable notes and compared each row walked with all of them (tests/taxii/
    test_statistics.py)."""
    return _note_ids(user, collection).where(Note.id == NoteObject.note_id,
                                             NoteObject.object_id == object_id).offset(0).exists()


def visible(user, collection: Collection):
    """The condition on StixObject: held by a note of the collection the user may read."""
    return held(user, collection, StixObject.id)
