"""Who speaks for whom (issue 18, findings 1-5): no member posts as another organisation,
rewrites its objects, redefines a TLP marking or takes another organisation's name, through
any path that writes STIX: the service, the upload form, the CLI import and TAXII POST.
Compose forms, comments, sightings and opinions build their objects on the platform (their
creator is always the poster's organisation: test_platform_made_objects_name_the_poster)."""
import copy
import json

import pytest
from sqlalchemy import select

from alliance.apikeys.services import create_key
from alliance.extensions import db
from alliance.notes import comments, posting, reading
from alliance.notes.models import SERVED_WITH, Note, StixObject
from alliance.stix.markings import marking_id, tlp2_objects
from alliance.stix.validation import BundleRejected
from alliance.taxii.services import alliance_collection_id
from tests import factories
from tests.notes.helpers import bundle, counts, identity, indicator, sid

TAXII = "application/taxii+json;version=2.1"
LATER = "2024-06-01T12:00:00.000Z"
FUTURE = "2099-01-01T00:00:00.000Z"  # later than an organisation's identity, made today
PATHS = ["service", "upload", "cli", "taxii"]


@pytest.fixture
def nordic(alliance):
    """Nordic CERT: an active member organisation of the alliance, the victim."""
    org = factories.make_org("Nordic CERT")
    factories.add_member(alliance, org)
    return factories.make_user(org, "analyst@nordic.example", role="org_admin")


@pytest.fixture
def mallory(alliance):
    """Another active member organisation, the one trying to speak for Nordic CERT."""
    org = factories.make_org("Sunrise Telecom")
    factories.add_member(alliance, org)
    return factories.make_user(org, "mallory@sunrise.example", role="org_admin")


def post_via(path, app, user, alliance, objects, tlp="AMBER") -> tuple[bool, str]:
    """Post these objects as this user by one path: (stored?, what the poster was told)."""
    objects = copy.deepcopy(objects)
    if path == "service":
        try:
            posting.post_note(user, posting.NoteDraft(
                title="Posted", tlp=tlp, alliance_ids=[alliance.id], objects=objects))
        except BundleRejected as exc:
            db.session.rollback()
            return False, "\n".join(str(p) for p in exc.problems)
        return True, ""
    raw = json.dumps(bundle(*objects))
    if path == "upload":
        client = app.test_client()
        factories.login(client, user)
        response = client.post("/notes/new/bundle", data={
            "title": "Posted", "tlp": tlp, "alliances": str(alliance.id), "post": "1",
            "bundle_text": raw, "confirm_looser": "y"})
        return response.status_code == 302, response.get_data(as_text=True)
    if path == "cli":
        file = app.config["TEST_TMP"] / f"{sid('file')}.json"
        file.write_text(raw)
        result = app.test_cli_runner().invoke(args=[
            "alliance", "import", str(file), "--org", user.organisation.slug, "--alliance",
            alliance.slug, "--tlp", tlp, "--as", user.email, "--allow-looser-markings"])
        return result.exit_code == 0, result.output + result.stderr
    key = create_key(user, "TIP")[1]
    response = app.test_client().post(
        f"/taxii2/api/collections/{alliance_collection_id(alliance.id)}/objects/",
        data=json.dumps({"objects": objects}), content_type=TAXII,
        headers={"Authorization": f"Bearer {key}", "Accept": TAXII})
    status = response.get_json() or {}
    ok = response.status_code == 202 and status.get("failure_count", 0) == 0
    return ok, response.get_data(as_text=True)


def refused_via(path, app, user, alliance, objects, *said, tlp="AMBER") -> None:
    before = counts()
    ok, told = post_via(path, app, user, alliance, objects, tlp)
    assert not ok, f"{path} stored it"
    assert counts() == before, f"{path} stored something"
    for words in said:
        assert words in told, (path, told[:2000])


@pytest.fixture(autouse=True)
def _tmp(app, tmp_path):
    app.config["TEST_TMP"] = tmp_path


def served_creator(stix_id: str) -> set[str]:
    db.session.expire_all()
    return {row.body.get("created_by_ref") for row in db.session.scalars(
        select(StixObject).where(StixObject.stix_id == stix_id))}


# --- 1. created_by_ref naming another platform organisation --------------------------------

@pytest.mark.parametrize("path", PATHS)
def test_an_object_created_by_another_platform_organisation_is_refused(path, app, alliance,
                                                                     nordic, mallory):
    forged = indicator(created_by_ref=nordic.organisation.stix_id)
    refused_via(path, app, mallory, alliance, [forged], "created_by_ref",
                "Nordic CERT, another organisation on this platform")
    assert served_creator(forged["id"]) == set()


@pytest.mark.parametrize("path", PATHS)
def test_an_object_with_no_creator_is_the_posters_and_a_third_party_creator_is_kept(
        path, app, alliance, mallory):
    mitre = identity("The MITRE Corporation")
    mine = indicator()
    theirs = indicator("[domain-name:value = 'mitre.example']", created_by_ref=mitre["id"])
    ok, told = post_via(path, app, mallory, alliance, [mitre, mine, theirs])
    assert ok, told
    assert served_creator(mine["id"]) == {mallory.organisation.stix_id}
    assert served_creator(theirs["id"]) == {mitre["id"]}
    assert served_creator(mitre["id"]) == {None}  # an identity names itself


def test_the_note_page_says_shared_by_and_created_by(client, alliance, mallory):
    mitre = identity("The MITRE Corporation")
    theirs = indicator(created_by_ref=mitre["id"])
    note = posting.post_note(mallory, posting.NoteDraft(
        title="Re-shared", tlp="AMBER", alliance_ids=[alliance.id], objects=[mitre, theirs,
        indicator()]))
    factories.login(client, mallory)
    page = client.get(f"/notes/{note.uuid}").get_data(as_text=True)
    assert "shared by Sunrise Telecom, created by" in page
    card = page[page.index(theirs["id"]):]
    assert "The MITRE Corporation" in card[:card.index("</article>")]


# --- 2. and 3. versions of another organisation's object -----------------------------------

@pytest.mark.parametrize("path", PATHS)
def test_another_organisation_cannot_version_an_object_it_did_not_post_first(
        path, app, alliance, nordic, mallory):
    original = indicator(created_by_ref=nordic.organisation.stix_id)
    assert post_via("service", app, nordic, alliance, [original])[0]
    for claimed in ({"created_by_ref": nordic.organisation.stix_id},
                    {"created_by_ref": mallory.organisation.stix_id}, {}):
        newer = {k: v for k, v in original.items() if k != "created_by_ref"}
        newer.update(modified=LATER, revoked=True, **claimed)
        refused_via(path, app, mallory, alliance, [newer])
    db.session.expire_all()
    assert [r.modified for r in db.session.scalars(
        select(StixObject).where(StixObject.stix_id == original["id"]))] == [original["modified"]]


@pytest.mark.parametrize("path", ["service", "taxii"])
def test_a_former_member_cannot_revoke_an_object_from_another_alliance(path, app, alliance,
                                                                       nordic, mallory):
    """Finding 3: removed from the alliance, Sunrise joins an open alliance where Nordic CERT
    is also a member, and posts a revoked version of Nordic CERT's indicator there."""
    from alliance.alliances.models import Membership

    original = indicator()
    assert post_via("service", app, nordic, alliance, [original])[0]
    db.session.execute(Membership.__table__.update().where(
        Membership.organisation_id == mallory.organisation_id).values(state="removed"))
    open_forum = factories.make_alliance(nordic, slug="open-forum", name="Open Forum")
    factories.add_member(open_forum, mallory.organisation)
    db.session.commit()
    for creator in (nordic.organisation.stix_id, mallory.organisation.stix_id, None):
        newer = dict(original, modified=LATER, revoked=True, created_by_ref=creator)
        newer = {k: v for k, v in newer.items() if v is not None}
        refused_via(path, app, mallory, open_forum, [newer])


def test_a_third_party_objects_copy_never_replaces_the_first_posters(client, app, alliance,
                                                                     nordic, mallory):
    """A newer version of a MITRE object from another organisation is its own copy: the
    collection keeps serving the first poster's latest, and its note's history is its own."""
    mitre = identity("The MITRE Corporation")
    technique = {"type": "attack-pattern", "spec_version": "2.1", "id": sid("attack-pattern"),
                 "created": "2024-05-01T12:00:00.000Z", "modified": "2024-05-01T12:00:00.000Z",
                 "name": "Phishing", "created_by_ref": mitre["id"]}
    first = posting.post_note(nordic, posting.NoteDraft(
        title="ATT&CK", tlp="GREEN", alliance_ids=[alliance.id], objects=[mitre, technique]))
    revoked = dict(technique, modified=LATER, revoked=True)
    assert post_via("taxii", app, mallory, alliance, [revoked])[0]

    key = create_key(nordic, "TIP")[1]
    base = f"/taxii2/api/collections/{alliance_collection_id(alliance.id)}/objects/"
    headers = {"Authorization": f"Bearer {key}", "Accept": TAXII}
    latest = client.get(f"{base}{technique['id']}/", headers=headers).get_json()["objects"]
    assert latest == [technique]
    every = client.get(f"{base}{technique['id']}/", headers=headers,
                       query_string={"match[version]": "all"}).get_json()["objects"]
    assert every == [technique]
    assert client.get(f"{base}{technique['id']}/versions/", headers=headers).get_json()[
        "versions"] == [technique["modified"]]
    assert [v.modified for v in reading.history(_principal(nordic), first)
            if v.stix_id == technique["id"]] == [technique["modified"]]

    # Where the first poster's versions are not served, the copy is, as its poster's post.
    elsewhere = factories.make_alliance(mallory, slug="elsewhere", name="Elsewhere")
    db.session.commit()
    assert post_via("service", app, mallory, elsewhere, [revoked])[0]
    mine = create_key(mallory, "TIP")[1]
    served = client.get(
        f"/taxii2/api/collections/{alliance_collection_id(elsewhere.id)}/objects/"
        f"{technique['id']}/", headers={"Authorization": f"Bearer {mine}", "Accept": TAXII})
    assert served.get_json()["objects"] == [revoked]


def _principal(user):
    from alliance.sharing.policy import Principal

    return Principal.of(user)


# --- 4. the TLP marking definitions are the platform's -------------------------------------

@pytest.mark.parametrize("path", PATHS)
def test_a_forged_tlp_marking_definition_is_refused(path, app, alliance, mallory):
    amber = tlp2_objects()["AMBER"]
    forged = json.loads(json.dumps(amber))
    forged["name"] = "TLP:CLEAR"
    ext = next(iter(forged["extensions"].values()))
    ext["tlp_2_0"] = "clear"
    refused_via(path, app, mallory, alliance,
                [forged, indicator(object_marking_refs=[amber["id"]])],
                "official TLP:AMBER definition")
    assert served_creator(amber["id"]) == set()


@pytest.mark.parametrize("path", ["service", "taxii"])
def test_the_official_tlp_definition_itself_is_accepted(path, app, alliance, mallory):
    amber = tlp2_objects()["AMBER"]
    ok, told = post_via(path, app, mallory, alliance,
                        [amber, indicator(object_marking_refs=[amber["id"]])])
    assert ok, told


def test_a_tlp1_definition_must_say_its_own_level(app, alliance, mallory):
    white = "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9"
    honest = {"type": "marking-definition", "spec_version": "2.1", "id": white,
              "created": "2017-01-20T00:00:00.000Z", "definition_type": "tlp",
              "definition": {"tlp": "white"}}
    forged = dict(honest, definition={"tlp": "red"})
    refused_via("service", app, mallory, alliance, [forged], f"{white} ")
    assert post_via("service", app, mallory, alliance, [honest], tlp="CLEAR")[0]


# --- 5. organisations' identities ----------------------------------------------------------

@pytest.mark.parametrize("path", PATHS)
def test_no_version_of_another_organisations_identity(path, app, alliance, nordic, mallory):
    theirs = dict(nordic.organisation.stix_identity, modified=FUTURE,
                  name="Nordic CERT (hacked)")
    refused_via(path, app, mallory, alliance, [theirs], "only the platform publishes")


@pytest.mark.parametrize("path", PATHS)
def test_an_organisations_identity_keeps_its_vetted_name(path, app, alliance, nordic, mallory):
    own = dict(mallory.organisation.stix_identity, modified=FUTURE, name="Nordic CERT")
    refused_via(path, app, mallory, alliance, [own], "keeps the name the platform vetted")
    renamed = dict(own, description="Our new description", name="Sunrise Telecom")
    ok, told = post_via(path, app, mallory, alliance, [renamed])
    assert ok, told


@pytest.mark.parametrize("path", PATHS)
def test_no_identity_takes_a_platform_organisations_name(path, app, alliance, nordic, mallory):
    lookalike = identity(" nordic cert ")
    refused_via(path, app, mallory, alliance,
                [lookalike, indicator(created_by_ref=lookalike["id"])],
                "Nordic CERT is the name of an organisation on this platform")


def test_platform_made_objects_name_the_poster(client, alliance, mallory):
    """Compose forms and comments make their objects on the platform."""
    factories.login(client, mallory)
    note = posting.post_note(mallory, posting.NoteDraft(
        title="Mine", tlp="GREEN", alliance_ids=[alliance.id], objects=[indicator()]))
    comments.add_comment(mallory, note, "comment", "We saw this too")
    db.session.expire_all()
    rows = db.session.scalars(select(StixObject).where(StixObject.scope != SERVED_WITH)).all()
    assert rows and {r.body.get("created_by_ref") for r in rows} == {
        mallory.organisation.stix_id}
    assert db.session.scalar(select(Note.organisation_id)) == mallory.organisation_id
    assert marking_id("GREEN") in {ref for r in rows for ref in r.body.get(
        "object_marking_refs", [])}
