"""Observable values: recognising what an analyst pasted, normalising it for correlation, and
turning it into a STIX pattern. One place for all three, so that a value pasted in a form,
found in an indicator's pattern or in an SCO, normalises the same way."""
import ipaddress
import re
from urllib.parse import urlsplit, urlunsplit

HASH_KINDS = {32: "md5", 40: "sha1", 64: "sha256"}
HASH_PROPERTY = {"md5": "MD5", "sha1": "'SHA-1'", "sha256": "'SHA-256'"}
CVE_RE = re.compile(r"^CVE-\d{4}-\d{4,}$", re.IGNORECASE)
HEX_RE = re.compile(r"^[0-9a-fA-F]+$")
DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9_](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")
ATTACK_RE = re.compile(r"^T\d{4}(?:\.\d{3})?$")
# A dotted-quad IPv4 address in its canonical form (no leading zeros): ipaddress gives it back
# unchanged, and no earlier rule of detect() takes it.
_CANONICAL_IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
                             r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])")
# Values so common that a match says nothing (public resolvers, local addresses, big sites).
COMMON_VALUES = frozenset({
    "8.8.8.8", "8.8.4.4", "1.1.1.1", "1.0.0.1", "9.9.9.9", "208.67.222.222", "127.0.0.1",
    "0.0.0.0", "::1", "localhost", "google.com", "www.google.com", "microsoft.com",  # noqa: S104
    "windowsupdate.com", "example.com", "d41d8cd98f00b204e9800998ecf8427e",
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"})


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# The longest value observables.value (String(2048), alliance.notes.models.Observable)
# holds, in characters and in UTF-8 bytes (PostgreSQL's b-tree index on it takes entries
# of about 2,700 bytes at most): a longer one, as posted or once normalised (a URL gains a
# "/" path, a host can lower-case longer), is no observable. The object holding it is
# stored and served as posted; it is only not indexed for search and correlation.
MAX_VALUE = 2048


def _fits(value: str) -> bool:
    """Within MAX_VALUE characters and UTF-8 bytes (a character is at most 4 bytes)."""
    return len(value) <= MAX_VALUE // 4 or (
        len(value) <= MAX_VALUE and len(value.encode("utf-8", "surrogatepass")) <= MAX_VALUE)


_NETWORK_KINDS = frozenset({"ipv4", "ipv6", "cidr4", "cidr6"})


def network_of(kind: str, value: str) -> tuple[int, int, int] | None:
    """(IP version, first address as an integer, prefix length) of an address or network as
    detect() gives it (kinds ipv4, ipv6, cidr4, cidr6; an address is a /32 or /128); None for
    any other kind or value. An IPv4 address, the commonest value of a bulk import, is read
    without ipaddress (ten times slower)."""
    if kind == "ipv4" and _CANONICAL_IPV4.fullmatch(value):
        a, b, c, d = value.split(".")
        return 4, (int(a) << 24) | (int(b) << 16) | (int(c) << 8) | int(d), 32
    if kind not in _NETWORK_KINDS:
        return None
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None
    return net.version, int(net.network_address), net.prefixlen


def detect(raw: str) -> tuple[str, str] | None:
    """(kind, normalised value) for one pasted line, or None if it is not an observable.
    Kinds: ipv4, ipv6, cidr4, cidr6, domain, url, email, md5, sha1, sha256, cve."""
    if _CANONICAL_IPV4.fullmatch(raw):  # the commonest value, already in its final form
        return "ipv4", raw
    value = raw.strip().strip(",;")
    if not value or len(value) > MAX_VALUE or _CONTROL.search(value):
        return None  # a control character (NUL: PostgreSQL refuses it) is in no observable
    value = value.replace("[.]", ".").replace("(.)", ".").replace("hxxp", "http")
    if _CANONICAL_IPV4.fullmatch(value):
        return "ipv4", value
    if CVE_RE.match(value):
        return "cve", value.upper()
    if HEX_RE.match(value) and len(value) in HASH_KINDS:
        return HASH_KINDS[len(value)], value.lower()
    try:
        ip = ipaddress.ip_address(value)
        return ("ipv4" if ip.version == 4 else "ipv6"), ip.compressed
    except ValueError:
        pass
    if "/" in value and "://" not in value:
        try:
            net = ipaddress.ip_network(value, strict=False)
            return ("cidr4" if net.version == 4 else "cidr6"), net.compressed
        except ValueError:
            pass
    if "://" in value:
        url = normalise_url(value)
        return ("url", url) if url and _fits(url) else None
    if EMAIL_RE.match(value):
        local, _, domain = value.rpartition("@")
        domain = domain.lower().rstrip(".")
        email = f"{local}@{domain}"
        return ("email", email) if DOMAIN_RE.match(domain) and _fits(email) else None
    domain = value.lower().rstrip(".")
    if DOMAIN_RE.match(domain):
        return "domain", domain
    return None


def normalise_url(value: str) -> str | None:
    try:
        parts = urlsplit(value.strip())
        port = parts.port  # raises for a port that is not a number from 0 to 65535
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https", "ftp") or not parts.hostname:
        return None
    host = parts.hostname.lower().rstrip(".")
    port = port if port not in (None, 80 if parts.scheme == "http" else 443) else None
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", parts.query, ""))


def pattern_for(kind: str, value: str) -> str | None:
    """A STIX pattern matching the observable, or None for kinds that are not patterns (CVE)."""
    quoted = value.replace("\\", "\\\\").replace("'", "\\'")
    if kind in ("ipv4", "cidr4"):
        return f"[ipv4-addr:value = '{quoted}']"
    if kind in ("ipv6", "cidr6"):
        return f"[ipv6-addr:value = '{quoted}']"
    if kind == "domain":
        return f"[domain-name:value = '{quoted}']"
    if kind == "url":
        return f"[url:value = '{quoted}']"
    if kind == "email":
        return f"[email-addr:value = '{quoted}']"
    if kind in HASH_PROPERTY:
        return f"[file:hashes.{HASH_PROPERTY[kind]} = '{quoted}']"
    return None


_SCO_KINDS = {"ipv4-addr": "ipv4", "ipv6-addr": "ipv6", "domain-name": "domain", "url": "url",
              "email-addr": "email"}
_PATTERN_VALUE = re.compile(
    r"(ipv4-addr|ipv6-addr|domain-name|url|email-addr):value\s*=\s*'((?:[^'\\]++|\\.)*+)'"
    r"|file:hashes\.(?:'?)(MD5|SHA-1|SHA-256|md5|sha1|sha256)(?:'?)\s*=\s*'([0-9a-fA-F]+)'")


def extract(obj: dict) -> list[tuple[str, str]]:
    """The observables an object carries: SCO values and hashes, values compared for equality
    in an indicator's STIX pattern, CVE ids of vulnerabilities."""
    stix_type = obj.get("type")
    if stix_type in _SCO_KINDS and isinstance(obj.get("value"), str):
        hit = detect(obj["value"])
        return [hit] if hit else []
    if stix_type == "file" and isinstance(obj.get("hashes"), dict):
        return _file_hashes(obj["hashes"])
    if stix_type == "indicator" and obj.get("pattern_type", "stix") == "stix":
        return _pattern_values(str(obj.get("pattern", "")))
    if stix_type == "vulnerability":
        return _cve_ids(obj.get("external_references") or [])
    return []


def _file_hashes(hashes: dict) -> list[tuple[str, str]]:
    found = []
    for value in hashes.values():
        hit = detect(value) if isinstance(value, str) else None
        if hit and hit[0] in HASH_PROPERTY:
            found.append(hit)
    return found


def _pattern_values(pattern: str) -> list[tuple[str, str]]:
    """The values an indicator's STIX pattern compares SCO values and file hashes to."""
    found = []
    for match in _PATTERN_VALUE.finditer(pattern):
        raw = match.group(2) if match.group(2) is not None else match.group(4)
        if "\\" in raw:  # the pattern's string escapes
            raw = raw.replace("\\'", "'").replace("\\\\", "\\")
        hit = detect(raw)
        if hit:
            found.append(hit)
    return found


def _cve_ids(external_references: list) -> list[tuple[str, str]]:
    found = []
    for ref in external_references:
        if isinstance(ref, dict) and ref.get("source_name") == "cve":
            hit = detect(str(ref.get("external_id", "")))
            if hit and hit[0] == "cve":
                found.append(hit)
    return found
