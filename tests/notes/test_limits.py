"""Limits on posted STIX: pathological input is refused with 413/422, quickly, never a 500 or a
hang, and nothing is stored — through parse_bundle and through the upload page. "Quickly" is
counted, not timed: one pass over the JSON's shape, no object checked (the `work` fixture)."""
import io

import orjson
import pytest

from alliance.stix.validation import BundleRejected, parse_bundle
from tests.notes.helpers import bundle, counts, identity, sid


@pytest.fixture
def work(monkeypatch):
    """What a refusal costs, counted rather than timed: the passes over the JSON's shape
    (_check_shape: one, breadth-first), and the costly steps a refused bundle must never
    reach — reading the text again with the standard library (_refuse_big_integers),
    checking objects (check_object: the fast path, else stix2.parse), stix2.parse itself."""
    import stix2

    from alliance.stix import validation

    counts = {}

    def counting(owner, name):
        real = getattr(owner, name)

        def wrapper(*args, **kwargs):
            counts[name] = counts.get(name, 0) + 1
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapper)

    for name in ("_check_shape", "_refuse_big_integers", "check_object"):
        counting(validation, name)
    counting(stix2, "parse")
    return counts


def _bounded(counts: dict) -> None:
    assert counts.get("_check_shape", 0) <= 1, counts
    assert set(counts) <= {"_check_shape"}, counts


def deep_array() -> bytes:
    """A bundle whose one object carries a 50,000-deep nested array."""
    deep = b"[" * 50_000 + b"]" * 50_000
    obj = orjson.dumps(identity(x_deep=0)).replace(b'"x_deep":0', b'"x_deep":' + deep)
    return orjson.dumps(bundle()).replace(b'"objects":[]', b'"objects":[' + obj + b"]")


def bare_deep_array() -> bytes:
    return b"[" * 50_000 + b"]" * 50_000


def moderately_deep() -> bytes:
    """Deeper than STIX_MAX_DEPTH (48) but within orjson's own cap: our walk refuses it."""
    value: object = "bottom"
    for _ in range(200):
        value = {"x_next": value}
    return orjson.dumps(bundle(identity(x_nested=value)))


def long_string() -> bytes:
    """A 10 MB string (under STIX_MAX_BYTES, over STIX_MAX_STRING)."""
    return orjson.dumps(bundle(identity(description="A" * 10_000_000)))


def too_many_objects(app) -> bytes:
    n = app.config["STIX_MAX_OBJECTS"] + 1
    objs = [{"type": "ipv4-addr", "spec_version": "2.1", "id": sid("ipv4-addr"),
             "value": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"} for i in range(n)]
    return orjson.dumps(bundle(*objs))


def over_max_bytes(app) -> bytes:
    """A well-formed bundle one byte over STIX_MAX_BYTES."""
    limit = app.config["STIX_MAX_BYTES"]
    raw = orjson.dumps(bundle(identity(description="")))
    pad = limit + 1 - len(raw)
    return raw.replace(b'"description":""', b'"description":"' + b"x" * pad + b'"')


CASES = {
    "50,000-deep array in an object": (lambda app: deep_array(), 422, "nested deeper"),
    "50,000-deep bare array": (lambda app: bare_deep_array(), 422, "nested deeper"),
    "200-deep objects": (lambda app: moderately_deep(), 422, "nested deeper than"),
    "10 MB string": (lambda app: long_string(), 413, "a string of 10,000,000 characters"),
    "too many objects": (too_many_objects, 413, "objects; the limit is"),
    "over STIX_MAX_BYTES": (over_max_bytes, 413, "bytes; the limit is"),
}


@pytest.mark.parametrize("case", CASES)
def test_parse_bundle_refuses_quickly(app, case, work):
    make, status, fragment = CASES[case]
    raw = make(app)
    with pytest.raises(BundleRejected) as caught:
        parse_bundle(raw)
    _bounded(work)
    assert caught.value.status_code == status
    assert any(fragment in p.reason for p in caught.value.problems), caught.value.problems


def _upload(client, alliance, raw: bytes, *, as_file: bool):
    data = {"title": "Limits", "tlp": "AMBER", "alliances": str(alliance.id)}
    if as_file:
        data["bundle_file"] = (io.BytesIO(raw), "bundle.json", "application/json")
        return client.post("/notes/new/bundle", data=data, content_type="multipart/form-data")
    data["bundle_text"] = raw.decode()
    return client.post("/notes/new/bundle", data=data)


@pytest.mark.parametrize("as_file", [False, True], ids=["pasted", "file"])
@pytest.mark.parametrize("case", CASES)
def test_upload_page_refuses_quickly_and_stores_nothing(app, as_member, alliance, case, as_file,
                                                        work):
    make, status, fragment = CASES[case]
    raw = make(app)
    before = counts()
    response = _upload(as_member, alliance, raw, as_file=as_file)
    _bounded(work)
    assert response.status_code in (413, 422), response.status_code
    if fragment.encode() in response.data:
        assert response.status_code == status  # our answer, the problem shown on the page
    else:
        # A request over MAX_CONTENT_LENGTH is refused by Werkzeug before our code.
        assert response.status_code == 413 and len(raw) > app.config["MAX_CONTENT_LENGTH"]
    assert counts() == before


def test_our_byte_limit_answers_on_the_upload_page(app, as_member, alliance, monkeypatch):
    """Under MAX_CONTENT_LENGTH but over STIX_MAX_BYTES: our own 413 with the problem shown."""
    monkeypatch.setitem(app.config, "STIX_MAX_BYTES", 50_000)
    raw = orjson.dumps(bundle(identity(description="x" * 60_000)))
    before = counts()
    response = _upload(as_member, alliance, raw, as_file=True)
    assert response.status_code == 413
    assert b"the limit is 50,000" in response.data
    assert counts() == before


def test_a_bundle_within_the_limits_is_stored_through_the_upload_page(as_member, alliance):
    """The control case: the same route stores a small good bundle."""
    raw = orjson.dumps(bundle(identity("Control Org")))
    before = counts()
    response = _upload(as_member, alliance, raw, as_file=False)
    assert response.status_code == 302, response.status_code
    assert counts()[0] == before[0] + 1
