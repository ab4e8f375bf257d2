"""Console forms of the notifier (Flask-WTF: a CSRF token on each POST form)."""
from wtforms import SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length

from core.forms import WebForm


class AddOptOutForm(WebForm):
    channel = SelectField("Channel", choices=[SelectChoice("sms", "SMS"), SelectChoice("email", "Email")])
    address = StringField("Phone (E.164) or email address", validators=[Length(max=254)])
