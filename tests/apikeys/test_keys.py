"""API keys: shown once and stored hashed, revocable by their user or an org admin, audited;
on the TAXII API a key is the only credential (and it signs in nowhere else), checked on every
request against its user, its organisation's memberships, its expiry and its rate limit."""
import hashlib
import re
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from flask import session
from flask_wtf.csrf import generate_csrf
from sqlalchemy import func, select

from alliance import create_app
from alliance.alliances.services import membership_of
from alliance.alliances.transitions import decide, leave
from alliance.apikeys import services
from alliance.apikeys.models import ApiKey
from alliance.audit.models import AuditEvent
from alliance.core.models import utcnow
from alliance.extensions import db, limiter
from alliance.notes.posting import NoteDraft, post_note
from alliance.orgs.services import deactivate_user
from alliance.taxii.services import alliance_collection_id, organisation_collection_id
from tests import factories
from tests.notes.helpers import counts, indicator

TAXII = "application/taxii+json;version=2.1"
KEY_RE = re.compile(r"cpa_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
SIGN_IN = "/auth/sign-in"


def new_key(user, name="SIEM", expires_at=None) -> tuple[ApiKey, str]:
    return services.create_key(user, name, expires_at)


def fresh_key(key_id: int) -> ApiKey:
    db.session.expire_all()
    return db.session.get(ApiKey, key_id)


def key_count() -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count(ApiKey.id)))


def events(action: str) -> list[AuditEvent]:
    db.session.expire_all()
    return db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                              .order_by(AuditEvent.id)).all()


def taxii_get(client, path, key=None, accept=TAXII, **headers):
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    if accept is not None:
        headers["Accept"] = accept
    return client.get(path, headers=headers)


def taxii_post(client, collection_id, key, body, content_type=TAXII):
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return client.post(f"/taxii2/api/collections/{collection_id}/objects/", data=data,
                       headers={"Authorization": f"Bearer {key}", "Accept": TAXII,
                                "Content-Type": content_type})


def assert_taxii_error(response, status: int) -> dict:
    """A TAXII error message: the status, the TAXII media type, a JSON body naming both."""
    assert response.status_code == status, response.data[:500]
    assert response.content_type == TAXII
    body = orjson.loads(response.data)
    assert body["http_status"] == str(status) and body["title"]
    return body


def collection_ids(client, key) -> set[str]:
    response = taxii_get(client, "/taxii2/api/collections/", key)
    assert response.status_code == 200
    return {c["id"] for c in orjson.loads(response.data)["collections"]}


@pytest.fixture
def member_key(member):
    return new_key(member)


@pytest.fixture
def atlantic_id(alliance):
    return alliance_collection_id(alliance.id)


# --- lifecycle ----------------------------------------------------------------------------

def test_a_new_key_is_shown_once_and_only_its_sha256_is_stored(as_member, member):
    response = as_member.post("/account/api-keys", data={"name": "OpenCTI connector"})

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    [(prefix, secret)] = set(KEY_RE.findall(page))
    plaintext = f"cpa_{prefix}_{secret}"
    assert "will not be shown again" in page
    assert (f'curl -H "Authorization: Bearer {plaintext}" \\\n'
            f'     -H "Accept: application/taxii+json;version=2.1" \\\n'
            f"     http://alliance.test/taxii2/") in page

    [key] = services.keys_of(member)
    assert (key.name, key.prefix, key.user_id) == ("OpenCTI connector", prefix, member.id)
    assert key.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    row = db.session.execute(select(ApiKey.__table__).where(ApiKey.id == key.id)).one()
    assert not any(secret in str(value) for value in row)
    audit_rows = db.session.execute(select(AuditEvent.__table__)).all()
    assert audit_rows and not any(secret in str(value) for r in audit_rows for value in r)

    listing = as_member.get("/account").get_data(as_text=True)
    assert "OpenCTI connector" in listing
    assert f"cpa_{prefix}_…" in listing
    assert secret not in listing
    assert services.authenticate(plaintext) is not None


def test_using_a_key_records_when_it_was_last_used(client, member_key):
    key, plaintext = member_key
    assert key.last_used_at is None

    assert taxii_get(client, "/taxii2/", plaintext).status_code == 200

    used = fresh_key(key.id).last_used_at
    assert used is not None and utcnow() - used < timedelta(minutes=1)


def test_a_key_stops_working_when_it_expires(client, member):
    key, plaintext = new_key(member, expires_at=utcnow() + timedelta(hours=1))
    assert taxii_get(client, "/taxii2/", plaintext).status_code == 200

    fresh_key(key.id).expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()

    assert fresh_key(key.id).state == "expired"
    assert_taxii_error(taxii_get(client, "/taxii2/", plaintext), 401)


def test_an_expiry_date_from_the_form_ends_the_key_at_midnight_utc(as_member, member):
    day = (utcnow() + timedelta(days=30)).date()

    response = as_member.post("/account/api-keys", data={"name": "Temp", "expires": day.isoformat()})

    assert response.status_code == 200
    [key] = services.keys_of(member)
    assert key.expires_at == datetime(day.year, day.month, day.day, tzinfo=UTC)


def test_an_expiry_date_in_the_past_is_refused_on_the_form(as_member):
    response = as_member.post("/account/api-keys", data={"name": "Old", "expires": "2020-01-01"})

    assert response.status_code == 422
    assert "The expiry must be in the future." in response.get_data(as_text=True)
    assert key_count() == 0


def test_a_key_without_a_name_is_refused(as_member):
    response = as_member.post("/account/api-keys", data={"name": "  "})

    assert response.status_code == 422
    assert key_count() == 0


def test_the_owner_revokes_a_key_and_it_stops_working_at_once(as_member, member, member_key,
                                                               make_client):
    key, plaintext = member_key
    api = make_client()
    assert taxii_get(api, "/taxii2/", plaintext).status_code == 200

    response = as_member.post(f"/account/api-keys/{key.id}/revoke")

    assert response.status_code == 302 and response.location.endswith("/account")
    revoked = fresh_key(key.id)
    assert revoked.state == "revoked" and revoked.revoked_by_id == member.id
    assert_taxii_error(taxii_get(api, "/taxii2/", plaintext), 401)
    page = as_member.get("/account").get_data(as_text=True)
    assert "Revoked" in page and f'id="revoke-key-{key.id}"' not in page


def test_an_org_admin_revokes_a_colleagues_key(client, member_admin, member, member_key):
    key, plaintext = member_key
    factories.login(client, member_admin)
    slug = member_admin.organisation.slug

    response = client.post(f"/organisations/{slug}/api-keys/{key.id}/revoke")

    assert response.status_code == 302
    assert response.location.endswith(f"/organisations/{slug}/api-keys")
    revoked = fresh_key(key.id)
    assert revoked.state == "revoked" and revoked.revoked_by_id == member_admin.id
    assert services.authenticate(plaintext) is None


@pytest.mark.parametrize("path", ["/account/api-keys/{id}/revoke",
                                  "/organisations/{slug}/api-keys/{id}/revoke"])
def test_a_user_of_another_organisation_cannot_revoke_a_key(path, client, coordinator,
                                                             member_key):
    """The coordinator is an org admin, but of another organisation: the key does not exist
    for them, whichever address they use."""
    key, plaintext = member_key
    factories.login(client, coordinator)

    response = client.post(path.format(id=key.id, slug=coordinator.organisation.slug))

    assert response.status_code == 404
    assert fresh_key(key.id).state == "active"
    assert services.authenticate(plaintext) is not None
    assert events("apikey.revoked") == []


def test_a_plain_member_cannot_revoke_a_colleagues_key(client, member_admin, member):
    key, _ = new_key(member_admin)
    factories.login(client, member)

    assert client.post(f"/account/api-keys/{key.id}/revoke").status_code == 404
    slug = member.organisation.slug
    assert client.post(f"/organisations/{slug}/api-keys/{key.id}/revoke").status_code == 404
    assert fresh_key(key.id).state == "active"


def test_creating_and_revoking_are_audited(member, member_admin, member_key):
    key, _ = member_key
    services.revoke_key(member_admin, key.id)

    [created] = events("apikey.created")
    assert (created.actor_id, created.target_type, created.target_id) == (
        member.id, "api_key", str(key.id))
    assert created.organisation_id == member.organisation_id
    assert created.details["prefix"] == key.prefix
    [revoked] = events("apikey.revoked")
    assert (revoked.actor_id, revoked.target_id) == (member_admin.id, str(key.id))
    assert revoked.details["owner_id"] == member.id


# --- the API: who gets in -----------------------------------------------------------------

def test_no_key_is_a_401_with_www_authenticate(client, member_key):
    response = taxii_get(client, "/taxii2/api/collections/")

    assert_taxii_error(response, 401)
    assert "Bearer" in response.headers["WWW-Authenticate"]
    assert "Basic" in response.headers["WWW-Authenticate"]


def test_the_key_works_as_a_bearer_token_and_as_a_basic_password(client, member_key,
                                                                  atlantic_id):
    _, plaintext = member_key
    assert atlantic_id in collection_ids(client, plaintext)
    basic = client.get("/taxii2/api/collections/", headers={"Accept": TAXII},
                       auth=("anything", plaintext))
    assert basic.status_code == 200


@pytest.mark.parametrize("make_presented", [
    lambda p, s: "nonsense",
    lambda p, s: "cpa_",
    lambda p, s: f"cpa_{p}",
    lambda p, s: f"cpa_{p}_",
    lambda p, s: f"cpa_{p}_{s[:-1]}",
    lambda p, s: f"cpa_{p}_{s}x",
    lambda p, s: f"xyz_{p}_{s}",
    lambda p, s: f"cpa_000000000000_{s}",
    lambda p, s: f"cpa_{p}_{s}" + "x" * 200,
    lambda p, s: f"cpa_{p}_{s}\x00",
], ids=["nonsense", "prefix-only", "no-secret", "empty-secret", "short-secret",
        "long-secret", "wrong-scheme", "wrong-prefix", "oversize", "nul"])
def test_a_malformed_or_wrong_key_is_a_401(make_presented, client, member_key):
    key, plaintext = member_key
    presented = make_presented(key.prefix, plaintext.split("_", 2)[2])

    response = client.get("/taxii2/api/collections/", headers={
        "Accept": TAXII, "Authorization": f"Bearer {presented}"})

    assert_taxii_error(response, 401)


def test_a_key_sent_as_a_basic_user_name_is_not_accepted(client, member_key):
    _, plaintext = member_key
    response = client.get("/taxii2/", headers={"Accept": TAXII}, auth=(plaintext, "x"))

    assert_taxii_error(response, 401)


def test_a_revoked_key_is_a_401(client, member, member_key):
    key, plaintext = member_key
    services.revoke_key(member, key.id)

    assert_taxii_error(taxii_get(client, "/taxii2/api/collections/", plaintext), 401)


def test_the_key_of_a_deactivated_user_is_a_401(client, member_admin, member, member_key):
    _, plaintext = member_key
    assert taxii_get(client, "/taxii2/", plaintext).status_code == 200

    deactivate_user(member_admin, member, "Left the company")

    assert_taxii_error(taxii_get(client, "/taxii2/api/collections/", plaintext), 401)


@pytest.mark.parametrize("how", ["left", "removed"])
def test_when_the_organisation_leaves_the_alliance_its_collection_disappears(
        how, client, coordinator, alliance, member_admin, member_key, atlantic_id):
    _, plaintext = member_key
    path = f"/taxii2/api/collections/{atlantic_id}/"
    assert taxii_get(client, path, plaintext).status_code == 200

    if how == "left":
        leave(member_admin, alliance)
    else:
        decide(coordinator, alliance, membership_of(member_admin.organisation_id, alliance),
               "remove", reason="Breach of the charter")

    assert_taxii_error(taxii_get(client, path, plaintext), 404)
    assert_taxii_error(taxii_get(client, path + "objects/", plaintext), 404)
    assert atlantic_id not in collection_ids(client, plaintext)


@pytest.mark.parametrize("path", ["/notes/", "/account", "/"])
@pytest.mark.parametrize("scheme", ["bearer", "basic"])
def test_a_key_does_not_sign_in_to_the_web_pages(path, scheme, client, member, member_key):
    _, plaintext = member_key
    auth = ({"headers": {"Authorization": f"Bearer {plaintext}"}} if scheme == "bearer"
            else {"auth": (member.email, plaintext)})

    response = client.get(path, **auth)

    if path == "/":  # the landing page for visitors, not the member's dashboard
        assert response.status_code == 200
        assert b'id="nav-sign-in"' in response.data and b"nav-dashboard" not in response.data
    else:
        assert response.status_code == 302 and response.location.startswith(SIGN_IN)


def test_a_signed_in_browser_session_is_not_a_credential_on_the_api(as_member, member_key,
                                                                    atlantic_id):
    before = counts()

    assert_taxii_error(taxii_get(as_member, "/taxii2/api/collections/"), 401)
    response = as_member.post(f"/taxii2/api/collections/{atlantic_id}/objects/",
                              data=orjson.dumps({"objects": [indicator()]}),
                              headers={"Accept": TAXII, "Content-Type": TAXII})

    assert_taxii_error(response, 401)
    assert counts() == before


# --- the API: posting ---------------------------------------------------------------------

def test_a_member_posts_an_envelope_into_its_alliance(client, member_key, atlantic_id):
    """The control for the refusals below: the same request with a writable collection."""
    _, plaintext = member_key
    before = counts()

    response = taxii_post(client, atlantic_id, plaintext, {"objects": [indicator()]})

    assert response.status_code == 202, response.data
    assert orjson.loads(response.data)["success_count"] == 1
    assert counts()[:2] == (before[0] + 1, before[1] + 2)  # the note's report and indicator


def test_posting_into_an_alliance_the_organisation_is_not_in_is_a_404(client, outsider,
                                                                        atlantic_id):
    _, plaintext = new_key(outsider)
    before = counts()

    response = taxii_post(client, atlantic_id, plaintext, {"objects": [indicator()]})

    assert_taxii_error(response, 404)
    assert counts() == before


def test_posting_into_the_read_only_own_notes_collection_is_a_403(client, member, member_key):
    _, plaintext = member_key
    own = organisation_collection_id(member.organisation_id)
    assert own in collection_ids(client, plaintext)
    before = counts()

    response = taxii_post(client, own, plaintext, {"objects": [indicator()]})

    assert_taxii_error(response, 403)
    assert counts() == before


def test_a_new_version_of_another_organisations_object_is_refused(client, coordinator,
                                                                   alliance, member_key,
                                                                   atlantic_id):
    original = indicator()
    post_note(coordinator, NoteDraft(
        title="C2 seen", tlp="AMBER", alliance_ids=[alliance.id], objects=[original]))
    _, plaintext = member_key
    before = counts()

    response = taxii_post(client, atlantic_id, plaintext, {"objects": [
        dict(original, modified="2024-06-01T12:00:00.000Z", name="Hijacked")]})

    body = assert_taxii_error(response, 422)
    [problem] = body["details"]["problems"]
    assert problem["id"] == original["id"] and problem["property"] == "id"
    assert "another organisation" in problem["reason"]
    assert counts() == before


def test_a_wrong_accept_header_is_a_406(client, member_key):
    _, plaintext = member_key

    response = taxii_get(client, "/taxii2/api/collections/", plaintext, accept="text/html")

    assert_taxii_error(response, 406)


def test_a_wrong_content_type_is_a_415(client, member_key, atlantic_id):
    _, plaintext = member_key
    before = counts()

    response = taxii_post(client, atlantic_id, plaintext, {"objects": [indicator()]},
                          content_type="application/json")

    assert_taxii_error(response, 415)
    assert counts() == before


def test_an_envelope_over_the_size_limit_is_a_413(app, client, member_key, atlantic_id,
                                                  monkeypatch):
    monkeypatch.setitem(app.config, "STIX_MAX_BYTES", 300)
    _, plaintext = member_key
    before = counts()

    response = taxii_post(client, atlantic_id, plaintext, {"objects": [indicator()] * 3})

    body = assert_taxii_error(response, 413)
    assert "300" in body["description"]
    assert counts() == before


@pytest.mark.parametrize("raw", [b'{"objects": [', b"not json", b"\xff\xfe{}"])
def test_a_body_that_is_not_json_is_a_400(raw, client, member_key, atlantic_id):
    _, plaintext = member_key
    before = counts()

    response = taxii_post(client, atlantic_id, plaintext, raw)

    body = assert_taxii_error(response, 400)
    assert "not valid JSON" in body["description"]
    assert counts() == before


def test_json_that_is_not_an_envelope_is_a_422(client, member_key, atlantic_id):
    _, plaintext = member_key

    assert_taxii_error(taxii_post(client, atlantic_id, plaintext, {"objects": []}), 422)


@pytest.fixture
def underscore_secrets(monkeypatch):
    """Secrets that contain "_" (about half of real ones do), so that a rate-limit bucket
    keyed on a naive split of the key would fall back to the client's address."""
    import secrets as secrets_module

    made = iter(range(1000))
    real = secrets_module.token_urlsafe
    monkeypatch.setattr(services.secrets, "token_urlsafe",
                        lambda n=None: f"a_b_{next(made)}_" + real(n)[6:])


def test_the_rate_limit_is_per_key_and_answers_429_as_a_taxii_error(
        app, client, member, member_admin, monkeypatch, underscore_secrets):
    monkeypatch.setitem(app.config, "TAXII_RATE_LIMIT", "3 per minute")
    _, first = new_key(member)
    _, second = new_key(member_admin)
    assert "_" in first.split("_", 2)[2]
    try:
        for _ in range(3):
            assert taxii_get(client, "/taxii2/", first).status_code == 200
        assert_taxii_error(taxii_get(client, "/taxii2/", first), 429)
        # Another key from the same address has its own allowance.
        assert taxii_get(client, "/taxii2/", second).status_code == 200
    finally:
        limiter.reset()


def test_requests_under_a_forged_secret_do_not_use_up_the_real_keys_allowance(
        app, client, member, monkeypatch):
    """A key's prefix is no secret (it names the key on the account page and in the audit
    log): requests presenting it with a made-up secret count against their own address."""
    monkeypatch.setitem(app.config, "TAXII_RATE_LIMIT", "3 per minute")
    key, plaintext = new_key(member)
    forged = f"cpa_{key.prefix}_{'A' * 43}"
    try:
        for _ in range(3):
            assert client.get("/taxii2/", headers={"Authorization": f"Bearer {forged}",
                                                   "Accept": TAXII},
                              environ_base={"REMOTE_ADDR": "198.51.100.66"}).status_code == 401
        assert taxii_get(client, "/taxii2/", plaintext).status_code == 200
    finally:
        limiter.reset()


def test_made_up_keys_from_one_address_share_its_allowance(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "TAXII_RATE_LIMIT", "3 per minute")
    try:
        statuses = [taxii_get(client, "/taxii2/", f"cpa_{i:012x}_{'B' * 43}").status_code
                    for i in range(5)]
        assert statuses == [401, 401, 401, 429, 429]
        assert_taxii_error(taxii_get(client, "/taxii2/", "cpa_fffffff_x"), 429)
    finally:
        limiter.reset()


# --- the pages ----------------------------------------------------------------------------

def test_the_account_page_shows_who_you_are_and_where_to_go(as_member, member):
    response = as_member.get("/account")

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    for text in (member.name, member.email, member.organisation.name, 'href="/auth/password"',
                 'href="/digests/preferences"', 'id="nav-account"', 'id="new-api-key-form"',
                 "No API keys yet"):
        assert text in page, text
    assert 'id="account-org-keys"' not in page  # a plain member


def test_the_account_page_is_for_signed_in_members_only(client, make_client, member):
    assert client.get("/account").location.startswith(SIGN_IN)
    assert client.post("/account/api-keys", data={"name": "X"}).location.startswith(SIGN_IN)
    assert key_count() == 0
    pending = factories.make_user(member.organisation, "new@member.example", verified=False)
    other = make_client()
    factories.login(other, pending)
    assert other.get("/account").location.endswith("/status")


def test_the_account_page_lists_only_your_own_keys(as_member, member, member_admin):
    new_key(member, "Mine")
    new_key(member_admin, "The admin's")

    page = as_member.get("/account").get_data(as_text=True)

    assert "Mine" in page and "The admin&#39;s" not in page and "The admin's" not in page


def test_the_org_admin_sees_every_key_of_the_organisation_with_its_owner(
        client, member_admin, member, outsider):
    key, _ = new_key(member, "Analyst SIEM")
    new_key(member_admin, "Admin script")
    new_key(outsider, "Outside tool")
    factories.login(client, member_admin)
    slug = member_admin.organisation.slug

    response = client.get(f"/organisations/{slug}/api-keys")

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Analyst SIEM" in page and "Admin script" in page and member.email in page
    assert "Outside tool" not in page
    assert f"/organisations/{slug}/api-keys/{key.id}/revoke" in page
    profile = client.get(f"/organisations/{slug}").get_data(as_text=True)
    assert f'href="/organisations/{slug}/api-keys"' in profile


@pytest.mark.parametrize("who", ["member", "outsider", "coordinator"])
def test_the_organisation_keys_page_is_a_404_for_anyone_but_its_admins(
        who, request, client, member_admin):
    new_key(member_admin, "Admin script")
    factories.login(client, request.getfixturevalue(who))

    response = client.get(f"/organisations/{member_admin.organisation.slug}/api-keys")

    assert response.status_code == 404
    assert b"Admin script" not in response.data


# --- CSRF (the testing config turns it off; this app turns it on) -------------------------

@pytest.fixture(scope="module")
def csrf_app(app):
    return create_app({"WTF_CSRF_ENABLED": True,
                       "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
                       "MAIL_URL": app.config["MAIL_URL"], "BASE_URL": app.config["BASE_URL"]})


def _csrf_client(csrf_app, user):
    client = csrf_app.test_client()
    factories.login(client, user)
    with csrf_app.test_request_context():
        token = generate_csrf()
        raw = session[csrf_app.config["WTF_CSRF_FIELD_NAME"]]
    with client.session_transaction() as sess:
        sess[csrf_app.config["WTF_CSRF_FIELD_NAME"]] = raw
    return client, token


def test_the_key_forms_carry_a_csrf_token(csrf_app, member_admin):
    new_key(member_admin)
    client, _ = _csrf_client(csrf_app, member_admin)

    for path in ("/account", f"/organisations/{member_admin.organisation.slug}/api-keys"):
        page = client.get(path).get_data(as_text=True)
        forms = re.findall(r"<form method=\"post\".*?</form>", page, re.S)
        key_forms = [f for f in forms if "api-keys" in f]
        assert key_forms, path
        assert all('name="csrf_token"' in f for f in key_forms), path


def test_creating_and_revoking_need_the_csrf_token(csrf_app, member_admin):
    key, _ = new_key(member_admin)
    client, token = _csrf_client(csrf_app, member_admin)
    slug = member_admin.organisation.slug

    assert client.post("/account/api-keys", data={"name": "Forged"}).status_code == 400
    assert client.post(f"/account/api-keys/{key.id}/revoke").status_code == 400
    assert client.post(f"/organisations/{slug}/api-keys/{key.id}/revoke").status_code == 400
    assert key_count() == 1 and fresh_key(key.id).state == "active"

    created = client.post("/account/api-keys", data={"name": "Real", "csrf_token": token})
    assert created.status_code == 200 and KEY_RE.search(created.get_data(as_text=True))
    revoked = client.post(f"/account/api-keys/{key.id}/revoke", data={"csrf_token": token})
    assert revoked.status_code == 302 and fresh_key(key.id).state == "revoked"


# --- the CLI ------------------------------------------------------------------------------

def run_create(app, *args):
    return app.test_cli_runner().invoke(args=["alliance", "api-key", "create", *args])


def test_the_cli_prints_only_a_key_that_works(app, client, member, atlantic_id):
    result = run_create(app, "Analyst@Member.example", "--name", "Nightly sync",
                        "--expires", (utcnow() + timedelta(days=10)).date().isoformat())

    assert result.exit_code == 0, result.output
    plaintext = result.stdout.strip()
    assert KEY_RE.fullmatch(plaintext) and result.stdout == plaintext + "\n"
    key, user = services.authenticate(plaintext)
    assert (user.id, key.name) == (member.id, "Nightly sync")
    assert key.expires_at.time() == datetime.min.time()
    assert atlantic_id in collection_ids(client, plaintext)


def test_the_cli_refuses_an_unknown_user(app, member):
    result = run_create(app, "nobody@member.example", "--name", "X")

    assert result.exit_code != 0
    assert "No user with the e-mail address nobody@member.example" in result.output
    assert key_count() == 0


@pytest.mark.parametrize("state", ["deactivated", "unverified", "pending-org"])
def test_the_cli_refuses_a_user_who_may_not_act(state, app, member_admin, member):
    if state == "deactivated":
        deactivate_user(member_admin, member)
        email = member.email
    elif state == "unverified":
        email = factories.make_user(member.organisation, "new@member.example",
                                    verified=False).email
    else:
        org = factories.make_org("Pending Org", status="pending")
        email = factories.make_user(org, "admin@pending.example", role="org_admin").email

    result = run_create(app, email, "--name", "X")

    assert result.exit_code != 0
    assert "Only members of vetted organisations" in result.output
    assert key_count() == 0


@pytest.mark.parametrize("expires, message", [("2020-01-01", "must be in the future"),
                                              ("01/02/2030", "does not match the format")])
def test_the_cli_refuses_a_bad_expiry(expires, message, app, member):
    result = run_create(app, member.email, "--name", "X", "--expires", expires)

    assert result.exit_code != 0
    assert message in result.output
    assert key_count() == 0
