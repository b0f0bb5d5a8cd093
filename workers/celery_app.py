"""Celery process entry point:  celery -A workers.celery_app worker  /  ... beat

Builds the Flask app once for the process (tasks run inside its app context) and sets the beat
schedule. Tasks themselves live in alliance/<domain>/tasks.py. What the worker runs is
registered by create_app, in one place, as for the web app: the task modules
(alliance.TASK_MODULES) and every outbox kind with its handler (alliance.configure_outbox)."""
from celery.signals import setup_logging

from alliance import create_app
from alliance.ops.logs import setup_worker_logging
from workers.schedule import beat_schedule

flask_app = create_app()
celery = flask_app.extensions["celery"]
celery.conf.beat_schedule = beat_schedule(flask_app.config)


@setup_logging.connect
def _setup_logging(loglevel=None, logfile=None, format=None, **kwargs):
    """Worker and beat log as the web does (LOG_FORMAT: JSON lines, with the task id)."""
    setup_worker_logging(flask_app.config["LOG_FORMAT"], loglevel, logfile, format)
