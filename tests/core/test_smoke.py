def test_landing_page_renders_for_visitors(client):
    response = client.get("/")
    assert response.status_code == 200
    assert b"Sign in" in response.data
