"""Validating posted STIX 2.1 before anything is stored. Every problem names the object id,
the property and the reason; the caller stores nothing unless the list is empty.

Each object is checked by a fast path first (alliance.stix.fastcheck and fastpattern, whose
"certainly valid" verdicts agree with the stix2 library's — differential tests keep them
honest); anything it is not sure of, and every refusal, goes through stix2.parse itself.

Limits are checked before any parsing work that could be expensive: the byte size first
(413), then orjson's own nesting cap, then one iterative walk for depth, string length and
object count (422).

The jobs around these entry points, one module each: problems.py (Problem, BundleRejected),
shape.py (the limits walk, which also gathers references), properties.py (timestamps,
numbers, empty lists, JSON kinds), references.py (an object's references), fallback.py
(stix2's own verdict); fastcheck.py and fastpattern.py are the fast path."""
import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field

import orjson

from alliance.stix.fallback import _pattern_problems, _stix2_problems
from alliance.stix.limits import DEFAULT_LIMITS, PatternBudget, StixLimits
from alliance.stix.markings import known_marking_ids
from alliance.stix.problems import BundleRejected, Problem
from alliance.stix.properties import (
    _EMPTY_LIST,
    _empty_lists,
    _numbers,
    _shape_problems,
    _timestamp,
)
from alliance.stix.references import _collect_refs
from alliance.stix.shape import _check_shape, _refuse_nul

__all__ = ["UNVERSIONED", "BundleCheck", "BundleRejected", "Parsed", "Problem", "check_object",
           "check_objects", "is_sco", "parse_bundle", "parse_envelope", "version_digest",
           "version_key", "version_of"]

ID_RE = re.compile(r"^([a-z0-9][a-z0-9-]*[a-z0-9])--([0-9a-fA-F-]{36})$")
# The common spelling of an id: the object's type (one ID_RE accepts, with no "--" in it),
# "--" and a canonical 8-4-4-4-12 hex UUID, which uuid.UUID always accepts. Anything else
# takes the full path (ID_RE, then uuid.UUID). Split at "--" rather than matched as one
# regex: [a-z0-9-]* would first swallow the UUID and backtrack, on every id of a bundle.
_TYPE_RE = re.compile(r"[a-z0-9][a-z0-9-]*[a-z0-9]")
_CANONICAL_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                                r"[0-9a-fA-F]{12}")
_TYPES_SEEN: set[str] = set()  # types _TYPE_RE accepted (a handful; bounded below)


def _canonical_id(obj_id: str, stix_type: str) -> bool:
    head, _, tail = obj_id.partition("--")
    if head != stix_type or _CANONICAL_UUID_RE.fullmatch(tail) is None:
        return False
    if stix_type not in _TYPES_SEEN:
        if _TYPE_RE.fullmatch(stix_type) is None:
            return False
        if len(_TYPES_SEEN) < 10_000:
            _TYPES_SEEN.add(stix_type)
    return True


SCO_TYPES = frozenset({
    "artifact", "autonomous-system", "directory", "domain-name", "email-addr", "email-message",
    "file", "ipv4-addr", "ipv6-addr", "mac-addr", "mutex", "network-traffic", "process",
    "software", "url", "user-account", "windows-registry-key", "x509-certificate"})
# Objects without `modified` by definition (SCOs, and marking definitions, which never change).
UNVERSIONED = SCO_TYPES | {"marking-definition"}


def is_sco(obj: dict) -> bool:
    """A cyber-observable: a predefined SCO type, or a custom type an extension-definition
    declares as "new-sco". Either way spec_version is optional and there is no `modified`."""
    if obj.get("type") in SCO_TYPES:
        return True
    extensions = obj.get("extensions")
    return isinstance(extensions, dict) and any(
        isinstance(e, dict) and e.get("extension_type") == "new-sco" for e in extensions.values())


@dataclass
class Parsed:
    objects: list[dict]
    warnings: list[str] = field(default_factory=list)
    # Every *_ref / *_refs value in the objects (at any depth), gathered by the same walk
    # that checks the limits; check_objects uses it instead of walking the objects again.
    refs: set[str] | None = None


def _load(raw: bytes | str, what: str, limits: StixLimits):
    """JSON from posted bytes within the limits: size (413), then depth, strings, count.
    Returns the data and the references its objects hold (_check_shape)."""
    max_bytes, max_depth = limits.max_bytes, limits.max_depth
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if len(raw) > max_bytes:
        raise BundleRejected([Problem("", "", f"the {what} is {len(raw):,} bytes; the limit "
                                               f"is {max_bytes:,}")], status_code=413)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):  # orjson's own cap (1,024) on valid but deep JSON
            raise BundleRejected([Problem("", "", f"nested deeper than {max_depth} "
                                                  "levels")]) from exc
        if "number is infinity" in str(exc):
            # Valid JSON (1e400, or 400 digits) beyond what a double holds: a limit on the
            # content (RFC 8259 section 6 lets a reader set one), like the depth above.
            raise BundleRejected([Problem("", "", "a number too large to be read "
                                                  f"({str(exc).partition(': ')[2]})")]) from None
        raise BundleRejected([Problem("", "", f"not valid JSON ({exc})")]) from exc
    large: list[bool] = []
    refs = _check_shape(data, max_depth, limits.max_string, limits.max_objects, large)
    if large:  # a float so large that it may be how orjson read an integer literal
        _refuse_big_integers(raw, limits)
    if b"\\u0000" in raw:  # JSON spells NUL only so (or an escaped backslash and "u0000")
        _refuse_nul(data)
    return data, refs


def _objects_of(data) -> list:
    """The objects of a bundle or an envelope, or the lone object `data` is."""
    if type(data) is dict and data.get("type") in (None, "bundle"):
        objects = data.get("objects")
        return objects if type(objects) is list else []
    return [data]


def _refuse_big_integers(raw: bytes, limits: StixLimits) -> None:
    """422 naming each integer beyond STIX's 54 bits that orjson read as a float (and every
    other problem of the objects): the text is read again by the standard library, which
    keeps integers exact (only when orjson found such a float; the depth and the sizes were
    checked before). The objects are not given on: integers beyond 64 bits are more than
    orjson writes."""
    try:
        exact = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BundleRejected([Problem("", "", f"a number too large to be read ({exc})")]) \
            from None
    objects = _objects_of(exact)
    if any(type(obj) is dict and _numbers(obj) for obj in objects):
        # Refused: with every other problem of the objects, as check_objects reports them.
        problems = check_objects(objects, limits=limits)[1]
        raise BundleRejected(problems)


def parse_envelope(raw: bytes | str, limits: StixLimits = DEFAULT_LIMITS) -> Parsed:
    """A TAXII 2.1 envelope ({"objects": [...]}) into its objects, with the bundle's limits."""
    data, refs = _load(raw, "envelope", limits)
    objects = data.get("objects") if isinstance(data, dict) else None
    if not isinstance(objects, list) or not objects:
        raise BundleRejected([Problem("", "objects", "a TAXII envelope needs a non-empty list "
                                                     "of objects")])
    return Parsed(objects=objects, refs=refs)


def parse_bundle(raw: bytes | str, limits: StixLimits = DEFAULT_LIMITS) -> Parsed:
    """Parse posted text into the bundle's objects, or raise BundleRejected (413 or 422)."""
    data, refs = _load(raw, "bundle", limits)
    warnings = []
    if isinstance(data, list):
        raise BundleRejected([Problem("", "", "a bare JSON array, not a bundle: wrap the objects "
                                              "in {\"type\": \"bundle\", \"id\": \"bundle--…\", "
                                              "\"objects\": [...]}")])
    if isinstance(data, dict) and data.get("type") not in (None, "bundle") and "id" in data:
        warnings.append(f"a single {data['type']} object, not a bundle: it was read as a "
                        "bundle of one")
        data = {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": [data]}
    if not isinstance(data, dict) or data.get("type") != "bundle":
        raise BundleRejected([Problem(str(data.get("id", "")) if isinstance(data, dict) else "",
                                      "type", "expected a STIX 2.1 bundle "
                                              "(\"type\": \"bundle\")")])
    if data.get("spec_version") == "2.0":
        raise BundleRejected([Problem(str(data.get("id", "")), "spec_version",
                                      "STIX 2.0 content; upgrade it to STIX 2.1 first")])
    if "spec_version" in data:
        warnings.append("the bundle carries spec_version, which STIX 2.1 bundles do not have; "
                        "it was ignored")
    objects = data.get("objects")
    if not isinstance(objects, list) or not objects:
        raise BundleRejected([Problem(str(data.get("id", "")), "objects",
                                      "a bundle needs a non-empty list of objects")])
    return Parsed(objects=objects, warnings=warnings, refs=refs)


def check_object(obj, budget: PatternBudget | None = None) -> list[Problem]:
    """The problems of one object on its own (no references, no database). `budget`: the
    characters of pattern the full STIX pattern parser may still read for this post
    (check_objects); each indicator that needs it uses up its pattern's length."""
    refused = _identity_problems(obj)
    if refused:
        return refused
    problems = _property_problems(obj)
    if problems:
        # stix2 would report one of these again and stop there: its pattern check is the
        # one other it would make, so a broken pattern is reported in the same answer.
        return problems + _pattern_problems(obj, budget)
    # stix2, and the fast paths built from it, are imported where objects are checked: stix2
    # is slow to import, and every process that builds the app imports this module. (Once
    # loaded, these imports are a dictionary look-up.)
    from alliance.stix import fastcheck, fastpattern

    verdict = fastcheck.check(obj, pattern_ok=fastpattern.check)
    if verdict is not None and verdict[0]:
        return problems  # certainly what stix2.parse accepts (tests/notes/test_fast*.py)
    return _stix2_problems(obj, budget)


def _identity_problems(obj) -> list[Problem]:
    """Why `obj` is not an object of STIX 2.1 at all (not a JSON object, no usable type or
    id, a bundle, STIX 2.0): one problem, as nothing else about it is worth checking."""
    if not isinstance(obj, dict):
        return [Problem("", "", "an object must be a JSON object")]
    obj_id, stix_type = obj.get("id"), obj.get("type")
    if not isinstance(stix_type, str) or not isinstance(obj_id, str):
        return [Problem(str(obj_id or ""), "type" if "type" not in obj else "id",
                        "every object needs a type and an id")]
    if not _canonical_id(obj_id, stix_type):
        match = ID_RE.match(obj_id)
        if not match or match.group(1) != stix_type:
            return [Problem(obj_id, "id", f"not a STIX id of the form {stix_type}--<uuid>")]
        try:
            uuid.UUID(match.group(2))
        except ValueError:
            return [Problem(obj_id, "id", "the part after -- is not a UUID")]
    if len(obj_id) > 100:  # the stored id's column; its UUID part is 36 characters
        return [Problem(obj_id[:60] + "…", "id", f"{len(obj_id)} characters long; ids of at "
                                                 "most 100 characters (types of at most 62) "
                                                 "are stored")]
    if stix_type == "bundle":
        return [Problem(obj_id, "type", "a bundle inside a bundle")]
    if obj.get("spec_version") is None and not is_sco(obj):
        return [Problem(obj_id, "spec_version", "missing: this is STIX 2.0 content (STIX 2.1 "
                                                "objects carry spec_version \"2.1\")")]
    if obj.get("spec_version") not in (None, "2.1"):
        return [Problem(obj_id, "spec_version", f"{obj.get('spec_version')!r}: only STIX 2.1 "
                                                "is accepted")]
    return []


def _property_problems(obj: dict) -> list[Problem]:
    """The problems of an object's properties that are checked here, before stix2 is asked:
    timestamps, numbers, empty lists and JSON kinds stix2 would fail on without naming them."""
    obj_id, stix_type = obj["id"], obj["type"]
    problems: list[Problem] = []
    created = _timestamp(obj, "created", problems)
    modified = _timestamp(obj, "modified", problems)
    if "modified" not in obj and stix_type not in UNVERSIONED and not is_sco(obj):
        problems.append(Problem(obj_id, "modified", "missing (it is never filled in for you)"))
    if created and modified and modified < created:
        problems.append(Problem(obj_id, "modified", "earlier than created"))
    problems += [Problem(obj_id, path, reason) for path, reason in _numbers(obj)]
    problems += [Problem(obj_id, path, _EMPTY_LIST) for path in _empty_lists(obj)]
    problems += _shape_problems(obj)
    return problems


def version_key(timestamp: str) -> str:
    """A STIX timestamp (checked) as text that is equal for equal instants: the seconds, then
    the fraction padded to 9 digits. "12:00:00Z" and "12:00:00.000Z" are one version (the
    same rule as the TAXII pages' _instant)."""
    fraction = timestamp[19:].removeprefix(".").removesuffix("Z")
    return timestamp[:19] + (fraction + "000000000")[:9]


def check_objects(objects: list, progress=None, refs: set[str] | None = None,
                  limits: StixLimits = DEFAULT_LIMITS,
                  ) -> tuple[list[dict], list[Problem], set[str]]:
    """Check every object and the bundle as a whole. Returns the distinct objects (identical
    duplicates folded), the problems, and the references that point outside the bundle.
    `progress`, if given, is called with 1 after each object is checked (a CLI progress bar).
    `refs`, if given, are all the references these very objects hold (Parsed.refs).
    `limits.max_slow_patterns` bounds the pattern text stix2's own parser reads for them."""
    check = BundleCheck(limits, progress)
    distinct = check.add(objects, refs)
    return distinct, check.problems, check.unresolved()


class BundleCheck:
    """check_objects over a bundle given a part at a time (a file too large to hold whole,
    read by alliance.stix.stream): `add` checks a part and returns its distinct objects, the
    duplicates of earlier parts folded too; `problems` are every part's so far and
    `unresolved()` the references that point outside the whole bundle."""

    def __init__(self, limits: StixLimits = DEFAULT_LIMITS, progress=None) -> None:
        self.problems: list[Problem] = []
        self.ids: set[str] = set()
        self._progress = progress
        self._budget = PatternBudget(limits.max_slow_patterns)
        self._refs: set[str] = set()
        self._part: dict[tuple, dict] = {}  # (id, version) -> object, of the last part
        # The same of earlier parts, short: version_digest -> _digest.
        self._digests: dict[bytes, bytes] = {}

    def add(self, objects: list, refs: set[str] | None = None) -> list[dict]:
        """Check one part; its distinct objects not seen in an earlier part."""
        for key, obj in self._part.items():  # a part is held only while it is checked
            self._digests[version_digest(*key)] = _digest(obj)
        distinct: dict[tuple, dict] = {}
        self._part = distinct
        problems: list[Problem] = []
        budget, progress, earlier = self._budget, self._progress, self._digests
        for obj in objects:
            found = check_object(obj, budget)
            if progress is not None:
                progress(1)
            problems.extend(found)
            if found:
                continue
            key = version_of(obj)
            if earlier and (seen := earlier.get(version_digest(*key))) is not None:
                if seen != _digest(obj):
                    problems.append(_twice(obj))
                continue
            if key in distinct and distinct[key] != obj:
                problems.append(_twice(obj))
            distinct.setdefault(key, obj)
        if refs is not None and not problems:
            self._refs |= refs  # every object is valid and distinct: the same set
        else:
            for obj in distinct.values():
                _collect_refs(obj, self._refs)  # references(obj), for every object at once
        self.ids.update(key[0] for key in distinct)
        self.problems += problems
        return list(distinct.values())

    def unresolved(self) -> set[str]:
        """The references of the objects checked so far that point outside them."""
        outside = self._refs - self.ids - known_marking_ids()
        # A value that is no STIX id is data, not a reference: stix2 refuses such a value
        # where STIX 2.1 defines the property as a reference; a custom property that is a
        # reference by name (ATT&CK's x_mitre_data_source_ref: "") keeps what it holds.
        return {ref for ref in outside if ID_RE.match(ref)}


def _twice(obj: dict) -> Problem:
    return Problem(obj["id"], "modified", "the same id and modified appear twice with "
                                          "different content")


def version_of(obj: dict) -> tuple[str, str]:
    """A checked object's id and version (version_key): what tells its duplicates."""
    return obj["id"], version_key(obj.get("modified") or obj.get("created") or "")


def version_digest(stix_id: str, version: str) -> bytes:
    """A version of an id (its id and version_key), short: a bundle read in parts keeps one
    for each of its objects."""
    return hashlib.blake2b(f"{stix_id} {version}".encode(), digest_size=16).digest()


def _digest(obj: dict) -> bytes:
    """What tells a checked object from another (its properties in one order), short."""
    return hashlib.blake2b(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS),
                           digest_size=16).digest()
