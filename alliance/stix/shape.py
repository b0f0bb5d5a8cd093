"""The walk over posted JSON that enforces the limits before any costly parsing: depth,
string length, property names and object count, in one breadth-first pass that also gathers
every *_ref / *_refs value and notices floats that may have been integers beyond 64 bits;
and the refusal of NUL characters, which PostgreSQL cannot store."""
from alliance.stix.problems import BundleRejected, Problem
from alliance.stix.properties import MAX_INTEGER

# orjson reads an integer literal beyond 64 bits as a float (-(2**63) - 1 as -2.0**63):
# a float outside the integers STIX allows may have been one.
_FLOAT_FROM_INTEGER = float(MAX_INTEGER)


def _refuse_nul(data) -> None:
    """422 when a string (or a property name) holds NUL: PostgreSQL refuses it in text and
    JSON, and no STIX content needs it. The depth was checked before."""
    level = [data]
    while level:
        below = []
        for value in level:
            if type(value) is dict:
                for key, item in value.items():
                    if "\x00" in key:
                        raise BundleRejected([Problem("", repr(key)[:60], "a property name "
                                                      "holds a NUL character (\\u0000)")])
                    below.append(item)
            elif type(value) is list:
                below.extend(value)
            elif type(value) is str and "\x00" in value:
                raise BundleRejected([Problem("", "", f"the string {value[:40]!r} holds a NUL "
                                                      "character (\\u0000), which is not "
                                                      "stored")])
        level = below


def _check_shape(data, max_depth: int, max_string: int, max_objects: int,
                 large: list[bool] | None = None) -> set[str]:
    """Depth, string length, property names and object count, in one breadth-first pass a
    level at a time; on the way, every *_ref / *_refs value of the objects (a bundle's or
    an envelope's "objects", else the whole document: a lone object). Returns those.
    `large`, if given, gets True appended when the objects hold a float beyond 2**53 - 1."""
    refs: set[str] = set()
    # A bundle, or an envelope (no type): a lone object's own "objects" is only a property.
    container = type(data) is dict and data.get("type") in (None, "bundle")
    objects = data.get("objects") if container else None
    if type(objects) is list:  # a container: its own properties hold no references
        _walk([data], 1, max_depth, max_string, None, skip=objects)
        _walk(objects, 3, max_depth, max_string, refs, large=large)
    else:
        _walk([data], 1, max_depth, max_string, refs, large=large)
    objects = data.get("objects") if isinstance(data, dict) else data
    if isinstance(objects, list) and len(objects) > max_objects:
        raise BundleRejected([Problem("", "objects", f"{len(objects):,} objects; the limit is "
                                                     f"{max_objects:,}")], status_code=413)
    return refs


# Property name -> _PLAIN, _REF, _REFS (by its ending), remembered: names repeat.
_PLAIN, _REF, _REFS = 0, 1, 2
_NAMES: dict[str, int] = {}


def _name_kind(key: str) -> int:
    if len(key) > 250:
        raise BundleRejected([Problem("", key[:40] + "…", "property name too long")])
    kind = _REF if key.endswith("_ref") else _REFS if key.endswith("_refs") else _PLAIN
    if len(key) <= 64 and len(_NAMES) < 20_000:  # keeps the memo small
        _NAMES[key] = kind
    return kind


def _add_refs(refs: set[str], kind: int, item) -> None:
    """The ids a *_ref (kind _REF) or *_refs (_REFS) property holds, into `refs`."""
    if kind == _REF:
        if type(item) is str:
            refs.add(item)
    elif type(item) is list:
        refs.update(i for i in item if type(i) is str)


def _walk(level: list, depth: int, max_depth: int, max_string: int, refs: set[str] | None,
          skip=None, large: list[bool] | None = None) -> None:
    """_check_shape's walk from `level` (at `depth`), collecting references into `refs`
    unless it is None; `skip` (the objects list, walked on its own) is left out. A float
    beyond 2**53 - 1 appends True to `large` (if given), once."""
    names = _NAMES
    while level:
        if depth > max_depth:
            raise BundleRejected([Problem("", "", f"nested deeper than {max_depth} levels")])
        below = []
        for value in level:
            kind = type(value)
            if kind is dict:
                for key in value:
                    name = names.get(key)
                    if name is None:
                        name = _name_kind(key)
                    if name and refs is not None:
                        _add_refs(refs, name, value[key])
                below.extend(value.values())
            elif kind is list and value is not skip:
                below.extend(value)
            elif kind is str and len(value) > max_string:
                raise BundleRejected([Problem("", "", f"a string of {len(value):,} characters; "
                                                      f"the limit is {max_string:,}")],
                                     status_code=413)
            elif kind is float and large is not None and not large and not (
                    -_FLOAT_FROM_INTEGER <= value <= _FLOAT_FROM_INTEGER):
                large.append(True)
        level, depth = below, depth + 1

