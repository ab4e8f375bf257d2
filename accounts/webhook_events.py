"""The recovery.summary_changed outbound webhook event: registered from accounts.wiring, emitted in the
transaction of whatever changed an incident's recovery summary (a recovery edit or import, new affected
accounts, the categories). `data` is GET /api/ops/v1/incidents/{id}/recovery-summary's shape; it is counted only
when some endpoint listens (a GROUP BY over the incident's accounts)."""
from accounts import summary
from notifications.outbound import events

RECOVERY_SUMMARY_CHANGED = "recovery.summary_changed"


def register() -> None:
    """Register recovery.summary_changed with the notifier (from accounts.wiring)."""
    events.register(events.EventType(
        RECOVERY_SUMMARY_CHANGED, "An incident's recovery summary changed (recovery edits and imports, affected "
                                  "accounts added, categories). data: {recovery_summary}."))


def summary_changed(session, *, incident_id: int) -> int:
    """Emit the event with the summary as it stands in this transaction."""
    return events.emit(session, RECOVERY_SUMMARY_CHANGED, lambda: {
        "recovery_summary": summary.recovery_summary(session, incident_id=incident_id)})
