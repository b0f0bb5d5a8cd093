"""Who speaks for whom: the authorship rules every posting path applies (post_note).

Authorship is a fact the platform establishes, never a claim it repeats:
- An object whose `created_by_ref` names the identity of an organisation on the platform is
  accepted only from that organisation. An object that can name a creator and names none gets
  one (versions.check_versions): the creator of the versions of that id the poster can see,
  else the poster's identity.
- Organisations' identity objects are the platform's: a client cannot post a version of
  another organisation's identity, a version of its own keeps the name the platform vetted,
  and no other identity may carry a platform organisation's name.
- The official TLP 2.0 marking definitions and the TLP 2.0 extension definition are the
  platform's: a posted object under one of their ids must equal the published object. A TLP 1.0
  marking definition under its well-known id must say the level that id stands for.
- Who may add versions of an object id is decided in versions.check_versions: only the
  organisation that posted its first version on the platform, except that a version of a
  third-party object (its creator no platform organisation) from another organisation is
  stored as that organisation's own copy and never replaces what others posted.
"""
from dataclasses import dataclass

import orjson
from sqlalchemy import func, select

from alliance.extensions import db
from alliance.orgs.models import Organisation
from alliance.stix.markings import (
    TLP1_IDS,
    level_of,
    marking_id,
    tlp2_extension_definition,
    tlp2_objects,
)
from alliance.stix.validation import UNVERSIONED, Problem, is_sco

_TLP1_WORDS = {"CLEAR": {"white", "clear"}, "GREEN": {"green"}, "AMBER": {"amber"},
               "RED": {"red"}}


@dataclass(frozen=True)
class PlatformIdentity:
    organisation_id: int
    stix_id: str
    name: str


def _official() -> dict[str, dict]:
    """id -> the published object, for every definition the platform ships."""
    shipped = {obj["id"]: obj for obj in tlp2_objects().values()}
    extension = tlp2_extension_definition()
    shipped[extension["id"]] = extension
    return shipped


def _canonical(obj: dict) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def _tlp1_problem(obj: dict) -> Problem | None:
    """A TLP 1.0 marking definition must say the level its well-known id stands for (its
    spellings vary between producers: {"tlp": "white"}, {"TLP": "TLP:WHITE"})."""
    level = TLP1_IDS[obj["id"]]
    definition = obj.get("definition")
    said = []
    if isinstance(definition, dict):
        said = [str(v).lower().removeprefix("tlp:") for k, v in definition.items()
                if str(k).lower() == "tlp"]
    name = obj.get("name")
    if isinstance(name, str):
        said.append(name.lower().removeprefix("tlp:"))
    if said and all(word in _TLP1_WORDS[level] for word in said) and str(
            obj.get("definition_type", "")).lower() == "tlp":
        return None
    return Problem(obj["id"], "definition", f"this id is TLP:{level} (TLP 1.0); a marking "
                                            "definition under it must say so")


def _creatable(obj: dict) -> bool:
    """Objects that carry a creator: versioned ones (SDOs, SROs, custom objects, language
    content, extension definitions). Not SCOs, which have no created_by_ref, nor marking
    definitions, which name one only when they have one."""
    return "created" in obj and obj.get("type") not in UNVERSIONED and not is_sco(obj)


def platform_identities(objects: list[dict], poster_stix_id: str) -> tuple[dict, dict]:
    """The platform organisations these objects touch: by identity id (named as a creator
    or posted as an identity) and by lower-cased name (names posted identities carry)."""
    ids = {poster_stix_id}
    names = set()
    for obj in objects:
        creator = obj.get("created_by_ref")
        if isinstance(creator, str):
            ids.add(creator)
        if obj.get("type") == "identity":
            ids.add(obj["id"])
            if isinstance(obj.get("name"), str):
                names.add(obj["name"].strip().lower())
    columns = (Organisation.id, Organisation.stix_id, Organisation.name)
    by_id = {row.stix_id: PlatformIdentity(row.id, row.stix_id, row.name)
             for row in db.session.execute(select(*columns).where(
                 Organisation.stix_id.in_(sorted(ids))))}
    by_name = {}
    if names:
        by_name = {row.name.strip().lower(): PlatformIdentity(row.id, row.stix_id, row.name)
                   for row in db.session.execute(select(*columns).where(
                       func.lower(Organisation.name).in_(sorted(names))))}
    return by_id, by_name


def check_authorship(poster: Organisation, objects: list[dict]) -> list[Problem]:
    """Every object that claims another organisation's voice, redefines a shipped marking
    or impersonates an organisation by name, as problems naming the property."""
    by_id, by_name = platform_identities(objects, poster.stix_id)
    official = _official()
    problems = []
    for obj in objects:
        oid, creator = obj["id"], obj.get("created_by_ref")
        if isinstance(creator, str) and creator in by_id and creator != poster.stix_id:
            problems.append(Problem(oid, "created_by_ref", (
                f"names {by_id[creator].name}, another organisation on this platform: only it "
                "can post as itself (leave created_by_ref out and the platform names you)")))
        if oid in official and _canonical(obj) != _canonical(official[oid]):
            problems.append(Problem(oid, "id", (
                f"this is the id of the official {official[oid].get('name', oid)} definition: "
                "an object under it must be the published object, unchanged")))
        elif oid in TLP1_IDS and (problem := _tlp1_problem(obj)) is not None:
            problems.append(problem)
        if obj.get("type") == "identity":
            problems.extend(_identity_problems(obj, poster, by_id, by_name))
    return problems


def _identity_problems(obj: dict, poster: Organisation, by_id: dict,
                       by_name: dict) -> list[Problem]:
    oid, name = obj["id"], obj.get("name")
    if oid in by_id and oid != poster.stix_id:
        return [Problem(oid, "id", f"this is the identity of {by_id[oid].name}: only the "
                                   "platform publishes an organisation's identity")]
    if oid == poster.stix_id:
        if name != poster.name:
            return [Problem(oid, "name", f"your organisation's identity keeps the name the "
                                         f"platform vetted: {poster.name!r}")]
        return []
    owner = by_name.get(name.strip().lower()) if isinstance(name, str) else None
    if owner is not None:
        return [Problem(oid, "name", f"{owner.name} is the name of an organisation on this "
                                     f"platform; its identity is {owner.stix_id}")]
    return []


def needs_creator(obj: dict) -> bool:
    """An object that carries a creator and names none (identity objects describe
    themselves and get none)."""
    return "created_by_ref" not in obj and obj["type"] != "identity" and _creatable(obj)


def platform_creators(creators: set[str]) -> set[str]:
    """Of these identity ids, those of platform organisations."""
    if not creators:
        return set()
    return set(db.session.scalars(select(Organisation.stix_id).where(
        Organisation.stix_id.in_(sorted(creators)))))


def with_note_marking(obj: dict, tlp: str, poster_stix_id: str) -> dict:
    """The note's TLP travels with its objects: an object the poster created (or that names
    no creator) and that carries no TLP marking of its own gets the note's, after any
    markings it has. Marking definitions carry none; an object created by another identity
    is served as posted; a TLP marking the poster chose is kept (a looser one needed their
    confirmation)."""
    if obj["type"] == "marking-definition" or obj.get("created_by_ref", poster_stix_id) != \
            poster_stix_id:
        return obj
    refs = obj.get("object_marking_refs")
    if type(refs) is list and any(type(r) is str and level_of(r) for r in refs):
        return obj
    return {**obj, "object_marking_refs": [*(refs or ()), marking_id(tlp)]}


def as_sent_with(sent: dict, stored: dict) -> bool:
    """Whether a stored body is what was sent with only the platform's additions (a
    creator, a TLP marking after the others): the same version, posted again, perhaps under
    another TLP."""
    candidate = dict(sent)
    if "created_by_ref" not in sent and "created_by_ref" in stored:
        candidate["created_by_ref"] = stored["created_by_ref"]
    refs, kept = sent.get("object_marking_refs") or [], stored.get("object_marking_refs")
    if type(kept) is list and kept[:-1] == refs and type(kept[-1]) is str and level_of(
            kept[-1]) and not any(type(r) is str and level_of(r) for r in refs):
        candidate["object_marking_refs"] = kept
    return candidate == stored
