"""What each recovery state means for a worried subscriber, in short sentences, in the account's language
(gettext: the msgids are the English texts, translations/<lang>/LC_MESSAGES/messages.po the others).

Sentences are built so that they never need grammatical agreement with the category (Spanish nouns have
gender and number): the category is always the object ("We recovered your photos", "Hemos recuperado sus
fotos"), with its possessive form looked up per category."""
from accounts.models import RecoveryState
from core.i18n import N_, language_for, languages, number, t, tn  # noqa: F401  (number, languages re-exported)

S = RecoveryState


def language_of(tag: str | None) -> str:
    """'es-MX' -> 'es'; a language without a catalog -> 'en' (the notifier's rule)."""
    return language_for(tag)


# key -> (object phrase, unit for counts, singular unit). Unknown keys fall back to the category label.
_CATEGORIES = {
    "contacts": (N_("your contacts"), N_("contacts"), N_("contact")),
    "calendar": (N_("your calendar"), N_("calendar entries"), N_("calendar entry")),
    "photos": (N_("your photos"), N_("photos"), N_("photo")),
    "notes": (N_("your notes"), N_("notes"), N_("note")),
    "tasks": (N_("your tasks"), N_("tasks"), N_("task")),
    "ringtones": (N_("your ringtones"), N_("ringtones"), N_("ringtone")),
}
_CATEGORY_LABELS = {"contacts": N_("Contacts"), "calendar": N_("Calendar"), "photos": N_("Photos"),
                    "notes": N_("Notes"), "tasks": N_("Tasks"), "ringtones": N_("Ringtones")}

# Overall state of one account in one incident: a headline, and what is being done about it.
_HEADLINE = {
    S.UNKNOWN: N_("We do not know yet what happened to your data. We are checking."),
    S.AT_RISK: N_("Some of your data is at risk. We are working on it now."),
    S.RECOVERING: N_("We are recovering your data."),
    S.RECOVERED: N_("Good news: your data has been recovered."),
    S.PARTIALLY_RECOVERED: N_("We recovered part of your data. Some of it could not be recovered."),
    S.LOST: N_("We are very sorry: your data could not be recovered."),
}

_DOING = {
    S.UNKNOWN: N_("Our engineers are checking every account. This page will show your result as soon as we know it."),
    S.AT_RISK: N_("Engineers are working to save your data right now. Please do not reset your phone: "
                  "it may hold the only copy."),
    S.RECOVERING: N_("We are copying your data back. It will appear on your phone when this is finished; "
                     "you do not need to do anything."),
    S.RECOVERED: N_("Nothing more to do: your data should be back on your phone. If something is missing, "
                    "contact support."),
    S.PARTIALLY_RECOVERED: N_("We restored what we could. The list below shows what could not be recovered. "
                              "We will write to you about what we can offer."),
    S.LOST: N_("We will write to you about what we can offer. If you have a copy on your phone or computer, "
               "keep it."),
}

# One category: `{obj}` is "your photos" / "sus fotos".
_CATEGORY_SENTENCE = {
    S.UNKNOWN: N_("We are still checking {obj}."),
    S.AT_RISK: N_("{Obj} may be lost. We are working on it now."),
    S.RECOVERING: N_("We are recovering {obj}."),
    S.RECOVERED: N_("We recovered {obj}."),
    S.PARTIALLY_RECOVERED: N_("We recovered only part of {obj}."),
    S.LOST: N_("{Obj} could not be recovered."),
}

_STATE_LABEL = {S.UNKNOWN: N_("Checking"), S.AT_RISK: N_("At risk"), S.RECOVERING: N_("Recovering"),
                S.RECOVERED: N_("Recovered"), S.PARTIALLY_RECOVERED: N_("Partly recovered"), S.LOST: N_("Lost")}

_INCIDENT_STATUS = {"investigating": N_("We are investigating"), "identified": N_("We found the cause"),
                    "monitoring": N_("Fixed, we are watching closely"), "resolved": N_("Resolved"),
                    "postmortem": N_("Resolved, report published")}

# Words of the personal page itself.
_UI = {
    "title": N_("Your account"), "hello": N_("Hello {name}."), "account": N_("Account {number}"),
    "no_incidents": N_("Your account is not affected by any incident we know of."),
    "what_happened": N_("What happened"), "your_data": N_("Your data"), "being_done": N_("What is being done"),
    "updates": N_("Latest updates"), "status": N_("Status"), "note": N_("Note"), "updated": N_("Updated"),
    "sign_out": N_("Sign out"), "incident_page": N_("Public page of this incident"),
    "session_note": N_("For your privacy this page signs you out after {minutes} minutes."),
    "written_in": N_("Our team writes these updates in {language}."),
    "summary": N_("At a glance"),
}

# The one-time code message (SMS body or email); {minutes} is the lifetime of the code.
CODE_SUBJECT = N_("Your Lifeboat code")
CODE_BODY = N_("Your Lifeboat code is {code}. It expires in {minutes} minutes. "
               "If you did not ask for it, ignore this message.")


def ui(lang: str) -> dict:
    """The personal page's words in `lang`."""
    return {key: t(lang, text) for key, text in _UI.items()}


def headline(state: RecoveryState, lang: str) -> str:
    return t(lang, _HEADLINE[RecoveryState(state)])


def being_done(state: RecoveryState, lang: str) -> str:
    return t(lang, _DOING[RecoveryState(state)])


def state_label(state: RecoveryState, lang: str) -> str:
    return t(lang, _STATE_LABEL[RecoveryState(state)])


def incident_status(status: str, lang: str) -> str:
    text = _INCIDENT_STATUS.get(status)
    return t(lang, text) if text else status.replace("_", " ").capitalize()


def category_label(key: str, label: str, lang: str) -> str:
    """The category's heading: translated for the built-in keys, the operator's label otherwise."""
    return t(lang, _CATEGORY_LABELS[key]) if key in _CATEGORY_LABELS and lang != "en" else label


def _forms(key: str, label: str, lang: str) -> tuple[str, str, str]:
    if key in _CATEGORIES:
        return tuple(t(lang, text) for text in _CATEGORIES[key])
    return (t(lang, "your {name}", name=label.lower()), t(lang, "items"), t(lang, "item"))


def category_sentence(key: str, label: str, state: RecoveryState, lang: str) -> str:
    """'We recovered your photos.' / 'No pudimos recuperar sus fotos.'"""
    obj = _forms(key, label, lang)[0]
    return t(lang, _CATEGORY_SENTENCE[RecoveryState(state)], obj=obj, Obj=obj[0].upper() + obj[1:])


def item_counts(key: str, label: str, total: int | None, recovered: int | None, lang: str) -> str:
    """'1,204 of 1,250 photos recovered' / 'Se recuperaron 1.204 de 1.250 fotos'; '' when nothing is known."""
    _obj, plural, singular = _forms(key, label, lang)
    if total is not None and recovered is not None:
        unit = singular if total == 1 else plural
        return tn(lang, "{recovered} of {total} {unit} recovered.", "{recovered} of {total} {unit} recovered.",
                  recovered, recovered=number(recovered, lang), total=number(total, lang), unit=unit)
    if recovered is not None:
        unit = singular if recovered == 1 else plural
        return tn(lang, "{recovered} {unit} recovered.", "{recovered} {unit} recovered.", recovered,
                  recovered=number(recovered, lang), unit=unit)
    if total is not None:
        unit = singular if total == 1 else plural
        return t(lang, "You had {total} {unit}.", total=number(total, lang), unit=unit)
    return ""


def code_message(code: str, minutes: int, lang: str) -> tuple[str, str]:
    """(subject, body) of the one-time code message in the account's language."""
    return t(lang, CODE_SUBJECT), t(lang, CODE_BODY, code=code, minutes=minutes)
