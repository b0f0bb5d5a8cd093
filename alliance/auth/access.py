"""View decorators for who may open a page. Unsigned visitors go to sign-in; signed-in users
whose e-mail is unverified or whose organisation is not vetted go to their status page."""
from functools import wraps

from flask import abort, redirect, url_for
from flask_login import current_user, login_required


def member_required(view):
    """Signed in, verified, active, and in a vetted organisation."""

    @wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        if not current_user.can_act:
            return redirect(url_for("core.status"))
        return view(*args, **kwargs)

    return wrapped


def admin_required(view):
    """A platform administrator. Others get 404: the admin pages do not exist for them."""

    @wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        if not (current_user.is_admin and current_user.is_verified):
            abort(404)
        return view(*args, **kwargs)

    return wrapped
