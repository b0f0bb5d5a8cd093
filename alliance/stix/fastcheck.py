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
written out in fastrules.py for the types listed in its ``_AUDITED``; at import, each
class's methods must still be the audited ones and stix2 must be the audited version
(3.0.2), otherwise the type (or everything) answers ``None``.  At call time the live stix2
registry decides which class ``stix2.parse`` would use, so a type registered later with
``CustomObject`` falls back.  The property validators are in fastvalues.py; this module
compiles them with the rules into one checker per class and gives the verdict.

Indicators with ``pattern_type`` "stix": the pattern itself is not validated here.  Pass
``pattern_ok(pattern, pattern_version)``, a callable answering like
``not stix2patterns.validator.run_validator(pattern, pattern_version)`` would (True: valid,
False: invalid, None: unknown).  The version given is the one stix2 would use ("2.1" when the
object has no truthy ``pattern_version``; note that run_validator uses the 2.0 grammar for
any version other than "2.1").  Without ``pattern_ok`` such indicators answer ``None``.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import stix2
from stix2.v21 import common

from alliance.stix.fastrules import (
    _AUDITED,
    _BASE_INIT,
    _BASE_RULES,
    _external_reference_rule,
)
from alliance.stix.fastvalues import (
    _OBJECTS,
    _OBSERVABLES,
    Validator,
    _absent_only,
    _has_toplevel_extension,
    _hashes,
    _validator,
)

__all__ = ["ACCEPT", "check", "covered_types"]

Verdict = tuple[bool, str, str] | None
PatternOk = Callable[[str, str], "bool | None"]

ACCEPT: tuple[bool, str, str] = (True, "", "")
AUDITED_STIX2_VERSION = "3.0.2"

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


def _compile_fields(cls: type[Any], embedded: dict[type, Validator],
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


def _embedded_checker(cls: type[Any], rule: Callable[[dict], bool] | None,
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
    # A Validator of dicts only: _list_of_objects gives it nothing else.
    return cast(Validator, valid)


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
        return _object_verdict(obj, t, required, rule, bad_name)
    return run


def _object_verdict(obj: dict, t: str, required: tuple[str, ...],
                    rule: Callable[[dict], bool] | None, bad_name: str | None) -> Verdict:
    """_object_checker's verdict once each property passed its own check: a custom property
    name stix2 refuses, a missing required property, then the type's own rule."""
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


def _audited(cls: type[Any], init: str, rules: str) -> bool:
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
