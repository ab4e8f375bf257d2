"""The languages subscribers read, with Flask-Babel: gettext catalogs (translations/<lang>/LC_MESSAGES/
messages.po, compiled to .mo when the app starts if they are missing or older) and CLDR formats of dates,
numbers and money (Babel).

The code and its templates are written in English: English needs no catalog, and a msgid is the English text.
Adding a language is adding its catalog: `pybabel init -i translations/messages.pot -d translations -l fr`,
translate, done (`languages()` lists every folder with a catalog, the CSV import then accepts the language,
and every subscriber text uses it).

Which language: a subscriber's page sets it for its request (`use`); the notifier renders each message in
its account's language (`speaking`); the operator console and the shared public pages stay in English."""
import logging
import os
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale
from babel import dates as babel_dates
from babel import numbers as babel_numbers
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations
from flask import current_app, g, has_app_context
from flask_babel import Babel, force_locale, get_translations, refresh

log = logging.getLogger("lifeboat.i18n")
DEFAULT = "en"  # the language the code is written in
TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"


def N_(text: str) -> str:  # noqa: N802  (the gettext convention)
    """Mark a string for the catalog without translating it here (it is translated where it is used)."""
    return text


def init_app(app) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT)
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS))
    folders = [Path(p) for p in app.config["BABEL_TRANSLATION_DIRECTORIES"].split(";") if p]
    found = set()
    for folder in folders:
        for po in sorted(folder.glob("*/LC_MESSAGES/messages.po")):
            _compile(po)
            found.add(po.parent.parent.name)
    app.extensions["lifeboat_languages"] = (DEFAULT, *sorted(found - {DEFAULT}))
    Babel(app, locale_selector=lambda: g.get("lang") or DEFAULT)  # one per app: each has its own cache
    app.context_processor(lambda: {"page_lang": g.get("lang") or DEFAULT,
                                   "operator_lang": app.config.get("OPERATOR_LANGUAGE") or DEFAULT})


def _compile(po: Path) -> None:
    """messages.po -> messages.mo beside it, when the .mo is missing or older (pybabel compile, in-process)."""
    mo = po.with_suffix(".mo")
    if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
        return
    with po.open("rb") as f:
        catalog = read_po(f, locale=po.parent.parent.name)
    tmp = mo.with_suffix(f".mo.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as f:
            write_mo(f, catalog)
        tmp.replace(mo)  # atomic: several processes may start at once
    except OSError as e:  # a read-only install: compile at build time (pybabel compile -d translations)
        log.warning("cannot compile %s (%s): the last compiled catalog, or English, is used", po, e)


def languages() -> tuple[str, ...]:
    """The languages subscribers can be written to in: English and every catalog."""
    if has_app_context():
        return current_app.extensions.get("lifeboat_languages", (DEFAULT,))
    return (DEFAULT,)


def language_for(tag: str | None) -> str:
    """'es-MX' -> 'es'; a language without a catalog -> 'en'."""
    lang = (tag or DEFAULT).split("-")[0].lower()
    return lang if lang in languages() else DEFAULT


def use(lang: str | None) -> str:
    """Speak `lang` for the rest of this request (a subscriber's own page); returns the language used."""
    g.lang = language_for(lang)
    refresh()
    return g.lang


@contextmanager
def speaking(lang: str | None):
    """Translate in `lang` inside the block (the notifier renders each message in its account's language)."""
    with force_locale(language_for(lang)):
        yield


def _catalog(lang: str | None):
    """The app's compiled translations for `lang`, looked up once per app and language: t() and tn() run for
    every text of every message the notifier renders, where a locale switch per string would cost ~20 us."""
    lang = language_for(lang)
    if not has_app_context():
        return NullTranslations()
    cache = current_app.extensions.setdefault("lifeboat_catalogs", {})
    if lang not in cache:
        with force_locale(lang):
            cache[lang] = get_translations()
    return cache[lang]


def t(lang: str | None, msgid: str, **values) -> str:
    """`msgid` in `lang`, with `{name}` fields filled in."""
    text = _catalog(lang).gettext(msgid)
    return text.format(**values) if values else text


def tn(lang: str | None, singular: str, plural: str, count: int, **values) -> str:
    """The singular or plural form for `count` in `lang` (the language's own plural rule), fields filled in."""
    return _catalog(lang).ngettext(singular, plural, count).format(**values)


# ---- CLDR formats -------------------------------------------------------------------------------------

def language_name(code: str, in_lang: str | None) -> str:
    """A language's name in another (CLDR): 'en' in 'es' -> 'inglés'."""
    return Locale.parse(language_for(in_lang)).languages.get(code, code)


def zone(name: str | None, fallback: str | None = None) -> ZoneInfo:
    """The IANA zone `name`; an empty or unknown one falls back to `fallback`, then UTC."""
    for candidate in (name, fallback):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def _aware(when: datetime) -> datetime:
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when


_SPACES = str.maketrans({"\u00a0": " ", "\u202f": " "})  # CLDR's no-break spaces are not GSM-7: an SMS
# holding one would go as UCS-2, at 70 characters a part instead of 160


def number(n: int | float, lang: str | None) -> str:
    """1204 -> '1,204' (en), '1.204' (es)."""
    return babel_numbers.format_decimal(n, locale=language_for(lang)).translate(_SPACES)


def money(minor: int, currency: str, lang: str | None) -> str:
    """10000 USD -> '$100.00' (en), '100,00 US$' (es): CLDR's symbol, placement and decimals (none for JPY)."""
    return babel_numbers.format_currency(minor / 100, currency, locale=language_for(lang)).translate(_SPACES)


def _day(d: datetime, lang: str | None) -> str:
    return babel_dates.format_date(d, "d MMM y", locale=language_for(lang)).translate(_SPACES)


def date(when: datetime, lang: str | None, time_zone: str | None = None) -> str:
    """'31 Dec 2026' / '31 dic 2026' in the zone (UTC when unknown)."""
    return _day(_aware(when).astimezone(zone(time_zone)), lang)


def date_time(when: datetime, lang: str | None, time_zone: str | None = None) -> str:
    """'31 Dec 2026, 23:59 UTC' / '31 dic 2026, 23:59 UTC' (the zone's abbreviation when it has one)."""
    d = _aware(when).astimezone(zone(time_zone))
    name = d.tzname() or "UTC"
    if name[0] in "+-":  # zones without an abbreviation: say UTC-06 rather than a bare -06
        name = f"UTC{name}"
    return f"{_day(d, lang)}, {d:%H:%M} {name}"


def medium(when: datetime, lang: str | None) -> str:
    """A moment in the language's own medium date and short time, in UTC: 'Nov 29, 2026, 11:02 PM UTC' /
    '29 nov 2026, 23:02 UTC'."""
    d, locale = _aware(when).astimezone(timezone.utc), language_for(lang)
    return (f"{babel_dates.format_date(d, 'medium', locale=locale)}, "
            f"{babel_dates.format_time(d, 'short', locale=locale)} UTC").translate(_SPACES)
