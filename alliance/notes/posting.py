"""Posting a note. Reading goes through alliance.sharing.policy.

post_note() is the one way content gets in (compose forms, bundle upload, CLI import, TAXII):
it checks the audience and the TLP, validates every object, checks versions and ownership
against what is stored, then stores the note, its report, its objects and their observables
in one transaction — all or nothing."""
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from flask import current_app

from alliance.audit.services import record
from alliance.core.errors import DomainError, NotAllowed
from alliance.core.models import utcnow
from alliance.core.unit import unit_of_work
from alliance.core.vocab import policy_tag_choices
from alliance.extensions import db
from alliance.notes import warninglists
from alliance.notes.audience import check_audience
from alliance.notes.authorship import check_authorship
from alliance.notes.events import note_posted
from alliance.notes.models import (
    Note,
    NoteAudience,
    NoteRecipient,
)
from alliance.notes.storage import NoteWriter, stix_now
from alliance.notes.submissions import Sending, check_submission, record_submission
from alliance.notes.versions import check_versions, stored_versions
from alliance.stix.limits import StixLimits
from alliance.stix.markings import looser_than, marking_id, strictest_level
from alliance.stix.tlp import TLP_RANK
from alliance.stix.validation import (
    BundleCheck,
    BundleRejected,
    Parsed,
    version_digest,
    version_of,
)


def _clean_tags(tags) -> list[str]:
    known = {t for t, _ in policy_tag_choices()}
    unknown = sorted(set(tags or []) - known)
    if unknown:
        raise DomainError(f"Unknown policy tags: {', '.join(unknown)}.", field="policy_tags")
    return sorted(set(tags or []))


def audit_target(note: Note) -> tuple:
    """Audit events name a note by its row number only, never its title or STIX id: the
    audit log is read by coordinators and admins who may not be allowed to read the note."""
    return ("note", note.id, f"note #{note.id}")


@dataclass(kw_only=True)
class NoteDraft:
    """A note as its poster sends it, before any check: its title and text, its audience
    (alliances, and on a TLP:RED note the named recipients), its STIX objects and facets,
    and what the poster confirmed.

    `refs`: the references these very objects hold, when parsing gathered them
    (Parsed.refs), so they are not walked again. `warnings`: what parsing noted, kept in the
    audit event. `looser_confirmed=False` (the web forms, the CLI without
    --allow-looser-markings) refuses objects marked looser than the note
    (markings.looser_than) with a DomainError on field "confirm_looser": a person must
    confirm they go out at their own marking; machines (TAXII) cannot.
    `flagged_confirmed=False` (the web forms) refuses observables on a warning list
    (warninglists.flagged_in: 10.0.0.1, 8.8.8.8) with a DomainError on field
    "confirm_flagged" until the poster confirms them; stored, they are marked and never
    correlated."""

    title: str
    tlp: str
    alliance_ids: Sequence[int]
    objects: "list[dict] | Parts"
    kind: str = "bundle"
    description: str = ""
    recipient_ids: Sequence[int] = ()
    policy_tags: Sequence[str] = ()
    sectors: Sequence[str] = ()
    countries: Sequence[str] = ()
    labels: Sequence[str] = ()
    publish_public: bool = False
    warnings: Sequence[str] = ()
    refs: set[str] | None = None
    looser_confirmed: bool = True
    flagged_confirmed: bool = True


@unit_of_work()
def post_note(actor, draft: NoteDraft, *, submission: Sending | None = None, progress=None,
              alerts: bool = True) -> Note:
    """Store a new note holding the draft's STIX objects, for its audience. Raises
    DomainError (with .field) for form problems and BundleRejected (with .problems) for STIX
    ones; stores nothing then. `submission`: the compose form's sending (Sending); the same
    one again is AlreadyPosted. `progress`, if given, is called with 1 after each object is
    validated (the CLI import's progress bar). `alerts=False` (bulk imports) sends no watch
    alerts; the note still reaches digests. Inside a caller's unit of work (the TAXII writer
    storing the note's status with it) it only flushes: both are stored or neither."""
    if not getattr(actor, "can_act", False):
        raise NotAllowed("Only members of vetted organisations can post.")
    check_submission(actor, submission)
    title = (draft.title or "").strip()
    if not title or len(title) > 300:
        raise DomainError("Give the note a title of at most 300 characters.", field="title")
    alliances, recipient_ids = check_audience(actor, draft.tlp, draft.alliance_ids,
                                              draft.recipient_ids, draft.publish_public)
    checked = _check(actor, draft, progress)
    now = utcnow()
    report = _report(actor.organisation, draft, title, checked.ids)
    note = Note(report_id=report["id"], organisation_id=actor.organisation_id,
                author_id=actor.id, kind=draft.kind, title=title,
                description=draft.description or "", tlp=draft.tlp,
                policy_tags=_clean_tags(draft.policy_tags), sectors=sorted(set(draft.sectors)),
                countries=sorted(set(draft.countries)), labels=sorted(set(draft.labels)),
                types=sorted(checked.types | {"report"}),
                publish_public=bool(draft.publish_public), created_at=now, updated_at=now)
    note.audiences = [NoteAudience(alliance_id=a.id) for a in alliances]
    note.recipients = [NoteRecipient(user_id=u) for u in recipient_ids]
    db.session.add(note)
    db.session.flush()
    record_submission(actor, submission, note_id=note.id)
    writer = NoteWriter(note, now)
    writer.add([report], [], [report])
    for part in _as_stored(actor, draft, checked):
        writer.add(*part)
        del part  # not held while the next part is read
    writer.finish()
    note_posted.send(note, alerts=alerts)  # the digests slice queues a watch scan
    # Not attached to an alliance: its coordinators' log must not count notes they cannot read.
    record("note.posted", actor, audit_target(note), organisation=actor.organisation,
           objects=checked.count, warnings=list(draft.warnings))
    return note


class Parts(Protocol):
    """A draft's objects given a part at a time (alliance.stix.stream.BundleFile): each call
    of parts() gives them all again."""

    def parts(self) -> Iterator[Parsed]: ...


def _parts(draft: NoteDraft) -> Iterator[Parsed]:
    if isinstance(draft.objects, list):
        return iter([Parsed(objects=draft.objects, refs=draft.refs)])
    return draft.objects.parts()


@dataclass
class _Checked:
    """What checking a draft's objects found: how many distinct objects, their ids and types;
    the stored versions of their ids (by id, in row order); and, for a draft of one part,
    its objects as stored (new versions, stored versions to link, every object), which are
    then not worked out again."""

    count: int = 0
    ids: set[str] = field(default_factory=set)
    types: set[str] = field(default_factory=set)
    rows: dict[str, list] = field(default_factory=dict)
    asked: set[str] = field(default_factory=set)  # the ids whose stored versions were read
    versions: list[tuple[list, list, list]] = field(default_factory=list)


def _check(actor, draft: NoteDraft, progress) -> _Checked:
    """The draft's objects as checked (alliance.stix.validation) and by the platform's
    authorship rules, every problem in one BundleRejected; then their markings against the
    note's TLP and, unless confirmed, looser markings and values on warning lists; then their
    versions against what is stored (check_versions: 409 for a conflict). A draft read in
    parts is checked whole before anything is stored: nothing is stored unless every part
    passes."""
    tlp, checked = draft.tlp, _Checked()
    check = BundleCheck(StixLimits.from_config(current_app.config), progress)
    authorship: list = []
    strictest: str | None = None
    looser: list[dict] = []
    flagged: list = []
    seen: set = set()  # values looked up in the warning lists
    versions: list = []  # problems of check_versions
    conflict, parts = False, 0
    for parsed in _parts(draft):
        objects = check.add(parsed.objects, parsed.refs)
        # Every problem in one answer: the platform's authorship rules too, on the objects
        # that are valid STIX.
        authorship += check_authorship(actor.organisation, objects)
        checked.count += len(objects)
        checked.types.update(o["type"] for o in objects)
        level = strictest_level(objects)
        if level and (strictest is None or TLP_RANK[level] > TLP_RANK[strictest]):
            strictest = level
        if not draft.looser_confirmed:
            looser += looser_than(objects, tlp)
        if not draft.flagged_confirmed:
            flagged += warninglists.flagged_in(objects, seen)
        if check.problems or authorship:
            continue  # refused below: no need to ask what is stored
        rows = _stored_rows(checked, sorted({o["id"] for o in objects}))
        try:
            new, existing = check_versions(actor, objects, rows, tlp)
        except BundleRejected as exc:
            versions += exc.problems
            conflict = conflict or exc.status_code == 409
        else:
            parts += 1  # only one part is held: the rest are worked out again (_as_stored)
            checked.versions = [(new, existing, objects)] if parts == 1 else []
        del parsed, objects  # not held while the next part is read
    checked.ids = check.ids
    if check.problems or authorship:
        raise BundleRejected(check.problems + authorship)
    _refuse_markings(tlp, strictest, looser, flagged)
    if versions:
        raise BundleRejected(versions, status_code=409 if conflict else 422)
    return checked


def _stored_rows(checked: _Checked, ids: list[str]) -> list:
    """The stored versions of these ids (versions.stored_versions), by id in row order: read
    once for an id, into `checked`, and taken from there for a later part."""
    wanted = [stix_id for stix_id in ids if stix_id not in checked.asked]
    checked.asked.update(wanted)
    for row in stored_versions(wanted):
        checked.rows.setdefault(row.stix_id, []).append(row)
    return [row for stix_id in ids for row in checked.rows.get(stix_id, ())]


def _refuse_markings(tlp: str, strictest: str | None, looser: list[dict], flagged: list) -> None:
    """DomainError for an object marked stricter than the note, and for objects marked
    looser (markings.looser_than) and values on warning lists the poster has not confirmed
    (those given)."""
    if strictest and TLP_RANK[strictest] > TLP_RANK[tlp]:
        raise DomainError(f"An object in this note is marked TLP:{strictest}; the note cannot "
                          f"be shared more widely (TLP:{tlp}).", field="tlp")
    if looser:
        raise DomainError(f"{len(looser)} object(s) are marked looser than the note's TLP:{tlp}; "
                          "confirm that they are shared at their own looser marking.",
                          field="confirm_looser")
    if flagged:
        more = f" And {len(flagged) - 1} more value(s) on warning lists." \
            if len(flagged) > 1 else ""
        raise DomainError(f"{flagged[0].message}: share anyway?{more}",
                          field="confirm_flagged")


def _as_stored(actor, draft: NoteDraft, checked: _Checked) -> Iterator[tuple[list, list, list]]:
    """The draft's objects as the note stores them, a part at a time: (new versions to
    store, stored versions to link, every object of the part as stored). A draft of more
    than one part is read again, its duplicates folded as the check folded them, and each
    part's versions worked out against the stored versions the check read (rows stored by
    this very note since must not count)."""
    if checked.versions:  # a draft of one part
        yield from checked.versions
        return
    seen: set[bytes] = set()
    for parsed in _parts(draft):
        objects = []
        for obj in parsed.objects:
            key = version_digest(*version_of(obj))
            if key not in seen:
                seen.add(key)
                objects.append(obj)
        rows = _stored_rows(checked, sorted({o["id"] for o in objects}))
        yield (*check_versions(actor, objects, rows, draft.tlp), objects)
        del parsed, objects  # not held while the next part is read


def _report(org, draft: NoteDraft, title: str, ids: set[str]) -> dict:
    """The note's STIX report, checked: it refers to every object of the note (to the
    poster's identity when there are none)."""
    stamp = stix_now()
    report = {
        "type": "report", "spec_version": "2.1", "id": f"report--{uuid.uuid4()}",
        "created": stamp, "modified": stamp, "name": title,
        "description": draft.description or None, "published": stamp,
        "report_types": [{"incident": "threat-report", "indicators": "indicator",
                          "analysis": "threat-report"}.get(draft.kind, "threat-report")],
        "object_refs": sorted(ids) or [org.stix_id],
        "created_by_ref": org.stix_id, "object_marking_refs": [marking_id(draft.tlp)],
        "labels": sorted(set(draft.labels)) or None,
    }
    report = {k: v for k, v in report.items() if v is not None}
    # stix2 (and fastcheck, built from it) is imported where an object is checked: it is
    # heavy to import, and every process that builds the app imports this module.
    import stix2

    from alliance.stix import fastcheck

    if fastcheck.check(report) is not fastcheck.ACCEPT:
        # The fast path accepts only what stix2 certainly accepts; anything else (and every
        # refusal, with its message) is stix2's to decide.
        stix2.parse(report, allow_custom=True, version="2.1")
    return report
