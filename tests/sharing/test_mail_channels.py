"""What a mail may show of a note at each TLP level: one rule (alliance.sharing.channels),
checked against DESIGN.md's table, column "email digest / alert". How digests and alerts
follow it is tests/digests/test_mail_detail.py."""

import pytest

from alliance.sharing.channels import MAIL_DETAIL, Detail, mail_detail
from alliance.stix.tlp import TLP_LEVELS

# DESIGN.md, "Who may read a note", the "email digest / alert" column, as written there.
DESIGN_MAIL_COLUMN = {
    "CLEAR": "title, summary, link",
    "GREEN": "title, summary, link",
    "AMBER": "title and link only",
    "AMBER+STRICT": "title and link only",
    "RED": 'a count only ("1 TLP:RED note addressed to you"), never a title',
}
# What each of those phrases allows, field by field. DESIGN.md's "Digests and alerts" adds
# the two others: kind, author organisation and time, and the watch term's name, only for
# CLEAR and GREEN (the term is a piece of the note's content, and the organisation that
# posts an incident report is often its victim).
MEANS = {
    "title, summary, link": Detail(listed=True, summary=True, particulars=True,
                                   watch_term=True),
    "title and link only": Detail(listed=True, summary=False, particulars=False,
                                  watch_term=False),
    'a count only ("1 TLP:RED note addressed to you"), never a title': Detail(
        listed=False, summary=False, particulars=False, watch_term=False),
}


@pytest.mark.parametrize("level", TLP_LEVELS)
def test_each_level_shows_in_mail_what_the_design_table_says(level):
    assert mail_detail(level) == MEANS[DESIGN_MAIL_COLUMN[level]]


def test_every_tlp_level_has_a_rule_and_nothing_else_does():
    assert set(MAIL_DETAIL) == set(TLP_LEVELS)


@pytest.mark.parametrize("level", ["", "WHITE", "red", "AMBER+", None])
def test_an_unknown_level_fails_closed_to_a_count(level):
    assert mail_detail(level) == Detail(listed=False, summary=False, particulars=False,
                                        watch_term=False)


def test_a_summary_or_a_term_is_never_shown_without_the_title_and_link():
    for level in TLP_LEVELS:
        detail = mail_detail(level)
        assert detail.listed or not (detail.summary or detail.particulars or detail.watch_term)
        assert detail.watch_term == detail.summary  # the term is content, as the summary is
