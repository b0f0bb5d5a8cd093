"""/healthz, /readyz and /metrics: for load balancers and Prometheus, not for people. No
sign-in, no CSRF, no rate limit, and no session cookie: none of them writes to the session."""
from flask import Blueprint, abort, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST

from alliance.extensions import csrf, limiter
from alliance.ops import metrics, services

bp = Blueprint("ops", __name__)
csrf.exempt(bp)
limiter.exempt(bp)


@bp.get("/healthz")
def healthz():
    """The process is up and serving; touches nothing else."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """Ready for traffic: the database answers at the migrations' head, Redis answers (when
    configured). 503 names the check that failed and why."""
    ready, checks = services.readiness()
    return jsonify(status="ok" if ready else "unavailable", checks=checks), 200 if ready else 503


@bp.get("/metrics")
def prometheus_metrics():
    ops = current_app.extensions["alliance_ops"]
    if not services.can_read_metrics(request.remote_addr, request.headers.get("Authorization"),
                                     ops["metrics_allow"], current_app.config["METRICS_TOKEN"]):
        abort(404)  # as any unknown address: do not tell that something is here
    return metrics.render(current_app), 200, {"Content-Type": CONTENT_TYPE_LATEST}
