"""Posting a note. Reading goes through alliance.sharing.policy.

post_note() is the one way content gets in (compose forms, bundle upload, CLI import, TAXII):
it checks the audience and the TLP, validates every object, checks versions and ownership
against what is stored, then stores the note, its report, its objects and their observables
in one transaction — all or nothing."""
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

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
from alliance.notes.storage import stix_now, store_objects
from alliance.notes.submissions import Sending, check_submission, record_submission
from alliance.notes.versions import check_versions, stored_versions
from alliance.stix.limits import StixLimits
from alliance.stix.markings import looser_than, marking_id, strictest_level
from alliance.stix.tlp import TLP_RANK
from alliance.stix.validation import (
    BundleRejected,
    check_objects,
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
    objects: list[dict]
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
    objects = _checked_objects(actor, draft, progress)
    new, existing = check_versions(actor, objects,
                                   stored_versions(sorted({o["id"] for o in objects})),
                                   draft.tlp)
    now = utcnow()
    report = _report(actor.organisation, draft, title, objects)
    note = Note(report_id=report["id"], organisation_id=actor.organisation_id,
                author_id=actor.id, kind=draft.kind, title=title,
                description=draft.description or "", tlp=draft.tlp,
                policy_tags=_clean_tags(draft.policy_tags), sectors=sorted(set(draft.sectors)),
                countries=sorted(set(draft.countries)), labels=sorted(set(draft.labels)),
                types=sorted({o["type"] for o in objects} | {"report"}),
                publish_public=bool(draft.publish_public), created_at=now, updated_at=now)
    note.audiences = [NoteAudience(alliance_id=a.id) for a in alliances]
    note.recipients = [NoteRecipient(user_id=u) for u in recipient_ids]
    db.session.add(note)
    db.session.flush()
    record_submission(actor, submission, note_id=note.id)
    store_objects(note, [report] + new, existing, objects, now)
    note_posted.send(note, alerts=alerts)  # the digests slice queues a watch scan
    # Not attached to an alliance: its coordinators' log must not count notes they cannot read.
    record("note.posted", actor, audit_target(note), organisation=actor.organisation,
           objects=len(objects), warnings=list(draft.warnings))
    return note


def _checked_objects(actor, draft: NoteDraft, progress) -> list[dict]:
    """The draft's objects as checked (alliance.stix.validation) and by the platform's
    authorship rules, every problem in one BundleRejected; then their markings against the
    note's TLP and, unless confirmed, looser markings and values on warning lists."""
    tlp = draft.tlp
    objects, problems, _unresolved = check_objects(
        draft.objects, progress=progress, refs=draft.refs,
        limits=StixLimits.from_config(current_app.config))
    # Every problem in one answer: the platform's authorship rules too, on the objects that
    # are valid STIX.
    problems += check_authorship(actor.organisation, objects)
    if problems:
        raise BundleRejected(problems)
    strictest = strictest_level(objects)
    if strictest and TLP_RANK[strictest] > TLP_RANK[tlp]:
        raise DomainError(f"An object in this note is marked TLP:{strictest}; the note cannot "
                          f"be shared more widely (TLP:{tlp}).", field="tlp")
    if not draft.looser_confirmed and (looser := looser_than(objects, tlp)):
        raise DomainError(f"{len(looser)} object(s) are marked looser than the note's TLP:{tlp}; "
                          "confirm that they are shared at their own looser marking.",
                          field="confirm_looser")
    if not draft.flagged_confirmed and (flagged := warninglists.flagged_in(objects)):
        more = f" And {len(flagged) - 1} more value(s) on warning lists." \
            if len(flagged) > 1 else ""
        raise DomainError(f"{flagged[0].message}: share anyway?{more}",
                          field="confirm_flagged")
    return objects


def _report(org, draft: NoteDraft, title: str, objects: list[dict]) -> dict:
    """The note's STIX report, checked: it refers to every object of the note (to the
    poster's identity when there are none)."""
    stamp = stix_now()
    report = {
        "type": "report", "spec_version": "2.1", "id": f"report--{uuid.uuid4()}",
        "created": stamp, "modified": stamp, "name": title,
        "description": draft.description or None, "published": stamp,
        "report_types": [{"incident": "threat-report", "indicators": "indicator",
                          "analysis": "threat-report"}.get(draft.kind, "threat-report")],
        "object_refs": sorted({o["id"] for o in objects}) or [org.stix_id],
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
