"""alliance.stix.fastcheck against the real thing: stix2.parse(obj, allow_custom=True,
version="2.1"), where raising anything means "refused".

Soundness is what is tested: a (True, ...) answer only for objects stix2 accepts, a
(False, ...) answer only for objects stix2 refuses; None is always allowed.  The shared
corpus gives the real objects, hypothesis mutates them.  Pure unit tests: no app."""
import copy
import functools
import json
import uuid
import warnings
from pathlib import Path

import pytest
import stix2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stix2patterns.validator import run_validator

from alliance.stix import fastcheck, fastvalues
from alliance.stix.fastcheck import ACCEPT, check
from tests.notes.helpers import CORPUS

pytestmark = pytest.mark.nodb  # no database: the SQLite pass runs them once

MOBILE = CORPUS / "valid" / "attack__mobile-attack-17.1.json"

ID = "0c7b5b88-8ff7-4a4d-aa9d-feb398cd0061"
STAMP = "2024-05-01T12:00:00.000Z"
IDENTITY = "identity--c78cb6e5-0c4b-4611-8297-d1b8b55e40b5"
MARKING = "marking-definition--fa42a846-8d90-4e51-bc29-71d5b4802168"


def stix2_accepts(obj) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stix2.parse(obj, allow_custom=True, version="2.1")
    except Exception:
        return False
    return True


@functools.lru_cache(maxsize=4096)
def real_pattern_ok(pattern: str, version: str) -> bool:
    """The pattern verdict stix2's Indicator would reach (what a real pattern checker does)."""
    try:
        return not run_validator(pattern, version)
    except Exception:
        return False


def assert_sound(obj, pattern_ok=real_pattern_ok):
    """The fast verdict agrees with stix2 whenever it gives one; returns the verdict."""
    before = copy.deepcopy(obj)
    verdict = check(obj, pattern_ok=pattern_ok)
    assert obj == before, "check() changed its input"
    if verdict is not None:
        assert verdict == ACCEPT or (verdict[0] is False and verdict[1:] != ("", "")), verdict
        accepted = stix2_accepts(obj)
        assert verdict[0] == accepted, (verdict, obj)
    return verdict


def objects_of(path: Path) -> list:
    try:
        data = json.loads(path.read_bytes())
    except ValueError:
        return []  # invalid/ holds a file that is not JSON
    if isinstance(data, dict):
        return [data, *data.get("objects", [])] if isinstance(data.get("objects"), list) else [data]
    return data if isinstance(data, list) else []


@functools.cache
def corpus_objects() -> list[tuple[str, dict]]:
    found = []
    for folder in ("valid", "invalid"):
        for path in sorted((CORPUS / folder).glob("*.json")):
            found += [(path.name, o) for o in objects_of(path) if isinstance(o, dict)]
    return found


# --------------------------------------------------------------------------------------
# 1. The corpus, object by object.

def test_corpus_is_there():
    names = {name for name, _ in corpus_objects()}
    assert MOBILE.name in names and len(corpus_objects()) > 2500


@pytest.mark.parametrize("pattern_ok", [None, real_pattern_ok], ids=["no-patterns", "patterns"])
def test_corpus_verdicts_are_sound(pattern_ok):
    answered = 0
    for _, obj in corpus_objects():
        answered += assert_sound(obj, pattern_ok) is not None
    assert answered > 0.8 * len(corpus_objects())


def test_fast_path_answers_nearly_all_of_attack_mobile():
    objs = json.loads(MOBILE.read_bytes())["objects"]
    accepted = sum(check(o) == ACCEPT for o in objs)
    assert accepted >= 0.95 * len(objs), f"{accepted}/{len(objs)}"


def test_the_fast_path_builds_no_stix2_object(monkeypatch):
    """What makes it fast, counted rather than timed (its speed beside stix2.parse is
    measured by bench/parsers.py): an object it accepts is judged without building a single
    stix2 object or property check, where stix2.parse builds at least one per object."""
    import stix2.base

    objs = json.loads(MOBILE.read_bytes())["objects"][::4]
    built = []
    real_init = stix2.base._STIXBase.__init__

    def counting(self, *args, **kwargs):
        built.append(type(self).__name__)
        return real_init(self, *args, **kwargs)

    monkeypatch.setattr(stix2.base._STIXBase, "__init__", counting)
    accepted = [o for o in objs if check(o) == ACCEPT]
    assert len(accepted) >= 0.95 * len(objs)
    assert built == []
    # The counter counts: stix2.parse builds a registered type's object.
    stix2_accepts(next(o for o in accepted if o["type"] == "attack-pattern"))
    assert built


# --------------------------------------------------------------------------------------
# 2. Hand-written verdicts.

def attack_pattern(**changes):
    obj = {"type": "attack-pattern", "spec_version": "2.1", "id": f"attack-pattern--{ID}",
           "created": STAMP, "modified": STAMP, "name": "Phishing",
           "created_by_ref": IDENTITY, "object_marking_refs": [MARKING],
           "kill_chain_phases": [{"kill_chain_name": "mitre-attack", "phase_name": "initial-access"}],
           "external_references": [{"source_name": "mitre-attack", "external_id": "T1566",
                                     "url": "https://attack.mitre.org/techniques/T1566"}],
           "x_mitre_platforms": ["Android"], "x_mitre_version": "1.0"}
    obj.update(changes)
    return {k: v for k, v in obj.items() if v is not ...}


def relationship(**changes):
    obj = {"type": "relationship", "spec_version": "2.1", "id": f"relationship--{ID}",
           "created": STAMP, "modified": STAMP, "relationship_type": "uses",
           "source_ref": f"malware--{ID}", "target_ref": f"attack-pattern--{ID}",
           "created_by_ref": IDENTITY, "object_marking_refs": [MARKING]}
    obj.update(changes)
    return {k: v for k, v in obj.items() if v is not ...}


def indicator(**changes):
    obj = {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{ID}",
           "created": STAMP, "modified": STAMP, "pattern_type": "stix",
           "pattern": "[ipv4-addr:value = '198.51.100.1']", "valid_from": STAMP}
    obj.update(changes)
    return {k: v for k, v in obj.items() if v is not ...}


def tlp(color: str, **changes):
    obj = json.loads(getattr(stix2.v21, f"TLP_{color.upper()}").serialize())
    obj.update(changes)
    return obj


ACCEPTED = {
    "attack-pattern": attack_pattern(),
    "relationship": relationship(),
    "unregistered type, no checks at all": {"type": "x-mitre-tactic"},
    "custom property names only need a-z first": attack_pattern(**{"a b": 1, "id2": [2],
                                                                    "x_" + "y" * 300: {}}),
    "lowercase t and z": attack_pattern(created="2024-05-01t12:00:00z"),
    "leap day": attack_pattern(created="2024-02-29T00:00:00Z"),
    "confidence has no range in stix2": attack_pattern(confidence=101),
    "uppercase uuid, any version": attack_pattern(
        id="attack-pattern--0C7B5B88-8FF7-1A4D-AA9D-FEB398CD0061"),
    "custom extension": attack_pattern(extensions={"x-foo-ext": {"a": 1}}),
    "toplevel extension allows any extra name": attack_pattern(X=1, extensions={
        f"extension-definition--{ID}": {"extension_type": "toplevel-property-extension"}}),
    "tlp white": tlp("white"),
    "tlp red": tlp("red"),
    "statement marking": {"type": "marking-definition", "spec_version": "2.1", "id": MARKING,
                          "created": "2017-06-01T00:00:00.000Z", "definition_type": "statement",
                          "definition": {"statement": "Copyright"}},
    "relationship start < stop": relationship(start_time=STAMP, stop_time="2024-05-01T12:00:00.001Z"),
}

REFUSED = {  # (object, the property named)
    "no type": ({"id": f"attack-pattern--{ID}"}, "type"),
    "relationship without target_ref": (relationship(target_ref=...), "target_ref"),
    "malware without is_family": ({"type": "malware", "id": f"malware--{ID}", "name": "x"},
                                  "is_family"),
    "report with empty object_refs": ({"type": "report", "id": f"report--{ID}", "name": "r",
                                       "published": STAMP, "object_refs": []}, "object_refs"),
    "uppercase custom property": (attack_pattern(X=1), "X"),
}

NOT_SURE = {  # stix2 refuses all of these; the fast path must not say True
    "2023-02-29": attack_pattern(created="2023-02-29T00:00:00Z"),
    "hour 24": attack_pattern(created="2024-02-28T24:00:00Z"),
    "seven fraction digits": attack_pattern(created="2024-02-28T00:00:00.1234567Z"),
    "bad uuid variant": attack_pattern(id=f"attack-pattern--{ID[:19]}c{ID[20:]}"),
    "wrong id prefix": attack_pattern(id=f"malware--{ID}"),
    "created_by_ref not an identity": attack_pattern(created_by_ref=f"malware--{ID}"),
    "external reference without url/id/description": attack_pattern(
        external_references=[{"source_name": "x"}]),
    "external reference hash not in hash-algorithm-ov": attack_pattern(external_references=[
        {"source_name": "x", "url": "u", "hashes": {"SHA-224": "a" * 56}}]),
    "stop_time == start_time": relationship(start_time=STAMP, stop_time=STAMP),
    "relationship_type empty": relationship(relationship_type=""),
    "tlp with another created": tlp("green", created="2017-01-20T00:00:00.001Z"),
    "tlp with another id": tlp("amber", id=MARKING),
    "definition_type TLP": tlp("red", definition_type="TLP"),
    "extensions value not an object": attack_pattern(extensions={"x-foo-ext": []}),
    "allow_custom as a property": attack_pattern(allow_custom=True),
    "bad pattern": indicator(pattern="[ipv4-addr:value = '1.2.3.4'"),
    "valid_until before valid_from": indicator(valid_until="2024-05-01T11:00:00Z"),
}


# stix2 accepts these by reading them as something else (a str as a one-item list, null and
# [] as absent); the body is stored as posted, so the fast path is not sure and the full
# check (alliance.stix.validation.check_object) refuses them.
READ_AS_SOMETHING_ELSE = {
    "labels as one string": (attack_pattern(labels="one"), "labels"),
    "null is absent to stix2": (attack_pattern(description=None), "description"),
    "[] is absent to stix2": (attack_pattern(labels=[]), "labels"),
    "a custom null": (attack_pattern(x_seen=None), "x_seen"),
    "a custom []": (attack_pattern(x_seen=[]), "x_seen"),
}


@pytest.mark.parametrize("name", READ_AS_SOMETHING_ELSE)
def test_read_as_something_else_is_not_sure_and_then_refused(name):
    from alliance.stix.validation import check_object

    obj, prop = READ_AS_SOMETHING_ELSE[name]
    assert stix2_accepts(obj)
    assert check(obj) is None
    assert [(p.object_id, p.property) for p in check_object(obj)] == [(obj["id"], prop)]


@pytest.mark.parametrize("name", ACCEPTED)
def test_accepted(name):
    assert check(ACCEPTED[name]) == ACCEPT
    assert stix2_accepts(ACCEPTED[name])


@pytest.mark.parametrize("name", REFUSED)
def test_certainly_refused(name):
    obj, prop = REFUSED[name]
    verdict = check(obj)
    assert verdict is not None and verdict[0] is False and verdict[1] == prop, verdict
    assert not stix2_accepts(obj)


@pytest.mark.parametrize("name", NOT_SURE)
def test_refused_by_stix2_never_accepted(name):
    obj = NOT_SURE[name]
    assert not stix2_accepts(obj)
    assert check(obj, pattern_ok=real_pattern_ok) is None


def test_indicator_patterns_are_left_to_pattern_ok():
    obj = indicator()
    calls = []

    def ok(pattern, version):
        calls.append((pattern, version))
        return True

    assert check(obj) is None  # nobody to ask about the pattern
    assert check(obj, pattern_ok=ok) == ACCEPT
    assert calls == [(obj["pattern"], "2.1")]
    assert check(obj, pattern_ok=lambda p, v: None) is None
    assert check(obj, pattern_ok=lambda p, v: False) is None
    assert check(indicator(pattern_version="2.0"), pattern_ok=ok) == ACCEPT
    assert calls[-1] == (obj["pattern"], "2.0")
    assert check(indicator(pattern_type="yara", pattern="rule x {}")) == ACCEPT
    # valid_from defaults to "now": a valid_until alone depends on the clock.
    assert check(indicator(valid_from=None, valid_until=STAMP), pattern_ok=ok) is None
    assert stix2_accepts(indicator())


def test_a_type_registered_later_falls_back():
    name = f"x-fastcheck-{uuid.uuid4().hex[:12]}"
    obj = {"type": name, "spec_version": "2.1", "id": f"{name}--{ID}", "created": STAMP,
           "modified": STAMP, "size": "big"}
    assert check(obj) == ACCEPT

    @stix2.v21.CustomObject(name, [("size", stix2.properties.IntegerProperty())])
    class Probe:
        pass

    assert check(obj) is None
    assert not stix2_accepts(obj)


def test_non_dicts_and_odd_types_fall_back():
    for value in ([], "attack-pattern", None, {"type": 5}, {"type": ["a"]}):
        assert check(value) is None
    assert check({"type": "bundle", "id": f"bundle--{ID}", "objects": []}) is None
    assert "attack-pattern" in fastcheck.covered_types()


# --------------------------------------------------------------------------------------
# 3. Hypothesis: mutations of real objects.

def pick_seeds() -> list[dict]:
    by_type: dict[str, list[dict]] = {}
    for _, obj in corpus_objects():
        if isinstance(obj.get("type"), str) and obj["type"] != "bundle":
            by_type.setdefault(obj["type"], []).append(obj)
    seeds = [o for objs in by_type.values() for o in objs[:: max(1, len(objs) // 6)][:6]]
    seeds += list(ACCEPTED.values()) + [
        indicator(),
        indicator(valid_until="2030-01-01T00:00:00Z", kill_chain_phases=[
            {"kill_chain_name": "k", "phase_name": "p"}], indicator_types=["malicious-activity"]),
        {"type": "location", "spec_version": "2.1", "id": f"location--{ID}", "created": STAMP,
         "modified": STAMP, "latitude": 48.8566, "longitude": 2.3522, "precision": 1000.0,
         "region": "europe", "country": "FR"},
        {"type": "sighting", "spec_version": "2.1", "id": f"sighting--{ID}", "created": STAMP,
         "modified": STAMP, "sighting_of_ref": f"indicator--{ID}", "count": 3,
         "first_seen": STAMP, "last_seen": STAMP, "where_sighted_refs": [IDENTITY],
         "observed_data_refs": [f"observed-data--{ID}"], "summary": False},
        {"type": "observed-data", "spec_version": "2.1", "id": f"observed-data--{ID}",
         "created": STAMP, "modified": STAMP, "first_observed": STAMP, "last_observed": STAMP,
         "number_observed": 1, "object_refs": [f"ipv4-addr--{ID}", f"relationship--{ID}"]},
        {"type": "opinion", "spec_version": "2.1", "id": f"opinion--{ID}", "created": STAMP,
         "modified": STAMP, "opinion": "agree", "object_refs": [f"report--{ID}"],
         "authors": ["a"], "confidence": 50},
        {"type": "note", "spec_version": "2.1", "id": f"note--{ID}", "created": STAMP,
         "modified": STAMP, "content": "c", "object_refs": [f"x-custom--{ID}"]},
        {"type": "malware-analysis", "spec_version": "2.1", "id": f"malware-analysis--{ID}",
         "created": STAMP, "modified": STAMP, "product": "p", "result": "malicious",
         "sample_ref": f"file--{ID}", "analysis_sco_refs": [f"file--{ID}"]},
        {"type": "extension-definition", "spec_version": "2.1",
         "id": f"extension-definition--{ID}", "created": STAMP, "modified": STAMP,
         "created_by_ref": IDENTITY, "name": "n", "schema": "s", "version": "1",
         "extension_types": ["property-extension"]},
        {"type": "grouping", "spec_version": "2.1", "id": f"grouping--{ID}", "created": STAMP,
         "modified": STAMP, "context": "suspicious-activity", "object_refs": [f"malware--{ID}"]},
    ]
    return [copy.deepcopy(s) for s in seeds]


SEEDS = pick_seeds()

TYPES = sorted(set(stix2.registry.STIX2_OBJ_MAPS["2.1"]["objects"])
               | set(stix2.registry.STIX2_OBJ_MAPS["2.1"]["observables"])
               | {"x-mitre-tactic", "x-custom", "Identity", "", "a--b", "identity-", "1abc"})


@st.composite
def uuids(draw):
    u = draw(st.uuids())
    return draw(st.sampled_from([
        str(u), str(u), str(u).upper(), f"{{{u}}}", u.hex, f"urn:uuid:{u}", str(u)[:-1],
        str(u) + "0", "-" + str(u), str(u).replace("-", "_", 1), " " + str(u),
        str(uuid.UUID(int=0)), str(uuid.uuid5(uuid.NAMESPACE_URL, "x")),
        str(u)[:19] + draw(st.sampled_from("01234567cdefCDEFg")) + str(u)[20:],
    ]))


refs = st.builds(lambda t, sep, u: f"{t}{sep}{u}", st.sampled_from(TYPES),
                 st.sampled_from(["--", "--", "--", "-", "---", "__"]), uuids())


@st.composite
def timestamps(draw):
    part = lambda *options: draw(st.sampled_from(options))  # noqa: E731
    frac = part("", "", ".0", ".000", ".123", ".123456", ".1234567", ".", ".1a")
    return (part("2024", "2023", "2000", "1900", "0001", "0000", "9999", "24") + "-"
            + part("01", "02", "12", "13", "00", "1") + "-"
            + part("01", "28", "29", "30", "31", "32", "00", " 1", "1") + part("T", "t", " ", "")
            + part("00", "23", "24", "9") + ":" + part("00", "59", "60")
            + ":" + part("00", "59", "60", "61") + frac + part("Z", "z", "", "+00:00", "Z "))


ODD_VALUES = [
    -1, 0, 1, 50, 100, 101, 999999999, 1000000000, 10**30, "50", 50.0, 1.5, -90.5, 180.0,
    True, False, "true", "T", "1", None, "", [], {}, [""], ["x"], [None], [[]], [{}],
    "2.1", "2.0", "stix", "yara", "agree", "tlp", "statement", "white", "uses", "europe",
    "malicious-activity", STAMP, IDENTITY, MARKING, [IDENTITY], [MARKING], f"indicator--{ID}",
    "[ipv4-addr:value = '1.2.3.4']", "[file:name = 'x'] AND", {"tlp": "white"},
    {"statement": "s"}, {"statement": ""}, {"tlp": "white", "x": 1},
    [{"source_name": "s"}], [{"source_name": "s", "url": "u"}], [{"url": "u"}],
    [{"kill_chain_name": "k", "phase_name": "p"}], [{"kill_chain_name": "k"}],
    [{"selectors": ["name"], "marking_ref": MARKING}],
    {f"extension-definition--{ID}": {"extension_type": "property-extension"}},
    {f"extension-definition--{ID}": {"extension_type": "toplevel-property-extension"}},
    {"extension-definition--1234": {}}, {"archive-ext": {"contains_refs": [f"file--{ID}"]}},
    {"x-ext": []}, {"x-ext": "s"},
]
values = st.one_of(
    st.sampled_from(ODD_VALUES), timestamps(), refs, st.lists(refs, max_size=3),
    st.text(max_size=6), st.integers(), st.floats(), st.booleans(),
    st.lists(st.one_of(st.text(max_size=3), st.integers()), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2)).map(copy.deepcopy)

PROPERTY_NAMES = sorted({name for cls in stix2.registry.STIX2_OBJ_MAPS["2.1"]["objects"].values()
                         for name in cls._properties} | {"objects", "custom_properties"})
ODD_NAMES = ["X", "a b", "x_" + "y" * 300, "id2", "", "_x", "1a", "é", "x-y", "self",
             "allow_custom", "interoperability", "_valid_refs", "Name", "type ", "ß"]
HASH_NAMES = ["MD5", "md5", "SHA-1", "SHA1", "sha-256", "SHA-256", "SHA-512", "SHA3-256",
              "SSDEEP", "TLSH", "SHA-224", "foo", "a b", ""]
hash_values = st.one_of(
    st.sampled_from(["a" * 32, "A" * 40, "0" * 64, "f" * 128, "a" * 70, "3:abc:def", "a" * 31,
                     "a" * 32 + "\n", "g" * 32, "", "T1" + "a" * 70]),
    st.integers(), st.text(max_size=4))
NESTED_KEYS = ["source_name", "description", "url", "external_id", "hashes", "kill_chain_name",
               "phase_name", "X", "x_custom", "extensions", "granular_markings", "allow_custom",
               "tlp", "statement", "extension_type"]


def mutate(draw, obj: dict) -> None:
    op = draw(st.sampled_from(["delete", "set", "set", "set", "name", "nested", "nested",
                               "hashes"]))
    if op == "delete" and obj:
        del obj[draw(st.sampled_from(sorted(obj)))]
    elif op == "set":
        key = draw(st.one_of(st.sampled_from(sorted(obj) or ["type"]),
                             st.sampled_from(PROPERTY_NAMES)))
        if key != "type" or draw(st.booleans()):
            obj[key] = draw(values)
    elif op == "name":
        obj[draw(st.one_of(st.sampled_from(ODD_NAMES), st.text(max_size=4)))] = draw(values)
    else:
        holders = [v for k, v in sorted(obj.items())
                   if isinstance(v, dict) and k != "type"] + [
            item for k, v in sorted(obj.items()) if isinstance(v, list)
            for item in v if isinstance(item, dict)]
        if not holders:
            return
        holder = draw(st.sampled_from(holders))
        if op == "hashes":
            holder["hashes"] = draw(st.dictionaries(st.sampled_from(HASH_NAMES), hash_values,
                                                    max_size=2))
        elif holder and draw(st.booleans()):
            del holder[draw(st.sampled_from(sorted(holder)))]
        else:
            holder[draw(st.sampled_from(NESTED_KEYS))] = draw(values)


@st.composite
def mutants(draw):
    obj = copy.deepcopy(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 3))):
        mutate(draw, obj)
    return obj


def fuzz(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@fuzz(2500)
@given(mutants())
def test_mutants_of_real_objects(obj):
    assert_sound(obj)


@fuzz(600)
@given(st.sampled_from(SEEDS), st.sampled_from(
    ["created", "modified", "first_seen", "last_seen", "start_time", "stop_time", "valid_from",
     "valid_until", "published", "first_observed", "last_observed"]), timestamps())
def test_timestamps(seed, prop, stamp):
    obj = copy.deepcopy(seed)
    obj[prop] = stamp
    assert_sound(obj)


@fuzz(600)
@given(st.sampled_from(SEEDS), st.sampled_from(
    ["id", "created_by_ref", "source_ref", "target_ref", "sighting_of_ref", "object_refs",
     "object_marking_refs", "where_sighted_refs", "sample_refs", "observed_data_refs"]),
    st.one_of(refs, st.lists(refs, min_size=1, max_size=2)))
def test_ids_and_references(seed, prop, ref):
    obj = copy.deepcopy(seed)
    obj[prop] = ref
    assert_sound(obj)


# --------------------------------------------------------------------------------------
# 4. The building blocks, against the stix2 functions they stand for.

def test_timestamps_exactly_where_stix2_parses_them():
    years = ["0000", "0001", "1900", "2000", "2023", "2024", "2100", "9999"]
    two = [f"{n:02d}" for n in range(0, 62)]
    stamps = [f"{y}-{m}-{d}T00:00:00Z" for y in years for m in two[:14] for d in two[:33]]
    stamps += [f"2024-02-29T{h}:{m}:{s}Z" for h in two[:26] for m in ("00", "59", "60")
               for s in ("00", "59", "60", "61")]
    stamps += [f"2024-02-29{t}12:30:45{f}{z}" for t in ("T", "t", " ", "", "TT")
               for f in ("", ".", ".0", ".000", ".123456", ".1234567", ".1a", ".-1", ",5")
               for z in ("Z", "z", "", "+00:00", "Z\n", " Z", "ZZ")]
    stamps += ["2024-1-01T00:00:00Z", "2024-01- 1T00:00:00Z", "2024-01-01T1:00:00Z",
               "２０２４-01-01T00:00:00Z", "+2024-01-01T00:00:00Z", "20240-01-01T00:00:00Z"]
    accepted = 0
    for stamp in stamps:
        key = fastvalues._ts_key(stamp)
        if key is None:
            continue
        accepted += 1
        parsed = stix2.utils.parse_into_datetime(stamp)  # raises if stix2 refuses it
        expected = (f"{parsed.year:04d}-{parsed.month:02d}-{parsed.day:02d}T{parsed.hour:02d}:"
                    f"{parsed.minute:02d}:{parsed.second:02d}.{parsed.microsecond:06d}")
        assert key == expected, stamp  # fixed width: the keys sort like the times
    assert accepted > 1500


@given(st.one_of(uuids(), st.text(alphabet="0123456789abcdefABCDEF-{}", max_size=40)))
@fuzz(1000)
def test_uuids_only_where_stix2_takes_them(text):
    if fastvalues._UUID_RE.fullmatch(text):
        assert stix2.properties._check_uuid(text, "2.1", False)


def test_uuid_variants_and_versions():
    for variant in "0123456789abcdefABCDEF":
        for version in "0123456789abcdef":
            text = f"0c7b5b88-8ff7-{version}a4d-{variant}a9d-feb398cd0061"
            try:
                ok = bool(stix2.properties._check_uuid(text, "2.1", False))
            except ValueError:
                ok = False
            assert bool(fastvalues._UUID_RE.fullmatch(text)) == ok, text


@given(st.text(max_size=3))
@fuzz(300)
def test_custom_property_names(name):
    assert fastcheck._name_ok(name) == bool(stix2.utils.PREFIX_21_REGEX.match(name))


def test_custom_property_names_first_character():
    for code in range(0x3000):
        name = chr(code) + "x"
        assert fastcheck._name_ok(name) == bool(stix2.utils.PREFIX_21_REGEX.match(name)), code


def reference_properties():
    for cls, fields in fastcheck._FIELDS.items():
        for name, valid in fields.items():
            prop = cls._properties[name]
            if isinstance(prop, stix2.properties.ListProperty):
                prop, listed = prop.contained, valid
                valid = lambda v, listed=listed: listed([v])  # noqa: E731 (one item, listed)
            if type(prop) is stix2.properties.ReferenceProperty:
                yield cls, name, prop, valid


def test_reference_types_exactly_as_stix2():
    """For well-spelled types the fast rule is not only sound but exact."""
    checked = 0
    for cls, name, prop, valid in reference_properties():
        for t in TYPES:
            if not fastvalues._REF_RE.fullmatch(f"{t}--{ID}"):
                continue
            try:
                prop.clean(f"{t}--{ID}", True)
                ok = True
            except Exception:
                ok = False
            assert valid(f"{t}--{ID}") == ok, (cls.__name__, name, t)
            checked += 1
    assert checked > 1000


INTEROPERABILITY = (
    stix2.properties.EmbeddedObjectProperty, stix2.properties.EnumProperty,
    stix2.properties.ExtensionsProperty, stix2.properties.DictionaryProperty,
    stix2.properties.HashesProperty, stix2.properties.IDProperty,
    stix2.properties.ListProperty, stix2.properties.OpenVocabProperty,
    stix2.properties.ReferenceProperty, stix2.properties.SelectorProperty)
FIELDS = [(cls, name) for cls, fields in fastcheck._FIELDS.items() for name in fields
          if name != "definition"]  # MarkingDefinition's: checked by the object rule
field_values = st.one_of(
    values, st.dictionaries(st.sampled_from(HASH_NAMES), hash_values, min_size=1, max_size=2),
    st.lists(st.fixed_dictionaries({"source_name": st.sampled_from(["s", ""])}, optional={
        "url": values, "description": values, "hashes": st.dictionaries(
            st.sampled_from(HASH_NAMES), hash_values, max_size=2)}), max_size=2))


@given(st.sampled_from(FIELDS), field_values)
@fuzz(2000)
def test_each_property_validator_is_within_clean(field, value):
    """Whatever a property validator takes, that Property's clean() takes too (called the
    way _STIXBase._check_property calls it)."""
    cls, name = field
    if value is None or value == [] or not fastcheck._FIELDS[cls][name](value):
        return
    prop = cls._properties[name]
    args = [value, True] + ([False] if isinstance(prop, INTEROPERABILITY) else [])
    prop.clean(*args)
