"""MITRE ATT&CK techniques by name and tactic, from the MISP galaxies package
(pymispgalaxies), which ships the ATT&CK clusters offline: no network at run time.

The cluster (~2.5 MB of JSON) is read on the first lookup in a process and kept for
its life, never when the app is built: a command-line start reads nothing. The data is the
same for every process (it comes with the installed package), so a per-process cache holds
no state another worker needs. The package's data files are read as they ship, without
importing its API: that imports jsonschema for schema checks we do not need (slow to import
where rfc3987-syntax is installed, which compiles a grammar on import)."""
import json
from dataclasses import dataclass
from functools import cache
from importlib.util import find_spec
from pathlib import Path

# The enterprise, mobile and PRE-ATT&CK techniques, current and deprecated, by external id.
CLUSTER = "mitre-attack-pattern"
# ATT&CK for ICS, whose cluster names techniques by their first ids ("T800", now T0800).
ICS_CLUSTER = "mitre-ics-techniques"
# The ATT&CK tactics' names (slug -> "Initial Access"); a slug it lacks (PRE-ATT&CK's,
# mobile's) is shown from the slug itself.
TACTICS_CLUSTER = "tidal-tactic"


@dataclass(frozen=True)
class Technique:
    """An ATT&CK technique id as people read it. `name` is None for an id the data does not
    know (a typo, a technique newer than the installed package)."""

    id: str
    name: str | None
    tactics: tuple[str, ...] = ()

    @property
    def known(self) -> bool:
        return self.name is not None

    @property
    def label(self) -> str:
        """"T1566.001 Spearphishing Attachment (Initial Access)", or
        "T1566.999 (unknown technique)"."""
        if not self.known:
            return f"{self.id} (unknown technique)"
        return f"{self.id} {self.name}" + (f" ({', '.join(self.tactics)})" if self.tactics
                                           else "")


def _slug_label(slug: str) -> str:
    return slug.replace("-", " ").capitalize()


def _cluster(name: str) -> list[dict]:
    """The values of one of the package's clusters, as shipped."""
    spec = find_spec("pymispgalaxies")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("pymispgalaxies is not installed (requirements.txt).")
    path = (Path(next(iter(spec.submodule_search_locations))) / "data" / "misp-galaxy"
            / "clusters" / f"{name}.json")
    with path.open(encoding="utf-8") as f:
        return json.load(f).get("values") or []


@cache
def _techniques() -> dict[str, Technique]:
    """Every technique of the cluster by external id (T1566.001), read once per process."""
    tactic_names = {}
    for value in _cluster(TACTICS_CLUSTER):
        tactic_names[str(value["value"]).lower().replace(" ", "-")] = str(value["value"])
    found = {}
    for value in _cluster(CLUSTER):
        meta = value.get("meta") or {}
        external_id = meta.get("external_id")
        if not isinstance(external_id, str) or not isinstance(value.get("value"), str):
            continue
        # "Spearphishing Attachment - T1566.001": the name without its id.
        name = value["value"].removesuffix(f" - {external_id}").strip()
        slugs = []  # "attack-Windows:initial-access" -> initial-access, once, in order
        for chain in meta.get("kill_chain") or ():
            slug = str(chain).rpartition(":")[2]
            if slug and slug not in slugs:
                slugs.append(slug)
        found[external_id.upper()] = Technique(
            external_id.upper(), name,
            tuple(tactic_names.get(slug) or _slug_label(slug) for slug in slugs))
    for value in _cluster(ICS_CLUSTER):
        meta = value.get("meta") or {}
        for old_id in meta.get("Technique ID") or ():
            digits = str(old_id).upper().removeprefix("T")
            if digits.isdigit() and isinstance(value.get("value"), str):
                key = f"T{int(digits):04d}"
                found.setdefault(key, Technique(key, value["value"], tuple(
                    str(t) for t in meta.get("Tactic") or ())))
    return found


def technique(technique_id: str) -> Technique:
    """The technique with this ATT&CK id (T1566, T1566.001; any case), known or not."""
    key = (technique_id or "").strip().upper()
    return _techniques().get(key) or Technique(key, None)


def techniques(ids) -> list[Technique]:
    """The techniques of these ids, in the order given, each once."""
    return [technique(i) for i in dict.fromkeys((i or "").strip().upper() for i in ids) if i]


def technique_ids(obj: dict) -> list[str]:
    """The ATT&CK ids an attack-pattern object names in its external references."""
    if obj.get("type") != "attack-pattern":
        return []
    return [str(r["external_id"]) for r in obj.get("external_references") or ()
            if isinstance(r, dict) and r.get("source_name") == "mitre-attack"
            and isinstance(r.get("external_id"), str) and r["external_id"][:1] in "Tt"]
