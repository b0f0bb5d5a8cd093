"""`flask alliance create-admin`."""
from sqlalchemy import func, select

from alliance.auth.models import User
from alliance.extensions import db
from tests import factories
from tests.auth.helpers import sign_in

STRONG = "Granite-Meadow-Falcon-4471"


def create_admin(app, email, password):
    return app.test_cli_runner().invoke(
        args=["alliance", "create-admin", email, "--password-stdin"], input=password + "\n")


def test_create_admin_makes_a_platform_admin_who_can_sign_in(app, make_client):
    result = create_admin(app, "ops@platform.example", STRONG)

    assert result.exit_code == 0, result.output
    assert "ops@platform.example" in result.output
    db.session.expire_all()
    admin = db.session.scalar(select(User).where(User.email == "ops@platform.example"))
    assert admin.is_admin
    assert admin.is_verified
    assert admin.organisation_id is None
    assert sign_in(make_client(), "ops@platform.example", STRONG).status_code == 302


def test_create_admin_refuses_a_weak_password_with_a_message(app):
    result = create_admin(app, "ops@platform.example", "password1234")

    assert result.exit_code != 0
    assert "password" in result.output.lower()
    db.session.expire_all()
    assert db.session.scalar(select(func.count(User.id))) == 0


def test_create_admin_refuses_a_short_password(app):
    result = create_admin(app, "ops@platform.example", "Sh0rt!")

    assert result.exit_code != 0
    assert "12 characters" in result.output


def test_create_admin_promotes_an_existing_user(app, db):
    org = factories.make_org("Promoted Org")
    user = factories.make_user(org, "lead@promoted.example", role="org_admin")

    result = create_admin(app, "Lead@Promoted.example", STRONG)

    assert result.exit_code == 0, result.output
    fresh = factories.fresh(user)
    assert fresh.is_admin
    assert db.session.scalar(select(func.count(User.id))) == 1


def test_weak_password_does_not_promote_an_existing_user(app, db):
    org = factories.make_org("Kept Org")
    user = factories.make_user(org, "lead@kept.example", role="org_admin")

    result = create_admin(app, user.email, "qwertyuiop123")

    assert result.exit_code != 0
    assert not factories.fresh(user).is_admin


def test_create_admin_reads_a_password_with_windows_line_endings(app, make_client):
    result = app.test_cli_runner().invoke(
        args=["alliance", "create-admin", "crlf@platform.example", "--password-stdin"],
        input=STRONG + "\r\n")
    assert result.exit_code == 0, result.output
    assert sign_in(make_client(), "crlf@platform.example", STRONG).status_code == 302
