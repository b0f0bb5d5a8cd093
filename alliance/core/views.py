"""Status page, error pages and the helpers every template uses."""
from collections.abc import Callable
from typing import NamedTuple

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    has_request_context,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from alliance.core.errors import DomainError
from alliance.core.text import render_markdown, xml_text
from alliance.core.vocab import country_name, policy_tag_label

bp = Blueprint("core", __name__)


@bp.route("/status")
def status():
    """What a signed-in user whose account or organisation is not ready yet can see."""
    if not current_user.is_authenticated:
        return redirect(url_for("auth.sign_in"))
    if current_user.can_act:
        return redirect(url_for("dashboard.index"))
    return render_template("core/status.html")


ERROR_TEXT = {
    400: ("The request could not be understood", "Go back, check the form and try again."),
    403: ("You may not do that", "If you think you should, ask your organisation's "
                                 "administrator or the alliance's coordinators."),
    404: ("Not found", "The page does not exist, or it is not shared with you. Check the "
                       "address, or go back to your dashboard."),
    405: ("Not allowed this way", "This address does not accept that kind of request. "
                                  "Use the buttons on the page."),
    409: ("That conflicts with the current state", "Reload the page to see the latest state."),
    413: ("That is too large", "The upload is over the size limit. Split it or make it smaller."),
    415: ("That kind of content is not taken here", "Send the form from its page."),
    422: ("That could not be accepted", "Check the message above and try again."),
    429: ("Too many attempts", "Wait a few minutes before trying again. If you forgot your "
                              "password, reset it."),
    500: ("Something went wrong on our side", "Nothing was changed. Try again in a moment; "
                                              "if it keeps happening, tell your administrator."),
}


class ApiErrors(NamedTuple):
    """How an API answers errors under its own addresses (TAXII registers one)."""
    matches: Callable[[], bool]        # is this request one of the API's?
    status: Callable[[int, str, str], Response]   # code, title, message -> response
    http: Callable[[HTTPException], Response]


def register_api_errors(app, api: ApiErrors) -> None:
    """Errors of requests the API matches are answered in the API's own format, not as
    pages. Called by the API slice when the app is built (slices above core register; core
    imports none of them)."""
    app.extensions.setdefault("alliance.api_errors", []).append(api)


def _api_for_request() -> ApiErrors | None:
    if not has_request_context():
        return None
    return next((api for api in current_app.extensions.get("alliance.api_errors", ())
                 if api.matches()), None)


def error_page(code: int, message: str | None = None):
    title, advice = ERROR_TEXT.get(code, ERROR_TEXT[500])
    api = _api_for_request()
    if api:  # machines get the API's error messages
        return api.status(code, title, message or "")
    return render_template("errors/error.html", code=code, title=title, advice=advice,
                           message=message), code


def register_error_handlers(app) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(exc):
        return error_page(400, "The form's security token is missing or has expired. "
                               "Reload the page and send the form again.")

    @app.errorhandler(DomainError)
    def domain_error(exc):
        return error_page(exc.status_code, exc.message)

    @app.errorhandler(IntegrityError)
    def integrity_error(exc):
        # Two requests raced for the same unique name or row; the loser gets a clear 409
        # (services check first, so this is only the narrow window between check and commit).
        from alliance.extensions import db

        db.session.rollback()
        return error_page(409, "Someone saved the same thing at the same moment. Reload the "
                               "page to see what is there now, then try again.")

    @app.errorhandler(HTTPException)
    def http_error(exc):
        response = make_response(_http_error(exc))
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            # RFC 9110 15.5.6: a 405 names the methods the resource takes.
            response.headers["Allow"] = ", ".join(sorted(exc.valid_methods))
        return response

    def _http_error(exc):
        api = _api_for_request()
        if api:
            return api.http(exc)
        if exc.response is not None:  # a page made for this error (a rate limit's on_breach)
            return exc.response
        if exc.code in ERROR_TEXT:
            message = exc.description if exc.code in (400, 413, 415, 422, 429) else None
            return error_page(exc.code, message)
        return exc

    @app.errorhandler(Exception)
    def unexpected(exc):
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        from alliance.extensions import db

        db.session.rollback()
        return error_page(500)


def register_template_helpers(app) -> None:
    app.jinja_env.filters["country_name"] = country_name
    app.jinja_env.filters["policy_tag"] = policy_tag_label
    app.jinja_env.filters["markdown"] = render_markdown
    app.jinja_env.filters["xml_text"] = xml_text

    @app.template_filter("when")
    def when(value):
        return value.strftime("%Y-%m-%d %H:%M UTC") if value else ""


def flash_error(exc: DomainError, form=None) -> None:
    """Show a domain error on the form field it names, or as a flash message."""
    if form is not None and exc.field and exc.field in form:
        form[exc.field].errors = list(form[exc.field].errors) + [exc.message]
    else:
        flash(exc.message, "error")


def run_and_flash(call, success, *, prefix: str = "") -> bool:
    """Run one service call for a POST button and flash the outcome. A refusal (DomainError;
    the service's unit of work rolled back) is flashed, prefixed; 403 and 404 are re-raised
    so that they answer as such. success is a message, or a function of the call's result
    giving one."""
    try:
        result = call()
    except DomainError as exc:
        if exc.status_code in (403, 404):
            raise
        flash(prefix + exc.message, "error")
        return False
    flash(success(result) if callable(success) else success, "success")
    return True
