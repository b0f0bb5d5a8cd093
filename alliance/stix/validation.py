"""Validating posted STIX 2.1 before anything is stored. Every problem names the object id,
the property and the reason; the caller stores nothing unless the list is empty.

Each object is checked by a fast path first (alliance.stix.fastcheck and fastpattern, whose
"certainly valid" verdicts agree with the stix2 library's — differential tests keep them
honest); anything it is not sure of, and every refusal, goes through stix2.parse itself.

Limits are checked before any parsing work that could be expensive: the byte size first
(413), then orjson's own nesting cap, then one iterative walk for depth, string length and
object count (422)."""
import json
import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime

import orjson
from flask import current_app

from alliance.core.errors import DomainError
from alliance.stix.markings import known_marking_ids

ID_RE = re.compile(r"^([a-z0-9][a-z0-9-]*[a-z0-9])--([0-9a-fA-F-]{36})$")
_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
# The common spelling of an id: the object's type (one ID_RE accepts, with no "--" in it),
# "--" and a canonical 8-4-4-4-12 hex UUID, which uuid.UUID always accepts. Anything else
# takes the full path (ID_RE, then uuid.UUID). Split at "--" rather than matched as one
# regex: [a-z0-9-]* would first swallow the UUID and backtrack (2 µs an id).
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


# What the stix_objects columns hold (alliance.notes.models.StixObject): `modified` (or
# `created` for an object without one) in String(40), ids in String(100). A timestamp with at
# most 9 fraction digits (nanoseconds) is at most 30 characters, and version_key, which
# compares versions to the nanosecond, then tells every two different instants apart.
MAX_FRACTION_DIGITS = 9
_MAX_TIMESTAMP_LENGTH = len("2024-05-01T12:00:00.Z") + MAX_FRACTION_DIGITS
# STIX 2.1 (section 2.16): an integer fits a signed 54-bit value. Beyond it a JSON reader
# (orjson among them, past 64 bits) reads a float, and the value would be served changed.
MAX_INTEGER = 2**53 - 1
# orjson reads an integer literal beyond 64 bits as a float (-(2**63) - 1 as -2.0**63):
# a float outside the integers STIX allows may have been one.
_FLOAT_FROM_INTEGER = float(MAX_INTEGER)


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
class Problem:
    object_id: str
    property: str
    reason: str

    def __str__(self):
        where = " ".join(p for p in (self.object_id, self.property) if p)
        return f"{where}: {self.reason}" if where else self.reason


class BundleRejected(DomainError):
    """The bundle was refused; problems lists every reason (nothing was stored)."""

    status_code = 422

    def __init__(self, problems: list[Problem], status_code: int = 422):
        self.problems = problems
        self.status_code = status_code
        first = str(problems[0]) if problems else "the bundle was refused"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"The STIX content was refused: {first}{more}.")


@dataclass
class Parsed:
    objects: list[dict]
    warnings: list[str] = field(default_factory=list)
    # Every *_ref / *_refs value in the objects (at any depth), gathered by the same walk
    # that checks the limits; check_objects uses it instead of walking the objects again.
    refs: set[str] | None = None


def _slow_pattern_budget() -> int:
    return current_app.config["STIX_MAX_SLOW_PATTERNS"]


def _limits():
    c = current_app.config
    return (c["STIX_MAX_BYTES"], c["STIX_MAX_OBJECTS"], c["STIX_MAX_DEPTH"],
            c["STIX_MAX_STRING"])


def _load(raw: bytes | str, what: str):
    """JSON from posted bytes within the limits: size (413), then depth, strings, count.
    Returns the data and the references its objects hold (_check_shape)."""
    max_bytes, max_objects, max_depth, max_string = _limits()
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
    refs = _check_shape(data, max_depth, max_string, max_objects, large)
    if large:  # a float so large that it may be how orjson read an integer literal
        _refuse_big_integers(raw, data)
    if b"\\u0000" in raw:  # JSON spells NUL only so (or an escaped backslash and "u0000")
        _refuse_nul(data)
    return data, refs


def _objects_of(data) -> list:
    """The objects of a bundle or an envelope, or the lone object `data` is."""
    if type(data) is dict and data.get("type") in (None, "bundle"):
        objects = data.get("objects")
        return objects if type(objects) is list else []
    return [data]


def _refuse_big_integers(raw: bytes, data) -> None:
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
        problems = check_objects(objects)[1]
        raise BundleRejected(problems)


def _refuse_nul(data) -> None:
    """422 when a string (or a property name) holds NUL: PostgreSQL refuses it in text and
    JSON, and no STIX content needs it. The depth was checked before."""
    level = [data]
    while level:
        below = []
        for value in level:
            if type(value) is dict:
                for key, item in value.items():
                    if "\x00" in key:
                        raise BundleRejected([Problem("", repr(key)[:60], "a property name "
                                                      "holds a NUL character (\\u0000)")])
                    below.append(item)
            elif type(value) is list:
                below.extend(value)
            elif type(value) is str and "\x00" in value:
                raise BundleRejected([Problem("", "", f"the string {value[:40]!r} holds a NUL "
                                                      "character (\\u0000), which is not "
                                                      "stored")])
        level = below


def parse_envelope(raw: bytes | str) -> Parsed:
    """A TAXII 2.1 envelope ({"objects": [...]}) into its objects, with the bundle's limits."""
    data, refs = _load(raw, "envelope")
    objects = data.get("objects") if isinstance(data, dict) else None
    if not isinstance(objects, list) or not objects:
        raise BundleRejected([Problem("", "objects", "a TAXII envelope needs a non-empty list "
                                                     "of objects")])
    return Parsed(objects=objects, refs=refs)


def parse_bundle(raw: bytes | str) -> Parsed:
    """Parse posted text into the bundle's objects, or raise BundleRejected (413 or 422)."""
    data, refs = _load(raw, "bundle")
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


def _check_shape(data, max_depth: int, max_string: int, max_objects: int,
                 large: list[bool] | None = None) -> set[str]:
    """Depth, string length, property names and object count, in one breadth-first pass a
    level at a time; on the way, every *_ref / *_refs value of the objects (a bundle's or
    an envelope's "objects", else the whole document: a lone object). Returns those.
    `large`, if given, gets True appended when the objects hold a float beyond 2**53 - 1."""
    refs: set[str] = set()
    # A bundle, or an envelope (no type): a lone object's own "objects" is only a property.
    container = type(data) is dict and data.get("type") in (None, "bundle")
    objects = data.get("objects") if container else None
    if type(objects) is list:  # a container: its own properties hold no references
        _walk([data], 1, max_depth, max_string, None, skip=objects)
        _walk(objects, 3, max_depth, max_string, refs, large=large)
    else:
        _walk([data], 1, max_depth, max_string, refs, large=large)
    objects = data.get("objects") if isinstance(data, dict) else data
    if isinstance(objects, list) and len(objects) > max_objects:
        raise BundleRejected([Problem("", "objects", f"{len(objects):,} objects; the limit is "
                                                     f"{max_objects:,}")], status_code=413)
    return refs


# Property name -> _PLAIN, _REF, _REFS (by its ending), remembered: names repeat.
_PLAIN, _REF, _REFS = 0, 1, 2
_NAMES: dict[str, int] = {}


def _name_kind(key: str) -> int:
    if len(key) > 250:
        raise BundleRejected([Problem("", key[:40] + "…", "property name too long")])
    kind = _REF if key.endswith("_ref") else _REFS if key.endswith("_refs") else _PLAIN
    if len(key) <= 64 and len(_NAMES) < 20_000:  # keeps the memo small
        _NAMES[key] = kind
    return kind


def _walk(level: list, depth: int, max_depth: int, max_string: int, refs: set[str] | None,
          skip=None, large: list[bool] | None = None) -> None:
    """_check_shape's walk from `level` (at `depth`), collecting references into `refs`
    unless it is None; `skip` (the objects list, walked on its own) is left out. A float
    beyond 2**53 - 1 appends True to `large` (if given), once."""
    names = _NAMES
    while level:
        if depth > max_depth:
            raise BundleRejected([Problem("", "", f"nested deeper than {max_depth} levels")])
        below = []
        for value in level:
            kind = type(value)
            if kind is dict:
                for key in value:
                    name = names.get(key)
                    if name is None:
                        name = _name_kind(key)
                    if name and refs is not None:
                        item = value[key]
                        if name == _REF:
                            if type(item) is str:
                                refs.add(item)
                        elif type(item) is list:
                            refs.update(i for i in item if type(i) is str)
                below.extend(value.values())
            elif kind is list:
                if value is not skip:
                    below.extend(value)
            elif kind is str:
                if len(value) > max_string:
                    raise BundleRejected([Problem("", "", f"a string of {len(value):,} "
                                                          f"characters; the limit is "
                                                          f"{max_string:,}")],
                                         status_code=413)
            elif kind is float and large is not None and not large and not (
                    -_FLOAT_FROM_INTEGER <= value <= _FLOAT_FROM_INTEGER):
                large.append(True)
        level, depth = below, depth + 1


# Timestamp strings repeat across a bundle (and within an object): their verdict is
# remembered, by value. A datetime, or one of the two reasons below.
_NOT_RFC3339, _NOT_REAL = object(), object()
_TIMESTAMPS: dict[str, object] = {}
_TIMESTAMPS_LIMIT = 50_000


def _timestamp_verdict(value: str):
    verdict = _TIMESTAMPS.get(value)
    if verdict is None:
        if not TIMESTAMP_RE.match(value):
            verdict = _NOT_RFC3339
        else:
            try:
                verdict = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                verdict = _NOT_REAL
        if len(value) <= 64:  # keeps the memo small
            if len(_TIMESTAMPS) >= _TIMESTAMPS_LIMIT:
                _TIMESTAMPS.clear()
            _TIMESTAMPS[value] = verdict
    return verdict


def _timestamp(obj: dict, prop: str, problems: list[Problem]) -> datetime | None:
    value = obj.get(prop)
    if value is None:
        return None
    verdict = _timestamp_verdict(value) if isinstance(value, str) else _NOT_RFC3339
    if verdict is _NOT_RFC3339:
        problems.append(Problem(obj.get("id", ""), prop, f"{value!r} is not an RFC 3339 UTC "
                                                         "timestamp like 2024-05-01T12:00:00Z"))
        return None
    if verdict is _NOT_REAL:
        problems.append(Problem(obj.get("id", ""), prop, f"{value!r} is not a real date"))
        return None
    if len(value) > _MAX_TIMESTAMP_LENGTH:  # RFC 3339, so the fraction is what is longer
        shown = value if len(value) <= 60 else value[:40] + "…"
        problems.append(Problem(obj.get("id", ""), prop, (
            f"{shown!r} has {len(value) - _MAX_TIMESTAMP_LENGTH + MAX_FRACTION_DIGITS} "
            f"fraction digits; at most {MAX_FRACTION_DIGITS} fraction digits (nanoseconds) "
            "are stored")))
        return None
    return verdict


_MAX_NUMBER_PROBLEMS = 10  # of one object
# STIX 2.1 (3.1): a list property must not be empty, custom and extension properties too.
_EMPTY_LIST = "an empty list: STIX 2.1 lists hold at least one item (leave the property out)"


def _numbers(obj: dict) -> list[tuple[str, str]]:
    """(property path, reason) for each integer of the object, at any depth, outside the
    54 bits STIX 2.1 allows, each float that is not a number JSON can carry (NaN and
    infinities, which only a Python caller can pass): the first few of them."""
    found: list[tuple[str, str]] = []
    _number_walk(obj, "", found)
    return found


def _empty_lists(obj: dict) -> list[str]:
    """The properties of the object, and of each of its extensions, that hold an empty list
    (STIX 2.1, 3.1: a list property holds at least one item; custom and extension properties
    too). What a custom property holds inside is its own data (ATT&CK ICS's
    x_mitre_related_assets[].related_asset_sectors: [])."""
    found = [key for key, value in obj.items() if type(value) is list and not value]
    extensions = obj.get("extensions")
    if type(extensions) is dict:
        found += [f"extensions.{name}.{key}" for name, extension in extensions.items()
                  if type(extension) is dict
                  for key, value in extension.items() if type(value) is list and not value]
    return found


def _number_problem(value, path: str, found: list) -> None:
    if type(value) is int:
        found.append((path, f"{value} is outside the integers STIX 2.1 allows (a signed "
                            f"54-bit value: {-MAX_INTEGER} to {MAX_INTEGER})"))
    else:
        found.append((path, f"{value} is not a number JSON can carry"))


def _number_walk(value, path: str, found: list) -> None:
    if len(found) >= _MAX_NUMBER_PROBLEMS:
        return
    if type(value) is dict:
        for key, item in value.items():
            kind = type(item)
            if kind is str:
                continue
            if kind is int:
                if not -MAX_INTEGER <= item <= MAX_INTEGER:
                    _number_problem(item, f"{path}.{key}" if path else key, found)
            elif kind is float:
                if not math.isfinite(item):
                    _number_problem(item, f"{path}.{key}" if path else key, found)
            elif kind is dict or kind is list:
                _number_walk(item, f"{path}.{key}" if path else key, found)
    elif type(value) is list:
        for n, item in enumerate(value):
            kind = type(item)
            if kind is str:
                continue
            if kind is int:
                if not -MAX_INTEGER <= item <= MAX_INTEGER:
                    _number_problem(item, f"{path}[{n}]", found)
            elif kind is float:
                if not math.isfinite(item):
                    _number_problem(item, f"{path}[{n}]", found)
            elif kind is dict or kind is list:
                _number_walk(item, f"{path}[{n}]", found)


def _stix2_problem(obj: dict, exc: Exception) -> Problem:
    from stix2 import exceptions as stix_errors

    obj_id = obj["id"]
    prop = getattr(exc, "prop_name", None) or ", ".join(getattr(exc, "properties", []) or [])
    if not prop and isinstance(exc, stix_errors.InvalidSelectorError):
        prop = "granular_markings"  # "Selector x in Indicator is not valid!"
    reason = str(exc).strip() or type(exc).__name__
    if not prop:
        # Object-level constraints (stop_time after start_time, definition_type, ...) come as
        # plain ValueErrors: name the object's properties the message mentions.
        prop = ", ".join(k for k in obj if k not in ("type", "id") and re.search(
            rf"(?<![\w-]){re.escape(k)}(?![\w-])", reason))
        reason = reason.removeprefix(obj_id).strip() or reason
    return Problem(obj_id, prop or "", reason)


def check_object(obj, budget: list[int] | None = None) -> list[Problem]:
    """The problems of one object on its own (no references, no database). `budget`: the
    characters of pattern the full STIX pattern parser may still read for this post
    (check_objects); each indicator that needs it uses up its pattern's length."""
    if not isinstance(obj, dict):
        return [Problem("", "", "an object must be a JSON object")]
    obj_id = obj.get("id")
    problems: list[Problem] = []
    if not isinstance(obj.get("type"), str) or not isinstance(obj_id, str):
        return [Problem(str(obj_id or ""), "type" if "type" not in obj else "id",
                        "every object needs a type and an id")]
    if not _canonical_id(obj_id, obj["type"]):
        match = ID_RE.match(obj_id)
        if not match or match.group(1) != obj["type"]:
            return [Problem(obj_id, "id", f"not a STIX id of the form {obj['type']}--<uuid>")]
        try:
            uuid.UUID(match.group(2))
        except ValueError:
            return [Problem(obj_id, "id", "the part after -- is not a UUID")]
    stix_type = obj["type"]
    if len(obj_id) > 100:  # the stored id's column; its UUID part is 36 characters
        return [Problem(obj_id[:60] + "…", "id", f"{len(obj_id)} characters long; ids of at "
                                                 "most 100 characters (types of at most 62) "
                                                 "are stored")]
    if stix_type == "bundle":
        return [Problem(obj_id, "type", "a bundle inside a bundle")]
    sco = is_sco(obj)
    if obj.get("spec_version") is None and not sco:
        return [Problem(obj_id, "spec_version", "missing: this is STIX 2.0 content (STIX 2.1 "
                                                "objects carry spec_version \"2.1\")")]
    if obj.get("spec_version") not in (None, "2.1"):
        return [Problem(obj_id, "spec_version", f"{obj.get('spec_version')!r}: only STIX 2.1 "
                                                "is accepted")]
    created = _timestamp(obj, "created", problems)
    modified = _timestamp(obj, "modified", problems)
    if not sco and stix_type not in UNVERSIONED and "modified" not in obj:
        problems.append(Problem(obj_id, "modified", "missing (it is never filled in for you)"))
    if created and modified and modified < created:
        problems.append(Problem(obj_id, "modified", "earlier than created"))
    problems += [Problem(obj_id, path, reason) for path, reason in _numbers(obj)]
    problems += [Problem(obj_id, path, _EMPTY_LIST) for path in _empty_lists(obj)]
    problems += _shape_problems(obj)
    if problems:
        # stix2 would report one of these again and stop there: its pattern check is the
        # one other it would make, so a broken pattern is reported in the same answer.
        return problems + _pattern_problems(obj, budget)
    # stix2, and the fast paths built from it, are imported where objects are checked: it
    # costs ~0.2 s to import, and every process that builds the app imports this module.
    # (Once loaded, these imports are a dictionary look-up, well under a microsecond.)
    import stix2
    from stix2 import exceptions as stix_errors

    from alliance.stix import fastcheck, fastpattern

    verdict = fastcheck.check(obj, pattern_ok=fastpattern.check)
    if verdict is not None and verdict[0]:
        return problems  # certainly what stix2.parse accepts (tests/notes/test_fast*.py)
    pattern = obj.get("pattern") if stix_type == "indicator" else None
    if budget is not None and isinstance(pattern, str):
        # stix2's pattern parser reads about 7 µs a character: 10 MB of patterns it must read
        # would hold a worker for over a minute.
        budget[0] -= len(pattern)
        if budget[0] < 0:
            return [Problem(obj_id, "pattern", "not checked: the patterns of this post that "
                                               "need the full STIX pattern parser are longer "
                                               "than one post may have checked "
                                               f"({_slow_pattern_budget():,} characters); "
                                               "post them in smaller bundles")]
    try:
        # Not sure, or refused: the stix2 library decides, and its message is the one shown.
        parsed = stix2.parse(obj, allow_custom=True, version="2.1")
        # It also turns what it can into the type STIX wants (5 into "5", "abc" into
        # ["abc"], "50" into 50); the body is stored and served as posted, so such a value
        # is refused, not kept as invalid STIX.
        coerced = _coerced(obj, orjson.loads(parsed.serialize()))
        if coerced is not None:
            path, posted, wanted = coerced
            problems.append(Problem(obj_id, path, f"{posted} where STIX 2.1 has {wanted}"))
    except (stix_errors.STIXError, ValueError, TypeError, KeyError) as exc:
        problems.append(_stix2_problem(obj, exc))
    except Exception as exc:  # stix2 raises odd things on odd input; never a 500
        problems.append(Problem(obj_id, "", f"could not be read as STIX 2.1 ({type(exc).__name__})"))
    return problems


def _pattern_problems(obj: dict, budget: list[int] | None) -> list[Problem]:
    """An indicator's STIX pattern, checked on its own (the object has other problems)."""
    pattern = obj.get("pattern")
    if obj["type"] != "indicator" or obj.get("pattern_type", "stix") != "stix" or not (
            isinstance(pattern, str) and pattern):
        return []
    version = obj.get("pattern_version")
    from alliance.stix import fastpattern

    verdict = fastpattern.check(pattern, version if isinstance(version, str) else None)
    if verdict:
        return []
    if budget is not None:
        budget[0] -= len(pattern)
        if budget[0] < 0:
            return []  # the rest of the post says so when it gets there
    from stix2patterns.validator import run_validator

    try:
        errors = run_validator(pattern, stix_version="2.1")
    except Exception:  # the pattern parser fails oddly on odd input; never a 500
        errors = ["could not be read"]
    return [Problem(obj["id"], "pattern", "; ".join(errors))] if errors else []


def _shape_problems(obj: dict) -> list[Problem]:
    """Properties of a JSON kind stix2 reads without checking, failing on them with an error
    that names nothing (an AttributeError, "unhashable type")."""
    problems = []
    extensions = obj.get("extensions")
    if extensions is not None and (type(extensions) is not dict or any(
            type(e) is not dict for e in extensions.values())):
        problems.append(Problem(obj["id"], "extensions", "must be an object whose values are "
                                                         "objects (one per extension)"))
    if obj["type"] == "url" and isinstance(obj.get("value"), str) and not _URL_SCHEME.match(
            obj["value"]):
        # STIX 2.1 (6.15): a URL per RFC 3986, which begins with its scheme; stix2 does not
        # check it, stix2-validator does, and what is stored is served back as posted.
        problems.append(Problem(obj["id"], "value", f"{obj['value'][:100]!r} is not a URL "
                                                    "(it has no scheme, e.g. https://)"))
    markings = obj.get("object_marking_refs")
    if "object_marking_refs" in obj and (type(markings) is not list or any(
            type(m) is not str for m in markings)):
        # stix2 leaves a custom object unchecked, and the note's TLP marking is added to
        # this list at ingest: true was a 500, "text" served as ["t", "e", "x", "t", ...].
        problems.append(Problem(obj["id"], "object_marking_refs", "must be a list of "
                                                                  "marking-definition ids"))
    if obj["type"] == "marking-definition":
        if "definition_type" in obj and type(obj["definition_type"]) is not str:
            problems.append(Problem(obj["id"], "definition_type", "must be a string"))
        if "definition" in obj and type(obj["definition"]) is not dict:
            problems.append(Problem(obj["id"], "definition", "must be an object"))
    return problems


def _json_kind(value) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "null"


def _coerced(posted, parsed, path: str = "") -> tuple[str, str, str] | None:
    """The first place where stix2's reading of the object holds a value of another JSON
    kind than the one posted (or a list of another length): (property path, posted kind,
    kind STIX wants). Properties stix2 added or renamed (hash names) are not compared."""
    if _json_kind(posted) != _json_kind(parsed):
        return path, _json_kind(posted), _json_kind(parsed)
    if isinstance(posted, dict):
        for key, value in posted.items():
            if value is None or value == []:
                where = f"{path}.{key}" if path else key
                return where, ("null" if value is None else "an empty list"), (
                    "no value: leave the property out")
            if key in parsed:
                found = _coerced(value, parsed[key], f"{path}.{key}" if path else key)
                if found:
                    return found
    elif isinstance(posted, list):
        if len(posted) != len(parsed):
            return path, f"a list of {len(posted)}", f"a list of {len(parsed)}"
        for n, (value, read) in enumerate(zip(posted, parsed, strict=True)):
            found = _coerced(value, read, f"{path}[{n}]")
            if found:
                return found
    return None


def version_key(timestamp: str) -> str:
    """A STIX timestamp (checked) as text that is equal for equal instants: the seconds, then
    the fraction padded to 9 digits. "12:00:00Z" and "12:00:00.000Z" are one version (the
    same rule as the TAXII pages' _instant)."""
    fraction = timestamp[19:].removeprefix(".").removesuffix("Z")
    return timestamp[:19] + (fraction + "000000000")[:9]


def references(obj: dict) -> set[str]:
    """Every id the object points to through *_ref / *_refs properties, at any depth
    (bounded by STIX_MAX_DEPTH, checked before)."""
    found: set[str] = set()
    _collect_refs(obj, found)
    return found


def _collect_refs(value, found: set[str]) -> None:
    if type(value) is dict:
        for key, item in value.items():
            kind = type(item)
            if kind is str:
                if key.endswith("_ref"):
                    found.add(item)
            elif kind is list:
                if key.endswith("_refs"):
                    found.update(i for i in item if type(i) is str)
                for element in item:
                    if type(element) in (dict, list):
                        _collect_refs(element, found)
            elif kind is dict:
                _collect_refs(item, found)
    elif type(value) is list:
        for element in value:
            if type(element) in (dict, list):
                _collect_refs(element, found)


def check_objects(objects: list, progress=None,
                  refs: set[str] | None = None) -> tuple[list[dict], list[Problem], set[str]]:
    """Check every object and the bundle as a whole. Returns the distinct objects (identical
    duplicates folded), the problems, and the references that point outside the bundle.
    `progress`, if given, is called with 1 after each object is checked (a CLI progress bar).
    `refs`, if given, are all the references these very objects hold (Parsed.refs)."""
    problems: list[Problem] = []
    distinct: dict[tuple, dict] = {}
    budget = [_slow_pattern_budget()]
    for obj in objects:
        found = check_object(obj, budget)
        if progress is not None:
            progress(1)
        problems.extend(found)
        if found:
            continue
        key = (obj["id"], version_key(obj.get("modified") or obj.get("created") or ""))
        if key in distinct and distinct[key] != obj:
            problems.append(Problem(obj["id"], "modified", "the same id and modified appear twice "
                                                           "with different content"))
        distinct.setdefault(key, obj)
    if refs is not None and not problems:
        outside = set(refs)  # every object is valid and distinct: the same set
    else:
        outside = set()
        for obj in distinct.values():
            _collect_refs(obj, outside)  # references(obj), for every object at once
    outside -= {key[0] for key in distinct}
    outside -= known_marking_ids()
    # A value that is no STIX id is data, not a reference: stix2 refuses such a value where
    # STIX 2.1 defines the property as a reference; a custom property that is a reference by
    # name (ATT&CK's x_mitre_data_source_ref: "") keeps what it holds.
    return list(distinct.values()), problems, {ref for ref in outside if ID_RE.match(ref)}
