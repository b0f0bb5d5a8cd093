"""Forms of the account and API-key pages."""
from datetime import UTC, datetime, time

from flask_wtf import FlaskForm
from wtforms import DateField, StringField
from wtforms.validators import DataRequired, Length, Optional

from alliance.core.validators import SingleLine


class ApiKeyForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=100), SingleLine()],
                       description="What the key is for, e.g. “OpenCTI connector”.")
    expires = DateField("Expiry date", validators=[Optional()],
                        description="The key stops working at 00:00 UTC on this day. Leave "
                                    "empty for a key that works until it is revoked.")

    def expires_at(self) -> datetime | None:
        return (datetime.combine(self.expires.data, time(), tzinfo=UTC)
                if self.expires.data else None)


class RevokeKeyForm(FlaskForm):
    """Only the CSRF token: the key is named by the address."""
