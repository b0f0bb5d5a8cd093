"""The shared STIX corpus (tests/data/stix, a copy of ../shared/data/stix; see its PROVENANCE.md
and invalid/NOTES.md).

valid/: a file stix2-validator accepts imports as a note and its download round-trips (its
references to objects not in the file accepted, unresolved); the files it does not accept are
listed below with the behaviour each one gets. invalid/: every file is refused with a problem
naming what is wrong, and nothing is stored."""
import json
from functools import cache

import orjson
import pytest
from stix2validator import ValidationOptions, validate_string

from alliance.core.errors import DomainError
from alliance.extensions import db
from alliance.notes import posting, reading
from alliance.stix.markings import marking_id, strictest_level, tlp2_ids
from alliance.stix.tlp import TLP_RANK
from alliance.stix.validation import BundleRejected, parse_bundle
from tests.factories import as_served
from tests.notes.helpers import CORPUS, counts

TLP2_EXTENSION = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
TLP2_CREATOR = "identity--b3bca3c2-1f3d-4b54-b44f-dac42c3a8f01"  # CISA, the extension's author

VALID = sorted(p.name for p in (CORPUS / "valid").glob("*.json"))
INVALID = sorted(p.name for p in (CORPUS / "invalid").glob("*.json"))

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:stix2validator.*")


# valid/ files stix2-validator refuses (or crashes on), and what we do with each:
# (what the validator says, [(object id, property, reason fragment) our refusal names]).
VALIDATOR_FAILS = {
    "elevator__extensions__Mandiant_APT1_Report.json": (
        "'hugesoft.org' is not a 'uri'",
        # A url whose value is a bare host name: stix2 takes it, the validator does not, and
        # what is stored is served back as posted, so it is refused naming the value. (Its
        # references to objects the elevator did not emit are accepted as unresolved.)
        [("url--64cbbdc1-a7b3-5a54-ac07-97bfb44bb009", "value", "is not a URL")]),
    "opencti__DATA-TEST-STIX2_v2.json": (
        "crash: KeyError",
        # Refused for its object problems (it has no dangling references).
        [("marking-definition--78ca4366-f5b8-4764-83f7-34ce38198e27", "definition_type",
          "must be a valid marking type"),
         ("observed-data--7d258c31-9a26-4543-aecb-2abc5ed366be", "modified", "missing"),
         ("relationship--10e8c71d-a1b4-4e35-bca8-2e4a3785ea04", "stop_time",
          "'stop_time' must be later than 'start_time'"),
         ("malware--faa5b705-cf44-4e50-8472-29e5fec43c3c", "is_family", "required")]),
    "pystix2__sco-examples-wrapped.json": (
        "must be a base64-encoded string",
        # The validator's payload_bin complaint is not ours; we refuse the two ids that repeat
        # with different content.
        [("domain-name--3c10e93f-798e-5a26-a0c1-08156efab7f5", "modified",
          "the same id and modified appear twice with different content"),
         ("user-account--0d5b424b-93b8-5cd8-ac36-306e1789d63c", "modified",
          "the same id and modified appear twice with different content")]),
}

# invalid/: what the refusal must name (object id, property, reason fragment).
INVALID_EXPECTED = {
    "elevator__default__ais-marking-a-e-f.json": [
        ("report--ed47d9a7-e8bd-4036-ad2e-3c3bc6d5c63c", "name", "required")],
    "elevator__default__icmp_observable.json": [
        ("network-traffic--ba91908d-c347-5d7d-8446-5e1c6f0a4d8d", "src_ref",
         "At least one of")],
    "elevator__default__indicator-for-c2-ip-address.json": [
        ("relationship--72046d93-9316-4803-a3cd-ef60c476a530", "target_ref", "required")],
    "elevator__default__multiple-reports-in-package.json": [
        ("report--f14804d5-3ee1-4a0e-b0f3-f9a643855ba5", "object_refs",
         "not a valid STIX identifier")],
    "elevator__default__observable-with-networkconnection-pattern.json": [
        ("indicator--53fe3b22-0201-47cf-85d0-97c02164528d", "pattern", "INVALID-CONDITION")],
    "misp__test_event1_stix20.json": [
        ("bundle--f6ba8cf8-294a-462f-a6a0-429ee468885a", "spec_version", "STIX 2.0")],
    "opencti__bundle_ids_sample.json": [
        ("relationship--ba52fced-422a-4bee-816a-85aa21c9eacc", "stop_time",
         "'stop_time' must be later than 'start_time'"),
        ("marking-definition--78ca4366-f5b8-4764-83f7-34ce38198e27", "definition_type",
         "must be a valid marking type")],
    "opencti__bundle_with_internal_ids.json": [
        ("malware--faa5b705-cf44-4e50-8472-29e5fec43c3c", "spec_version", "STIX 2.0"),
        ("relationship--10e8c71d-a1b4-4e35-bca8-2e4a3785ea04", "spec_version", "STIX 2.0")],
    "opencti__cyclic-bundle.json": [
        ("marking-definition--78ca4366-f5b8-4764-83f7-34ce38198e27", "definition_type",
         "must be a valid marking type"),
        ("x-mitre-asset--0804f037-a3b9-4715-98e1-9f73d19d6945", "spec_version", "STIX 2.0"),
        ("malware--faa5b705-cf44-4e50-8472-29e5fec43c3c", "is_family", "required")],
    "pystix2__sco-examples-bundle.json": [("", "", "a bare JSON array, not a bundle")],
    "pystix2__v20__malware-6b616fc1.json": [
        ("malware--6b616fc1-1505-48e3-8b2c-0d19337bff38", "spec_version", "STIX 2.0")],
    "validator__invalid_braces.json": [("", "", "not valid JSON")],
    "validator__invalid_identity.json": [
        ("identity--8c6af861-7b20-41ef-9b59-6344fd872a8f", "modified",
         "missing (it is never filled in for you)")],
}


@cache
def validator_verdict(name: str) -> tuple[bool, str]:
    """stix2-validator's verdict on a valid/ file: (accepted, its messages or the crash)."""
    text = (CORPUS / "valid" / name).read_text(encoding="utf-8")
    try:
        result = validate_string(text, ValidationOptions(version="2.1"))
    except Exception as exc:  # it crashes on some real-world files
        return False, f"crash: {type(exc).__name__}: {exc}"
    return result.is_valid, " | ".join(e.message for e in result.errors)


def _post(actor, alliance, raw: bytes, tlp: str = "AMBER", recipients=()):
    parsed = parse_bundle(raw)
    return posting.post_note(actor, posting.NoteDraft(
        title="Corpus import", tlp=tlp, alliance_ids=[alliance.id], objects=parsed.objects,
        recipient_ids=list(recipients), warnings=parsed.warnings, refs=parsed.refs))


def _note_tlp(objects: list[dict]) -> str:
    """The strictest TLP marked in the file, or AMBER when that is looser."""
    strictest = strictest_level(objects)
    return strictest if strictest and TLP_RANK[strictest] > TLP_RANK["AMBER"] else "AMBER"


def _assert_refused(exc: BundleRejected | DomainError, expected) -> None:
    problems = getattr(exc, "problems", None) or []
    lines = [(p.object_id, p.property, p.reason) for p in problems] or [("", "", exc.message)]
    for object_id, prop, fragment in expected:
        assert any((not object_id or oid == object_id) and prop in p and fragment in reason
                   for oid, p, reason in lines), (object_id, prop, fragment, lines)


def _version(obj: dict) -> str:
    return obj.get("modified") or obj.get("created") or ""


def test_the_corpus_is_where_ci_has_it():
    assert len(VALID) == 32 and len(INVALID) == 13, CORPUS
    assert set(VALIDATOR_FAILS) <= set(VALID)
    assert set(INVALID_EXPECTED) == set(INVALID)


@pytest.mark.parametrize("name", VALID)
def test_valid_file(name, member, alliance, coordinator):
    raw = (CORPUS / "valid" / name).read_bytes()
    accepted, messages = validator_verdict(name)
    before = counts()

    if name in VALIDATOR_FAILS:
        said, expected = VALIDATOR_FAILS[name]
        assert not accepted and said in messages, messages
        with pytest.raises((BundleRejected, DomainError)) as caught:
            _post(member, alliance, raw)
        db.session.rollback()
        _assert_refused(caught.value, expected)
        assert counts() == before
        return

    assert accepted, f"stix2-validator refuses {name}: {messages}"
    parsed = parse_bundle(raw)
    tlp = _note_tlp(parsed.objects)
    note = _post(member, alliance, raw, tlp=tlp,
                 recipients=[coordinator.id] if tlp == "RED" else [])
    assert note.tlp == tlp

    download = reading.note_bundle(note)
    # What a person downloads is JSON, and stix2-validator accepts it (the 2,148-object ATT&CK
    # bundle is left out: the validator takes ~11 s on it and its objects are checked
    # unchanged below).
    text = json.dumps(download)
    if len(parsed.objects) < 1000:
        result = validate_string(text, ValidationOptions(version="2.1"))
        assert result.is_valid, [e.message for e in result.errors]

    posted = {(o["id"], _version(o)): o for o in parsed.objects}
    got = {(o["id"], _version(o)): o for o in orjson.loads(text)["objects"]}
    # Every posted object comes back with the same body, and nothing else but our report, the
    # TLP 2.0 marking definitions the note uses and their extension definition. An object
    # that can name its creator (not an SCO, a marking or an identity) and names none comes
    # back created by the poster's organisation (DESIGN.md, "Posting": authorship).
    for key, obj in posted.items():
        assert got.get(key) == as_served(obj, member.organisation.stix_id, tlp), key
    extra = {key[0]: got[key] for key in set(got) - set(posted)}
    report = extra.pop(note.report_id)
    # The poster's identity, as the platform vetted it, resolves its created_by_ref: marked
    # TLP:AMBER+STRICT wherever it is served (as strict as any note TAXII serves), TLP:RED
    # with a TLP:RED note (docs/api.md).
    mine = extra.pop(member.organisation.stix_id)
    assert (mine["name"], mine["object_marking_refs"]) == (member.organisation.name, [
        marking_id("RED" if tlp == "RED" else "AMBER+STRICT")])
    assert set(extra) <= set(tlp2_ids()) | {TLP2_EXTENSION, TLP2_CREATOR}, sorted(extra)
    assert marking_id(tlp) in extra or marking_id(tlp) in {k[0] for k in posted}
    if set(extra) & set(tlp2_ids()):  # shipped markings travel with their extension
        assert TLP2_EXTENSION in extra or TLP2_EXTENSION in {k[0] for k in posted}
        assert TLP2_CREATOR in extra or TLP2_CREATOR in {k[0] for k in posted}
    assert report["object_marking_refs"] == [marking_id(tlp)]
    assert report["created_by_ref"] == member.organisation.stix_id
    assert report["object_refs"] == sorted({k[0] for k in posted})
    notes, objects, links = counts()
    assert (notes, objects, links) == (before[0] + 1, before[1] + len(posted) + 1,
                                      before[2] + len(posted) + 1)


@pytest.mark.parametrize("name", INVALID)
def test_invalid_file_is_refused_naming_the_problem(name, member, alliance):
    raw = (CORPUS / "invalid" / name).read_bytes()
    before = counts()
    with pytest.raises((BundleRejected, DomainError)) as caught:
        _post(member, alliance, raw)
    db.session.rollback()
    _assert_refused(caught.value, INVALID_EXPECTED[name])
    assert caught.value.status_code == 422
    assert counts() == before
