"""Events incidents announce to the domains above them, which subscribe from their own init_app.

Incidents do not know who hears about an update (affected accounts and their recovery sit above them): a
posted update is announced here, and each subscriber acts on it in the caller's transaction (accounts queues
the "update" or "resolution" broadcast)."""
from typing import Callable

UpdateHandler = Callable[..., None]  # handler(session, *, actor, update)
_update_posted: list[UpdateHandler] = []


def on_update_posted(handler: UpdateHandler) -> None:
    """Subscribe to posted timeline updates (subscribing the same function twice keeps one)."""
    if handler not in _update_posted:
        _update_posted.append(handler)


def update_posted(session, *, actor, update) -> None:
    """Announce an update just flushed to the timeline; subscribers work in the caller's transaction."""
    for handler in _update_posted:
        handler(session, actor=actor, update=update)
