import pytest

from alliance.digests import preferences
from tests.digests.helpers import ZONE, Mailbox, far_hour


@pytest.fixture
def mails(app):
    """The test maildir, emptied first: user ids repeat from test to test, and so would the
    deterministic Message-IDs of mails an earlier test left behind."""
    return Mailbox(app.config["MAIL_URL"])


@pytest.fixture
def reader(member):
    """The member, with a daily digest due about twelve hours from now (Europe/Berlin)."""
    preferences.save_preferences(member, frequency="daily", hour=far_hour(), timezone=ZONE)
    return member
