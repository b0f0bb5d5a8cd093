"""A fast verdict on one STIX 2.1 object, sound with respect to ``stix2.parse``.

Importing a bundle used to run every object through
``stix2.parse(obj, allow_custom=True, version="2.1")`` (a few hundred microseconds an
object). ``check(obj)`` answers the same question for the common cases some tens of times
faster, and says so when it cannot.

The contract (soundness is the whole point):

* ``(True, "", "")``: ``stix2.parse(obj, allow_custom=True, version="2.1")`` certainly
  accepts ``obj``.  Never given for an object stix2 would refuse.
* ``(False, property, reason)``: stix2 certainly refuses ``obj``.  Only given when that is
  trivially certain: no ``type`` at all, a required property missing, or a custom property
  whose name does not start with a-z (the checks ``_STIXBase.__init__`` always makes).
* ``None``: not sure.  The caller runs ``stix2.parse`` itself.  Anything unusual ends here:
  a value of an unexpected JSON type even where stix2 would coerce it (``"50"`` for an
  integer, ``"true"`` for a boolean, a non-canonical UUID spelling stix2 tolerates...),
  granular markings, registered extensions, SCOs, bundles, language-content, ...

How it stays sound.  The checks are derived from the ``_properties`` of the classes stix2
registers for STIX 2.1: each ``Property`` whose ``clean()`` is reproduced here exactly
(matched on its exact class, never a subclass) becomes a validator that accepts a *subset*
of what that ``clean()`` accepts; any other property may only be absent.  The
object-level rules (``__init__`` and ``_check_object_constraints`` of each class) are
written out below for the types listed in ``_AUDITED``; at import, each class's methods
must still be the audited ones and stix2 must be the audited version (3.0.2), otherwise the
type (or everything) answers ``None``.  At call time the live stix2 registry decides which
class ``stix2.parse`` would use, so a type registered later with ``CustomObject`` falls back.

Indicators with ``pattern_type`` "stix": the pattern itself is not validated here.  Pass
``pattern_ok(pattern, pattern_version)``, a callable answering like
``not stix2patterns.validator.run_validator(pattern, pattern_version)`` would (True: valid,
False: invalid, None: unknown).  The version given is the one stix2 would use ("2.1" when the
object has no truthy ``pattern_version``; note that run_validator uses the 2.0 grammar for
any version other than "2.1").  Without ``pattern_ok`` such indicators answer ``None``.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable

import stix2
from stix2 import properties as props
from stix2.hashes import infer_hash_algorithm
from stix2.registry import STIX2_OBJ_MAPS
from stix2.utils import STIXTypeClass
from stix2.v21 import common, sdo, sro
from stix2.v21.vocab import HASHING_ALGORITHM

__all__ = ["ACCEPT", "check", "covered_types"]

Verdict = tuple[bool, str, str] | None
PatternOk = Callable[[str, str], "bool | None"]
Validator = Callable[[object], bool]

ACCEPT: tuple[bool, str, str] = (True, "", "")
AUDITED_STIX2_VERSION = "3.0.2"

# The live registry dicts (stix2 registers custom classes into these very dicts).
_MAPS = STIX2_OBJ_MAPS["2.1"]
_OBJECTS = _MAPS["objects"]
_OBSERVABLES = _MAPS["observables"]
_EXTENSIONS = _MAPS["extensions"]
_MARKINGS = _MAPS["markings"]

# ---------------------------------------------------------------------------------------
# Scalars: strict forms that are a subset of what stix2 accepts.

# uuid.UUID() also takes braces, "urn:uuid:", no or misplaced hyphens, underscores...; the
# canonical spelling is enough here.  STIX 2.1 needs the RFC 4122 variant (8, 9, a, b) and
# any version.
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}"
_UUID_RE = re.compile(_UUID)
# A reference: stix2 splits at the first "--" and does not check the type's spelling; this
# spelling (no "--" inside, no trailing "-") makes that split unambiguous.
_REF_RE = re.compile(r"([a-z][a-z0-9]*(?:-[a-z0-9]+)*)--" + _UUID)
# strptime("%Y-%m-%dT%H:%M:%S[.%f]Z") also takes 1-digit fields, " 1" days, Unicode digits;
# its regex is case-insensitive (so "t" and "z" are fine), %f takes 1 to 6 digits.
_TS_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,6}))?[Zz]")
_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

_CACHE_LIMIT = 50_000
_TS_CACHE: dict[str, str] = {}
_REF_CACHE: dict[str, str] = {}


def _remember(cache: dict[str, str], key: str, value: str) -> str:
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[key] = value
    return value


def _ts_key(value: str) -> str | None:
    """A sortable "YYYY-MM-DDTHH:MM:SS.ffffff" for a timestamp stix2 accepts, else None."""
    key = _TS_CACHE.get(value)
    if key is None:
        if len(value) > 27:  # the longest valid form; keeps the cache small
            return None
        key = ""
        m = _TS_RE.fullmatch(value)
        if m is not None:
            year, month, day, hour, minute, second, frac = m.groups()
            y, mo, d = int(year), int(month), int(day)
            if (y >= 1 and 1 <= mo <= 12 and d >= 1 and hour < "24" and minute < "60"
                    and second < "60"):
                leap = mo == 2 and y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
                if d <= _DAYS[mo - 1] + leap:
                    key = f"{year}-{month}-{day}T{hour}:{minute}:{second}.{(frac or '').ljust(6, '0')}"
        _remember(_TS_CACHE, value, key)
    return key or None


def _ref_type(value: str) -> str:
    """The type part of a well-formed reference, or "" when it is not one."""
    t = _REF_CACHE.get(value)
    if t is None:
        m = _REF_RE.fullmatch(value)
        t = m.group(1) if m else ""
        if len(value) <= 300:  # keeps the cache small
            _remember(_REF_CACHE, value, t)
    return t


# ---------------------------------------------------------------------------------------
# Validators: value -> True when that Property's clean() certainly accepts it.  None never
# reaches them, and a [] they refuse counts as absent: stix2 drops both before cleaning.

def _is_str(v: object) -> bool:
    return type(v) is str


def _is_bool(v: object) -> bool:
    return type(v) is bool


def _is_timestamp(v: object) -> bool:
    return type(v) is str and _ts_key(v) is not None


def _absent_only(v: object) -> bool:
    return v == []


def _accept_any(v: object) -> bool:
    return True


def _fixed(value: str) -> Validator:
    def valid(v: object) -> bool:
        return type(v) is str and v == value
    return valid


def _identifier(prefix: str) -> Validator:
    pattern = re.compile(re.escape(prefix) + _UUID)

    def valid(v: object) -> bool:
        return type(v) is str and pattern.fullmatch(v) is not None
    return valid


def _integer(lo: int | None, hi: int | None) -> Validator:
    def valid(v: object) -> bool:
        return type(v) is int and (lo is None or v >= lo) and (hi is None or v <= hi)
    return valid


def _float(lo: float | None, hi: float | None) -> Validator:
    def valid(v: object) -> bool:
        if type(v) is int:
            if not -2**53 <= v <= 2**53:  # float() of a huge int overflows
                return False
            v = float(v)
        elif type(v) is not float or not math.isfinite(v):
            return False
        return (lo is None or v >= lo) and (hi is None or v <= hi)
    return valid


def _enum(allowed: list[str]) -> Validator:
    allowed_set = frozenset(a for a in allowed if type(a) is str)

    def valid(v: object) -> bool:
        return type(v) is str and v in allowed_set
    return valid


_NOT_SDO = frozenset({"relationship", "sighting", "marking-definition", "bundle",
                      "language-content"})


def _is_sdo(t: str) -> bool:  # stix2.utils.is_sdo for a type name
    return t in _OBJECTS and t not in _NOT_SDO

_TYPE_CLASS_TESTS: dict[STIXTypeClass, Callable[[str], bool]] = {
    STIXTypeClass.SDO: _is_sdo,
    STIXTypeClass.SCO: lambda t: t in _OBSERVABLES,
    STIXTypeClass.SRO: lambda t: t in ("sighting", "relationship"),
}


def _reference(prop: props.ReferenceProperty) -> Validator | None:
    """ReferenceProperty.clean(value, allow_custom=True), for str values."""
    if prop.spec_version != "2.1":
        return None
    whitelist = prop.auth_type == props.ReferenceProperty._WHITELIST
    generics, specifics = set(prop.generics), frozenset(prop.specifics)
    exceptions: frozenset[str] = frozenset()
    if whitelist and generics:
        # allow_custom flips a whitelist with type classes into a blacklist of the others.
        whitelist = False
        generics = set(STIXTypeClass) - generics
        exceptions, specifics = specifics, frozenset()
    tests = tuple(_TYPE_CLASS_TESTS[g] for g in generics)

    if whitelist:  # no type classes left: exactly the listed types
        def type_ok(t: str) -> bool:
            return t in specifics
    else:
        def type_ok(t: str) -> bool:
            if t in exceptions:
                return True
            return t not in specifics and not any(test(t) for test in tests)

    def valid(v: object) -> bool:
        if type(v) is not str:
            return False
        t = _ref_type(v)
        return t != "" and type_ok(t)
    return valid


def _list_of(inner: Validator) -> Validator:
    """ListProperty(<a Property>): a list. (stix2 also wraps a str into a one-item list, but
    the body is stored as posted, so that is left to the full check, which refuses it.)"""
    def valid(v: object) -> bool:
        if type(v) is not list:
            return False
        for item in v:
            if not inner(item):
                return False
        return True
    return valid


def _list_of_objects(embedded: Validator) -> Validator:
    """ListProperty(<a _STIXBase class>): a list of dicts, each a valid embedded object."""
    def valid(v: object) -> bool:
        if type(v) is not list:
            return False
        for item in v:
            if type(item) is not dict or not embedded(item):
                return False
        return True
    return valid


_JSON_SCALARS = (str, int, float, bool, type(None))


def _plain_json(v: object, depth: int = 0) -> bool:
    """JSON data nested shallowly enough for copy.deepcopy (ExtensionsProperty copies)."""
    if type(v) is dict:
        return depth < 40 and all(type(k) is str and _plain_json(x, depth + 1)
                                  for k, x in v.items())
    if type(v) is list:
        return depth < 40 and all(_plain_json(x, depth + 1) for x in v)
    return type(v) in _JSON_SCALARS


_EXT_DEF_PREFIX = "extension-definition--"


def _is_extensions(v: object) -> bool:
    """ExtensionsProperty.clean plus the extension scan at the top of _STIXBase.__init__,
    for unregistered extensions only (a registered one builds a class: not sure)."""
    if type(v) is not dict:
        return v == []
    for key, ext in v.items():
        if type(ext) is not dict or key in _EXTENSIONS:
            return False
        if key.startswith(_EXT_DEF_PREFIX) and _UUID_RE.fullmatch(key, len(_EXT_DEF_PREFIX)) is None:
            return False
        if not _plain_json(ext):
            return False
    return True


def _has_toplevel_extension(extensions: object) -> bool:
    """With an unregistered toplevel-property-extension, stix2 stops checking the names of
    extra properties.  Only called on extensions _is_extensions accepted."""
    return type(extensions) is dict and any(
        ext.get("extension_type") == "toplevel-property-extension" for ext in extensions.values())


# Hash values: the stix2.hashes regexes, without their case-insensitive Unicode matches and
# the newline "$" lets through.
_HEX = "[0-9a-fA-F]"
_HASH_VALUE = {
    "MD5": re.compile(_HEX + "{32}"),
    "SHA1": re.compile(_HEX + "{40}"),
    "SHA256": re.compile(_HEX + "{64}"),
    "SHA512": re.compile(_HEX + "{128}"),
    "SHA3256": re.compile(_HEX + "{64}"),
    "SHA3512": re.compile(_HEX + "{128}"),
    "SSDEEP": re.compile(r"[a-zA-Z0-9/+:.]{1,128}"),
    "TLSH": re.compile(_HEX + "{70}"),
}


def _hashes(prop: props.HashesProperty, legal: frozenset[str]) -> Validator | None:
    """HashesProperty with the spec's own algorithm names only, and only those in `legal`
    (ExternalReference's extra rule)."""
    spec_names = prop._HashesProperty__spec_hash_names
    if prop.spec_version != "2.1" or list(spec_names) != list(HASHING_ALGORITHM):
        return None
    patterns = {}
    for name in spec_names:
        alg = infer_hash_algorithm(name)
        if name in legal and alg is not None and alg.name in _HASH_VALUE:
            patterns[name] = _HASH_VALUE[alg.name]

    def valid(v: object) -> bool:
        if type(v) is not dict or not v:
            return False
        for name, value in v.items():
            pattern = patterns.get(name)
            if pattern is None or type(value) is not str or pattern.fullmatch(value) is None:
                return False
        return True
    return valid


# ---------------------------------------------------------------------------------------
# Property -> validator, by exact Property class.

_LIST_ITEM_CLASSES = (props.StringProperty, props.OpenVocabProperty, props.EnumProperty,
                      props.ReferenceProperty)  # their clean() takes interoperability


def _validator(prop: props.Property, embedded: dict[type, Validator]) -> Validator | None:
    kind = type(prop)
    if hasattr(prop, "_fixed_value"):
        fixed = prop._fixed_value
        if kind in (props.TypeProperty, props.StringProperty) and type(fixed) is str:
            return _fixed(fixed)
        return None
    if kind in (props.StringProperty, props.OpenVocabProperty, props.PatternProperty):
        return _is_str
    if kind is props.EnumProperty:
        return _enum(prop.allowed)
    if kind is props.IDProperty:
        return _identifier(prop.required_prefix) if prop.spec_version == "2.1" else None
    if kind is props.TimestampProperty:  # precision only truncates, never refuses
        return _is_timestamp
    if kind is props.BooleanProperty:
        return _is_bool
    if kind is props.IntegerProperty:
        return _integer(prop.min, prop.max)
    if kind is props.FloatProperty:
        return _float(prop.min, prop.max)
    if kind is props.ReferenceProperty:
        return _reference(prop)
    if kind is props.ExtensionsProperty:
        return _is_extensions if prop.spec_version == "2.1" else None
    if kind is props.ListProperty:
        contained = prop.contained
        if isinstance(contained, type):
            inner = embedded.get(contained)
            return _list_of_objects(inner) if inner is not None else None
        if type(contained) in _LIST_ITEM_CLASSES and not hasattr(contained, "_fixed_value"):
            inner = _validator(contained, embedded)
            return _list_of(inner) if inner is not None else None
        return None
    return None


# ---------------------------------------------------------------------------------------
# Object-level rules (each class's __init__ and _check_object_constraints).

def _get(obj: dict, name: str) -> object:
    """The value stix2 keeps: None and [] mean "absent" for every property."""
    v = obj.get(name)
    return None if v is None or v == [] else v


def _present(obj: dict, name: str) -> bool:
    return _get(obj, name) is not None


def _not_before(first: str, last: str) -> Callable[[dict], bool]:
    """`last` may not be earlier than `first` (Campaign, Malware, Sighting, ...)."""
    def rule(obj: dict) -> bool:
        a, b = _get(obj, first), _get(obj, last)
        return a is None or b is None or _ts_key(b) >= _ts_key(a)
    return rule


def _relationship_rule(obj: dict) -> bool:
    start, stop = _get(obj, "start_time"), _get(obj, "stop_time")
    return start is None or stop is None or _ts_key(stop) > _ts_key(start)


def _malware_rule(obj: dict) -> bool:
    return _not_before("first_seen", "last_seen")(obj) and not (
        obj.get("is_family") is True and not _present(obj, "name"))


def _location_rule(obj: dict) -> bool:
    lat, lon = _present(obj, "latitude"), _present(obj, "longitude")
    if lat != lon or (_present(obj, "precision") and not lat):
        return False
    return lat or _present(obj, "region") or _present(obj, "country")


def _observed_data_rule(obj: dict) -> bool:
    # "objects" (even null) makes __init__ emit a deprecation warning; and object_refs is
    # then the one of objects/object_refs that must be there.
    return ("objects" not in obj and _present(obj, "object_refs")
            and _not_before("first_observed", "last_observed")(obj))


def _malware_analysis_rule(obj: dict) -> bool:
    return _present(obj, "result") or _present(obj, "analysis_sco_refs")


def _indicator_rule(obj: dict) -> bool:
    valid_from, valid_until = _get(obj, "valid_from"), _get(obj, "valid_until")
    if valid_until is None:
        return True
    # valid_from defaults to "now": the verdict would depend on the clock.
    return valid_from is not None and _ts_key(valid_until) > _ts_key(valid_from)


_TLP_IDS = {marking["definition"]["tlp"]: marking["id"]
            for marking in (common.TLP_WHITE, common.TLP_GREEN, common.TLP_AMBER, common.TLP_RED)}
_TLP_CREATED = "2017-01-20T00:00:00.000000"


def _marking_definition_rule(obj: dict) -> bool:
    if "definition_type" not in obj and "definition" not in obj:
        extensions = obj.get("extensions")
        return type(extensions) is dict and len(extensions) > 0
    kind, definition = obj.get("definition_type"), obj.get("definition")
    if type(definition) is not dict or len(definition) != 1:
        return False
    if kind == "statement":
        statement = definition.get("statement")
        return (_MARKINGS.get("statement") is common.StatementMarking
                and type(statement) is str and statement != "")
    if kind == "tlp":
        color = definition.get("tlp")
        created = obj.get("created")
        return (_MARKINGS.get("tlp") is common.TLPMarking and type(color) is str
                and color in _TLP_IDS and obj.get("id") == _TLP_IDS[color]
                and type(created) is str and _ts_key(created) == _TLP_CREATED)
    return False


def _external_reference_rule(obj: dict) -> bool:
    return _present(obj, "description") or _present(obj, "external_id") or _present(obj, "url")


def _non_empty_str(v: object) -> bool:
    return type(v) is str and v != ""


# type -> (class, __init__ qualname, _check_object_constraints qualname, rule, overrides)
_BASE_INIT = "_STIXBase.__init__"
_BASE_RULES = "_STIXBase._check_object_constraints"
_AUDITED: dict[str, tuple[type, str, str, Callable[[dict], bool] | None, dict[str, Validator]]] = {
    "attack-pattern": (sdo.AttackPattern, _BASE_INIT, _BASE_RULES, None, {}),
    "campaign": (sdo.Campaign, _BASE_INIT, "Campaign._check_object_constraints",
                 _not_before("first_seen", "last_seen"), {}),
    "course-of-action": (sdo.CourseOfAction, _BASE_INIT, _BASE_RULES, None, {}),
    "grouping": (sdo.Grouping, _BASE_INIT, _BASE_RULES, None, {}),
    "identity": (sdo.Identity, _BASE_INIT, _BASE_RULES, None, {}),
    "incident": (sdo.Incident, _BASE_INIT, _BASE_RULES, None, {}),
    "indicator": (sdo.Indicator, "Indicator.__init__", "Indicator._check_object_constraints",
                  _indicator_rule, {}),
    "infrastructure": (sdo.Infrastructure, _BASE_INIT, "Infrastructure._check_object_constraints",
                       _not_before("first_seen", "last_seen"), {}),
    "intrusion-set": (sdo.IntrusionSet, _BASE_INIT, "IntrusionSet._check_object_constraints",
                      _not_before("first_seen", "last_seen"), {}),
    "location": (sdo.Location, _BASE_INIT, "Location._check_object_constraints",
                 _location_rule, {}),
    "malware": (sdo.Malware, _BASE_INIT, "Malware._check_object_constraints", _malware_rule, {}),
    "malware-analysis": (sdo.MalwareAnalysis, _BASE_INIT,
                         "MalwareAnalysis._check_object_constraints", _malware_analysis_rule, {}),
    "note": (sdo.Note, _BASE_INIT, _BASE_RULES, None, {}),
    "observed-data": (sdo.ObservedData, "ObservedData.__init__",
                      "ObservedData._check_object_constraints", _observed_data_rule, {}),
    "opinion": (sdo.Opinion, _BASE_INIT, _BASE_RULES, None, {}),
    "report": (sdo.Report, _BASE_INIT, _BASE_RULES, None, {}),
    "threat-actor": (sdo.ThreatActor, _BASE_INIT, "ThreatActor._check_object_constraints",
                     _not_before("first_seen", "last_seen"), {}),
    "tool": (sdo.Tool, _BASE_INIT, _BASE_RULES, None, {}),
    "vulnerability": (sdo.Vulnerability, _BASE_INIT, _BASE_RULES, None, {}),
    "extension-definition": (common.ExtensionDefinition, _BASE_INIT, _BASE_RULES, None, {}),
    # Relationship.__init__ takes source_ref/relationship_type/target_ref as parameters and
    # drops falsy ones: "" is then "missing".  (Refs are never "" once valid.)
    "relationship": (sro.Relationship, "Relationship.__init__",
                     "Relationship._check_object_constraints", _relationship_rule,
                     {"relationship_type": _non_empty_str}),
    "sighting": (sro.Sighting, "Sighting.__init__", "Sighting._check_object_constraints",
                 _not_before("first_seen", "last_seen"), {}),
    # MarkingDefinition.__init__ builds `definition` from definition_type: the rule checks
    # the pair; check_tlp_marking pins the id and created of the four TLP 1.0 markings.
    "marking-definition": (common.MarkingDefinition, "MarkingDefinition.__init__",
                           "MarkingDefinition._check_object_constraints",
                           _marking_definition_rule,
                           {"definition": _accept_any, "definition_type": _is_str}),
}

# Keyword names _STIXBase.__init__ (or the call to it) treats specially, plus the extra
# properties the object-level checks read (granular_markings, extensions).
_RESERVED = frozenset({"custom_properties", "allow_custom", "interoperability", "self",
                       "_valid_refs", "extensions", "granular_markings"})
# Custom property values are kept unchecked, but compared with None and [] first.
_PLAIN = frozenset({str, int, float, bool, type(None), list, dict})


def _name_ok(name: str) -> bool:  # PREFIX_21_REGEX '^[a-z].*'
    return "a" <= name[:1] <= "z"


# class -> {property name: validator}, for every class compiled (the tests look at them).
_FIELDS: dict[type, dict[str, Validator]] = {}


def _compile_fields(cls: type, embedded: dict[type, Validator],
                    overrides: dict[str, Validator]) -> tuple[dict, tuple] | None:
    """Validators for every defined property of cls, and the required names; None when a
    property whose clean() always runs (required, or with a default) is not understood."""
    validators: dict[str, Validator] = {}
    required = []
    for name, prop in cls._properties.items():
        valid = overrides.get(name) or _validator(prop, embedded)
        if valid is None:
            if prop.required or hasattr(prop, "default"):
                return None
            valid = _absent_only
        validators[name] = valid
        if prop.required:
            required.append(name)
    _FIELDS[cls] = validators
    return validators, tuple(required)


def _embedded_checker(cls: type, rule: Callable[[dict], bool] | None,
                      embedded: dict[type, Validator],
                      overrides: dict[str, Validator]) -> Validator | None:
    """A dict turned into cls(allow_custom=True, **item) by a ListProperty."""
    compiled = _compile_fields(cls, embedded, overrides)
    if compiled is None:
        return None
    validators, required = compiled
    get = validators.get

    def valid(item: dict) -> bool:
        for k, v in item.items():
            f = get(k)
            if f is None:
                if k in _RESERVED or not _name_ok(k) or type(v) not in _PLAIN:
                    return False
            elif v is not None and not f(v) and v != []:
                return False
        for name in required:
            v = item.get(name)
            if v is None or v == []:
                return False
        return rule is None or rule(item)
    return valid


def _object_checker(t: str, validators: dict[str, Validator], required: tuple[str, ...],
                    rule: Callable[[dict], bool] | None) -> Callable[[dict], Verdict]:
    get = validators.get

    def run(obj: dict) -> Verdict:
        bad_name = None
        for k, v in obj.items():
            f = get(k)
            if f is None:  # a custom property: stix2 checks its name only
                if k in _RESERVED or type(v) not in _PLAIN or v is None or v == []:
                    return None
                if not _name_ok(k):
                    bad_name = k
            elif v is None or v == []:
                # stix2 takes null and [] as absent; the body keeps them, so the full check
                # refuses them (a required one is refused below, as stix2 does)
                if k not in required:
                    return None
            elif not f(v):
                return None
        if bad_name is not None and not _has_toplevel_extension(obj.get("extensions")):
            return (False, bad_name,
                    f"Property name '{bad_name}' must begin with an alpha character.")
        for name in required:
            v = obj.get(name)
            if v is None or v == []:
                return (False, name, f"No value for the required property '{name}' of {t}.")
        if rule is not None and not rule(obj):
            return None
        return ACCEPT
    return run


def _audited(cls: type, init: str, rules: str) -> bool:
    return (cls.__init__.__qualname__ == init
            and cls._check_object_constraints.__qualname__ == rules)


def _build() -> dict[type, Callable[[dict], Verdict]]:
    if stix2.__version__ != AUDITED_STIX2_VERSION:
        return {}
    embedded: dict[type, Validator] = {}
    if _audited(common.KillChainPhase, _BASE_INIT, _BASE_RULES):
        checker = _embedded_checker(common.KillChainPhase, None, embedded, {})
        if checker is not None:
            embedded[common.KillChainPhase] = checker
    if _audited(common.ExternalReference, _BASE_INIT,
                "ExternalReference._check_object_constraints"):
        # Its hashes: the spec's names, and only those in its _LEGAL_HASHES.
        hashes = _hashes(common.ExternalReference._properties["hashes"],
                         frozenset(common.ExternalReference._LEGAL_HASHES))
        checker = _embedded_checker(common.ExternalReference, _external_reference_rule,
                                    embedded, {"hashes": hashes} if hashes else {})
        if checker is not None:
            embedded[common.ExternalReference] = checker

    checkers = {}
    for t, (cls, init, rules, rule, overrides) in _AUDITED.items():
        if _OBJECTS.get(t) is not cls or not _audited(cls, init, rules):
            continue
        compiled = _compile_fields(cls, embedded, overrides)
        if compiled is not None:
            checkers[cls] = _object_checker(t, *compiled, rule)
    return checkers


try:
    _CHECKERS = _build()
except Exception:  # stix2 internals moved: no fast path rather than a broken import
    _CHECKERS = {}


def covered_types() -> frozenset[str]:
    """The registered STIX types the fast path can accept (unregistered types always can)."""
    return frozenset(t for t, cls in _OBJECTS.items() if cls in _CHECKERS)


def check(obj: dict, pattern_ok: PatternOk | None = None) -> Verdict:
    """Fast verdict for one STIX object dict (already json-decoded).

    Returns (True, "", "") when stix2.parse(obj, allow_custom=True, version="2.1") certainly
    accepts it, (False, property, reason) when it certainly refuses it, None when not sure
    (the caller then runs stix2.parse itself).  See the module docstring for pattern_ok.
    """
    try:
        if type(obj) is not dict:
            return None
        if "type" not in obj:
            return (False, "type", "Can't parse object with no 'type' property.")
        t = obj["type"]
        if type(t) is not str:
            return None
        cls = _OBJECTS.get(t) or _OBSERVABLES.get(t)
        if cls is None:
            # allow_custom=True: an unregistered type is returned as it is, unchecked.
            return ACCEPT if _CHECKERS else None
        run = _CHECKERS.get(cls)
        if run is None:
            return None
        verdict = run(obj)
        if verdict is ACCEPT and t == "indicator" and obj.get("pattern_type") == "stix":
            pattern = obj.get("pattern")
            if pattern_ok is None or type(pattern) is not str or not pattern:
                return None
            # Indicator.__init__: a falsy pattern_version becomes "2.1".
            version = obj.get("pattern_version") or "2.1"
            if pattern_ok(pattern, version) is not True:
                return None
        return verdict
    except Exception:  # a surprise here only costs the fast path
        return None
