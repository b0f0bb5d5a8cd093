"""Warning lists (issue 23): values on well-known benign or reserved lists, from the MISP
warning lists package's offline data, are flagged at compose and upload-preview time (Share
asks to confirm them), marked on the note page, and left out of correlation and watch
alerts."""
import ipaddress

import orjson
from flask_migrate import downgrade, upgrade
from sqlalchemy import select, text

from alliance import create_app
from alliance.digests.watch_terms import add_watch_term
from alliance.extensions import db
from alliance.notes import posting, reading, warninglists
from alliance.notes.models import Note, Observable
from alliance.sharing.policy import Principal
from tests.digests.helpers import ledger, run_alerts
from tests.notes.helpers import bundle, counts, identity, indicator


def _flag(kind, value):
    flag = warninglists.check(kind, value)
    return flag.list.id if flag else None


# --- the check, against the package's data -----------------------------------------------

def test_a_private_address_is_flagged_as_rfc1918():
    flag = warninglists.check("ipv4", "10.0.0.1")
    assert flag.list.id == "rfc1918"
    assert flag.message == "10.0.0.1 is in RFC 1918 private space"
    # It is in RFC 5735's special-use list too: the more specific reason is named.
    assert [w.id for w in warninglists.hits("ipv4", "10.0.0.1")] == ["rfc1918", "rfc5735"]


def test_a_public_resolver_is_flagged():
    assert _flag("ipv4", "8.8.8.8") == "public-dns-v4"
    assert _flag("ipv4", "9.9.9.9") == "public-dns-v4"
    assert warninglists.check("ipv4", "8.8.8.8").message == \
        "8.8.8.8 is in the list of public DNS resolvers"


def test_reserved_space_names_and_hashes_are_flagged():
    assert _flag("ipv4", "127.0.0.1") == "rfc5735"
    assert _flag("ipv4", "100.64.1.1") == "rfc6598"
    assert _flag("ipv6", "fe80::1") == "ipv6-linklocal"
    assert _flag("ipv4", "239.1.2.3") == "multicast"
    assert _flag("cidr4", "10.1.0.0/16") == "rfc1918"  # a range inside private space
    assert _flag("url", "http://192.168.1.10/admin") == "rfc1918"  # an address as the host
    assert _flag("domain", "google.com") == "tranco10k"
    assert _flag("domain", "www.google.com") == "tranco10k"
    assert _flag("md5", "d41d8cd98f00b204e9800998ecf8427e") == "empty-hashes"


def test_ordinary_values_are_not_flagged():
    for kind, value in [("ipv4", "45.77.12.9"), ("domain", "evil-login.example"),
                        ("md5", "0f343b0931126a20f133d67c2b018a3b"), ("cve", "CVE-2024-3094"),
                        ("url", "https://google.com/malicious-drive-link")]:
        assert warninglists.check(kind, value) is None, (kind, value)


def test_a_name_under_a_top_site_is_not_flagged():
    """github.io is a top site; evil.github.io is someone's page on it: an indicator."""
    assert _flag("domain", "github.io") == "tranco10k"
    assert _flag("domain", "evil.github.io") is None


def test_cloud_ranges_are_not_flagged():
    """Attackers host in the clouds: an AWS address two notes share must correlate."""
    aws = warninglists.read_list("amazon-aws")["list"]
    address = str(next(ipaddress.ip_network(n) for n in aws if "." in n).network_address + 1)
    assert warninglists.check("ipv4", address) is None


def test_test_net_2_is_on_the_rfc5735_list_but_the_platform_does_not_flag_it():
    """198.51.100.0/24 (TEST-NET-2, RFC 5737) is in the package's RFC 5735 list. The
    platform keeps the documentation ranges out (warninglists.DOCUMENTATION_RANGES): they
    are what exercises, training and the demo share, and they correlate like any address."""
    assert "198.51.100.0/24" in warninglists.read_list("rfc5735")["list"]
    assert warninglists.check("ipv4", "198.51.100.23") is None
    assert warninglists.check("cidr4", "198.51.100.0/24") is None
    assert warninglists.check("ipv4", "203.0.113.7") is None
    assert warninglists.check("ipv6", "2001:db8::7") is None


# --- compose and upload -------------------------------------------------------------------

def _indicators(client, alliance, observables, **extra):
    return client.post("/notes/new/indicators", data={
        "title": "Addresses from the firewall", "tlp": "AMBER", "alliances": str(alliance.id),
        "observables": observables, **extra})


def test_compose_with_a_private_address_asks_to_confirm_and_stores_nothing(as_member,
                                                                          alliance):
    response = _indicators(as_member, alliance, "10.0.0.1\n45.77.12.9", post="1",
                           submission="tok-1")
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "10.0.0.1 is in RFC 1918 private space: share anyway?" in page
    box = page[page.index('id="flagged-values"'):]
    assert "<code class=\"break\">10.0.0.1</code> is in RFC 1918 private space" in box
    assert "45.77.12.9" not in box[:box.index("</section>")]
    assert 'name="confirm_flagged"' in page
    assert 'aria-invalid="true"' in page[page.index('id="field-confirm_flagged"'):]
    assert counts() == (0, 0, 0)


def test_compose_posts_once_the_values_are_confirmed_and_stores_them_flagged(as_member,
                                                                           alliance):
    _indicators(as_member, alliance, "10.0.0.1\n45.77.12.9", post="1", submission="tok-2")
    response = _indicators(as_member, alliance, "10.0.0.1\n45.77.12.9", post="1",
                           submission="tok-2", confirm_flagged="y")
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    rows = dict(db.session.execute(select(Observable.value, Observable.warning)).all())
    assert rows == {"10.0.0.1": "rfc1918", "45.77.12.9": None}


def test_compose_without_flagged_values_asks_nothing(as_member, alliance):
    response = _indicators(as_member, alliance, "45.77.12.9\n198.51.100.23", post="1")
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]


def test_the_compose_preview_lists_the_flagged_values(as_member, alliance):
    response = _indicators(as_member, alliance, "8.8.8.8\n45.77.12.9", preview="1")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and 'id="audience-preview"' in page
    listed = page[page.index('id="flagged-list"'):]
    listed = listed[:listed.index("</ul>")]
    assert "8.8.8.8</code> is in the list of public DNS resolvers: share anyway?" in listed
    assert "45.77.12.9" not in listed
    assert 'name="confirm_flagged"' in page


def test_the_upload_preview_lists_the_flagged_values(as_member, alliance):
    raw = orjson.dumps(bundle(identity("Sender"),
                              indicator("[ipv4-addr:value = '192.168.10.5']"),
                              indicator("[domain-name:value = 'evil-login.example']"),
                              {"type": "ipv4-addr", "spec_version": "2.1",
                               "id": "ipv4-addr--2f2b8e4c-52b5-5b0a-9b9b-6b3bd5a2f2d1",
                               "value": "127.0.0.1"})).decode()
    response = as_member.post("/notes/new/bundle", data={
        "title": "Uploaded", "tlp": "AMBER", "alliances": str(alliance.id),
        "bundle_text": raw, "preview": "1"})
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    listed = page[page.index('id="flagged-list"'):]
    listed = listed[:listed.index("</ul>")]
    assert "192.168.10.5</code> is in RFC 1918 private space" in listed
    assert "127.0.0.1</code> is in RFC 5735 special-use space" in listed
    assert "evil-login.example" not in listed
    assert counts() == (0, 0, 0)

    refused = as_member.post("/notes/new/bundle", data={
        "title": "Uploaded", "tlp": "AMBER", "alliances": str(alliance.id),
        "bundle_text": raw, "post": "1"})
    assert refused.status_code == 422 and counts() == (0, 0, 0)
    shared = as_member.post("/notes/new/bundle", data={
        "title": "Uploaded", "tlp": "AMBER", "alliances": str(alliance.id),
        "bundle_text": raw, "post": "1", "confirm_flagged": "y"})
    assert shared.status_code == 302, shared.get_data(as_text=True)[:2000]


# --- the note page, correlation, alerts ----------------------------------------------------

def _post(author, alliance, title, *values):
    return posting.post_note(author, posting.NoteDraft(
        title=title, tlp="GREEN", alliance_ids=[alliance.id], kind="indicators",
        objects=[indicator(f"[ipv4-addr:value = '{v}']", name=v) for v in values]))


def test_the_note_page_marks_the_flagged_value(as_member, member, alliance):
    note = _post(member, alliance, "Mixed", "10.0.0.1", "45.77.12.9")
    page = as_member.get(f"/notes/{note.uuid}").get_data(as_text=True)
    summary = page[page.index('id="flagged-observables"'):page.index('id="objects"')]
    assert '<span class="badge state-pending">Warning list</span> <code class="break">' \
           '10.0.0.1</code> is in RFC 1918 private space' in summary
    assert "45.77.12.9" not in summary
    cards = page[page.index('id="type-indicator"'):]
    marks = cards.count('<ul class="plain warning-hits">')
    assert marks == 1  # on the 10.0.0.1 indicator's card only
    assert "10.0.0.1</code> is in RFC 1918 private space: not correlated" in cards


def test_notes_sharing_only_a_private_address_do_not_correlate(as_member, member, coordinator,
                                                               alliance):
    mine = _post(member, alliance, "Mine", "10.0.0.1")
    theirs = _post(coordinator, alliance, "Theirs", "10.0.0.1")
    assert reading.correlated(Principal.of(member), mine) == []
    page = as_member.get(f"/notes/{mine.uuid}").get_data(as_text=True)
    assert f'id="related-{theirs.uuid}"' not in page
    assert "No other note you can read shares an observable with this one." in page


def test_notes_sharing_an_ordinary_address_do_correlate(as_member, member, coordinator,
                                                        alliance):
    mine = _post(member, alliance, "Mine", "10.0.0.1", "45.77.12.9")
    theirs = _post(coordinator, alliance, "Theirs", "10.0.0.1", "45.77.12.9")
    related = reading.correlated(Principal.of(member), mine)
    assert [(n.id, values) for n, values in related] == [(theirs.id, ["45.77.12.9"])]
    page = as_member.get(f"/notes/{mine.uuid}").get_data(as_text=True)
    assert f'id="related-{theirs.uuid}"' in page


def test_a_watch_term_on_a_flagged_value_does_not_alert(member, coordinator, alliance):
    """The term can be watched (the form accepts it), but a note carrying it alerts nobody:
    a private address two organisations see is not news. An ordinary term still alerts."""
    add_watch_term(member, "value", "10.0.0.1")
    add_watch_term(member, "value", "45.77.12.9")
    flagged = _post(coordinator, alliance, "Private only", "10.0.0.1")
    run_alerts()
    assert [row.note_id for row in ledger(member, "alert")] == []

    ordinary = _post(coordinator, alliance, "Ordinary", "45.77.12.9", "10.0.0.1")
    run_alerts()
    [row] = ledger(member, "alert")
    assert (row.note_id, row.watch_term) == (ordinary.id, "45.77.12.9")
    assert flagged.id != ordinary.id
    db.session.expire_all()
    assert db.session.scalar(select(Note.title).where(Note.id == flagged.id)) == "Private only"


# --- the migration flags what was stored before -------------------------------------------

def test_the_migration_flags_the_observables_stored_before_it(empty_database_url):
    from tests import factories

    fresh = create_app({"SQLALCHEMY_DATABASE_URI": empty_database_url})
    with fresh.app_context():
        upgrade()
        org = factories.make_org("Old Org")
        admin = factories.make_user(org, "admin@old.example", role="org_admin")
        alliance = factories.make_alliance(admin, slug="old", name="Old")
        _post(admin, alliance, "Before", "10.0.0.1", "45.77.12.9")
        db.session.remove()
        downgrade(revision="c5e1a7d3f9b2")  # as stored before the column
        upgrade()
        with db.engine.connect() as conn:
            rows = dict(conn.execute(text("SELECT value, warning FROM observables")).all())
        assert rows == {"10.0.0.1": "rfc1918", "45.77.12.9": None}
        db.session.remove()
        db.engine.dispose()
