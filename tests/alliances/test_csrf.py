"""CSRF: with protection on (as in every real deployment), a state-changing POST without the
form's token, or with a wrong one, is refused with 400 and changes nothing."""
import pytest
from flask import session
from flask_wtf.csrf import generate_csrf
from sqlalchemy import select

from alliance import create_app
from alliance.alliances import services, transitions
from alliance.alliances.models import Coordinator, Membership
from alliance.auth.models import User
from alliance.extensions import db
from alliance.orgs.models import Organisation
from tests import factories
from tests.alliances.helpers import count_events, count_outbox


@pytest.fixture(scope="module")
def csrf_app(app):
    return create_app({"WTF_CSRF_ENABLED": True,
                       "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
                       "MAIL_URL": app.config["MAIL_URL"],
                       "BASE_URL": app.config["BASE_URL"]})


def _client_as(csrf_app, user):
    client = csrf_app.test_client()
    factories.login(client, user)
    return client


def _valid_token(csrf_app, client) -> str:
    """A real token for this client's session, made the way a rendered form makes one."""
    with csrf_app.test_request_context():
        token = generate_csrf()
        raw = session[csrf_app.config["WTF_CSRF_FIELD_NAME"]]
    with client.session_transaction() as sess:
        sess[csrf_app.config["WTF_CSRF_FIELD_NAME"]] = raw
    return token


def _world():
    db.session.expire_all()
    return (db.session.execute(select(Membership.id, Membership.state).order_by(Membership.id))
            .all(),
            db.session.execute(select(Coordinator.alliance_id, Coordinator.user_id)
                               .order_by(Coordinator.id)).all(),
            db.session.execute(select(User.id, User.role, User.session_version,
                                      User.deactivated_at).order_by(User.id)).all(),
            db.session.execute(select(Organisation.id, Organisation.status)
                               .order_by(Organisation.id)).all(),
            [(a.slug, a.name, a.join_policy, a.default_tlp)
             for a, _ in services.list_alliances()],
            count_events(), count_outbox())


@pytest.fixture
def request_pending(alliance, candidate_admin):
    return transitions.request_to_join(candidate_admin, alliance, accept_charter=True)


def _cases(request_pending, member_admin, candidate_admin):
    """case: (who posts, or None for the coordinator; where; the form's fields)"""
    return {
        "join": (candidate_admin, "/alliances/atlantic/join", {"accept_charter": "y"}),
        "decide": (None, f"/alliances/atlantic/memberships/{request_pending.id}/approve", {}),
        "leave": (member_admin, "/alliances/atlantic/leave", {"confirm": "1"}),
        "settings": (None, "/alliances/atlantic/settings",
                     {"name": "Renamed", "join_policy": "open", "allowed_tlps": ["CLEAR"],
                      "default_tlp": "CLEAR"}),
    }


@pytest.mark.parametrize("case", ["join", "decide", "leave", "settings"])
@pytest.mark.parametrize("token", [None, "not-a-token", "forged"])
def test_a_post_without_a_valid_token_is_400_and_changes_nothing(
        case, token, csrf_app, coordinator, member_admin, candidate_admin, request_pending):
    if case == "join":  # an organisation whose request is not pending yet
        factories.add_member(request_pending.alliance, request_pending.organisation, "left")
    actor, path, data = _cases(request_pending, member_admin, candidate_admin)[case]
    client = _client_as(csrf_app, actor or coordinator)
    if token == "forged":
        # A token that is valid — for another session — is still refused.
        other = _client_as(csrf_app, coordinator)
        data = dict(data, csrf_token=_valid_token(csrf_app, other))
        _valid_token(csrf_app, client)  # this client has its own, different secret
    elif token is not None:
        data = dict(data, csrf_token=token)
    before = _world()
    response = client.post(path, data=data)
    assert response.status_code == 400
    assert b"security token" in response.data
    assert _world() == before


@pytest.mark.parametrize("case, expected", [
    ("join", ("requested",)), ("decide", ("active",)), ("leave", ("left",)),
    ("settings", ("Renamed",))])
def test_the_same_posts_with_a_valid_token_go_through(case, expected, csrf_app, coordinator,
                                                      member_admin, candidate_admin,
                                                      request_pending):
    """The control for the test above: the 400s come from the token, not from the request."""
    if case == "join":
        factories.add_member(request_pending.alliance, request_pending.organisation, "left")
    actor, path, data = _cases(request_pending, member_admin, candidate_admin)[case]
    client = _client_as(csrf_app, actor or coordinator)
    response = client.post(path, data=dict(data, csrf_token=_valid_token(csrf_app, client)))
    assert response.status_code == 302
    db.session.expire_all()
    alliance = services.get_alliance("atlantic")
    got = {
        "join": lambda: services.membership_of(request_pending.organisation_id, alliance).state,
        "decide": lambda: services.membership_of(request_pending.organisation_id,
                                                 alliance).state,
        "leave": lambda: services.membership_of(member_admin.organisation_id, alliance).state,
        "settings": lambda: alliance.name,
    }[case]()
    assert (got,) == expected


def test_no_post_route_accepts_a_request_without_a_token(csrf_app, coordinator, alliance,
                                                         member, request_pending):
    """Every rule of the app that takes POST, whichever blueprint it is in, for a signed-in
    member: 400 and nothing changed."""
    org = member.organisation
    values_by_blueprint = {
        "alliances": {"slug": "atlantic", "membership_id": request_pending.id,
                      "action": "approve", "user_id": member.id},
        "orgs": {"slug": org.slug, "user_id": member.id, "org_id": org.id},
    }
    defaults = {"token": "some-token", "slug": "atlantic", "user_id": member.id,
                "org_id": org.id, "membership_id": request_pending.id, "action": "approve",
                "key_id": 1, "search_id": 1}
    # The TAXII API is exempt by design: it ignores session cookies and takes only API keys
    # (tests/apikeys/test_keys.py checks that a signed-in browser gets 401 there).
    post_rules = [r for r in csrf_app.url_map.iter_rules()
                  if "POST" in r.methods and not r.endpoint.startswith("taxii.")]
    assert len(post_rules) >= 10  # sign-in, registration, alliances, orgs, vetting, ...
    for user in (member, coordinator):
        client = _client_as(csrf_app, user)
        for rule in post_rules:
            values = dict(defaults, **values_by_blueprint.get(rule.endpoint.split(".")[0], {}))
            # Arguments of other blueprints' rules (a note's uuid, a compose kind) get a
            # placeholder: the token is checked before any view looks at them.
            path = rule.build({k: values.get(k, "placeholder") for k in rule.arguments})[1]
            before = _world()
            response = client.post(path, data={"confirm": "1", "accept_charter": "y",
                                                "reason": "x", "role": "org_admin",
                                                "name": "X", "email": "x@x.example"})
            assert response.status_code == 400, (user.email, rule.rule, response.status_code)
            assert _world() == before, rule.rule
