"""Readiness checks and who may read /metrics."""
import hmac
import ipaddress
import logging
import os
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING

from flask import Flask, current_app
from sqlalchemy import text

from alliance.extensions import db

# Alembic and redis are imported where a probe or a scrape uses them: every process builds the
# app, and most never run a check, so none should pay for importing them at start-up
# (tests/core/test_startup.py keeps them out).
if TYPE_CHECKING:
    import redis

NOT_CONFIGURED = "not configured"
_MIGRATION_LOGGER = logging.getLogger("alembic.runtime.migration")


class CheckFailed(Exception):
    """A readiness check failed; the message says why, for the operator."""


def check_database() -> str:
    """The database answers and its Alembic revision is the migrations' head."""
    from alembic.runtime.migration import MigrationContext

    try:
        with db.engine.connect() as conn, _quiet(_MIGRATION_LOGGER):
            conn.execute(text("SELECT 1"))
            current = set(MigrationContext.configure(conn).get_current_heads())
    except Exception as exc:  # any driver error means "not ready"; the reason is reported
        raise CheckFailed(f"unreachable: {type(exc).__name__}: {_first_line(exc)}") from exc
    heads = set(migration_heads(current_app.extensions["migrate"].directory))
    if current != heads:
        raise CheckFailed(f"migrations not at head: database at "
                          f"{', '.join(sorted(current)) or 'no revision'}, "
                          f"head is {', '.join(sorted(heads))}")
    return "ok"


@contextmanager
def _quiet(logger: logging.Logger):
    """MigrationContext logs "Context impl ..." at INFO each time: once per probe is noise."""
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


@lru_cache(maxsize=8)
def migration_heads(directory: str) -> tuple[str, ...]:
    """Head revision(s) of the migrations folder; read once per process (a deploy that brings
    new migrations restarts the processes)."""
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    config = AlembicConfig()
    config.set_main_option("script_location", directory)
    return tuple(ScriptDirectory.from_config(config).get_heads())


def redis_client(app: Flask | None = None) -> "redis.Redis | None":
    """A client with short timeouts for probes and scrapes (a down Redis answers in about
    HEALTH_CHECK_TIMEOUT seconds, never hangs them), or None without REDIS_URL. The caller
    closes it."""
    app = app or current_app
    url = app.config.get("REDIS_URL")
    if not url:
        return None
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    timeout = app.config["HEALTH_CHECK_TIMEOUT"]
    # No retries: a probe reports what it sees now, within one timeout.
    return redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout,
                                retry=Retry(NoBackoff(), 0))


def check_redis() -> str:
    client = redis_client()
    if client is None:
        return NOT_CONFIGURED
    try:
        client.ping()
    except Exception as exc:  # connection refused, timeout, auth: all "not ready"
        raise CheckFailed(f"unreachable: {type(exc).__name__}: {_first_line(exc)}") from exc
    finally:
        client.close()
    return "ok"


READINESS_CHECKS = {"database": check_database, "redis": check_redis}


def readiness() -> tuple[bool, dict]:
    """Run every check; (all passed, {name: {"ok": bool, "detail": str}})."""
    results, ready = {}, True
    for name, check in READINESS_CHECKS.items():
        try:
            results[name] = {"ok": True, "detail": check()}
        except CheckFailed as exc:
            ready = False
            results[name] = {"ok": False, "detail": str(exc)}
    return ready, results


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


# --- /metrics access --------------------------------------------------------------------------

def parse_networks(value: str) -> tuple:
    """METRICS_ALLOW as networks; a typo fails at start rather than opening or closing
    /metrics silently."""
    networks = []
    for item in (part.strip() for part in (value or "").split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise RuntimeError(f"METRICS_ALLOW: {item!r} is not an IP address or network") from exc
    return tuple(networks)


def can_read_metrics(remote_addr: str | None, authorization: str | None, networks,
                     token: str | None) -> bool:
    """A bearer token equal to METRICS_TOKEN (compared in constant time; no token configured
    means no token access), or a client address inside METRICS_ALLOW. remote_addr is the
    address after ProxyFix: behind a proxy set PROXY_FIX_HOPS, or every request would come
    from the proxy's (loopback) address. Anything unparsable is refused."""
    if token:
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
                given.strip().encode(), token.encode()):
            return True
    try:
        addr = ipaddress.ip_address(remote_addr or "")
    except ValueError:
        return False
    candidates = [addr]
    if addr.version == 6 and addr.ipv4_mapped:  # ::ffff:127.0.0.1 from a dual-stack socket
        candidates.append(addr.ipv4_mapped)
    return any(a in net for a in candidates for net in networks if a.version == net.version)


def multiprocess_dir() -> str | None:
    """PROMETHEUS_MULTIPROC_DIR: set (by the gunicorn config) when several processes serve
    the app; prometheus_client then keeps the metrics in files there and a scrape adds them
    up."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
