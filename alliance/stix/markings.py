"""TLP marking definitions: the official TLP 2.0 objects (shipped in alliance/data), and the
TLP 1.0 ids still found in the wild, mapped onto TLP 2.0 levels (WHITE reads as CLEAR)."""
import json
from functools import cache
from pathlib import Path

from alliance.stix.tlp import TLP_RANK

TLP1_IDS = {
    "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9": "CLEAR",   # TLP:WHITE
    "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da": "GREEN",
    "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82": "AMBER",
    "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed": "RED",
}


EXTENSION_ID = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"


@cache
def _shipped() -> list[dict]:
    return json.loads((Path(__file__).parent.parent / "data" / "tlp2_markings.json")
                      .read_text())["objects"]


@cache
def tlp2_objects() -> dict[str, dict]:
    """Level -> the official TLP 2.0 marking-definition object."""
    return {obj["name"].split(":", 1)[1]: obj for obj in _shipped()
            if obj["type"] == "marking-definition"}


def tlp2_extension_definition() -> dict:
    """The extension-definition the TLP 2.0 markings declare themselves through."""
    return next(obj for obj in _shipped() if obj["id"] == EXTENSION_ID)


def tlp2_extension_creator() -> dict:
    """The identity the TLP 2.0 extension definition names as its creator (CISA)."""
    creator = tlp2_extension_definition()["created_by_ref"]
    return next(obj for obj in _shipped() if obj["id"] == creator)


@cache
def tlp2_ids() -> dict[str, str]:
    """Marking-definition id -> level, for TLP 2.0."""
    return {obj["id"]: level for level, obj in tlp2_objects().items()}


def marking_id(level: str) -> str:
    return tlp2_objects()[level]["id"]


def level_of(marking_ref: str) -> str | None:
    """The TLP level a marking-definition id stands for (1.0 or 2.0), or None."""
    return tlp2_ids().get(marking_ref) or TLP1_IDS.get(marking_ref)


def known_marking_ids() -> set[str]:
    return set(tlp2_ids()) | set(TLP1_IDS)


def strictest_level(objects: list[dict]) -> str | None:
    """The strictest TLP level marked on any object (object or granular markings). Also
    called on objects not validated yet (a TAXII envelope's, to choose the note's TLP):
    markings that are not lists are not markings here (validation refuses them)."""
    best = None
    for obj in objects:
        marked, granular = obj.get("object_marking_refs"), obj.get("granular_markings")
        refs = list(marked) if isinstance(marked, list) else []
        refs += [g.get("marking_ref") for g in granular if isinstance(g, dict)] if isinstance(
            granular, list) else []
        for ref in refs:
            level = level_of(ref) if isinstance(ref, str) else None
            if level and (best is None or TLP_RANK[level] > TLP_RANK[best]):
                best = level
    return best


def _tlp_levels(refs) -> list[str]:
    return [level for ref in (refs if isinstance(refs, list) else [])
            if isinstance(ref, str) and (level := level_of(ref))]


def _strings(value) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def looser_than(objects: list[dict], tlp: str) -> list[dict]:
    """The objects marked looser than their note's TLP level `tlp` (a TLP:CLEAR indicator in a
    TLP:AMBER note), in the order given, each as {"id", "type", "name", "level",
    "selectors"}: `level` is the looser TLP level (TLP 1.0 WHITE reads as CLEAR) and
    `selectors` the properties it marks, empty when it marks the whole object.

    Consumers that enforce markings per object (OpenCTI, MISP) treat such an object, or the
    marked properties, at that looser level whatever the note says, so the poster must see and
    confirm it. An object's own level is the strictest TLP among its object_marking_refs; when
    that is not looser, a granular TLP marking looser than the note still counts (for its
    selectors). Unmarked objects are not listed: they claim no looser level. Like
    strictest_level, safe on objects not validated yet (the preview's): markings of the wrong
    shape are not markings here."""
    rank = TLP_RANK[tlp]
    found = []
    for obj in objects:
        if not isinstance(obj, dict):
            continue
        own = _tlp_levels(obj.get("object_marking_refs"))
        level = max(own, key=TLP_RANK.__getitem__) if own else None
        selectors: list[str] = []
        if level is None or TLP_RANK[level] >= rank:
            granular = obj.get("granular_markings")
            looser = [(found_level, marking)
                      for marking in (granular if isinstance(granular, list) else [])
                      if isinstance(marking, dict)
                      for found_level in _tlp_levels([marking.get("marking_ref")])
                      if TLP_RANK[found_level] < rank]
            level = min((lv for lv, _ in looser), key=TLP_RANK.__getitem__, default=None)
            selectors = sorted({s for _, marking in looser
                                for s in _strings(marking.get("selectors"))})
        if level is not None:
            name = obj.get("name")
            found.append({"id": obj.get("id"), "type": obj.get("type"),
                          "name": name if isinstance(name, str) else None,
                          "level": level, "selectors": selectors})
    return found


def created_by_others(objects: list[dict], poster_stix_id: str) -> list[dict]:
    """The objects served exactly as posted because another identity created them (an ATT&CK
    technique, a vendor's report): those whose `created_by_ref` names an identity other than
    the poster's organisation's (`poster_stix_id`), in the order given, each as {"id",
    "type", "name", "creator", "creator_id", "levels", "granular", "other_markings"}.

    The platform adds the note's TLP marking only to objects the poster's organisation
    created or that name no creator (authorship.with_note_marking), so these go out with
    their own markings, or none. `creator` is the name of the identity with that id in the
    same objects (its latest version), else the id itself; `levels` the TLP levels of its
    object_marking_refs (TLP 1.0 WHITE reads as CLEAR), empty when consumers that enforce
    markings per object will treat it as unmarked; `granular` the TLP levels of its granular
    markings with their selectors ({"level", "selectors"}); `other_markings` how many of its
    object_marking_refs are no TLP marking. Marking definitions (they carry no marking) and
    the published TLP 2.0 extension definition are not listed. Informative only: nothing
    here needs a confirmation. Safe on objects not validated yet, like looser_than."""
    names: dict[str, tuple[str, str]] = {}
    for obj in objects:
        if isinstance(obj, dict) and obj.get("type") == "identity" and isinstance(
                obj.get("id"), str) and isinstance(obj.get("name"), str):
            modified = obj.get("modified")
            if not isinstance(modified, str):
                modified = ""
            if obj["id"] not in names or modified >= names[obj["id"]][0]:
                names[obj["id"]] = (modified, obj["name"])
    found = []
    for obj in objects:
        if not isinstance(obj, dict) or obj.get("type") == "marking-definition" or obj.get(
                "id") == EXTENSION_ID:
            continue
        creator = obj.get("created_by_ref")
        if not isinstance(creator, str) or creator == poster_stix_id:
            continue
        refs = _strings(obj.get("object_marking_refs"))
        levels = list(dict.fromkeys(_tlp_levels(refs)))
        granular = obj.get("granular_markings")
        name = obj.get("name")
        found.append({
            "id": obj.get("id"), "type": obj.get("type"),
            "name": name if isinstance(name, str) else None,
            "creator": names[creator][1] if creator in names else creator,
            "creator_id": creator, "levels": levels,
            "granular": [{"level": level, "selectors": sorted(set(_strings(
                marking.get("selectors"))))}
                for marking in (granular if isinstance(granular, list) else [])
                if isinstance(marking, dict)
                for level in _tlp_levels([marking.get("marking_ref")])],
            "other_markings": sum(1 for ref in refs if level_of(ref) is None)})
    return found
