"""Message templates: sandboxed Jinja per template, language and channel, rendered at send time.

Files live in notifications/message_templates/ as `{template}.{part}.j2`, part one of subject, sms, txt
(email text) and html (email HTML, autoescaped); their texts are gettext msgids, rendered in the account's
language (core.i18n, translations/). An operator's broadcast text is itself
rendered in the sandbox, so it may say "Hello {{ name }}" but can never reach Python attributes.

The notifier knows recipients, not incidents or offers: the fields a message needs beyond the account's name
come from context providers that the higher domains register from their init_app (`register_context`), each
for the outbox rows whose data carries its key (recovery: "aa", offers: "grant")."""
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from flask import current_app
from flask_babel import gettext, ngettext
from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, select_autoescape
from jinja2.sandbox import SandboxedEnvironment

from core import i18n, markdown
from core.db import db
from notifications.models import Account, Broadcast, BroadcastKind

TEMPLATE_DIR = Path(__file__).resolve().parent / "message_templates"
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
                              autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
                              extensions=["jinja2.ext.i18n"])
# One template per message and part, in every language: its texts are gettext msgids, translated in the
# language render_parts speaks (core.i18n), fields escaped in HTML.
_files.install_gettext_callables(gettext, ngettext, newstyle=True)
# Operator-written Markdown (offer descriptions): the sanitised HTML of public pages in email HTML, plain text in
# text email and SMS.
_files.filters["markdown"] = markdown.render
_files.filters["plain"] = markdown.plain
# Operator-written text: no autoescape (it is escaped by the HTML template that shows it) and strict
# names, so a typo like {{ nmae }} is refused when the broadcast is created instead of sending blanks.
_text = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
TEXT_NAMES = ("name", "link", "offer_code")
# Update and resolution messages are incident prose, used as written, not templates.
TEMPLATED_KINDS = (BroadcastKind.BROADCAST, BroadcastKind.TEST)


def language_for(tag: str | None) -> str:
    """'es-MX' -> 'es'; languages without a catalog -> 'en'."""
    return i18n.language_for(tag)


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
    """Every part of a template in a language, rendered with `context`. Text an operator wrote (messages, offer
    descriptions, reasons) stays as written, in OPERATOR_LANGUAGE: the HTML marks it with its `lang`, and a
    subscriber who reads another language is told which one it is."""
    lang = language_for(language)
    operator_lang = current_app.config.get("OPERATOR_LANGUAGE") or "en"
    context = {**context, "lang": lang, "operator_lang": operator_lang,
               "operator_language": i18n.language_name(operator_lang, lang)}
    with i18n.speaking(lang):
        return {part: _files.get_template(f"{template}.{part}.j2").render(context).strip() for part in PARTS}


# ---- context providers, by the data key that marks a message's kind --------------------------------------
# provider(session, notification, account, lang) -> dict of template fields, called when the row's data
# carries the key it was registered for.
ContextProvider = Callable[..., dict]
_providers: dict[str, ContextProvider] = {}


def register_context(key: str, provider: ContextProvider) -> None:
    """Let a domain supply the template fields of the messages whose data carries `key` (a new app built in
    the same process registers again: the latest wins)."""
    _providers[key] = provider


def render(notification) -> Rendered:
    """Subject, body and HTML body of an outbox row whose body is empty (the worker calls this right
    before sending): the template with the account's name, a fresh personal link and recovery summary."""
    context = personal_context(db.session, notification)
    parts = render_parts(notification.template, notification.language, context)
    channel = getattr(notification.channel, "value", notification.channel)
    if channel == "sms":
        return Rendered(subject="", body=parts["sms"], html_body=None)
    return Rendered(subject=parts["subject"], body=parts["txt"], html_body=parts["html"])


def personal_context(session, notification) -> dict:
    """The fields templates may use, for one outbox row (missing ones are empty)."""
    data = dict(notification.data or {})
    lang = language_for(notification.language)
    account = session.get(Account, notification.account_id) if notification.account_id else None
    context = {"name": account.name if account else data.get("name", ""), "link": "", "summary": [],
               "headline": "", "offer_code": data.get("offer_code", ""), "subject": notification.subject or "",
               "manage": ""}
    for key, provider in _providers.items():
        if data.get(key):
            context.update(provider(session, notification, account, lang))
    if not context["link"] and data.get("link"):
        context["link"] = data["link"]
    if notification.broadcast_id:
        broadcast = session.get(Broadcast, notification.broadcast_id)
        context["subject"] = context["subject"] or broadcast.subject
        # Operators' broadcasts may use {{ name }}; incident updates are public prose, used as written.
        templated = broadcast.kind in TEMPLATED_KINDS
        context["message"] = render_text(broadcast.message, context) if templated else broadcast.message
    return context
