"""The TAXII 2.1 API (OASIS TAXII 2.1, sections 3-5) at /taxii2/.

Authentication is an API key only — HTTP Basic with the key as the password, or
`Authorization: Bearer <key>` — checked on every request; session cookies are ignored here
(so there is no CSRF exposure) and keys are ignored everywhere else. Every answer is
`application/taxii+json;version=2.1`, errors included (TAXII error messages)."""
from functools import wraps

import orjson
from flask import Blueprint, Response, current_app, g, request
from werkzeug.exceptions import HTTPException

from alliance.apikeys.services import authenticate
from alliance.core.views import ApiErrors, error_page, register_api_errors
from alliance.extensions import client_network, csrf, limiter
from alliance.stix.limits import StixLimits
from alliance.stix.validation import BundleRejected, parse_envelope
from alliance.taxii import reading, services, writing
from alliance.taxii.filters import check_parameters, parse_filters, rfc3339
from alliance.taxii.services import TaxiiError

bp = Blueprint("taxii", __name__, url_prefix="/taxii2")
csrf.exempt(bp)

TAXII = "application/taxii+json;version=2.1"
API_ROOT = "/taxii2/api/"


def _json(body, status: int = 200, headers=None) -> Response:
    response = Response(orjson.dumps(body), status=status, content_type=TAXII)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def error_response(status: int, title: str, description: str = "", details=None) -> Response:
    body = {"title": title, "http_status": str(status)}
    if description:
        body["description"] = description
    if details:
        body["details"] = details
    headers = {"WWW-Authenticate": 'Basic realm="TAXII", Bearer'} if status == 401 else {}
    return _json(body, status, headers)


def is_taxii_request() -> bool:
    return request.path == "/taxii2" or request.path.startswith("/taxii2/")


def accepts_taxii(header: str) -> bool:
    """Whether an Accept header takes TAXII 2.1 JSON: each media range with its parameters
    (whitespace allowed around ';' and '=', RFC 9110 12.5.1), a q of 0 meaning "not this"."""
    if not header.strip():
        return True
    for part in header.split(","):
        media, *pieces = (piece.strip().lower() for piece in part.split(";"))
        params = {}
        for piece in pieces:
            name, _, value = piece.partition("=")
            params[name.strip()] = value.strip().strip('"')
        try:
            if not 0 < float(params.pop("q", "1")) <= 1:
                continue
        except ValueError:
            continue
        if media in ("*/*", "application/*"):
            return True
        if media == "application/taxii+json" and params.get("version", "2.1") == "2.1":
            return True
    return False


def _media_type(value: str) -> tuple[str, dict | None]:
    """A media type and its parameters (names lower case, values unquoted), or None for the
    parameters when one is malformed or given twice."""
    media, *pieces = (piece.strip() for piece in value.split(";"))
    params: dict[str, str] = {}
    for piece in pieces:
        name, equals, val = (p.strip() for p in piece.partition("="))
        name = name.lower()
        if not equals or not name or name in params:
            return media.lower(), None
        if len(val) >= 2 and val[0] == val[-1] == '"':
            val = val[1:-1]
        params[name] = val
    return media.lower(), params


def is_taxii_content(value: str) -> bool:
    """Whether a Content-Type is TAXII 2.1 JSON: application/taxii+json with version 2.1, or
    with no version at all: the newest this server supports (TAXII 2.1 1.6.8.2), which is
    2.1. Matched exactly: version=2.10 or 2.1x is not 2.1. A charset may be given."""
    media, params = _media_type(value or "")
    if media != "application/taxii+json" or params is None:
        return False
    if set(params) - {"version", "charset"}:
        return False
    return params.get("version", "2.1") == "2.1" and \
        params.get("charset", "utf-8").lower() == "utf-8"


def _accepts_taxii() -> bool:
    return accepts_taxii(request.headers.get("Accept", ""))


def _presented_key() -> str | None:
    auth = request.authorization
    if auth is None:
        return None
    if auth.type == "basic":
        return auth.password
    if auth.type == "bearer":
        return auth.token
    return None


def _authenticated():
    """The presented key's (key, user), or None; checked once a request (the rate limit's
    key needs it before the view runs)."""
    if "taxii_auth" not in g:
        g.taxii_auth = authenticate(_presented_key())
    return g.taxii_auth


def _rate_key() -> str:
    """A key's own allowance only once it is checked: a key's prefix is no secret (it names
    the key on pages and in the audit log), so a bucket chosen by an unchecked one could be
    emptied by anyone, and a new made-up prefix a request would escape every limit. Anything
    else counts against the client's address."""
    found = _authenticated()
    return f"taxii-key:{found[0].id}" if found else f"taxii-ip:{client_network()}"


def api(view):
    """Check Accept and the key; g.api_user and g.api_key are the key's user and key."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        if not _accepts_taxii():
            raise TaxiiError(406, "Not acceptable", f"This API answers only {TAXII}.")
        found = _authenticated()
        if found is None:
            raise TaxiiError(401, "Authentication required",
                             "Send a valid API key: HTTP Basic with the key as the password, "
                             "or Authorization: Bearer <key>.")
        g.api_key, g.api_user = found
        response = view(*args, **kwargs)
        if request.method in ("GET", "HEAD") and response.status_code == 200:
            # A client polling an unchanged page or status gets a 304 (RFC 9110 13.1.2).
            response.add_etag()
            response.make_conditional(request)
        return response

    return limiter.limit(lambda: current_app.config["TAXII_RATE_LIMIT"],
                         key_func=_rate_key)(wrapped)


def _page_headers(result) -> dict:
    if not result.rows:
        return {}
    return {"X-TAXII-Date-Added-First": rfc3339(result.first_added),
            "X-TAXII-Date-Added-Last": rfc3339(result.last_added)}


@bp.route("/", methods=["GET"])
@api
def discovery():
    return _json({"title": "CyberPeace Alliance TAXII 2.1",
                  "description": "Threat notes shared in the alliances your organisation is "
                                 "a member of.",
                  "default": API_ROOT, "api_roots": [API_ROOT]})


@bp.route("/api/", methods=["GET"])
@api
def api_root():
    return _json({"title": "CyberPeace Alliance",
                  "description": f"Pages hold up to {reading.MAX_PAGE} objects "
                                 f"(default {reading.DEFAULT_PAGE}).",
                  "versions": [TAXII],
                  "max_content_length": current_app.config["STIX_MAX_BYTES"]})


@bp.route("/api/collections/", methods=["GET"])
@api
def collections():
    return _json({"collections": [c.resource() for c in services.collections_for(g.api_user)]})


@bp.route("/api/collections/<collection_id>/", methods=["GET"])
@api
def collection(collection_id):
    return _json(services.get_collection(g.api_user, collection_id).resource())


def _page(collection_id, filters):
    coll = services.get_collection(g.api_user, collection_id)
    return reading.page(g.api_user, g.api_key.id, coll, filters, request.args.get("limit"),
                        request.args.get("next"))


@bp.route("/api/collections/<collection_id>/objects/", methods=["GET"])
@api
def get_objects(collection_id):
    result = _page(collection_id, parse_filters(request.args))
    return _json(reading.envelope(result), headers=_page_headers(result))


def _refusal_status(exc: BundleRejected) -> int:
    """A body that is not JSON at all is a bad request (400, TAXII 2.1 section 3.6.1); JSON
    refused as STIX keeps its status (422, 409, 413). orjson's nesting cap refuses valid but
    deep JSON: that is a limit on the content (422), like the shallower depth limit."""
    cause = exc.__cause__
    if isinstance(cause, orjson.JSONDecodeError) and "depth limit" not in str(cause):
        return 400
    return exc.status_code


@bp.route("/api/collections/<collection_id>/objects/", methods=["POST"])
@api
def add_objects(collection_id):
    coll = services.get_collection(g.api_user, collection_id)
    if not coll.can_write:
        raise TaxiiError(403, "Not writable", "This collection is read-only for your key.")
    if not is_taxii_content(request.headers.get("Content-Type", "")):
        raise TaxiiError(415, "Unsupported media type", f"Send the envelope as {TAXII}.")
    try:
        parsed = parse_envelope(request.get_data(cache=False),
                                StixLimits.from_config(current_app.config))
        status = writing.add_objects(g.api_user, coll, parsed.objects, refs=parsed.refs)
    except BundleRejected as exc:  # the posting's unit of work rolled back
        raise TaxiiError(_refusal_status(exc), "The envelope was refused; nothing was stored",
                         exc.message, details={"problems": [
                             {"id": p.object_id, "property": p.property, "reason": p.reason}
                             for p in exc.problems]}) from exc
    return _json(writing.status_resource(status), 202)


@bp.route("/api/collections/<collection_id>/objects/<object_id>/", methods=["GET"])
@api
def get_object(collection_id, object_id):
    filters = parse_filters(request.args)
    filters.ids = (object_id,)
    result = _page(collection_id, filters)
    if not result.rows and not request.args.get("next"):
        raise TaxiiError(404, "Object not found", "No such object in this collection.")
    return _json(reading.envelope(result), headers=_page_headers(result))


@bp.route("/api/collections/<collection_id>/objects/<object_id>/", methods=["DELETE"])
@api
def delete_object(collection_id, object_id):
    coll = services.get_collection(g.api_user, collection_id)
    check_parameters(request.args)
    # TAXII 2.1 5.7: match[version] and match[spec_version] narrow what is deleted.
    filters = None
    if {"match[version]", "match[spec_version]"} & set(request.args):
        filters = parse_filters(request.args)
        if "match[version]" not in request.args:
            filters.versions = ("all",)  # every version, as without filters
    writing.delete_object(g.api_user, coll, object_id, filters)
    return Response(status=200, content_type=TAXII)


@bp.route("/api/collections/<collection_id>/objects/<object_id>/versions/", methods=["GET"])
@api
def object_versions(collection_id, object_id):
    filters = parse_filters(request.args, with_version=False)
    filters.ids, filters.versions = (object_id,), ("all",)
    result = _page(collection_id, filters)
    if not result.rows and not request.args.get("next"):
        raise TaxiiError(404, "Object not found", "No such object in this collection.")
    return _json(reading.versions(result), headers=_page_headers(result))


@bp.route("/api/collections/<collection_id>/manifest/", methods=["GET"])
@api
def manifest(collection_id):
    result = _page(collection_id, parse_filters(request.args))
    return _json(reading.manifest(result), headers=_page_headers(result))


@bp.route("/api/status/<status_id>/", methods=["GET"])
@api
def status(status_id):
    return _json(writing.status_resource(writing.get_status(g.api_user, status_id)))


def register_errors(app) -> None:
    """TAXII error messages for everything under /taxii2/ (the HTML error pages elsewhere)."""
    register_api_errors(app, ApiErrors(matches=is_taxii_request, status=error_response,
                                       http=http_error_for_taxii))

    @app.errorhandler(TaxiiError)
    def taxii_error(exc):
        if not is_taxii_request():
            return error_page(exc.status_code, exc.message)
        return error_response(exc.status_code, exc.title, exc.description, exc.details)


def http_error_for_taxii(exc: HTTPException) -> Response:
    titles = {404: "Not found", 405: "Method not allowed", 413: "Request too large",
              429: "Too many requests", 400: "Bad request"}
    code = exc.code or 500
    return error_response(code, titles.get(code, exc.name), exc.description or "")
