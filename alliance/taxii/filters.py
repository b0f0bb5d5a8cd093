"""The URL parameters of a TAXII 2.1 read (section 3.4): added_after and the match[...]
filters, each checked against its grammar; a bad one is a 400 naming it. And the RFC 3339
timestamps TAXII speaks, read (parse_timestamp) and written (rfc3339)."""
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from alliance.taxii.services import TaxiiError


@dataclass
class Filters:
    added_after: datetime | None = None
    ids: tuple = ()
    types: tuple = ()
    versions: tuple = ("last",)
    spec_versions: tuple = ()

    def fingerprint(self) -> str:
        text = repr((self.added_after, self.ids, self.types, self.versions, self.spec_versions))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# RFC 3339 section 5.6 (date-time): fromisoformat alone also takes "2024-05-01 12:00",
# "20240501T120000" and digits of other scripts.
RFC3339_RE = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})",
                        re.ASCII)


def parse_timestamp(value: str, what: str) -> datetime:
    value = value.strip()
    try:
        if not RFC3339_RE.fullmatch(value):
            raise ValueError(value)
        parsed = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError as exc:
        raise TaxiiError(400, f"Bad {what}", f"{value[:60]!r} is not an RFC 3339 timestamp "
                                             "such as 2024-05-01T12:00:00.000Z.") from exc
    if parsed.tzinfo is None:
        raise TaxiiError(400, f"Bad {what}", "The timestamp needs a time zone (Z).")
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:  # 0001-01-01T00:00:00+01:00 is before the first UTC instant
        raise TaxiiError(400, f"Bad {what}", f"{value[:60]!r} is out of range.") from exc


def rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


STIX_ID_RE = re.compile(r"[a-z0-9][a-z0-9-]{1,248}[a-z0-9]--[0-9a-f]{8}-[0-9a-f]{4}-"
                        r"[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII)
STIX_TYPE_RE = re.compile(r"[a-z0-9][a-z0-9-]{1,248}[a-z0-9]", re.ASCII)  # STIX 2.1 3.1
SPEC_VERSION_RE = re.compile(r"\d+\.\d+", re.ASCII)
# The URL parameters of TAXII 2.1 section 3.4; each may be given once.
PARAMETERS = ("added_after", "limit", "next", "match[id]", "match[type]", "match[version]",
              "match[spec_version]")


def check_parameters(args) -> None:
    """TAXII 2.1 3.4: a parameter given twice is a bad request (which would count?). `args`:
    the request's MultiDict (a plain dict, from the service's own callers, has each once)."""
    if not hasattr(args, "getlist"):
        return
    for name in PARAMETERS:
        if len(args.getlist(name)) > 1:
            raise TaxiiError(400, f"Bad {name}", f"{name} may be given once; give several "
                                                 "values comma-separated.")


def parse_filters(args, with_version: bool = True) -> Filters:
    check_parameters(args)

    def listed(name, grammar=None, what=""):
        raw = args.get(name)
        if raw is None:
            return ()
        values = tuple(v.strip() for v in raw.split(",") if v.strip())
        if not values or len(values) > 100:
            raise TaxiiError(400, f"Bad {name}", "Give 1 to 100 comma-separated values.")
        for value in values:
            if grammar is not None and not grammar.fullmatch(value):
                raise TaxiiError(400, f"Bad {name}", f"{value[:60]!r} is not {what}.")
        return values

    filters = Filters(
        ids=listed("match[id]", STIX_ID_RE, "a STIX identifier (type--UUID)"),
        types=listed("match[type]", STIX_TYPE_RE, "a STIX type name"),
        spec_versions=listed("match[spec_version]", SPEC_VERSION_RE, "a STIX version (2.1)"))
    if "added_after" in args:
        filters.added_after = parse_timestamp(args["added_after"], "added_after")
    if with_version and "match[version]" in args:
        versions = listed("match[version]")
        for v in versions:
            if v not in ("first", "last", "all"):
                parse_timestamp(v, "match[version]")
        if "all" in versions and len(versions) > 1:
            raise TaxiiError(400, "Bad match[version]", "all takes every version: give it "
                                                        "alone.")
        filters.versions = versions
    return filters
