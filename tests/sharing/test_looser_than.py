"""markings.looser_than: the objects marked looser than their note's TLP, which the poster must
see in the preview and confirm before sharing (issue 18, point 9)."""
import pytest

from alliance.stix.markings import TLP1_IDS, looser_than, marking_id
from alliance.stix.tlp import TLP_LEVELS
from tests.notes.helpers import identity, indicator

WHITE = next(ref for ref, level in TLP1_IDS.items() if level == "CLEAR")
STATEMENT = "marking-definition--ad2caa47-58fd-4491-8f67-255377927369"  # not a TLP marking


def marked(*levels, **extra):
    return indicator(object_marking_refs=[marking_id(level) for level in levels], **extra)


def test_a_clear_indicator_in_an_amber_note_is_listed_with_its_marking():
    obj = marked("CLEAR")
    assert looser_than([obj], "AMBER") == [{"id": obj["id"], "type": "indicator",
                                            "name": "C2 address", "level": "CLEAR",
                                            "selectors": []}]


@pytest.mark.parametrize("note", TLP_LEVELS)
@pytest.mark.parametrize("level", TLP_LEVELS)
def test_listed_exactly_when_the_marking_ranks_below_the_note(level, note):
    listed = looser_than([marked(level)], note)
    assert bool(listed) == (TLP_LEVELS.index(level) < TLP_LEVELS.index(note))


def test_amber_is_looser_than_amber_strict_and_not_the_other_way():
    assert looser_than([marked("AMBER")], "AMBER+STRICT")
    assert not looser_than([marked("AMBER+STRICT")], "AMBER")


def test_unmarked_and_non_tlp_marked_objects_are_not_listed():
    objects = [identity("Unmarked"), indicator(),
               indicator(object_marking_refs=[STATEMENT])]
    assert looser_than(objects, "RED") == []


def test_tlp1_white_reads_as_clear():
    obj = indicator(object_marking_refs=[WHITE])
    assert [o["level"] for o in looser_than([obj], "GREEN")] == ["CLEAR"]


def test_the_strictest_of_several_object_markings_is_the_objects_level():
    assert looser_than([marked("CLEAR", "AMBER")], "AMBER") == []
    assert [o["level"] for o in looser_than([marked("CLEAR", "GREEN")], "AMBER")] == ["GREEN"]


def test_a_looser_granular_marking_lists_the_object_with_its_selectors():
    obj = marked("AMBER", granular_markings=[
        {"marking_ref": marking_id("CLEAR"), "selectors": ["name"]},
        {"marking_ref": marking_id("GREEN"), "selectors": ["description", "name"]},
        {"marking_ref": marking_id("RED"), "selectors": ["pattern"]}])
    [listed] = looser_than([obj], "AMBER")
    assert listed["level"] == "CLEAR" and listed["selectors"] == ["description", "name"]


def test_an_object_without_a_name_is_listed_without_one():
    sco = {"type": "ipv4-addr", "spec_version": "2.1", "id": "ipv4-addr--"
           "ff26c055-6336-5bc5-b98d-13d6226742dd", "value": "198.51.100.3",
           "object_marking_refs": [marking_id("GREEN")]}
    assert looser_than([sco], "RED")[0]["name"] is None


@pytest.mark.parametrize("obj", [
    "not an object", {"object_marking_refs": marking_id("CLEAR")},
    {"object_marking_refs": [7, None]}, {"granular_markings": "x"},
    {"granular_markings": [1, {"marking_ref": 2}, {"marking_ref": marking_id("CLEAR"),
                                                   "selectors": "name"}]},
    {"name": ["not", "a", "name"], "object_marking_refs": [marking_id("CLEAR")]},
])
def test_markings_of_the_wrong_shape_do_not_break_it(obj):
    """The preview calls it on objects not validated yet."""
    result = looser_than([obj], "AMBER")
    assert all(entry["name"] is None or isinstance(entry["name"], str) for entry in result)
    assert all(isinstance(entry["selectors"], list) for entry in result)
