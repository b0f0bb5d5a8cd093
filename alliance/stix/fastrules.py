"""The object half of the fast path (fastcheck.py): the rules of each audited stix2 class
beyond its single properties (its ``__init__`` and ``_check_object_constraints``, written
out), and the table of audited types they belong to."""
from __future__ import annotations

from collections.abc import Callable
from typing import cast

from stix2.v21 import common, sdo, sro

from alliance.stix.fastvalues import _MARKINGS, Validator, _accept_any, _is_str, _ts_key


def _get(obj: dict, name: str) -> object:
    """The value stix2 keeps: None and [] mean "absent" for every property."""
    v = obj.get(name)
    return None if v is None or v == [] else v


def _present(obj: dict, name: str) -> bool:
    return _get(obj, name) is not None


def _checked_ts(value: object) -> str:
    """The sort key of a timestamp its property's validator accepted (object rules run after
    every property passed its own check), so never None."""
    return cast(str, _ts_key(cast(str, value)))


def _not_before(first: str, last: str) -> Callable[[dict], bool]:
    """`last` may not be earlier than `first` (Campaign, Malware, Sighting, ...)."""
    def rule(obj: dict) -> bool:
        a, b = _get(obj, first), _get(obj, last)
        return a is None or b is None or _checked_ts(b) >= _checked_ts(a)
    return rule


def _relationship_rule(obj: dict) -> bool:
    start, stop = _get(obj, "start_time"), _get(obj, "stop_time")
    return start is None or stop is None or _checked_ts(stop) > _checked_ts(start)


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
    return valid_from is not None and _checked_ts(valid_until) > _checked_ts(valid_from)


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

