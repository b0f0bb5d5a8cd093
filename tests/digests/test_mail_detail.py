"""Digests and alerts show of each note what alliance.sharing.channels.mail_detail allows
for its TLP, and no more (tests/sharing/test_mail_channels.py checks the rule itself against
DESIGN.md's table): one note per level, carrying a watched value, in each channel."""
import pytest

from alliance.digests import preferences, watch_terms
from alliance.sharing.channels import mail_detail
from alliance.stix.tlp import TLP_LEVELS
from tests.digests.helpers import next_run, parts, post, run_alerts, run_digests

TITLE, SUMMARY, TERM = "Title of the {} note", "Summary of the {} note", "beacon.example"


def _post(coordinator, alliance, reader, level):
    return post(coordinator, TITLE.format(level), level, [alliance], SUMMARY.format(level),
                domain=TERM, recipients=[reader] if level == "RED" else ())


def _check(part: str, level: str, organisation: str) -> None:
    detail = mail_detail(level)
    assert (TITLE.format(level) in part) == detail.listed
    assert (SUMMARY.format(level) in part) == detail.summary
    assert (f"Incident report · {organisation}" in part) == detail.particulars
    assert (TERM in part) == detail.watch_term
    if not detail.listed:
        assert "1 TLP:RED note addressed to you" in part


@pytest.mark.parametrize("level", TLP_LEVELS)
def test_a_digest_shows_each_level_as_the_rule_says(app, mails, coordinator, alliance,
                                                    reader, level):
    watch_terms.add_watch_term(reader, "value", TERM)
    instant, _ = next_run(preferences.preferences_of(reader).hour)
    _post(coordinator, alliance, reader, level)

    run_digests(app, instant)

    [mail] = mails.to(reader, "digest")
    for part in parts(mail):
        _check(part, level, coordinator.organisation.name)


@pytest.mark.parametrize("level", TLP_LEVELS)
def test_an_alert_shows_each_level_as_the_rule_says(mails, coordinator, alliance, reader,
                                                    level):
    watch_terms.add_watch_term(reader, "value", TERM)
    _post(coordinator, alliance, reader, level)

    run_alerts()

    [mail] = mails.to(reader, "alert")
    for part in parts(mail):
        _check(part, level, coordinator.organisation.name)
    assert (TITLE.format(level) in mail["Subject"]) is False  # a subject names no note
