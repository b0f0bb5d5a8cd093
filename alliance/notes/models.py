from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from alliance.core.models import UTCDateTime, utcnow
from alliance.extensions import Model

NOTE_KINDS = ("incident", "indicators", "analysis", "bundle")


class Note(Model):
    """One post: a STIX report (report_id) and the objects it holds, with its audience and TLP.
    Read it only through alliance.sharing.policy."""

    __tablename__ = "notes"
    __table_args__ = (
        CheckConstraint("tlp IN ('CLEAR', 'GREEN', 'AMBER', 'AMBER+STRICT', 'RED')", name="tlp"),
        CheckConstraint("kind IN ('incident', 'indicators', 'analysis', 'bundle')", name="kind"),
        # The feed's keyset order, then the read rule's columns: a walk in (created_at, id)
        # order turns away what the reader may not read from the index alone (migration
        # a7d3e9c1b5f2).
        Index("ix_notes_feed", "created_at", "id", "tlp", "organisation_id", "author_id",
              "retracted_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[str] = mapped_column(String(100), unique=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"),
                                                  index=True)
    kind: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    # No index of its own: with one, SQLite answers the read rule's OR by a multi-index union
    # and sorts every readable note instead of walking ix_notes_feed and stopping at a page.
    tlp: Mapped[str] = mapped_column(String(20))
    policy_tags: Mapped[list] = mapped_column(JSON, default=list)
    sectors: Mapped[list] = mapped_column(JSON, default=list)
    countries: Mapped[list] = mapped_column(JSON, default=list)
    labels: Mapped[list] = mapped_column(JSON, default=list)
    types: Mapped[list] = mapped_column(JSON, default=list)
    publish_public: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    retracted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    retracted_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"))
    retraction_reason: Mapped[str | None] = mapped_column(Text)

    organisation = relationship("Organisation")
    author = relationship("User", foreign_keys=[author_id])
    audiences = relationship("NoteAudience", cascade="all, delete-orphan")
    recipients = relationship("NoteRecipient", cascade="all, delete-orphan")

    @property
    def uuid(self) -> str:
        return self.report_id.split("--", 1)[1]


class NoteAudience(Model):
    __tablename__ = "note_audiences"
    # (alliance_id, note_id): the read rule's "member of an audience alliance" is answered
    # from this index alone (PostgreSQL hashes the note ids of the reader's alliances).
    __table_args__ = (Index("ix_note_audiences_alliance_note", "alliance_id", "note_id"),)

    note_id: Mapped[int] = mapped_column(ForeignKey("notes.id", ondelete="CASCADE"),
                                         primary_key=True)
    alliance_id: Mapped[int] = mapped_column(ForeignKey("alliances.id", ondelete="CASCADE"),
                                             primary_key=True)

    alliance = relationship("Alliance")


class NoteRecipient(Model):
    """A named reader of a TLP:RED note."""

    __tablename__ = "note_recipients"

    note_id: Mapped[int] = mapped_column(ForeignKey("notes.id", ondelete="CASCADE"),
                                         primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True, index=True)

    user = relationship("User")


# StixObject.scope of the platform's objects served beside notes' objects (notes.served_with):
# organisations' identities, the TLP 2.0 marking definitions and their extension's.
SERVED_WITH = -1


class StixObject(Model):
    """One version (id + modified) of a STIX object, stored as posted. Unique per
    organisation and scope: an organisation that cannot see another's copy of an id (SCO ids
    are derived from values) stores its own rather than learn that the other exists, and so
    does a colleague whom the TLP:RED note that stored a copy does not name."""

    __tablename__ = "stix_objects"
    # TAXII pages walk the collection tables below, not this one (migration a3f9c2e8d1b7
    # dropped its (date_added, id) and (type, date_added, id) indexes).
    __table_args__ = (UniqueConstraint("stix_id", "modified", "organisation_id", "scope"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    stix_id: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(100))
    modified: Mapped[str] = mapped_column(String(40))
    # No index of its own: nothing looks objects up by organisation (migration b8e1f4a2c6d3).
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    first_note_id: Mapped[int] = mapped_column(ForeignKey("notes.id", ondelete="CASCADE"),
                                               index=True)
    body: Mapped[dict] = mapped_column(JSON)
    body_hash: Mapped[str] = mapped_column(String(64))
    date_added: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # 0: a version of the organisation's, which its later posts compare themselves with and
    # link. A TLP:RED note's id: stored by that note, for it alone — a colleague it does not
    # name must not learn, by posting, what it holds (migration b7e4d2a9c6f3). SERVED_WITH:
    # the platform's, served beside a note's objects (notes.served_with).
    scope: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class NoteObject(Model):
    """Which object versions a note holds (an identical repost links the stored version)."""

    __tablename__ = "note_objects"

    note_id: Mapped[int] = mapped_column(ForeignKey("notes.id", ondelete="CASCADE"),
                                         primary_key=True)
    object_id: Mapped[int] = mapped_column(ForeignKey("stix_objects.id", ondelete="CASCADE"),
                                           primary_key=True, index=True)
    note_version: Mapped[int] = mapped_column(Integer, default=1)

    object = relationship("StixObject")


class CollectionObject(Model):
    """Which object versions each alliance's notes hold, in TAXII order: the walk of an
    alliance collection (alliance.taxii.reading.page). Without it a page walked every
    stored object and checked each for the alliance, so a page cost grew with the share of
    the table the alliance does not hold. Filled when a note links objects (one row per
    audience alliance and object version, whichever notes hold it); it only narrows the
    walk: each row is still checked against the read rule when read. date_added is when
    the version was added to this alliance's collection (TAXII's date_added: a version
    stored earlier and posted to another alliance later is new to that collection then);
    type is a copy of the object's."""

    __tablename__ = "collection_objects"
    __table_args__ = (
        # One row per version and alliance, whenever it was added (collect_objects' ON
        # CONFLICT target); also finds an object's rows (uncollect_object).
        Index("ix_collection_objects_object_alliance", "object_id", "alliance_id", unique=True),
        {"sqlite_with_rowid": False},  # the primary key is the table
    )

    alliance_id: Mapped[int] = mapped_column(ForeignKey("alliances.id", ondelete="CASCADE"),
                                             primary_key=True)
    date_added: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    object_id: Mapped[int] = mapped_column(ForeignKey("stix_objects.id", ondelete="CASCADE"),
                                           primary_key=True)
    type: Mapped[str] = mapped_column(String(100))


class OrganisationCollectionObject(Model):
    """CollectionObject's twin for an organisation's own (read-only) TAXII collection: the
    object versions its notes hold, in TAXII order. date_added is when a note of the
    organisation that TAXII serves first held the version (a version stored long ago, by
    anyone, that a new note links is new to the collection then). Each row is still checked
    against the read rule when read."""

    __tablename__ = "organisation_collection_objects"
    __table_args__ = (
        Index("ix_organisation_collection_objects_object_organisation", "object_id",
              "organisation_id", unique=True),
        {"sqlite_with_rowid": False},  # the primary key is the table
    )

    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True)
    date_added: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    object_id: Mapped[int] = mapped_column(ForeignKey("stix_objects.id", ondelete="CASCADE"),
                                           primary_key=True)
    type: Mapped[str] = mapped_column(String(100))


class Observable(Model):
    """A normalised observable value of a note, for search and correlation."""

    __tablename__ = "observables"
    # (value, note_id): correlation walks a value's holders newest first, at most
    # alliance.notes.holders.CORRELATION_HOLDERS of them.
    __table_args__ = (Index("ix_observables_kind_net", "kind", "net_lo", "net_hi"),
                      Index("ix_observables_value_note", "value", "note_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    note_id: Mapped[int] = mapped_column(ForeignKey("notes.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    value: Mapped[str] = mapped_column(String(2048))
    # The warning list the value is on when stored (alliance.notes.warninglists: 10.0.0.1,
    # 8.8.8.8), or None: a flagged value is marked on the note page and never correlated or
    # alerted on.
    warning: Mapped[str | None] = mapped_column(String(40))
    # An address's or network's first and last address (alliance.notes.ranges.bounds: the
    # IP version and 32 hex digits, which sort as the numbers do), None for other kinds:
    # correlation and search by range walk ix_observables_kind_net.
    net_lo: Mapped[str | None] = mapped_column(String(33))
    net_hi: Mapped[str | None] = mapped_column(String(33))


class NoteComment(Model):
    """A comment (STIX note), opinion or sighting on a note; it inherits the note's audience
    and TLP, so it is read only through the note."""

    __tablename__ = "note_comments"
    __table_args__ = (
        CheckConstraint("kind IN ('comment', 'opinion', 'sighting')", name="kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    note_id: Mapped[int] = mapped_column(ForeignKey("notes.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    text: Mapped[str] = mapped_column(Text, default="")
    opinion: Mapped[str | None] = mapped_column(String(30))
    stix: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    author = relationship("User")
    organisation = relationship("Organisation")


class FormSubmission(Model):
    """What one sending of a compose or response form stored, under the form's key: its
    token (a hidden field, new on each page showing the form) and a digest of what was sent
    in it (notes.views._sending), and under the digest alone (content_key). The same form
    sent again with the same content (a double click, a reload of the POST, a retry after a
    timeout; Back and send again within submissions.RESENT_WITHIN) finds this row and leads
    to what the first stored instead of posting it twice. Per user: a key never leads to
    another user's post."""

    __tablename__ = "form_submissions"
    __table_args__ = (UniqueConstraint("user_id", "form_key"),
                      Index("ix_form_submissions_user_id_content_key", "user_id",
                            "content_key"))

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    form_key: Mapped[str] = mapped_column(String(64))
    content_key: Mapped[str | None] = mapped_column(String(64))
    note_id: Mapped[int | None] = mapped_column(ForeignKey("notes.id", ondelete="CASCADE"),
                                                index=True)
    comment_id: Mapped[int | None] = mapped_column(
        ForeignKey("note_comments.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class NoteFacet(Model):
    """The filterable tokens of a note (STIX types, sectors, countries, policy tags), one row
    each, so that a feed filter is an indexed lookup rather than a scan of JSON text."""

    __tablename__ = "note_facets"

    facet: Mapped[str] = mapped_column(String(20), primary_key=True)
    value: Mapped[str] = mapped_column(String(100), primary_key=True)
    note_id: Mapped[int] = mapped_column(ForeignKey("notes.id", ondelete="CASCADE"),
                                         primary_key=True, index=True)


FACETS = ("type", "sector", "country", "policy_tag")


def facet_rows(note_id: int, *, types=(), sectors=(), countries=(), policy_tags=()) -> list[dict]:
    """The note_facets rows of a note."""
    return [{"facet": facet, "value": value, "note_id": note_id}
            for facet, values in zip(FACETS, (types, sectors, countries, policy_tags), strict=True)
            for value in sorted(set(values))]


class SavedSearch(Model):
    """A user's named set of feed filters (alliance.notes.saved): the feed's query string,
    kept as sent and checked again by the feed's form each time it runs. Per user: another
    user's saved search is a 404 to them."""

    __tablename__ = "saved_searches"
    __table_args__ = (UniqueConstraint("user_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    query: Mapped[str] = mapped_column(String(2000), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
