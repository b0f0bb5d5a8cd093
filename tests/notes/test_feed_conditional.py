"""The public Atom feed's <updated> never goes backwards (RFC 4287 4.2.15: the last time the
feed changed), also after a retraction took its newest entry out; the feed and TAXII GETs
answer a conditional request (If-None-Match with the ETag they gave) with a 304."""
import json
import re
import time

from alliance.alliances import services as alliances
from alliance.apikeys.services import create_key
from alliance.notes import editing, posting
from alliance.taxii.services import alliance_collection_id
from tests.notes.helpers import indicator

TAXII = "application/taxii+json;version=2.1"


def _public(member, alliance, title):
    return posting.post_note(member, posting.NoteDraft(
        title=title, tlp="CLEAR", alliance_ids=[alliance.id], objects=[indicator()],
        publish_public=True))


def _updated(client) -> str:
    body = client.get("/insights/feed.atom").get_data(as_text=True)
    return re.search(r"<updated>([^<]+)</updated>", body).group(1)


def test_the_feed_never_goes_back_in_time_after_a_retraction(client, member, alliance):
    alliances.update_settings(alliances.coordinators_of(alliance)[0], alliance,
                              publish_clear_allowed=True)
    _public(member, alliance, "First analysis")
    time.sleep(0.01)
    newest = _public(member, alliance, "Second analysis")
    before = _updated(client)
    time.sleep(0.01)

    editing.retract_note(member, newest, "Posted too early.")

    after = _updated(client)
    assert after > before  # before: the first note's time, earlier than what readers saw
    assert "Second analysis" not in client.get("/insights/feed.atom").get_data(as_text=True)


def test_the_feed_answers_if_none_match_with_304(client, member, alliance):
    first = client.get("/insights/feed.atom")
    etag = first.headers["ETag"]

    again = client.get("/insights/feed.atom", headers={"If-None-Match": etag})

    assert again.status_code == 304 and again.data == b""
    alliances.update_settings(alliances.coordinators_of(alliance)[0], alliance,
                              publish_clear_allowed=True)
    _public(member, alliance, "News")
    changed = client.get("/insights/feed.atom", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag


def test_taxii_gets_answer_if_none_match_with_304(client, member, alliance):
    key = create_key(member, "SIEM")[1]
    headers = {"Authorization": f"Bearer {key}", "Accept": TAXII}
    url = f"/taxii2/api/collections/{alliance_collection_id(alliance.id)}/objects/"
    client.post(url, data=json.dumps({"objects": [indicator()]}),
                content_type=TAXII, headers=headers)
    for path in (url, url.replace("objects/", "manifest/"), "/taxii2/api/collections/"):
        first = client.get(path, headers=headers)
        assert first.status_code == 200 and first.headers.get("ETag"), path
        again = client.get(path, headers=headers | {"If-None-Match": first.headers["ETag"]})
        assert again.status_code == 304 and again.data == b"", path


def test_the_feed_is_discoverable_from_the_insights_page_head(client):
    page = client.get("/insights/").get_data(as_text=True)
    head = page[:page.index("</head>")]
    link = re.search(r'<link rel="alternate" type="application/atom\+xml"[^>]*>', head)
    assert link and 'href="/insights/feed.atom"' in link.group(0)
    assert client.get("/insights/feed.atom").status_code == 200
