"""The schema comes only from migrations: they build what the models describe, and go down
to empty and up again cleanly, on SQLite and on PostgreSQL (the pass the suite runs on)."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import text

from alliance import create_app
from alliance.extensions import db
from alliance.notes.search import include_object


def test_the_migrated_database_matches_the_models(app):
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": include_object})
        diff = compare_metadata(context, db.metadata)
    assert diff == []


def test_the_model_check_notices_a_column_the_migrations_lack(app):
    """The comparison above is not blind: a column only the models have is reported."""
    from sqlalchemy import Column, Integer, MetaData

    extra = MetaData()
    for table in db.metadata.sorted_tables:
        table.to_metadata(extra)
    extra.tables["notes"].append_column(Column("not_migrated", Integer))
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": include_object})
        diff = compare_metadata(context, extra)
    assert any(d[0] == "add_column" and d[3].name == "not_migrated" for d in diff), diff


def _objects(engine) -> set[str]:
    """Tables, plus triggers (SQLite) or functions and text search configurations
    (PostgreSQL) that the migrations create."""
    inspector = db.inspect(engine)
    names = set(inspector.get_table_names())
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            names |= {f"trigger:{n}" for n in conn.execute(text(
                "SELECT name FROM sqlite_master WHERE type = 'trigger'")).scalars()}
        else:
            names |= {f"tsconfig:{n}" for n in conn.execute(text(
                "SELECT cfgname FROM pg_ts_config WHERE cfgnamespace = "
                "'public'::regnamespace")).scalars()}
            names |= {f"index:{n}" for n in conn.execute(text(
                "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")).scalars()}
    return names


def test_migrations_go_down_to_empty_and_up_again(empty_database_url):
    fresh = create_app({"SQLALCHEMY_DATABASE_URI": empty_database_url})
    with fresh.app_context():
        upgrade()
        built = _objects(db.engine)
        assert {"memberships", "notes", "stix_objects", "outbox_messages",
                "deliveries", "api_keys"} <= built, built
        downgrade(revision="base")
        left = _objects(db.engine)
        assert left <= {"alembic_version"} | {n for n in left if n.startswith("index:")
                                              and "alembic_version" in n}, left
        upgrade()
        assert _objects(db.engine) == built
        # And the rebuilt schema still matches the models.
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"include_object": include_object})
            assert compare_metadata(context, db.metadata) == []
        db.engine.dispose()


def test_the_scope_migration_keeps_every_link_and_marks_red_versions(empty_database_url):
    """b7e4d2a9c6f3 rebuilds stix_objects on SQLite (a new unique key): with foreign keys on,
    dropping the old table would have cascaded into every link and collection row. Going
    down and up again keeps them all; a version only a TLP:RED note holds gets its scope,
    one a shared note holds too stays shared, and a RED note's copy that a colleague stored
    again is folded into the shared one on the way down."""

    from alliance.notes import posting, reading
    from alliance.notes.models import StixObject
    from alliance.stix.markings import marking_id
    from tests import factories
    from tests.notes.helpers import identity

    # Marked by its poster, so that the RED note and the GREEN one store the same body (an
    # unmarked object gets its note's marking).
    sco = {"type": "ipv4-addr", "spec_version": "2.1",
           "id": "ipv4-addr--ff26c055-6336-5bc5-b89d-13d6226742dd", "value": "198.51.100.3",
           "object_marking_refs": [marking_id("GREEN")]}
    fresh = create_app({"SQLALCHEMY_DATABASE_URI": empty_database_url})
    with fresh.app_context():
        upgrade()
        org = factories.make_org("Scope Org")
        admin = factories.make_user(org, "admin@scope.example", role="org_admin")
        colleague = factories.make_user(org, "colleague@scope.example")
        other = factories.make_user(factories.make_org("Other Org"), "other@other.example")
        alliance = factories.make_alliance(admin, slug="scope", name="Scope")
        factories.add_member(alliance, other.organisation, "active")
        shared = posting.post_note(admin, posting.NoteDraft(
            title="Shared", tlp="AMBER", alliance_ids=[alliance.id], objects=[identity("Shared")]))
        red = posting.post_note(admin, posting.NoteDraft(
            title="Red", tlp="RED", alliance_ids=[alliance.id], objects=[dict(sco), identity("Shared")],
            recipient_ids=[other.id]))
        # The colleague's own copy of the RED SCO.
        posting.post_note(colleague, posting.NoteDraft(
            title="Again", tlp="GREEN", alliance_ids=[alliance.id], objects=[dict(sco)]))

        def state():
            db.session.expire_all()
            with db.engine.connect() as conn:
                counts = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar()  # noqa: S608
                          for t in ("note_objects", "collection_objects",
                                    "organisation_collection_objects")}
            links = {(n, o.stix_id, o.first_note_id) for n in (shared.id, red.id)
                     for o in reading.note_objects(db.session.get(type(shared), n))}
            return counts, links

        before = state()
        scopes = {(o.stix_id, o.first_note_id): o.scope  # not the platform's (served_with)
                  for o in db.session.scalars(db.select(StixObject)) if o.scope != -1}
        assert scopes[(sco["id"], red.id)] == red.id  # the RED note's own copy
        assert {s for (i, n), s in scopes.items() if n == shared.id} == {0}
        db.session.remove()
        downgrade(revision="a3f9c2e8d1b7")
        with db.engine.connect() as conn:
            # Folded: one version of the SCO, which the RED note now links.
            assert conn.execute(text("SELECT count(*) FROM stix_objects WHERE stix_id = :i"),
                                {"i": sco["id"]}).scalar() == 1
            assert conn.execute(text("SELECT count(*) FROM note_objects WHERE note_id = :n"),
                                {"n": red.id}).scalar() == 3  # report, SCO, identity
        upgrade()
        counts, links = state()
        assert counts == before[0]
        assert {(n, i) for n, i, _f in links} == {(n, i) for n, i, _f in before[1]}
        rows = [o for o in db.session.scalars(db.select(StixObject))
                if o.scope != -1]  # not the platform's objects served beside (served_with)
        # The folded SCO is held by a shared note now: it stays shared.
        assert {o.scope for o in rows if o.stix_id == sco["id"]} == {0}
        # The RED note's report version is its own; the shared note's rows are shared.
        assert {o.scope for o in rows if o.first_note_id == red.id} == {red.id}
        assert {o.scope for o in rows if o.first_note_id == shared.id} == {0}
        db.session.remove()
        db.engine.dispose()


def test_the_scope_migration_goes_down_only_when_nothing_is_lost(empty_database_url, caplog):
    """Going below b7e4d2a9c6f3: two TLP:RED notes' identical copies fold into one; a RED
    note's copy that differs from the organisation's other copy cannot be kept under the
    older key, so the downgrade stops and changes nothing (before, it linked the RED note
    to the other body and deleted what only the RED note held, or failed half-way)."""
    from alliance.notes import posting
    from alliance.notes.models import StixObject
    from alliance.stix.markings import marking_id
    from tests import factories

    # Marked by its poster, so that the RED note and the GREEN one store the same body (an
    # unmarked object gets its note's marking).
    sco = {"type": "ipv4-addr", "spec_version": "2.1",
           "id": "ipv4-addr--ff26c055-6336-5bc5-b89d-13d6226742dd", "value": "198.51.100.3",
           "object_marking_refs": [marking_id("GREEN")]}
    fresh = create_app({"SQLALCHEMY_DATABASE_URI": empty_database_url})
    with fresh.app_context():
        upgrade()
        org = factories.make_org("Scope Org")
        admin = factories.make_user(org, "admin@scope.example", role="org_admin")
        colleague = factories.make_user(org, "colleague@scope.example")
        alliance = factories.make_alliance(admin, slug="scope", name="Scope")
        reds = [posting.post_note(admin, posting.NoteDraft(
            title=f"Red {n}", tlp="RED", alliance_ids=[alliance.id], objects=[dict(sco)],
            recipient_ids=[colleague.id]))
                for n in (1, 2)]
        red_ids = sorted(r.id for r in reds)
        ids = (admin.id, alliance.id, colleague.id)
        db.session.remove()
        downgrade(revision="a3f9c2e8d1b7")  # identical copies: folded into the first
        with db.engine.connect() as conn:
            [kept] = conn.execute(text("SELECT id FROM stix_objects WHERE stix_id = :i"),
                                  {"i": sco["id"]}).scalars().all()
            linked = conn.execute(text("SELECT note_id FROM note_objects WHERE object_id = :o"),
                                  {"o": kept}).scalars().all()
        assert sorted(linked) == red_ids
        upgrade()
        from alliance.auth.models import User

        posting.post_note(db.session.get(User, ids[0]), posting.NoteDraft(
            title="Red 3", tlp="RED", alliance_ids=[ids[1]], objects=[dict(sco, x_red_only="only here")],
            recipient_ids=[ids[2]]))
        # Going below c5e1a7d3f9b2 takes out the platform's objects served beside the notes'
        # (scope -1, served_with); the rest must stay as it is.
        before = sorted((o.stix_id, o.scope, o.body_hash)
                        for o in db.session.scalars(db.select(StixObject)) if o.scope != -1)
        db.session.remove()
        downgrade(revision="b7e4d2a9c6f3")  # the later migrations: the refusal is this one's
        with pytest.raises(SystemExit):  # Flask-Migrate reports the migration's error, exits 1
            downgrade(revision="a3f9c2e8d1b7")
        assert "Cannot go below b7e4d2a9c6f3" in caplog.text
        db.session.remove()
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() \
                == "b7e4d2a9c6f3"
        after = sorted((o.stix_id, o.scope, o.body_hash)
                       for o in db.session.scalars(db.select(StixObject)))
        assert after == before
        db.engine.dispose()
