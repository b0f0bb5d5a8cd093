"""The factory, configuration, security headers and error pages."""
import os
import re

import pytest

from alliance import create_app


def test_every_response_carries_the_security_headers(client):
    for path in ("/", "/auth/sign-in", "/no-such-page"):
        headers = client.get(path).headers
        csp = headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"
        assert "Strict-Transport-Security" not in headers  # only in production


def test_production_refuses_to_start_without_a_secret_key(monkeypatch):
    from config import ProductionConfig

    monkeypatch.setattr(ProductionConfig, "SECRET_KEY", None)
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app("production")


@pytest.mark.parametrize("key", ["change-me", "change-me" + "0" * 40, "short-but-random-91"])
def test_production_refuses_the_example_or_a_short_secret_key(monkeypatch, key):
    """deploy/alliance.env.example ships SECRET_KEY=change-me: a deployment that kept it
    signed sessions and every mailed token with a key anyone can read in the repository."""
    from config import ProductionConfig

    monkeypatch.setattr(ProductionConfig, "SECRET_KEY", key)
    with pytest.raises(RuntimeError, match="SECRET_KEY is a placeholder or too short"):
        create_app("production")


def test_production_sends_hsts_and_secure_cookies(app):
    prod = create_app({"SECRET_KEY": "x" * 64, "SESSION_COOKIE_SECURE": True, "HSTS": True,
                       "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"]})
    response = prod.test_client().get("/")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    from config import ProductionConfig

    assert ProductionConfig.SESSION_COOKIE_SECURE and ProductionConfig.HSTS


def test_development_generates_a_secret_key_once_and_keeps_it(tmp_path, monkeypatch):
    from config import DevelopmentConfig

    monkeypatch.setattr(DevelopmentConfig, "SECRET_KEY", None)
    first = create_app({"INSTANCE_PATH": str(tmp_path), "SECRET_KEY": None,
                        "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    second = create_app({"INSTANCE_PATH": str(tmp_path), "SECRET_KEY": None,
                         "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    key_file = tmp_path / "secret_key"
    assert key_file.exists() and oct(os.stat(key_file).st_mode & 0o777) == "0o600"
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"] == key_file.read_text()
    assert len(first.config["SECRET_KEY"]) >= 32


def test_an_unknown_page_gets_a_friendly_404_that_says_what_to_do(client):
    response = client.get("/alliances/does-not-exist-anywhere")
    assert response.status_code in (302, 404)  # members-only pages send visitors to sign in
    response = client.get("/nowhere")
    assert response.status_code == 404
    assert b"dashboard" in response.data.lower() or b"home" in response.data.lower()


def test_a_request_over_the_size_limit_gets_413_not_500(app, client):
    too_big = b"x" * (app.config["MAX_CONTENT_LENGTH"] + 1)
    response = client.post("/auth/sign-in", data=too_big,
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 413
    assert b"too large" in response.data.lower()


def test_an_unexpected_error_gets_the_500_page_and_no_traceback(app):
    broken = create_app({"SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"]})

    @broken.route("/explode")
    def explode():
        raise ValueError("secret internals")

    response = broken.test_client().get("/explode")
    assert response.status_code == 500
    assert b"secret internals" not in response.data and b"Traceback" not in response.data
    assert b"try again" in response.data.lower()


def test_static_css_is_vendored_and_no_template_links_outside(app):
    root = os.path.dirname(app.template_folder)
    assert os.path.getsize(os.path.join(root, "static", "css", "app.css")) > 1000
    for folder, _, files in os.walk(app.template_folder):
        for name in files:
            body = open(os.path.join(folder, name)).read()
            assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', body), \
                f"{name} loads something from another site"
            assert "|safe" not in body.replace(" ", ""), f"{name} marks something safe"
            # Scripts only as files of our own static folder (CSP script-src 'self'), never
            # inline: the CSP forbids inline script.
            for tag, inline in re.findall(r"(<script\b[^>]*>)(.*?)</script>", body, re.S):
                ours = "src=\"{{ url_for('static', filename='"
                assert ours in tag and ".js') }}\"" in tag, f"{name}: {tag} is no file of ours"
                assert not inline.strip(), f"{name} has an inline script: the CSP forbids it"
            assert body.count("<script") == len(re.findall(r"<script\b[^>]*>.*?</script>",
                                                           body, re.S)), name


def test_behind_one_proxy_the_client_address_comes_from_x_forwarded_for(app):
    from flask import request

    proxied = create_app({"SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
                          "PROXY_FIX_HOPS": 1})
    direct = create_app({"SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"]})
    for a in (proxied, direct):
        a.add_url_rule("/whoami", "whoami", lambda: request.remote_addr)
    headers = {"X-Forwarded-For": "203.0.113.7"}
    assert proxied.test_client().get("/whoami", headers=headers).text == "203.0.113.7"
    assert direct.test_client().get("/whoami", headers=headers).text == "127.0.0.1"


def test_a_unique_clash_between_racing_requests_is_a_409_not_a_500(app):
    from sqlalchemy.exc import IntegrityError

    racing = create_app({"SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"]})

    @racing.route("/race")
    def race():
        raise IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed"))

    response = racing.test_client().get("/race")
    assert response.status_code == 409
    assert b"same moment" in response.data


def test_postgresql_connections_run_without_jit(app):
    """JIT compiling cost a TAXII page more than the query (alliance/__init__.py); on
    SQLite there is nothing to set."""
    from alliance.extensions import db

    if db.engine.dialect.name != "postgresql":
        assert "connect_args" not in app.config["SQLALCHEMY_ENGINE_OPTIONS"]
        return
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW jit").scalar() == "off"
