"""What each recovery state means for a worried subscriber, in short sentences, in English and Spanish.

Sentences are built so that they never need grammatical agreement with the category (Spanish nouns have
gender and number): the category is always the object ("We recovered your photos", "Hemos recuperado sus
fotos"), with its possessive form looked up per category."""
from accounts.models import RecoveryState
from notifications.templates import LANGUAGES, language_for  # noqa: F401  (LANGUAGES re-exported)

S = RecoveryState


def language_of(tag: str | None) -> str:
    """'es-MX' -> 'es'; anything we do not write in -> 'en' (the notifier's rule: its templates decide)."""
    return language_for(tag)


# key -> (object phrase, unit for counts, singular unit). Unknown keys fall back to the category label.
_CATEGORIES = {
    "en": {
        "contacts": ("your contacts", "contacts", "contact"),
        "calendar": ("your calendar", "calendar entries", "calendar entry"),
        "photos": ("your photos", "photos", "photo"),
        "notes": ("your notes", "notes", "note"),
        "tasks": ("your tasks", "tasks", "task"),
        "ringtones": ("your ringtones", "ringtones", "ringtone"),
    },
    "es": {
        "contacts": ("sus contactos", "contactos", "contacto"),
        "calendar": ("su calendario", "entradas de calendario", "entrada de calendario"),
        "photos": ("sus fotos", "fotos", "foto"),
        "notes": ("sus notas", "notas", "nota"),
        "tasks": ("sus tareas", "tareas", "tarea"),
        "ringtones": ("sus tonos de llamada", "tonos de llamada", "tono de llamada"),
    },
}

_CATEGORY_LABELS = {"es": {"contacts": "Contactos", "calendar": "Calendario", "photos": "Fotos",
                           "notes": "Notas", "tasks": "Tareas", "ringtones": "Tonos de llamada"}}

# Overall state of one account in one incident: a headline, and what is being done about it.
_HEADLINE = {
    "en": {
        S.UNKNOWN: "We do not know yet what happened to your data. We are checking.",
        S.AT_RISK: "Some of your data is at risk. We are working on it now.",
        S.RECOVERING: "We are recovering your data.",
        S.RECOVERED: "Good news: your data has been recovered.",
        S.PARTIALLY_RECOVERED: "We recovered part of your data. Some of it could not be recovered.",
        S.LOST: "We are very sorry: your data could not be recovered.",
    },
    "es": {
        S.UNKNOWN: "Todavía no sabemos qué pasó con sus datos. Lo estamos comprobando.",
        S.AT_RISK: "Parte de sus datos está en riesgo. Estamos trabajando en ello ahora.",
        S.RECOVERING: "Estamos recuperando sus datos.",
        S.RECOVERED: "Buenas noticias: hemos recuperado sus datos.",
        S.PARTIALLY_RECOVERED: "Hemos recuperado una parte de sus datos. Otra parte no se pudo recuperar.",
        S.LOST: "Lo sentimos mucho: no pudimos recuperar sus datos.",
    },
}

_DOING = {
    "en": {
        S.UNKNOWN: "Our engineers are checking every account. This page will show your result as soon as we know it.",
        S.AT_RISK: "Engineers are working to save your data right now. Please do not reset your phone: "
                   "it may hold the only copy.",
        S.RECOVERING: "We are copying your data back. It will appear on your phone when this is finished; "
                      "you do not need to do anything.",
        S.RECOVERED: "Nothing more to do: your data should be back on your phone. If something is missing, "
                     "contact support.",
        S.PARTIALLY_RECOVERED: "We restored what we could. The list below shows what could not be recovered. "
                               "We will write to you about what we can offer.",
        S.LOST: "We will write to you about what we can offer. If you have a copy on your phone or computer, "
                "keep it.",
    },
    "es": {
        S.UNKNOWN: "Nuestros ingenieros están revisando cada cuenta. Esta página mostrará su resultado en "
                   "cuanto lo sepamos.",
        S.AT_RISK: "Los ingenieros están trabajando ahora para salvar sus datos. Por favor, no reinicie su "
                   "teléfono: puede tener la única copia.",
        S.RECOVERING: "Estamos copiando sus datos de vuelta. Aparecerán en su teléfono cuando terminemos; "
                      "no tiene que hacer nada.",
        S.RECOVERED: "No tiene que hacer nada más: sus datos deberían estar de nuevo en su teléfono. Si falta "
                     "algo, contacte con soporte.",
        S.PARTIALLY_RECOVERED: "Hemos restaurado lo que pudimos. La lista de abajo muestra lo que no se pudo "
                               "recuperar. Le escribiremos sobre lo que podemos ofrecerle.",
        S.LOST: "Le escribiremos sobre lo que podemos ofrecerle. Si tiene una copia en su teléfono o en su "
                "ordenador, guárdela.",
    },
}

# One category: `{obj}` is "your photos" / "sus fotos".
_CATEGORY_SENTENCE = {
    "en": {
        S.UNKNOWN: "We are still checking {obj}.",
        S.AT_RISK: "{Obj} may be lost. We are working on it now.",
        S.RECOVERING: "We are recovering {obj}.",
        S.RECOVERED: "We recovered {obj}.",
        S.PARTIALLY_RECOVERED: "We recovered only part of {obj}.",
        S.LOST: "{Obj} could not be recovered.",
    },
    "es": {
        S.UNKNOWN: "Todavía estamos comprobando {obj}.",
        S.AT_RISK: "Podríamos perder {obj}. Estamos trabajando en ello ahora.",
        S.RECOVERING: "Estamos recuperando {obj}.",
        S.RECOVERED: "Hemos recuperado {obj}.",
        S.PARTIALLY_RECOVERED: "Solo pudimos recuperar una parte de {obj}.",
        S.LOST: "No pudimos recuperar {obj}.",
    },
}

_STATE_LABEL = {
    "en": {S.UNKNOWN: "Checking", S.AT_RISK: "At risk", S.RECOVERING: "Recovering", S.RECOVERED: "Recovered",
           S.PARTIALLY_RECOVERED: "Partly recovered", S.LOST: "Lost"},
    "es": {S.UNKNOWN: "En revisión", S.AT_RISK: "En riesgo", S.RECOVERING: "Recuperando",
           S.RECOVERED: "Recuperado", S.PARTIALLY_RECOVERED: "Recuperado en parte", S.LOST: "Perdido"},
}

_INCIDENT_STATUS = {
    "en": {"investigating": "We are investigating", "identified": "We found the cause",
           "monitoring": "Fixed, we are watching closely", "resolved": "Resolved",
           "postmortem": "Resolved, report published"},
    "es": {"investigating": "Estamos investigando", "identified": "Encontramos la causa",
           "monitoring": "Solucionado, lo estamos vigilando", "resolved": "Resuelto",
           "postmortem": "Resuelto, informe publicado"},
}

# Words of the personal page itself.
UI = {
    "en": {
        "title": "Your account", "hello": "Hello {name}.", "account": "Account {number}",
        "no_incidents": "Your account is not affected by any incident we know of.",
        "what_happened": "What happened", "your_data": "Your data", "being_done": "What is being done",
        "updates": "Latest updates", "status": "Status", "note": "Note", "updated": "Updated",
        "sign_out": "Sign out", "incident_page": "Public page of this incident",
        "session_note": "For your privacy this page signs you out after {minutes} minutes.",
    },
    "es": {
        "title": "Su cuenta", "hello": "Hola, {name}.", "account": "Cuenta {number}",
        "no_incidents": "Su cuenta no está afectada por ninguna incidencia que conozcamos.",
        "what_happened": "Qué pasó", "your_data": "Sus datos", "being_done": "Qué estamos haciendo",
        "updates": "Últimas novedades", "status": "Estado", "note": "Nota", "updated": "Actualizado",
        "sign_out": "Cerrar sesión", "incident_page": "Página pública de esta incidencia",
        "session_note": "Por su privacidad, esta página cierra la sesión después de {minutes} minutos.",
    },
}

# The one-time code message (SMS body or email); {minutes} is the lifetime of the code.
CODE_MESSAGE = {
    "en": ("Your Lifeboat code", "Your Lifeboat code is {code}. It expires in {minutes} minutes. "
                                 "If you did not ask for it, ignore this message."),
    "es": ("Su código de Lifeboat", "Su código de Lifeboat es {code}. Caduca en {minutes} minutos. "
                                    "Si no lo pidió, ignore este mensaje."),
}


def headline(state: RecoveryState, lang: str) -> str:
    return _HEADLINE[lang][RecoveryState(state)]


def being_done(state: RecoveryState, lang: str) -> str:
    return _DOING[lang][RecoveryState(state)]


def state_label(state: RecoveryState, lang: str) -> str:
    return _STATE_LABEL[lang][RecoveryState(state)]


def incident_status(status: str, lang: str) -> str:
    return _INCIDENT_STATUS[lang].get(status, status.replace("_", " ").capitalize())


def category_label(key: str, label: str, lang: str) -> str:
    """The category's heading: translated for the built-in keys, the operator's label otherwise."""
    return _CATEGORY_LABELS.get(lang, {}).get(key, label)


def _forms(key: str, label: str, lang: str) -> tuple[str, str, str]:
    if key in _CATEGORIES[lang]:
        return _CATEGORIES[lang][key]
    name = label.lower()
    if lang == "es":
        return f"sus datos de «{name}»", "elementos", "elemento"
    return f"your {name}", "items", "item"


def category_sentence(key: str, label: str, state: RecoveryState, lang: str) -> str:
    """'We recovered your photos.' / 'No pudimos recuperar sus fotos.'"""
    obj = _forms(key, label, lang)[0]
    text = _CATEGORY_SENTENCE[lang][RecoveryState(state)]
    return text.format(obj=obj, Obj=obj[0].upper() + obj[1:])


def number(n: int, lang: str) -> str:
    """1204 -> '1,204' (en) or '1.204' (es)."""
    text = f"{n:,}"
    return text.replace(",", ".") if lang == "es" else text


def item_counts(key: str, label: str, total: int | None, recovered: int | None, lang: str) -> str:
    """'1,204 of 1,250 photos recovered' / 'Se recuperaron 1.204 de 1.250 fotos'; '' when nothing is known."""
    _obj, plural, singular = _forms(key, label, lang)
    if total is not None and recovered is not None:
        unit = singular if total == 1 else plural
        if lang == "es":
            verb = "Se recuperó" if recovered == 1 else "Se recuperaron"
            return f"{verb} {number(recovered, lang)} de {number(total, lang)} {unit}."
        return f"{number(recovered, lang)} of {number(total, lang)} {unit} recovered."
    if recovered is not None:
        unit = singular if recovered == 1 else plural
        if lang == "es":
            verb = "Se recuperó" if recovered == 1 else "Se recuperaron"
            return f"{verb} {number(recovered, lang)} {unit}."
        return f"{number(recovered, lang)} {unit} recovered."
    if total is not None:
        unit = singular if total == 1 else plural
        return (f"Había {number(total, lang)} {unit}." if lang == "es"
                else f"You had {number(total, lang)} {unit}.")
    return ""


def code_message(code: str, minutes: int, lang: str) -> tuple[str, str]:
    """(subject, body) of the one-time code message in the account's language."""
    subject, body = CODE_MESSAGE[language_of(lang)]
    return subject, body.format(code=code, minutes=minutes)
