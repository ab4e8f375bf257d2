"""Events incidents announce to the domains above them, which subscribe from their own init_app.

Incidents do not know who hears about an update (affected accounts and their recovery sit above them): a
posted update is announced here, and each subscriber acts on it in the caller's transaction (accounts queues
the "update" or "resolution" broadcast)."""
from typing import Callable

UpdateHandler = Callable[..., int]  # handler(session, *, actor, update) -> messages it queued
AudienceCounter = Callable[..., int]  # counter(session, incident or None) -> people an update would reach
_update_posted: list[UpdateHandler] = []
_audiences: list[AudienceCounter] = []


def on_update_posted(handler: UpdateHandler) -> None:
    """Subscribe to posted timeline updates (subscribing the same function twice keeps one)."""
    if handler not in _update_posted:
        _update_posted.append(handler)


def update_posted(session, *, actor, update) -> None:
    """Announce an update just flushed to the timeline; subscribers work in the caller's transaction. An update
    with notify records how many messages they queued, so the timeline says what really happened."""
    queued = sum(handler(session, actor=actor, update=update) or 0 for handler in _update_posted)
    if update.notify:
        update.messages_queued = queued


def on_audience(counter: AudienceCounter) -> None:
    """Register who an incident's updates can reach (accounts: its affected accounts)."""
    if counter not in _audiences:
        _audiences.append(counter)


def audience_size(session, incident) -> int:
    """How many people an update of `incident` (None: one being filed) would reach, for the "Notify
    subscribers" box: it is offered only when somebody is there to notify."""
    return sum(counter(session, incident) for counter in _audiences)
