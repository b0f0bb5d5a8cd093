"""Platform admins vet pending organisations."""
import pytest
from sqlalchemy import func, select

from alliance.audit.models import AuditEvent
from alliance.core.errors import NotAllowed
from alliance.extensions import db
from alliance.orgs.services import vet_organisation
from tests import factories
from tests.auth.helpers import mails_with


@pytest.fixture
def applicant(db):
    """The org admin of a pending organisation, with a plain member beside them."""
    org = factories.make_org("Pending Org", status="pending")
    admin = factories.make_user(org, "boss@pending.example", role="org_admin")
    factories.make_user(org, "staff@pending.example")
    return admin


@pytest.fixture
def pending(applicant):
    return applicant.organisation


def vet(client, org, decision, reason=""):
    return client.post(f"/admin/organisations/{org.id}/vet",
                       data={"decision": decision, "reason": reason})


def events(action):
    db.session.expire_all()
    return db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)).all()


def test_admin_sees_pending_organisations(as_admin, pending):
    response = as_admin.get("/admin/organisations")

    assert response.status_code == 200
    assert b"Pending Org" in response.data


def test_admin_approves_an_org_and_its_admins_are_mailed(as_admin, platform_admin, pending,
                                                         applicant):
    response = vet(as_admin, pending, "approve")

    assert response.status_code == 302
    org = factories.fresh(pending)
    assert org.status == "approved"
    assert org.vetted_at is not None
    [mail] = mails_with("org_vetted")
    assert mail["to"] == applicant.email  # the org admin, not the plain member
    assert mail["context"]["approved"] is True
    [event] = events("organisation.approved")
    assert event.actor_id == platform_admin.id
    assert event.organisation_id == pending.id


def test_approved_orgs_user_may_use_member_pages(as_admin, make_client, pending, applicant):
    vet(as_admin, pending, "approve")
    member_client = make_client()
    factories.login(member_client, factories.fresh(applicant))

    response = member_client.get("/status")

    assert response.status_code == 302
    assert response.location == "/"


def test_admin_rejects_an_org_with_a_reason_that_is_mailed(as_admin, pending, applicant):
    response = vet(as_admin, pending, "reject", "We could not confirm who you are.")

    assert response.status_code == 302
    org = factories.fresh(pending)
    assert org.status == "rejected"
    assert org.status_reason == "We could not confirm who you are."
    [mail] = mails_with("org_vetted")
    assert mail["to"] == applicant.email
    assert mail["context"]["approved"] is False
    assert mail["context"]["reason"] == "We could not confirm who you are."
    [event] = events("organisation.rejected")
    assert event.reason == "We could not confirm who you are."


@pytest.mark.parametrize("reason", ["", "   \n  "])
def test_rejecting_without_a_reason_is_refused_and_nothing_changes(as_admin, pending, reason):
    vet(as_admin, pending, "reject", reason)

    assert factories.fresh(pending).status == "pending"
    assert mails_with("org_vetted") == []
    assert events("organisation.rejected") == []


def test_unknown_decision_changes_nothing(as_admin, pending):
    vet(as_admin, pending, "promote")

    assert factories.fresh(pending).status == "pending"


def test_vetting_twice_is_refused_and_nothing_changes(as_admin, pending):
    vet(as_admin, pending, "approve")
    vetted_at = factories.fresh(pending).vetted_at

    vet(as_admin, pending, "reject", "Changed our mind.")

    org = factories.fresh(pending)
    assert org.status == "approved"
    assert org.vetted_at == vetted_at
    assert org.status_reason is None
    assert len(mails_with("org_vetted")) == 1
    assert events("organisation.rejected") == []


def test_vetting_an_unknown_org_is_not_found(as_admin):
    response = as_admin.post("/admin/organisations/999999/vet", data={"decision": "approve"})

    assert response.status_code == 404


@pytest.mark.parametrize("who", ["outsider", "applicant"])
def test_non_admins_do_not_find_the_vetting_page(request, client, pending, who):
    factories.login(client, request.getfixturevalue(who))

    assert client.get("/admin/organisations").status_code == 404


@pytest.mark.parametrize("who", ["outsider", "applicant"])
def test_non_admins_cannot_vet_and_nothing_changes(request, client, pending, who):
    factories.login(client, request.getfixturevalue(who))

    response = vet(client, pending, "approve")

    assert response.status_code == 404
    assert factories.fresh(pending).status == "pending"
    assert mails_with("org_vetted") == []


def test_visitors_are_sent_to_sign_in_from_the_vetting_page(client, pending):
    response = client.get("/admin/organisations")

    assert response.status_code == 302
    assert response.location.startswith("/auth/sign-in")
    assert vet(client, pending, "approve").status_code == 302
    assert factories.fresh(pending).status == "pending"


def test_unverified_admin_cannot_vet(client, pending):
    admin = factories.make_admin("unverified@platform.example")
    admin.email_verified_at = None
    db.session.commit()
    factories.login(client, admin)

    assert vet(client, pending, "approve").status_code == 404
    assert factories.fresh(pending).status == "pending"


def test_vet_service_refuses_a_non_admin_actor(outsider, pending):
    with pytest.raises(NotAllowed):
        vet_organisation(outsider, pending, approve=True, reason="")
    db.session.rollback()
    assert factories.fresh(pending).status == "pending"
    assert db.session.scalar(select(func.count(AuditEvent.id))) == 0
