"""Configuration classes, driven by environment variables. No logic lives here: the
application factory (alliance/__init__.py) derives what depends on other values."""
import os

BASE_DIR = os.path.abspath(os.path.dirname(__file__))
INSTANCE_DIR = os.environ.get("INSTANCE_PATH") or os.path.join(BASE_DIR, "instance")


class Config:
    # SECRET_KEY: production refuses to start without one; development keeps one in instance/.
    SECRET_KEY = os.environ.get("SECRET_KEY")
    # DATABASE_URL: any SQLAlchemy URL; postgresql:// is run through psycopg 3.
    SQLALCHEMY_DATABASE_URI = os.environ.get("DATABASE_URL") or (
        "sqlite:///" + os.path.join(INSTANCE_DIR, "alliance.db"))
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
    # REDIS_URL: Celery broker and rate-limit storage. Unset: an embedded broker that needs
    # no server (kombu's filesystem transport in instance/) and in-process rate limits.
    REDIS_URL = os.environ.get("REDIS_URL")
    # MAIL_URL: smtp://user:pass@host:port, smtps://..., or a maildir path.
    MAIL_URL = os.environ.get("MAIL_URL") or os.path.join(INSTANCE_DIR, "maildir")
    MAIL_FROM = os.environ.get("MAIL_FROM", "CyberPeace Alliance <no-reply@alliance.localhost>")
    MAIL_TIMEOUT = float(os.environ.get("MAIL_TIMEOUT", "10"))
    # BASE_URL: how people reach the site; used for links in mails sent by workers.
    BASE_URL = os.environ.get("BASE_URL", "http://127.0.0.1:5000")

    MAX_CONTENT_LENGTH = int(os.environ.get("MAX_CONTENT_LENGTH", str(10 * 1024 * 1024)))
    SESSION_COOKIE_NAME = "alliance_session"
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = False
    PERMANENT_SESSION_LIFETIME = 60 * 60 * 12
    REMEMBER_COOKIE_SECURE = False
    WTF_CSRF_ENABLED = True
    WTF_CSRF_TIME_LIMIT = 60 * 60 * 8
    HSTS = False

    # Posted STIX content: refused before parsing work when over these.
    STIX_MAX_BYTES = int(os.environ.get("STIX_MAX_BYTES", str(10 * 1024 * 1024)))
    # Requests per API key on the TAXII API (Flask-Limiter syntax; in Redis when REDIS_URL).
    TAXII_RATE_LIMIT = os.environ.get("TAXII_RATE_LIMIT", "600 per minute")
    STIX_MAX_OBJECTS = int(os.environ.get("STIX_MAX_OBJECTS", "25000"))
    STIX_MAX_DEPTH = int(os.environ.get("STIX_MAX_DEPTH", "48"))
    STIX_MAX_STRING = int(os.environ.get("STIX_MAX_STRING", str(1024 * 1024)))
    # Characters of indicator patterns per post that the fast checker cannot vouch for and
    # stix2's own parser must read (about 7 µs a character: 256 KiB is about 2 s).
    STIX_MAX_SLOW_PATTERNS = int(os.environ.get("STIX_MAX_SLOW_PATTERNS", str(256 * 1024)))
    # Observables per compose form: the stix2 library builds each (about 0.4 ms), so 30,000
    # pasted lines held the request for over 10 s. More go in as a bundle or through the CLI.
    COMPOSE_MAX_OBSERVABLES = int(os.environ.get("COMPOSE_MAX_OBSERVABLES", "5000"))

    # Signed-token lifetimes, in seconds.
    EMAIL_VERIFY_MAX_AGE = 60 * 60 * 48
    PASSWORD_RESET_MAX_AGE = 60 * 60
    INVITE_MAX_AGE = 60 * 60 * 24 * 7
    SIGNIN_LINK_MAX_AGE = 15 * 60

    # Sign-in throttling: attempts per account from one client address; per account from
    # every address together (a ceiling against guessing spread over many addresses, which
    # also locks the owner out: the one-time sign-in link by mail is the way in meanwhile);
    # and attempts per client address, whatever the account.
    SIGNIN_LIMIT_ACCOUNT = os.environ.get("SIGNIN_LIMIT_ACCOUNT", "5 per 15 minutes")
    SIGNIN_LIMIT_ACCOUNT_CEILING = os.environ.get("SIGNIN_LIMIT_ACCOUNT_CEILING",
                                                  "50 per 15 minutes")
    SIGNIN_LIMIT_IP = os.environ.get("SIGNIN_LIMIT_IP", "30 per 15 minutes")
    # One-time sign-in links one account may be mailed (asked for from anywhere).
    SIGNIN_LINK_MAIL_LIMIT = os.environ.get("SIGNIN_LINK_MAIL_LIMIT", "3 per hour")
    # Invitations an org admin may send (each is a mail to an address they typed).
    INVITE_LIMIT = os.environ.get("INVITE_LIMIT", "20 per hour;100 per day")
    # Registration mails one address may get (whoever registers with it, from wherever); the
    # rest are dropped without a word, and the form's answer stays the same.
    REGISTER_MAIL_LIMIT = os.environ.get("REGISTER_MAIL_LIMIT", "3 per hour")
    RESET_MAIL_LIMIT = os.environ.get("RESET_MAIL_LIMIT", "3 per hour")

    # Outbox relay: how often beat relays pending rows, and how long a web request may wait
    # on the broker before leaving the row for the relay.
    OUTBOX_RELAY_SECONDS = float(os.environ.get("OUTBOX_RELAY_SECONDS", "10"))
    OUTBOX_PUBLISH_TIMEOUT = float(os.environ.get("OUTBOX_PUBLISH_TIMEOUT", "1.0"))
    OUTBOX_MAX_ATTEMPTS = int(os.environ.get("OUTBOX_MAX_ATTEMPTS", "10"))
    # Retries of a temporary failure wait uniform(0, min(MAX, BASE * 2**retry)) seconds.
    OUTBOX_RETRY_BASE_SECONDS = float(os.environ.get("OUTBOX_RETRY_BASE_SECONDS", "5"))
    OUTBOX_RETRY_MAX_SECONDS = float(os.environ.get("OUTBOX_RETRY_MAX_SECONDS", "600"))
    # Effectively-once delivery rests on three durations; the factory refuses to start
    # unless   task time limit < OUTBOX_CLAIM_SECONDS < CELERY_VISIBILITY_TIMEOUT
    # (and OUTBOX_RETRY_MAX_SECONDS < CELERY_VISIBILITY_TIMEOUT):
    # - OUTBOX_CLAIM_SECONDS: a running message's lease on its outbox row; until it ends no
    #   other worker runs the message. The dispatch task's soft and hard time limits are
    #   derived from it (1/2 and 3/4 of it), so a run always ends before its lease does.
    # - CELERY_VISIBILITY_TIMEOUT (Redis only): how long an unacknowledged (acks_late) task
    #   stays with a worker before Redis hands it to another: longer than any run, and than
    #   any retry countdown (a retry waits unacknowledged in the worker that holds it).
    # - OUTBOX_REPUBLISH_SECONDS: the relay publishes a message again when it was published
    #   this long ago, never finished and holds no live claim (a lost or killed task).
    OUTBOX_CLAIM_SECONDS = float(os.environ.get("OUTBOX_CLAIM_SECONDS", str(10 * 60)))
    OUTBOX_REPUBLISH_SECONDS = float(os.environ.get("OUTBOX_REPUBLISH_SECONDS", str(15 * 60)))
    CELERY_VISIBILITY_TIMEOUT = float(os.environ.get("CELERY_VISIBILITY_TIMEOUT",
                                                     str(2 * 60 * 60)))

    # Digests: how often beat looks for due digests; watch alerts a user gets per hour before
    # the rest are folded into their next digest.
    DIGEST_SCAN_SECONDS = float(os.environ.get("DIGEST_SCAN_SECONDS", "300"))
    ALERT_LIMIT_PER_HOUR = int(os.environ.get("ALERT_LIMIT_PER_HOUR", "10"))

    # Number of reverse proxies in front (nginx: 1) whose X-Forwarded-* headers are trusted.
    PROXY_FIX_HOPS = int(os.environ.get("PROXY_FIX_HOPS", "0"))

    # Admin page listing the local maildir (development convenience).
    MAILDIR_ADMIN_PAGE = True

    # Logs (alliance/ops/logs.py): "json" (one object a line, with the request id) or "text";
    # unset, production logs JSON and development and testing text. LOG_LEVEL: a logging level.
    LOG_FORMAT = os.environ.get("LOG_FORMAT", "text")
    LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
    # /metrics is readable from these addresses (comma-separated IPs or CIDRs; the client
    # address after PROXY_FIX_HOPS) or with "Authorization: Bearer METRICS_TOKEN" (unset: no
    # token access); anyone else gets a 404.
    METRICS_ALLOW = os.environ.get("METRICS_ALLOW", "127.0.0.1/32,::1/128")
    METRICS_TOKEN = os.environ.get("METRICS_TOKEN")
    # Seconds /readyz and /metrics wait on Redis before reporting it down.
    HEALTH_CHECK_TIMEOUT = float(os.environ.get("HEALTH_CHECK_TIMEOUT", "1.0"))


class DevelopmentConfig(Config):
    pass


class TestingConfig(Config):
    TESTING = True
    SQLALCHEMY_DATABASE_URI = os.environ.get("TEST_DATABASE_URL") or os.environ.get(
        "DATABASE_URL") or "sqlite://"
    WTF_CSRF_ENABLED = False
    SECRET_KEY = "testing-secret-key-not-for-production"  # noqa: S105 (tests only)
    SIGNIN_LIMIT_ACCOUNT = "5 per 15 minutes"
    SIGNIN_LIMIT_ACCOUNT_CEILING = "50 per 15 minutes"
    SIGNIN_LIMIT_IP = "30 per 15 minutes"


class ProductionConfig(Config):
    SESSION_COOKIE_SECURE = True
    REMEMBER_COOKIE_SECURE = True
    PREFERRED_URL_SCHEME = "https"
    HSTS = True
    MAILDIR_ADMIN_PAGE = False
    LOG_FORMAT = os.environ.get("LOG_FORMAT", "json")


CONFIGS = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}
