"""Components, incidents and their updates as Atlassian Statuspage's public v2 JSON shapes.

Pure functions of the model objects plus the page settings (no request, no queries), so the
Statuspage endpoints and the ops API can share them. Shapes follow what Statuspage pages emit
(e.g. githubstatus.com, status.atlassian.com): string ids, UTC timestamps like
"2024-01-02T03:04:05.678Z", null for absent values."""
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone

from incidents.models import (
    Component, ComponentGroup, ComponentStatus, ComponentStatusEvent, Impact, Incident, IncidentKind,
    IncidentUpdate,
)

# Groups and components live in two tables whose integer ids overlap; Statuspage lists both as
# "components" with one id space, so group ids carry a prefix.
GROUP_ID_PREFIX = "group-"


@dataclass(frozen=True)
class PageSettings:
    """The page-level settings every Statuspage document repeats."""

    id: str
    name: str
    url: str
    time_zone: str

    @classmethod
    def from_config(cls, config: Mapping) -> "PageSettings":
        """Read PAGE_ID (or derive a stable one from PUBLIC_BASE_URL), PAGE_NAME, PAGE_TIME_ZONE."""
        url = config["PUBLIC_BASE_URL"].rstrip("/")
        page_id = config.get("PAGE_ID") or hashlib.sha256(url.encode()).hexdigest()[:12]
        return cls(id=page_id, name=config["PAGE_NAME"], url=url, time_zone=config["PAGE_TIME_ZONE"])


def timestamp(value: datetime | date | None) -> str | None:
    """ISO 8601 in UTC with milliseconds and a Z, as Statuspage writes them; dates stay dates."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        return value.isoformat()
    value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def group_id(group: ComponentGroup) -> str:
    """The Statuspage id of a component group."""
    return f"{GROUP_ID_PREFIX}{group.id}"


def page(settings: PageSettings, updated_at: datetime) -> dict:
    """{id, name, url, time_zone, updated_at}."""
    return {"id": settings.id, "name": settings.name, "url": settings.url, "time_zone": settings.time_zone,
            "updated_at": timestamp(updated_at)}


def status(indicator: str, description: str) -> dict:
    """The page rollup: indicator none|minor|major|critical|maintenance and its description."""
    return {"indicator": indicator, "description": description}


def component(c: Component, settings: PageSettings) -> dict:
    """One component; `group_id` names its group, if any."""
    return {
        "id": str(c.id),
        "name": c.name,
        "status": ComponentStatus(c.status).value,
        "created_at": timestamp(c.created_at),
        "updated_at": timestamp(c.updated_at),
        "position": c.position,
        "description": c.description or None,
        "showcase": bool(c.showcase),
        "start_date": timestamp(c.start_date),
        "group_id": None if c.group_id is None else f"{GROUP_ID_PREFIX}{c.group_id}",
        "page_id": settings.id,
        "group": False,
        "only_show_if_degraded": bool(c.only_show_if_degraded),
    }


def group(g: ComponentGroup, children: list[Component], settings: PageSettings) -> dict:
    """A group, listed as a component with "group": true, its children's ids, and their worst status."""
    worst = max((ComponentStatus(c.status) for c in children), key=lambda s: s.severity,
                default=ComponentStatus.OPERATIONAL)
    updated = max([g.updated_at] + [c.updated_at for c in children])
    return {
        "id": group_id(g),
        "name": g.name,
        "status": worst.value,
        "created_at": timestamp(g.created_at),
        "updated_at": timestamp(updated),
        "position": g.position,
        "description": g.description or None,
        "showcase": False,
        "start_date": None,
        "group_id": None,
        "page_id": settings.id,
        "group": True,
        "only_show_if_degraded": False,
        "components": [str(c.id) for c in children],
    }


def components(all_components: Iterable[Component], groups: Iterable[ComponentGroup],
               settings: PageSettings) -> list[dict]:
    """Groups and components in display order: each group is followed by its children."""
    children: dict[int, list[Component]] = {}
    top: list[tuple] = []
    for c in all_components:
        if c.group_id is None:
            top.append((c.position, 1, c.id, c))
        else:
            children.setdefault(c.group_id, []).append(c)
    top += [(g.position, 0, g.id, g) for g in groups]
    out: list[dict] = []
    for *_key, item in sorted(top, key=lambda t: t[:3]):
        if isinstance(item, ComponentGroup):
            kids = sorted(children.get(item.id, []), key=lambda c: (c.position, c.id))
            out.append(group(item, kids, settings))
            out.extend(component(c, settings) for c in kids)
        else:
            out.append(component(item, settings))
    return out


def affected_component(event: ComponentStatusEvent) -> dict:
    """{code, name, old_status, new_status}: a component status change recorded with an update."""
    return {
        "code": str(event.component_id),
        "name": event.component.name,
        "old_status": ComponentStatus(event.old_status).value,
        "new_status": ComponentStatus(event.new_status).value,
    }


def incident_update(u: IncidentUpdate) -> dict:
    """One timeline entry; the body is the Markdown source, as Statuspage bodies are plain text."""
    changes = [affected_component(e) for e in u.component_changes]
    return {
        "id": str(u.id),
        "status": u.status.value,
        "body": u.body,
        "incident_id": str(u.incident_id),
        "created_at": timestamp(u.created_at),
        "updated_at": timestamp(u.created_at),  # updates are append-only: never edited
        "display_at": timestamp(u.display_at),
        "affected_components": changes or None,
        "deliver_notifications": bool(u.notify),
        # Statuspage still emits its (retired) Twitter fields; strict client models expect the keys.
        "custom_tweet": None,
        "tweet_id": None,
    }


def incident(i: Incident, settings: PageSettings) -> dict:
    """An incident with its updates (newest first) and affected components; maintenance adds its window."""
    impact = i.impact.value
    if i.kind == IncidentKind.MAINTENANCE and i.impact == Impact.NONE:
        impact = "maintenance"  # Statuspage's impact for maintenance with no override
    out = {
        "id": str(i.id),
        "name": i.name,
        "status": i.status.value,
        "created_at": timestamp(i.created_at),
        "updated_at": timestamp(i.updated_at),
        "monitoring_at": timestamp(i.monitoring_at),
        "resolved_at": timestamp(i.resolved_at),
        "impact": impact,
        "shortlink": f"{settings.url}/incidents/{i.id}",
        "started_at": timestamp(i.started_at),
        "page_id": settings.id,
        "incident_updates": [incident_update(u) for u in i.updates],
        "components": [component(c, settings) for c in i.components],
    }
    if i.kind == IncidentKind.MAINTENANCE:
        out["scheduled_for"] = timestamp(i.scheduled_for)
        out["scheduled_until"] = timestamp(i.scheduled_until)
    return out
