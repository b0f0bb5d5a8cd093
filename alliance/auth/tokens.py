"""Signed, expiring tokens (itsdangerous) for links sent by mail. Each purpose has its own
salt, so a token made for one purpose is refused for every other."""
import hashlib

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from alliance.core.errors import DomainError


def secret_digest(secret: str) -> str:
    """How a random secret handed out once (an API key, a registration link's token) is
    kept: its sha256, never the secret itself."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=f"alliance.{purpose}")


def make_token(purpose: str, data: dict) -> str:
    return _serializer(purpose).dumps(data)


def read_token(purpose: str, token: str, max_age: int) -> dict:
    """The token's data, or a DomainError saying the link expired or is not valid."""
    try:
        return _serializer(purpose).loads(token, max_age=max_age)
    except SignatureExpired as exc:
        raise DomainError("This link has expired. Ask for a new one.") from exc
    except BadSignature as exc:
        raise DomainError("This link is not valid. Check that you copied all of it.") from exc
