from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Email, EqualTo, Length

from alliance.core.validators import PlainText, SingleLine  # noqa: F401 (re-exported)


class SignInForm(FlaskForm):
    email = EmailField("E-mail", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=256)])


class PasswordResetRequestForm(FlaskForm):
    email = EmailField("E-mail", validators=[DataRequired(), Email(), Length(max=254)])


class SignInLinkRequestForm(FlaskForm):
    # Named apart from the sign-in form's field: both forms are on the locked sign-in page.
    link_email = EmailField("E-mail", validators=[DataRequired(), Email(), Length(max=254)])


class SignInLinkForm(FlaskForm):
    """The button that signs in with a one-time link: nothing but its CSRF token."""


class ConfirmEmailForm(FlaskForm):
    """The button that confirms an address from its mailed link: nothing but its CSRF token
    (opening the link changes nothing: mail scanners open links too)."""


class NewPasswordForm(FlaskForm):
    password = PasswordField("New password", validators=[DataRequired(), Length(min=12, max=256)],
                             description="At least 12 characters; a passphrase of a few "
                                         "unrelated words works well.")
    confirm = PasswordField("Repeat the new password",
                            validators=[DataRequired(),
                                        EqualTo("password", "The passwords differ.")])


class ChangePasswordForm(NewPasswordForm):
    # Bounded like the sign-in form's: each check hashes what was typed.
    current_password = PasswordField("Current password",
                                     validators=[DataRequired(), Length(max=256)])


class AcceptInviteForm(NewPasswordForm):
    name = StringField("Your name", validators=[DataRequired(), Length(max=120), SingleLine()])
