"""Signed unsubscribe links and the page behind them, including RFC 8058 one-click POSTs from mail clients."""
import sqlalchemy as sa
from flask import Blueprint, current_app, render_template, request
from itsdangerous import BadSignature, URLSafeSerializer

from core import i18n
from core.db import db
from core.web import csrf
from notifications import optouts
from notifications.models import Account, Channel

bp = Blueprint("unsubscribe", __name__)
SALT = "unsubscribe"
SOURCE = {"email": "email:one-click", "sms": "sms:link"}


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def unsubscribe_token(channel: str, address: str) -> str:
    """A signed token naming one address on one channel (no expiry: old emails must keep working)."""
    return _serializer().dumps([str(channel), address])


def unsubscribe_url(channel: str, address: str) -> str:
    """The absolute one-click unsubscribe URL for `address` on `channel`, under PUBLIC_BASE_URL."""
    base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
    return f"{base}/unsubscribe/{unsubscribe_token(channel, address)}"


def read_token(token: str) -> tuple[str, str] | None:
    """(channel, address) from a token this app signed, or None for a forged or damaged one."""
    try:
        value = _serializer().loads(token)
    except BadSignature:
        return None
    if (not isinstance(value, list) or len(value) != 2 or value[0] not in {c.value for c in Channel}
            or not isinstance(value[1], str) or not value[1]):
        return None
    return value[0], value[1]


def _speak(channel: str | None = None, address: str | None = None) -> None:
    """These pages in the language of the account the address belongs to, else the browser's."""
    lang = None
    if address:
        column = Account.email if channel == "email" else Account.phone
        lang = db.session.scalar(sa.select(Account.language).where(column == address).order_by(Account.id).limit(1))
    i18n.use(lang or request.accept_languages.best_match(i18n.languages(), default=i18n.DEFAULT))


def _refused():
    _speak()
    return render_template("public/unsubscribe_invalid.html"), 404


@bp.get("/unsubscribe/<token>")
def confirm(token: str):
    """Ask before unsubscribing: link scanners and previews GET every link, and must not unsubscribe anyone."""
    found = read_token(token)
    if found is None:
        return _refused()
    channel, address = found
    _speak(channel, address)
    return render_template("public/unsubscribe.html", token=token, channel=channel, address=address)


# No CSRF token here: RFC 8058 one-click POSTs come straight from mail providers. The signed token is the
# protection: it names one address, and only the owner of that address received it.
@csrf.exempt
@bp.post("/unsubscribe/<token>")
def unsubscribe(token: str):
    """Opt the address out (one-click "List-Unsubscribe=One-Click" or the confirm form) and say so."""
    found = read_token(token)
    if found is None:
        return _refused()
    channel, address = found
    optouts.opt_out(db.session, channel, address, SOURCE[channel])
    db.session.commit()
    _speak(channel, address)
    return render_template("public/unsubscribe_done.html", channel=channel, address=address)
