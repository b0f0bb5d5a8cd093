"""Checks of property values made before stix2 is asked: timestamps (RFC 3339, a real date,
at most nanoseconds), integers within STIX's 54 bits and finite floats at any depth, empty
lists, and JSON kinds stix2 would fail on without naming them (extensions, a URL without a
scheme, object_marking_refs, a marking definition's definition)."""
import math
import re
from datetime import datetime
from typing import cast

from alliance.stix.problems import Problem

_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")

# What the stix_objects columns hold (alliance.notes.models.StixObject): `modified` (or
# `created` for an object without one) in String(40), ids in String(100). A timestamp with at
# most 9 fraction digits (nanoseconds) is at most 30 characters, and version_key, which
# compares versions to the nanosecond, then tells every two different instants apart.
MAX_FRACTION_DIGITS = 9
_MAX_TIMESTAMP_LENGTH = len("2024-05-01T12:00:00.Z") + MAX_FRACTION_DIGITS
# STIX 2.1 (section 2.16): an integer fits a signed 54-bit value. Beyond it a JSON reader
# (orjson among them, past 64 bits) reads a float, and the value would be served changed.
MAX_INTEGER = 2**53 - 1


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
    return cast(datetime, verdict)  # neither of the two reasons: a datetime


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
        _numbers_in_dict(value, path, found)
    elif type(value) is list:
        _numbers_in_list(value, path, found)


# The two halves of _number_walk: a path is only spelled out where a number is wrong or the
# walk goes deeper, as most values are strings.
def _numbers_in_dict(value: dict, path: str, found: list) -> None:
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


def _numbers_in_list(value: list, path: str, found: list) -> None:
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

