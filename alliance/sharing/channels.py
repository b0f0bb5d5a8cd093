"""What a mail may show of a note at each TLP level (DESIGN.md, "Who may read a note", the
"email digest / alert" column). Whether the reader may read the note at all is the read
rule's (policy.py), decided before; this decides how much of a readable note leaves the
platform by mail. Digests, alerts and the mail templates (through the digest's Item) all
ask mail_detail(); nothing else tests a TLP level to decide what a mail shows.

| TLP                 | listed (title, link) | summary | kind, organisation, time | term |
| CLEAR, GREEN        | yes                  | yes     | yes                      | yes  |
| AMBER, AMBER+STRICT | yes                  | no      | no                       | no   |
| RED                 | no: a count only     | no      | no                       | no   |

AMBER items show no kind, author organisation or time: the organisation that posts an
incident report is often its victim. The watch term a note matched is a piece of its
content, so it is named only where the summary may be shown. An unknown level fails closed:
a count only."""
from dataclasses import dataclass


@dataclass(frozen=True)
class Detail:
    """How much of one readable note a mail may carry."""
    listed: bool       # title and link (False: the note is only counted)
    summary: bool      # a summary of its description
    particulars: bool  # its kind, author organisation and time
    watch_term: bool   # the watch term it matched, by name


_FULL = Detail(listed=True, summary=True, particulars=True, watch_term=True)
_TITLE_AND_LINK = Detail(listed=True, summary=False, particulars=False, watch_term=False)
_COUNT_ONLY = Detail(listed=False, summary=False, particulars=False, watch_term=False)

MAIL_DETAIL = {
    "CLEAR": _FULL,
    "GREEN": _FULL,
    "AMBER": _TITLE_AND_LINK,
    "AMBER+STRICT": _TITLE_AND_LINK,
    "RED": _COUNT_ONLY,
}


def mail_detail(tlp: str) -> Detail:
    """What a digest or alert may show of a note at this TLP level; a count only for a
    level this table does not know (fails closed)."""
    return MAIL_DETAIL.get(tlp, _COUNT_ONLY)
