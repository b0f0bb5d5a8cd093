"""The note page's STIX cards, a page at a time: the note's objects in the page's order
(the kinds an analyst reads first, then the rest, then the plumbing: identities, locations,
relationships, markings), cut into pages of PER_PAGE so that a note of 1,000 objects is a
page of 50 cards, not 1,000. The kinds index names every kind and the page it starts on."""
import math
from dataclasses import dataclass
from itertools import groupby

PER_PAGE = 50
HEAD = ("report", "incident", "indicator", "vulnerability", "attack-pattern", "malware", "tool",
        "threat-actor", "intrusion-set", "campaign", "infrastructure", "course-of-action",
        "malware-analysis", "observed-data", "sighting", "note", "opinion", "grouping")
TAIL = ("identity", "location", "relationship", "marking-definition", "extension-definition",
        "language-content")


@dataclass(frozen=True)
class Kind:
    type: str
    count: int
    page: int  # the page its first card is on


@dataclass(frozen=True)
class Ref:
    """What a reference to an object of the note links to: its card, on this page (`page`
    None) or on another page of cards."""

    id: int
    type: str
    body: dict
    page: int | None


@dataclass(frozen=True)
class Cards:
    total: int
    page: int
    pages: int
    kinds: list[Kind]  # every kind of the note, in order
    groups: list[tuple[str, list]]  # this page's cards by kind: (type, objects)
    first: int  # the number of this page's first card (1-based), 0 for none
    index: dict  # STIX id -> Ref: what a reference (source_ref, object_refs, ...) links to
    object_ids: frozenset  # the rows of every object of the note (the history marks them)

    @property
    def last(self) -> int:
        return self.first + sum(len(objects) for _type, objects in self.groups) - 1


def _rank(stix_type: str) -> tuple:
    if stix_type in HEAD:
        return (0, HEAD.index(stix_type), "")
    if stix_type in TAIL:
        return (2, TAIL.index(stix_type), "")
    return (1, 0, stix_type)


def page_of(objects, asked) -> Cards:
    """Page `asked` (a query string value; anything but a page number is the first, past
    the last is the last) of the cards of `objects`, kept in their order within a kind."""
    ordered = sorted(objects, key=lambda o: _rank(o.type))  # stable: the order within a kind
    pages = max(1, math.ceil(len(ordered) / PER_PAGE))
    try:
        page = min(max(1, int(asked)), pages)
    except (TypeError, ValueError):
        page = 1
    kinds, position = [], 0
    for stix_type, members in groupby(ordered, key=lambda o: o.type):
        count = len(list(members))
        kinds.append(Kind(stix_type, count, position // PER_PAGE + 1))
        position += count
    index: dict[str, Ref] = {}
    for position, o in enumerate(ordered):
        on = position // PER_PAGE + 1
        index.setdefault(o.stix_id, Ref(o.id, o.type, o.body, None if on == page else on))
    shown = ordered[(page - 1) * PER_PAGE: page * PER_PAGE]
    groups = [(t, list(m)) for t, m in groupby(shown, key=lambda o: o.type)]
    return Cards(len(ordered), page, pages, kinds, groups,
                 (page - 1) * PER_PAGE + 1 if shown else 0, index,
                 frozenset(o.id for o in ordered))
