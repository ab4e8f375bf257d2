"""Forms of the operator console (Flask-WTF: CSRF token on each)."""
from wtforms import BooleanField, EmailField, PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, EqualTo, Length

from core.forms import WebForm

ROLE_CHOICES = [SelectChoice("viewer", "Viewer (read)"), SelectChoice("operator", "Operator (read and write)"),
                SelectChoice("admin", "Admin (also operators, tokens, audit log)")]


class SignInForm(WebForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1000)])
    remember = BooleanField("Keep me signed in on this device")


class ConfirmForm(WebForm):
    """A button-only form (disable, enable, revoke): it carries just the CSRF token."""


class OperatorCreateForm(WebForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    role = SelectField("Role", choices=ROLE_CHOICES, default="viewer")
    password = PasswordField("Initial password", validators=[DataRequired(), Length(max=1000)])


class RoleForm(WebForm):
    role = SelectField("Role", choices=ROLE_CHOICES)


class ResetPasswordForm(WebForm):
    password = PasswordField("New password", validators=[DataRequired(), Length(max=1000)])


class ChangePasswordForm(WebForm):
    current_password = PasswordField("Current password", validators=[DataRequired(), Length(max=1000)])
    new_password = PasswordField("New password", validators=[DataRequired(), Length(max=1000)])
    confirm = PasswordField("New password again", validators=[
        DataRequired(), EqualTo("new_password", message="The two new passwords differ.")])


class TokenCreateForm(WebForm):
    operator_id = SelectField("Operator", coerce=int, validate_choice=True)
    name = StringField("Name", validators=[Length(max=100)])
