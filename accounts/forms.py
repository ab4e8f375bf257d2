"""Forms for affected accounts and recovery status in the console, and for the subscriber's /my pages
(Flask-WTF: a CSRF token on each POST form)."""
from flask_babel import lazy_gettext as _l
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, Form, FormField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional, Regexp

from accounts.imports.rows import ACCOUNT_COLUMNS, MAX_NOTE, RECOVERY_COLUMNS
from accounts.models import RecoveryCategory, RecoveryState, RecoveryStatus
from core.forms import WebForm

STATE_CHOICES = [SelectChoice(s.value, s.label) for s in RecoveryState]
ANY = SelectChoice("", "Any")
HEADERS = {"accounts": ",".join(ACCOUNT_COLUMNS), "recovery": ",".join(RECOVERY_COLUMNS)}
EXAMPLES = {
    "accounts": "A1001,Ann Lee,+12065550100,ann@example.com,en",
    "recovery": "A1001,contacts,recovered,250,250,Restored from the tape backup",
}
MAX_PASTE = 400_000  # "a few rows"; bigger files go through the upload (Werkzeug caps fields at 500 kB)
SKIP_LABEL = "Skip invalid rows: apply the valid ones and offer the rejected ones as an error CSV"


class UploadForm(WebForm):
    file = FileField("CSV file (UTF-8)")
    skip_invalid = BooleanField(SKIP_LABEL)


class PasteForm(WebForm):
    text = TextAreaField("Rows (with the header row)", validators=[Length(max=MAX_PASTE)])
    skip_invalid = BooleanField(SKIP_LABEL)


class SubscribeForm(WebForm):  # a visitor's form: its words in the page's language; email, phone or both
    email = StringField(_l("Email address"), validators=[Optional(), Length(max=254)])
    phone = StringField(_l("Mobile number, for text messages"), validators=[Optional(), Length(max=32)])


class SubscribeCodeForm(WebForm):
    code = StringField(_l("Code"), validators=[DataRequired(message=_l("Enter the code from the text message.")),
                                               Length(max=16)])


class SubscriberImportForm(WebForm):
    file = FileField("CSV file", validators=[FileRequired("Choose a CSV file.")])
    consent = StringField("How did these people agree to get updates?",
                          validators=[DataRequired(), Length(min=10, max=300)])


class EraseForm(WebForm):
    confirm = StringField("Type the account number to confirm", validators=[DataRequired(), Length(max=64)])


class CategoriesForm(WebForm):
    categories = StringField("Data categories", validators=[Length(max=2000)])

    def keys(self) -> list[str]:
        return [k for k in (self.categories.data or "").replace(",", " ").split() if k]


class FilterForm(Form):
    """The affected-account list's filters, read from the query string (a GET form: no CSRF)."""

    state = SelectField("Overall state", choices=[ANY] + STATE_CHOICES, default="")
    category = SelectField("Category", choices=[ANY], default="")
    category_state = SelectField("Category state", choices=[ANY] + STATE_CHOICES, default="")
    q = StringField("Number, phone or email", validators=[Length(max=254)])


class CategoryEditForm(Form):
    """One category's status in the single-edit form; counts stay text so a typo is shown back as typed."""

    state = SelectField("State", choices=STATE_CHOICES)
    items_total = StringField("Items in total", validators=[Length(max=20)])
    items_recovered = StringField("Items recovered", validators=[Length(max=20)])
    note = StringField("Note", validators=[Length(max=MAX_NOTE)])


def recovery_edit_form(categories: list[RecoveryCategory], statuses: dict[int, RecoveryStatus], **kwargs):
    """A form with one CategoryEditForm per category (fields named `<key>-state` ...), prefilled from now."""
    attrs = {c.key: FormField(CategoryEditForm, label=c.label) for c in categories}
    form_class = type("RecoveryEditForm", (WebForm,), attrs)
    form = form_class(**kwargs)
    for c in categories:  # the table shows one row per category: say which one to screen readers
        for name, text in (("state", "state"), ("items_total", "items in total"),
                           ("items_recovered", "items recovered"), ("note", "note")):
            form[c.key][name].label.text = f"{c.label}: {text}"
    if not form.is_submitted():
        for c in categories:
            current = statuses.get(c.id)
            sub = form[c.key]
            sub.state.data = current.state.value if current else RecoveryState.UNKNOWN.value
            sub.items_total.data = "" if current is None or current.items_total is None else str(current.items_total)
            sub.items_recovered.data = ("" if current is None or current.items_recovered is None
                                        else str(current.items_recovered))
            sub.note.data = current.note if current else ""
    return form


def changed_items(form, categories: list[RecoveryCategory], statuses: dict[int, RecoveryStatus]) -> list[dict]:
    """The categories whose submitted values differ from their current status, as update_recovery items."""
    items = []
    for c in categories:
        sub = form[c.key]
        item = {"category": c.key, "state": sub.state.data or "", "items_total": (sub.items_total.data or "").strip(),
                "items_recovered": (sub.items_recovered.data or "").strip(), "note": (sub.note.data or "").strip()}
        current = statuses.get(c.id)
        now = ({"state": current.state.value, "items_total": _text(current.items_total),
                "items_recovered": _text(current.items_recovered), "note": current.note or ""}
               if current else {"state": "unknown", "items_total": "", "items_recovered": "", "note": ""})
        if any(item[k] != now[k] for k in now):
            items.append(item)
    return items


def _text(n: int | None) -> str:
    return "" if n is None else str(n)


def attach_item_errors(form, items: list[dict], fields: dict[str, str], message: str) -> dict:
    """Service errors are keyed "categories[i].column": put each beside category i's field; return the rest."""
    other = {}
    for key, reason in fields.items():
        index, _, column = key.partition("].")
        try:
            sub = form[items[int(index.removeprefix("categories["))]["category"]]
            sub[column].errors = [*sub[column].errors, reason]
        except (ValueError, IndexError, KeyError):
            other[key] = reason
    if not fields:
        other["error"] = message
    return other


# ---- the subscriber's pages (accounts.public_views) ------------------------------------------------

class LookupForm(WebForm):  # a subscriber's form: its words in the page's language (lazy gettext)
    identifier = StringField(_l("Account number or phone number"), validators=[
        DataRequired(message=_l("Enter your account number or phone number.")), Length(max=64)])


class CodeForm(WebForm):
    code = StringField(_l("Code"), filters=[lambda v: "".join((v or "").split()).replace("-", "")], validators=[
        DataRequired(message=_l("Enter the 6-digit code from the message.")),
        Regexp(r"^\d{6}$", message=_l("Enter the 6-digit code from the message."))])


class SignOutForm(WebForm):
    """Button only: carries the CSRF token."""
