"""/metrics: request counts and latency, backlog gauges, who may read it, several processes."""
import os
import subprocess
import sys
from datetime import timedelta

import pytest

from alliance.core.models import utcnow
from alliance.digests.models import Delivery
from alliance.extensions import db
from alliance.outbox.models import OutboxMessage
from tests.ops.conftest import sample
from tests.servers import ROOT, free_port

ALLOWED = {"REMOTE_ADDR": "127.0.0.1"}


def _scrape(client, **kwargs) -> bytes:
    response = client.get("/metrics", environ_base=kwargs.pop("environ_base", ALLOWED), **kwargs)
    assert response.status_code == 200, response.status_code
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    assert "Set-Cookie" not in response.headers
    return response.data


def test_a_request_is_counted_by_endpoint_name_not_path(client, member):
    before = _scrape(client)
    labels = {"method": "GET", "endpoint": "ops.healthz", "status": "200"}
    count_before = sample(before, "alliance_http_requests_total", **labels) or 0
    client.get("/healthz")
    client.get("/healthz")
    client.get("/no/such/page/123")
    after = _scrape(client)
    assert sample(after, "alliance_http_requests_total", **labels) == count_before + 2
    assert sample(after, "alliance_http_requests_total", method="GET",
                  endpoint="<unmatched>", status="404") >= 1
    assert b"/no/such/page" not in after
    assert sample(after, "alliance_http_request_duration_seconds_count",
                  method="GET", endpoint="ops.healthz") >= 2


def test_outbox_and_ledger_gauges_count_real_rows(client, member):
    now = utcnow()
    db.session.add_all([
        OutboxMessage(kind="mail", payload={}),                                     # pending
        OutboxMessage(kind="mail", payload={}, claimed_until=now - timedelta(hours=1)),  # lease over
        OutboxMessage(kind="mail", payload={}, claimed_until=now + timedelta(hours=1)),  # claimed
        OutboxMessage(kind="mail", payload={}, failed_at=now, last_error="gave up"),  # failed
        OutboxMessage(kind="mail", payload={}, done_at=now),                        # done: none
    ])
    db.session.add_all([
        Delivery(user_id=member.id, kind="digest", period_key="daily:2026-03-02", state="sent"),
        Delivery(user_id=member.id, kind="digest", period_key="daily:2026-03-03", state="sent"),
        Delivery(user_id=member.id, kind="digest", period_key="daily:2026-03-04",
                 state="pending"),
        Delivery(user_id=member.id, kind="alert", period_key="alert:1", state="failed"),
    ])
    db.session.commit()
    body = _scrape(client)
    assert sample(body, "alliance_outbox_messages", state="pending") == 2
    assert sample(body, "alliance_outbox_messages", state="claimed") == 1
    assert sample(body, "alliance_outbox_messages", state="failed") == 1
    assert sample(body, "alliance_digest_deliveries", kind="digest", state="sent") == 2
    assert sample(body, "alliance_digest_deliveries", kind="digest", state="pending") == 1
    assert sample(body, "alliance_digest_deliveries", kind="alert", state="failed") == 1
    assert sample(body, "alliance_digest_deliveries", kind="digest", state="empty") == 0
    assert sample(body, "alliance_metrics_source_up", source="database") == 1
    # No Redis configured: no queue gauge, and no Redis source reported as down.
    assert sample(body, "alliance_celery_queue_length", queue="alliance") is None
    assert sample(body, "alliance_metrics_source_up", source="redis") is None


@pytest.mark.parametrize("addr", ["10.1.2.3", "192.0.2.1", "2001:db8::1", "not-an-address"])
def test_metrics_is_a_404_from_an_address_not_allowed(client, addr):
    response = client.get("/metrics", environ_base={"REMOTE_ADDR": addr})
    assert response.status_code == 404
    assert b"alliance_http_requests" not in response.data
    assert "Set-Cookie" not in response.headers


def test_metrics_is_readable_from_loopback_v6_and_configured_networks(make_app):
    ops_app = make_app(METRICS_ALLOW="10.0.0.0/8, ::1/128")
    client = ops_app.test_client()
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "10.200.3.4"}).status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "::ffff:10.0.0.1"}
                      ).status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 404
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "11.0.0.1"}).status_code == 404


def test_metrics_token_opens_it_from_anywhere_and_a_wrong_token_does_not(make_app):
    ops_app = make_app(METRICS_TOKEN="s3cret-scrape-token", METRICS_ALLOW="")
    client = ops_app.test_client()
    outside = {"REMOTE_ADDR": "203.0.113.9"}
    ok = client.get("/metrics", environ_base=outside,
                    headers={"Authorization": "Bearer s3cret-scrape-token"})
    assert ok.status_code == 200 and b"alliance_http_requests_total" in ok.data
    for header in ("Bearer wrong", "Bearer s3cret-scrape-token-and-more", "Basic s3cret-scrape-token",
                   "s3cret-scrape-token", ""):
        response = client.get("/metrics", environ_base=outside, headers={"Authorization": header})
        assert response.status_code == 404, header
    # METRICS_ALLOW="" allows no address, loopback included.
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 404


def test_without_a_token_configured_an_empty_bearer_does_not_open_it(make_app):
    ops_app = make_app(METRICS_TOKEN=None, METRICS_ALLOW="")
    response = ops_app.test_client().get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.9"},
                                         headers={"Authorization": "Bearer "})
    assert response.status_code == 404


def test_behind_a_proxy_the_forwarded_client_address_decides(make_app):
    proxied = make_app(PROXY_FIX_HOPS=1)
    client = proxied.test_client()
    # nginx on loopback forwards an outside client: refused, although the socket is loopback.
    refused = client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"},
                         headers={"X-Forwarded-For": "198.51.100.20"})
    assert refused.status_code == 404
    allowed = client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"},
                         headers={"X-Forwarded-For": "127.0.0.1"})
    assert allowed.status_code == 200


def test_a_bad_metrics_allow_entry_refuses_to_start(make_app):
    with pytest.raises(RuntimeError, match="METRICS_ALLOW"):
        make_app(METRICS_ALLOW="127.0.0.1/32,localhost")


def test_a_down_redis_does_not_break_the_scrape(make_app):
    ops_app = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    body = _scrape(ops_app.test_client())
    assert sample(body, "alliance_metrics_source_up", source="redis") == 0
    assert sample(body, "alliance_metrics_source_up", source="database") == 1
    assert sample(body, "alliance_outbox_messages", state="pending") == 0


@pytest.mark.servers
def test_celery_queue_length_is_read_from_redis(make_app, redis_server):
    import redis

    queue = redis.Redis.from_url(redis_server.url)
    queue.delete("alliance", "alliance\x06\x163")
    queue.rpush("alliance", "t1", "t2", "t3")
    queue.rpush("alliance\x06\x163", "t4")  # a task sent with a priority
    try:
        body = _scrape(make_app(REDIS_URL=redis_server.url).test_client())
    finally:
        queue.delete("alliance", "alliance\x06\x163")
        queue.close()
    assert sample(body, "alliance_celery_queue_length", queue="alliance") == 4
    assert sample(body, "alliance_metrics_source_up", source="redis") == 1


_CHILD = """
import sys
from alliance import create_app
app = create_app({"SQLALCHEMY_DATABASE_URI": sys.argv[1], "RATELIMIT_STORAGE_URI": "memory://"})
client = app.test_client()
for _ in range(int(sys.argv[2])):
    assert client.get("/healthz").status_code == 200
if sys.argv[3] == "scrape":
    response = client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert response.status_code == 200
    sys.stdout.write(response.get_data(as_text=True))
"""


def _run_child(tmp_path, database_uri, requests, action, multiproc_dir):
    env = {**os.environ, "PYTHONPATH": ROOT, "ALLIANCE_ENV": "testing",
           "INSTANCE_PATH": str(tmp_path / "instance")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if multiproc_dir:
        env["PROMETHEUS_MULTIPROC_DIR"] = str(multiproc_dir)
    done = subprocess.run([sys.executable, "-c", _CHILD, database_uri, str(requests), action],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.encode()


def test_multiprocess_mode_adds_up_every_process(app, tmp_path):
    """Three processes, like three gunicorn workers: two serve 2 and 3 requests, the third
    answers the scrape and reports all 5 (and its own scrape is not among them yet)."""
    folder = tmp_path / "prometheus"
    folder.mkdir()
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    _run_child(tmp_path, uri, 2, "serve", folder)
    _run_child(tmp_path, uri, 3, "serve", folder)
    body = _run_child(tmp_path, uri, 0, "scrape", folder)
    labels = {"method": "GET", "endpoint": "ops.healthz", "status": "200"}
    assert sample(body, "alliance_http_requests_total", **labels) == 5
    assert sample(body, "alliance_http_request_duration_seconds_count",
                  method="GET", endpoint="ops.healthz") == 5
    assert sample(body, "alliance_outbox_messages", state="pending") == 0
    assert len(list(folder.glob("*.db"))) >= 3

    # Without the folder each process only knows its own requests.
    alone = _run_child(tmp_path, uri, 1, "scrape", None)
    assert sample(alone, "alliance_http_requests_total", **labels) == 1
