"""The property half of the fast path (fastcheck.py): for each stix2 ``Property`` whose
``clean()`` is reproduced exactly, a validator (value -> True when that clean() certainly
accepts it) that accepts a *subset* of what clean() accepts, from the strict scalar forms
(UUIDs, references, timestamps, hash values) up to lists and embedded objects."""
from __future__ import annotations

import math
import re
from collections.abc import Callable

from stix2 import properties as props
from stix2.hashes import infer_hash_algorithm
from stix2.registry import STIX2_OBJ_MAPS
from stix2.utils import STIXTypeClass
from stix2.v21.vocab import HASHING_ALGORITHM

Validator = Callable[[object], bool]

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


# Property classes whose validator is the same for every property of the class.
_PLAIN_VALIDATORS: dict[type, Validator] = {
    props.StringProperty: _is_str, props.OpenVocabProperty: _is_str,
    props.PatternProperty: _is_str,
    props.TimestampProperty: _is_timestamp,  # precision only truncates, never refuses
    props.BooleanProperty: _is_bool}


def _validator(prop: props.Property, embedded: dict[type, Validator]) -> Validator | None:
    kind = type(prop)
    if hasattr(prop, "_fixed_value"):
        fixed = prop._fixed_value
        if kind in (props.TypeProperty, props.StringProperty) and type(fixed) is str:
            return _fixed(fixed)
        return None
    plain = _PLAIN_VALIDATORS.get(kind)
    if plain is not None:
        return plain
    if kind is props.EnumProperty:
        return _enum(prop.allowed)
    if kind is props.IDProperty:
        return _identifier(prop.required_prefix) if prop.spec_version == "2.1" else None
    if kind is props.IntegerProperty:
        return _integer(prop.min, prop.max)
    if kind is props.FloatProperty:
        return _float(prop.min, prop.max)
    if kind is props.ReferenceProperty:
        return _reference(prop)
    if kind is props.ExtensionsProperty:
        return _is_extensions if prop.spec_version == "2.1" else None
    if kind is props.ListProperty:
        return _list_validator(prop.contained, embedded)
    return None


def _list_validator(contained, embedded: dict[type, Validator]) -> Validator | None:
    """A ListProperty's validator, from what the list contains: embedded objects (a class)
    or values of one property class."""
    if isinstance(contained, type):
        inner = embedded.get(contained)
        return _list_of_objects(inner) if inner is not None else None
    if type(contained) in _LIST_ITEM_CLASSES and not hasattr(contained, "_fixed_value"):
        inner = _validator(contained, embedded)
        return _list_of(inner) if inner is not None else None
    return None

