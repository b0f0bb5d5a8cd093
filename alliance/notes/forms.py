import secrets

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (
    BooleanField,
    DateField,
    DateTimeLocalField,
    HiddenField,
    IntegerField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    ValidationError,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp

from alliance.alliances.forms import MultiCheckboxField
from alliance.core.validators import PlainText, SingleLine
from alliance.core.vocab import (
    country_choices,
    policy_tag_choices,
    sector_choices,
    stix_type_choices,
)
from alliance.stix.tlp import TLP_LEVELS


def submission_field():
    """A token new on each page that shows the form and kept while it is sent again after an
    error: what a form stored is recorded under it (FormSubmission), so that the same form
    sent twice (a double click, a reload of the POST) posts once."""
    return HiddenField(default=lambda: secrets.token_urlsafe(16), validators=[
        Optional(), Length(max=64), Regexp(r"^[A-Za-z0-9_-]+$", message="Not a form token.")])


def confirm_flagged_field():
    """Checked when posting (post_note's flagged_confirmed), against the observables actually
    sent: values on a warning list (alliance.notes.warninglists) go out once confirmed."""
    return BooleanField("Share these values anyway (they are marked on the note and left out "
                        "of correlation and watch alerts)")


class NoteForm(FlaskForm):
    """Title, text and audience: what every kind of note asks for."""

    submission = submission_field()

    title = StringField("Title", validators=[DataRequired(), Length(max=300), SingleLine()])
    description = TextAreaField("Description (Markdown)", validators=[
        Optional(), Length(max=100_000), PlainText()])
    tlp = SelectField("TLP", choices=[(t, f"TLP:{t}") for t in TLP_LEVELS])
    alliances = MultiCheckboxField("Share with", coerce=int)
    recipients = SelectMultipleField("Named recipients (TLP:RED only)", coerce=int,
                                     validators=[Optional()])
    policy_tags = MultiCheckboxField("Policy tags", validators=[Optional()])
    publish_public = BooleanField("Publish on the public Insights page (TLP:CLEAR only)")

    def __init__(self, *args, alliances=(), recipients=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.alliances.choices = [(a.id, a.name) for a in alliances]
        self.recipients.choices = [(u.id, f"{u.name} ({u.organisation.name})")
                                   for u in recipients]
        self.policy_tags.choices = policy_tag_choices()


class IncidentForm(NoteForm):
    details = TextAreaField("Incident details", validators=[Optional(), Length(max=50_000),
                                                            PlainText()])
    observables = TextAreaField("Observables, one per line",
                                description="IPv4/IPv6 addresses or ranges, domains, URLs, "
                                            "e-mail addresses, MD5/SHA-1/SHA-256 hashes, CVE ids.",
                                validators=[Optional(), Length(max=500_000)])
    attack_ids = StringField("ATT&CK techniques", description="e.g. T1566, T1059.001",
                             validators=[Optional(), Length(max=2000)])
    sectors = SelectMultipleField("Affected sectors", validators=[Optional()])
    countries = SelectMultipleField("Affected countries", validators=[Optional()])
    confirm_flagged = confirm_flagged_field()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sectors.choices = sector_choices()
        self.countries.choices = country_choices()


class IndicatorsForm(NoteForm):
    observables = TextAreaField("Observables, one per line",
                                validators=[DataRequired(), Length(max=500_000)])
    valid_from = DateTimeLocalField("Valid from (UTC)", validators=[Optional()])
    valid_until = DateTimeLocalField("Valid until (UTC)", validators=[Optional()])
    confidence = IntegerField("Confidence (0-100)", validators=[Optional(), NumberRange(0, 100)])
    confirm_flagged = confirm_flagged_field()


class AnalysisForm(NoteForm):
    pass


class UploadForm(NoteForm):
    bundle_file = FileField("STIX 2.1 bundle (.json)")
    bundle_text = TextAreaField("…or paste it", validators=[Optional()])
    # The chosen file, carried through "Preview audience" (compose.keep_upload: signed, bound
    # to the user and this form's token, an hour). A file chosen again replaces it.
    kept_bundle = HiddenField(validators=[Optional()])
    drop_kept = BooleanField("Do not share the kept file (use the pasted text instead)")
    # Checked when posting (post_note's looser_confirmed), against the objects actually sent.
    confirm_looser = BooleanField("I confirm these objects are shared at their own looser "
                                  "marking")
    confirm_flagged = confirm_flagged_field()


class EditNoteForm(FlaskForm):
    title = StringField("Title", validators=[DataRequired(), Length(max=300), SingleLine()])
    description = TextAreaField("Description (Markdown)", validators=[
        Optional(), Length(max=100_000), PlainText()])


class RetractForm(FlaskForm):
    reason = TextAreaField("Reason", validators=[DataRequired(), Length(max=2000), PlainText()])


class CommentForm(FlaskForm):
    submission = submission_field()
    kind = SelectField("Kind", choices=[("comment", "Comment"), ("opinion", "Opinion"),
                                        ("sighting", "We saw this too")])
    opinion = RadioField("Opinion", choices=[("agree", "Agree"), ("neutral", "Neutral"),
                                             ("disagree", "Disagree")], validators=[Optional()])
    text = TextAreaField("Text", validators=[Optional(), Length(max=20_000), PlainText()])


def _stripped(value):
    return value.strip() if isinstance(value, str) else value


def _lower(value):
    return value.lower() if isinstance(value, str) else value


class FeedFilterForm(FlaskForm):
    class Meta:
        csrf = False

    q = StringField("Search", validators=[Optional(), Length(max=200), SingleLine()])
    # Stripped first: blank input stops at Optional() with its "not a valid choice" dropped,
    # so " " reached the view as a choice (the alliance filter's int(" ") was a 500).
    alliance = SelectField("Alliance", coerce=str, filters=[_stripped], validators=[Optional()])
    tlp = SelectField("TLP", choices=[("", "Any TLP")] + [(t, f"TLP:{t}") for t in TLP_LEVELS],
                      filters=[_stripped], validators=[Optional()])
    type = SelectField("STIX type", filters=[_stripped, _lower], validators=[Optional()])
    sector = SelectField("Sector", filters=[_stripped], validators=[Optional()])
    country = SelectField("Country", filters=[_stripped], validators=[Optional()])
    tag = SelectField("Policy tag", filters=[_stripped], validators=[Optional()])
    since = DateField("Posted from", validators=[Optional()])
    until = DateField("Posted until", validators=[Optional()])

    def validate_until(self, field):
        if field.data and self.since.data and field.data < self.since.data:
            raise ValidationError("The end date is before the start date.")

    def __init__(self, *args, alliances=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.alliance.choices = [("", "All alliances")] + [(str(a.id), a.name) for a in alliances]
        self.sector.choices = [("", "Any sector")] + sector_choices()
        self.country.choices = [("", "Any country")] + country_choices()
        self.tag.choices = [("", "Any policy tag")] + policy_tag_choices()
        self.type.choices = [("", "Any STIX type")] + stix_type_choices()


# The kinds of observable value notes are indexed by (alliance.stix.observables.detect).
OBSERVABLE_KINDS = [("ipv4", "IPv4 address"), ("ipv6", "IPv6 address"),
                    ("cidr4", "IPv4 network"), ("cidr6", "IPv6 network"), ("domain", "Domain"),
                    ("url", "URL"), ("email", "E-mail address"), ("md5", "MD5"),
                    ("sha1", "SHA-1"), ("sha256", "SHA-256"), ("cve", "CVE id")]


class ExportForm(FeedFilterForm):
    """The feed's filters, and for the indicator list the kinds of value it holds (none
    chosen: every kind)."""

    kind = SelectMultipleField("Observable types", choices=OBSERVABLE_KINDS,
                               validators=[Optional()])


class SavedSearchForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=100), SingleLine()])
    query = HiddenField(validators=[Optional(), Length(max=2000)])
