"""/healthz and /readyz: what a load balancer asks before it sends traffic."""
import time

import pytest
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from flask_migrate import upgrade

from tests.servers import free_port


def test_healthz_answers_ok_without_a_session_cookie(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert "Set-Cookie" not in response.headers


def test_healthz_does_not_touch_the_database(make_app):
    # A database that cannot be opened: /healthz still answers, /readyz does not.
    broken = make_app(SQLALCHEMY_DATABASE_URI=f"postgresql://nobody@127.0.0.1:{free_port()}/none")
    client = broken.test_client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 503


def test_readyz_is_ok_on_a_migrated_database_without_redis(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["checks"]["database"] == {"ok": True, "detail": "ok"}
    assert body["checks"]["redis"] == {"ok": True, "detail": "not configured"}
    assert "Set-Cookie" not in response.headers


def test_readyz_is_503_when_the_database_is_one_migration_behind(make_app, tmp_path, app):
    directory = app.extensions["migrate"].directory
    config = AlembicConfig()
    config.set_main_option("script_location", directory)
    script = ScriptDirectory.from_config(config)
    head = script.get_current_head()
    behind = script.get_revision(head).down_revision
    assert behind, "needs at least two migrations"

    stale = make_app(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'behind.db'}")
    with stale.app_context():
        upgrade(revision=behind)
    response = stale.test_client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["ok"] is False
    assert "not at head" in body["checks"]["database"]["detail"]
    assert behind in body["checks"]["database"]["detail"]
    assert head in body["checks"]["database"]["detail"]

    with stale.app_context():
        upgrade()
    assert stale.test_client().get("/readyz").status_code == 200


def test_readyz_is_503_quickly_when_redis_is_configured_but_nothing_listens(make_app):
    down = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    started = time.monotonic()
    response = down.test_client().get("/readyz")
    assert time.monotonic() - started < 2.5
    assert response.status_code == 503
    checks = response.get_json()["checks"]
    assert checks["database"]["ok"] is True
    assert checks["redis"]["ok"] is False
    assert "unreachable" in checks["redis"]["detail"]


@pytest.mark.servers
def test_readyz_follows_a_real_redis_going_down_and_back(make_app, redis_server):
    ops_app = make_app(REDIS_URL=redis_server.url, HEALTH_CHECK_TIMEOUT=1.0)
    client = ops_app.test_client()
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["checks"]["redis"] == {"ok": True, "detail": "ok"}

    redis_server.stop()
    try:
        started = time.monotonic()
        response = client.get("/readyz")
        assert time.monotonic() - started < 2.5
        assert response.status_code == 503
        assert response.get_json()["checks"]["redis"]["ok"] is False
    finally:
        redis_server.start()
    assert client.get("/readyz").status_code == 200

