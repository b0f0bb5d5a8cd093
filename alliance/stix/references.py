"""The ids an object points to: every *_ref / *_refs value at any depth (the walk in
shape.py gathers the same set for a whole post while it checks the limits)."""


def references(obj: dict) -> set[str]:
    """Every id the object points to through *_ref / *_refs properties, at any depth
    (bounded by STIX_MAX_DEPTH, checked before)."""
    found: set[str] = set()
    _collect_refs(obj, found)
    return found


def _collect_refs(value, found: set[str]) -> None:
    if type(value) is dict:
        _collect_dict_refs(value, found)
    elif type(value) is list:
        for element in value:
            if type(element) in (dict, list):
                _collect_refs(element, found)


def _collect_dict_refs(value: dict, found: set[str]) -> None:
    for key, item in value.items():
        kind = type(item)
        if kind is str:
            if key.endswith("_ref"):
                found.add(item)
        elif kind is list:
            if key.endswith("_refs"):
                found.update(i for i in item if type(i) is str)
            for element in item:
                if type(element) in (dict, list):
                    _collect_refs(element, found)
        elif kind is dict:
            _collect_dict_refs(item, found)

