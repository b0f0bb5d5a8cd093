"""`flask --app wsgi alliance ...` commands for operators."""
import json
import sys
from dataclasses import dataclass

import click
from flask import current_app

from alliance.core.errors import DomainError
from alliance.core.states import Role
from alliance.core.validators import one_line
from alliance.extensions import db
from alliance.stix.tlp import TLP_LEVELS


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


def _import_actor(org_slug: str, as_email: str | None):
    """The user an import posts as: --as EMAIL (a user of the organisation), or else the
    organisation's first active org admin."""
    from sqlalchemy import select

    from alliance.auth.models import User
    from alliance.orgs.models import Organisation

    org = db.session.scalar(select(Organisation).where(Organisation.slug == org_slug))
    if org is None:
        raise click.ClickException(f"No organisation with the slug {org_slug!r}.")
    if as_email:
        user = db.session.scalar(select(User).where(User.email == as_email.strip().lower()))
        if user is None or user.organisation_id != org.id:
            raise click.ClickException(f"{as_email} is not a user of {org.name}.")
    else:
        admins = db.session.scalars(select(User).where(
            User.organisation_id == org.id, User.role == Role.ORG_ADMIN, User.can_act)
            .order_by(User.id)).all()
        if not admins:
            raise click.ClickException(f"{org.name} has no active org admin to post as; "
                                       "name a user with --as EMAIL.")
        user = admins[0]
    if not user.can_act:
        raise click.ClickException(f"{user.email} cannot post: the user must be active and "
                                   "verified, in a vetted organisation.")
    return user


@dataclass(frozen=True)
class _ImportRequest:
    """What `alliance import` was asked to do: its argument and options, as click names them."""

    path: str
    org_slug: str
    alliance_slug: str
    tlp: str
    title: str | None
    as_email: str | None
    recipients: tuple[str, ...]
    alert: bool
    allow_looser_markings: bool


@alliance_cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, readable=True))
@click.option("--org", "org_slug", required=True, help="Slug of the posting organisation.")
@click.option("--alliance", "alliance_slug", required=True, help="Slug of the alliance.")
@click.option("--tlp", required=True, type=click.Choice(TLP_LEVELS, case_sensitive=False),
              help="The note's TLP 2.0 level: CLEAR, GREEN, AMBER, AMBER+STRICT or RED.")
@click.option("--title", help="Note title (default: the file name).")
@click.option("--as", "as_email", help="Post as this user of the organisation (default: its "
                                       "first active org admin).")
@click.option("--recipient", "recipients", multiple=True, metavar="EMAIL",
              help="A named reader of a TLP:RED note (repeat the option for more).")
@click.option("--alert", is_flag=True, help="Send watch-term alerts for this note (bulk imports "
              "send none by default; the note still reaches digests).")
@click.option("--allow-looser-markings", is_flag=True,
              help="Confirm that objects marked looser than --tlp (a TLP:CLEAR indicator in a "
                   "TLP:AMBER note) are shared at their own marking; without it they are refused.")
def import_command(**options):
    """Post a STIX 2.1 bundle file as one note, validated and stored all or nothing.

    Prints the note's report id on success; on failure prints every problem (object id,
    property, reason) on standard error, stores nothing and exits with status 1. Objects
    marked looser than the note are listed on standard error either way; they are refused
    (nothing stored) unless --allow-looser-markings confirms them, as the web form's
    checkbox does."""
    _import_bundle(_ImportRequest(**options))


def _import_audience(request: _ImportRequest) -> tuple:
    """(the user the import posts as, the alliance, the ids of the named recipients)."""
    from sqlalchemy import select

    from alliance.alliances.models import Alliance
    from alliance.auth.models import User

    actor = _import_actor(request.org_slug, request.as_email)
    alliance = db.session.scalar(select(Alliance).where(Alliance.slug == request.alliance_slug))
    if alliance is None:
        raise click.ClickException(f"No alliance with the slug {request.alliance_slug!r}.")
    recipient_ids = []
    for email in request.recipients:
        user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
        if user is None:
            raise click.ClickException(f"No user with the e-mail address {email}.")
        recipient_ids.append(user.id)
    return actor, alliance, recipient_ids


def _import_bundle(request: _ImportRequest) -> None:
    """The import command's work: read, post, and say what happened (see import_command).
    The file is read a part at a time (alliance.stix.stream), twice: checked whole, then
    stored, so a bundle of 100,000 objects is never held whole."""
    from pathlib import Path

    from alliance.notes.posting import NoteDraft, post_note
    from alliance.stix.limits import StixLimits
    from alliance.stix.markings import looser_than
    from alliance.stix.stream import BundleFile
    from alliance.stix.validation import BundleRejected

    actor, alliance, recipient_ids = _import_audience(request)
    path, tlp = Path(request.path), request.tlp
    try:
        bundle = BundleFile(path, StixLimits.from_config(current_app.config))
        # Drawn a couple of hundred times at most: drawing it after every object (on a
        # terminal) would cost about as much as checking the object.
        with click.progressbar(length=bundle.readings * bundle.size,
                               label="Checking and storing", file=sys.stderr,
                               update_min_steps=max(1, bundle.size // 100)) as bar:
            bundle.progress = bar.update
            # As sent, duplicates and all, as the bundle is checked (the first reading).
            looser: list[dict] = []
            bundle.watch = lambda part: looser.extend(looser_than(part.objects, tlp))
            note = post_note(actor, NoteDraft(
                title=one_line(request.title or "") or f"Import of {path.name}", tlp=tlp,
                alliance_ids=[alliance.id], objects=bundle,
                recipient_ids=recipient_ids, warnings=bundle.warnings,
                looser_confirmed=request.allow_looser_markings),
                progress=bundle.checked, alerts=request.alert)
    except BundleRejected as exc:
        click.echo(f"Refused, nothing was stored ({len(exc.problems)} problem(s)):", err=True)
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        sys.exit(1)
    except DomainError as exc:
        if exc.field == "confirm_looser":
            _echo_looser(looser, tlp)
            raise click.ClickException(
                f"Refused, nothing was stored: {exc.message} Pass --allow-looser-markings to "
                "share them so, or mark them at least as strictly as the note.") from exc
        raise click.ClickException(exc.message) from exc
    for warning in bundle.warnings:
        click.echo(f"Note: {warning}.", err=True)
    _echo_looser(looser, tlp)
    click.echo(f"Stored {bundle.count:,} object(s) as a TLP:{tlp} note for "
               f"{alliance.name}.", err=True)
    click.echo(note.report_id)


def _echo_looser(looser: list[dict], tlp: str) -> None:
    """List, on standard error, the objects marked looser than the note (markings.looser_than)."""
    if not looser:
        return
    click.echo(f"Warning: {len(looser)} object(s) are marked looser than the note's TLP:{tlp}; "
               "consumers that enforce markings per object treat each at its own level:",
               err=True)
    for obj in looser:
        name = f" {obj['name']!r}" if obj["name"] else ""
        where = f" on {', '.join(obj['selectors'])}" if obj["selectors"] else ""
        click.echo(f"  {obj['id']} ({obj['type']}){name}: TLP:{obj['level']}{where}", err=True)


@alliance_cli.group("api-key")
def api_key_cli():
    """API keys for the TAXII 2.1 API."""


@api_key_cli.command("create")
@click.argument("email")
@click.option("--name", required=True, help="What the key is for, e.g. \"OpenCTI connector\".")
@click.option("--expires", type=click.DateTime(formats=["%Y-%m-%d"]), metavar="YYYY-MM-DD",
              help="The key stops working at 00:00 UTC on this day (default: never).")
def api_key_create(email, name, expires):
    """Create an API key for the user with this e-mail address. Prints only the key, which
    is shown this once (only its hash is stored), so that scripts can capture it."""
    from datetime import UTC

    from alliance.apikeys.services import create_key
    from alliance.auth.services import find_user_by_email

    user = find_user_by_email(email)
    if user is None:
        raise click.ClickException(f"No user with the e-mail address {email}.")
    try:
        _key, plaintext = create_key(user, name, expires.replace(tzinfo=UTC) if expires else None)
    except DomainError as exc:
        raise click.ClickException(f"{user.email}: {exc.message}") from exc
    click.echo(plaintext)


@alliance_cli.group("digests")
def digests_cli():
    """E-mail digests."""


@digests_cli.command("run")
@click.option("--now", "now_flag", is_flag=True,
              help="Run for this instant (the default; takes no argument).")
@click.option("--at", "at_text", metavar="TIMESTAMP",
              help="Run as if it were this instant instead, for tests and catching up "
                   "(ISO 8601, e.g. 2026-05-01T07:00Z; no offset means UTC).")
def digests_run(now_flag, at_text):
    """One scheduling cycle in the foreground: find due digests and send them here, without a
    worker. Each (user, period) is still sent once, whatever runs at the same time. Links in
    the mails come from BASE_URL, as in the worker's: set it to the site's address."""
    from datetime import UTC, datetime

    from sqlalchemy import select

    from alliance.digests.models import Delivery
    from alliance.digests.scheduling import schedule_due
    from alliance.outbox.models import OutboxMessage
    from alliance.outbox.services import TemporaryFailure, run_message

    if now_flag and at_text:
        raise click.UsageError("Choose --now or --at TIMESTAMP, not both.")
    now = None
    if at_text:
        try:
            now = datetime.fromisoformat(at_text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise click.ClickException(f"--at: {at_text!r} is not an ISO 8601 instant.") \
                from exc
        now = now if now.tzinfo else now.replace(tzinfo=UTC)
        # Periods are worked out a week either side in every time zone: near year 1 or
        # 9999 that overflows.
        if not datetime(1970, 1, 1, tzinfo=UTC) <= now < datetime(9000, 1, 1, tzinfo=UTC):
            raise click.ClickException(f"--at: {at_text!r} is out of range (1970 to 8999).")
    click.echo(f"Links in mails point to BASE_URL={current_app.config['BASE_URL']}", err=True)
    created = schedule_due(now, publish=False)
    message_ids = db.session.scalars(select(OutboxMessage.id).where(
        OutboxMessage.kind == "digest", OutboxMessage.done_at.is_(None),
        OutboxMessage.failed_at.is_(None))).all()
    wanted = set(created)
    with click.progressbar(message_ids, label="Sending digests", file=sys.stderr) as bar:
        for message_id in bar:
            message = db.session.get(OutboxMessage, message_id)
            if message.payload.get("delivery_id") not in wanted:
                continue
            try:
                run_message(message_id)
            except TemporaryFailure as exc:
                click.echo(f"Will be retried by a worker: {exc}", err=True)
    states = {}
    for row in db.session.scalars(select(Delivery).where(Delivery.id.in_(created or [0]))):
        states[row.state] = states.get(row.state, 0) + 1
    summary = ", ".join(f"{n} {state}" for state, n in sorted(states.items())) or "nothing due"
    click.echo(f"{len(created)} digest(s) due: {summary}.")


@alliance_cli.command("sqlite-backup")
@click.argument("destination", type=click.Path(dir_okay=False, writable=True))
def sqlite_backup_command(destination):
    """Copy the SQLite database to DESTINATION while the platform runs (SQLite's online backup:
    a consistent snapshot, whatever web and workers write meanwhile). PostgreSQL: pg_dump."""
    import os
    import sqlite3

    url = db.engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        raise click.ClickException("sqlite-backup copies a SQLite database file; this platform "
                                   f"uses {url.get_backend_name()} (back it up with pg_dump).")
    if os.path.exists(destination):
        raise click.ClickException(f"{destination} exists; choose a new file.")
    source = sqlite3.connect(url.database)
    target = sqlite3.connect(destination)
    try:
        with target:
            source.backup(target)
        check = target.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        target.close()
        source.close()
    if check != "ok":
        raise click.ClickException(f"The copy in {destination} fails its integrity check: {check}")
    click.echo(f"Backed up {url.database} to {destination}.")
