#!/usr/bin/env bash
# `make run`: migrations, demo data, then web + Celery worker + beat with the embedded
# defaults (SQLite and a maildir in instance/; a local Redis when redis-server is installed,
# else Celery's filesystem transport). Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
FLASK="$VENV/bin/flask --app wsgi"
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-5000}
mkdir -p instance
export BASE_URL=${BASE_URL:-http://$HOST:$PORT}
export PYTHONPATH=$PWD

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

if [ -z "${REDIS_URL:-}" ] && [ -z "${NO_REDIS:-}" ] && command -v redis-server >/dev/null; then
  REDIS_PORT=${REDIS_PORT:-6390}
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$PWD/instance" \
    --save "" --appendonly yes --appendfilename redis.aof --daemonize no \
    --logfile "$PWD/instance/redis.log" &
  pids+=($!)
  export REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
  echo "Broker: local Redis on 127.0.0.1:$REDIS_PORT"
elif [ -z "${REDIS_URL:-}" ]; then
  echo "Broker: embedded (no redis-server, or NO_REDIS set): Celery uses instance/broker/"
fi

$FLASK db upgrade
$FLASK alliance seed-demo

$VENV/bin/celery -A workers.celery_app worker --loglevel=INFO --concurrency=2 \
  --logfile="$PWD/instance/worker.log" &
pids+=($!)
$VENV/bin/celery -A workers.celery_app beat --loglevel=INFO \
  --schedule="$PWD/instance/celerybeat-schedule" --logfile="$PWD/instance/beat.log" &
pids+=($!)

echo
echo "CyberPeace Alliance is running at $BASE_URL"
echo "Sign in with a demo account above; mail the platform sends is at $BASE_URL/admin/mail/"
echo "(as the platform admin). Logs: instance/*.log. Stop with Ctrl-C."
echo
# In the background like the others (the app logs each request), so that the wait below
# ends everything when any of them stops.
$VENV/bin/gunicorn --bind "$HOST:$PORT" --workers 1 --threads 8 wsgi:app &
pids+=($!)
wait -n "${pids[@]}"
