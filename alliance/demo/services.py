"""Demo data for `make run`: documented organisations, users and alliances in several
membership states. Idempotent: running it again changes nothing and reports the same data.
The passwords are public (README); seed_demo refuses to run in production."""
import uuid
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import select

from alliance.alliances import services as alliances
from alliance.alliances import transitions
from alliance.alliances.models import Alliance
from alliance.auth.models import User
from alliance.auth.services import find_user_by_email, hash_password
from alliance.core.models import utcnow
from alliance.core.unit import unit_of_work
from alliance.extensions import db
from alliance.orgs.models import Organisation
from alliance.orgs.services import build_identity, create_admin

ADMIN = {"email": "admin@demo.alliance", "password": "demo-Admin-harbour-lantern-42",
         "name": "Pat Admin"}
# Specs: plain dicts of the fields each builder reads.
ORGANISATIONS: list[dict[str, Any]] = [
    {"name": "Nordic CERT", "slug": "nordic-cert", "country": "NO", "sectors": ["government"],
     "website": "https://cert.nordic.example", "domain": "cert.nordic.example",
     "users": [("Ingrid Larsen", "ingrid@nordic-cert.example", "org_admin"),
               ("Ola Berg", "ola@nordic-cert.example", "member")]},
    {"name": "Baltic Energy ISAC", "slug": "baltic-energy-isac", "country": "LT",
     "sectors": ["energy", "utilities"], "website": "https://isac.baltic-energy.example",
     "domain": "baltic-energy.example",
     "users": [("Rasa Petrauskiene", "rasa@baltic-energy.example", "org_admin")]},
    {"name": "Sunrise Telecom", "slug": "sunrise-telecom", "country": "IN",
     "sectors": ["telecommunications"], "website": "https://sunrise-telecom.example",
     "domain": "sunrise-telecom.example",
     "users": [("Anil Mehta", "anil@sunrise-telecom.example", "org_admin")]},
    {"name": "Geneva Cyber Policy Institute", "slug": "geneva-cyber-policy", "country": "CH",
     "sectors": ["non-profit"], "website": "https://policy.geneva.example",
     "domain": "policy.geneva.example",
     "users": [("Claire Dubois", "claire@policy.geneva.example", "org_admin")]},
    # A second request for the energy alliance's coordinator to decide, and an organisation
    # in no alliance yet, left for the coordinator to invite.
    {"name": "Danube Hydro Power", "slug": "danube-hydro-power", "country": "RO",
     "sectors": ["energy", "utilities"], "website": "https://danube-hydro.example",
     "domain": "danube-hydro.example",
     "users": [("Mihai Popescu", "mihai@danube-hydro.example", "org_admin")]},
    {"name": "Iberian Grid Operator", "slug": "iberian-grid", "country": "ES",
     "sectors": ["energy"], "website": "https://iberian-grid.example",
     "domain": "iberian-grid.example",
     "users": [("Lucia Martin", "lucia@iberian-grid.example", "org_admin")]},
    {"name": "Pending Analytics Ltd", "slug": "pending-analytics", "country": "GB",
     "sectors": ["technology"], "website": "https://pending-analytics.example",
     "domain": "pending-analytics.example", "status": "pending",
     "users": [("Sam Pending", "sam@pending-analytics.example", "org_admin")]},
]
USER_PASSWORD = "demo-Member-compass-orchard-7"  # noqa: S105 (public demo password)
ALLIANCES: list[dict[str, Any]] = [
    {"slug": "european-energy-sharing", "name": "European Energy Sharing Alliance",
     "founder": "ingrid@nordic-cert.example", "join_policy": "approval",
     "description": "Operators, CERTs and regulators of the European energy sector share "
                    "incidents and indicators.",
     "charter": "Members share in good faith, honour TLP 2.0 markings, and report incidents "
                "affecting the energy sector within 72 hours.",
     "policy_tags": ["nis2", "gdpr"], "allowed_tlps": ["CLEAR", "GREEN", "AMBER",
                                                      "AMBER+STRICT", "RED"],
     "default_tlp": "AMBER", "publish_clear_allowed": True,
     # organisation slug -> the membership state it should reach
     "members": {"baltic-energy-isac": "active", "sunrise-telecom": "requested",
                 "danube-hydro-power": "requested", "geneva-cyber-policy": "invited"}},
    {"slug": "cyber-diplomacy-forum", "name": "Cyber Diplomacy Forum",
     "founder": "claire@policy.geneva.example", "join_policy": "open",
     "description": "Governments, companies and think tanks discuss norms of responsible "
                    "state behaviour in cyberspace.",
     "charter": "Analysis is shared for the benefit of all members; attribution claims are "
                "labelled as such.",
     "policy_tags": ["un-oewg", "un-gge", "budapest-convention", "tallinn-manual"],
     "allowed_tlps": ["CLEAR", "GREEN", "AMBER"], "default_tlp": "GREEN",
     "publish_clear_allowed": True,
     "members": {"nordic-cert": "active", "baltic-energy-isac": "suspended",
                 "sunrise-telecom": "left"}},
]


@unit_of_work()
def _org(spec) -> Organisation:
    org = db.session.scalar(select(Organisation).where(Organisation.slug == spec["slug"]))
    if org is None:
        org = Organisation(name=spec["name"], slug=spec["slug"], country=spec["country"],
                           sectors=spec["sectors"], website=spec["website"],
                           domain=spec["domain"], status=spec.get("status", "approved"),
                           stix_id=f"identity--{uuid.uuid4()}")
        if org.status == "approved":
            org.vetted_at = utcnow()
        org.stix_identity = build_identity(org)
        db.session.add(org)
    for name, email, role in spec["users"]:
        if find_user_by_email(email) is None:
            db.session.add(User(email=email, name=name, role=role, organisation=org,
                                password_hash=hash_password(USER_PASSWORD),
                                email_verified_at=utcnow()))
    return org


# What the demo's requesting organisations tell the coordinators.
REQUEST_MESSAGES = {
    "sunrise-telecom": "We carry the grid operators' telemetry and see attacks on it first.",
    "danube-hydro-power": "We run hydro plants on the Danube and want to share what we see.",
}


def _reach(alliance: Alliance, org: Organisation, target: str, coordinator: User) -> None:
    """Drive a membership to the target state through the real services (audit, mail), from
    where it stands: a run stopped part-way (approved, not yet suspended) is finished by the
    next one. Each step moves forward only, so a finished membership is left as it is."""
    admin = next(u for u in org.users if u.is_org_admin)
    m = alliances.membership_of(org.id, alliance)
    if m is None:
        if target == "invited":
            transitions.invite_organisation(coordinator, alliance, org)
            return
        m = transitions.request_to_join(admin, alliance, accept_charter=True,
                                      message=REQUEST_MESSAGES.get(org.slug, "Demo request"))
    if target in ("invited", "requested"):
        return
    if m.state == "requested":
        m = transitions.decide(coordinator, alliance, m, "approve")
    if m.is_active and target == "suspended":
        transitions.decide(coordinator, alliance, m, "suspend", "Demo: suspended for review")
    elif m.is_active and target == "left":
        transitions.leave(admin, alliance)


def _demo_user(email: str) -> User:
    """A user of the demo data, which seed_demo creates before anything refers to them."""
    user = find_user_by_email(email)
    if user is None:
        raise LookupError(f"The demo data has no user {email}.")
    return user


def seed_demo() -> dict:
    """Create the demo data where missing; return what exists, for printing."""
    if find_user_by_email(ADMIN["email"]) is None:
        create_admin(ADMIN["email"], ADMIN["password"], ADMIN["name"])
    orgs = {spec["slug"]: _org(spec) for spec in ORGANISATIONS}
    for spec in ALLIANCES:
        founder = _demo_user(spec["founder"])
        alliance = db.session.scalar(select(Alliance).where(Alliance.slug == spec["slug"]))
        if alliance is None:
            # Settings the spec leaves out (the digest defaults) keep the model's defaults.
            settings = {k: spec[k] for k in alliances.SETTINGS_FIELDS if k in spec}
            alliance = alliances.create_alliance(founder, slug=spec["slug"], **settings)
        for slug, state in spec["members"].items():
            _reach(alliance, orgs[slug], state, founder)
    for spec in NOTES:
        _note(spec)
    return describe()


DATA = Path(__file__).parent / "data"
# Notes made from real public STIX content (data/README.md) and from the compose builders.
NOTES: list[dict[str, Any]] = [
    {"title": "Malicious URL used in a phishing campaign", "poster": "ingrid@nordic-cert.example",
     "alliance": "european-energy-sharing", "tlp": "GREEN",
     "file": "oasisdoc__indicator-for-malicious-url.json"},
    {"title": "Threat actor leveraging attack patterns and malware",
     "poster": "rasa@baltic-energy.example", "alliance": "european-energy-sharing",
     "tlp": "AMBER", "file": "oasisdoc__threat-actor-leveraging-attack-patterns-and-malware.json"},
    {"title": "MISP event: observed domains and indicators", "poster": "ola@nordic-cert.example",
     "alliance": "cyber-diplomacy-forum", "tlp": "GREEN", "file": "misp__test_event2_stix21.json"},
    {"title": "Spear-phishing against grid operators", "poster": "ingrid@nordic-cert.example",
     "alliance": "european-energy-sharing", "tlp": "AMBER", "incident": {
         "observables": "grid-update.example\n198.51.100.23\nCVE-2024-3400",
         "attack_ids": "T1566.001 T1204.002", "sectors": ["energy", "utilities"],
         "countries": ["NO", "LT"]},
     "description": "Lure documents posing as **regulator notices**; see the indicators."},
    {"title": "Norms of responsible state behaviour: what the OEWG report changes",
     "poster": "claire@policy.geneva.example", "alliance": "cyber-diplomacy-forum",
     "tlp": "CLEAR", "public": True, "analysis": ["un-oewg", "un-gge", "tallinn-manual"],
     "description": "The final report of the Open-Ended Working Group restates the eleven "
                    "voluntary norms and adds guidance on critical infrastructure."},
    {"title": "Named: credentials of a shared contractor", "poster": "ingrid@nordic-cert.example",
     "alliance": "european-energy-sharing", "tlp": "RED",
     "recipients": ["rasa@baltic-energy.example"],
     "indicators": "contractor-portal.example\n203.0.113.77"},
]


def _note(spec) -> None:
    from alliance.notes import compose
    from alliance.notes.models import Note
    from alliance.notes.posting import NoteDraft, post_note
    from alliance.sharing.policy import Principal, readable_notes
    from alliance.stix.limits import StixLimits
    from alliance.stix.validation import parse_bundle

    poster = _demo_user(spec["poster"])
    if db.session.scalar(readable_notes(Principal.of(poster)).where(Note.title == spec["title"])):
        return
    alliance = db.session.scalars(select(Alliance).where(Alliance.slug == spec["alliance"])).one()
    org, tlp, kind = poster.organisation, spec["tlp"], "bundle"
    extra: dict[str, Any] = {}
    if "file" in spec:
        parsed = parse_bundle((DATA / spec["file"]).read_bytes(),
                              StixLimits.from_config(current_app.config))
        objects, extra["refs"] = parsed.objects, parsed.refs
    elif "incident" in spec:
        i = spec["incident"]
        objects = compose.incident_report(org, tlp, compose.IncidentDraft(
            title=spec["title"], description=spec["description"],
            observables_text=i["observables"], attack_ids_text=i["attack_ids"],
            sectors=i["sectors"], countries=i["countries"]))
        kind, extra = "incident", {"sectors": i["sectors"], "countries": i["countries"]}
    elif "analysis" in spec:
        objects = compose.policy_analysis(org, tlp, title=spec["title"],
                                          description=spec["description"],
                                          policy_tags=spec["analysis"])
        kind, extra = "analysis", {"policy_tags": spec["analysis"]}
    else:
        objects = compose.indicator_set(org, tlp, observables_text=spec["indicators"])
        kind = "indicators"
    recipients = [_demo_user(e).id for e in spec.get("recipients", [])]
    post_note(poster, NoteDraft(title=spec["title"], tlp=tlp, alliance_ids=[alliance.id],
                                objects=objects, kind=kind,
                                description=spec.get("description", ""),
                                recipient_ids=recipients,
                                publish_public=spec.get("public", False), **extra))


def describe() -> dict:
    users = [{"email": ADMIN["email"], "password": ADMIN["password"], "name": ADMIN["name"],
              "organisation": None, "role": "platform admin"}]
    organisations = []
    for spec in ORGANISATIONS:
        org = db.session.scalars(select(Organisation).where(
            Organisation.slug == spec["slug"])).one()
        organisations.append({"slug": org.slug, "name": org.name, "status": org.status,
                              "country": org.country, "stix_id": org.stix_id})
        for name, email, role in spec["users"]:
            users.append({"email": email, "password": USER_PASSWORD, "name": name,
                          "organisation": org.slug, "role": role})
    alliance_rows, memberships = [], []
    for spec in ALLIANCES:
        alliance = db.session.scalars(select(Alliance).where(
            Alliance.slug == spec["slug"])).one()
        alliance_rows.append({"slug": alliance.slug, "name": alliance.name,
                              "join_policy": alliance.join_policy,
                              "coordinators": [u.email for u in alliances.coordinators_of(alliance)]})
        for m in alliances.memberships_of(alliance):
            memberships.append({"alliance": alliance.slug, "organisation": m.organisation.slug,
                                "state": m.state})
    notes = [{"title": n["title"], "tlp": n["tlp"], "alliance": n["alliance"],
              "poster": n["poster"]} for n in NOTES]
    return {"organisations": organisations, "users": users, "alliances": alliance_rows,
            "memberships": memberships, "notes": notes}
