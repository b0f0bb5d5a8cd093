"""Warning lists: observable values on well-known benign or reserved lists (private and
special-use address space, public DNS resolvers, the most visited sites, hashes of an empty
file), from the MISP warning lists package (pymispwarninglists), offline.

A flagged value is shown to the poster before sharing (compose and upload ask to confirm),
marked on the note page, stored flagged (Observable.warning) and so never joins a
correlation or triggers a watch alert: a match on 10.0.0.1 says nothing about two notes.

Which lists, and how they match, is the platform's choice (LISTS), not every list the
package ships: those below say "this value is not an indicator" whoever posts it. Left out
on purpose:
- cloud and CDN ranges (AWS, Azure, GCP, Cloudflare, ...), VPN and scanner ranges, dynamic
  DNS, URL shorteners: attackers host there; two notes naming the same EC2 address is the
  correlation the platform exists for, so those must correlate.
- the documentation blocks of RFC 5737 (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24)
  that the RFC 5735 list includes, and RFC 3849's 2001:db8::/32: reserved for examples,
  which is what exercises, training and the demo share here; they correlate like any
  address (DOCUMENTATION_RANGES).
- domain lists match the value itself (and its www. name), never every name under it as
  MISP's "hostname" lists do: github.io is a top site, evil.github.io is an indicator.

Speed: the lists are read once per process on first use, into one dict per prefix length
for address space and a dict for names and hashes; a check is a few dict lookups, however
many lists there are. The package's own API on the same lists
(WarningLists(slow_search=True).search, which matches CIDR ranges) walks every entry of a
"hostname" list and every list for each value, far too slow for a bundle's observables. Its
data files are read here without importing its API, which imports jsonschema (slow to
import where rfc3987-syntax is installed, which compiles a grammar)."""
import ipaddress
import json
from dataclasses import dataclass
from functools import cache
from importlib.util import find_spec
from pathlib import Path
from socket import AF_INET, inet_pton
from urllib.parse import urlsplit

from sqlalchemy import select

from alliance.extensions import db
from alliance.notes.models import Observable
from alliance.stix.observables import extract, network_of


@dataclass(frozen=True)
class WarningList:
    id: str       # the package's list folder, stored in Observable.warning
    label: str    # what the value is in, for a sentence: "10.0.0.1 is in {label}"
    kinds: frozenset  # the observable kinds (alliance.stix.observables.detect) it applies to


_IP = frozenset({"ipv4", "ipv6", "cidr4", "cidr6", "url"})  # url: an address as its host
_NAME = frozenset({"domain"})
# In the order a value's first hit is named: the most specific reason first (10.0.0.1 is
# "RFC 1918 private space" before it is "RFC 5735 special-use space").
LISTS = (
    WarningList("rfc1918", "RFC 1918 private space", _IP),
    WarningList("rfc6598", "RFC 6598 shared (carrier-grade NAT) space", _IP),
    WarningList("ipv6-linklocal", "IPv6 link-local space", _IP),
    WarningList("multicast", "RFC 5771 multicast space", _IP),
    WarningList("rfc5735", "RFC 5735 special-use space (loopback, link-local, reserved)", _IP),
    WarningList("public-dns-v4", "the list of public DNS resolvers", _IP),
    WarningList("public-dns-v6", "the list of public DNS resolvers", _IP),
    WarningList("rfc6761", "RFC 6761 special-use domain names", _NAME | {"url"}),
    WarningList("public-dns-hostname", "the list of public DNS resolvers", _NAME),
    WarningList("tranco10k", "the Tranco list of the 10,000 most visited sites", _NAME),
    WarningList("empty-hashes", "the list of hashes of an empty file", frozenset({"md5", "sha1",
                                                                          "sha256"})),
)
BY_ID = {w.id: w for w in LISTS}
DOCUMENTATION_RANGES = tuple(ipaddress.ip_network(n) for n in (
    "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"))


@dataclass(frozen=True)
class Flag:
    """A value on a warning list."""

    kind: str
    value: str
    list: WarningList

    @property
    def message(self) -> str:
        return f"{self.value} is in {self.list.label}"


def _lists_dir() -> Path:
    spec = find_spec("pymispwarninglists")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("pymispwarninglists is not installed (requirements.txt).")
    return (Path(next(iter(spec.submodule_search_locations))) / "data" / "misp-warninglists"
            / "lists")


def read_list(list_id: str) -> dict:
    """One list as the package ships it (name, type, list, ...)."""
    with (_lists_dir() / list_id / "list.json").open(encoding="utf-8") as f:
        return json.load(f)


@dataclass
class _Lookup:
    # version -> [(prefix length, {network address as an int: list ids})]
    networks: dict
    # a name or hash, lower-case -> list ids
    strings: dict


def _network(entry: str):
    """(version, prefix length, network address as an int) of a list's entry, or None."""
    try:
        net = ipaddress.ip_network(entry.strip(), strict=False)
    except ValueError:
        return None
    return net.version, net.prefixlen, int(net.network_address)


_DOCUMENTATION = tuple((doc.version, doc.prefixlen, doc.max_prefixlen - doc.prefixlen,
                        int(doc.network_address) >> (doc.max_prefixlen - doc.prefixlen))
                       for doc in DOCUMENTATION_RANGES)


def _documentation(version: int, prefix: int, address: int) -> bool:
    """Inside one of DOCUMENTATION_RANGES (kept correlatable, see the module's docstring)."""
    for doc_version, doc_prefix, shift, base in _DOCUMENTATION:
        if version == doc_version and prefix >= doc_prefix and address >> shift == base:
            return True
    return False


@cache
def _lookup() -> _Lookup:
    """The chosen lists, read once per process (the same package data in every worker)."""
    tables: dict[tuple[int, int], dict[int, list[str]]] = {}
    strings: dict[str, list[str]] = {}
    for wl in LISTS:
        data = read_list(wl.id)
        if data["type"] == "cidr":
            for entry in data["list"]:
                # Most entries (62,000 resolvers) are plain IPv4 addresses: an int without
                # building a network object for each.
                found = None
                if "/" not in entry and ":" not in entry:
                    try:
                        found = 4, 32, int.from_bytes(inet_pton(AF_INET, entry.strip()))
                    except OSError:
                        found = None
                found = found or _network(entry)
                if found is None or _documentation(*found):
                    continue
                version, prefix, address = found
                ids = tables.setdefault((version, prefix), {}).setdefault(address, [])
                if wl.id not in ids:
                    ids.append(wl.id)
        else:  # string, hostname: the value itself (see the module's docstring)
            for entry in data["list"]:
                key = entry.strip().lower().strip(".")
                ids = strings.setdefault(key, [])
                if wl.id not in ids:
                    ids.append(wl.id)
    networks: dict[int, list] = {4: [], 6: []}
    for (version, prefix), table in sorted(tables.items()):
        networks[version].append((prefix, table))
    return _Lookup(networks=networks, strings=strings)


_ORDER = {w.id: n for n, w in enumerate(LISTS)}


def _network_hits(lookup: _Lookup, version: int, address: int, prefixlen: int) -> set[str]:
    """The lists holding a network (its version, first address and prefix length; an
    address is a /32 or /128) inside one of theirs."""
    found: set[str] = set()
    width = 32 if version == 4 else 128
    for prefix, table in lookup.networks[version]:
        if prefix > prefixlen:
            break
        ids = table.get(address >> (width - prefix) << (width - prefix))
        if ids:
            found.update(ids)
    return found


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def hits(kind: str, value: str) -> list[WarningList]:
    """The warning lists a normalised observable (observables.detect's kind and value) is
    on, most specific first; [] for none."""
    lookup = _lookup()
    found: set[str] = set()
    net: tuple[int, int, int] | None = None
    if kind in ("ipv4", "ipv6", "cidr4", "cidr6"):
        net = network_of(kind, value)
    elif kind == "url":
        host = _host(value)
        try:
            parsed = ipaddress.ip_network(host.strip("[]"))
            net = parsed.version, int(parsed.network_address), parsed.prefixlen
        except ValueError:
            found.update(lookup.strings.get(host, ()))
    else:
        found.update(lookup.strings.get(value.lower(), ()))
        if kind == "domain" and value.startswith("www."):
            found.update(lookup.strings.get(value[4:].lower(), ()))
    if net is not None:
        found.update(_network_hits(lookup, *net))
    return sorted((BY_ID[i] for i in found if kind in BY_ID[i].kinds),
                  key=lambda w: _ORDER[w.id])


def check(kind: str, value: str) -> Flag | None:
    """The first warning list this observable is on, or None."""
    found = hits(kind, value)
    return Flag(kind, value, found[0]) if found else None


def warning_of(kind: str, value: str) -> str | None:
    """What Observable.warning stores for a value: its first list's id, or None."""
    flag = check(kind, value)
    return flag.list.id if flag else None


def flagged_in(objects: list[dict], seen: set | None = None) -> list[Flag]:
    """The flagged observables these STIX objects carry (observables.extract), each once,
    in the order found. `seen`: the values looked up before (of earlier parts of a bundle),
    not flagged again; those of these objects are added to it."""
    seen = set() if seen is None else seen
    flags = []
    for obj in objects:
        for kind, value in extract(obj):
            if (kind, value) in seen:
                continue
            seen.add((kind, value))
            flag = check(kind, value)
            if flag is not None:
                flags.append(flag)
    return flags


def label_of(list_id: str | None) -> str | None:
    """The label of a stored list id (Observable.warning); the id itself for a list no
    longer chosen."""
    if not list_id:
        return None
    return BY_ID[list_id].label if list_id in BY_ID else list_id


def flags_of(note, objects) -> dict[str, list[Flag]]:
    """For the note page: STIX id -> the flagged observables that object carries, as stored
    for the note (Observable.warning), so the page marks exactly what correlation leaves
    out. `note` was read through the policy by the caller; its objects are note_objects."""
    stored = {(kind, value): warning for kind, value, warning in db.session.execute(
        select(Observable.kind, Observable.value, Observable.warning).where(
            Observable.note_id == note.id, Observable.warning.is_not(None)))}
    if not stored:
        return {}
    found: dict[str, list[Flag]] = {}
    for obj in objects:
        for kind, value in extract(obj.body):
            warning = stored.get((kind, value))
            if warning is None:
                continue
            wl = BY_ID.get(warning) or WarningList(warning, warning, frozenset())
            flags = found.setdefault(obj.stix_id, [])
            if all(f.value != value for f in flags):
                flags.append(Flag(kind, value, wl))
    return found
