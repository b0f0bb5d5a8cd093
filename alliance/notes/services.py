"""Posting, versioning and retracting notes. Reading goes through alliance.sharing.policy.

post_note() is the one way content gets in (compose forms, bundle upload, CLI import, later
TAXII): it checks the audience and the TLP, validates every object, checks versions and
ownership against what is stored, then stores the note, its report, its objects and their
observables in one transaction — all or nothing."""
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy import (
    JSON,
    Integer,
    String,
    Text,
    and_,
    any_,
    bindparam,
    func,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.types import TypeDecorator

from alliance.alliances.models import Alliance, Membership
from alliance.audit.services import record
from alliance.auth.models import User
from alliance.core.errors import Conflict, DomainError, NotAllowed
from alliance.core.models import utcnow
from alliance.core.queries import walk_index
from alliance.core.vocab import policy_tag_choices
from alliance.extensions import db
from alliance.notes import search, served_with, warninglists
from alliance.notes.authorship import (
    as_sent_with,
    check_authorship,
    needs_creator,
    platform_creators,
    with_note_marking,
)
from alliance.notes.models import (
    SERVED_WITH,
    FormSubmission,
    Note,
    NoteAudience,
    NoteComment,
    NoteFacet,
    NoteObject,
    NoteRecipient,
    Observable,
    StixObject,
    facet_rows,
)
from alliance.sharing.policy import (
    TAXII_SERVED_LINKS_SQL,
    TAXII_SERVED_OWN_LINKS_SQL,
    Principal,
    last_public_retraction,
    readable_among,
    readable_notes,
)
from alliance.stix import observables
from alliance.stix.markings import looser_than, marking_id, strictest_level
from alliance.stix.tlp import TLP_LEVELS, TLP_RANK
from alliance.stix.validation import (
    UNVERSIONED,
    BundleRejected,
    Problem,
    check_objects,
    is_sco,
    version_key,
)


def _stix_now() -> str:
    return utcnow().strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _hash(obj: dict, stored=None) -> str:
    """sha256 of an object's JSON text: `stored` when it is the text being stored (one
    serialisation for both), else orjson's. Key order is kept, so equal hashes mean identical
    objects but different ones do not mean different objects: _check_versions then compares
    the stored body itself (rows stored before this rule hashed sorted keys)."""
    if type(stored) is not str:
        try:
            return hashlib.sha256(orjson.dumps(obj)).hexdigest()
        except TypeError:  # beyond orjson (integers over 64 bits): the column's fallback
            stored = json.dumps(obj)
    return hashlib.sha256(stored.encode()).hexdigest()


def audience_choices(user) -> list[Alliance]:
    """Alliances the user's organisation may post to: those where it is an active member."""
    return db.session.scalars(
        select(Alliance).join(Membership, Membership.alliance_id == Alliance.id)
        .where(Membership.organisation_id == user.organisation_id, Membership.state == "active")
        .order_by(Alliance.name)).all()


def _postable(user, alliance_ids) -> list[int]:
    """Of these alliance ids (as posted, unchecked), those the user may post to: who is in
    another alliance is not the user's to list."""
    allowed = {a.id for a in audience_choices(user)}
    return [i for i in alliance_ids or [] if i in allowed]


def recipient_choices(user, alliance_ids) -> list[User]:
    """Users who may be named on a TLP:RED note to these alliances (those of them the user
    may post to): active users of organisations that are active members of at least one."""
    alliance_ids = _postable(user, alliance_ids)
    if not alliance_ids:
        return []
    return db.session.scalars(
        select(User).join(Membership, Membership.organisation_id == User.organisation_id)
        .where(Membership.alliance_id.in_(alliance_ids), Membership.state == "active",
               User.deactivated_at.is_(None), User.email_verified_at.is_not(None))
        .distinct().order_by(User.name)).all()


def audience_preview(user, alliance_ids, tlp: str, recipient_ids=()) -> dict:
    """Exactly who will be able to read a note with this audience (the alliances of it the
    user may post to), as the rule says today."""
    alliance_ids = _postable(user, alliance_ids)
    orgs = db.session.execute(
        select(Membership.organisation_id).where(Membership.alliance_id.in_(alliance_ids or [0]),
                                                 Membership.state == "active").distinct()).all()
    from alliance.orgs.models import Organisation

    org_ids = {row[0] for row in orgs} | {user.organisation_id}
    organisations = db.session.scalars(select(Organisation).where(Organisation.id.in_(org_ids))
                                       .order_by(Organisation.name)).all()
    if tlp == "RED":
        allowed = {u.id: u for u in recipient_choices(user, alliance_ids)}
        users = [allowed[i] for i in recipient_ids if i in allowed]
        return {"everyone": False, "organisations": [], "users": [user] + users}
    return {"everyone": tlp == "CLEAR", "organisations": organisations, "users": []}


def _check_audience(actor, tlp: str, alliance_ids, recipient_ids, publish_public: bool):
    if tlp not in TLP_LEVELS:
        raise DomainError("Choose a TLP level.", field="tlp")
    allowed = {a.id: a for a in audience_choices(actor)}
    alliance_ids = sorted(set(alliance_ids or []))
    if not alliance_ids:
        raise DomainError("Choose at least one alliance to share with.", field="alliances")
    for alliance_id in alliance_ids:
        if alliance_id not in allowed:
            raise DomainError("You can share only with alliances your organisation is an "
                              "active member of.", field="alliances")
        if tlp not in allowed[alliance_id].allowed_tlps:
            raise DomainError(f"{allowed[alliance_id].name} does not allow TLP:{tlp}.",
                              field="tlp")
    recipient_ids = sorted(set(recipient_ids or []))
    if tlp == "RED":
        eligible = {u.id for u in recipient_choices(actor, alliance_ids)}
        if not recipient_ids:
            raise DomainError("Name the people who receive a TLP:RED note.", field="recipients")
        if not set(recipient_ids) <= eligible:
            raise DomainError("Recipients must be active users of organisations in the chosen "
                              "alliances.", field="recipients")
    elif recipient_ids:
        raise DomainError("Named recipients are only for TLP:RED notes.", field="recipients")
    if publish_public and (tlp != "CLEAR" or not any(
            allowed[a].publish_clear_allowed for a in alliance_ids)):
        raise DomainError("Only TLP:CLEAR notes in an alliance that allows it can be "
                          "published on the public Insights page.", field="publish_public")
    return [allowed[a] for a in alliance_ids], recipient_ids


def _owners(rows) -> dict[str, tuple[int, str | None]]:
    """stix id -> (organisation that posted its first version on the platform, the creator
    that version names), from _stored_versions' rows (in row order)."""
    owners: dict[str, tuple[int, str | None]] = {}
    for row in rows:
        owners.setdefault(row.stix_id, (row.organisation_id, row.creator))
    return owners


def _check_versions(actor, objects: list[dict], all_rows: list,
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
    (taxii.services serves one organisation's versions of an id per collection). A
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
    rows = [r for r in all_rows if r.scope == 0 or r.organisation_id != org_id]
    visible = _visible_object_ids(Principal.of(actor), [
        r.id for r in rows if r.organisation_id != org_id])
    stored: dict[str, list] = {}
    for row in rows:
        if row.organisation_id == org_id or row.id in visible:
            stored.setdefault(row.stix_id, []).append(row)
    third_party = _third_party(owners)
    for index, sent in enumerate(objects):
        obj, filled = sent, needs_creator(sent)
        if filled:
            seen = stored.get(obj["id"], ())
            obj = {**obj, "created_by_ref": next((r.creator for r in seen if r.creator), mine)}
        objects[index] = obj = with_note_marking(obj, tlp, mine)
        if obj is sent:
            sent = None
        version = obj.get("modified") or obj.get("created") or ""
        # Compared as instants: "12:00:00Z" and "12:00:00.000Z" are one version.
        versions = _same_version(stored.get(obj["id"], ()), version)
        if versions:
            digests = {_hash(obj)} | ({_hash(sent)} if sent is not None else set())
            same = next((r for r in versions if r.body_hash in digests), None) or next(
                (r for r in versions if _same_object(_stored_body(r.id), obj, sent)), None)
            if same is not None:
                existing.append(same)
            elif all(r.modified == version for r in versions):
                conflicts.append(Problem(obj["id"], "modified", "a different object with this "
                                                                "id and modified is stored"))
            else:
                conflicts.append(Problem(obj["id"], "modified", (
                    f"this version is stored with modified {versions[0].modified}, the same "
                    f"instant as {version}: the same object must be sent as stored, and a "
                    "change needs a later modified")))
            continue
        owner, creator = owners.get(obj["id"], (org_id, None))
        if owner == org_id or not version or obj["type"] in UNVERSIONED or is_sco(obj):
            new.append(obj)
        elif obj["id"] in third_party and obj.get("created_by_ref") == creator:
            new.append(obj)  # the poster's own copy of a third-party object
        elif obj["type"] == "identity" and "created_by_ref" not in obj:
            new.append(obj)  # a third party's identity, describing itself (not a platform
            # organisation's: check_authorship refused those): the poster's own copy
        elif filled and _same_version(
                [r for r in all_rows if r.stix_id == obj["id"] and r.organisation_id == owner],
                version):
            new.append(obj)  # a version its first poster holds, reposted with no creator
        else:
            problems.append(Problem(obj["id"], "id", "another organisation posted this object "
                                                     "first; only it may add versions"))
    if conflicts:
        raise BundleRejected(conflicts + problems, status_code=409)
    if problems:
        raise BundleRejected(problems)
    return new, existing


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


def _scope(note: Note) -> int:
    """StixObject.scope of the versions a note stores: a TLP:RED note's are its own."""
    return note.id if note.tlp == "RED" else 0


def _stored_body(row_id: int) -> dict:
    return db.session.scalar(select(StixObject.body).where(StixObject.id == row_id))


def _stored_versions(ids: list[str]) -> list:
    """Every stored version of these STIX ids, as rows with the StixObject attributes the
    versions check reads, in row order (the first row of an id is its first poster's).
    _check_versions leaves out the poster's own TLP:RED notes' versions (scope): its rows
    count as seen without asking the read rule, so those would tell a colleague what such a
    note holds; of other organisations' rows it keeps those a note the poster may read
    holds."""
    columns = (StixObject.id, StixObject.stix_id, StixObject.modified,
               StixObject.organisation_id, StixObject.body_hash, StixObject.scope,
               StixObject.body["created_by_ref"].as_string().label("creator"))
    if not ids:
        return []
    posted = StixObject.scope != SERVED_WITH  # not the platform's own (served_with)
    if db.session.connection().dialect.name == "sqlite":
        # One statement, the ids as one JSON array that SQLite walks itself: a bundle of
        # 10,000 objects is one lookup, not twenty queries of 500 bound values.
        wanted = func.json_each(bindparam("stix_ids")).table_valued("value")
        return db.session.execute(
            select(*columns).where(StixObject.stix_id.in_(select(wanted.c.value)), posted)
            .order_by(StixObject.id), {"stix_ids": orjson.dumps(ids).decode()}).all()
    if db.session.connection().dialect.name == "postgresql":  # the same, as one array
        from sqlalchemy.dialects import postgresql

        wanted = bindparam("stix_ids", ids, type_=postgresql.ARRAY(String))
        return db.session.execute(select(*columns).where(StixObject.stix_id == any_(wanted), posted)
                                  .order_by(StixObject.id)).all()
    rows = []
    for chunk in range(0, len(ids), 500):
        rows += db.session.execute(select(*columns).where(
            StixObject.stix_id.in_(ids[chunk:chunk + 500]), posted).order_by(StixObject.id)).all()
    return sorted(rows, key=lambda row: row.id)


def _links(object_ids) -> list[tuple[int, int]]:
    """(object row id, note id) for every note holding one of these stored versions."""
    links = []
    wanted = sorted(set(object_ids))
    for chunk in range(0, len(wanted), 500):
        links += db.session.execute(select(NoteObject.object_id, NoteObject.note_id).where(
            NoteObject.object_id.in_(wanted[chunk:chunk + 500]))).all()
    return links


def _visible_object_ids(principal: Principal, object_ids) -> set[int]:
    """The stored object versions (by row id) that some note the principal may read holds."""
    links = _links(object_ids)
    readable = readable_among(principal, {note_id for _, note_id in links})
    return {object_id for object_id, note_id in links if note_id in readable}


class AlreadyPosted(Conflict):
    """The same form, with the same content, was sent before and stored: note_id or
    comment_id names what it stored. Nothing was stored this time."""

    def __init__(self, done: FormSubmission):
        super().__init__("This form was sent twice; it is posted once.")
        self.note_id, self.comment_id = done.note_id, done.comment_id


# A form sent again with the same content this soon after is the same post, whatever page
# it came from: Back re-fetches the compose page (signed-in pages are not cached), with a
# token of its own, and the browser fills the fields in again as they were.
RESENT_WITHIN = timedelta(minutes=10)


@dataclass(frozen=True)
class Sending:
    """One sending of a compose or response form (notes.views._sending): `key`, its page's
    token with the digest of what was sent (unique per user: of two sendings at the same
    moment, one stores); `content`, the digest alone."""

    key: str
    content: str


def _submission(actor, sending: Sending) -> FormSubmission | None:
    """What the same sending stored before: the same key, or the same content within
    RESENT_WITHIN."""
    return db.session.scalar(select(FormSubmission).where(
        FormSubmission.user_id == actor.id,
        or_(FormSubmission.form_key == sending.key,
            and_(FormSubmission.content_key == sending.content,
                 FormSubmission.created_at >= utcnow() - RESENT_WITHIN)))
        .order_by(FormSubmission.id).limit(1))


def _check_submission(actor, sending: Sending | None) -> None:
    """Before any work: a form sent before is AlreadyPosted."""
    if sending and (done := _submission(actor, sending)) is not None:
        raise AlreadyPosted(done)


def _record_submission(actor, sending: Sending | None, **stored) -> None:
    """In the posting transaction, flushed at once. Of two sendings at the same moment, both
    past _check_submission, the second's insert waits for the first's commit and fails on
    the unique key: it rolls back, storing nothing, and is AlreadyPosted."""
    if not sending:
        return
    db.session.add(FormSubmission(user_id=actor.id, form_key=sending.key,
                                  content_key=sending.content, **stored))
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        done = _submission(actor, sending)
        if done is None:
            raise
        raise AlreadyPosted(done) from None


def submitted_note(actor, note_id: int | None) -> Note | None:
    """The note a form sent before stored, if the actor may still read it."""
    if note_id is None:
        return None
    return db.session.scalar(readable_notes(Principal.of(actor)).where(Note.id == note_id))


def _clean_tags(tags) -> list[str]:
    known = {t for t, _ in policy_tag_choices()}
    unknown = sorted(set(tags or []) - known)
    if unknown:
        raise DomainError(f"Unknown policy tags: {', '.join(unknown)}.", field="policy_tags")
    return sorted(set(tags or []))


def _audit_target(note: Note) -> tuple:
    """Audit events name a note by its row number only, never its title or STIX id: the
    audit log is read by coordinators and admins who may not be allowed to read the note."""
    return ("note", note.id, f"note #{note.id}")


def post_note(actor, *, title: str, tlp: str, alliance_ids, objects: list[dict],
              kind: str = "bundle", description: str = "", recipient_ids=(),
              policy_tags=(), sectors=(), countries=(), labels=(),
              publish_public: bool = False, warnings=(), progress=None,
              alerts: bool = True, refs: set[str] | None = None,
              also: Callable[[Note], None] | None = None,
              submission: Sending | None = None, looser_confirmed: bool = True,
              flagged_confirmed: bool = True) -> Note:
    """Store a new note holding these STIX objects, for this audience. Raises DomainError
    (with .field) for form problems and BundleRejected (with .problems) for STIX ones;
    stores nothing then. `progress`, if given, is called with 1 after each object is
    validated (the CLI import's progress bar). `alerts=False` (bulk imports) sends no watch
    alerts; the note still reaches digests. `refs`: the references these very objects hold,
    when parsing gathered them (Parsed.refs), so they are not walked again. `also`, if
    given, is called with the stored note before the commit, to store what belongs with it
    in the same transaction (a TAXII status): both or neither. `submission`: the compose
    form's sending (Sending); the same one again is AlreadyPosted. `looser_confirmed=False`
    (the web forms, the CLI without --allow-looser-markings) refuses objects marked looser
    than the note (markings.looser_than) with a DomainError on field "confirm_looser": a
    person must confirm they go out at their own marking; machines (TAXII) cannot.
    `flagged_confirmed=False` (the web forms) refuses observables on a warning list
    (warninglists.flagged_in: 10.0.0.1, 8.8.8.8) with a DomainError on field
    "confirm_flagged" until the poster confirms them; stored, they are marked and never
    correlated."""
    if not getattr(actor, "can_act", False):
        raise NotAllowed("Only members of vetted organisations can post.")
    _check_submission(actor, submission)
    title = (title or "").strip()
    if not title or len(title) > 300:
        raise DomainError("Give the note a title of at most 300 characters.", field="title")
    alliances, recipient_ids = _check_audience(actor, tlp, alliance_ids, recipient_ids,
                                               publish_public)
    objects, problems, _unresolved = check_objects(objects, progress=progress, refs=refs)
    # Every problem in one answer: the platform's authorship rules too, on the objects that
    # are valid STIX.
    problems += check_authorship(actor.organisation, objects)
    if problems:
        raise BundleRejected(problems)
    strictest = strictest_level(objects)
    if strictest and TLP_RANK[strictest] > TLP_RANK[tlp]:
        raise DomainError(f"An object in this note is marked TLP:{strictest}; the note cannot "
                          f"be shared more widely (TLP:{tlp}).", field="tlp")
    if not looser_confirmed and (looser := looser_than(objects, tlp)):
        raise DomainError(f"{len(looser)} object(s) are marked looser than the note's TLP:{tlp}; "
                          "confirm that they are shared at their own looser marking.",
                          field="confirm_looser")
    if not flagged_confirmed and (flagged := warninglists.flagged_in(objects)):
        more = f" And {len(flagged) - 1} more value(s) on warning lists." \
            if len(flagged) > 1 else ""
        raise DomainError(f"{flagged[0].message}: share anyway?{more}",
                          field="confirm_flagged")
    new, existing = _check_versions(actor, objects,
                                    _stored_versions(sorted({o["id"] for o in objects})), tlp)

    org = actor.organisation
    now, stamp = utcnow(), _stix_now()
    report = {
        "type": "report", "spec_version": "2.1", "id": f"report--{uuid.uuid4()}",
        "created": stamp, "modified": stamp, "name": title,
        "description": description or None, "published": stamp,
        "report_types": [{"incident": "threat-report", "indicators": "indicator",
                          "analysis": "threat-report"}.get(kind, "threat-report")],
        "object_refs": sorted({o["id"] for o in objects}) or [org.stix_id],
        "created_by_ref": org.stix_id, "object_marking_refs": [marking_id(tlp)],
        "labels": sorted(set(labels)) or None,
    }
    report = {k: v for k, v in report.items() if v is not None}
    # stix2 (and fastcheck, built from it) is imported where an object is checked: it costs
    # ~0.2 s to import, and every process that builds the app imports this module.
    import stix2

    from alliance.stix import fastcheck

    if fastcheck.check(report) is not fastcheck.ACCEPT:
        # The fast path accepts only what stix2 certainly accepts; anything else (and every
        # refusal, with its message) is stix2's to decide.
        stix2.parse(report, allow_custom=True, version="2.1")
    note = Note(report_id=report["id"], organisation_id=org.id, author_id=actor.id, kind=kind,
                title=title, description=description or "", tlp=tlp,
                policy_tags=_clean_tags(policy_tags), sectors=sorted(set(sectors)),
                countries=sorted(set(countries)), labels=sorted(set(labels)),
                types=sorted({o["type"] for o in objects} | {"report"}),
                publish_public=bool(publish_public), created_at=now, updated_at=now)
    note.audiences = [NoteAudience(alliance_id=a.id) for a in alliances]
    note.recipients = [NoteRecipient(user_id=u) for u in recipient_ids]
    db.session.add(note)
    db.session.flush()
    _record_submission(actor, submission, note_id=note.id)
    _store_objects(note, [report] + new, existing, objects, now)
    from alliance.digests.services import note_posted

    note_posted(note, alerts=alerts)
    # Not attached to an alliance: its coordinators' log must not count notes they cannot read.
    record("note.posted", actor, _audit_target(note), organisation=org,
           objects=len(objects), warnings=list(warnings))
    if also is not None:
        also(note)
    db.session.commit()
    return note


def _store_objects(note: Note, new: list[dict], existing: list[StixObject], objects: list[dict],
                   now) -> None:
    """Bulk inserts (executemany) of the note's new object versions, its links to new and
    already stored versions, its observables and its facets: a bulk import is bounded by the
    database, not by building one ORM object per row."""
    org_id, note_id = note.organisation_id, note.id
    if new:
        # Rows as tuples, built once; the body goes through the column's own processor here
        # (SQLite) and the values the same on every row are processed once (_insert_rows).
        body = _processor(StixObject.__table__, "body")
        _insert_rows(StixObject.__table__, ("stix_id", "type", "modified", "body", "body_hash"), [
            (o["id"], o["type"], o.get("modified") or o.get("created") or "", stored,
             _hash(o, stored)) for o in new for stored in (body(o),)], processed=("body",),
            constants={"organisation_id": org_id, "first_note_id": note_id, "date_added": now,
                       "scope": _scope(note)})
    links = NoteObject.__table__
    if not existing:
        # Every version the note holds is one it stored just now: link them in the database,
        # in row order (as sorted() below would), without a round trip for their ids.
        db.session.execute(links.insert().from_select(
            ["note_id", "object_id", "note_version"],
            select(literal(note_id), StixObject.id, literal(1))
            .where(StixObject.first_note_id == note_id).order_by(StixObject.id)))
    else:
        stored = db.session.scalars(select(StixObject.id).where(
            StixObject.first_note_id == note_id)).all()
        _insert_rows(links, ("object_id",), [
            (object_id,) for object_id in sorted(set(stored) | {r.id for r in existing})],
            constants={"note_id": note_id, "note_version": 1})
    served_with.link(note, [new[0], *objects], now)  # its creators' identities, markings
    collect_objects(note)
    extract = observables.extract
    found = sorted({hit for obj in objects for hit in extract(obj)})
    if found:
        # Each stored with the warning list it is on, if any: correlation and watch alerts
        # leave those out (alliance.notes.warninglists).
        warning_of = warninglists.warning_of
        _insert_rows(Observable.__table__, ("kind", "value", "warning"),
                     [(kind, value, warning_of(kind, value)) for kind, value in found],
                     constants={"note_id": note_id})
    facets = facet_rows(note.id, types=note.types, sectors=note.sectors,
                        countries=note.countries, policy_tags=note.policy_tags)
    if facets:
        _bulk_insert(NoteFacet.__table__, facets)


# Where collection_objects rows come from: a note TAXII serves (TAXII_SERVED_LINKS_SQL: not
# TLP:RED, not retracted) that links an object version, under each of its audience
# alliances. A version enters an alliance's collection when such a note first brings it
# there: at the later of the note's post and the version's storing (an edit stores a new
# report version after its note was posted). That is TAXII's date_added for the collection.
# organisation_collection_objects is the same for the author organisation's own collection
# (TAXII_SERVED_OWN_LINKS_SQL: the served notes, without their audiences).
_ENTERED = ("CASE WHEN notes.created_at > stix_objects.date_added THEN notes.created_at "
            "ELSE stix_objects.date_added END")
_JOIN_OBJECTS = "JOIN stix_objects ON stix_objects.id = note_objects.object_id WHERE {where} "


def _us(value: str) -> str:
    """SQLite: a stored timestamp ('YYYY-MM-DD HH:MM:SS.ffffff', SQLAlchemy's form) as whole
    microseconds since 1970."""
    return (f"(CAST(strftime('%s', substr({value}, 1, 19)) AS INTEGER) * 1000000 "
            f"+ CAST(substr({value}, 21, 6) AS INTEGER))")


def _date_added(dialect: str, table: str, column: str, source: str, entered: str,
                floor: bool) -> str:
    """A row's date added: unique and strictly increasing within its collection, so that a
    client polling with added_after = the last page's X-TAXII-Date-Added-Last gets every
    version once (TAXII has no tie-breaker: versions that share an instant with the last one
    it saw would be skipped). The latest of when it entered (`entered`), one microsecond
    after the collection's latest date and (`floor`) the bound :floor, plus the row's rank
    in this insert (in order of entering, then row id). Dates then move at most a
    microsecond a row past the later of those."""
    rank = (f"(ROW_NUMBER() OVER (PARTITION BY {source} "
            f"ORDER BY {entered}, stix_objects.id) - 1)")
    latest = (f"(SELECT MAX(latest.date_added) FROM {table} latest "  # noqa: S608
              f"WHERE latest.{column} = {source})")
    if dialect == "postgresql":
        bound = ", CAST(:floor AS TIMESTAMP)" if floor else ""
        return (f"GREATEST({entered}, {latest} + INTERVAL '1 microsecond'{bound}) "
                f"+ {rank} * INTERVAL '1 microsecond'")
    bound = f", {_us(':floor')}" if floor else ""
    at = f"(MAX({_us(entered)}, COALESCE({_us(latest)} + 1, 0){bound}) + {rank})"
    return (f"strftime('%Y-%m-%d %H:%M:%S', {at} / 1000000, 'unixepoch') "
            f"|| '.' || printf('%06d', {at} % 1000000)")


def _collect(table: str, owner: str, links: str, *, every_note: bool,
             dialect: str = "sqlite", floor: bool = False) -> str:
    """INSERT of a collection table's rows (`owner`: its alliance or organisation column and
    where it comes from). One note's rows (a version the collection holds already keeps its
    row and date), or with `every_note` the rows of many notes at once (bench-data, tests):
    each version dated by the first served note that brought it there (_date_added: never
    at or before a date the collection holds)."""
    column, source = owner.split("=")
    entered = f"MIN({_ENTERED})" if every_note else _ENTERED
    group = (f"GROUP BY {source}, stix_objects.id, stix_objects.type " if every_note else "")
    date = _date_added(dialect, table, column, source, entered, floor)
    return (f"INSERT INTO {table} ({column}, date_added, object_id, type) "  # noqa: S608
            f"SELECT {source}, {date}, stix_objects.id, stix_objects.type "
            f"FROM {links} {_JOIN_OBJECTS}{group}"
            f"ON CONFLICT (object_id, {column}) DO NOTHING")


def _uncollect(table: str, owner: str, links: str) -> str:
    """DELETE of the rows of these object versions ({object_ids}, a sub-select) that no
    served note of the alliance (organisation) holds any more: after an edit let go of a
    report version, after a retraction."""
    column, source = owner.split("=")
    return (f"DELETE FROM {table} WHERE object_id IN ({{object_ids}}) AND NOT EXISTS ("  # noqa: S608
            f"SELECT 1 FROM {links} WHERE note_objects.object_id = {table}.object_id "
            f"AND {source} = {table}.{column})")


_ALLIANCES = ("collection_objects", "alliance_id=note_audiences.alliance_id",
              TAXII_SERVED_LINKS_SQL)
_ORGANISATIONS = ("organisation_collection_objects", "organisation_id=notes.organisation_id",
                  TAXII_SERVED_OWN_LINKS_SQL)
COLLECT_SQL = _collect(*_ALLIANCES, every_note=False)  # SQLite's (bench/floors.py)
COLLECT_OWN_SQL = _collect(*_ORGANISATIONS, every_note=False)
# (dialect, every_note, floor) -> the statements for the alliances' and the organisations'
# tables (floor: no date before :floor).
_COLLECT = {(dialect, every, floor): tuple(
    _collect(*which, every_note=every, dialect=dialect, floor=floor)
    for which in (_ALLIANCES, _ORGANISATIONS))
    for dialect in ("sqlite", "postgresql") for every in (False, True) for floor in (False, True)}
UNCOLLECT_SQL = _uncollect(*_ALLIANCES)
UNCOLLECT_OWN_SQL = _uncollect(*_ORGANISATIONS)


def collect_objects(note: Note) -> None:
    """The note's objects into its alliances' collections (CollectionObject) and its
    organisation's own (OrganisationCollectionObject), when TAXII serves the note. A
    version a collection holds already keeps its date; one new to it is dated now, even
    when it was stored long ago (an identical repost to another alliance, a version of
    another organisation's linked), so that a client reading the collection with
    added_after gets it.

    On PostgreSQL the collections' dates are taken under a transaction lock per collection
    (held to the commit): a post that dates its rows after another's commits after it, so a
    client that has read up to a date never misses a row dated before it later. SQLite has
    one writer at a time."""
    dialect = db.session.connection().dialect.name
    if dialect == "postgresql":
        keys = sorted({_COLLECTION_LOCK + a.alliance_id for a in note.audiences}
                      | {_COLLECTION_LOCK + _OWN_COLLECTION + note.organisation_id})
        for key in keys:  # in one order: two posts never wait on each other's
            db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    for statement in _COLLECT[dialect, False, False]:
        db.session.execute(text(statement.format(where="note_objects.note_id = :note_id")),
                           {"note_id": note.id})


# Advisory lock keys of the collections (bigint): an alliance's, an organisation's own.
_COLLECTION_LOCK = 0x5441584949 << 24   # "TAXII"
_OWN_COLLECTION = 1 << 23


def collect_every_note(where: str = "1 = 1", params: dict | None = None, *,
                       after=None) -> None:
    """The collection rows of every note `where` (SQL on note_objects) selects, at once:
    for bulk fills (bench-data) and rebuilds. `after`: no row dated before it (a rebuild
    after rows were taken out: a date they had may be later than what is left)."""
    params = dict(params or {})
    dialect = db.session.connection().dialect.name
    if after is not None:
        params["floor"] = (after.astimezone(UTC).replace(tzinfo=None)
                           if dialect == "postgresql" else
                           after.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"))
    for statement in _COLLECT[dialect, True, after is not None]:
        db.session.execute(text(statement.format(where=where)), params)


def uncollect_objects(*, note_id: int | None = None, object_id: int | None = None) -> None:
    """Out of the collections (alliances' and organisations') where no served note holds
    them any more: one object version (an edit replaced a report version), or every version
    a note holds (it was retracted). If a later note brings one back, it is new to the
    collection then. After a retraction the versions that other served notes still hold
    are dated again by those notes (collect_every_note): a date the retracted note set would
    still tell when it was posted. A date only moves later, so no client misses a version."""
    if note_id is not None:
        held, params = "SELECT object_id FROM note_objects WHERE note_id = :id", {"id": note_id}
        for table in ("collection_objects", "organisation_collection_objects"):
            db.session.execute(text(f"DELETE FROM {table} "  # noqa: S608 (our names)
                                    f"WHERE object_id IN ({held})"), params)
        # Dated from now on: a date the rows just taken out had is never given again, so
        # a client polling with added_after misses no version dated anew.
        collect_every_note(f"note_objects.object_id IN ({held})", params, after=utcnow())
        return
    for statement in (UNCOLLECT_SQL, UNCOLLECT_OWN_SQL):
        db.session.execute(text(statement.format(object_ids=":id")), {"id": object_id})


def _identity(value):
    return value


def _processor(table, name: str):
    """What a column's values go through before they reach the driver directly: SQLite's
    bind processor, or on PostgreSQL the value COPY is given (the JSON text the engine's
    serializer writes, a UTCDateTime's naive UTC) — the same as an ORM insert stores."""
    dialect = db.session.connection().dialect
    column_type = table.c[name].type
    if dialect.name == "sqlite":
        # dialect_impl: the processor SQLite's own DateTime uses (a fixed text form that
        # sorts and compares like every other stored date), not the generic type's.
        return column_type.dialect_impl(dialect).bind_processor(dialect) or _identity
    if _copies(dialect):
        if isinstance(column_type, JSON):
            return getattr(dialect, "_json_serializer", None) or json.dumps
        if isinstance(column_type, TypeDecorator):
            return lambda value: column_type.process_bind_param(value, dialect)
        if isinstance(column_type, Integer | String | Text):
            return _identity
        raise TypeError(f"no COPY form for {table.name}.{name}")  # a column added later
    return _identity


def _copies(dialect) -> bool:
    """Bulk rows go in with COPY (PostgreSQL through psycopg 3)."""
    return dialect.name == "postgresql" and dialect.driver == "psycopg"


def _insert_rows(table, columns: tuple, rows: list[tuple], *, processed=(),
                 constants: dict | None = None) -> None:
    """Bulk insert of rows (tuples of values for `columns`) plus `constants` (one value for
    every row) into a table, in the session's transaction: on SQLite an executemany straight
    to the driver, on PostgreSQL a COPY; the values go through the columns' processors
    (_processor; those named in `processed` already did), each constant once. SQLAlchemy's
    per-row statement work would otherwise cost more than the insert itself."""
    if not rows:
        return
    constants = constants or {}
    conn = db.session.connection()
    names = tuple(columns) + tuple(constants)
    dialect = conn.dialect
    if dialect.name != "sqlite" and not _copies(dialect):
        conn.execute(table.insert(), [dict(zip(names, row + tuple(constants.values()),
                                               strict=True)) for row in rows])
        return
    fixed = tuple(_processor(table, name)(value) for name, value in constants.items())
    fns = [_identity if name in processed else _processor(table, name) for name in columns]
    if any(fn is not _identity for fn in fns):
        rows = [tuple(fn(v) for fn, v in zip(fns, row, strict=True)) for row in rows]
    if dialect.name == "sqlite":
        sql = (f"INSERT INTO {table.name} ({', '.join(names)}) "  # noqa: S608 (our names)
               f"VALUES ({', '.join('?' * len(names))})")
        conn.exec_driver_sql(sql, [row + fixed for row in rows] if fixed else rows)
        return
    import psycopg

    # The session's own connection and transaction: all or nothing still holds.
    try:
        with conn.connection.driver_connection.cursor() as cursor, cursor.copy(
                f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row + fixed)
    except psycopg.errors.IntegrityError as exc:
        # The driver's own error, past SQLAlchemy: given as SQLAlchemy's, so a unique key
        # lost to a concurrent post is handled (a 409, or checked again) as on SQLite, not
        # a 500.
        raise IntegrityError(f"COPY {table.name}", None, exc) from exc


def _bulk_insert(table, rows: list[dict]) -> None:
    """executemany of rows (dicts with the same keys) into a table (see _insert_rows)."""
    if not rows:
        return
    columns = tuple(rows[0])
    _insert_rows(table, columns, [tuple(row[name] for name in columns) for row in rows])


def note_objects(note: Note) -> list[StixObject]:
    """The objects of a note the caller has already read through the policy."""
    return db.session.scalars(
        select(StixObject).join(NoteObject, NoteObject.object_id == StixObject.id)
        .where(NoteObject.note_id == note.id, StixObject.scope != SERVED_WITH)
        .order_by(StixObject.type, StixObject.stix_id)).all()


def note_bundle(note: Note, objects: list[StixObject] | None = None) -> dict:
    """A STIX 2.1 bundle of the note with what its objects need beside them (served_with):
    the identities of the platform organisations that created them, the TLP 2.0 marking
    definitions they use with their extension definition and its creator. `objects`: the
    note's objects (note_objects), when the caller has them already (the note page), so they
    are not read twice."""
    objs = [row.body for row in (note_objects(note) if objects is None else objects)]
    objs += [body for _owner, body in served_with.needed(db.session, objs, note.tlp)]
    # A bundle is a wrapper, not an object with a life of its own: a version 4 id each time,
    # as STIX 2.1 says ids SHOULD be (stix2-validator's strict mode checks it).
    return {"type": "bundle", "id": f"bundle--{uuid.uuid4()}",
            "objects": objs}


def retract_note(actor, note: Note, reason: str, *, commit: bool = True) -> None:
    """Withdraw a note from every path except its organisation and its coordinators.
    `commit=False`: the caller commits (several notes withdrawn as one action)."""
    from alliance.sharing.policy import can_moderate

    if not can_moderate(actor, note):
        raise NotAllowed("Only the author, their organisation's admins or a coordinator of the "
                         "note's alliances can retract it.")
    if note.retracted_at is not None:
        raise Conflict("This note is already retracted.")
    if not (reason or "").strip():
        raise DomainError("Say why the note is retracted.", field="reason")
    note.retracted_at = utcnow()
    note.retracted_by_id = actor.id
    note.retraction_reason = reason.strip()
    db.session.flush()
    uncollect_objects(note_id=note.id)  # TAXII no longer serves it
    # Not the reason: it is free text about the note (a TAXII deletion names the object),
    # kept on the note for those who may still read it; audit readers may not.
    record("note.retracted", actor, _audit_target(note), organisation=note.organisation)
    if commit:
        db.session.commit()


def add_comment(actor, note: Note, kind: str, text: str = "", opinion: str | None = None,
                submission: Sending | None = None):
    """A comment (STIX note), opinion or sighting on a note the actor has read; it inherits
    the note's audience and TLP. `submission`: as post_note's."""
    _check_submission(actor, submission)
    if kind not in ("comment", "opinion", "sighting"):
        raise DomainError("Unknown kind of response.")
    text = (text or "").strip()
    org = actor.organisation
    base = {"spec_version": "2.1", "created": _stix_now(), "modified": _stix_now(),
            "created_by_ref": org.stix_id, "object_marking_refs": [marking_id(note.tlp)]}
    if kind == "comment":
        if not text:
            raise DomainError("Write something.", field="text")
        stix = {"type": "note", "id": f"note--{uuid.uuid4()}", "content": text,
                "object_refs": [note.report_id], **base}
    elif kind == "opinion":
        choices = ("strongly-disagree", "disagree", "neutral", "agree", "strongly-agree")
        if opinion not in choices:
            raise DomainError("Choose agree, disagree or neutral.", field="opinion")
        stix = {"type": "opinion", "id": f"opinion--{uuid.uuid4()}", "opinion": opinion,
                "object_refs": [note.report_id], **base}
        if text:
            stix["explanation"] = text
    else:
        stix = {"type": "sighting", "id": f"sighting--{uuid.uuid4()}",
                "sighting_of_ref": note.report_id, "where_sighted_refs": [org.stix_id],
                "count": 1, **base}
        if text:
            stix["description"] = text
    import stix2

    stix2.parse(stix, allow_custom=True, version="2.1")
    comment = NoteComment(note_id=note.id, kind=kind, author_id=actor.id, organisation_id=org.id,
                          text=text, opinion=opinion, stix=json.loads(json.dumps(stix)))
    db.session.add(comment)
    db.session.flush()
    _record_submission(actor, submission, comment_id=comment.id)
    record(f"note.{kind}", actor, _audit_target(note), organisation=org)
    db.session.commit()
    return comment


# --- reading (every query starts from the policy's readable set) ---------------------------

FEED_PAGE = 25


def feed(principal: Principal, *, alliance_id=None, tlp=None, stix_type=None, sector=None,
         country=None, policy_tag=None, since=None, until=None, query=None, before=None,
         limit: int = FEED_PAGE):
    """Readable notes, newest first, filtered; keyset pagination on (created_at, id).
    Returns (notes, next_cursor)."""
    from sqlalchemy import and_

    from alliance.sharing.policy import readable_notes

    # Each filter on another table, as (note id column, condition on that table).
    lookups = []
    if alliance_id:
        lookups.append((NoteAudience.note_id, NoteAudience.alliance_id == alliance_id))
    for facet, value in (("type", stix_type), ("sector", sector), ("country", country),
                         ("policy_tag", policy_tag)):
        if value:
            lookups.append((NoteFacet.note_id, and_(NoteFacet.facet == facet,
                                                    NoteFacet.value == value)))
    # Values many notes hold (issue 22: type=indicator, 86% of notes; a search for
    # "phishing"): walk the feed index newest first and look each note up in the filter's
    # index, to the page's end — a few dozen lookups however many notes match. Reading every
    # match and sorting them grows with the data instead. A rare value is the other way
    # round: its few notes are looked up and sorted, where a walk would pass most notes by.
    top = _window_top(before) if lookups or query else 0
    walk = all(_held_by_many(column, condition, top) for column, condition in lookups) and (
        not query or _text_matches_many(query, top))
    if walk:
        probes = [_per_note(column == Note.id, condition) for column, condition in lookups]
        if query:
            probes.append(or_(*_text_probes(query)))
        # First: checked before the read rule on each note walked (readable_notes).
        stmt = readable_notes(principal, *probes)
    else:
        stmt = readable_notes(principal)
        for column, condition in lookups:
            stmt = stmt.where(Note.id.in_(select(column).where(condition)))
        if query:
            stmt = stmt.where(or_(*_text_match(query)))
    if tlp:
        stmt = stmt.where(Note.tlp == tlp)
    if since:
        stmt = stmt.where(Note.created_at >= since)
    if until:
        stmt = stmt.where(Note.created_at < until)
    if before:
        created, note_id = before
        stmt = stmt.where(or_(Note.created_at < created,
                              and_(Note.created_at == created, Note.id < note_id)))
    stmt = stmt.order_by(Note.created_at.desc(), Note.id.desc()).limit(limit + 1)
    rows = (walk_index(stmt, scalars=True) if walk and (lookups or query)
            else db.session.scalars(stmt).all())
    cursor = (rows[limit - 1].created_at, rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], cursor


def feed_updated(notes) -> datetime:
    """The public feed's <updated>: the last time anything in it changed, which never goes
    back (RFC 4287 4.2.15). A retraction takes a note out of the feed: when it happened
    counts too, or the feed would seem older after it (the retracted note was public, so its
    retraction time reveals nothing)."""
    retracted = last_public_retraction()
    times = [n.updated_at for n in notes] + ([retracted] if retracted else [])
    return max(times) if times else datetime(2000, 1, 1, tzinfo=UTC)


# How the feed tells a common filter value from a rare one: among the FEED_WINDOW notes
# numbered up to where the page starts (ids follow posting order), one note in 100 or more
# holds it. Common: a walk of the feed index finds a page's notes within some 100 notes per
# note of the page, however many notes are stored. Rare: its notes are looked up and sorted.
FEED_WINDOW = 2000
FEED_COMMON = FEED_WINDOW // 100


def _window_top(before) -> int:
    """The highest note id the page can hold (an estimate: ids follow posting order)."""
    if before:
        return before[1]
    return db.session.scalar(select(func.max(NoteAudience.note_id))) or 0


def _held_by_many(column, condition, top: int) -> bool:
    """Whether FEED_COMMON or more of the FEED_WINDOW notes numbered up to `top` are in a
    filter's table (audiences, facets, observables; `column` its note id) under `condition`.
    Reads at most that many index entries of it. Readable or not: it only chooses the plan
    and tells the reader nothing."""
    return db.session.scalar(select(func.count()).select_from(
        select(column).where(condition, column > top - FEED_WINDOW, column <= top)
        .limit(FEED_COMMON).subquery())) >= FEED_COMMON


def _text_matches_many(query: str, top: int) -> bool:
    """A search many notes match: by their words, or by the observable value it names."""
    q = query.strip()[:200]
    hit = observables.detect(q)
    return search.matches_often(q, top - FEED_WINDOW, top, FEED_COMMON / FEED_WINDOW) or \
        _held_by_many(Observable.note_id,
                      Observable.value == (hit[1] if hit else q.lower()), top)


def _per_note(*conditions):
    """EXISTS (SELECT 1 ... WHERE conditions): one index lookup for each note a walk of the
    feed reaches, the conditions tying it to that note (`NoteFacet.note_id == Note.id`) of
    a statement from the read rule. On PostgreSQL, OFFSET 0 keeps it a lookup per note
    instead of a join that reads (or hashes) every matching row first."""
    subquery = select(literal(1)).where(*conditions)
    if db.session.get_bind().dialect.name == "postgresql":
        subquery = subquery.offset(0)
    return subquery.exists()


def _text_probes(query: str):
    """_text_match for a walk of the feed: each condition looks the walked note up (its
    observables by note id, its words in the search index)."""
    q = query.strip()[:200]
    hit = observables.detect(q)
    probes = [_per_note(Observable.note_id == Note.id,
                        Observable.value == (hit[1] if hit else q.lower()))]
    words = search.match_probe(q)
    if words is not None:
        probes.append(words)
    return probes


def _text_match(query: str):
    """Full-text words in title, description and labels (alliance.notes.search), or the
    normalised observable value."""
    q = query.strip()[:200]
    hit = observables.detect(q)
    by_value = select(Observable.note_id).where(
        Observable.value == (hit[1] if hit else q.lower()))
    if db.session.connection().dialect.name == "postgresql":
        # `id = ANY(ARRAY(subquery))` rather than `id IN (subquery)`: ORed with the full-text
        # condition, PostgreSQL then combines the primary key and the search index
        # (BitmapOr) instead of walking the feed index and computing every note's search
        # document (~1 s a search at 1,000,000 objects; tests/bench/test_query_plans.py).
        matches = [Note.id == any_(func.array(by_value.scalar_subquery()))]
    else:
        matches = [Note.id.in_(by_value)]
    words = search.match_clause(q)
    if words is not None:
        matches.append(words)
    return matches


def comments_of(note: Note) -> list[NoteComment]:
    """Responses to a note the caller has read through the policy (they share its rule)."""
    return db.session.scalars(select(NoteComment).where(NoteComment.note_id == note.id)
                              .order_by(NoteComment.created_at)).all()


def correlated(principal: Principal, note: Note, limit: int = 50) -> list[tuple[Note, list]]:
    """Other readable notes sharing an observable with this one (common values excluded)."""
    from sqlalchemy import func

    from alliance.sharing.policy import readable_notes

    mine = select(Observable.value).where(Observable.note_id == note.id,
                                          Observable.value.not_in(observables.COMMON_VALUES),
                                          Observable.warning.is_(None))  # warninglists
    shared = (select(Observable.note_id, func.count().label("n")).where(
        Observable.value.in_(mine), Observable.note_id != note.id)
        .group_by(Observable.note_id).subquery())
    rows = db.session.execute(
        readable_notes(principal).add_columns(shared.c.n).join(shared, shared.c.note_id == Note.id)
        .order_by(Note.created_at.desc()).limit(limit)).all()
    # The shared values of every related note, in one query (not one per note).
    shared_values: dict[int, set[str]] = {}
    if rows:
        for note_id, value in db.session.execute(select(Observable.note_id, Observable.value)
                                                 .where(Observable.note_id.in_(
                                                     [other.id for other, _n in rows]),
                                                     Observable.value.in_(mine))):
            shared_values.setdefault(note_id, set()).add(value)
    return [(other, sorted(shared_values.get(other.id, ()))) for other, _count in rows]


def who_has_seen(principal: Principal, raw_value: str, limit: int = 50) -> tuple[str | None, list]:
    """"Has anyone I share with seen this?": readable notes carrying the value."""
    from alliance.sharing.policy import readable_notes

    hit = observables.detect(raw_value or "")
    if hit is None:
        return None, []
    if hit[1] in observables.COMMON_VALUES:
        return hit[1], []
    notes = db.session.scalars(
        readable_notes(principal).where(Note.id.in_(select(Observable.note_id).where(
            Observable.value == hit[1]))).order_by(Note.created_at.desc()).limit(limit)).all()
    return hit[1], notes


@dataclass(frozen=True)
class Version:
    """One stored version of an object (`row`), as a reader's history shows it: `added` is
    when it became readable to them, not when it was first stored."""

    row: StixObject
    added: datetime

    def __getattr__(self, name):  # id, stix_id, modified, body, first_note_id: the row's
        return getattr(self.row, name)


def history(principal: Principal, note: Note) -> list[Version]:
    """Versions of the note's objects, newest first, by the organisations whose versions the
    note holds — only versions held by notes the principal may read (a version posted in
    another, unreadable note stays out of sight).
    A version first stored by a note the principal may not read (a TLP:RED note, a note in
    another alliance) and linked by a later one is dated as that later note: its own date
    would tell them when the note they may not read was posted."""
    held = {(o.stix_id, o.organisation_id) for o in note_objects(note)}
    ids = sorted({stix_id for stix_id, _ in held})
    rows = []
    for chunk in range(0, len(ids), 500):
        rows += db.session.scalars(select(StixObject).where(
            StixObject.stix_id.in_(ids[chunk:chunk + 500]))).all()
    # One organisation's versions of an id are one history: another organisation's copy
    # of the same id (a third-party object it re-shared) is not this note's.
    rows = [r for r in rows if (r.stix_id, r.organisation_id) in held]
    holders: dict[int, list[int]] = {}
    for object_id, note_id in _links(r.id for r in rows):
        holders.setdefault(object_id, []).append(note_id)
    # The notes the principal may read among those, with when each was posted.
    posted, order = {}, sorted({n for held in holders.values() for n in held}
                               | {r.first_note_id for r in rows})
    for chunk in range(0, len(order), 500):
        posted.update((note_id, created) for note_id, created in db.session.execute(
            readable_notes(principal).with_only_columns(Note.id, Note.created_at)
            .where(Note.id.in_(order[chunk:chunk + 500]))))
    versions = []
    for r in rows:
        # Earlier versions of an edited note's report are held by no note any more; they
        # belong to the note they were first posted in.
        if r.first_note_id in posted:
            added = r.date_added
        else:
            seen = [posted[n] for n in holders.get(r.id, ()) if n in posted]
            if not seen:
                continue
            added = max(r.date_added, min(seen))
        versions.append(Version(r, added))
    return sorted(versions, key=lambda v: (-v.added.timestamp(), v.stix_id))


def can_edit(user, note: Note) -> bool:
    """The author and their organisation's admins edit a note (new versions, never in place)."""
    return bool(getattr(user, "can_act", False) and note.organisation_id == user.organisation_id
                and (note.author_id == user.id or user.is_org_admin)
                and note.retracted_at is None)


def edit_note(actor, note: Note, *, title: str, description: str) -> Note:
    """Change the title and text: a new version of the note's report (same id, later
    `modified`); the earlier versions stay in the history."""
    if not can_edit(actor, note):
        raise NotAllowed("Only the author and their organisation's admins can edit this note.")
    title = (title or "").strip()
    if not title or len(title) > 300:
        raise DomainError("Give the note a title of at most 300 characters.", field="title")
    current = next(o for o in note_objects(note) if o.stix_id == note.report_id)
    if title == note.title and (description or "") == (note.description or ""):
        return note
    body = dict(current.body, name=title, modified=_stix_now())
    if description:
        body["description"] = description
    else:
        body.pop("description", None)
    if body["modified"] <= current.modified:  # same millisecond as the previous version
        raise Conflict("The note changed a moment ago; reload it and edit again.")
    import stix2

    stix2.parse(body, allow_custom=True, version="2.1")
    # The version this edit read, or nothing: of two edits at once the second would also
    # replace the version the first replaced, and the note would hold two reports.
    seen = note.version
    if db.session.execute(update(Note).where(Note.id == note.id, Note.version == seen)
                          .values(version=seen + 1)).rowcount != 1:
        db.session.rollback()
        raise Conflict("Someone else edited this note meanwhile; reload it and edit again.")
    now = utcnow()
    row = StixObject(stix_id=note.report_id, type="report", modified=body["modified"],
                     organisation_id=note.organisation_id, first_note_id=note.id, body=body,
                     body_hash=_hash(body), date_added=now, scope=_scope(note))
    db.session.add(row)
    db.session.flush()
    db.session.query(NoteObject).filter_by(note_id=note.id, object_id=current.id).delete()
    db.session.add(NoteObject(note_id=note.id, object_id=row.id, note_version=note.version))
    db.session.flush()
    collect_objects(note)
    uncollect_objects(object_id=current.id)
    changed = [f for f, old, new in (("title", note.title, title),
                                     ("description", note.description or "", description or ""))
               if old != new]
    note.title, note.description, note.updated_at = title, description or "", utcnow()
    record("note.edited", actor, _audit_target(note), organisation=note.organisation,
           version=note.version, changed=changed)
    db.session.commit()
    return note


def check_audience(actor, tlp: str, alliance_ids, recipient_ids=(),
                   publish_public: bool = False) -> None:
    """The audience checks of post_note alone: a DomainError on the field at fault. For a
    compose form that lists every error of a refused Share at once, and for its preview."""
    _check_audience(actor, tlp, alliance_ids, recipient_ids, publish_public)
