"""The stix2 library's own verdict, for an object the fast path (fastcheck, fastpattern) is
not sure of or refuses: stix2.parse, with its message as the problem shown, and a refusal of
any value stix2 would have coerced (the body is stored as posted); an indicator's pattern
checked on its own by stix2-patterns. stix2 is imported only when an object gets here: it
is slow to import."""
import re

import orjson

from alliance.stix.limits import PatternBudget
from alliance.stix.problems import Problem


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


def _stix2_problems(obj: dict, budget: PatternBudget | None) -> list[Problem]:
    """The stix2 library's verdict on an object the fast path is not sure of, or refuses:
    its message is the one shown."""
    import stix2
    from stix2 import exceptions as stix_errors

    obj_id = obj["id"]
    pattern = obj.get("pattern") if obj["type"] == "indicator" else None
    if budget is not None and isinstance(pattern, str) and not budget.spend(pattern):
        # stix2's pattern parser is slow enough (tests/core/test_hostile_input.py) that
        # megabytes of patterns it must read would hold a worker for minutes.
        return [Problem(obj_id, "pattern", "not checked: the patterns of this post that "
                                           "need the full STIX pattern parser are longer "
                                           "than one post may have checked "
                                           f"({budget.limit:,} characters); "
                                           "post them in smaller bundles")]
    try:
        parsed = stix2.parse(obj, allow_custom=True, version="2.1")
        # It also turns what it can into the type STIX wants (5 into "5", "abc" into
        # ["abc"], "50" into 50); the body is stored and served as posted, so such a value
        # is refused, not kept as invalid STIX.
        coerced = _coerced(obj, orjson.loads(parsed.serialize()))
        if coerced is not None:
            path, posted, wanted = coerced
            return [Problem(obj_id, path, f"{posted} where STIX 2.1 has {wanted}")]
    except (stix_errors.STIXError, ValueError, TypeError, KeyError) as exc:
        return [_stix2_problem(obj, exc)]
    except Exception as exc:  # stix2 raises odd things on odd input; never a 500
        return [Problem(obj_id, "", f"could not be read as STIX 2.1 ({type(exc).__name__})")]
    return []


def _pattern_problems(obj: dict, budget: PatternBudget | None) -> list[Problem]:
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
    if budget is not None and not budget.spend(pattern):
        return []  # the rest of the post says so when it gets there
    from stix2patterns.validator import run_validator

    try:
        errors = run_validator(pattern, stix_version="2.1")
    except Exception:  # the pattern parser fails oddly on odd input; never a 500
        errors = ["could not be read"]
    return [Problem(obj["id"], "pattern", "; ".join(errors))] if errors else []


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

