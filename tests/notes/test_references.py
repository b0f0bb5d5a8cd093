"""The references a bundle's objects hold are gathered by the walk that checks the limits
(Parsed.refs) instead of a second walk: they must be exactly what references() finds in each
object, or a dangling or unreadable reference could slip past the posting checks."""
import copy
import random

import orjson
import pytest

from alliance.notes import posting, reading
from alliance.stix.references import references
from alliance.stix.validation import parse_bundle, parse_envelope
from tests.notes.helpers import CORPUS, bundle, identity, indicator, sid

VALID = sorted((CORPUS / "valid").glob("*.json"))


def _union(objects) -> set[str]:
    found: set[str] = set()
    for obj in objects:
        if isinstance(obj, dict):
            found |= references(obj)
    return found


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_the_walk_finds_what_references_finds_in_the_corpus(app, path):
    parsed = parse_bundle(path.read_bytes())
    assert parsed.refs == _union(parsed.objects)


def test_the_corpus_has_references_to_compare(app):
    """The comparison above is not of empty sets: most files point somewhere."""
    with_refs = [p for p in VALID if parse_bundle(p.read_bytes()).refs]
    assert len(with_refs) > len(VALID) // 2


def _random_value(rng: random.Random, depth: int):
    """JSON with *_ref / *_refs properties at any depth, in dicts and in lists of lists."""
    roll = rng.random()
    if depth > 4 or roll < 0.3:
        return rng.choice([sid("malware"), "plain text", 7, None, True])
    if roll < 0.65:
        out = {}
        for _ in range(rng.randint(0, 4)):
            name = rng.choice(["x_a_ref", "x_b_refs", "x_plain", "x_reference", "x_refs_note",
                               "source_ref", "object_refs", "x_nested"])
            if name.endswith("_refs"):
                out[name] = [rng.choice([sid("tool"), 3, [sid("tool")], {"x_c_ref": sid("tool")}])
                             for _ in range(rng.randint(0, 3))]
            else:
                out[name] = _random_value(rng, depth + 1)
        return out
    return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]


@pytest.mark.parametrize("seed", range(60))
def test_the_walk_finds_what_references_finds_at_any_depth(app, seed):
    rng = random.Random(seed)
    objects = [identity(x_extra=_random_value(rng, 0)) for _ in range(rng.randint(1, 4))]
    objects.append(indicator(x_deep=[[{"x_inner_ref": sid("campaign")}]]))
    container = bundle(*copy.deepcopy(objects))
    # The bundle's own properties are not an object's: a reference there is not gathered.
    container["x_bundle_ref"] = sid("report")
    container["x_meta"] = {"x_also_ref": sid("report")}
    raw = orjson.dumps(container)

    parsed = parse_bundle(raw)
    envelope = parse_envelope(orjson.dumps({"objects": objects, "x_more_ref": sid("report")}))

    expected = _union(objects)
    assert parsed.refs == expected and envelope.refs == expected
    assert container["x_bundle_ref"] not in parsed.refs


def test_a_lone_object_read_as_a_bundle_keeps_its_references(app):
    obj = identity(x_owner_ref=sid("identity"), x_links=[{"x_target_ref": sid("tool")}])
    parsed = parse_bundle(orjson.dumps(obj))
    assert parsed.refs == references(obj) and len(parsed.refs) == 2


def test_a_nested_dangling_reference_is_accepted_unresolved_through_the_gathered_references(
        member, alliance):
    """The import path (parse_bundle, then post_note with Parsed.refs): a reference deep in
    an extension that points nowhere is accepted and kept as sent (STIX 2.1 allows
    references to objects elsewhere); the note page shows it as not available."""
    dangling = sid("malware")
    obj = identity(extensions={f"extension-definition--{sid('x')[3:]}": {
        "extension_type": "property-extension", "x_list": [{"x_pointer_ref": dangling}]}})
    parsed = parse_bundle(orjson.dumps(bundle(obj)))
    assert dangling in parsed.refs
    note = posting.post_note(member, posting.NoteDraft(
        title="Dangling", tlp="AMBER", alliance_ids=[alliance.id], objects=parsed.objects,
        refs=parsed.refs))
    [stored] = [o.body for o in reading.note_objects(note) if o.stix_id == obj["id"]]
    assert next(iter(stored["extensions"].values()))["x_list"] == [{"x_pointer_ref": dangling}]
