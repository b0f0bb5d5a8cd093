"""Every value a client can send is stored unchanged in a column that can hold it, or refused
with a 4xx naming the property — on SQLite and PostgreSQL alike (issue 18, points 7 and 8).

On PostgreSQL these were 500s: a `modified` with 30 fraction digits (stix_objects.modified is
varchar(40)) and a 2,048-character URL that normalisation lengthens to 2,049
(observables.value is varchar(2048)). On both databases an integer beyond 64 bits was stored
as a float and served changed (123456789012345678901234567890 came back as
1.2345678901234568e+29); STIX 2.1 integers must fit a signed 54-bit value.

Each finding is posted three ways: through the posting service (post_note), over TAXII and
through the upload page. Then each column a client value reaches is probed at its limit
(accepted, served back unchanged) and just past it (refused naming the property, or for the
observable index: not indexed, the object still stored as posted)."""
import io
import json
import uuid

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from alliance.apikeys.services import create_key
from alliance.extensions import db
from alliance.notes import posting
from alliance.notes.models import Observable, StixObject
from alliance.stix.observables import MAX_VALUE, detect
from alliance.stix.properties import MAX_FRACTION_DIGITS, MAX_INTEGER
from alliance.stix.validation import (
    BundleRejected,
    check_object,
    parse_bundle,
    parse_envelope,
)
from alliance.taxii.services import alliance_collection_id
from tests.notes.helpers import STAMP, bundle, counts, identity, indicator, sid

TAXII = "application/taxii+json;version=2.1"
BIG = 123456789012345678901234567890


# --- three ways in ----------------------------------------------------------------------------

def _taxii_post(client, key, alliance, objects=None, *, raw: bytes | None = None):
    body = raw if raw is not None else json.dumps({"objects": objects}).encode()
    return client.post(f"/taxii2/api/collections/{alliance_collection_id(alliance.id)}/objects/",
                       data=body, content_type=TAXII,
                       headers={"Authorization": f"Bearer {key}", "Accept": TAXII})


def _taxii_get(client, key, alliance, stix_id: str):
    """The object as TAXII serves it: (parsed, raw response text)."""
    response = client.get(
        f"/taxii2/api/collections/{alliance_collection_id(alliance.id)}/objects/{stix_id}/",
        headers={"Authorization": f"Bearer {key}", "Accept": TAXII})
    assert response.status_code == 200, response.get_data(as_text=True)
    [served] = json.loads(response.get_data(as_text=True))["objects"]
    return served, response.get_data(as_text=True)


def _upload(client, alliance, raw: bytes):
    return client.post("/notes/new/bundle", content_type="multipart/form-data", data={
        "title": "Column limits", "tlp": "AMBER", "alliances": str(alliance.id),
        "bundle_file": (io.BytesIO(raw), "bundle.json", "application/json")})


def _service_post(member, alliance, objects):
    return posting.post_note(member, posting.NoteDraft(
        title="Column limits", tlp="AMBER", alliance_ids=[alliance.id], objects=objects))


def _taxii_problems(response) -> list[tuple[str, str]]:
    details = response.get_json()["details"]["problems"]
    return [(p["id"], p["property"]) for p in details]


@pytest.fixture
def key(member):
    return create_key(member, "SIEM")[1]


# --- builders ---------------------------------------------------------------------------------

def custom(stix_type="x-thing", **extra) -> dict:
    """A custom object of an unregistered type: stix2 returns it unchecked, so only the
    platform's own checks stand between it and the columns."""
    obj = {"type": stix_type, "spec_version": "2.1", "id": sid(stix_type), "created": STAMP,
           "modified": STAMP, "name": "Custom"}
    obj.update(extra)
    return obj


def stamp(fraction_digits: int) -> str:
    return "2024-05-01T12:00:00" + ("." + "1234567890" * 4)[:fraction_digits + 1] + "Z" \
        if fraction_digits else "2024-05-01T12:00:00Z"


def url_sco(value: str) -> dict:
    return {"type": "url", "spec_version": "2.1",
            "id": f"url--{uuid.uuid5(uuid.NAMESPACE_URL, value)}", "value": value}


def lengthened_url(length: int) -> str:
    """A URL of `length` characters that normalisation lengthens by one (a "/" path)."""
    head = "http://a.example?q="
    return head + "x" * (length - len(head))


def _observables() -> list[str]:
    db.session.expire_all()
    return db.session.scalars(select(Observable.value)).all()


# --- point 7: the 500s on PostgreSQL ----------------------------------------------------------

LONG_MODIFIED = stamp(30)  # 51 characters; the column holds 40


def test_thirty_fraction_digits_are_refused_by_the_service(member, alliance):
    obj = custom(modified=LONG_MODIFIED)
    before = counts()
    with pytest.raises(BundleRejected) as caught:
        _service_post(member, alliance, [obj])
    assert [(p.object_id, p.property) for p in caught.value.problems] == [(obj["id"], "modified")]
    assert "at most 9 fraction digits" in caught.value.problems[0].reason
    assert counts() == before


def test_thirty_fraction_digits_are_refused_over_taxii(client, key, alliance):
    obj = custom(modified=LONG_MODIFIED)
    before = counts()
    response = _taxii_post(client, key, alliance, [obj])
    assert response.status_code == 422, response.get_data(as_text=True)
    assert _taxii_problems(response) == [(obj["id"], "modified")]
    assert counts() == before


def test_thirty_fraction_digits_are_refused_on_the_upload_page(as_member, alliance):
    obj = custom(modified=LONG_MODIFIED)
    before = counts()
    response = _upload(as_member, alliance, orjson.dumps(bundle(obj)))
    assert response.status_code == 422
    assert b"<code>modified</code>" in response.data
    assert b"at most 9 fraction digits" in response.data
    assert counts() == before


def test_a_created_the_column_would_hold_is_refused_too(member, alliance):
    """An object without `modified` (a marking definition) stores `created` in its place."""
    obj = {"type": "marking-definition", "spec_version": "2.1", "id": sid("marking-definition"),
           "created": LONG_MODIFIED, "definition_type": "statement",
           "definition": {"statement": "Copyright Example"}}
    with pytest.raises(BundleRejected) as caught:
        _service_post(member, alliance, [obj])
    assert [(p.object_id, p.property) for p in caught.value.problems] == [(obj["id"], "created")]


@pytest.mark.parametrize("how", ["service", "taxii", "upload"])
def test_a_url_normalised_past_the_column_is_stored_unindexed(client, member, key, as_member,
                                                              alliance, how):
    """2,048 characters, 2,049 once normalised: longer than what the observable index holds.
    The object is stored and served as posted (as a longer URL always was); the index, which
    holds normalised values for search and correlation, leaves it out."""
    value = lengthened_url(MAX_VALUE)
    assert len(value) == MAX_VALUE and len(value.replace("?", "/?", 1)) == MAX_VALUE + 1
    assert detect(value) is None
    obj = url_sco(value)
    if how == "service":
        _service_post(member, alliance, [obj])
    elif how == "taxii":
        response = _taxii_post(client, key, alliance, [obj])
        assert response.status_code == 202, response.get_data(as_text=True)
    else:
        response = _upload(as_member, alliance, orjson.dumps(bundle(obj)))
        assert response.status_code == 302, response.status_code
    assert _observables() == []
    served, _text = _taxii_get(client, key, alliance, obj["id"])
    assert served["value"] == value


def test_a_url_normalised_to_the_column_is_indexed(client, member, key, alliance):
    value = lengthened_url(MAX_VALUE - 1)
    obj = url_sco(value)
    _service_post(member, alliance, [obj])
    [stored] = _observables()
    assert len(stored) == MAX_VALUE and stored == value.replace("?", "/?", 1)
    assert _taxii_get(client, key, alliance, obj["id"])[0]["value"] == value


def test_a_host_that_lowercases_longer_is_not_indexed_past_the_column():
    """str.lower() can lengthen ("İ" is two characters in lower case)."""
    value = "http://" + "İ" * 1100 + ".example/"
    assert len(value) < MAX_VALUE
    assert detect(value) is None


@pytest.mark.parametrize(("value", "indexed"), [
    ("http://a.example/" + "é" * 1015, True),  # 2,047 bytes
    ("http://a.example/" + "é" * 1016, False),  # 2,049 bytes, 1,033 characters
    ("é" * 2035 + "@a.example", False),
    ("é" * 1019 + "@a.example", True),  # 2,048 bytes
])
def test_an_observable_is_indexed_when_its_bytes_fit(value, indexed):
    assert (detect(value) is not None) is indexed


# --- point 8: integers beyond 54 bits ---------------------------------------------------------

def _big_envelope(obj: dict, prop: str, literal: str) -> bytes:
    """An envelope whose object's `prop` is the JSON number `literal`, spelt as sent."""
    raw = json.dumps({"objects": [dict(obj, **{prop: 0})]})
    return raw.replace(f'"{prop}": 0', f'"{prop}": {literal}').encode()


@pytest.mark.parametrize("value", [BIG, 2**64, 2**63, -(2**63) - 1, 2**53, -(2**53)])
def test_an_integer_outside_54_bits_is_refused_over_taxii(client, key, alliance, value):
    """Within 64 bits orjson reads an int; beyond, a float (-(2**63) - 1 as -2.0**63)."""
    obj = indicator()
    before = counts()
    response = _taxii_post(client, key, alliance,
                           raw=_big_envelope(obj, "x_big", str(value)))
    assert response.status_code == 422, response.get_data(as_text=True)
    assert _taxii_problems(response) == [(obj["id"], "x_big")]
    assert counts() == before


def test_an_integer_beyond_64_bits_is_refused_on_the_upload_page(as_member, alliance):
    obj = indicator()
    raw = json.dumps(bundle(dict(obj, x_big=0))).replace('"x_big": 0', f'"x_big": {BIG}')
    before = counts()
    response = _upload(as_member, alliance, raw.encode())
    assert response.status_code == 422
    assert b"<code>x_big</code>" in response.data
    assert counts() == before


@pytest.mark.parametrize("value", [BIG, 2**63, 2**53, -(2**53), -(2**64)])
def test_an_integer_outside_54_bits_is_refused_by_the_service(member, alliance, value):
    obj = indicator(x_big=value)
    before = counts()
    with pytest.raises(BundleRejected) as caught:
        _service_post(member, alliance, [obj])
    assert [(p.object_id, p.property) for p in caught.value.problems] == [(obj["id"], "x_big")]
    assert "54-bit" in caught.value.problems[0].reason
    assert counts() == before


NESTED = [
    ({"x_list": [1, 2, 2**60]}, "x_list[2]"),
    ({"x_deep": {"a": [{"b": -(2**62)}]}}, "x_deep.a[0].b"),
    ({"external_references": [{"source_name": "x", "url": "https://a.example/",
                               "x_n": 2**54}]}, "external_references[0].x_n"),
    ({"extensions": {"extension-definition--d83fce45-ef58-4c6c-a3f4-1fbc32e98c6e": {
        "extension_type": "property-extension", "count": 2**70}}},
     "extensions.extension-definition--d83fce45-ef58-4c6c-a3f4-1fbc32e98c6e.count"),
    ({"confidence": 2**53}, "confidence"),
]


@pytest.mark.parametrize(("extra", "path"), NESTED, ids=[p for _e, p in NESTED])
def test_an_integer_anywhere_is_refused_naming_its_path(extra, path):
    obj = dict(indicator(), **extra)
    assert [(p.object_id, p.property) for p in check_object(obj)] == [(obj["id"], path)]


@pytest.mark.parametrize(("extra", "path"), NESTED[:4], ids=[p for _e, p in NESTED[:4]])
def test_an_integer_anywhere_beyond_64_bits_is_refused_over_taxii(client, key, alliance, extra,
                                                                  path):
    """Spelt out in the JSON: orjson reads these as floats, which the refusal must see past."""
    obj = dict(indicator(), **extra)
    raw = json.dumps({"objects": [obj]})
    for n in (2**60, 2**62, 2**54, 2**70):
        raw = raw.replace(str(n), str(n * 10**20))
    before = counts()
    response = _taxii_post(client, key, alliance, raw=raw.encode())
    assert response.status_code == 422, response.get_data(as_text=True)
    assert _taxii_problems(response) == [(obj["id"], path)]
    assert counts() == before


@pytest.mark.parametrize("literal", ["1e400", "-1e400", "1" + "0" * 400, "1" + "0" * 5000,
                                     "1" + "0" * 400 + ".5"])
def test_a_number_beyond_a_double_is_a_4xx(client, key, as_member, alliance, literal):
    obj = indicator()
    raw = _big_envelope(obj, "x_huge", literal)
    before = counts()
    with pytest.raises(BundleRejected):
        parse_envelope(raw)
    response = _taxii_post(client, key, alliance, raw=raw)
    assert 400 <= response.status_code < 500, response.get_data(as_text=True)
    bundled = json.dumps(bundle(dict(obj, x_huge=0))).replace('"x_huge": 0',
                                                             f'"x_huge": {literal}')
    assert _upload(as_member, alliance, bundled.encode()).status_code == 422
    assert counts() == before


def test_a_float_literal_beyond_64_bits_is_a_float_and_kept(client, key, alliance):
    """1e30 written as a float is a float: only integers are held to 54 bits."""
    obj = indicator()
    response = _taxii_post(client, key, alliance, raw=_big_envelope(obj, "x_float", "1e30"))
    assert response.status_code == 202, response.get_data(as_text=True)
    assert _taxii_get(client, key, alliance, obj["id"])[0]["x_float"] == 1e30


def test_a_bundle_upload_with_a_big_integer_refuses_at_parse():
    obj = indicator()
    raw = json.dumps(bundle(dict(obj, x_big=0))).replace('"x_big": 0', f'"x_big": {BIG}')
    with pytest.raises(BundleRejected) as caught:
        parse_bundle(raw.encode())
    assert [(p.object_id, p.property) for p in caught.value.problems] == [(obj["id"], "x_big")]


# --- each column at its limit and just past it -------------------------------------------------

def _type_of(length: int) -> str:
    return "x-" + "a" * (length - 2)


# (name, object at the limit, object just past it, property named, the stored value checked)
BOUNDARIES = {
    "modified (fraction digits)": (
        lambda: custom(modified=stamp(MAX_FRACTION_DIGITS)),
        lambda: custom(modified=stamp(MAX_FRACTION_DIGITS + 1)), "modified", "modified"),
    "created (fraction digits)": (
        lambda: custom(created=stamp(MAX_FRACTION_DIGITS), modified=stamp(MAX_FRACTION_DIGITS)),
        lambda: custom(created=stamp(MAX_FRACTION_DIGITS + 1),
                       modified=stamp(MAX_FRACTION_DIGITS)), "created", "created"),
    "id and type (100 and 62 characters)": (
        lambda: custom(_type_of(62)), lambda: custom(_type_of(63)), "id", "type"),
    "integer (largest)": (lambda: indicator(x_n=MAX_INTEGER),
                          lambda: indicator(x_n=MAX_INTEGER + 1), "x_n", "x_n"),
    "integer (smallest)": (lambda: indicator(x_n=-MAX_INTEGER),
                           lambda: indicator(x_n=-MAX_INTEGER - 1), "x_n", "x_n"),
    "integer (nested)": (lambda: custom(x_n={"a": [MAX_INTEGER]}),
                         lambda: custom(x_n={"a": [MAX_INTEGER + 1]}), "x_n.a[0]", "x_n"),
}


@pytest.mark.parametrize("case", BOUNDARIES)
def test_each_column_at_its_limit_and_past_it_over_taxii(client, key, alliance, case):
    make_at_limit, make_past, prop, checked = BOUNDARIES[case]
    at_limit, past = make_at_limit(), make_past()
    accepted = _taxii_post(client, key, alliance, [at_limit])
    assert accepted.status_code == 202, accepted.get_data(as_text=True)
    served, text = _taxii_get(client, key, alliance, at_limit["id"])
    assert served[checked] == at_limit[checked]
    assert json.dumps(at_limit[checked], separators=(",", ":")) in text  # as posted, no float
    row = db.session.scalar(select(StixObject).where(StixObject.stix_id == at_limit["id"]))
    assert (row.stix_id, row.type, row.modified) == (
        at_limit["id"], at_limit["type"], at_limit["modified"])

    before = counts()
    refused = _taxii_post(client, key, alliance, [past])
    assert refused.status_code == 422, refused.get_data(as_text=True)
    assert [p for _id, p in _taxii_problems(refused)] == [prop]
    assert counts() == before


@pytest.mark.parametrize("case", BOUNDARIES)
def test_each_column_at_its_limit_and_past_it_through_the_service(member, alliance, case):
    make_at_limit, make_past, prop, _checked = BOUNDARIES[case]
    at_limit, past = make_at_limit(), make_past()
    _service_post(member, alliance, [at_limit])
    before = counts()
    with pytest.raises(BundleRejected) as caught:
        _service_post(member, alliance, [past])
    assert [p.property for p in caught.value.problems] == [prop]
    assert counts() == before


def test_the_report_name_longer_than_a_title_is_kept_in_the_report(client, key, alliance):
    """A TAXII note's title comes from its one report's name, cut to the column; the report
    itself is stored and served as posted."""
    held = identity("Held")
    report = {"type": "report", "spec_version": "2.1", "id": sid("report"), "created": STAMP,
              "modified": STAMP, "name": "n" * 301, "published": STAMP,
              "object_refs": [held["id"]]}
    response = _taxii_post(client, key, alliance, [held, report])
    assert response.status_code == 202, response.get_data(as_text=True)
    assert _taxii_get(client, key, alliance, report["id"])[0]["name"] == "n" * 301


# --- fuzz: whatever is sent, a 202 that serves it back unchanged or a 422 naming it -----------

_INTEGERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([MAX_INTEGER, MAX_INTEGER + 1, -MAX_INTEGER, -MAX_INTEGER - 1, 2**63 - 1,
                     2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, BIG]))


@settings(max_examples=15, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(number=_INTEGERS, digits=st.integers(min_value=0, max_value=32),
       type_length=st.integers(min_value=55, max_value=70),
       url_length=st.integers(min_value=MAX_VALUE - 3, max_value=MAX_VALUE + 2))
def test_fuzz_no_5xx_and_nothing_changed(client, key, alliance, number, digits, type_length,
                                         url_length):
    obj = custom(_type_of(type_length), modified=stamp(digits), x_n={"v": [number]})
    sco = url_sco(lengthened_url(url_length))
    response = _taxii_post(client, key, alliance, [obj, sco])
    assert response.status_code in (202, 422), response.get_data(as_text=True)
    expected = set()
    if not -MAX_INTEGER <= number <= MAX_INTEGER:
        expected.add("x_n.v[0]")
    if digits > MAX_FRACTION_DIGITS:
        expected.add("modified")
    if type_length > 62:
        expected = {"id"}  # an id the columns cannot hold is refused before anything else
    if response.status_code == 422:
        assert {p for _id, p in _taxii_problems(response)} == expected
        return
    assert not expected
    served, _text = _taxii_get(client, key, alliance, obj["id"])
    assert served["x_n"] == {"v": [number]} and served["modified"] == obj["modified"]
    values = _observables()
    assert all(len(v) <= MAX_VALUE for v in values)
    assert db.session.scalar(select(func.max(func.length(StixObject.modified)))) <= 40


def test_a_url_of_many_byte_characters_at_the_column_length(client, member, key, alliance):
    """2,048 characters of three bytes each, incompressible: more than a PostgreSQL b-tree
    entry holds (about 2,700 bytes), so such a value is indexed only when it fits."""
    import random

    rng = random.Random(7)
    head = "http://a.example/"
    value = head + "".join(chr(rng.randrange(0x4E00, 0x9FFF)) for _ in range(MAX_VALUE - len(head)))
    obj = url_sco(value)
    response = _taxii_post(client, key, alliance, [obj])
    assert response.status_code == 202, response.get_data(as_text=True)
    assert _taxii_get(client, key, alliance, obj["id"])[0]["value"] == value
    assert all(len(v.encode()) <= MAX_VALUE for v in _observables())
