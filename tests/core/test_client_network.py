"""Per-address rate limits (sign-in, password reset, registration, TAXII without a valid
key) count a client by its address, and an IPv6 client by its /64."""
import pytest


@pytest.mark.parametrize(("address", "counted"), [
    ("203.0.113.7", "203.0.113.7"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
    ("2001:DB8:1:2::1", "2001:db8:1:2::/64"),
    ("::ffff:203.0.113.7", "203.0.113.7"),
    ("not an address", "not an address"),
])
def test_per_address_limits_count_an_ipv6_clients_64(app, address, counted):
    from alliance.extensions import client_network

    with app.test_request_context(environ_base={"REMOTE_ADDR": address}):
        assert client_network() == counted
