"""Forms of the digest pages. The choices are offered, not enforced here
(validate_choice=False): the services (preferences.py, watch_terms.py) decide what is
valid, so that one rule answers the form, a hand-made POST and the tests alike, each
refusal naming its field."""
from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, RadioField, SelectField, StringField
from wtforms.validators import DataRequired, Length, NumberRange

from alliance.alliances.forms import MultiCheckboxField
from alliance.digests import schedule

WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
HOURS = [(hour, f"{hour:02d}:00") for hour in range(24)]


class PreferencesForm(FlaskForm):
    frequency = RadioField("How often", choices=[
        ("daily", "Daily"), ("weekly", "Weekly"), ("off", "Off: no digest")],
        validate_choice=False)
    weekday = SelectField("Day of the week", coerce=int, validate_choice=False,
                          choices=list(enumerate(WEEKDAYS)),
                          description="For a weekly digest.")
    hour = SelectField("Delivery time", coerce=int, choices=HOURS, validate_choice=False,
                       description="Local time: the digest covers what was posted since the "
                                   "previous one.")
    timezone = SelectField("Time zone", validate_choice=False)
    scope = RadioField("Alliances", default="all", validate_choice=False, choices=[
        ("all", "All my organisation's alliances, including ones it joins later"),
        ("chosen", "Only the alliances ticked below")])
    alliances = MultiCheckboxField("Alliances to cover", coerce=int, validate_choice=False)
    alerts = BooleanField("E-mail me at once when a note matches one of my watch terms")

    def __init__(self, *args, alliances=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.timezone.choices = [(zone, zone.replace("_", " ")) for zone in
                                 schedule.valid_timezones()]
        self.alliances.choices = [(a.id, a.name) for a in alliances]

    def chosen_alliances(self) -> list[int] | None:
        """None means every alliance of the organisation, now and later."""
        return None if self.scope.data != "chosen" else list(self.alliances.data or [])


WATCH_KIND_LABELS = {"value": "Value", "cve": "CVE", "sector": "Sector", "country": "Country",
                     "policy_tag": "Policy tag"}


class WatchTermForm(FlaskForm):
    kind = SelectField("Kind", choices=[
        ("value", "IP address, domain, URL, e-mail or hash"), ("cve", "CVE id")],
        validate_choice=False)
    value = StringField("Value", validators=[
        DataRequired("Type or choose what to watch."), Length(max=2048)])


class RemoveWatchTermForm(FlaskForm):
    # An id column's range: a larger number would overflow the query (a 500).
    term_id = IntegerField(validators=[DataRequired(), NumberRange(1, 2_147_483_647)])


class TestMailForm(FlaskForm):
    """"Send me a test mail": no fields, only the CSRF token (it sends a mail)."""


class PreviewForm(FlaskForm):
    """The coordinator's preview: whose digest, over which period (a GET form)."""

    class Meta:
        csrf = False  # reads only, from the query string

    user_id = SelectField("Member", coerce=int, validators=[DataRequired("Choose a member.")])
    period = RadioField("Period", default="day", choices=[
        ("day", "The last day"), ("week", "The last week")])
