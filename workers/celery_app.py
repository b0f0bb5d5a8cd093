"""Celery process entry point:  celery -A workers.celery_app worker  /  ... beat

Builds the Flask app once for the process (tasks run inside its app context) and sets the beat
schedule. Tasks themselves live in alliance/<domain>/tasks.py."""
from alliance import create_app
from workers.schedule import beat_schedule

flask_app = create_app()
celery = flask_app.extensions["celery"]
celery.conf.beat_schedule = beat_schedule(flask_app.config)
