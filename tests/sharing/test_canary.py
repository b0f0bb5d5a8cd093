"""Canary: one alliance's notes — every TLP, posted through the real posting service — carry
a unique string in every field (title, description, incident details, labels, observables,
indicator names, a later version of a shared indicator, comments, opinions, sightings). No
response to an outsider contains any of those strings or the notes' ids, on any GET page of the
app (every route, with its arguments filled from this world: the feed, search by the canary and
by its observable values, the note page and its graph, bundle download, edit page, the public
Insights page and Atom feed, alliance and organisation pages, audit logs, ...). An outsider's
counts are the same before and after the notes were posted.

Outsiders: a user of an organisation with no membership, of organisations whose membership was
requested, invited or rejected, of organisations that were active when the notes were posted
(named on the RED note, commenting, one a coordinator) and then suspended, left or were
removed, a platform admin (no organisation), and an anonymous visitor. Also a coordinator of
the alliance who is an active member but not named on the RED note must see nothing of that
note. A control reader (an active member) sees the strings, so that the check can fail. The
CLEAR note is retracted after being published publicly: it leaves every path, and becomes a
tombstone (its title, no content) for the signed-in users who could read it before."""
import uuid
from urllib.parse import unquote_plus, urlencode

import pytest

from alliance.alliances.models import Coordinator
from alliance.dashboard import services as dashboard
from alliance.digests.models import WatchTerm
from alliance.extensions import db
from alliance.notes import comments, compose, editing, posting, reading, saved
from alliance.notes.models import Note
from alliance.sharing.policy import Principal, count_readable, get_readable_note
from alliance.stix import attack
from tests import factories

CANARY = f"cnry{uuid.uuid4().hex[:12]}"
TLPS = ("CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED")
STATES = ("requested", "invited", "rejected", "suspended", "left", "removed")
# Organisations active at posting time whose membership then ends this way.
LATER = {"suspended", "left", "removed"}


def _fragments() -> dict[str, str]:
    """Field name -> the canary text stored in it (all distinct, all containing CANARY)."""
    fields = ("title", "description", "details", "label", "domain", "url", "comment",
              "opinion", "sighting", "version")
    values = {f: f"{CANARY}-{f}" for f in fields}
    values["domain"] = f"{CANARY}-domain.example"
    values["url"] = f"https://{CANARY}-url.example/{CANARY}-path"
    values["saved search"] = f"{CANARY}-saved-search"
    # A STIX timestamp cannot hold the canary; this one is used nowhere else.
    values["version modified"] = "2025-02-03T04:05:06.789Z"
    return values


FRAGMENTS = _fragments()


def _indicator(stix_id: str, modified: str, name: str, description: str, org) -> dict:
    return {"type": "indicator", "spec_version": "2.1", "id": stix_id,
            "created": "2025-01-01T00:00:00.000Z", "modified": modified, "name": name,
            "description": description, "created_by_ref": org.stix_id,
            "pattern": "[domain-name:value = 'shared-infra.example']", "pattern_type": "stix",
            "valid_from": "2025-01-01T00:00:00Z"}


@pytest.fixture
def world():
    poster_org = factories.make_org("Canary Org")
    poster = factories.make_user(poster_org, "poster@canary.example", role="org_admin")
    canary = factories.make_alliance(poster, slug="canary", name="Canary Alliance",
                                     publish_clear_allowed=True)
    commons = factories.make_alliance(poster, slug="commons", name="Commons Alliance",
                                      publish_clear_allowed=True)

    insider_org = factories.make_org("Insider Org")
    insider = factories.make_user(insider_org, "analyst@insider.example")
    factories.add_member(canary, insider_org, "active")

    outsiders = {"no membership": factories.make_user(factories.make_org("Loner Org"),
                                                      "analyst@loner.example")}
    later = []
    for state in STATES:
        org = factories.make_org(f"{state.title()} Org")
        user = factories.make_user(org, f"analyst@{state}.example")
        factories.add_member(commons, org, "active")  # they do share somewhere
        factories.add_member(canary, org, "active" if state in LATER else state)
        if state in LATER:
            later.append((org, state))
        outsiders[state] = user
    outsiders["platform admin"] = factories.make_admin("root@platform.example")
    member_coordinator = factories.make_user(insider_org, "coordinator@insider.example")
    db.session.add(Coordinator(alliance_id=canary.id, user_id=member_coordinator.id))
    # A coordinator of the canary alliance whose organisation is suspended there: not
    # a coordinator any more as far as reading goes.
    coordinator = outsiders["suspended"]
    db.session.add(Coordinator(alliance_id=canary.id, user_id=coordinator.id))
    db.session.commit()

    # Before the canary: a public CLEAR note everyone reads, holding version 1 of an indicator
    # that the canary org later updates inside a canary note.
    shared_id = f"indicator--{uuid.uuid4()}"
    version_1 = _indicator(shared_id, "2025-01-01T00:00:00.000Z", "Shared infrastructure", "v1",
                           poster_org)
    public = posting.post_note(poster, posting.NoteDraft(
        title="Weekly public summary", tlp="CLEAR", alliance_ids=[commons.id], publish_public=True,
        objects=[poster_org.stix_identity, version_1]))
    # The poster's saved search (its name is theirs alone: every other user's 404).
    search, _new = saved.save_search(poster, FRAGMENTS["saved search"], f"q={CANARY}")
    return {"poster": poster, "insider": insider, "outsiders": outsiders, "later": later,
            "saved search": search.id,
            "member coordinator": member_coordinator,
            "canary": canary, "commons": commons, "public": public, "shared_id": shared_id}


def _outsider_counts(outsiders) -> dict:
    counts = {}
    for label, user in outsiders.items():
        p = Principal.of(user)
        counts[label] = (count_readable(p), len(reading.feed(p, limit=1000)[0]),
                         len(reading.who_has_seen(p, FRAGMENTS["domain"])[1]),
                         len(reading.feed(p, query=CANARY, limit=1000)[0]))
    p = Principal.anonymous()
    counts["anonymous"] = (count_readable(p), len(reading.feed(p, limit=1000)[0]))
    return counts


def _post_canary_notes(w) -> list[Note]:
    poster, canary = w["poster"], w["canary"]
    org = poster.organisation
    f = FRAGMENTS
    notes = []
    for tlp in TLPS:
        objects = compose.incident_report(org, tlp, compose.IncidentDraft(
            title=f"{f['title']} {tlp}", description=f["description"],
            details=f["details"],
            observables_text=f"{f['domain']}\n{f['url']}\n198.51.100.77",
            attack_ids_text="T1566", sectors=["energy"], countries=["DE"]))
        if tlp == "AMBER":
            # Version 2 of the indicator whose version 1 is in the public note.
            objects.append(_indicator(w["shared_id"], f["version modified"],
                                      f["version"], f["version"], org))
        recipients = []
        if tlp == "RED":
            recipients = [w["insider"].id] + [w["outsiders"][s].id for s in sorted(LATER)]
        notes.append(posting.post_note(poster, posting.NoteDraft(
            title=f"{f['title']} {tlp}", tlp=tlp, alliance_ids=[canary.id], objects=objects,
            kind="incident", description=f["description"], labels=[f["label"]], recipient_ids=recipients,
            publish_public=tlp == "CLEAR", sectors=["energy"], countries=["DE"])))
    for note in notes:
        for author in [w["insider"]] + [w["outsiders"][s] for s in sorted(LATER)]:
            if get_readable_note(Principal.of(author), note.report_id) is None:
                continue
            comments.add_comment(author, note, "comment", f["comment"])
            comments.add_comment(author, note, "opinion", f["opinion"], opinion="agree")
            comments.add_comment(author, note, "sighting", f["sighting"])
    return notes


def _leaks(body: str, asked: str = "") -> list[str]:
    """Canary fragments in a response, apart from text the reader typed into the request."""
    return [name for name, text in FRAGMENTS.items() if text in body and text not in asked]


def test_an_alliances_notes_never_reach_outsiders(world, app):
    w = world
    before = _outsider_counts(w["outsiders"])
    notes = _post_canary_notes(w)
    for org, state in w["later"]:
        factories.add_member(w["canary"], org, state)
    editing.retract_note(w["poster"], notes[0], "Published by mistake.")  # the CLEAR one
    assert _outsider_counts(w["outsiders"]) == before

    # The control: an active member reads every field, so a leak would be visible.
    insider = app.test_client()
    factories.login(insider, w["insider"])
    amber = notes[TLPS.index("AMBER")]
    page = insider.get(f"/notes/{amber.uuid}")
    assert page.status_code == 200
    assert {"title", "description", "label", "comment"} <= set(_leaks(page.get_data(True)))
    bundle = insider.get(f"/notes/{amber.uuid}/bundle.json").get_data(True)
    assert {"title", "description", "details", "label", "domain", "url", "version",
            "version modified"} <= set(_leaks(bundle))
    assert _leaks(insider.get(f"/notes/?q={CANARY}").get_data(True), CANARY) == ["title"]
    # The feed's exports: the STIX bundle holds every field, the CSV and list the values.
    exported = insider.get("/notes/export/bundle.json").get_data(True)
    assert {"title", "description", "details", "label", "domain", "url", "version"} <= set(
        _leaks(exported))
    for path in ("observables.csv", "indicators.txt"):
        assert {"domain", "url"} <= set(_leaks(insider.get(f"/notes/export/{path}").get_data(True)))
    # The public note's graph reaches the AMBER note (they share an indicator's value) for a
    # reader of both: the crawl below checks that it does not for anyone else.
    graph = insider.get(f"/notes/{w['public'].uuid}/graph.json").get_data(True)
    assert amber.uuid in graph and "title" in _leaks(graph)

    # Everyone who must see none of it, and a coordinator of the alliance (an active member)
    # who is not named on the RED note and must see none of that note.
    readers = {label: (user, FRAGMENTS, notes) for label, user in w["outsiders"].items()}
    readers["anonymous"] = (None, FRAGMENTS, notes)
    red = notes[TLPS.index("RED")]
    readers["coordinator not named on RED"] = (
        w["member coordinator"], {"RED title": red.title}, [red])
    problems, visited = [], set()
    for label, (user, secret, hidden) in readers.items():
        client = app.test_client()
        if user is not None:
            factories.login(client, user)
        usable = user is not None and user.can_act
        for endpoint, path in _every_page(app, w, notes, user):
            visited.add(endpoint)
            response = client.get(path)
            body, asked = response.get_data(as_text=True), unquote_plus(path)
            expected = _expected_status(endpoint, path, hidden, usable)
            # The retracted CLEAR note was readable by every signed-in user: its pages are a
            # tombstone for them (410: its title, who retracted it, when and why), and the
            # rest of its content stays hidden (tests/notes/test_tombstones.py).
            tombstone = (usable and secret is FRAGMENTS and notes[0].uuid in path
                         and endpoint.startswith("notes."))
            if tombstone:
                expected = 410
            if expected and response.status_code != expected:
                problems.append(f"{label}: GET {path} -> {response.status_code}, not {expected}")
            if response.status_code >= 500:
                problems.append(f"{label}: GET {path} -> {response.status_code}")
            leaked = [name for name, text in secret.items() if text in body and text not in asked
                      and not (tombstone and name == "title")]
            leaked += [f"the id of the {n.tlp} note" for n in hidden
                       if n.uuid in body and n.uuid not in asked]
            if leaked:
                problems.append(f"{label}: GET {path} shows {', '.join(leaked)}")
    assert {"notes.feed", "notes.show", "notes.download", "notes.graph_data", "notes.edit",
            "insights.insights", "insights.insight", "insights.atom", "audit.alliance_log",
            "dashboard.index", "feeds.export_bundle", "feeds.export_csv",
            "feeds.export_indicators", "feeds.run_search"} <= visited
    assert not problems, "\n".join(problems)


# One-time tokens, mail keys and static files carry no note content. The TAXII routes with
# arguments answer 401 to any session (they take API keys only; their reads are checked per
# key in tests/taxii/test_leaks.py); those without arguments are visited here and must say 401
# without a trace of the canary.
SKIPPED_ARGUMENTS = {"token", "key", "filename", "collection_id", "object_id", "status_id",
                     "key_id"}
EXPORTS = {"feeds.export_bundle": "bundle.json", "feeds.export_csv": "observables.csv",
           "feeds.export_indicators": "indicators.txt"}
SEARCHES = [CANARY, FRAGMENTS["domain"], FRAGMENTS["url"], "198.51.100.77", FRAGMENTS["label"]]


def _every_page(app, w, notes, user):
    """(endpoint, path) for every GET route of the app, arguments filled from this world."""
    values = {
        "uuid": [n.uuid for n in notes] + [w["public"].uuid],
        "slug": sorted({w["canary"].slug, w["commons"].slug, w["poster"].organisation.slug}
                       | ({user.organisation.slug} if user and user.organisation else set())),
        "kind": ["incident", "indicators", "analysis", "bundle"],
        "chart": list(dashboard.CHARTS),
        "search_id": [w["saved search"]],
    }
    urls = app.url_map.bind("alliance.test")
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.arguments & SKIPPED_ARGUMENTS:
            continue
        if not rule.arguments:
            yield rule.endpoint, urls.build(rule.endpoint, {})
            continue
        (argument,) = rule.arguments
        for value in values[argument]:
            yield rule.endpoint, urls.build(rule.endpoint, {argument: value})
    for q in SEARCHES:
        yield "notes.feed", f"/notes/?{urlencode({'q': q})}"
        for endpoint, path in EXPORTS.items():
            yield endpoint, f"/notes/export/{path}?{urlencode({'q': q})}"
    # The coordinators' charts of each alliance, and every chart over the longer window.
    for chart in dashboard.ALLIANCE_CHARTS:
        for slug in (w["canary"].slug, w["commons"].slug):
            yield "dashboard.data", f"/dashboard/data/{chart}.json?alliance={slug}&days=90"
    for chart in dashboard.CHARTS:
        yield "dashboard.data", f"/dashboard/data/{chart}.json?days=90"


def _expected_status(endpoint: str, path: str, hidden, usable: bool) -> int | None:
    """For the pages of a hidden note: 404 to a member, sign-in (or status page) redirect to
    anyone else on member pages, 404 on the public page."""
    if not any(n.uuid in path for n in hidden):
        return None
    if endpoint.startswith("insights."):
        return 404
    return 404 if usable else 302


def test_version_history_shows_no_version_from_a_note_the_reader_cannot_read(world):
    """The note page's history lists the stored versions of the note's objects. A version
    stored with another note (another audience, or a higher TLP) is that note's content."""
    w = world
    notes = _post_canary_notes(w)
    loner = Principal.of(w["outsiders"]["no membership"])
    assert get_readable_note(loner, notes[TLPS.index("AMBER")].report_id) is None
    public = get_readable_note(loner, w["public"].report_id)
    assert public is not None
    shown = [row.body.get("name") for row in reading.history(loner, public)]
    assert FRAGMENTS["version"] not in shown, shown


def _chart_figures(client, w) -> dict:
    """Every chart a dashboard draws from notes, as this client's user reads it: chart (and
    alliance) -> (status, {category: [values]})."""
    paths = {name: f"/dashboard/data/{name}.json?days=90"
             for name in dashboard.ANALYST_CHARTS}
    for name in ("posting", "tlp-mix"):
        for alliance in (w["canary"], w["commons"]):
            paths[f"{name} {alliance.slug}"] = (f"/dashboard/data/{name}.json?days=90"
                                                f"&alliance={alliance.slug}")
    figures = {}
    for key, path in paths.items():
        response = client.get(path)
        data = response.get_json() if response.status_code == 200 else None
        figures[key] = (response.status_code, data and {
            label: [s["values"][i] for s in data["series"]]
            for i, label in enumerate(data["labels"])})
    return figures


def _counts_nothing_new(before, after) -> bool:
    """The chart answers as before, or less: a membership that ended since takes away its
    alliance's row (the "alliances" chart) or a coordinator's charts of it (404). Every
    category left has the figures it had, and none is new."""
    (status_before, figures_before), (status_after, figures_after) = before, after
    if status_after == 404:
        return True
    if status_after != status_before or figures_after is None or figures_before is None:
        return status_after == status_before and figures_after == figures_before
    return (set(figures_after) <= set(figures_before)
            and all(figures_before[k] == v for k, v in figures_after.items()))


def test_no_dashboard_chart_counts_a_canary_note_its_viewer_cannot_read(world, app):
    """The figures of every chart drawn from notes (and their data endpoints) are the same for
    every outsider before and after the canary notes were posted, commented on, and the
    memberships ended; the control reader's change, and a coordinator of the alliance not
    named on the RED note counts every canary note but that one."""
    w = world
    watchers = list(w["outsiders"].values()) + [w["insider"], w["member coordinator"]]
    for user in watchers:  # every one watches what the canary notes carry
        db.session.add_all([WatchTerm(user_id=user.id, kind="value", value=FRAGMENTS["domain"]),
                            WatchTerm(user_id=user.id, kind="sector", value="energy")])
    db.session.commit()
    clients = {}
    for label, user in {**w["outsiders"], "insider": w["insider"],
                        "member coordinator": w["member coordinator"]}.items():
        clients[label] = app.test_client()
        factories.login(clients[label], user)
    clients["anonymous"] = app.test_client()
    before = {label: _chart_figures(client, w) for label, client in clients.items()}
    notes = _post_canary_notes(w)
    for org, state in w["later"]:
        factories.add_member(w["canary"], org, state)
    editing.retract_note(w["poster"], notes[0], "Published by mistake.")
    after = {label: _chart_figures(client, w) for label, client in clients.items()}

    for label in list(w["outsiders"]) + ["anonymous"]:
        changed = {key: (before[label][key], figures)
                   for key, figures in after[label].items()
                   if not _counts_nothing_new(before[label][key], figures)}
        assert not changed, (label, changed)

    # The control: the insider reads the GREEN, AMBER, AMBER+STRICT and RED canary notes.
    insider = after["insider"]
    assert sum(map(sum, insider["activity"][1].values())) == sum(
        map(sum, before["insider"]["activity"][1].values())) + 4
    assert insider["observables"][1][f"{FRAGMENTS['domain']} (domain)"] == [4]
    technique = attack.technique("T1566").label
    assert insider["techniques"][1] == {technique: [4]}
    assert insider["watch-terms"][1] == {f"{FRAGMENTS['domain']} (value)": [4],
                                         "energy (sector)": [4]}
    # The coordinator reads the retracted CLEAR note (theirs to moderate), not the RED one.
    mix = after["member coordinator"][f"tlp-mix {w['canary'].slug}"][1]
    assert mix == {"TLP:CLEAR": [1], "TLP:GREEN": [1], "TLP:AMBER": [1],
                   "TLP:AMBER+STRICT": [1], "TLP:RED": [0]}
    posting_figures = after["member coordinator"][f"posting {w['canary'].slug}"][1]
    assert posting_figures == {"Canary Org": [4]}
