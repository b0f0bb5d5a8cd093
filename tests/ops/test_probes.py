"""/healthz and /readyz: what a load balancer asks before it sends traffic."""

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


def _redis_connects(monkeypatch) -> list[tuple]:
    """Every attempt to connect to Redis, with the timeouts it was given: what bounds a
    probe's wait when Redis is down (one attempt, HEALTH_CHECK_TIMEOUT each way), counted
    rather than timed."""
    import redis.connection

    attempts = []
    real = redis.connection.Connection._connect

    def counting(self):
        attempts.append((self.socket_connect_timeout, self.socket_timeout))
        return real(self)

    monkeypatch.setattr(redis.connection.Connection, "_connect", counting)
    return attempts


def test_readyz_is_503_quickly_when_redis_is_configured_but_nothing_listens(make_app,
                                                                             monkeypatch):
    down = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    attempts = _redis_connects(monkeypatch)
    response = down.test_client().get("/readyz")
    timeout = down.config["HEALTH_CHECK_TIMEOUT"]
    assert attempts == [(timeout, timeout)], "one attempt, within the probe's timeout"
    assert response.status_code == 503
    checks = response.get_json()["checks"]
    assert checks["database"]["ok"] is True
    assert checks["redis"]["ok"] is False
    assert "unreachable" in checks["redis"]["detail"]


@pytest.mark.servers
def test_readyz_follows_a_real_redis_going_down_and_back(make_app, redis_server, monkeypatch):
    ops_app = make_app(REDIS_URL=redis_server.url, HEALTH_CHECK_TIMEOUT=1.0)
    client = ops_app.test_client()
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["checks"]["redis"] == {"ok": True, "detail": "ok"}

    redis_server.stop()
    try:
        attempts = _redis_connects(monkeypatch)
        response = client.get("/readyz")
        assert attempts == [(1.0, 1.0)], "one attempt, within the probe's timeout"
        assert response.status_code == 503
        assert response.get_json()["checks"]["redis"]["ok"] is False
    finally:
        redis_server.start()
    assert client.get("/readyz").status_code == 200

