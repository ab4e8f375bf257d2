"""The incidents' piece of the ops API's OpenAPI document: incidents, updates, components, component groups
and maintenance (the routes are incidents/api.py; ops/openapi.py assembles the document)."""
from incidents.models import (
    INCIDENT_STATUSES, MAINTENANCE_STATUSES, ComponentStatus, Impact, IncidentKind, IncidentStatus,
)
from incidents.service import MAX_POSITION
from ops.openapi import (
    DATE_TIME_IN, DATE_TIME_OUT, ID, ID_KEY, ID_MAX, LIMIT, OFFSET, enum, nullable, obj, operation, path_id, query,
    ref, text,
)


# ---- incidents, updates, components, groups, maintenance ----------------------------------------

def openapi_piece() -> dict:
    """Incidents, updates, components, groups and maintenance (registered by incidents.wiring)."""
    component_statuses = {"type": "object", "propertyNames": ID_KEY, "additionalProperties": enum(ComponentStatus),
                          "description": 'New component statuses: {"<component id>": "<status>"} (an unknown '
                                         'component is refused with 422).'}
    name = text(200, blank=False)
    message = text(20000, blank=False, description="Markdown, shown publicly.")
    ids = {"type": "array", "items": ID, "uniqueItems": True,
           "description": "Component ids (an unknown one is refused with 422)."}
    notify = {"type": "boolean", "description": "Send this update to subscribers."}

    def update_request(statuses, description: str) -> dict:
        return obj({
            "status": enum(statuses), "message": message, "component_statuses": component_statuses,
            "notify": notify, "urgent": {"type": "boolean"}, "impact": enum(Impact)}, ["message"],
            description=description)

    position = {"type": "integer", "minimum": 0, "maximum": MAX_POSITION, "description": "Display order."}
    component_fields = {
        "name": text(100, blank=False, description="Unique among components (whatever the letter case)."),
        "description": text(2000), "status": enum(ComponentStatus), "position": position,
        "group_id": {"type": ["integer", "null"], "minimum": 0, "maximum": ID_MAX,
                     "description": "A component group's id (an unknown one is refused with 422); 0 or null: "
                                    "no group."},
        "showcase": {"type": "boolean"}, "only_show_if_degraded": {"type": "boolean"}}
    list_params = [query("status", enum(["open", "closed"]), "Only open or only closed ones."),
                   query("limit", LIMIT, "Page size."), query("offset", OFFSET, "Rows to skip.")]
    incident_id, maintenance_id = path_id("incident_id", "incident"), path_id("maintenance_id", "maintenance")
    component_id = path_id("component_id", "component")
    schemas = {
        "Component": obj({
            "id": {"type": "integer"}, "name": {"type": "string"}, "description": {"type": "string"},
            "status": enum(ComponentStatus), "position": {"type": "integer"},
            "group_id": {"type": ["integer", "null"]}, "showcase": {"type": "boolean"},
            "only_show_if_degraded": {"type": "boolean"},
            "start_date": {"type": ["string", "null"], "format": "date"},
            "created_at": DATE_TIME_OUT, "updated_at": DATE_TIME_OUT}),
        "ComponentGroup": obj({
            "id": {"type": "integer"}, "name": {"type": "string"}, "description": {"type": "string"},
            "position": {"type": "integer"}, "components": {"type": "array", "items": {"type": "integer"}},
            "created_at": DATE_TIME_OUT, "updated_at": DATE_TIME_OUT}),
        "AffectedComponent": obj({
            "code": {"type": "string"}, "component_id": {"type": "integer"}, "name": {"type": "string"},
            "old_status": enum(ComponentStatus), "new_status": enum(ComponentStatus)}),
        "IncidentUpdate": obj({
            "id": {"type": "integer"}, "incident_id": {"type": "integer"}, "status": enum(IncidentStatus),
            "body": {"type": "string"}, "created_at": DATE_TIME_OUT, "updated_at": DATE_TIME_OUT,
            "display_at": DATE_TIME_OUT, "deliver_notifications": {"type": "boolean"},
            "urgent": {"type": "boolean"}, "author": {"type": "string"},
            "affected_components": {"type": ["array", "null"], "items": ref("AffectedComponent")}}),
        "Incident": obj({
            "id": {"type": "integer"}, "kind": enum(IncidentKind), "name": {"type": "string"},
            "status": enum(IncidentStatus), "impact": enum(Impact), "shortlink": {"type": "string"},
            "created_at": DATE_TIME_OUT, "updated_at": DATE_TIME_OUT, "started_at": DATE_TIME_OUT,
            "monitoring_at": nullable(DATE_TIME_OUT), "resolved_at": nullable(DATE_TIME_OUT),
            "scheduled_for": nullable(DATE_TIME_OUT), "scheduled_until": nullable(DATE_TIME_OUT),
            "components": {"type": "array", "items": ref("Component")},
            "incident_updates": {"type": "array", "items": ref("IncidentUpdate"),
                                 "description": "The timeline, newest first."}}),
        "IncidentList": obj({"incidents": {"type": "array", "items": ref("Incident")},
                             "limit": {"type": "integer"}, "offset": {"type": "integer"}}),
        "MaintenanceList": obj({"maintenances": {"type": "array", "items": ref("Incident")},
                                "limit": {"type": "integer"}, "offset": {"type": "integer"}}),
        "ComponentList": obj({"components": {"type": "array", "items": ref("Component")}}),
        "ComponentGroupList": obj({"component_groups": {"type": "array", "items": ref("ComponentGroup")}}),
        "IncidentCreate": obj({
            "name": name, "impact": enum(Impact), "status": enum(INCIDENT_STATUSES[:4]), "message": message,
            "component_ids": ids, "component_statuses": component_statuses, "notify": notify,
            "urgent": {"type": "boolean"},
            "started_at": {**DATE_TIME_IN, "description": "When it started: not in the future (422). "
                                                          + DATE_TIME_IN["description"]}}, ["name", "message"]),
        "IncidentUpdateCreate": update_request(
            INCIDENT_STATUSES, "An incident update; status postmortem only once the incident is resolved (422 "
                               "otherwise)."),
        "MaintenanceUpdateCreate": update_request(MAINTENANCE_STATUSES, "A maintenance update."),
        "MaintenanceCreate": obj({
            "name": name, "message": message, "impact": enum(Impact), "component_ids": ids, "notify": notify,
            "scheduled_for": DATE_TIME_IN,
            "scheduled_until": {**DATE_TIME_IN, "description": "After scheduled_for (422 otherwise). "
                                                               + DATE_TIME_IN["description"]}},
            ["name", "message", "scheduled_for", "scheduled_until"]),
        "ComponentCreate": obj(component_fields, ["name"]),
        "ComponentPatch": obj(component_fields),
        "ComponentGroupCreate": obj({
            "name": text(100, blank=False, description="Unique among groups (whatever the letter case)."),
            "description": component_fields["description"], "position": position}, ["name"]),
    }
    # Every response property is always present.
    for name_, s in schemas.items():
        if not name_.endswith(("Create", "Patch")):
            s["required"] = list(s["properties"])
    return {
        "tags": [{"name": "incidents"}, {"name": "components"}, {"name": "maintenance"}],
        "schemas": schemas,
        "paths": {
            "/incidents": {
                "get": operation("List incidents, newest first", "incidents", "listIncidents",
                                 ok=(200, ref("IncidentList")), params=list_params),
                "post": operation("File an incident", "incidents", "createIncident",
                                  ok=(201, ref("Incident")), body="IncidentCreate"),
            },
            "/incidents/{incident_id}": {"get": operation(
                "An incident with its timeline", "incidents", "getIncident", ok=(200, ref("Incident")),
                params=[incident_id], not_found=True)},
            "/incidents/{incident_id}/updates": {"post": operation(
                "Post an update to the timeline", "incidents", "createIncidentUpdate",
                ok=(201, ref("IncidentUpdate")), body="IncidentUpdateCreate", params=[incident_id], not_found=True)},
            "/components": {
                "get": operation("List components in display order", "components", "listComponents",
                                 ok=(200, ref("ComponentList"))),
                "post": operation("Add a component", "components", "createComponent",
                                  ok=(201, ref("Component")), body="ComponentCreate"),
            },
            "/components/{component_id}": {
                "get": operation("A component", "components", "getComponent", ok=(200, ref("Component")),
                                 params=[component_id], not_found=True),
                "patch": operation("Change some fields of a component", "components", "updateComponent",
                                   ok=(200, ref("Component")), body="ComponentPatch", params=[component_id],
                                   not_found=True),
                "delete": operation("Delete a component", "components", "deleteComponent", ok=(204, None),
                                    params=[component_id], not_found=True),
            },
            "/component-groups": {
                "get": operation("List component groups", "components", "listComponentGroups",
                                 ok=(200, ref("ComponentGroupList"))),
                "post": operation("Add a component group", "components", "createComponentGroup",
                                  ok=(201, ref("ComponentGroup")), body="ComponentGroupCreate"),
            },
            "/maintenances": {
                "get": operation("List scheduled maintenance, latest window first", "maintenance",
                                 "listMaintenances", ok=(200, ref("MaintenanceList")), params=list_params),
                "post": operation("Schedule maintenance", "maintenance", "createMaintenance",
                                  ok=(201, ref("Incident")), body="MaintenanceCreate"),
            },
            "/maintenances/{maintenance_id}": {"get": operation(
                "A maintenance with its timeline", "maintenance", "getMaintenance", ok=(200, ref("Incident")),
                params=[maintenance_id], not_found=True)},
            "/maintenances/{maintenance_id}/updates": {"post": operation(
                "Post a maintenance update (scheduled, in_progress, verifying, completed)", "maintenance",
                "createMaintenanceUpdate", ok=(201, ref("IncidentUpdate")), body="MaintenanceUpdateCreate",
                params=[maintenance_id], not_found=True)},
        },
    }
