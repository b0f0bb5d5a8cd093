"""Every property of every STIX 2.1 type, posted over TAXII with values at and past each limit,
is a 202 that serves the object back unchanged or a 4xx naming the property: never a 5xx
(issue 18, the last "done when" point). Run on SQLite and on PostgreSQL.

The types are the stix2 library's own (stix2.v21 OBJ_MAP, OBJ_MAP_OBSERVABLE, whose
marking-definition included, and its predefined SCO extensions, EXT_MAP), a custom `x-`
object and an extension-definition's property extension; the properties, each class's
`_properties`. Each (type, property) pair gets one value past a limit, one at a limit and one
other hostile value (a wrong JSON type, an empty or a long container, a reference to a type no
one knows, ...), chosen by a deterministic rotation so that every family of values meets every
kind of property somewhere. ALLIANCE_FUZZ_ALL=1 posts every family for every pair instead
(about 25 times as many posts; for a thorough run by hand).

Each envelope holds one object, so a refusal is the variant's own."""
import json
import os
import time
import uuid
from dataclasses import dataclass

import pytest
import stix2.v21 as v21
from stix2 import properties as P

from alliance.apikeys.services import create_key
from alliance.stix.markings import marking_id
from alliance.stix.observables import MAX_VALUE
from alliance.stix.properties import MAX_FRACTION_DIGITS, MAX_INTEGER
from alliance.taxii.services import alliance_collection_id

TAXII = "application/taxii+json;version=2.1"
STAMP = "2024-05-01T12:00:00.000Z"
EARLIER = "2024-04-30T12:00:00.000Z"
EXT_ID = "extension-definition--d83fce45-ef58-4c6c-a3f4-1fbc32e98c6e"
TOP_EXT_ID = "extension-definition--71736db5-10db-43d3-b0e3-65cf81601fe1"
CUSTOM_TYPE = "x-fuzz-widget"
FUZZ = "__FUZZ__"  # where the value goes in the envelope's text, spelt as sent
FUZZ_ALL = os.environ.get("ALLIANCE_FUZZ_ALL") == "1"


def _id(stix_type: str) -> str:
    return f"{stix_type}--{uuid.uuid4()}"


# A reference must name an object in the envelope or one the poster can read: these are
# posted first (the `taxii` fixture), and the minimal objects point to them.
_ANCHOR_NS = uuid.UUID("5e0c3a52-8d3c-4f0e-9d43-2b1d1f0e6a11")
ANCHOR_TYPES = ("identity", "indicator", "campaign", "threat-actor", "malware", "ipv4-addr",
                "file", "artifact", "software", "email-addr")
ANCHORS = {t: f"{t}--{uuid.uuid5(_ANCHOR_NS, t)}" for t in ANCHOR_TYPES}


# --- a minimal valid object of every type -----------------------------------------------------

def _sdo(stix_type: str, **props) -> dict:
    return {"type": stix_type, "spec_version": "2.1", "id": _id(stix_type), "created": STAMP,
            "modified": STAMP, **props}


def _sco(stix_type: str, **props) -> dict:
    return {"type": stix_type, "spec_version": "2.1", "id": _id(stix_type), **props}


MINIMAL = {
    "attack-pattern": lambda: _sdo("attack-pattern", name="Phishing"),
    "campaign": lambda: _sdo("campaign", name="Campaign"),
    "course-of-action": lambda: _sdo("course-of-action", name="Patch"),
    "extension-definition": lambda: _sdo(
        "extension-definition", name="Ext", created_by_ref=ANCHORS["identity"],
        schema="https://a.example/schema.json", version="1.0",
        extension_types=["property-extension"]),
    "grouping": lambda: _sdo("grouping", context="suspicious-activity",
                             object_refs=[ANCHORS["indicator"]]),
    "identity": lambda: _sdo("identity", name="Org", identity_class="organization"),
    "incident": lambda: _sdo("incident", name="Incident"),
    "indicator": lambda: _sdo("indicator", pattern="[ipv4-addr:value = '203.0.113.7']",
                              pattern_type="stix", valid_from=STAMP),
    "infrastructure": lambda: _sdo("infrastructure", name="C2"),
    "intrusion-set": lambda: _sdo("intrusion-set", name="Set"),
    "language-content": lambda: _sdo("language-content", object_ref=ANCHORS["campaign"],
                                     contents={"de": {"name": "Kampagne"}}),
    "location": lambda: _sdo("location", region="europe"),
    "malware": lambda: _sdo("malware", is_family=False),
    "malware-analysis": lambda: _sdo("malware-analysis", product="Sandbox", result="malicious"),
    "marking-definition": lambda: {
        "type": "marking-definition", "spec_version": "2.1", "id": _id("marking-definition"),
        "created": STAMP, "definition_type": "statement",
        "definition": {"statement": "Copyright Example"}},
    "note": lambda: _sdo("note", content="Seen", object_refs=[ANCHORS["indicator"]]),
    "observed-data": lambda: _sdo("observed-data", first_observed=STAMP, last_observed=STAMP,
                                  number_observed=1, object_refs=[ANCHORS["ipv4-addr"]]),
    "opinion": lambda: _sdo("opinion", opinion="agree", object_refs=[ANCHORS["indicator"]]),
    "relationship": lambda: _sdo("relationship", relationship_type="uses",
                                 source_ref=ANCHORS["threat-actor"], target_ref=ANCHORS["malware"]),
    "report": lambda: _sdo("report", name="Report", published=STAMP,
                           object_refs=[ANCHORS["indicator"]]),
    "sighting": lambda: _sdo("sighting", sighting_of_ref=ANCHORS["indicator"]),
    "threat-actor": lambda: _sdo("threat-actor", name="Actor"),
    "tool": lambda: _sdo("tool", name="Tool"),
    "vulnerability": lambda: _sdo("vulnerability", name="CVE-2024-0001"),
    # cyber-observables
    "artifact": lambda: _sco("artifact", payload_bin="aGVsbG8="),
    "autonomous-system": lambda: _sco("autonomous-system", number=64500),
    "directory": lambda: _sco("directory", path="/tmp"),  # noqa: S108 (a STIX value)
    "domain-name": lambda: _sco("domain-name", value="a.example"),
    "email-addr": lambda: _sco("email-addr", value="a@a.example"),
    "email-message": lambda: _sco("email-message", is_multipart=False),
    "file": lambda: _sco("file", name="a.exe"),
    "ipv4-addr": lambda: _sco("ipv4-addr", value="203.0.113.7"),
    "ipv6-addr": lambda: _sco("ipv6-addr", value="2001:db8::1"),
    "mac-addr": lambda: _sco("mac-addr", value="00:00:5e:00:53:01"),
    "mutex": lambda: _sco("mutex", name="Global\\m"),
    "network-traffic": lambda: _sco("network-traffic", protocols=["tcp"],
                                    src_ref=ANCHORS["ipv4-addr"]),
    "process": lambda: _sco("process", pid=4),
    "software": lambda: _sco("software", name="Word"),
    "url": lambda: _sco("url", value="http://a.example/"),
    "user-account": lambda: _sco("user-account", user_id="1001"),
    "windows-registry-key": lambda: _sco("windows-registry-key", key="HKEY_LOCAL_MACHINE\\S"),
    "x509-certificate": lambda: _sco("x509-certificate", serial_number="01"),
    # a custom object of a type stix2 does not know
    CUSTOM_TYPE: lambda: _sdo(CUSTOM_TYPE, name="Widget"),
}

# The stix2 library's predefined SCO extensions: (the SCO that carries it, a minimal body).
EXTENSIONS = {
    "archive-ext": ("file", lambda: {"contains_refs": [ANCHORS["file"]]}),
    "ntfs-ext": ("file", lambda: {"sid": "S-1-5-21"}),
    "pdf-ext": ("file", lambda: {"version": "1.7"}),
    "raster-image-ext": ("file", lambda: {"image_height": 1}),
    "windows-pebinary-ext": ("file", lambda: {"pe_type": "exe"}),
    "http-request-ext": ("network-traffic", lambda: {"request_method": "get",
                                                     "request_value": "/"}),
    "icmp-ext": ("network-traffic", lambda: {"icmp_type_hex": "08", "icmp_code_hex": "00"}),
    "socket-ext": ("network-traffic", lambda: {"address_family": "AF_INET"}),
    "tcp-ext": ("network-traffic", lambda: {"src_flags_hex": "00"}),
    "windows-process-ext": ("process", lambda: {"aslr_enabled": True}),
    "windows-service-ext": ("process", lambda: {"service_name": "svc"}),
    "unix-account-ext": ("user-account", lambda: {"gid": 1}),
}

# A reference to any type (as custom properties hold).
ANY_REF = P.ReferenceProperty(invalid_types=["bundle"], spec_version="2.1")
# The custom object's properties: the common ones, as stix2 declares them, and its own.
_COMMON = {k: p for k, p in v21.AttackPattern._properties.items()
           if k not in ("name", "description", "aliases", "kill_chain_phases")}
CUSTOM_PROPERTIES = {**_COMMON, "name": P.StringProperty(), "x_string": P.StringProperty(),
                     "x_integer": P.IntegerProperty(), "x_float": P.FloatProperty(),
                     "x_boolean": P.BooleanProperty(), "x_timestamp": P.TimestampProperty(),
                     "x_list": P.ListProperty(P.StringProperty),
                     "x_dict": P.DictionaryProperty(), "x_ref": ANY_REF,
                     "x_refs": P.ListProperty(ANY_REF)}
# An extension-definition's property extension (in `extensions`) and a toplevel-property
# extension (whose properties sit on the object itself), on an identity.
PROPERTY_EXTENSION = {"extension_type": P.StringProperty(), "rank": P.IntegerProperty(),
                      "x_note": P.StringProperty(), "x_refs": P.ListProperty(ANY_REF)}
TOPLEVEL_EXTENSION = {"x_toplevel": P.StringProperty(), "x_toplevel_ref": ANY_REF}


@dataclass
class Target:
    """One (type, property) pair: the object to post and where the value goes in it."""
    label: str  # "indicator.pattern", "file/archive-ext.comment", ...
    make: object  # () -> a valid object (the value then replaces the property's, if any)
    path: tuple  # keys from the object down to the property
    prop: object  # its stix2 Property
    depth: int  # of the property's value in the envelope ({"objects": [obj]}: obj is 3)

    @property
    def name(self) -> str:
        return self.path[-1]


def _with_extension(make, ext_id: str, body) -> object:
    def build():
        obj = make()
        obj.setdefault("extensions", {})[ext_id] = body()
        return obj
    return build


def spec_types() -> list[tuple[str, type]]:
    """The STIX 2.1 types stix2 defines: its registries, less the custom types other tests
    register in them at run time (x-…; the custom type of this file is CUSTOM_TYPE)."""
    return [(stix_type, cls) for stix_type, cls in
            [*v21.OBJ_MAP.items(), *v21.OBJ_MAP_OBSERVABLE.items()]
            if not stix_type.startswith("x-")]


def targets() -> list[Target]:
    found = []
    for stix_type, cls in spec_types():
        if stix_type == "bundle":
            continue  # not an object an envelope carries (test_a_bundle_is_not_an_object)
        for name, prop in cls._properties.items():
            found.append(Target(f"{stix_type}.{name}", MINIMAL[stix_type], (name,), prop, 4))
    for name, prop in CUSTOM_PROPERTIES.items():
        found.append(Target(f"{CUSTOM_TYPE}.{name}", MINIMAL[CUSTOM_TYPE], (name,), prop, 4))
    for ext, (host, body) in EXTENSIONS.items():
        make = _with_extension(MINIMAL[host], ext, body)
        for name, prop in v21.EXT_MAP[ext]._properties.items():
            found.append(Target(f"{host}/{ext}.{name}", make, ("extensions", ext, name), prop, 6))
    with_ext = _with_extension(MINIMAL["identity"], EXT_ID,
                               lambda: {"extension_type": "property-extension", "rank": 1})
    for name, prop in PROPERTY_EXTENSION.items():
        found.append(Target(f"identity/property-extension.{name}", with_ext,
                            ("extensions", EXT_ID, name), prop, 6))
    with_top = _with_extension(MINIMAL["identity"], TOP_EXT_ID,
                               lambda: {"extension_type": "toplevel-property-extension"})
    for name, prop in TOPLEVEL_EXTENSION.items():
        found.append(Target(f"identity/toplevel-extension.{name}", with_top, (name,), prop, 4))
    return found


# --- hostile values ------------------------------------------------------------------------------

def _kind(prop) -> str:
    """What a property holds: string, ref, integer, float, boolean, timestamp, list, dict."""
    if isinstance(prop, P.ReferenceProperty):
        return "ref"
    for cls, kind in ((P.ListProperty, "list"), (P.IntegerProperty, "integer"),
                      (P.FloatProperty, "float"), (P.BooleanProperty, "boolean"),
                      (P.TimestampProperty, "timestamp"),
                      ((P.DictionaryProperty, P.HashesProperty, P.ExtensionsProperty,
                        P.ObservableProperty, P.EmbeddedObjectProperty), "dict")):
        if isinstance(prop, cls):
            return kind
    return "string"


# A valid shell for one item of a list of embedded objects, with FUZZ in one field.
_EMBEDDED = {
    "ExternalReference": lambda v: {"source_name": v},
    "KillChainPhase": lambda v: {"kill_chain_name": v, "phase_name": "delivery"},
    "GranularMarking": lambda v: {"selectors": ["type"], "lang": v},
}


def _wrap(target: Target, literal: str) -> str:
    """The element `literal` in the shape the property has (a list's item, a dict's value)."""
    prop = target.prop
    kind = _kind(prop)
    if kind == "list":
        contained = prop.contained
        if isinstance(contained, type) and not issubclass(contained, P.Property):
            shell = _EMBEDDED.get(contained.__name__, lambda v: {"name": v})
            return "[" + json.dumps(shell(FUZZ)).replace(f'"{FUZZ}"', literal) + "]"
        return f"[{literal}]"
    if kind == "dict":
        if isinstance(prop, P.HashesProperty):
            return '{"SHA-256": ' + literal + "}"
        if isinstance(prop, P.ExtensionsProperty):
            return ('{"' + EXT_ID + '": {"extension_type": "property-extension", "x_v": '
                    + literal + "}}")
        return '{"k": ' + literal + "}"
    return literal


def _element_kind(target: Target) -> str:
    prop = target.prop
    if _kind(prop) == "list":
        contained = prop.contained
        if isinstance(contained, P.Property):
            return _kind(contained)
        return "string"  # the fuzzed field of an embedded object
    if _kind(prop) == "dict":
        return "string"
    return _kind(prop)


def _string(target: Target, length: int, char: str = "a") -> str:
    """A string of `length` characters, as valid as can be where the property is an
    observable's value (so the observable index meets it at its limit)."""
    owner = target.label.split(".")[0]
    if target.name == "value" and owner in ("url", "domain-name", "email-addr"):
        if owner == "url":
            head = "http://a.example/"
            return head + char * (length - len(head))
        if owner == "email-addr":
            return char * (length - len("@a.example")) + "@a.example"
        name = [char] * (length - len(".example"))
        for i in range(63, len(name) - 1, 64):  # labels of 63 characters
            name[i] = "."
        return "".join(name) + ".example"
    return char * length


def _text(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def _stamp(digits: int, day: str = "2024-05-01") -> str:
    return f"{day}T12:00:00." + ("1234567890" * 4)[:digits] + "Z"


def _nested(levels: int, dicts: bool) -> str:
    leaf = '"deep"'
    return ('{"a": ' * levels + leaf + "}" * levels) if dicts else (
        "[" * levels + leaf + "]" * levels)


def _families(target: Target, max_string: int, max_depth: int) -> dict[str, dict]:
    """Every family of hostile values for the target, by group: "past" (past a limit), "at"
    (at one) and "other": name -> () -> the value as JSON text (made when used: a 1 MiB
    string only then)."""
    wrap = lambda literal: _wrap(target, literal)  # noqa: E731
    element = _element_kind(target)
    day = "2024-04-30" if target.name == "created" else "2024-05-01"
    # The depth of an element: inside a list or a dict one level below the property.
    below = 1 if _kind(target.prop) in ("list", "dict") else 0
    if _kind(target.prop) == "list" and not isinstance(target.prop.contained, P.Property):
        below = 2  # [ {field: ...} ]
    if isinstance(target.prop, P.ExtensionsProperty):
        below = 2
    levels_at = max_depth - target.depth - below  # the innermost string at max_depth
    dicts = _kind(target.prop) == "dict" or target.name.startswith("x_")
    custom_type = "x-" + "a" * 60  # 62 characters: an id of 100

    def strings(length, char="a"):
        return lambda: wrap(_text(_string(target, length, char)))

    past = {
        "string 2,049": strings(MAX_VALUE + 1),
        "string past STIX_MAX_STRING": strings(max_string + 1),
        "string of 2,049 two-byte characters": strings(MAX_VALUE + 1, "é"),
        "string of 1,025 astral characters": strings(1025, "\U0001F600"),
        "string with NUL": lambda: wrap(_text("a\x00b")),
        "integer 2**53": lambda: wrap(str(2**53)),
        "integer -2**53": lambda: wrap(str(-(2**53))),
        "integer 2**64": lambda: wrap(str(2**64)),
        "float 1e400": lambda: wrap("1e400"),
        "timestamp with 10 fraction digits": lambda: wrap(_text(_stamp(MAX_FRACTION_DIGITS + 1,
                                                                       day))),
        "nested past STIX_MAX_DEPTH": lambda: wrap(_nested(levels_at + 1, dicts)),
        "id of 101 characters": lambda: wrap(_text(f"x-{'a' * 61}--{uuid.uuid4()}")),
        "empty list": lambda: "[]",
    }
    at = {
        "string 2,048": strings(MAX_VALUE),
        "string at STIX_MAX_STRING": strings(max_string),
        "string of 2,048 three-byte characters": strings(MAX_VALUE, "\u4e2d"),
        "integer 2**53-1": lambda: wrap(str(MAX_INTEGER)),
        "integer -(2**53-1)": lambda: wrap(str(-MAX_INTEGER)),
        "float 1e308": lambda: wrap("1e308"),
        "timestamp with 9 fraction digits": lambda: wrap(_text(_stamp(MAX_FRACTION_DIGITS, day))),
        "nested at STIX_MAX_DEPTH": lambda: wrap(_nested(levels_at, dicts)),
        "id of 100 characters": lambda: wrap(_text(f"{custom_type}--{uuid.uuid4()}")),
        "1,000 items": lambda: "[" + ", ".join(
            [_many_item(target, element)] * 1000) + "]",
    }
    other = {
        "reference to an unknown type": lambda: wrap(_text(f"x-unheard-of--{uuid.uuid4()}")),
        "reference to a type that is not STIX": lambda: wrap(_text(f"no-such-type--{uuid.uuid4()}")),
        "empty object": lambda: "{}",
        "true": lambda: "true",
        "null": lambda: "null",
        "zero": lambda: "0",
        "a string": lambda: '"text"',
        "a list of a string": lambda: '["text"]',
        "an object of a number": lambda: '{"a": 1}',
        "a float": lambda: "1.5",
        "negative zero float": lambda: "-0.0",
    }
    return {"past": past, "at": at, "other": other}


def _many_item(target: Target, element: str) -> str:
    """An item of the 1,000-item list: of the kind the list holds, else a string."""
    if _kind(target.prop) == "list":
        contained = target.prop.contained
        if isinstance(contained, type) and not issubclass(contained, P.Property):
            shell = _EMBEDDED.get(contained.__name__, lambda v: {"name": v})
            return json.dumps(shell("item"))
        if element == "ref":
            return _text(_anchor_for(contained))
        if element == "integer":
            return "1"
        if isinstance(contained, P.EnumProperty):
            return _text(sorted(contained.allowed)[0])
    return '"item"'


def _anchor_for(prop: P.ReferenceProperty) -> str:
    """A stored object's id that the reference property allows (of some type, if none)."""
    if prop.specifics == {"marking-definition"}:
        return marking_id("AMBER")  # the platform's own, which every poster may name
    if prop.auth_type == 0:  # the types allowed
        allowed = set(prop.specifics) | (
            {"ipv4-addr", "file", "artifact", "software", "email-addr"}
            if "SCO" in prop.generics else set()) | (
            {"indicator", "campaign", "malware", "threat-actor", "identity"}
            if "SDO" in prop.generics else set())
        for stix_type in ANCHOR_TYPES:
            if stix_type in allowed:
                return ANCHORS[stix_type]
        return _id(sorted(prop.specifics or {"indicator"})[0])
    return ANCHORS["indicator"]


# --- posting -------------------------------------------------------------------------------------

def _envelope(target: Target, literal: str) -> tuple[str, bytes]:
    obj = target.make()
    holder = obj
    for key in target.path[:-1]:
        holder = holder.setdefault(key, {})
    holder[target.name] = FUZZ
    text = json.dumps({"objects": [obj]})
    assert text.count(f'"{FUZZ}"') == 1
    return obj["id"], text.replace(f'"{FUZZ}"', literal, 1).encode("utf-8", "surrogatepass")


def _names(problem: dict, target: Target) -> bool:
    """Whether a refusal's problem names the property (or a place inside it)."""
    names = {target.name, ".".join(target.path)}
    if target.name in ("type", "id"):
        names |= {"type", "id"}
    if target.name.endswith(("_ref", "_refs")):
        names.add("*_ref")  # the platform's reference checks name every reference so
    if target.label == "marking-definition.definition":
        names |= {"statement", "tlp"}  # a property of the definition it names
    props = [p.strip() for p in problem["property"].split(",")]
    return any(p == n or p.startswith((n + ".", n + "[")) for p in props for n in names) or (
        target.name in problem["reason"])


# Refusals of the whole document, before any object is read (the size of a string, the depth,
# a NUL, a number no double holds): they say what and where in the text, not which property.
DOCUMENT_LIMITS = ("the limit is", "nested deeper than", "NUL character",
                   "a number too large to be read")


def _served_unchanged(posted: dict, served: dict) -> str | None:
    """None, or what changed. The platform adds a creator and a TLP marking where the
    poster sent none (DESIGN.md, Posting): nothing else may differ."""
    for key, value in posted.items():
        if key == "object_marking_refs" and type(value) is list and type(served.get(key)) is list:
            if served[key][:len(value)] != value:
                return f"{key}: {value!r} served as {served[key]!r}"
        elif served.get(key, "<missing>") != value:
            return f"{key}: {str(value)[:80]!r} served as {str(served.get(key))[:80]!r}"
    added = set(served) - set(posted)
    if added - {"created_by_ref", "object_marking_refs"}:
        return f"added {sorted(added)}"
    return None


@pytest.fixture
def taxii(app, client, member, alliance, monkeypatch):
    monkeypatch.setitem(app.config, "TAXII_RATE_LIMIT", "1000000 per minute")
    key = create_key(member, "Fuzz")[1]
    url = f"/taxii2/api/collections/{alliance_collection_id(alliance.id)}/objects/"
    headers = {"Authorization": f"Bearer {key}", "Accept": TAXII}

    class Taxii:
        @staticmethod
        def post(body: bytes):
            return client.post(url, data=body, content_type=TAXII, headers=headers)

        @staticmethod
        def get(stix_id: str):
            return client.get(f"{url}{stix_id}/", headers=headers)

    anchors = []
    for stix_type, stix_id in ANCHORS.items():
        obj = dict(MINIMAL[stix_type](), id=stix_id) if stix_type in MINIMAL else _sco(
            stix_type, id=stix_id, name="anchor")
        anchors.append(obj)
    response = Taxii.post(json.dumps({"objects": anchors}).encode())
    assert response.status_code == 202, response.get_data(as_text=True)
    return Taxii


def _post_and_judge(taxii, target: Target, family: str, literal: str, tally: dict,
                    failures: list) -> None:
    stix_id, body = _envelope(target, literal)
    where = f"{target.label} <- {family}"
    response = taxii.post(body)
    tally["posts"] += 1
    status = response.status_code
    text = response.get_data(as_text=True)
    if status >= 500 or status < 200:
        failures.append(f"{where}: {status} {text[:300]}")
        return
    if status == 202:
        result = response.get_json()
        if result.get("success_count") != 1:
            failures.append(f"{where}: 202 without success: {text[:300]}")
            return
        tally["accepted"] += 1
        got = taxii.get(stix_id)
        if got.status_code != 200:
            failures.append(f"{where}: accepted, then GET {got.status_code} "
                            f"{got.get_data(as_text=True)[:200]}")
            return
        [served] = json.loads(got.get_data(as_text=True))["objects"]
        posted = json.loads(body)["objects"][0]
        changed = _served_unchanged(posted, served)
        if changed:
            failures.append(f"{where}: served changed: {changed}")
        return
    if not 400 <= status < 500:
        failures.append(f"{where}: {status} {text[:300]}")
        return
    tally["refused"] += 1
    problems = response.get_json().get("details", {}).get("problems", [])
    if not problems:
        failures.append(f"{where}: {status} with no problems: {text[:300]}")
    elif all(any(limit in p["reason"] for limit in DOCUMENT_LIMITS) for p in problems):
        tally["document limits"] += 1
    elif not any(_names(p, target) for p in problems):
        failures.append(f"{where}: {status} does not name {target.name}: "
                        f"{[(p['property'], p['reason'][:100]) for p in problems]}")


# --- the tests -----------------------------------------------------------------------------------

def test_every_type_has_a_minimal_object_that_is_accepted_and_served_unchanged(taxii):
    failures, tally = [], {"posts": 0, "accepted": 0, "refused": 0, "document limits": 0}
    for stix_type, make in MINIMAL.items():
        obj = make()
        _post_and_judge(taxii, Target(stix_type, lambda o=obj: o, ("type",), None, 4),
                        "baseline", _text(obj["type"]), tally, failures)
    for ext, (host, body) in EXTENSIONS.items():
        obj = _with_extension(MINIMAL[host], ext, body)()
        _post_and_judge(taxii, Target(f"{host}/{ext}", lambda o=obj: o, ("type",), None, 4),
                        "baseline", _text(obj["type"]), tally, failures)
    assert not failures, "\n".join(failures)
    assert tally["accepted"] == len(MINIMAL) + len(EXTENSIONS)


def test_every_stix_type_and_property_is_covered():
    pairs = {t.label for t in targets()}
    known = {stix_type for stix_type, _ in spec_types()}
    assert len(known) >= 40  # 19 SDOs, 2 SROs, 18 SCOs, marking-definition, bundle, ...
    assert {label.split(".")[0] for label in pairs} >= known - {"bundle"}
    for stix_type, cls in spec_types():
        if stix_type != "bundle":
            assert {f"{stix_type}.{name}" for name in cls._properties} <= pairs
    for ext, (host, _body) in EXTENSIONS.items():
        assert {f"{host}/{ext}.{name}" for name in v21.EXT_MAP[ext]._properties} <= pairs
    assert set(EXTENSIONS) == set(v21.EXT_MAP)


def test_a_bundle_is_not_an_object(taxii):
    obj = {"type": "bundle", "id": _id("bundle"), "objects": [MINIMAL["identity"]()]}
    response = taxii.post(json.dumps({"objects": [obj]}).encode())
    assert response.status_code == 422, response.get_data(as_text=True)
    assert [p["property"] for p in response.get_json()["details"]["problems"]] == ["type"]


@pytest.mark.parametrize("literal", ["true", "1.5", "0", '"text"', '{"a": 1}', "{}", "null"])
def test_a_custom_object_whose_markings_are_no_list_is_refused(taxii, literal):
    """Found by ALLIANCE_FUZZ_ALL=1: stix2 leaves a custom object unchecked and ingest adds
    the note's TLP marking to the list: true and 1.5 were 500s, "text" was served as
    ["t", "e", "x", "t", <TLP marking>]."""
    target = Target(f"{CUSTOM_TYPE}.object_marking_refs", MINIMAL[CUSTOM_TYPE],
                    ("object_marking_refs",), CUSTOM_PROPERTIES["object_marking_refs"], 4)
    response = taxii.post(_envelope(target, literal)[1])
    assert response.status_code == 422, response.get_data(as_text=True)
    assert [p["property"] for p in response.get_json()["details"]["problems"]] == [
        "object_marking_refs"]


def test_every_property_of_every_type_at_and_past_its_limits(app, taxii):
    """No 5xx; a refusal names the property; an accepted object is served unchanged."""
    max_string, max_depth = app.config["STIX_MAX_STRING"], app.config["STIX_MAX_DEPTH"]
    failures: list[str] = []
    tally = {"posts": 0, "accepted": 0, "refused": 0, "document limits": 0}
    used: dict[str, int] = {}
    started = time.monotonic()
    all_targets = targets()
    for n, target in enumerate(all_targets):
        families = _families(target, max_string, max_depth)
        for members in families.values():  # one past a limit, one at a limit, one other
            names = list(members)
            chosen = names if FUZZ_ALL else [names[n % len(names)]]
            for family in chosen:
                used[family] = used.get(family, 0) + 1
                _post_and_judge(taxii, target, family, members[family](), tally, failures)
    elapsed = time.monotonic() - started
    print(f"\n{len(all_targets)} (type, property) pairs, "
          f"{len({t.label.split('.')[0] for t in all_targets})} types and extensions; "
          f"{tally} in {elapsed:.1f} s")
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures)
    # Every family met some property, and enough were accepted to check what is served.
    assert set(used) == {f for group in _families(all_targets[0], 1, 1).values() for f in group}
    assert tally["accepted"] > len(all_targets) // 2
