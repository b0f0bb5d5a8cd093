"""Founding an alliance and changing its settings."""
import pytest
from sqlalchemy import func, select

from alliance.alliances import services
from alliance.alliances.models import Alliance, Coordinator, Membership
from alliance.core.errors import Conflict, DomainError, NotAllowed
from alliance.extensions import db
from tests import factories
from tests.alliances.helpers import count_events, events

ALL_TLPS = ["CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED"]


def _count(model) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model))


def _settings(**overrides):
    values = {"name": "Baltic Watch", "description": "Shipping and ports.",
              "charter": "Share what you see.", "policy_tags": ["nis2", "gdpr"],
              "join_policy": "approval", "allowed_tlps": ["GREEN", "AMBER"],
              "default_tlp": "GREEN", "publish_clear_allowed": False}
    values.update(overrides)
    return values


# --- the service ---------------------------------------------------------------------------

def test_the_founders_organisation_becomes_an_active_member_and_the_founder_coordinator(
        outsider):
    alliance = services.create_alliance(outsider, slug="baltic", **_settings())
    alliance = factories.fresh(alliance)
    assert alliance.slug == "baltic" and alliance.name == "Baltic Watch"
    assert alliance.allowed_tlps == ["GREEN", "AMBER"] and alliance.default_tlp == "GREEN"
    assert alliance.policy_tags == ["gdpr", "nis2"]
    m = services.membership_of(outsider.organisation_id, alliance)
    assert m.state == "active" and m.charter_accepted_at is not None
    assert [u.id for u in services.coordinators_of(alliance)] == [outsider.id]
    assert services.is_coordinator(outsider, alliance)
    assert {e.action for e in events(alliance_id=alliance.id)} == {
        "alliance.created", "coordinator.appointed"}


def test_the_slug_is_made_from_the_name_when_left_empty(outsider):
    alliance = services.create_alliance(outsider, slug="", **_settings(name="Nordic CERT Ring"))
    assert alliance.slug == "nordic-cert-ring"


def test_a_plain_member_cannot_found_an_alliance(member):
    with pytest.raises(NotAllowed):
        services.create_alliance(member, slug="baltic", **_settings())
    db.session.rollback()
    assert _count(Alliance) == 1  # only the fixture's 'atlantic'


def test_an_org_admin_of_an_organisation_not_yet_vetted_cannot_found_an_alliance(db):
    org = factories.make_org("Pending Org", status="pending")
    admin = factories.make_user(org, "admin@pending.example", role="org_admin")
    with pytest.raises(NotAllowed):
        services.create_alliance(admin, slug="baltic", **_settings())
    db.session.rollback()
    assert _count(Alliance) == 0


@pytest.mark.parametrize("slug, overrides, field", [
    ("baltic", {"default_tlp": "RED"}, "default_tlp"),  # not among the allowed levels
    ("baltic", {"allowed_tlps": []}, "allowed_tlps"),
    ("baltic", {"allowed_tlps": ["GREEN", "PURPLE"], "default_tlp": "GREEN"}, "allowed_tlps"),
    ("baltic", {"policy_tags": ["nis2", "made-up-treaty"]}, "policy_tags"),
    ("baltic", {"join_policy": "lottery"}, "join_policy"),
    ("baltic", {"name": "   "}, "name"),
    ("Baltic Watch!", {}, "slug"),
    ("-baltic", {}, "slug"),
    ("a" * 61, {}, "slug"),
    ("bal tic", {}, "slug"),
])
def test_invalid_settings_are_refused_naming_the_field_and_nothing_is_stored(
        slug, overrides, field, outsider):
    with pytest.raises(DomainError) as refused:
        services.create_alliance(outsider, slug=slug, **_settings(**overrides))
    assert refused.value.field == field
    assert refused.value.message
    db.session.rollback()
    assert (_count(Alliance), _count(Membership), _count(Coordinator)) == (0, 0, 0)
    assert count_events() == 0


@pytest.mark.parametrize("slug, name, field", [
    ("atlantic", "Another Name", "slug"),
    ("another", "Atlantic Alliance", "name"),
    ("another", "ATLANTIC alliance", "name"),
])
def test_a_duplicate_slug_or_name_is_a_conflict(slug, name, field, alliance, outsider):
    with pytest.raises(Conflict) as refused:
        services.create_alliance(outsider, slug=slug, **_settings(name=name))
    assert refused.value.field == field
    db.session.rollback()
    assert _count(Alliance) == 1
    assert services.membership_of(outsider.organisation_id, alliance) is None


def test_a_settings_change_is_audited_with_old_and_new_values(coordinator, alliance):
    changed = services.update_settings(coordinator, alliance, join_policy="open",
                                       default_tlp="GREEN", charter="Be kind.")
    assert changed == ["default_tlp", "join_policy"]  # the unchanged charter is not listed
    alliance = factories.fresh(alliance)
    assert (alliance.join_policy, alliance.default_tlp) == ("open", "GREEN")
    (event,) = events(action="alliance.settings_changed")
    assert event.actor_id == coordinator.id and event.alliance_id == alliance.id
    assert event.details["changes"] == {
        "join_policy": {"old": "approval", "new": "open"},
        "default_tlp": {"old": "AMBER", "new": "GREEN"}}


def test_saving_unchanged_settings_records_nothing(coordinator, alliance):
    before = count_events()
    assert services.update_settings(coordinator, alliance, name="Atlantic Alliance") == []
    assert count_events() == before


def test_narrowing_the_allowed_tlps_below_the_default_is_refused(coordinator, alliance):
    with pytest.raises(DomainError) as refused:
        services.update_settings(coordinator, alliance, allowed_tlps=["RED"])
    assert refused.value.field == "default_tlp"
    db.session.rollback()
    assert factories.fresh(alliance).allowed_tlps == ALL_TLPS


def test_renaming_to_another_alliances_name_is_a_conflict(coordinator, alliance):
    factories.make_alliance(coordinator, slug="pacific", name="Pacific Alliance")
    with pytest.raises(Conflict):
        services.update_settings(coordinator, alliance, name="pacific alliance")
    db.session.rollback()
    assert factories.fresh(alliance).name == "Atlantic Alliance"


def test_only_a_coordinator_changes_settings(coordinator, alliance, member_admin):
    with pytest.raises(NotAllowed):
        services.update_settings(member_admin, alliance, join_policy="open")
    db.session.rollback()
    assert factories.fresh(alliance).join_policy == "approval"
    assert count_events(action="alliance.settings_changed") == 0


def test_the_directory_counts_active_members_only(coordinator, alliance, member_admin,
                                                  candidate_admin, outsider):
    factories.add_member(alliance, candidate_admin.organisation, "suspended")
    factories.add_member(alliance, outsider.organisation, "requested")
    factories.make_alliance(coordinator, slug="pacific", name="Pacific Alliance")
    listed = [(a.slug, n) for a, n in services.list_alliances()]
    assert listed == [("atlantic", 2), ("pacific", 1)]


# --- over HTTP -----------------------------------------------------------------------------

def _form(**overrides):
    data = {"name": "Baltic Watch", "slug": "baltic", "description": "Ports.",
            "charter": "Share.", "policy_tags": ["nis2"], "join_policy": "approval",
            "allowed_tlps": ["GREEN", "AMBER"], "default_tlp": "GREEN"}
    data.update(overrides)
    return data


def test_an_org_admin_founds_an_alliance_through_the_form(as_outsider, outsider):
    response = as_outsider.post("/alliances/new", data=_form())
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/alliances/baltic")
    alliance = services.get_alliance("baltic")
    assert services.is_coordinator(outsider, alliance)


def test_a_plain_member_gets_403_on_the_new_alliance_form(as_member):
    assert as_member.post("/alliances/new", data=_form()).status_code == 403
    assert _count(Alliance) == 1


def test_an_unvetted_org_admin_is_sent_to_the_status_page(client, db):
    org = factories.make_org("Pending Org", status="pending")
    factories.login(client, factories.make_user(org, "admin@pending.example", role="org_admin"))
    response = client.post("/alliances/new", data=_form())
    assert response.status_code == 302 and "/status" in response.headers["Location"]
    assert _count(Alliance) == 0


@pytest.mark.parametrize("overrides, message", [
    ({"default_tlp": "RED"}, b"default TLP must be one of the allowed"),
    ({"policy_tags": ["made-up-treaty"]}, b"not a valid choice"),
    ({"slug": "Not A Slug"}, b"lower-case letters"),
    ({"slug": "atlantic"}, b"address is taken"),
    ({"name": "Atlantic Alliance", "slug": "other"}, b"exists already"),
])
def test_the_new_alliance_form_shows_what_is_wrong_and_stores_nothing(
        overrides, message, alliance, as_outsider, outsider):
    response = as_outsider.post("/alliances/new", data=_form(**overrides))
    assert response.status_code in (409, 422)
    assert message in response.data
    assert _count(Alliance) == 1
    assert services.membership_of(outsider.organisation_id, alliance) is None


def test_an_alliance_cannot_take_an_address_the_site_already_uses(outsider, client):
    """/alliances/new is the creation form: an alliance there could never be opened."""
    with pytest.raises(DomainError) as refused:
        services.create_alliance(outsider, slug="new", **_settings())
    assert refused.value.field == "slug"
    db.session.rollback()
    with pytest.raises(DomainError):
        services.create_alliance(outsider, slug="", **_settings(name="New"))
    db.session.rollback()
    assert _count(Alliance) == 0


def test_public_clear_publishing_needs_clear_among_the_allowed_levels(coordinator, alliance):
    from alliance.alliances import services
    from alliance.core.errors import DomainError

    with pytest.raises(DomainError) as refused:
        services.update_settings(coordinator, alliance, allowed_tlps=["GREEN", "AMBER"],
                                 default_tlp="AMBER", publish_clear_allowed=True)
    assert refused.value.field == "publish_clear_allowed"
    db.session.rollback()
    assert services.get_alliance("atlantic").publish_clear_allowed is False
