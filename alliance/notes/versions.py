"""Which of a post's objects are new versions and which are stored already: the versions
check (check_versions) by the authorship rules, asking only of versions the poster can see."""

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import (
    Integer,
    Row,
    select,
)

from alliance.core.queries import one_of
from alliance.extensions import db
from alliance.notes.authorship import (
    as_sent_with,
    needs_creator,
    platform_creators,
    with_note_marking,
)
from alliance.notes.models import (
    SERVED_WITH,
    NoteObject,
    StixObject,
)
from alliance.notes.storage import hash_body
from alliance.sharing.policy import (
    Principal,
    readable_among,
)
from alliance.stix.validation import (
    UNVERSIONED,
    BundleRejected,
    Problem,
    is_sco,
    version_key,
)


def _owners(rows) -> dict[str, tuple[int, str | None]]:
    """stix id -> (organisation that posted its first version on the platform, the creator
    that version names), from stored_versions' rows (in row order)."""
    owners: dict[str, tuple[int, str | None]] = {}
    for row in rows:
        owners.setdefault(row.stix_id, (row.organisation_id, row.creator))
    return owners


def check_versions(actor, objects: list[dict], all_rows: Sequence,
                   tlp: str) -> tuple[list[dict], list]:
    """Split objects into new versions to store and stored versions to link, by the
    authorship rules (alliance.notes.authorship), and name a creator where an object that
    carries one names none (in `objects`): the creator of the versions of its id the poster
    can see (a re-share of them), else the poster's organisation; and give the poster's
    objects that carry no TLP marking the note's (`tlp`: authorship.with_note_marking).

    Only the organisation that posted an id's first version on the platform (_owners) may
    add versions of it. Another organisation may repost a version, and may post its own
    versions of a third-party object (its first version created by no platform
    organisation): those are its own copy, which never replaces the first poster's
    (taxii.reading serves one organisation's versions of an id per collection). A
    different body for a stored id + modified is a 409.

    Only versions the poster can see are linked, compared for a 409 or lend their creator:
    its own organisation's, and those held by notes it may read. Comparing with every stored
    row would answer "is this version stored, and by whom?" for notes the poster cannot
    read (SCO ids are derived from their values: ipv4-addr--uuid5("203.0.113.9")). Who posted
    an id first is asked of every row: an SDO's id is random, so only who has seen the
    object can name it, and a refusal tells no more than that it was posted before."""
    new, existing, problems, conflicts = [], [], [], []
    org_id, mine = actor.organisation_id, actor.organisation.stix_id
    owners = _owners(all_rows)
    stored = _seen_versions(actor, all_rows)
    third_party = _third_party(owners)
    for index, sent in enumerate(objects):
        filled = needs_creator(sent)
        objects[index] = obj = _as_stored(sent, filled, stored, tlp, mine)
        version = obj.get("modified") or obj.get("created") or ""
        # Compared as instants: "12:00:00Z" and "12:00:00.000Z" are one version.
        versions = _same_version(stored.get(obj["id"], ()), version)
        if versions:
            same = _identical(versions, obj, None if obj is sent else sent)
            if same is not None:
                existing.append(same)
            else:
                conflicts.append(_conflict(obj["id"], versions, version))
        elif _may_add(obj, version, filled, org_id, owners, third_party, all_rows):
            new.append(obj)
        else:
            problems.append(Problem(obj["id"], "id", "another organisation posted this object "
                                                     "first; only it may add versions"))
    if conflicts:
        raise BundleRejected(conflicts + problems, status_code=409)
    if problems:
        raise BundleRejected(problems)
    return new, existing


def _seen_versions(actor, all_rows: Sequence) -> dict[str, list]:
    """stix id -> the stored versions of it the poster can see (check_versions): its own
    organisation's (but those of its TLP:RED notes, scope), and others' held by notes it may
    read."""
    org_id = actor.organisation_id
    rows = [r for r in all_rows if r.scope == 0 or r.organisation_id != org_id]
    visible = _visible_object_ids(Principal.of(actor), [
        r.id for r in rows if r.organisation_id != org_id])
    stored: dict[str, list] = {}
    for row in rows:
        if row.organisation_id == org_id or row.id in visible:
            stored.setdefault(row.stix_id, []).append(row)
    return stored


def _as_stored(sent: dict, filled: bool, stored: dict[str, list], tlp: str, mine: str) -> dict:
    """The object as the note stores it: a creator named where it carries one and names none
    (`filled`: the creator of the versions the poster can see, else the poster's
    organisation `mine`), the note's TLP marking where the poster's carries none."""
    obj = sent
    if filled:
        seen = stored.get(obj["id"], ())
        obj = {**obj, "created_by_ref": next((r.creator for r in seen if r.creator), mine)}
    return with_note_marking(obj, tlp, mine)


def _identical(versions: list, obj: dict, sent: dict | None):
    """The stored version (row) of these that is this object, or None. `sent`: the object as
    sent, when the platform added to it (None when it is stored as sent)."""
    digests = {hash_body(obj)} | ({hash_body(sent)} if sent is not None else set())
    return next((r for r in versions if r.body_hash in digests), None) or next(
        (r for r in versions if _same_object(_stored_body(r.id), obj, sent)), None)


def _conflict(stix_id: str, versions: list, version: str) -> Problem:
    """Why a version of an id stored at the same instant as `version` is refused (a 409)."""
    if all(r.modified == version for r in versions):
        return Problem(stix_id, "modified", "a different object with this id and modified is "
                                            "stored")
    return Problem(stix_id, "modified", (
        f"this version is stored with modified {versions[0].modified}, the same instant as "
        f"{version}: the same object must be sent as stored, and a change needs a later "
        "modified"))


def _may_add(obj: dict, version: str, filled: bool, org_id: int, owners: dict,
             third_party: set[str], all_rows: Sequence) -> bool:
    """Whether the poster's organisation (`org_id`) may store this version of an id, none of
    whose versions it can see at this instant: by the authorship rules of check_versions."""
    owner, creator = owners.get(obj["id"], (org_id, None))
    if owner == org_id or not version or obj["type"] in UNVERSIONED or is_sco(obj):
        return True
    if obj["id"] in third_party and obj.get("created_by_ref") == creator:
        return True  # the poster's own copy of a third-party object
    if obj["type"] == "identity" and "created_by_ref" not in obj:
        return True  # a third party's identity, describing itself (not a platform
        # organisation's: check_authorship refused those): the poster's own copy
    # A version its first poster holds, reposted with no creator.
    return filled and bool(_same_version(
        [r for r in all_rows if r.stix_id == obj["id"] and r.organisation_id == owner],
        version))


def _same_object(stored: dict, obj: dict, sent: dict | None) -> bool:
    """A stored body is this object: as it would be stored, as sent, or as sent with the
    platform's additions for another note (another TLP, a creator named then)."""
    return stored == obj or (sent is not None and (stored == sent or as_sent_with(sent, stored)))


def _same_version(rows, version: str) -> list:
    return [r for r in rows if r.modified == version
            or version_key(r.modified) == version_key(version)]


def _third_party(owners: dict) -> set[str]:
    """The ids whose first version names a creator that is no platform organisation."""
    creators = {creator for _, creator in owners.values() if creator}
    platform = platform_creators(creators)
    return {stix_id for stix_id, (_, creator) in owners.items()
            if creator and creator not in platform}


def _stored_body(row_id: int) -> dict:
    # Cast: row_id is a version stored_versions just read (body is NOT NULL), so a row.
    return cast(dict, db.session.scalar(select(StixObject.body).where(StixObject.id == row_id)))


def stored_versions(ids: list[str]) -> Sequence[Row[*tuple[Any, ...]]]:
    """Every stored version of these STIX ids, as rows with the StixObject attributes the
    versions check reads, in row order (the first row of an id is its first poster's).
    check_versions leaves out the poster's own TLP:RED notes' versions (scope): its rows
    count as seen without asking the read rule, so those would tell a colleague what such a
    note holds; of other organisations' rows it keeps those a note the poster may read
    holds."""
    columns = (StixObject.id, StixObject.stix_id, StixObject.modified,
               StixObject.organisation_id, StixObject.body_hash, StixObject.scope,
               StixObject.body["created_by_ref"].as_string().label("creator"))
    if not ids:
        return []
    posted = StixObject.scope != SERVED_WITH  # not the platform's own (served_with)
    # One statement, the ids as one parameter (queries.one_of): a bundle of 10,000 objects
    # is one lookup, not twenty queries of 500 bound values.
    return db.session.execute(select(*columns).where(one_of(StixObject.stix_id, ids), posted)
                              .order_by(StixObject.id)).all()


def links_of(object_ids) -> list[Row[int, int]]:
    """(object row id, note id) for every note holding one of these stored versions."""
    return list(db.session.execute(select(NoteObject.object_id, NoteObject.note_id).where(
        one_of(NoteObject.object_id, set(object_ids), Integer))).all())


def _visible_object_ids(principal: Principal, object_ids) -> set[int]:
    """The stored object versions (by row id) that some note the principal may read holds."""
    links = links_of(object_ids)
    readable = readable_among(principal, {note_id for _, note_id in links})
    return {object_id for object_id, note_id in links if note_id in readable}
