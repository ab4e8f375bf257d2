"""Console forms for webhooks (Flask-WTF: a CSRF token on each)."""
from wtforms import SelectMultipleField, StringField, widgets
from wtforms.validators import Length

from core.forms import WebForm


class WebhookCreateForm(WebForm):
    url = StringField("URL", validators=[Length(max=2000)])
    # Checkboxes, one per registered event type (the page lays them out in a fieldset); the service checks them.
    events = SelectMultipleField("Events", choices=[], widget=widgets.ListWidget(prefix_label=False),
                                 option_widget=widgets.CheckboxInput(), validate_choice=False)
    description = StringField("Description", validators=[Length(max=500)])


class WebhookActionForm(WebForm):
    """A button-only form (enable, disable, rotate the secret, send a test, delete): just the CSRF token."""
