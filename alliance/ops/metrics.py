"""Prometheus metrics: request count and latency, observed after each request, and gauges
read from the database and Redis when /metrics is scraped.

Several gunicorn processes: with PROMETHEUS_MULTIPROC_DIR set (before prometheus_client is
imported, so in the gunicorn config), each process writes its counters to files there and a
scrape, whichever process answers it, adds up every process's files. The gunicorn config
empties the folder on start and marks dead workers (docs/deploy.md, "Health, metrics and logs")."""
import logging
import time

from flask import Flask, request
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import and_, case, func, or_, select

from alliance.core.models import utcnow
from alliance.extensions import db
from alliance.ops import services

log = logging.getLogger(__name__)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "<unmatched>"

# Not in prometheus_client's default registry: each scrape builds its own (below), so that
# single-process and multiprocess mode read the same objects.
REQUESTS = Counter("alliance_http_requests", "HTTP requests served",
                   ["method", "endpoint", "status"], registry=None)
LATENCY = Histogram("alliance_http_request_duration_seconds",
                    "Time from the request's start to its response", ["method", "endpoint"],
                    registry=None)


def init_app(app: Flask) -> None:
    app.extensions["alliance_ops"] = {
        "metrics_allow": services.parse_networks(app.config["METRICS_ALLOW"])}
    app.before_request(_start_timer)
    app.after_request(_observe)


def _start_timer() -> None:
    request.environ.setdefault("alliance.metrics_start", time.perf_counter())


def _observe(response):
    # Labelled by endpoint name, never by raw path: paths carry ids and would make a series
    # per note; unknown URLs share one label.
    endpoint = request.url_rule.endpoint if request.url_rule else UNMATCHED
    method = request.method if request.method in _METHODS else "OTHER"
    REQUESTS.labels(method, endpoint, str(response.status_code)).inc()
    started = request.environ.get("alliance.metrics_start")
    if started is not None:
        LATENCY.labels(method, endpoint).observe(time.perf_counter() - started)
    return response


def render(app: Flask) -> bytes:
    """The exposition text for one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    if services.multiprocess_dir():
        MultiProcessCollector(registry)
    else:
        registry.register(REQUESTS)
        registry.register(LATENCY)
    registry.register(BacklogCollector(app))
    return generate_latest(registry)


class BacklogCollector:
    """Gauges computed at scrape time: the outbox backlog, the digest ledger by state and the
    Celery queue length. A source that cannot be read is reported as
    alliance_metrics_source_up{source=...} 0 instead of failing the whole scrape."""

    def __init__(self, app: Flask):
        self.app = app

    def collect(self):
        up = GaugeMetricFamily("alliance_metrics_source_up",
                               "1 when the source of these gauges could be read",
                               labels=["source"])
        try:
            outbox, ledger = _outbox_gauge(), _ledger_gauge()
        except Exception:
            log.exception("metrics: reading the database failed")
            db.session.rollback()
            up.add_metric(["database"], 0)
        else:
            yield outbox
            yield ledger
            up.add_metric(["database"], 1)
        client = services.redis_client(self.app)
        if client is not None:
            try:
                queue = _queue_gauge(client, self.app)
            except Exception:
                log.warning("metrics: reading the Celery queue length from Redis failed",
                            exc_info=True)
                up.add_metric(["redis"], 0)
            else:
                yield queue
                up.add_metric(["redis"], 1)
            finally:
                client.close()
        yield up


def _outbox_gauge() -> GaugeMetricFamily:
    from alliance.outbox.models import OutboxMessage as M

    now = utcnow()
    open_ = and_(M.done_at.is_(None), M.failed_at.is_(None))
    # The states of alliance.outbox.services: pending waits for a worker (never claimed, or
    # its lease ran out), claimed is held by a running worker, failed was given up.
    states = {
        "pending": and_(open_, or_(M.claimed_until.is_(None), M.claimed_until < now)),
        "claimed": and_(open_, M.claimed_until >= now),
        "failed": M.failed_at.is_not(None),
    }
    row = db.session.execute(select(*(
        func.coalesce(func.sum(case((cond, 1), else_=0)), 0).label(name)
        for name, cond in states.items()))).one()
    gauge = GaugeMetricFamily("alliance_outbox_messages",
                              "Outbox messages by state (pending, claimed, failed)",
                              labels=["state"])
    for name in states:
        gauge.add_metric([name], int(getattr(row, name)))
    return gauge


def _ledger_gauge() -> GaugeMetricFamily:
    from alliance.digests.models import LEDGER_STATES, Delivery

    counts: dict[tuple[str, str], int] = dict.fromkeys(
        ((k, str(s)) for k in ("digest", "alert") for s in LEDGER_STATES), 0)
    rows = db.session.execute(select(Delivery.kind, Delivery.state, func.count())
                              .group_by(Delivery.kind, Delivery.state))
    for kind, state, count in rows:
        counts[(kind, state)] = count
    gauge = GaugeMetricFamily("alliance_digest_deliveries",
                              "Rows of the digest and alert delivery ledger by kind and state",
                              labels=["kind", "state"])
    for (kind, state), count in sorted(counts.items()):
        gauge.add_metric([kind, state], count)
    return gauge


def _queue_gauge(client, app: Flask) -> GaugeMetricFamily:
    queue = app.config["CELERY"].get("task_default_queue", "celery")
    # kombu's Redis transport keeps a list per priority step: the queue's own name for the
    # default priority, "<queue>\x06\x16<n>" for the others.
    keys = [queue] + [f"{queue}\x06\x16{step}" for step in (3, 6, 9)]
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.llen(key)
        length = sum(pipe.execute())
    gauge = GaugeMetricFamily("alliance_celery_queue_length",
                              "Tasks waiting in the Celery queue in Redis", labels=["queue"])
    gauge.add_metric([queue], length)
    return gauge
