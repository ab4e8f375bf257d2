"""The incident page is the hub of the console: each domain above incidents registers the links to its pages
for one incident (accounts, imports, recovery, broadcasts, offers), and the page shows those the operator's
role allows, in order. Incidents know none of those pages; a test crawls the console by its links alone."""
from dataclasses import dataclass, field
from typing import Callable

from flask import url_for

from ops.models import Role


@dataclass(frozen=True)
class HubLink:
    label: str
    endpoint: str
    hint: str = ""
    role: Role = Role.VIEWER
    order: int = 50
    values: Callable[..., dict] = field(default=lambda incident: {"incident_id": incident.id})


_links: dict[str, HubLink] = {}


def register(link: HubLink) -> None:
    """Add a link to every incident's page (registering the same label again replaces it)."""
    _links[link.label] = link


def links_for(incident, user) -> list[tuple[str, str, str]]:
    """(label, url, hint) of the links `user` may follow for `incident` (incidents only, not maintenance)."""
    if incident.kind.value != "incident":
        return []
    return [(link.label, url_for(link.endpoint, **link.values(incident)), link.hint)
            for link in sorted(_links.values(), key=lambda k: (k.order, k.label)) if user.can(link.role)]
