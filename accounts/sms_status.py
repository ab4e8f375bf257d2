"""The answer to an SMS "STATUS": each account with that phone number, its latest incident's recovery headline
and a fresh personal link, in the account's language. Accounts know incidents; the notifier does not, so the
webhook asks here and only relays the text."""
import sqlalchemy as sa
from flask import current_app

from accounts import plain_language as pl
from accounts.links import issue_link, link_url
from accounts.models import Account, AffectedAccount
from core.i18n import N_, t
from incidents.models import Incident

MAX_ACCOUNTS = 3  # one phone shared by more accounts than this gets a pointer to /my instead of a long SMS

_TEXT = {  # gettext msgids, in the account's language
    "prefix": N_("Lifeboat:"), "details": N_("Details:"),
    "none": N_("Your account is not affected by any incident we know of."),
    "unknown": N_("We could not match this number to an account. Check your data recovery status at {url}"),
    "many": N_("Several accounts use this number. See each one at {url}"),
}


def accounts_for_phone(session, phone: str) -> list[Account]:
    """The accounts whose phone is this E.164 number, oldest first."""
    return list(session.scalars(sa.select(Account).where(Account.phone == (phone or "").strip())
                                .order_by(Account.id).limit(MAX_ACCOUNTS + 1)))


def language_for_phone(session, phone: str) -> str | None:
    """'en' or 'es' for the (first) account with this phone, None when no account has it."""
    found = accounts_for_phone(session, phone)
    return pl.language_of(found[0].language) if found else None


def _my_url() -> str:
    return f"{current_app.config['PUBLIC_BASE_URL']}/my"


def _latest_affected(session, account_id: int) -> AffectedAccount | None:
    return session.scalar(
        sa.select(AffectedAccount).join(Incident, Incident.id == AffectedAccount.incident_id)
        .where(AffectedAccount.account_id == account_id)
        .order_by(Incident.started_at.desc(), Incident.id.desc()).limit(1))


def _summary(session, account: Account, lang: str) -> str:
    """One account's line: the headline of its latest incident and a fresh personal link to its page."""
    affected = _latest_affected(session, account.id)
    if affected is None:
        return t(lang, _TEXT['none'])
    url = link_url(issue_link(session, affected.id))
    return f"{pl.headline(affected.state, lang)} {t(lang, _TEXT['details'])} {url}"


def status_reply(session, phone: str) -> str:
    """The SMS text answering STATUS from `phone` (issues personal links in the session; the caller commits).

    An unknown number gets a neutral pointer to /my and nothing about any account."""
    found = accounts_for_phone(session, phone)
    if not found:
        return f"{t('en', _TEXT['prefix'])} {t('en', _TEXT['unknown'], url=_my_url())}"
    lang = pl.language_of(found[0].language)
    if len(found) > MAX_ACCOUNTS:
        return f"{t(lang, _TEXT['prefix'])} {t(lang, _TEXT['many'], url=_my_url())}"
    if len(found) == 1:
        return f"{t(lang, _TEXT['prefix'])} {_summary(session, found[0], lang)}"
    lines = [t(lang, _TEXT['prefix'])]
    for account in found:  # several accounts on one phone: a short line per account number, each in its language
        own = pl.language_of(account.language)
        lines.append(f"{pl.ui(own)['account'].format(number=account.account_number)}: "
                     f"{_summary(session, account, own)}")
    return "\n".join(lines)


def keyword_reply(session, *, phone: str, body: str) -> str:
    """The notifier's handler for STATUS / ESTADO (notifications.webhooks.register_keyword)."""
    return status_reply(session, phone)
