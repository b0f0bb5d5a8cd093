"""Reference vocabularies offered in forms: countries (ISO 3166-1), STIX 2.1 industry sectors,
and the platform's policy tags (alliance/data/policy_tags.json)."""
import json
from functools import cache
from pathlib import Path

import pycountry


@cache
def country_choices() -> list[tuple[str, str]]:
    return sorted(((c.alpha_2, c.name) for c in pycountry.countries), key=lambda c: c[1])


def country_name(code: str | None) -> str:
    country = pycountry.countries.get(alpha_2=code) if code else None
    return country.name if country else (code or "")


@cache
def sector_choices() -> list[tuple[str, str]]:
    # stix2 is imported here, not at the top: it is heavy to import, and forms ask for this
    # list only when they are built.
    from stix2.v21 import vocab

    return [(s, s.replace("-", " ").capitalize()) for s in vocab.INDUSTRY_SECTOR]


@cache
def policy_tag_choices() -> list[tuple[str, str]]:
    data = json.loads((Path(__file__).parent.parent / "data" / "policy_tags.json").read_text())
    return [(t["id"], t["label"]) for t in data["tags"]]


def policy_tag_label(tag_id: str) -> str:
    return dict(policy_tag_choices()).get(tag_id, tag_id)


@cache
def stix_type_choices() -> list[tuple[str, str]]:
    """The STIX 2.1 object types a note can hold (domain, relationship and cyber-observable
    objects; not the bundle, which holds them), by name."""
    from stix2.v21 import OBJ_MAP, OBJ_MAP_OBSERVABLE

    types = (set(OBJ_MAP) | set(OBJ_MAP_OBSERVABLE)) - {"bundle"}
    return [(t, t) for t in sorted(types)]
