"""Compose forms -> STIX 2.1 objects, built with the stix2 library. Every object created here
carries the author organisation's identity as created_by_ref and the note's TLP 2.0 marking.
And the upload form's chosen file, kept through "Preview audience" (keep_upload)."""
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from alliance.core.errors import DomainError
from alliance.core.vocab import policy_tag_label
from alliance.stix import observables
from alliance.stix.markings import marking_id


def _plain(obj) -> dict:
    return json.loads(obj.serialize())


def parse_lines(text: str) -> tuple[list[tuple[str, str]], list[str]]:
    """Observables pasted one per line: (kind, value) pairs and the lines not recognised.
    More lines than COMPOSE_MAX_OBSERVABLES is a DomainError (before any is read)."""
    found, unknown, seen = [], [], set()
    lines = [line for line in (text or "").splitlines() if line.strip()]
    limit = current_app.config["COMPOSE_MAX_OBSERVABLES"]
    if len(lines) > limit:
        raise DomainError(f"At most {limit:,} observables per form; this has {len(lines):,}. "
                          "Upload more as a STIX bundle, or import them with the CLI.",
                          field="observables")
    for line in lines:
        hit = observables.detect(line)
        if hit is None:
            unknown.append(line.strip()[:100])
        elif hit not in seen:
            seen.add(hit)
            found.append(hit)
    return found, unknown


def parse_attack_ids(text: str) -> list[str]:
    ids: list[str] = []
    bad: list[str] = []
    for token in (text or "").replace(",", " ").split():
        token = token.strip().upper()
        (ids if observables.ATTACK_RE.match(token) else bad).append(token)
    if bad:
        raise DomainError(f"Not ATT&CK technique ids: {', '.join(bad[:5])} (use T1566 or "
                          "T1566.001).", field="attack_ids")
    return sorted(set(ids))


def _common(org, tlp: str) -> dict:
    return {"created_by_ref": org.stix_id, "object_marking_refs": [marking_id(tlp)],
            "allow_custom": False}


# What an indicator's description calls each kind of observable.
KIND_LABELS = {"ipv4": "IPv4 address", "ipv6": "IPv6 address", "cidr4": "IPv4 range",
               "cidr6": "IPv6 range", "domain": "Domain name",
               "url": "URL", "email": "Email address", "md5": "MD5 hash", "sha1": "SHA-1 hash",
               "sha256": "SHA-256 hash"}


def _indicators(org, tlp, found, *, valid_from=None, valid_until=None, confidence=None):
    # stix2 is imported in the functions that build objects: it is heavy to import, and
    # every process that builds the app (a command-line start too) imports this module.
    import stix2

    objects, refs = [], []
    for kind, value in found:
        if kind == "cve":
            # No url: stix2-validator's strict mode wants a hash beside any url (a page's
            # hash means nothing); the CVE id is the reference.
            obj = stix2.v21.Vulnerability(name=value, external_references=[
                {"source_name": "cve", "external_id": value}], **_common(org, tlp))
        else:
            extra = {"confidence": confidence} if confidence is not None else {}
            if valid_until:
                extra["valid_until"] = valid_until
            obj = stix2.v21.Indicator(name=value, description=f"{KIND_LABELS.get(kind, kind)} "
                                      f"{value}, seen by {org.name}.",
                                      pattern=observables.pattern_for(kind, value),
                                      pattern_type="stix", indicator_types=["malicious-activity"],
                                      valid_from=valid_from or datetime.now(UTC),
                                      **extra, **_common(org, tlp))
        objects.append(_plain(obj))
        refs.append(obj.id)
    return objects, refs


def _attack_patterns(org, tlp, ids):
    import stix2

    objects = []
    for technique in ids:
        objects.append(_plain(stix2.v21.AttackPattern(
            name=technique, external_references=[{
                "source_name": "mitre-attack", "external_id": technique}],
            **_common(org, tlp))))
    return objects


def _related(org, tlp, source_ref, target_refs, rel="related-to"):
    import stix2

    return [_plain(stix2.v21.Relationship(source_ref=source_ref, target_ref=target,
                                          relationship_type=rel, **_common(org, tlp)))
            for target in target_refs]


@dataclass(kw_only=True)
class IncidentDraft:
    """The incident form as typed: the incident's name and text, the observables and ATT&CK
    technique ids pasted one per line, and the sectors and countries it hit."""

    title: str
    description: str = ""
    details: str = ""
    observables_text: str = ""
    attack_ids_text: str = ""
    sectors: Sequence[str] = ()
    countries: Sequence[str] = ()


def incident_report(org, tlp: str, draft: IncidentDraft) -> list[dict]:
    """An incident, its indicators / vulnerabilities / attack patterns, and where it hit."""
    import stix2

    found, unknown = parse_lines(draft.observables_text)
    if unknown:
        raise DomainError(f"Not recognised as observables: {', '.join(unknown[:5])}.",
                          field="observables")
    techniques = parse_attack_ids(draft.attack_ids_text)
    incident = stix2.v21.Incident(name=draft.title, description="\n\n".join(
        p for p in (draft.description, draft.details) if p) or None, **_common(org, tlp))
    objects = [org.stix_identity, _plain(incident)]
    indicators, refs = _indicators(org, tlp, found)
    objects += indicators
    patterns = _attack_patterns(org, tlp, techniques)
    objects += patterns
    objects += _related(org, tlp, incident.id, refs + [p["id"] for p in patterns])
    if draft.sectors:
        victims = stix2.v21.Identity(name="Affected sectors", identity_class="class",
                                     sectors=list(draft.sectors), **_common(org, tlp))
        objects.append(_plain(victims))
        objects += _related(org, tlp, incident.id, [victims.id], "targets")
    for code in draft.countries or []:
        place = stix2.v21.Location(country=code, **_common(org, tlp))
        objects.append(_plain(place))
        objects += _related(org, tlp, incident.id, [place.id], "targets")
    return objects


def indicator_set(org, tlp: str, *, observables_text: str, valid_from=None, valid_until=None,
                  confidence=None):
    found, unknown = parse_lines(observables_text)
    if unknown:
        raise DomainError(f"Not recognised as observables: {', '.join(unknown[:5])}.",
                          field="observables")
    if not found:
        raise DomainError("Paste at least one observable, one per line.", field="observables")
    valid_from = valid_from or datetime.now(UTC)  # STIX needs one; the form may leave it out
    if valid_until and valid_until <= valid_from:
        raise DomainError("Valid until must be later than valid from (now, when that is "
                          "left empty).", field="valid_until")
    indicators, _ = _indicators(org, tlp, found, valid_from=valid_from, valid_until=valid_until,
                                confidence=confidence)
    return [org.stix_identity] + indicators


def policy_analysis(org, tlp: str, *, title: str, description: str, policy_tags):
    """An analysis: a STIX note with the text, referring to the instruments it concerns."""
    import stix2

    if not (description or "").strip():
        raise DomainError("Write the analysis.", field="description")
    refs = [{"source_name": policy_tag_label(tag), "external_id": tag} for tag in policy_tags]
    note = stix2.v21.Note(abstract=title, content=description, object_refs=[org.stix_id],
                          external_references=refs or None, **_common(org, tlp))
    return [org.stix_identity, _plain(note)]


# --- the upload form's file, kept through "Preview audience" --------------------------------
#
# A browser never sends a chosen file again: the page that answers "Preview audience" (or a
# Share refused for a missing title) holds an empty file input, and Share then found nothing.
# The file goes back to the browser instead, in a hidden field of the form: compressed, signed
# with the app's secret, bound to the user and to the form's own token (UploadForm.submission,
# new on each fresh form), and valid for an hour. Nothing is stored on the server (any worker
# of any machine reads it back), a copy taken from one form or one user's page is refused by
# another, and the signature is checked before anything is decompressed, so only what the
# server itself compressed is ever inflated. A file whose kept form would not fit in a form
# field (Flask's MAX_FORM_MEMORY_SIZE, 500 kB by default) is not kept: the page says to choose
# it again. Its content is checked again at Share like any upload.

KEEP_MAX_AGE = 60 * 60
KEEP_SALT = "alliance.notes.kept-upload"
KEEP_NAME_MAX = 200


@dataclass(frozen=True)
class KeptUpload:
    name: str
    raw: bytes

    @property
    def size(self) -> str:
        return f"{len(self.raw) / 1024:,.0f} KB" if len(self.raw) >= 1024 else \
            f"{len(self.raw)} bytes"


def _keeper() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=KEEP_SALT)


def _keep_limit() -> int:
    """The longest kept value a form field may carry back (with room for the other fields)."""
    return int(current_app.config.get("MAX_FORM_MEMORY_SIZE") or 500_000) - 1024


def keep_upload(upload: KeptUpload, user_id: int, form_token: str) -> str | None:
    """The hidden field's value that carries `upload` to the form's next sending, or None
    when it cannot be kept (too large for a form field, or no form token to bind it to)."""
    if not form_token or len(upload.raw) > current_app.config["STIX_MAX_BYTES"]:
        return None
    # surrogateescape: bytes that are not UTF-8 come back as they were sent, for the
    # validator to refuse by name, as it refuses them in a file.
    value = _keeper().dumps([user_id, form_token, upload.name[:KEEP_NAME_MAX],
                             upload.raw.decode("utf-8", "surrogateescape")])
    return value if len(value) <= _keep_limit() else None


def kept_upload(value: str, user_id: int, form_token: str) -> KeptUpload:
    """The upload a hidden field kept for this user's form; a DomainError on the file field
    when it has expired or was not made for this user and form."""
    try:
        kept_for, token, name, text = _keeper().loads(value, max_age=KEEP_MAX_AGE)
    except SignatureExpired as exc:
        raise DomainError("The file kept from your preview has expired (after an hour). "
                          "Choose it again.", field="bundle_file") from exc
    except (BadSignature, ValueError, TypeError) as exc:
        raise DomainError("The file kept from your preview cannot be used. Choose it again.",
                          field="bundle_file") from exc
    if kept_for != user_id or token != form_token or not isinstance(text, str):
        raise DomainError("The file kept from your preview cannot be used. Choose it again.",
                          field="bundle_file")
    return KeptUpload(name=str(name), raw=text.encode("utf-8", "surrogateescape"))


def bundle_source(form, user_id: int) -> KeptUpload | None:
    """The file an UploadForm shares: one chosen now, else the one kept from the form's last
    sending (unless the poster dropped it), else None (the pasted text is shared). A
    DomainError on the file field when the kept one cannot be used."""
    upload = form.bundle_file.data
    if upload:
        upload.stream.seek(0)  # the view's digest of the sending read it already
        return KeptUpload(name=upload.filename or "bundle.json", raw=upload.read())
    if form.kept_bundle.data and not form.drop_kept.data:
        return kept_upload(form.kept_bundle.data, user_id, form.submission.data or "")
    return None


def carry_upload(form, user_id: int) -> tuple[KeptUpload | None, bool]:
    """For a page that answers a sending of an UploadForm without posting it (a preview, a
    refusal): its file, put in the form's hidden field for the next sending, and whether it
    fitted there. (None, False) when no file was sent or kept."""
    try:
        source = bundle_source(form, user_id)
    except DomainError:
        source = None  # expired or not this form's: said on the file field when it was used
    value = keep_upload(source, user_id, form.submission.data or "") if source else None
    form.kept_bundle.data = value
    form.drop_kept.data = False
    return source, value is not None
