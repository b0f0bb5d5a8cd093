"""Content negotiation: which Accept headers take TAXII 2.1 JSON (RFC 9110 12.5.1 allows
whitespace around ';' and '=', and a q of 0 says "not this")."""
import pytest

from alliance.apikeys.services import create_key
from alliance.taxii.services import alliance_collection_id
from alliance.taxii.views import accepts_taxii

TAXII = "application/taxii+json;version=2.1"

TAKEN = ["", TAXII, "application/taxii+json", "application/taxii+json; version=2.1",
         "application/taxii+json ; version = 2.1", "application/taxii+json; q=0.9",
         'application/taxii+json;version="2.1"', "*/*; q=0.1", "text/html, */*; q=0.01",
         "application/*; q=0.5", "APPLICATION/TAXII+JSON;VERSION=2.1"]
REFUSED = ["text/html", "application/json", "application/taxii+json;version=2.0",
           "application/taxii+json;q=0", "*/*;q=0", "text/html, application/*; q=0.0",
           "application/taxii+json;q=abc", "text/*"]


@pytest.mark.parametrize("header", TAKEN)
def test_these_take_taxii(header):
    assert accepts_taxii(header)


@pytest.mark.parametrize("header", REFUSED)
def test_these_do_not(header):
    assert not accepts_taxii(header)


@pytest.mark.parametrize(("header", "status"), [("*/*; q=0.1", 200),
                                                ("application/taxii+json; q=0.9", 200),
                                                ("application/taxii+json;q=0", 406)])
def test_a_collection_answers_by_its_accept_header(client, member, alliance, header, status):
    key = create_key(member, "SIEM")[1]
    url = f"/taxii2/api/collections/{alliance_collection_id(alliance.id)}/objects/"

    response = client.get(url, headers={"Authorization": f"Bearer {key}", "Accept": header})

    assert response.status_code == status, response.get_data(as_text=True)
    assert response.content_type == TAXII
