from flask_wtf import FlaskForm
from wtforms import (
    EmailField,
    PasswordField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    URLField,
)
from wtforms.validators import URL, DataRequired, Email, EqualTo, Length, Optional, Regexp

from alliance.core.validators import PlainText, SingleLine
from alliance.core.vocab import country_choices, sector_choices

DOMAIN_RE = r"^(?=.{1,253}$)([a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,63}$"


class RegisterOrganisationForm(FlaskForm):
    org_name = StringField("Organisation name",
                           validators=[DataRequired(), Length(max=200), SingleLine()])
    country = SelectField("Country", validators=[DataRequired()])
    sectors = SelectMultipleField("Sectors", validators=[Optional()],
                                  description="From the STIX 2.1 industry-sector vocabulary.")
    website = URLField("Website", validators=[
        Optional(), URL(require_tld=True), Length(max=300), SingleLine(),
        Regexp(r"^https?://", message="Use an http(s) address.")])
    domain = StringField("E-mail domain", validators=[
        Optional(), Length(max=253), Regexp(DOMAIN_RE, message="Not a domain name.")],
        description="The domain your staff's e-mail addresses use, e.g. cert.example.")
    name = StringField("Your name", validators=[DataRequired(), Length(max=120), SingleLine()])
    email = EmailField("Your work e-mail", validators=[DataRequired(), Email(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(min=12, max=256)],
                             description="At least 12 characters; common passwords are refused.")
    confirm = PasswordField("Repeat the password",
                            validators=[DataRequired(),
                                        EqualTo("password", "The passwords differ.")])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.country.choices = [("", "Choose a country")] + country_choices()
        self.sectors.choices = sector_choices()


class VetForm(FlaskForm):
    decision = RadioField("Decision", choices=[("approve", "Approve"), ("reject", "Reject")],
                          validators=[DataRequired()])
    reason = TextAreaField("Reason (mailed to the organisation; required to reject)",
                           validators=[Optional(), Length(max=2000), PlainText()])


class InviteUserForm(FlaskForm):
    email = EmailField("E-mail", validators=[DataRequired(), Email(), Length(max=254)])
    role = SelectField("Role", choices=[("member", "Member"), ("org_admin", "Organisation admin")])


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=[("member", "Member"), ("org_admin", "Organisation admin")])


class DeactivateForm(FlaskForm):
    reason = StringField("Reason", validators=[Optional(), Length(max=500), SingleLine()])


class ConfirmRegistrationForm(FlaskForm):
    """The button that confirms a registration from its mailed link: nothing but its CSRF
    token (opening the link registers nothing)."""
