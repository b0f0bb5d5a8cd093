"""Filter values outside their grammar are a 400 naming the filter: added_after and
match[version] take RFC 3339 timestamps only, limit ASCII digits only."""
import pytest

from alliance.apikeys.services import create_key
from alliance.taxii.services import alliance_collection_id

TAXII = "application/taxii+json;version=2.1"


def _get(client, member, alliance, **query):
    key = create_key(member, "SIEM")[1]
    return client.get(f"/taxii2/api/collections/{alliance_collection_id(alliance.id)}/objects/",
                      headers={"Authorization": f"Bearer {key}", "Accept": TAXII},
                      query_string=query)


@pytest.mark.parametrize("value", ["2024-05-01 12:00:00+00:00", "20240501T120000+00:00",
                                   "2024-05-01T12:00:00", "2024-05-01", "2024-05-01T12:00Z",
                                   "２０２４-05-01T12:00:00Z"])
@pytest.mark.parametrize("name", ["added_after", "match[version]"])
def test_a_timestamp_that_is_not_rfc_3339_is_a_400(client, member, alliance, name, value):
    response = _get(client, member, alliance, **{name: value})

    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["title"] == f"Bad {name}"


@pytest.mark.parametrize("value", ["2024-05-01T12:00:00Z", "2024-05-01T12:00:00.123456Z",
                                   "2024-05-01t12:00:00z", "2024-05-01T14:00:00+02:00"])
def test_rfc_3339_timestamps_are_taken(client, member, alliance, value):
    assert _get(client, member, alliance, added_after=value).status_code == 200


@pytest.mark.parametrize("value", ["５", "1e3", "-1", "0x10"])
def test_a_limit_that_is_not_ascii_digits_is_a_400(client, member, alliance, value):
    response = _get(client, member, alliance, limit=value)

    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["title"] == "Bad limit"
