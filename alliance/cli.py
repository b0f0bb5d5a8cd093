"""`flask --app wsgi alliance ...` commands for operators."""
import json
import sys

import click
from flask import current_app

from alliance.core.errors import DomainError
from alliance.extensions import db


@click.group("alliance")
def alliance_cli():
    """CyberPeace Alliance administration."""


@alliance_cli.command("create-admin")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--name", default="Platform administrator", show_default=True)
def create_admin_command(email, password_stdin, name):
    """Create a platform administrator (or make an existing user one)."""
    from alliance.orgs.services import create_admin

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = create_admin(email, password, name)
    except DomainError as exc:
        db.session.rollback()
        raise click.ClickException(exc.message) from exc
    click.echo(f"{user.email} is a platform administrator.")


@alliance_cli.command("seed-demo")
@click.option("--json", "as_json", is_flag=True, help="Print what exists as one JSON document.")
def seed_demo_command(as_json):
    """Create the documented demo organisations, users and alliances (idempotent)."""
    from alliance.demo.services import seed_demo

    if current_app.config["ENV_NAME"] == "production":
        raise click.ClickException("seed-demo does not run in production: its passwords are public.")
    data = seed_demo()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo("Demo sign-ins (the passwords are public; never use them in production):")
    for user in data["users"]:
        where = user["organisation"] or "platform"
        click.echo(f"  {user['email']:<34} {user['password']:<32} {user['role']} ({where})")
    for alliance in data["alliances"]:
        states = ", ".join(f"{m['organisation']}={m['state']}" for m in data["memberships"]
                           if m["alliance"] == alliance["slug"])
        click.echo(f"  alliance {alliance['slug']}: {states}")


@alliance_cli.command("outbox-relay")
def outbox_relay_command():
    """Publish outbox messages the broker has not taken yet (beat does this every few seconds)."""
    from alliance.outbox.services import relay_pending

    click.echo(f"published {relay_pending()} message(s)")
