"""Issue 23, correlation by range: an address inside a network another readable note shares
correlates with it (both ways), a search by a network finds the addresses inside it, and
neither reaches a note the reader may not read nor a value on a warning list."""
import ipaddress
import random

import pytest
from sqlalchemy import select, text

from alliance.extensions import db
from alliance.notes import graph, posting, ranges, reading, summary
from alliance.notes.models import Observable
from alliance.sharing.policy import Principal
from alliance.stix import observables
from tests import factories
from tests.notes.helpers import indicator


def _post(author, alliance, title, *values, tlp="GREEN"):
    objects = [indicator(f"[{'ipv6' if ':' in v else 'ipv4'}-addr:value = '{v}']", name=v)
               for v in values]
    return posting.post_note(author, posting.NoteDraft(
        title=title, tlp=tlp, alliance_ids=[alliance.id], objects=objects,
        kind="indicators"))


def _related(principal, note):
    return {other.id: values for other, values in ranges.correlated(
        principal, note, reading.correlated(principal, note))}


@pytest.fixture
def world(member, coordinator, outsider, alliance):
    pacific = factories.make_alliance(outsider, slug="pacific", name="Pacific Alliance")
    return {
        "network": _post(member, alliance, "Botnet range", "198.51.100.0/24", "2001:db8::/48"),
        "inside": _post(coordinator, alliance, "Relay", "198.51.100.23"),
        "inside6": _post(coordinator, alliance, "Relay v6", "2001:db8::17"),
        "outside": _post(coordinator, alliance, "Next door", "198.51.101.5", "2001:db9::1"),
        "around": _post(coordinator, alliance, "Wider", "198.51.0.0/16"),
        "hidden": _post(outsider, pacific, "Elsewhere", "198.51.100.99"),
    }


def test_bounds_sort_as_the_addresses_do():
    rng = random.Random(23)
    for version, bits in ((4, 32), (6, 128)):
        kind = ranges.ADDRESS_KINDS[version]
        numbers = sorted(rng.getrandbits(bits) for _ in range(200))
        keys = [ranges.bounds(kind, str(ipaddress.ip_address(n)))[0] for n in numbers]
        assert keys == sorted(keys) and all(len(k) == 33 for k in keys)
    assert ranges.bounds("cidr4", "198.51.100.0/24") == (
        "4" + f"{0xC6336400:032x}", "4" + f"{0xC63364FF:032x}")
    assert ranges.bounds("domain", "evil.example") == (None, None)


def test_network_of_reads_every_address_and_network_as_ipaddress_does():
    """observables.network_of (an IPv4 address read without ipaddress, for bulk imports)
    against ipaddress itself, on values as detect() normalises them: random addresses and
    networks of both versions, edges included."""
    rng = random.Random(5)
    values = ["0.0.0.0",  # noqa: S104 (an address, not a binding)
              "255.255.255.255", "10.0.0.1", "0.0.0.0/0", "::", "::/0",
              "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"]
    for _ in range(2000):
        four, six = ipaddress.IPv4Address(rng.getrandbits(32)), ipaddress.IPv6Address(
            rng.getrandbits(128))
        values += [str(four), f"{four}/{rng.randint(0, 32)}", str(six),
                   f"{six}/{rng.randint(0, 128)}"]
    checked = 0
    for value in values:
        kind, normal = observables.detect(value)
        net = ipaddress.ip_network(normal, strict=False)
        assert observables.network_of(kind, normal) == (
            net.version, int(net.network_address), net.prefixlen), value
        assert ranges.bounds(kind, normal) == (
            ranges._key(net.version, int(net.network_address)),
            ranges._key(net.version, int(net.broadcast_address))), value
        checked += 1
    assert checked == len(values) == 8007
    assert observables.network_of("domain", "evil.example") is None
    assert observables.network_of("ipv4", "300.1.1.1") is None


def test_an_address_inside_a_shared_network_correlates_both_ways(world, member, coordinator):
    w = world
    mine = _related(Principal.of(member), w["network"])
    assert mine == {w["inside"].id: ["198.51.100.0/24"], w["inside6"].id: ["2001:db8::/48"],
                    w["around"].id: ["198.51.100.0/24"]}
    theirs = _related(Principal.of(coordinator), w["inside"])
    assert theirs == {w["network"].id: ["198.51.100.23"], w["around"].id: ["198.51.100.23"]}


def test_a_note_the_reader_cannot_read_is_never_related_by_range(world, outsider, member):
    hidden = world["hidden"]
    assert hidden.id not in _related(Principal.of(member), world["network"])
    # Its own author sees nothing of the alliance's notes either.
    assert _related(Principal.of(outsider), hidden) == {}


def test_a_search_by_a_network_finds_the_addresses_inside_it(world, member, as_member):
    w = world
    value, notes = reading.who_has_seen(Principal.of(member), "198.51.100.0/24")
    assert value == "198.51.100.0/24"
    assert {n.id for n in notes} == {w["network"].id, w["inside"].id, w["around"].id}
    _value, notes = reading.who_has_seen(Principal.of(member), "198.51.100.23")
    assert {n.id for n in notes} == {w["network"].id, w["inside"].id, w["around"].id}
    page = as_member.get("/notes/?q=198.51.100.0/24").get_data(as_text=True)
    assert w["inside"].uuid in page and w["hidden"].uuid not in page


def test_the_note_page_and_graph_show_notes_related_by_range(world, as_member):
    w = world
    page = as_member.get(f"/notes/{w['network'].uuid}").get_data(as_text=True)
    assert f'id="related-{w["inside"].uuid}"' in page
    assert f'id="related-{w["outside"].uuid}"' not in page
    data = as_member.get(f"/notes/{w['network'].uuid}/graph.json").get_json()
    related = {n["id"] for n in data["nodes"] if n["group"] == "related"}
    assert related == {f"note--{w[k].uuid}" for k in ("inside", "inside6", "around")}
    assert data["edges"] and graph.MAX_NODES >= data["shown"]


def test_values_on_a_warning_list_stay_out_of_range_correlation(member, coordinator, alliance):
    private = _post(member, alliance, "Inside", "10.0.0.0/8")
    host = _post(coordinator, alliance, "Host", "10.1.2.3")
    assert _related(Principal.of(member), private) == {}
    # The search finds the value itself, not the addresses inside it.
    found = reading.who_has_seen(Principal.of(member), "10.0.0.0/8")[1]
    assert [n.id for n in found] == [private.id]
    assert ranges.notes_in_range(Principal.of(member), "cidr4", "10.0.0.0/8") == []
    assert host.id not in _related(Principal.of(coordinator), private)


def test_a_range_lookup_walks_its_index(world, member):
    """PostgreSQL: the GiST index of values as inet; SQLite: the (kind, net_lo, net_hi)
    B-tree. The statement is the one correlation runs, less the read rule."""
    postgresql = db.session.get_bind().dialect.name == "postgresql"
    clause = ranges._related_clause("cidr4", "198.51.100.0/24",
                                    *ranges.bounds("cidr4", "198.51.100.0/24"), postgresql)
    stmt = select(Observable.note_id).where(clause)
    sql = str(stmt.compile(db.session.get_bind(), compile_kwargs={"literal_binds": True}))
    if postgresql:
        db.session.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(db.session.execute(text(f"EXPLAIN {sql}")).scalars())
        assert "ix_observables_network" in plan, plan
    else:
        plan = " ".join(str(row[-1]) for row in db.session.execute(
            text(f"EXPLAIN QUERY PLAN {sql}")))
        assert "ix_observables_kind_net" in plan, plan
    # The /24 itself, the /16 around it, the two addresses inside (one in another alliance:
    # the read rule, left out here, is what keeps it from the member).
    assert len(db.session.scalars(stmt).all()) == 4


def test_the_observables_table_counts_notes_related_by_range(world, member):
    rows = {r.value: r for r in summary.observable_rows(Principal.of(member), world["network"])}
    # The /24: the relay inside it and the /16 around it, not the address in another
    # alliance; the /48: the relay inside it, not 2001:db9::1.
    assert (rows["198.51.100.0/24"].related, rows["2001:db8::/48"].related) == (2, 1)
