"""An organisation's users: invitations, roles and deactivation by its org admins."""
import re

import pytest
from sqlalchemy import func, select

from alliance.audit.models import AuditEvent
from alliance.auth.models import User
from alliance.auth.tokens import make_token
from alliance.extensions import db
from alliance.orgs.services import deactivate_user
from tests import factories
from tests.auth.helpers import (
    is_signed_in,
    mails_with,
    path_of,
    sign_in,
    sign_in_write_fails,
)

PASSWORD = "Granite-Meadow-Falcon-4471"


@pytest.fixture
def org(outsider):
    return outsider.organisation


@pytest.fixture
def colleague(org):
    """A plain member of the outsider's organisation."""
    return factories.make_user(org, "colleague@outside.example")


@pytest.fixture
def as_org_admin(as_outsider):
    return as_outsider


def invite(client, org, email, role="member"):
    return client.post(f"/organisations/{org.slug}/users", data={"email": email, "role": role})


def invite_path(client, org, email, role="member"):
    invite(client, org, email, role)
    [mail] = [m for m in mails_with("user_invite") if m["to"] == email]
    return path_of(mail["context"]["link"])


def accept(client, path, **extra):
    return client.post(path, data={"name": "New Person", "password": PASSWORD,
                                   "confirm": PASSWORD, **extra})


def set_role(client, slug, user, role):
    return client.post(f"/organisations/{slug}/users/{user.id}/role", data={"role": role})


def deactivate(client, slug, user, reason=""):
    return client.post(f"/organisations/{slug}/users/{user.id}/deactivate",
                       data={"reason": reason})


def user_named(email) -> User | None:
    db.session.expire_all()
    return db.session.scalar(select(User).where(User.email == email))


def user_count() -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count(User.id)))


# --- invitations ---------------------------------------------------------------------------

def test_org_admin_sees_the_users_page(as_org_admin, org, colleague):
    response = as_org_admin.get(f"/organisations/{org.slug}/users")

    assert response.status_code == 200
    assert colleague.email.encode() in response.data


def test_org_admin_invites_by_email_and_a_link_is_mailed(as_org_admin, org, outsider):
    response = invite(as_org_admin, org, "New.Hire@Outside.example")

    assert response.status_code == 302
    [mail] = mails_with("user_invite")
    assert mail["to"] == "new.hire@outside.example"
    assert mail["context"]["link"].startswith("http://alliance.test/auth/invite/")
    assert mail["context"]["org_name"] == org.name
    [event] = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "user.invited"))
    assert event.actor_id == outsider.id
    assert user_named("new.hire@outside.example") is None  # no account until accepted


def test_invitation_link_creates_a_verified_user_with_the_invited_role(as_org_admin, org,
                                                                       make_client):
    path = invite_path(as_org_admin, org, "lead@outside.example", role="org_admin")
    newcomer = make_client()

    assert newcomer.get(path).status_code == 200
    response = accept(newcomer, path)

    assert response.status_code == 302
    user = user_named("lead@outside.example")
    assert user.organisation_id == org.id
    assert user.role == "org_admin"
    assert user.is_verified
    assert not user.is_admin
    assert user.name == "New Person"
    assert is_signed_in(newcomer)
    assert sign_in(make_client(), "lead@outside.example", PASSWORD).status_code == 302


def test_invitation_link_works_only_once(as_org_admin, org, make_client):
    path = invite_path(as_org_admin, org, "once@outside.example")
    accept(make_client(), path)
    count = user_count()

    response = accept(make_client(), path)

    assert response.status_code == 409
    assert user_count() == count


def test_an_acceptance_that_fails_part_way_leaves_the_invitation_to_be_used_again(
        as_org_admin, org, make_client):
    """The new user and their first sign-in are one write: before, a failure in between left
    the user stored behind a 500, and the retry was told the invitation was used."""
    path = invite_path(as_org_admin, org, "retry@outside.example")
    newcomer = make_client()

    with sign_in_write_fails():
        assert accept(newcomer, path).status_code == 500
    assert user_named("retry@outside.example") is None

    assert accept(newcomer, path).status_code == 302
    assert user_named("retry@outside.example") is not None and is_signed_in(newcomer)

def test_expired_invitation_is_refused(app, as_org_admin, org, make_client, monkeypatch):
    path = invite_path(as_org_admin, org, "late@outside.example")
    monkeypatch.setitem(app.config, "INVITE_MAX_AGE", -1)
    newcomer = make_client()

    assert newcomer.get(path).status_code == 400
    assert accept(newcomer, path).status_code == 400
    assert user_named("late@outside.example") is None


def test_tampered_invitation_is_refused(as_org_admin, org, make_client):
    path = invite_path(as_org_admin, org, "tamper@outside.example")

    response = accept(make_client(), path[:-4] + "AAAA")

    assert response.status_code == 400
    assert user_named("tamper@outside.example") is None


def test_invitation_token_signed_with_another_purpose_is_refused(org, client):
    token = make_token("verify-email", {"org": org.id, "email": "forged@outside.example",
                                        "role": "org_admin", "by": None})

    response = accept(client, f"/auth/invite/{token}")

    assert response.status_code == 400
    assert user_named("forged@outside.example") is None


def test_accepting_an_invitation_with_a_weak_password_creates_nobody(as_org_admin, org,
                                                                    make_client):
    path = invite_path(as_org_admin, org, "weak@outside.example")

    response = accept(make_client(), path, password="password1234", confirm="password1234")

    assert response.status_code == 422
    assert user_named("weak@outside.example") is None


@pytest.mark.parametrize("name", ["New\r\nPerson", "New\x00Person", "Evil\u202eNosrep"])
def test_accepting_an_invitation_refuses_a_name_with_control_characters(as_org_admin, org,
                                                                         make_client, name):
    path = invite_path(as_org_admin, org, "newcomer@outside.example")
    count = user_count()

    response = accept(make_client(), path, name=name)

    assert response.status_code == 422
    assert user_count() == count
    assert user_named("newcomer@outside.example") is None


def test_extra_fields_on_invitation_acceptance_are_ignored(as_org_admin, org, member,
                                                           make_client):
    path = invite_path(as_org_admin, org, "plain@outside.example")

    accept(make_client(), path, role="org_admin", is_admin="y",
           organisation_id=str(member.organisation_id), org_id=str(member.organisation_id),
           org=str(member.organisation_id), email="attacker@evil.example")

    user = user_named("plain@outside.example")
    assert user.role == "member"
    assert not user.is_admin
    assert user.organisation_id == org.id
    assert user_named("attacker@evil.example") is None


@pytest.mark.parametrize("email", ["colleague@outside.example", "COLLEAGUE@outside.example"])
def test_inviting_a_colleague_who_has_an_account_is_refused(as_org_admin, org, colleague,
                                                            email):
    response = invite(as_org_admin, org, email)

    assert response.status_code == 422  # the form again, with the reason at the address
    assert b"already has an account in your organisation" in response.data
    assert mails_with("user_invite") == [] and mails_with("user_invite_existing") == []


def _invite_seen(client, org, email) -> tuple:
    """What the inviting admin sees and what the organisation's log keeps: status, where
    the answer leads, the message on that page (the address in it made generic), the log."""
    response = invite(client, org, email)
    page = client.get(response.headers.get("Location", "/")).get_data(as_text=True)
    message = re.search(r"Invitation sent to [^<]*", page)
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "user.invited")
                               .order_by(AuditEvent.id.desc())).first()
    return (response.status_code, response.headers.get("Location"),
            message and message.group(0).replace(email, "ADDRESS"),  # as typed
            event and (event.actor_id, event.target_type, event.target_id,
                       event.target_label.replace(email.lower(), "ADDRESS"), event.details))


@pytest.mark.parametrize("email", ["analyst@member.example", "Analyst@Member.example"])
def test_inviting_someone_elses_account_looks_like_any_invitation(as_org_admin, org, member,
                                                                  email):
    """An org admin must not learn which addresses have accounts on the platform: the
    answer, the page and the log are those of a new address. The account holder is told
    instead, and gets no link (an account belongs to one organisation)."""
    existing = _invite_seen(as_org_admin, org, email)
    fresh = _invite_seen(as_org_admin, org, "nobody.yet@member.example")

    assert existing == fresh and existing[0] == 302 and existing[2] is not None
    [notice] = mails_with("user_invite_existing")
    assert notice["to"] == member.email
    assert "link" not in notice["context"] and org.name == notice["context"]["org_name"]
    assert [m["to"] for m in mails_with("user_invite")] == ["nobody.yet@member.example"]
    db.session.refresh(member)
    assert member.organisation_id != org.id


def test_the_notice_to_an_existing_account_renders_without_an_invitation_link(app):
    from alliance.mail.services import render_mail

    with app.test_request_context():
        text, html = render_mail("user_invite_existing", inviter="<b>Eve</b>",
                                 org_name="Outside", sign_in="http://alliance.test/auth/sign-in")
    for part in (text, html):
        assert "http://alliance.test/auth/sign-in" in part and "/auth/invite/" not in part
        assert "<b>Eve</b>" not in part and "&lt;b&gt;Eve&lt;/b&gt;" in part


def test_invitations_are_limited_per_admin_and_only_sent_ones_count(app, as_org_admin, org,
                                                                   monkeypatch):
    monkeypatch.setitem(app.config, "INVITE_LIMIT", "3 per hour")

    refused = invite(as_org_admin, org, "someone@outside.example", role="platform_admin")
    sent = [invite(as_org_admin, org, f"new{i}@outside.example").status_code for i in range(3)]
    over = invite(as_org_admin, org, "new3@outside.example")

    assert refused.status_code == 422 and sent == [302, 302, 302]
    assert over.status_code == 429
    assert b"Too many" in over.data
    assert sorted(m["to"] for m in mails_with("user_invite")) == [
        "new0@outside.example", "new1@outside.example", "new2@outside.example"]
    assert as_org_admin.get(f"/organisations/{org.slug}/users").status_code == 200


def test_inviting_with_an_unknown_role_is_refused(as_org_admin, org):
    response = invite(as_org_admin, org, "someone@outside.example", role="platform_admin")

    assert response.status_code == 422
    assert mails_with("user_invite") == []


def test_plain_member_cannot_invite(as_member, member):
    org = member.organisation

    assert as_member.get(f"/organisations/{org.slug}/users").status_code == 404
    response = invite(as_member, org, "sneaky@member.example", role="org_admin")

    assert response.status_code in (403, 404)
    assert mails_with("user_invite") == []


def test_org_admin_cannot_invite_into_another_organisation(as_org_admin, member):
    response = invite(as_org_admin, member.organisation, "sneaky@member.example")

    assert response.status_code == 404
    assert mails_with("user_invite") == []


# --- roles ---------------------------------------------------------------------------------

def test_org_admin_promotes_a_member(as_org_admin, org, outsider, colleague):
    response = set_role(as_org_admin, org.slug, colleague, "org_admin")

    assert response.status_code == 302
    assert factories.fresh(colleague).role == "org_admin"
    [event] = db.session.scalars(select(AuditEvent).where(
        AuditEvent.action == "user.role_changed"))
    assert event.actor_id == outsider.id
    assert event.details == {"old": "member", "new": "org_admin"}


def test_org_admin_demotes_another_admin(as_org_admin, org, colleague):
    colleague.role = "org_admin"
    db.session.commit()

    set_role(as_org_admin, org.slug, colleague, "member")

    assert factories.fresh(colleague).role == "member"


def test_unknown_role_is_refused(as_org_admin, org, colleague):
    response = set_role(as_org_admin, org.slug, colleague, "superuser")

    assert response.status_code == 400
    assert factories.fresh(colleague).role == "member"


def test_last_org_admin_cannot_be_demoted(as_org_admin, org, outsider, colleague):
    set_role(as_org_admin, org.slug, outsider, "member")

    assert factories.fresh(outsider).role == "org_admin"
    assert db.session.scalar(select(func.count(AuditEvent.id)).where(
        AuditEvent.action == "user.role_changed")) == 0


def test_deactivated_admins_do_not_count_as_the_remaining_admin(as_org_admin, org, outsider,
                                                                colleague):
    from alliance.core.models import utcnow

    colleague.role = "org_admin"
    colleague.deactivated_at = utcnow()
    db.session.commit()

    set_role(as_org_admin, org.slug, outsider, "member")

    assert factories.fresh(outsider).role == "org_admin"


def test_admin_may_step_down_while_another_admin_remains(as_org_admin, org, outsider,
                                                        colleague):
    colleague.role = "org_admin"
    db.session.commit()

    set_role(as_org_admin, org.slug, outsider, "member")

    assert factories.fresh(outsider).role == "member"


def test_plain_member_cannot_change_roles(as_member, member, member_admin):
    slug = member.organisation.slug

    promote_self = set_role(as_member, slug, member, "org_admin")
    demote_admin = set_role(as_member, slug, member_admin, "member")

    assert promote_self.status_code in (403, 404)
    assert demote_admin.status_code in (403, 404)
    assert factories.fresh(member).role == "member"
    assert factories.fresh(member_admin).role == "org_admin"


@pytest.mark.parametrize("slug_of", ["own", "theirs"])
def test_org_admin_cannot_change_another_orgs_user(as_org_admin, org, member, slug_of):
    slug = org.slug if slug_of == "own" else member.organisation.slug

    response = set_role(as_org_admin, slug, member, "org_admin")

    assert response.status_code == 404
    assert factories.fresh(member).role == "member"


# --- deactivation --------------------------------------------------------------------------

def test_deactivating_a_user_ends_their_sessions_and_sign_in(as_org_admin, org, colleague,
                                                             make_client):
    their_browser = make_client()
    sign_in(their_browser, colleague.email, factories.PASSWORD)
    assert is_signed_in(their_browser)

    response = deactivate(as_org_admin, org.slug, colleague, "Left the company.")

    assert response.status_code == 302
    fresh = factories.fresh(colleague)
    assert fresh.deactivated_at is not None
    assert not is_signed_in(their_browser)
    assert sign_in(make_client(), colleague.email, factories.PASSWORD).status_code == 401
    [event] = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "user.deactivated"))
    assert event.reason == "Left the company."


def test_deactivating_twice_is_refused(as_org_admin, org, colleague):
    deactivate(as_org_admin, org.slug, colleague)
    version = factories.fresh(colleague).session_version

    deactivate(as_org_admin, org.slug, colleague)

    assert factories.fresh(colleague).session_version == version


def test_org_admin_cannot_deactivate_themselves_as_the_last_admin(as_org_admin, org, outsider):
    deactivate(as_org_admin, org.slug, outsider)

    assert factories.fresh(outsider).is_active
    assert is_signed_in(as_org_admin)


def test_last_coordinator_of_an_alliance_cannot_be_deactivated(client, coordinator):
    second_admin = factories.make_user(coordinator.organisation, "deputy@coord.example",
                                       role="org_admin")
    factories.login(client, second_admin)

    deactivate(client, coordinator.organisation.slug, coordinator)

    assert factories.fresh(coordinator).is_active


def test_plain_member_cannot_deactivate_anyone(as_member, member, member_admin):
    response = deactivate(as_member, member.organisation.slug, member_admin)

    assert response.status_code in (403, 404)
    assert factories.fresh(member_admin).is_active


@pytest.mark.parametrize("slug_of", ["own", "theirs"])
def test_org_admin_cannot_deactivate_another_orgs_user(as_org_admin, org, member, slug_of):
    slug = org.slug if slug_of == "own" else member.organisation.slug

    response = deactivate(as_org_admin, slug, member)

    assert response.status_code == 404
    fresh = factories.fresh(member)
    assert fresh.is_active
    assert fresh.session_version == member.session_version


def test_org_admin_of_a_pending_org_cannot_manage_users(client, db):
    pending = factories.make_org("Waiting Org", status="pending")
    admin = factories.make_user(pending, "boss@waiting.example", role="org_admin")
    other = factories.make_user(pending, "staff@waiting.example")
    factories.login(client, admin)

    invite(client, pending, "new@waiting.example")
    set_role(client, pending.slug, other, "org_admin")

    assert mails_with("user_invite") == []
    assert factories.fresh(other).role == "member"


def test_invitation_lapses_when_its_sender_is_deactivated(as_org_admin, org, outsider,
                                                          make_client):
    path = invite_path(as_org_admin, org, "backdoor@personal.example", role="org_admin")
    second_admin = factories.make_user(org, "second@outside.example", role="org_admin")

    deactivate_user(second_admin, factories.fresh(outsider), "Left the company.")

    response = accept(make_client(), path)

    assert response.status_code == 400
    assert user_named("backdoor@personal.example") is None


def test_invitation_lapses_when_its_sender_is_no_longer_an_org_admin(as_org_admin, org,
                                                                     outsider, make_client):
    path = invite_path(as_org_admin, org, "later@outside.example", role="org_admin")
    outsider = factories.fresh(outsider)
    outsider.role = "member"
    db.session.commit()

    response = accept(make_client(), path)

    assert response.status_code == 400
    assert user_named("later@outside.example") is None
