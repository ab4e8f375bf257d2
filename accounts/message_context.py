"""The recovery fields of a message about one affected account (data key "aa"): a fresh personal link, the
plain-language headline and, except in offer messages, one sentence per category. Registered with the
notifier's templates (notifications.templates.register_context), which know recipients, not recovery."""
import sqlalchemy as sa

from accounts import plain_language
from accounts.links import issue_link, link_url
from accounts.models import AffectedAccount, RecoveryCategory, RecoveryState, RecoveryStatus


def recovery_context(session, notification, account, lang: str) -> dict:
    """link, headline and summary for the outbox row's affected account ({} if it is gone)."""
    affected = session.get(AffectedAccount, (notification.data or {}).get("aa"))
    if affected is None:
        return {}
    context = {"link": link_url(issue_link(session, affected.id)),
               "headline": plain_language.headline(affected.state, lang)}
    if not (notification.template or "").startswith("offer"):  # offer messages do not list the recovery
        context["summary"] = recovery_summary(session, affected, lang)
    return context


def recovery_summary(session, affected, lang: str) -> list[str]:
    """One plain sentence per category of the account's incident ('We recovered your photos.')."""
    rows = session.execute(
        sa.select(RecoveryCategory.key, RecoveryCategory.label, RecoveryStatus.state)
        .outerjoin(RecoveryStatus, sa.and_(RecoveryStatus.category_id == RecoveryCategory.id,
                                           RecoveryStatus.affected_account_id == affected.id))
        .where(RecoveryCategory.incident_id == affected.incident_id)
        .order_by(RecoveryCategory.position, RecoveryCategory.id)).all()
    return [plain_language.category_sentence(key, label, state or RecoveryState.UNKNOWN, lang)
            for key, label, state in rows]
