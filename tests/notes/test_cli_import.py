"""`flask alliance import PATH --org ORG --alliance ALLIANCE --tlp LEVEL`: the bulk path, through
the same post_note as the web."""
import orjson
import pytest
from sqlalchemy import select

from alliance.extensions import db
from alliance.notes.models import SERVED_WITH, Note, NoteObject, StixObject
from alliance.stix import stream
from alliance.stix.markings import marking_id
from tests import factories
from tests.notes.helpers import CORPUS, bundle, counts, identity, indicator

ATTACK_MOBILE = CORPUS / "valid" / "attack__mobile-attack-17.1.json"
BAD = CORPUS / "invalid" / "elevator__default__indicator-for-c2-ip-address.json"


def run_import(app, path, *options):
    return app.test_cli_runner().invoke(args=["alliance", "import", str(path), *options])


def problem_lines(result) -> list[str]:
    """The lines after the "Refused, nothing was stored" header on standard error."""
    lines = result.stderr.splitlines()
    start = next(i for i, line in enumerate(lines) if "nothing was stored" in line)
    return lines[start + 1:]


@pytest.fixture(autouse=True, params=["one part", "parts of two"])
def reading(request, monkeypatch):
    """Every import here also read in parts of two objects (alliance.stix.stream), as a
    file of more than 16 MB is: the same answers, the same rows."""
    if request.param == "parts of two":
        monkeypatch.setattr(stream, "ONE_PART_BYTES", 0)
        monkeypatch.setattr(stream, "PART_OBJECTS", 2)
    return request.param


@pytest.fixture
def args(member_admin, alliance):
    return ["--org", member_admin.organisation.slug, "--alliance", alliance.slug]


def test_the_attack_ics_18_bundle_imports_unedited(app, args):
    """ATT&CK ICS 18: detection strategies and analytics, five data components whose
    x_mitre_data_source_ref is "" (data, not a broken reference), empty lists inside custom
    properties (x_mitre_related_assets[].related_asset_sectors) and references to objects
    the file does not hold."""
    path = CORPUS / "valid" / "attack__ics-attack-18.0.json"
    objects = orjson.loads(path.read_bytes())["objects"]
    assert sum(o.get("x_mitre_data_source_ref") == "" for o in objects) == 5
    result = run_import(app, path, *args, "--tlp", "green")
    assert result.exit_code == 0, result.output + result.stderr
    assert counts() == (1, len(objects) + 1, len(objects) + 1)


def test_the_attack_mobile_bundle_imports(app, args, member_admin):
    result = run_import(app, ATTACK_MOBILE, *args, "--tlp", "amber", "--title", "ATT&CK Mobile")

    assert result.exit_code == 0, result.output
    report_id = result.stdout.strip()
    assert report_id.startswith("report--")
    assert "Checking and storing" in result.stderr  # the progress bar's label
    db.session.expire_all()
    note = db.session.scalar(select(Note).where(Note.report_id == report_id))
    assert note.title == "ATT&CK Mobile" and note.tlp == "AMBER"
    assert note.author_id == member_admin.id  # an active org admin of --org
    stored = db.session.scalars(select(StixObject.stix_id).join(
        NoteObject, NoteObject.object_id == StixObject.id).where(
        NoteObject.note_id == note.id, StixObject.scope != SERVED_WITH)).all()
    assert len(stored) == 2148 + 1 and report_id in stored
    assert counts() == (1, 2149, 2149)


def test_as_names_the_poster(app, args, member):
    path = CORPUS / "valid" / "oasisdoc__indicator-for-malicious-url.json"
    result = run_import(app, path, *args, "--tlp", "GREEN", "--as", member.email.upper())

    assert result.exit_code == 0, result.output
    db.session.expire_all()
    note = db.session.scalar(select(Note))
    assert note.author_id == member.id and note.title == f"Import of {path.name}"


def test_red_needs_named_recipients(app, args, coordinator):
    path = CORPUS / "valid" / "elevator__valid__141-TLP-marking-structures.json"
    refused = run_import(app, path, *args, "--tlp", "AMBER")
    assert refused.exit_code != 0
    assert "TLP:RED" in refused.output and counts() == (0, 0, 0)

    no_one = run_import(app, path, *args, "--tlp", "RED")
    assert no_one.exit_code != 0 and "Name the people" in no_one.output

    # Its AMBER and WHITE objects are looser than a RED note: confirmed by the flag.
    result = run_import(app, path, *args, "--tlp", "RED", "--recipient", coordinator.email,
                        "--allow-looser-markings")
    assert result.exit_code == 0, result.output
    assert counts()[0] == 1


def test_objects_marked_looser_than_the_note_need_the_flag(app, args, tmp_path):
    clear = indicator(object_marking_refs=[marking_id("CLEAR")])
    amber = indicator(object_marking_refs=[marking_id("AMBER")])
    path = tmp_path / "looser.json"
    path.write_bytes(orjson.dumps(bundle(clear, amber, identity("Unmarked"))))

    refused = run_import(app, path, *args, "--tlp", "AMBER")
    assert refused.exit_code == 1 and refused.stdout == ""
    assert "--allow-looser-markings" in refused.stderr and "nothing was stored" in refused.stderr
    assert f"{clear['id']} (indicator) 'C2 address': TLP:CLEAR" in refused.stderr
    assert amber["id"] not in refused.stderr
    assert counts() == (0, 0, 0)

    result = run_import(app, path, *args, "--tlp", "AMBER", "--allow-looser-markings")
    assert result.exit_code == 0, result.output
    assert "1 object(s) are marked looser than the note's TLP:AMBER" in result.stderr
    assert f"{clear['id']} (indicator) 'C2 address': TLP:CLEAR" in result.stderr
    assert counts()[0] == 1


def test_objects_marked_as_strictly_as_the_note_need_no_flag(app, args, tmp_path):
    path = tmp_path / "strict.json"
    path.write_bytes(orjson.dumps(bundle(indicator(object_marking_refs=[marking_id("AMBER")]),
                                         identity("Unmarked"))))
    result = run_import(app, path, *args, "--tlp", "AMBER")
    assert result.exit_code == 0, result.output
    assert "looser" not in result.stderr and counts()[0] == 1


def test_an_invalid_file_prints_every_problem_and_stores_nothing(app, args):
    result = run_import(app, BAD, *args, "--tlp", "AMBER")

    assert result.exit_code == 1
    assert result.stdout == ""
    assert problem_lines(result) == [
        "relationship--72046d93-9316-4803-a3cd-ef60c476a530 target_ref: No values for "
            "required properties for Relationship: (target_ref)."]
    assert counts() == (0, 0, 0)


def test_several_problems_one_per_line(app, args):
    path = CORPUS / "invalid" / "opencti__cyclic-bundle.json"
    result = run_import(app, path, *args, "--tlp", "AMBER")

    assert result.exit_code == 1
    problems = problem_lines(result)
    assert len(problems) >= 3
    assert any(p.startswith("malware--faa5b705-cf44-4e50-8472-29e5fec43c3c is_family: ")
               for p in problems)
    assert counts() == (0, 0, 0)


def test_not_json_is_reported(app, args):
    result = run_import(app, CORPUS / "invalid" / "validator__invalid_braces.json", *args,
                        "--tlp", "AMBER")
    assert result.exit_code == 1 and "not valid JSON" in result.stderr


@pytest.mark.parametrize("options, message", [
    (["--org", "no-such-org", "--alliance", "atlantic", "--tlp", "AMBER"],
     "No organisation with the slug 'no-such-org'"),
    (["--org", "member-org", "--alliance", "no-such-alliance", "--tlp", "AMBER"],
     "No alliance with the slug 'no-such-alliance'"),
    (["--org", "member-org", "--alliance", "atlantic", "--tlp", "PURPLE"],
     "Invalid value for '--tlp'"),
    (["--org", "member-org", "--alliance", "atlantic"], "Missing option '--tlp'"),
    (["--org", "member-org", "--alliance", "atlantic", "--tlp", "AMBER", "--as",
      "coord@coord.example"], "coord@coord.example is not a user of Member Org"),
])
def test_wrong_options_give_a_clear_message(app, member_admin, options, message):
    result = run_import(app, BAD, *options)
    assert result.exit_code != 0
    assert message in result.output
    assert counts() == (0, 0, 0)


def test_an_alliance_the_org_is_not_in_or_a_tlp_it_does_not_allow(app, member_admin, coordinator):
    factories.make_alliance(coordinator, slug="pacific", name="Pacific Alliance",
                            allowed_tlps=["AMBER"], default_tlp="AMBER")
    path = CORPUS / "valid" / "oasisdoc__indicator-for-malicious-url.json"

    outside = run_import(app, path, "--org", "member-org", "--alliance", "pacific",
                         "--tlp", "AMBER")
    assert outside.exit_code == 1
    assert "only with alliances your organisation is an active member of" in outside.output

    not_allowed = run_import(app, path, "--org", "coordinating-org", "--alliance", "pacific",
                             "--tlp", "GREEN")
    assert not_allowed.exit_code == 1
    assert "Pacific Alliance does not allow TLP:GREEN" in not_allowed.output
    assert counts() == (0, 0, 0)


def test_an_org_without_an_active_admin_needs_as(app, alliance):
    org = factories.make_org("Quiet Org")
    factories.add_member(alliance, org)
    factories.make_user(org, "analyst@quiet.example")
    path = CORPUS / "valid" / "oasisdoc__indicator-for-malicious-url.json"

    result = run_import(app, path, "--org", org.slug, "--alliance", "atlantic", "--tlp", "AMBER")
    assert result.exit_code == 1 and "--as" in result.output

    result = run_import(app, path, "--org", org.slug, "--alliance", "atlantic", "--tlp", "AMBER",
                        "--as", "analyst@quiet.example")
    assert result.exit_code == 0, result.output
