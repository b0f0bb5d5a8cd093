"""Small helpers shared by the auth and orgs tests: signing in through the real form, telling
whether a client's session is still honoured, and reading tokens out of queued mail."""
from contextlib import contextmanager

from tests.factories import PASSWORD, queued_mails

SIGN_IN = "/auth/sign-in"


def sign_in(client, email, password=PASSWORD, *, ip="127.0.0.1", query="", **fields):
    """POST the sign-in form as a browser would (the testing config has no CSRF token)."""
    return client.post(SIGN_IN + query, data={"email": email, "password": password, **fields},
                       environ_base={"REMOTE_ADDR": ip})


def is_signed_in(client) -> bool:
    """Whether the server still treats the client's session as a signed-in user's. /status
    sends anonymous visitors to the sign-in page and everyone else elsewhere (or shows it)."""
    response = client.get("/status")
    return not (response.status_code == 302 and response.location.startswith(SIGN_IN))


def run_outbox(kind: str) -> list[str]:
    """Run the outbox messages of this kind that have not run yet, as the worker would."""
    from sqlalchemy import select

    from alliance.extensions import db
    from alliance.outbox.models import OutboxMessage
    from alliance.outbox.services import run_message

    db.session.expire_all()
    ids = db.session.scalars(select(OutboxMessage.id).where(
        OutboxMessage.kind == kind, OutboxMessage.done_at.is_(None))
        .order_by(OutboxMessage.id)).all()
    return [run_message(message_id) for message_id in ids]


def mails_with(template: str) -> list[dict]:
    return [m for m in queued_mails() if m["template"] == template]


def token_from(mail: dict) -> str:
    """The token at the end of the link a queued mail carries."""
    return mail["context"]["link"].rstrip("/").rsplit("/", 1)[1]


def path_of(link: str) -> str:
    """The site-relative path of an absolute link built from BASE_URL."""
    from urllib.parse import urlsplit

    return urlsplit(link).path


@contextmanager
def sign_in_write_fails():
    """The write that records a sign-in (last_sign_in_at) fails, as a lost database
    connection or a lock timeout would: what was stored before it in the same action shows."""
    from sqlalchemy import event, inspect
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.orm import Session

    from alliance.auth.models import User

    def refuse(session, context, instances):
        for obj in list(session.new) + list(session.dirty):
            if isinstance(obj, User) and inspect(obj).attrs.last_sign_in_at.history.added:
                raise OperationalError("UPDATE users", {}, Exception("database is locked"))

    event.listen(Session, "before_flush", refuse)
    try:
        yield
    finally:
        event.remove(Session, "before_flush", refuse)
