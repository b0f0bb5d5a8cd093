"""`flask alliance seed-demo`: documented demo data, idempotent, usable from scripts."""
import json

from sqlalchemy import func, select

from alliance.alliances.models import Membership
from alliance.audit.models import AuditEvent
from alliance.auth.models import User
from alliance.auth.services import authenticate
from alliance.extensions import db
from alliance.orgs.models import Organisation


def _counts():
    return tuple(db.session.scalar(select(func.count()).select_from(m))
                 for m in (Organisation, User, Membership, AuditEvent))


def test_seed_demo_json_lists_working_sign_ins_and_several_membership_states(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["alliance", "seed-demo", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    states = {m["state"] for m in data["memberships"]}
    assert {"active", "requested", "invited", "suspended", "left"} <= states
    assert {o["status"] for o in data["organisations"]} == {"approved", "pending"}
    db.session.expire_all()
    for user in data["users"]:
        assert authenticate(user["email"], user["password"]) is not None, user["email"]
    admins = [u for u in data["users"] if u["role"] == "platform admin"]
    assert len(admins) == 1
    assert all(a["coordinators"] for a in data["alliances"])


def test_seed_demo_is_idempotent(app):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["alliance", "seed-demo", "--json"])
    counts = _counts()
    second = runner.invoke(args=["alliance", "seed-demo", "--json"])
    assert second.exit_code == 0
    assert _counts() == counts
    assert json.loads(first.output) == json.loads(second.output)


def test_a_seed_stopped_part_way_is_finished_by_the_next_run(app, monkeypatch):
    """The first run fails after a membership was approved and before it was suspended (a
    crash, a lost connection); before, the next run saw a membership and left it active."""
    from alliance.alliances import transitions

    decide = transitions.decide

    def crash_on_suspend(actor, alliance, membership, action, reason=""):
        if action == "suspend":
            raise RuntimeError("the machine went down")
        return decide(actor, alliance, membership, action, reason)

    runner = app.test_cli_runner()
    monkeypatch.setattr(transitions, "decide", crash_on_suspend)
    assert runner.invoke(args=["alliance", "seed-demo", "--json"]).exit_code != 0
    db.session.rollback()
    monkeypatch.setattr(transitions, "decide", decide)

    second = runner.invoke(args=["alliance", "seed-demo", "--json"])
    assert second.exit_code == 0, second.output
    states = {(m["alliance"], m["organisation"]): m["state"]
              for m in json.loads(second.output)["memberships"]}
    from alliance.demo.services import ALLIANCES

    for spec in ALLIANCES:  # every membership where the demo data says it is
        for org, state in spec["members"].items():
            assert states[(spec["slug"], org)] == state, (spec["slug"], org)

def test_seed_demo_prints_the_sign_ins_for_people(app):
    result = app.test_cli_runner().invoke(args=["alliance", "seed-demo"])
    assert result.exit_code == 0
    assert "admin@demo.alliance" in result.output and "ingrid@nordic-cert.example" in result.output


def test_seed_demo_refuses_to_run_in_production(app, monkeypatch):
    monkeypatch.setitem(app.config, "ENV_NAME", "production")
    result = app.test_cli_runner().invoke(args=["alliance", "seed-demo"])
    assert result.exit_code != 0 and "production" in result.output
    assert _counts()[0] == 0


def test_seed_demo_posts_notes_from_real_stix_content_under_the_read_rule(app):
    from alliance.auth.services import find_user_by_email
    from alliance.notes.models import Note
    from alliance.sharing.policy import Principal, readable_notes

    app.test_cli_runner().invoke(args=["alliance", "seed-demo"])
    db.session.expire_all()

    def titles(email):
        user = find_user_by_email(email) if email else None
        return set(db.session.scalars(readable_notes(Principal.of(user)).with_only_columns(
            Note.title)).all())

    red = "Named: credentials of a shared contractor"
    assert red in titles("ingrid@nordic-cert.example")      # the author
    assert red in titles("rasa@baltic-energy.example")      # the named recipient
    assert red not in titles("ola@nordic-cert.example")     # the author's colleague
    assert "Malicious URL used in a phishing campaign" in titles("rasa@baltic-energy.example")
    assert titles(None) == {"Norms of responsible state behaviour: what the OEWG report changes"}
    assert titles("sam@pending-analytics.example") == titles(None)  # not vetted: anonymous


def test_the_demo_lets_a_newcomer_try_every_coordinator_action_at_once(app):
    """Ingrid can approve one request and reject another, remind an invited organisation and
    invite one that is in no alliance; Claire can reinstate; the admin can vet."""
    from alliance.alliances.inbox import coordinator_inbox
    from alliance.alliances.services import get_alliance
    from alliance.alliances.transitions import invitable_organisations
    from alliance.auth.services import find_user_by_email
    from alliance.orgs.services import pending_organisations

    assert app.test_cli_runner().invoke(args=["alliance", "seed-demo"]).exit_code == 0
    db.session.expire_all()
    ingrid = coordinator_inbox(find_user_by_email("ingrid@nordic-cert.example"))
    assert [a.slug for a in ingrid.alliances] == ["european-energy-sharing"]
    assert sorted(m.organisation.name for m in ingrid.requests) == [
        "Danube Hydro Power", "Sunrise Telecom"]
    assert [m.organisation.name for m in ingrid.invitations] == ["Geneva Cyber Policy Institute"]
    assert [o.name for o in invitable_organisations(get_alliance("european-energy-sharing"))] == [
        "Iberian Grid Operator"]
    claire = coordinator_inbox(find_user_by_email("claire@policy.geneva.example"))
    assert [m.organisation.name for m in claire.suspended] == ["Baltic Energy ISAC"]
    assert [o.name for o in pending_organisations()] == ["Pending Analytics Ltd"]


def test_the_readme_demo_table_lists_every_demo_user(app):
    import re
    from pathlib import Path

    from alliance.demo.services import ADMIN, ORGANISATIONS

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = set(re.findall(r"^\| ([^ |]+@[^ |]+) \|", readme, re.M))
    assert table == {email for spec in ORGANISATIONS for _, email, _ in spec["users"]}
    assert ADMIN["email"] in readme and ADMIN["password"] in readme
