from flask_wtf import FlaskForm
from wtforms import DateField, SelectField
from wtforms.validators import Optional, ValidationError


class AuditFilterForm(FlaskForm):
    """The audit log's filters, read from the query string (a GET form: nothing changes, so
    no CSRF token). The view fills the alliance and actor choices with what its reader may
    see; a value outside them is an error shown beside the filter, never a 400."""

    class Meta:
        csrf = False

    alliance = SelectField("Alliance", validators=[Optional()])
    actor = SelectField("Who", validators=[Optional()])
    action = SelectField("What", validators=[Optional()])
    since = DateField("From", validators=[Optional()])
    until = DateField("To", validators=[Optional()])

    def validate_until(self, field):
        if field.data and self.since.data and field.data < self.since.data:
            raise ValidationError("The end of the range comes before its start.")

    @property
    def active(self) -> bool:
        """Whether any filter is set."""
        return any(f.data for f in self)
