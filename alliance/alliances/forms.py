from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    HiddenField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from alliance.core.validators import PlainText, SingleLine
from alliance.core.vocab import policy_tag_choices
from alliance.stix.tlp import TLP_LEVELS


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class AllianceSettingsForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=200), SingleLine()])
    description = TextAreaField("Description",
                                validators=[Optional(), Length(max=5000), PlainText()])
    charter = TextAreaField("Charter", validators=[Optional(), Length(max=20000), PlainText()],
                            description="The terms organisations accept when they join.")
    policy_tags = MultiCheckboxField("Policy focus", validators=[Optional()])
    join_policy = SelectField("Who can join", choices=[
        ("approval", "On request, approved by a coordinator"),
        ("open", "On request, admitted at once"),
        ("invite", "By invitation only")])
    allowed_tlps = MultiCheckboxField("Allowed TLP levels",
                                      choices=[(t, f"TLP:{t}") for t in TLP_LEVELS],
                                      validators=[DataRequired("Choose at least one level.")])
    default_tlp = SelectField("Default TLP", choices=[(t, f"TLP:{t}") for t in TLP_LEVELS])
    publish_clear_allowed = BooleanField("TLP:CLEAR posts may be published on the public "
                                         "Insights page")
    digest_frequency = SelectField("Default digest", default="daily", choices=[
        ("daily", "Daily"), ("weekly", "Weekly (Mondays)"), ("off", "Off")])
    digest_hour = SelectField("Default delivery time", coerce=int, default=8,
                              choices=[(hour, f"{hour:02d}:00") for hour in range(24)])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.policy_tags.choices = policy_tag_choices()


class NewAllianceForm(AllianceSettingsForm):
    slug = StringField("Address (slug)", validators=[Optional(), Length(max=60), SingleLine()],
                       description="Lower-case letters, digits and dashes; made from the name "
                                   "when left empty.")


class JoinForm(FlaskForm):
    message = TextAreaField("Message to the coordinators",
                            validators=[Optional(), Length(max=2000), PlainText()])
    accept_charter = BooleanField("My organisation accepts the charter")


class AcceptInvitationForm(FlaskForm):
    accept_charter = BooleanField("My organisation accepts the charter")


class DecisionForm(FlaskForm):
    reason = TextAreaField("Reason", validators=[Optional(), Length(max=2000), PlainText()])


class InviteOrganisationForm(FlaskForm):
    organisation_id = SelectField("Organisation", coerce=int, validators=[DataRequired()])


class CoordinatorForm(FlaskForm):
    user_id = SelectField("User", coerce=int, validators=[DataRequired()])


class ConfirmForm(FlaskForm):
    """A form with nothing but its CSRF token, for buttons that change state."""
    confirm = HiddenField(default="1")
