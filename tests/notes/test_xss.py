"""Stored XSS: hostile strings in every STIX string field, label and external reference are
inert on every page that shows a note (no script element, no event-handler attribute, no
javascript:/data:/vbscript: link), whatever their case or the tabs inside them."""
import re
import uuid
from html.parser import HTMLParser

import pytest

from alliance.notes import comments, posting
from tests import factories

PAYLOADS = [
    "<script>alert('s1')</script>",
    "<ScRiPt src=//evil.example/x.js></sCrIpT>",
    "<img src=x onerror=alert('i1')>",
    "<svg/onload=alert('v1')>",
    '"><a href="javascript:alert(1)">x</a>',
    "jAvAsCrIpT:alert('j1')",
    "java\tscript:alert('t1')",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "<a href='  JaVaScRiPt:alert(2)'>click</a>",
    "[md link](javascript:alert('m1'))",
]
STAMP = "2024-05-01T00:00:00.000Z"


def _id(kind):
    return f"{kind}--{uuid.uuid4()}"


def hostile_objects():
    text = " ".join(PAYLOADS)
    refs = [{"source_name": p[:40], "url": p, "description": p, "external_id": p[:30]}
            for p in PAYLOADS if ":" in p]
    malware = {"type": "malware", "spec_version": "2.1", "id": _id("malware"), "created": STAMP,
               "modified": STAMP, "name": PAYLOADS[0], "description": text, "is_family": True,
               "labels": PAYLOADS[:4], "aliases": PAYLOADS[2:6], "external_references": refs,
               "x_custom_note": text}
    indicator = {"type": "indicator", "spec_version": "2.1", "id": _id("indicator"),
                 "created": STAMP, "modified": STAMP, "name": PAYLOADS[2], "description": text,
                 "pattern": "[domain-name:value = '<script>alert(1)</script>.example']",
                 "pattern_type": "stix", "valid_from": STAMP, "labels": PAYLOADS[4:8]}
    actor = {"type": "threat-actor", "spec_version": "2.1", "id": _id("threat-actor"),
             "created": STAMP, "modified": STAMP, "name": PAYLOADS[3], "description": text,
             "external_references": refs}
    rel = {"type": "relationship", "spec_version": "2.1", "id": _id("relationship"),
           "created": STAMP, "modified": STAMP, "relationship_type": "uses",
           "source_ref": actor["id"], "target_ref": malware["id"], "description": text}
    custom = {"type": "x-hostile-thing", "spec_version": "2.1", "id": _id("x-hostile-thing"),
              "created": STAMP, "modified": STAMP, "name": PAYLOADS[1], "x_html": text}
    return [malware, indicator, actor, rel, custom]


# The site's own scripts the note pages load (the CSP allows no other), as the templates write
# them: no payload holds these paths.
OWN_SCRIPTS = {f"/static/{path}" for path in ("js/note-page.js", "js/graph.js",
                                              "vendor/cytoscape.min.js", "js/focus-errors.js")}


class Inspector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.problems = []

    def handle_starttag(self, tag, attrs):
        if tag == "script" and len(attrs) == 2 and attrs[1] == ("defer", None) \
                and attrs[0][0] == "src" and attrs[0][1] in OWN_SCRIPTS:
            return
        if tag in ("script", "iframe", "object", "embed", "svg", "img"):
            if tag in ("script", "iframe", "object", "embed") or any(
                    name.startswith("on") for name, _ in attrs):
                self.problems.append(f"<{tag} {attrs}>")
        for name, value in attrs:
            if name.lower().startswith("on"):
                self.problems.append(f"<{tag}> has event handler {name}")
            if name.lower() in ("href", "src", "action", "formaction", "xlink:href") and value:
                squashed = re.sub(r"[\x00-\x20]+", "", value).lower()
                if squashed.startswith(("javascript:", "data:", "vbscript:")):
                    self.problems.append(f"<{tag} {name}={value!r}>")


def assert_inert(body: str, where: str):
    inspector = Inspector()
    inspector.feed(body)
    assert inspector.problems == [], f"{where}: {inspector.problems[:5]}"


@pytest.fixture
def hostile_note(member, alliance):
    from alliance.alliances import services as alliances

    alliances.update_settings(alliances.coordinators_of(alliance)[0], alliance,
                              publish_clear_allowed=True)
    return posting.post_note(member, posting.NoteDraft(
        title=PAYLOADS[0] + PAYLOADS[5], tlp="CLEAR", alliance_ids=[alliance.id],
        objects=hostile_objects(), description="\n\n".join(PAYLOADS), labels=PAYLOADS[:3],
        publish_public=True))


def test_hostile_strings_are_inert_on_every_page(client, member, coordinator, hostile_note):
    comments.add_comment(member, hostile_note, "comment", " ".join(PAYLOADS))
    comments.add_comment(member, hostile_note, "sighting", PAYLOADS[2])
    factories.login(client, coordinator)
    pages = {
        "note page": f"/notes/{hostile_note.uuid}",
        "feed": "/notes/",
        "search": "/notes/?q=script",
        "public insights": "/insights/",
        "public note": f"/insights/{hostile_note.uuid}",
    }
    for where, path in pages.items():
        response = client.get(path)
        assert response.status_code == 200, (where, response.status_code)
        body = response.get_data(as_text=True)
        assert_inert(body, where)
    page = client.get(pages["note page"]).get_data(as_text=True)
    assert "&lt;script&gt;" in page  # shown as text, so the analyst sees what was posted
    atom = client.get("/insights/feed.atom")
    assert atom.status_code == 200 and b"<script>" not in atom.data


def test_the_download_is_json_not_html(client, coordinator, hostile_note):
    factories.login(client, coordinator)
    response = client.get(f"/notes/{hostile_note.uuid}/bundle.json")
    assert response.status_code == 200
    assert response.mimetype == "application/stix+json"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "attachment" in response.headers["Content-Disposition"]


def test_markdown_links_keep_only_safe_schemes():
    from alliance.core.text import render_markdown

    html = str(render_markdown("[a](javascript:alert(1)) [b](JAVASCRIPT:x) [c](data:text/html,x)"
                               " [d](https://ok.example/) [e](mailto:a@b.example) <script>x</script>"))
    assert_inert(html, "markdown")
    assert 'href="https://ok.example/"' in html and 'href="mailto:a@b.example"' in html
    assert "<script" not in html
