"""The account page (who you are, your API keys) and an organisation's keys for its admins.

A new key is rendered once, in the answer to the POST that created it: it is never stored
in plain text, put in the session or shown again."""
from flask import Blueprint, abort, redirect, render_template, url_for
from flask_login import current_user

from alliance.apikeys import services
from alliance.apikeys.forms import ApiKeyForm, RevokeKeyForm
from alliance.auth.access import member_required
from alliance.core.errors import DomainError
from alliance.core.views import flash_error, run_and_flash

bp = Blueprint("apikeys", __name__)

# Key ids in addresses stay within the database's integer column, as in alliance.orgs.views.
ID = "int(min=1, max=2147483647)"


def _account_page(form: ApiKeyForm, status: int = 200):
    return render_template("apikeys/account.html", form=form, revoke_form=RevokeKeyForm(),
                           keys=services.keys_of(current_user),
                           key_prefix=services.KEY_PREFIX), status


@bp.route("/account")
@member_required
def account():
    return _account_page(ApiKeyForm())


@bp.route("/account/api-keys", methods=["POST"])
@member_required
def create_key():
    form = ApiKeyForm()
    if not form.validate_on_submit():
        return _account_page(form, 422)
    try:
        key, plaintext = services.create_key(current_user, form.name.data, form.expires_at())
    except DomainError as exc:
        if exc.field == "expires_at":
            exc.field = "expires"
        flash_error(exc, form)
        return _account_page(form, exc.status_code)
    # Shown here once; pages are sent with Cache-Control: no-store (alliance.core.security).
    return render_template("apikeys/created.html", key=key, plaintext=plaintext)


@bp.route(f"/account/api-keys/<{ID}:key_id>/revoke", methods=["POST"])
@member_required
def revoke_key(key_id):
    if not RevokeKeyForm().validate_on_submit():
        abort(400)
    run_and_flash(lambda: services.revoke_key(current_user, key_id),
                  lambda key: f"The key “{key.name}” is revoked; it no longer works.")
    return redirect(url_for("apikeys.account"))


def _require_admin_of(slug: str) -> None:
    """Only an admin of the organisation at this address sees its keys; for anyone else the
    page does not exist (404), as on the organisation's users page."""
    if not current_user.is_org_admin or current_user.organisation.slug != slug:
        abort(404)


@bp.route("/organisations/<slug>/api-keys")
@member_required
def organisation_keys(slug):
    _require_admin_of(slug)
    return render_template("apikeys/organisation.html", org=current_user.organisation,
                           keys=services.organisation_keys(current_user),
                           revoke_form=RevokeKeyForm(), key_prefix=services.KEY_PREFIX)


@bp.route(f"/organisations/<slug>/api-keys/<{ID}:key_id>/revoke", methods=["POST"])
@member_required
def revoke_organisation_key(slug, key_id):
    _require_admin_of(slug)
    if not RevokeKeyForm().validate_on_submit():
        abort(400)
    run_and_flash(lambda: services.revoke_key(current_user, key_id),
                  lambda key: f"The key “{key.name}” of {key.user.name} is revoked.")
    return redirect(url_for("apikeys.organisation_keys", slug=slug))
