"""Two requests at once: the rules that read, then write ("another coordinator remains", "this
request is still open") hold when two coordinators act at the same moment.

Each call runs in a thread of its own, with its own database session, and is held just before
it writes its audit event until the other call gets there too (or 2 s pass: a call waiting
on the first one's row lock never gets there). Without the lock both would pass their checks
first. PostgreSQL only: SQLite lets one writer in at a time, so it cannot interleave them."""
import os
import threading

import pytest
from sqlalchemy import select

from alliance.alliances import coordinators, services, transitions
from alliance.alliances.models import Coordinator
from alliance.auth.models import User
from alliance.core.errors import DomainError
from alliance.extensions import db
from tests import factories
from tests.alliances.helpers import count_events

pytestmark = pytest.mark.skipif(os.environ.get("ALLIANCE_TEST_DB") != "postgresql",
                                reason="row locks are PostgreSQL's; SQLite serialises writers")


def at_once(app, monkeypatch, modules, *calls):
    """Run the calls at the same moment; each gets its own session. Returns what each returned
    or the DomainError it raised. The calls meet where they record their audit event: `record`
    as the given module (or each of a tuple of modules) imported it."""
    modules = modules if isinstance(modules, tuple) else (modules,)
    barrier = threading.Barrier(len(calls), timeout=2)
    real_record = modules[0].record

    def held_record(*args, **kwargs):
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
        return real_record(*args, **kwargs)

    for module in modules:
        monkeypatch.setattr(module, "record", held_record)
    results = [None] * len(calls)

    def run(i, call):
        with app.app_context():
            try:
                results[i] = call()
            except DomainError as exc:
                db.session.rollback()
                results[i] = exc

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    for module in modules:
        monkeypatch.setattr(module, "record", real_record)
    db.session.expire_all()
    return results


def _user(user_id):
    return db.session.get(User, user_id)


@pytest.fixture
def second_coordinator(coordinator, alliance, member_admin):
    coordinators.appoint_coordinator(coordinator, alliance, member_admin.id)
    return member_admin


def test_two_coordinators_removing_each_other_at_once_leave_one(app, monkeypatch, coordinator,
                                                                 second_coordinator):
    a, b = coordinator.id, second_coordinator.id

    results = at_once(
        app, monkeypatch, coordinators,
        lambda: coordinators.remove_coordinator(_user(a), services.get_alliance("atlantic"), b),
        lambda: coordinators.remove_coordinator(_user(b), services.get_alliance("atlantic"), a))

    # The second, once the first has committed, is no coordinator any more: refused.
    assert sum(isinstance(r, DomainError) for r in results) == 1
    remaining = db.session.scalars(select(Coordinator.user_id)).all()
    assert len(remaining) == 1
    assert count_events(action="coordinator.removed") == 1


def test_a_coordinator_suspending_the_other_coordinators_org_while_being_removed_keeps_one(
        app, monkeypatch, coordinator, second_coordinator):
    a, b = coordinator.id, second_coordinator.id
    coordinating_org = coordinator.organisation_id

    def suspend_a_org():
        alliance = services.get_alliance("atlantic")
        m = services.membership_of(coordinating_org, alliance)
        return transitions.decide(_user(b), alliance, m, "suspend", reason="Audit.")

    results = at_once(
        app, monkeypatch, (coordinators, transitions),
        lambda: coordinators.remove_coordinator(_user(a), services.get_alliance("atlantic"), b),
        suspend_a_org)

    assert sum(isinstance(r, DomainError) for r in results) == 1
    alliance = services.get_alliance("atlantic")
    effective = db.session.scalars(services.effective_coordinators(alliance)).all()
    assert len(effective) == 1


def test_approving_and_rejecting_one_request_at_once_decides_it_once(
        app, monkeypatch, coordinator, second_coordinator, candidate_admin, alliance):
    request = transitions.request_to_join(candidate_admin, alliance, accept_charter=True)
    a, b, m = coordinator.id, second_coordinator.id, request.id

    def act(user_id, action):
        alliance = services.get_alliance("atlantic")
        return lambda: transitions.decide(_user(user_id), alliance,
                                       services.get_membership(alliance, m), action,
                                       reason="Because.")

    results = at_once(app, monkeypatch, transitions, act(a, "approve"), act(b, "reject"))

    assert sum(isinstance(r, DomainError) for r in results) == 1
    decisions = (count_events(action="membership.approved")
                 + count_events(action="membership.rejected"))
    assert decisions == 1
    state = services.membership_of(candidate_admin.organisation_id, alliance).state
    assert state in ("active", "rejected")


def test_two_org_admins_demoting_each_other_at_once_leave_one(app, monkeypatch, outsider):
    from alliance.orgs import services as org_services

    other = factories.make_user(outsider.organisation, "second@outside.example",
                                role="org_admin")
    a, b = outsider.id, other.id

    results = at_once(
        app, monkeypatch, org_services,
        lambda: org_services.change_role(_user(a), _user(b), "member"),
        lambda: org_services.change_role(_user(b), _user(a), "member"))

    assert sum(isinstance(r, DomainError) for r in results) == 1
    admins = db.session.scalars(select(User.id).where(
        User.organisation_id == outsider.organisation_id, User.role == "org_admin")).all()
    assert len(admins) == 1
