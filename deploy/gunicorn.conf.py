"""gunicorn settings for CyberPeace Alliance:  gunicorn -c deploy/gunicorn.conf.py wsgi:app

Everything an operator changes comes from the environment (deploy/alliance.env.example), so the
same file serves every web host; the systemd unit (deploy/systemd/alliance-web.service) runs it."""
import multiprocessing
import os
import shutil
import tempfile

# Where to listen. Behind nginx on the same host keep loopback; on a separate web host listen
# on its private address and let only the proxy reach it.
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000").split(",")

# Sync workers: requests are short and CPU-bound (STIX validation, rendering), and nginx
# buffers slow clients. (2 x cores) + 1, capped: every worker of every web host holds its own
# database connections, and PostgreSQL's max_connections is shared by all of them.
workers = int(os.environ.get("GUNICORN_WORKERS") or min(2 * multiprocessing.cpu_count() + 1, 12))
worker_class = "sync"

# A worker silent this long is killed and replaced: long enough for a 10 MiB bundle upload to
# be validated and stored, short enough that a stuck worker does not linger.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then, at different moments, to bound slow memory growth.
max_requests = 2000
max_requests_jitter = 200

# The heartbeat file workers touch: on tmpfs, because a disk-backed /tmp can stall a worker's
# heartbeat under I/O load and get it killed for nothing.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 (tmpfs on purpose)

# The proxy in front. The app itself trusts PROXY_FIX_HOPS hops of X-Forwarded-For/Proto/Host
# (werkzeug ProxyFix); this tells gunicorn which peers may set the secure-scheme headers, so
# that both agree. Add the nginx hosts' addresses when nginx runs elsewhere.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# No access log here: the application logs every request itself (with its request id).
accesslog = None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
capture_output = True
proc_name = "alliance-web"

# gunicorn's control socket has one default path per user: two instances on one host would
# fight over it, and systemd already manages the process (reload: systemctl reload).
control_socket_disable = True

# Prometheus metrics from several worker processes: each worker writes its samples into
# PROMETHEUS_MULTIPROC_DIR and /metrics adds them up. The folder must exist and be empty when
# the server starts (stale files from a previous run would be counted again), must not be
# shared by two gunicorn instances, and must be set before a worker imports prometheus_client:
# so it is set here, in the master, and every worker inherits it.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.path.join(
        worker_tmp_dir or tempfile.gettempdir(), f"alliance-prometheus-{os.getpid()}")


def _reset_metrics_dir() -> None:
    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, mode=0o700, exist_ok=True)


def on_starting(server):
    _reset_metrics_dir()


def child_exit(server, worker):
    """A worker ended: its live gauges must stop counting (prometheus_client keeps the files
    of dead workers for counters and histograms, which is what we want)."""
    try:
        from prometheus_client import multiprocess
    except ImportError:  # metrics not installed: nothing to clean
        return
    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
