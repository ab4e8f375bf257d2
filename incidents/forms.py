"""Console forms for incidents, maintenance and components (Flask-WTF: CSRF on each).

The forms only parse what the browser sends (dates, numbers, choices); the rules live in
incidents/service.py, whose ValidationError fields are attached back onto these forms."""
from datetime import timezone

from wtforms import (
    BooleanField, DateTimeLocalField, IntegerField, RadioField, SelectField, SelectMultipleField,
    StringField, TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from core.forms import WebForm
from incidents.models import (
    INCIDENT_STATUSES, MAINTENANCE_STATUSES, ComponentStatus, Impact, IncidentKind,
)
from incidents.service import MESSAGE_MAX

MARKDOWN_HINT = ("Markdown: **bold**, *italic*, [link](https://example.com), lists with “- ”. "
                 "HTML is not allowed and is shown as text.")
IMPACT_LABELS = {
    "none": "None — informational",
    "minor": "Minor — some users affected, workarounds exist",
    "major": "Major — a feature is broken for many users",
    "critical": "Critical — service unusable",
}
STATUS_HINTS = {
    "investigating": "Investigating — we know something is wrong",
    "identified": "Identified — we know the cause, working on a fix",
    "monitoring": "Monitoring — a fix is in place, watching it",
    "resolved": "Resolved — the incident is over",
    "scheduled": "Scheduled — planned, not started",
    "in_progress": "In progress — work has begun (components go under maintenance)",
    "verifying": "Verifying — work done, checking everything",
    "completed": "Completed — the window is over",
}


def choices(pairs) -> list[SelectChoice]:
    """(value, label) pairs as WTForms choices."""
    return [SelectChoice(value, label) for value, label in pairs]


IMPACT_CHOICES = [(i.value, IMPACT_LABELS[i.value]) for i in Impact]
COMPONENT_STATUS_CHOICES = [(s.value, s.label) for s in ComponentStatus]


class MultiCheckboxField(SelectMultipleField):
    """A list of checkboxes; unknown ids are left for the service to report."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def optional_int(value):
    """'' or None -> None; anything else must be a whole number."""
    if value in (None, "", "None"):
        return None
    return int(value)


def utc(value):
    """datetime-local inputs carry no zone: the console says they are UTC, so they are."""
    return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value


class IncidentForm(WebForm):
    name = StringField("Name", description="What subscribers will see as the title, e.g. “Contacts not syncing”.")
    impact = RadioField("Impact", choices=choices(IMPACT_CHOICES), default="minor", validate_choice=False)
    status = RadioField("Status", choices=choices((s.value, STATUS_HINTS[s.value]) for s in INCIDENT_STATUSES[:3]),
                        default="investigating", validate_choice=False)
    message = TextAreaField("Public message", description=MARKDOWN_HINT)
    component_ids = MultiCheckboxField("Affected components", coerce=int, validate_choice=False)
    component_status = SelectField(
        "Set the affected components to",
        choices=choices([("", "Leave their status as it is")] + COMPONENT_STATUS_CHOICES[1:4]),
        default="partial_outage", validate_choice=False)
    notify = BooleanField("Notify subscribers", default=True)
    urgent = BooleanField("Urgent (send even during quiet hours)")

    def to_data(self) -> dict:
        """The plain dict create_incident expects."""
        ids = self.component_ids.data or []
        statuses = {str(i): self.component_status.data for i in ids} if self.component_status.data else {}
        return {"name": self.name.data, "impact": self.impact.data, "status": self.status.data,
                "message": self.message.data, "component_ids": ids, "component_statuses": statuses,
                "notify": self.notify.data, "urgent": self.urgent.data}


class UpdateForm(WebForm):
    """Post to a timeline; build it with update_form() to get the status choices and component selects."""

    status = RadioField("Status", validate_choice=False)
    message = TextAreaField("Public message", description=MARKDOWN_HINT,
                            validators=[DataRequired("This field is required."),
                                        Length(max=MESSAGE_MAX, message=f"At most {MESSAGE_MAX} characters.")])
    impact = SelectField("Impact", choices=choices([("", "Keep the current impact")] + IMPACT_CHOICES),
                         default="", validate_choice=False)
    notify = BooleanField("Notify subscribers", default=True)
    urgent = BooleanField("Urgent (send even during quiet hours)")

    def component_fields(self):
        return [f for f in self if f.name.startswith("component_")]

    def to_data(self) -> dict:
        """The plain dict post_update expects; components left on "No change" are not sent."""
        statuses = {f.name.removeprefix("component_"): f.data for f in self.component_fields() if f.data}
        data = {"status": self.status.data, "message": self.message.data, "component_statuses": statuses,
                "notify": self.notify.data, "urgent": self.urgent.data}
        if self.impact.data:
            data["impact"] = self.impact.data
        return data


def update_form(kind: IncidentKind, components, **kwargs) -> UpdateForm:
    """An UpdateForm with the statuses of `kind` and one status select per component."""
    statuses = MAINTENANCE_STATUSES if kind == IncidentKind.MAINTENANCE else INCIDENT_STATUSES[:4]

    class _UpdateForm(UpdateForm):
        pass

    _UpdateForm.status = RadioField("Status", choices=choices((s.value, STATUS_HINTS[s.value]) for s in statuses),
                                    validate_choice=False)
    for c in components:
        setattr(_UpdateForm, f"component_{c.id}", SelectField(
            c.name, choices=choices([("", f"No change ({c.status.label})")] + COMPONENT_STATUS_CHOICES),
            default="", validate_choice=False))
    return _UpdateForm(**kwargs)


def offer_notify(form, reach: int, *, reason: str) -> None:
    """Offer "Notify subscribers" only when an update would reach somebody: otherwise the box is unticked and
    disabled (a browser does not send a disabled box, so nothing claims to notify) and says why."""
    if reach:
        form.notify.description = (f"Sends it by SMS and email to the {reach:,} affected account"
                                   f"{'' if reach == 1 else 's'}, respecting opt-outs and quiet hours.")
        return
    form.notify.data = False
    form.notify.render_kw = {**(form.notify.render_kw or {}), "disabled": True}
    form.notify.description = reason


class PostmortemForm(WebForm):
    body = TextAreaField("Postmortem",
                         description=MARKDOWN_HINT + " Publishing makes it public on the incident page.")


class MaintenanceForm(WebForm):
    name = StringField("Name", description="e.g. “Database upgrade”.")
    message = TextAreaField("Public message", description=MARKDOWN_HINT)
    scheduled_for = DateTimeLocalField("Window starts", validators=[Optional()],
                                       description="Date and time in UTC (not your local time).")
    scheduled_until = DateTimeLocalField("Window ends", validators=[Optional()],
                                         description="Date and time in UTC (not your local time).")
    impact = RadioField("Expected impact", choices=choices(IMPACT_CHOICES), default="none",
                        validate_choice=False)
    component_ids = MultiCheckboxField("Components under maintenance", coerce=int, validate_choice=False)
    notify = BooleanField("Notify subscribers", default=True)

    def to_data(self) -> dict:
        """The plain dict schedule_maintenance expects (times as aware UTC)."""
        return {"name": self.name.data, "message": self.message.data, "impact": self.impact.data,
                "scheduled_for": utc(self.scheduled_for.data), "scheduled_until": utc(self.scheduled_until.data),
                "component_ids": self.component_ids.data or [], "notify": self.notify.data}


class ComponentForm(WebForm):
    name = StringField("Name")
    description = TextAreaField("Description", description="Shown to subscribers under the name (optional).")
    group_id = SelectField("Group", coerce=optional_int, validate_choice=False)
    position = IntegerField("Position", validators=[Optional()],
                            description="Smaller numbers come first; leave empty to add at the end.")
    status = SelectField("Status", choices=choices(COMPONENT_STATUS_CHOICES), default="operational",
                         validate_choice=False)
    showcase = BooleanField("Show on the public page", default=True)
    only_show_if_degraded = BooleanField("Only show it while it is not operational")

    def to_data(self, *, with_status: bool) -> dict:
        """The plain dict create_component / update_component expect."""
        data = {"name": self.name.data, "description": self.description.data, "group_id": self.group_id.data,
                "showcase": self.showcase.data, "only_show_if_degraded": self.only_show_if_degraded.data}
        if self.position.data is not None:
            data["position"] = self.position.data
        if with_status:
            data["status"] = self.status.data
        return data


class ComponentStatusForm(WebForm):
    status = SelectField("Status", choices=choices(COMPONENT_STATUS_CHOICES), validate_choice=False)


class GroupForm(WebForm):
    name = StringField("Group name")
    description = StringField("Description")


def attach_errors(form, fields: dict, aliases: dict | None = None) -> dict:
    """Put service errors beside the matching fields; return the ones that match no field."""
    leftover = {}
    aliases = aliases or {}
    for name, message in sorted(fields.items(), key=lambda item: item[0] in aliases):
        target = form._fields.get(aliases.get(name, name))
        if target is None:
            leftover[name] = message
        elif not (name in aliases and target.errors):  # one message per field is enough
            target.errors = list(target.errors) + [message]
    return leftover
