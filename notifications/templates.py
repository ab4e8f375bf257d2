"""Message templates: sandboxed Jinja per template, language and channel, rendered at send time.

Files live in notifications/message_templates/ as `{template}.{language}.{part}.j2`, part one of
subject, sms, txt (email text) and html (email HTML, autoescaped). An operator's broadcast text is itself
rendered in the sandbox, so it may say "Hello {{ name }}" but can never reach Python attributes."""
from dataclasses import dataclass
from pathlib import Path

from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, select_autoescape
from jinja2.sandbox import SandboxedEnvironment

from accounts import plain_language

TEMPLATE_DIR = Path(__file__).resolve().parent / "message_templates"
LANGUAGES = plain_language.LANGUAGES
PARTS = ("subject", "sms", "txt", "html")

# GSM 03.38: the basic character set (one septet each) and the extension table (escape + septet: two).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str
    html_body: str | None


_files = SandboxedEnvironment(loader=FileSystemLoader(str(TEMPLATE_DIR)), keep_trailing_newline=False,
                              autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False))
# Operator-written text: no autoescape (it is escaped by the HTML template that shows it) and strict
# names, so a typo like {{ nmae }} is refused when the broadcast is created instead of sending blanks.
_text = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
TEXT_NAMES = ("name", "link", "offer_code")
TEMPLATED_KINDS = ("broadcast", "test")  # update and resolution messages are incident prose, not templates


def language_for(tag: str | None) -> str:
    """'es-MX' -> 'es'; languages without templates -> 'en'."""
    return plain_language.language_of(tag)


def sms_segments(text: str) -> tuple[int, str]:
    """(parts, "GSM-7" | "UCS-2") an SMS of `text` takes: GSM-7 160 alone / 153 per part, extension
    characters count two; otherwise UCS-2, 70 alone / 67 per part in UTF-16 code units."""
    if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text):
        units = sum(2 if c in GSM7_EXTENSION else 1 for c in text)
        single, part, encoding = 160, 153, "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2  # an emoji outside the BMP is a surrogate pair: 2
        single, part, encoding = 70, 67, "UCS-2"
    if units <= single:
        return 1, encoding
    return -(-units // part), encoding


def check_text(text: str) -> str | None:
    """Why an operator's message cannot be used as a template, or None when it renders."""
    try:
        _text.from_string(text).render({n: "x" for n in TEXT_NAMES})
    except TemplateError as e:
        return f"The message cannot be used: {e.message or e}."
    return None


def render_text(text: str, context: dict) -> str:
    """An operator's message with the personal fields filled in (sandboxed)."""
    return _text.from_string(text).render({n: context.get(n) or "" for n in TEXT_NAMES})


def render_parts(template: str, language: str, context: dict) -> dict[str, str]:
    """Every part of a template in a language, rendered with `context`."""
    lang = language_for(language)
    return {part: _files.get_template(f"{template}.{lang}.{part}.j2").render(context).strip() for part in PARTS}


def render(notification) -> Rendered:
    """Subject, body and HTML body of an outbox row whose body is empty (the worker calls this right
    before sending): the template with the account's name, a fresh personal link and recovery summary."""
    from core.db import db

    context = personal_context(db.session, notification)
    parts = render_parts(notification.template, notification.language, context)
    channel = getattr(notification.channel, "value", notification.channel)
    if channel == "sms":
        return Rendered(subject="", body=parts["sms"], html_body=None)
    return Rendered(subject=parts["subject"], body=parts["txt"], html_body=parts["html"])


def personal_context(session, notification) -> dict:
    """The fields templates may use, for one outbox row (missing ones are empty)."""
    from accounts.models import Account, AffectedAccount
    from notifications.models import Broadcast

    data = dict(notification.data or {})
    lang = language_for(notification.language)
    account = session.get(Account, notification.account_id) if notification.account_id else None
    context = {"name": account.name if account else data.get("name", ""), "link": "", "summary": [],
               "headline": "", "offer_code": data.get("offer_code", ""), "subject": notification.subject or ""}
    if data.get("grant"):
        # An offer message (offers.notify): one query for the grant and its program, worded in the
        # account's language. Kept behind a lazy import like accounts': the notifier only relays the fields.
        from offers.text import offer_fields

        context.update(offer_fields(session, data["grant"], lang, account.time_zone if account else None))
    aa_id = data.get("aa")
    affected = session.get(AffectedAccount, aa_id) if aa_id else None
    if affected is not None:
        from accounts.links import issue_link, link_url

        context["link"] = link_url(issue_link(session, affected.id))
        context["headline"] = plain_language.headline(affected.state, lang)
        if not (notification.template or "").startswith("offer"):  # offer messages do not list the recovery
            context["summary"] = recovery_summary(session, affected, lang)
    elif data.get("link"):
        context["link"] = data["link"]
    if notification.broadcast_id:
        broadcast = session.get(Broadcast, notification.broadcast_id)
        context["subject"] = context["subject"] or broadcast.subject
        # Operators' broadcasts may use {{ name }}; incident updates are public prose, used as written.
        templated = broadcast.kind in TEMPLATED_KINDS
        context["message"] = render_text(broadcast.message, context) if templated else broadcast.message
    return context


def recovery_summary(session, affected, lang: str) -> list[str]:
    """One plain sentence per category of the account's incident ('We recovered your photos.')."""
    import sqlalchemy as sa

    from accounts.models import RecoveryCategory, RecoveryState, RecoveryStatus

    rows = session.execute(
        sa.select(RecoveryCategory.key, RecoveryCategory.label, RecoveryStatus.state)
        .outerjoin(RecoveryStatus, sa.and_(RecoveryStatus.category_id == RecoveryCategory.id,
                                           RecoveryStatus.affected_account_id == affected.id))
        .where(RecoveryCategory.incident_id == affected.incident_id)
        .order_by(RecoveryCategory.position, RecoveryCategory.id)).all()
    return [plain_language.category_sentence(key, label, state or RecoveryState.UNKNOWN, lang)
            for key, label, state in rows]
