"""Issue 23's feed and export in a real browser (chromium; axe-core audits every page it
loads): an analyst filters the feed by TLP and STIX type from choice lists, sees each note's
alliances and counts, saves the search, runs it again from the list, downloads the CSV of
observables and the indicator list the filters select (each named with the strictest TLP it
holds), and deletes the saved search."""
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest

from alliance.notes import comments, posting
from tests.browser.helpers import signed_in_page
from tests.notes.helpers import identity

pytestmark = pytest.mark.browser


def _post(author, alliance, title, tlp, value):
    ip = {"type": "ipv4-addr", "spec_version": "2.1", "id": f"ipv4-addr--{uuid.uuid4()}",
          "value": value}
    return posting.post_note(author, posting.NoteDraft(
        title=title, tlp=tlp, alliance_ids=[alliance.id], objects=[identity(title), ip]))


def test_filter_the_feed_save_the_search_and_download_its_exports(
        live, browser, member, coordinator, alliance, tmp_path):
    base = live["url"]
    amber = _post(coordinator, alliance, "Amber beacon", "AMBER", "203.0.113.51")
    _post(coordinator, alliance, "Green beacon", "GREEN", "203.0.113.52")
    comments.add_comment(coordinator, amber, "sighting", "")
    context, page = signed_in_page(browser, base, member.email)

    page.goto(f"{base}/notes/")
    page.select_option("select[name=tlp]", "AMBER")
    page.select_option("select[name=type]", "ipv4-addr")
    page.click("#filter-submit")
    page.wait_for_load_state()
    assert parse_qs(urlsplit(page.url).query) == {"tlp": ["AMBER"], "type": ["ipv4-addr"]}
    assert page.locator(".note-title").all_inner_texts() == ["Amber beacon"]
    facts = page.inner_text(f"#note-{amber.uuid} .note-item-facts")
    assert "Atlantic Alliance" in facts and "1 observable" in facts and "1 sighting" in facts

    page.fill("#save-search input[name=name]", "Amber IPs")
    page.click("#save-search-submit")
    page.wait_for_load_state()
    assert "Saved “Amber IPs”." in page.inner_text("body")
    page.goto(f"{base}/notes/")
    assert page.locator(".note-title").count() == 2
    page.click("#saved-list a:has-text('Amber IPs')")
    page.wait_for_load_state()
    assert page.locator(".note-title").all_inner_texts() == ["Amber beacon"]

    with page.expect_download() as got:
        page.click("#export-csv")
    csv_file = got.value
    assert csv_file.suggested_filename.startswith("notes-TLP-AMBER-")
    path = tmp_path / "observables.csv"
    csv_file.save_as(path)
    lines = path.read_text().splitlines()
    assert lines[0] == "# TLP:AMBER"
    assert any("203.0.113.51" in line for line in lines)
    assert not any("203.0.113.52" in line for line in lines)

    page.check("#kind-ipv4")
    with page.expect_download() as got:
        page.click("#export-indicators-submit")
    path = tmp_path / "indicators.txt"
    got.value.save_as(path)
    assert got.value.suggested_filename.endswith(".txt")
    assert path.read_text().splitlines()[0] == "# TLP:AMBER"
    assert "203.0.113.51" in path.read_text().splitlines()

    page.click("#saved-list button:has-text('Delete')")
    page.wait_for_load_state()
    assert page.locator("#saved-list").count() == 0
    assert page.locator("#saved-none").count() == 1
    context.close()
