import pytest

from tests import factories


@pytest.fixture
def candidate_admin(alliance):
    """Org admin of a vetted organisation with no membership yet, for moving through states."""
    org = factories.make_org("Candidate Org")
    return factories.make_user(org, "admin@candidate.example", role="org_admin")
