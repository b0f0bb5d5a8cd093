"""Issue 22, streaming import: `alliance import` reads a bundle file a part at a time
(alliance.stix.stream.BundleFile), checks it whole, then reads it again to store it, so a
100,000-object import never holds the bundle whole. The parts give what orjson reads, refuse
what parse_bundle refuses, and an import in parts stores what an import in one part stores,
all or nothing."""
import json
import tracemalloc
import uuid

import orjson
import pytest
from sqlalchemy import select

from alliance.extensions import db
from alliance.notes.models import SERVED_WITH, Note, NoteObject, Observable, StixObject
from alliance.stix import stream
from alliance.stix.limits import StixLimits
from alliance.stix.markings import marking_id
from alliance.stix.validation import BundleRejected, parse_bundle
from tests.notes.helpers import STAMP, counts, identity, indicator
from tests.notes.test_cli_import import args, problem_lines, run_import  # noqa: F401

LIMITS = StixLimits(max_bytes=10**8, max_objects=10**6)


def _read(path, limits=LIMITS, part_objects=4) -> tuple[list[list[dict]], stream.BundleFile]:
    bundle = stream.BundleFile(path, limits, part_objects=part_objects)
    return [part.objects for part in bundle.parts()], bundle


def _sample(count: int) -> list[dict]:
    """Objects of several kinds: numbers of every length (split across blocks when read 5
    characters at a time), text beyond ASCII, nested lists and dictionaries."""
    objects = [identity("Sample Lab — Zürich", contact_information="☎ +41 44 000")]
    for n in range(count - 1):
        objects.append(indicator(f"[ipv4-addr:value = '198.51.100.{n % 250}']",
                                 name=f"indicateur n°{n}", confidence=n % 101,
                                 x_score=1.5 * n, x_big=10**12 + n,
                                 kill_chain_phases=[{"kill_chain_name": "lockheed",
                                                     "phase_name": "delivery"}]))
    return objects


@pytest.mark.parametrize("indent", [None, 2])
def test_the_parts_hold_what_orjson_reads_whatever_the_blocks(tmp_path, monkeypatch, indent):
    monkeypatch.setattr(stream, "_BLOCK", 5)  # values and numbers cut by every block end
    objects = _sample(23)
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}",
                                "objects": objects}, indent=indent, ensure_ascii=False),
                    encoding="utf-8")
    seen: list[int] = []
    bundle = stream.BundleFile(path, LIMITS, part_objects=4)
    bundle.progress = seen.append
    parts = []
    for part in bundle.parts():  # checked an object at a time, as post_note does
        parts.append(part.objects)
        for _ in part.objects:
            bundle.checked(1)

    assert [len(p) for p in parts] == [4, 4, 4, 4, 4, 3]
    assert [o for p in parts for o in p] == orjson.loads(path.read_bytes())["objects"]
    assert bundle.count == 23 and bundle.warnings == [] and bundle.readings == 2
    text = path.read_text(encoding="utf-8")
    objects_text = text.index("]", text.rindex("}", 0, len(text) - 1)) - text.index("[")
    assert len(seen) >= 23 and objects_text - 6 <= sum(seen) <= objects_text
    # Read again (as the import stores it): the same objects, told a part at a time.
    seen.clear()
    assert [o for p in bundle.parts() for o in p.objects] == objects
    assert len(seen) == 6 and objects_text - 1 <= sum(seen) <= objects_text


def _write(tmp_path, raw: str | bytes):
    path = tmp_path / "b.json"
    path.write_bytes(raw.encode() if isinstance(raw, str) else raw)
    return path


def _bundle_text(objects_text: str, before: str = '"type": "bundle", "id": "bundle--'
                 '8e2e2d2b-17d4-4cbe-8a4f-0e3f1f2c2a3b"', after: str = "") -> str:
    return "{" + before + ', "objects": [' + objects_text + "]" + after + "}"


OK = [orjson.dumps(indicator()).decode() for _ in range(6)]


@pytest.mark.parametrize("raw", [
    # the objects before the type, a lone object, an array, no objects, not a bundle
    '{"objects": [' + ",".join(OK) + '], "type": "bundle", "id": "bundle--1"}',
    OK[0],
    "[" + ",".join(OK) + "]",
    _bundle_text(""),
    '{"type": "x-report", "id": "x-report--8e2e2d2b-17d4-4cbe-8a4f-0e3f1f2c2a3b", '
    '"objects": [' + OK[0] + "]}",
    '{"type": "bundle", "id": "bundle--1", "objects": {"a": 1}}',
])
def test_other_json_is_read_whole_with_parse_bundles_answer(tmp_path, raw):
    path = _write(tmp_path, raw)
    try:
        expected = parse_bundle(raw.encode(), LIMITS)
    except BundleRejected as exc:
        with pytest.raises(BundleRejected) as streamed:
            _read(path)
        assert [str(p) for p in streamed.value.problems] == [str(p) for p in exc.problems]
        return
    parts, bundle = _read(path)
    assert parts == [expected.objects] and bundle.warnings == expected.warnings


DEEP = '{"x_deep": ' + "[" * 60 + "]" * 60 + "}"
DEEPER = '{"x_deep": ' + "[" * 5000 + "]" * 5000 + "}"


@pytest.mark.parametrize("raw, status, says", [
    (_bundle_text(",".join(OK[:3]) + " " + OK[3]), 422, "not valid JSON"),  # a comma missing
    (_bundle_text(",".join(OK[:4]) + ',{"type": "indicator", "x": NaN}'), 422, "not valid JSON"),
    (_bundle_text(",".join(OK[:4]) + ',{"type": "x-a", "id": "x-a--1", "name": "a\\u0000b"}'),
     422, "NUL"),
    (_bundle_text(",".join(OK[:4]) + "," + OK[4].replace('"name"', '"x_n": '
                                                         '123456789012345678901234567890, "name"')),
     422, "integer"),
    (_bundle_text(",".join(OK[:4]) + "," + DEEP), 422, "nested deeper than 48 levels"),
    (_bundle_text(",".join(OK[:4]) + "," + DEEPER), 422, "nested"),
    (_bundle_text(",".join(OK[:4]) + ',{"type": "x-a", "id": "x-a--1", "name": "'
                  + "a" * 300 + '"}'), 413, "a string of 300 characters"),
    (_bundle_text(",".join(OK)), 413, "more objects than the limit of 5"),
    (_bundle_text(",".join(OK[:5]), after=', "spec_version": "2.0"'), 422, "STIX 2.0"),
    (_bundle_text(",".join(OK[:5])) + " {}", 422, "text after the bundle"),
    (_bundle_text(",".join(OK[:5]), after=', "objects": []'), 422, "two lists of objects"),
    (_bundle_text(",".join(OK)).encode().replace(b"C2 address", b"C2 \xff", 1), 422, "UTF-8"),
])
def test_what_a_post_would_refuse_the_file_refuses(tmp_path, raw, status, says):
    """Each refused with the status and reason a post of it gets (parse_bundle, then the
    checks of its objects), wherever in the file the fault is."""
    limits = StixLimits(max_bytes=10**8, max_objects=5, max_string=200)
    with pytest.raises(BundleRejected) as streamed:
        _read(_write(tmp_path, raw), limits, part_objects=2)
    assert streamed.value.status_code == status
    assert says in " ".join(str(p) for p in streamed.value.problems)


def test_a_file_past_the_byte_limit_is_refused_before_it_is_read(tmp_path):
    path = _write(tmp_path, _bundle_text(",".join(OK)))
    with pytest.raises(BundleRejected) as exc:
        stream.BundleFile(path, StixLimits(max_bytes=100))
    assert exc.value.status_code == 413 and "the limit is 100" in str(exc.value.problems[0])


def test_the_bundles_spec_version_is_noted_after_its_objects_too(tmp_path):
    path = _write(tmp_path, _bundle_text(",".join(OK), after=', "spec_version": "2.1"'))
    parts, bundle = _read(path)
    assert sum(map(len, parts)) == 6
    assert bundle.warnings == parse_bundle(path.read_bytes(), LIMITS).warnings != []


@pytest.mark.parametrize("change", ["edited", "cut", "grown", "moved"])
def test_a_file_changed_between_the_readings_is_refused(tmp_path, change):
    """The second reading (the one that stores) parses without the limits walk only text
    the first reading checked: an edited file is refused, nothing stored."""
    path = _write(tmp_path, _bundle_text(",".join(OK)))
    bundle = stream.BundleFile(path, LIMITS, part_objects=2)
    assert sum(len(p.objects) for p in bundle.parts()) == 6
    text = {"edited": _bundle_text(",".join(OK).replace("C2 address", "C2 adresse", 1)),
            "cut": _bundle_text(",".join(OK[:4])),
            "grown": _bundle_text(",".join(OK + OK[:1])),
            "moved": _bundle_text(",".join(OK), before='"type": "bundle", "x": 1, "id": '
                                  '"bundle--8e2e2d2b-17d4-4cbe-8a4f-0e3f1f2c2a3b"')}[change]
    path.write_text(text)
    with pytest.raises(BundleRejected) as exc:
        list(bundle.parts())
    assert exc.value.status_code == 409 and "changed" in str(exc.value.problems[0])


# Imports in parts, through the CLI (tests.notes.test_cli_import).

def _varied(namespace: uuid.UUID) -> tuple[list[dict], dict[str, str]]:
    """A bundle of many kinds, its ids derived from `namespace`; and each id's name in the
    template (the same for every namespace)."""
    names: dict[str, str] = {}

    def sid(stix_type: str, name: str) -> str:
        value = f"{stix_type}--{uuid.uuid5(namespace, name)}"
        names[value] = name
        return value

    lab = identity("Third Party Lab", id=sid("identity", "lab"))
    malware = {"type": "malware", "spec_version": "2.1", "id": sid("malware", "rat"),
               "created": STAMP, "modified": STAMP, "name": "RAT", "is_family": True}
    later = {**malware, "modified": "2024-06-01T00:00:00.000Z", "description": "v2"}
    values = ["203.0.113.7", "10.0.0.1", "evil.example", "198.51.100.0/24",
              "2001:db8::17", "8.8.8.8", "203.0.113.9"]
    indicators = [indicator(
        f"[{'domain-name' if '.example' in v else 'ipv6-addr' if ':' in v else 'ipv4-addr'}"
        f":value = '{v}']", id=sid("indicator", v), name=v, created_by_ref=lab["id"],
        object_marking_refs=[marking_id("AMBER")] if n % 2 else None)
        for n, v in enumerate(values)]
    indicators = [{k: v for k, v in o.items() if v is not None} for o in indicators]
    relation = {"type": "relationship", "spec_version": "2.1", "id": sid("relationship", "r"),
                "created": STAMP, "modified": STAMP, "relationship_type": "indicates",
                "source_ref": indicators[0]["id"], "target_ref": malware["id"]}
    sco = {"type": "ipv4-addr", "spec_version": "2.1",
           "id": sid("ipv4-addr", "sco"), "value": "192.0.2.200"}
    vulnerability = {"type": "vulnerability", "spec_version": "2.1",
                     "id": sid("vulnerability", "cve"), "created": STAMP, "modified": STAMP,
                     "name": "CVE-2024-3094", "external_references": [
                         {"source_name": "cve", "external_id": "CVE-2024-3094"}]}
    # The relationship before its target, two versions of one id far apart, an identical
    # duplicate in a later part.
    objects = [relation, malware, lab, *indicators, sco, vulnerability, later, indicators[2]]
    return objects, names


def _snapshot(names: dict[str, str]) -> dict:
    """What the last note stored, its ids named as in the template."""
    note = db.session.scalars(select(Note).order_by(Note.id.desc())).first()

    def named(value):
        text = orjson.dumps(value).decode()
        for stix_id, name in names.items():
            text = text.replace(stix_id, f"<{name}>")
        return orjson.loads(text)

    rows = db.session.execute(
        select(StixObject.stix_id, StixObject.modified, StixObject.body, StixObject.scope)
        .join(NoteObject, NoteObject.object_id == StixObject.id)
        .where(NoteObject.note_id == note.id)).all()
    report = next(r.body for r in rows if r.stix_id == note.report_id)
    return {
        "objects": sorted((named(r.stix_id), r.modified, orjson.dumps(named(r.body)).decode())
                          for r in rows if r.scope != SERVED_WITH and r.stix_id != note.report_id),
        "served with": sorted(r.stix_id for r in rows if r.scope == SERVED_WITH),
        "report refs": sorted(named(report["object_refs"])),
        "observables": sorted(db.session.execute(
            select(Observable.kind, Observable.value, Observable.warning, Observable.net_lo,
                   Observable.net_hi).where(Observable.note_id == note.id)).all()),
        "types": note.types,
    }


def test_an_import_in_parts_stores_what_an_import_in_one_part_stores(app, args,  # noqa: F811
                                                                   tmp_path, monkeypatch):
    whole, whole_names = _varied(uuid.uuid4())
    parted, parted_names = _varied(uuid.uuid4())
    for name, objects in (("whole", whole), ("parted", parted)):
        (tmp_path / f"{name}.json").write_bytes(orjson.dumps(
            {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": objects}))

    result = run_import(app, tmp_path / "whole.json", *args, "--tlp", "AMBER")
    assert result.exit_code == 0, result.output
    expected = _snapshot(whole_names)

    parts = []
    monkeypatch.setattr(stream, "ONE_PART_BYTES", 0)
    monkeypatch.setattr(stream, "PART_OBJECTS", 3)
    monkeypatch.setattr(stream, "parse_envelope",
                        lambda raw, limits, parse=stream.parse_envelope:
                        parts.append(raw) or parse(raw, limits))
    result = run_import(app, tmp_path / "parted.json", *args, "--tlp", "AMBER")
    assert result.exit_code == 0, result.output
    assert len(parts) == 5  # 15 objects in parts of 3, each checked once
    assert "Stored 14 object(s)" in result.stderr  # as the file holds them (one duplicate)
    assert _snapshot(parted_names) == expected
    assert len(expected["objects"]) == 13 and len(expected["observables"]) == 9
    assert {o[2] for o in expected["observables"]} > {None}  # 10.0.0.1 and 8.8.8.8 flagged


@pytest.fixture
def in_parts_of_two(monkeypatch):
    monkeypatch.setattr(stream, "ONE_PART_BYTES", 0)
    monkeypatch.setattr(stream, "PART_OBJECTS", 2)


def _file(tmp_path, *objects):
    path = tmp_path / "b.json"
    path.write_bytes(orjson.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}",
                                   "objects": list(objects)}))
    return path


def test_every_problem_of_every_part_in_one_answer_and_nothing_stored(
        app, args, tmp_path, in_parts_of_two):  # noqa: F811
    first = indicator(pattern="[ipv4-addr:value = ")
    last = indicator(valid_from="yesterday")
    path = _file(tmp_path, first, *[indicator() for _ in range(6)], last)
    result = run_import(app, path, *args, "--tlp", "AMBER")
    assert result.exit_code == 1
    lines = problem_lines(result)
    assert [line.split()[0] for line in lines] == [first["id"], last["id"]]
    assert counts() == (0, 0, 0)


def test_two_versions_the_same_instant_in_different_parts_are_refused(
        app, args, tmp_path, in_parts_of_two):  # noqa: F811
    one = indicator()
    other = {**one, "name": "another name"}
    path = _file(tmp_path, one, indicator(), indicator(), indicator(), other)
    result = run_import(app, path, *args, "--tlp", "AMBER")
    assert result.exit_code == 1
    assert problem_lines(result) == [f"{one['id']} modified: the same id and modified appear "
                                     "twice with different content"]
    assert counts() == (0, 0, 0)


def test_a_version_conflict_in_a_later_part_stores_nothing(app, args, tmp_path,  # noqa: F811
                                                           in_parts_of_two):
    stored = indicator()
    result = run_import(app, _file(tmp_path, stored), *args, "--tlp", "AMBER")
    assert result.exit_code == 0, result.output
    before = counts()

    changed = {**stored, "name": "changed without a new modified"}
    path = _file(tmp_path, *[indicator() for _ in range(5)], changed)
    result = run_import(app, path, *args, "--tlp", "AMBER")
    assert result.exit_code == 1
    assert problem_lines(result) == [f"{stored['id']} modified: a different object with this "
                                     "id and modified is stored"]
    assert counts() == before


def test_objects_marked_looser_in_any_part_are_listed(app, args, tmp_path,  # noqa: F811
                                                      in_parts_of_two):
    clear = [indicator(object_marking_refs=[marking_id("CLEAR")]) for _ in range(2)]
    path = _file(tmp_path, clear[0], *[indicator() for _ in range(4)], clear[1])
    refused = run_import(app, path, *args, "--tlp", "AMBER")
    assert refused.exit_code == 1 and counts() == (0, 0, 0)
    assert "2 object(s) are marked looser" in refused.stderr
    assert all(f"{o['id']} (indicator)" in refused.stderr for o in clear)


def _plain(count: int) -> bytes:
    return orjson.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": [
        indicator(f"[ipv4-addr:value = '100.{n // 65536}.{n // 256 % 256}.{n % 256}']",
                  description="Seen in a phishing wave against finance staff. " * 3)
        for n in range(count)]})


def test_an_import_in_parts_holds_one_part_at_a_time(app, args, tmp_path,  # noqa: F811
                                                     monkeypatch):
    """The most memory traced while 3,000 objects are imported in parts of 300 stays under
    half of what the same import in one part takes (the bench measures the process: a
    100,000-object import under 300 MB)."""
    peaks = {}
    for name, part_objects in (("one part", 10**6), ("parts", 300)):
        monkeypatch.setattr(stream, "ONE_PART_BYTES", 0)
        monkeypatch.setattr(stream, "PART_OBJECTS", part_objects)
        path = tmp_path / f"{name}.json"
        path.write_bytes(_plain(3000))
        tracemalloc.start()
        try:
            result = run_import(app, path, *args, "--tlp", "AMBER")
            peaks[name] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert result.exit_code == 0, result.output
    assert peaks["parts"] < peaks["one part"] / 2, peaks
