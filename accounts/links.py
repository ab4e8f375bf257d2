"""Personal links: a short, unguessable, expiring, revocable token per affected account that opens its page.

Only the SHA-256 of a token is stored. The token carries 96 random bits, so an unsalted fast hash is
enough: nobody can search 2**96 tokens, and the lookup stays one indexed equality."""
import hashlib
import re
import secrets
from datetime import timedelta

import click
import sqlalchemy as sa
from flask import current_app

from accounts.models import Account, AffectedAccount, PersonalLink
from core.db import db, utcnow
from core.errors import NotFound, ServiceError
from notifications import masking
from ops.audit import Actor, record

TOKEN_BYTES = 12  # 16 URL-safe characters: short enough for an SMS, ~96 bits
_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def issue_link(session, affected_account_id: int, ttl_days: int | None = None) -> str:
    """Create a personal link for an affected account; returns the raw token (shown once, never stored)."""
    if session.get(AffectedAccount, affected_account_id) is None:
        raise NotFound(f"No affected account with id {affected_account_id}.")
    days = ttl_days if ttl_days is not None else current_app.config["PERSONAL_LINK_TTL_DAYS"]
    token = secrets.token_urlsafe(TOKEN_BYTES)
    now = utcnow()
    link = PersonalLink(affected_account_id=affected_account_id, token_hash=hash_token(token),
                        created_at=now, expires_at=now + timedelta(days=days))
    session.add(link)
    session.flush()
    # Whoever stores the text that carries this token masks it by id without a lookup (notifications.masking).
    session.info.setdefault(masking.ISSUED, {})[token] = link.id
    return token


def link_id(token: str) -> int | None:
    """The id of the personal link a token opens (expired or revoked too), for masking stored texts."""
    if not _TOKEN_SHAPE.match(token or ""):
        return None
    return db.session.scalar(sa.select(PersonalLink.id).where(PersonalLink.token_hash == hash_token(token)))


def link_url(token: str) -> str:
    """The public address of a personal link (PUBLIC_BASE_URL/m/<token>)."""
    return f"{current_app.config['PUBLIC_BASE_URL']}/m/{token}"


def open_link(session, token: str) -> AffectedAccount | None:
    """The affected account a valid link opens (and record its use), or None when unknown, expired or revoked."""
    if not _TOKEN_SHAPE.match(token or ""):
        return None
    now = utcnow()
    link = session.scalar(sa.select(PersonalLink).where(PersonalLink.token_hash == hash_token(token)))
    if link is None or link.revoked_at is not None or link.expires_at <= now:
        return None
    link.last_used_at = now
    return session.get(AffectedAccount, link.affected_account_id)


def revoke_links(session, affected_account_id: int) -> int:
    """Revoke every live link of an affected account; returns how many were revoked."""
    return session.execute(
        sa.update(PersonalLink)
        .where(PersonalLink.affected_account_id == affected_account_id, PersonalLink.revoked_at.is_(None))
        .values(revoked_at=utcnow())).rowcount


def _affected(session, incident_id: int, account_number: str) -> AffectedAccount:
    affected = session.scalar(sa.select(AffectedAccount).join(Account).where(
        AffectedAccount.incident_id == incident_id, Account.account_number == account_number))
    if affected is None:
        raise NotFound(f"Account {account_number} is not attached to incident {incident_id}.")
    return affected


def issue_link_for(session, *, incident_id: int, account_number: str, ttl_days: int | None = None,
                   actor: Actor | None = None) -> str:
    """CLI: a fresh personal link URL for an account attached to an incident. It opens the subscriber's page,
    so who made it is audited (with the link's id, never its token)."""
    affected = _affected(session, incident_id, account_number)
    token = issue_link(session, affected.id, ttl_days)
    record(session, actor=actor or Actor.cli(), action="link.issue", entity_type="affected_account",
           entity_id=affected.id, label=account_number,
           after={"incident_id": incident_id, "link_id": session.info[masking.ISSUED][token], "ttl_days": ttl_days})
    return link_url(token)


def revoke_links_for(session, *, incident_id: int, account_number: str, actor: Actor | None = None) -> int:
    """CLI: revoke the personal links of an account attached to an incident (audited)."""
    affected = _affected(session, incident_id, account_number)
    count = revoke_links(session, affected.id)
    record(session, actor=actor or Actor.cli(), action="link.revoke", entity_type="affected_account",
           entity_id=affected.id, label=account_number, after={"incident_id": incident_id, "revoked": count})
    return count


@click.command("link")
@click.argument("incident_id", type=int)
@click.argument("account_number")
@click.option("--days", type=click.IntRange(1, 3650), default=None, help="Days until it expires "
              "(default PERSONAL_LINK_TTL_DAYS).")
def link_command(incident_id: int, account_number: str, days: int | None):
    """Print a fresh personal link to ACCOUNT_NUMBER's page for an incident."""
    try:
        url = issue_link_for(db.session, incident_id=incident_id, account_number=account_number, ttl_days=days)
        db.session.commit()
    except ServiceError as e:
        db.session.rollback()
        raise click.ClickException(e.message)
    click.echo(url)


@click.command("revoke-links")
@click.argument("incident_id", type=int)
@click.argument("account_number")
def revoke_command(incident_id: int, account_number: str):
    """Revoke every personal link of ACCOUNT_NUMBER for an incident."""
    try:
        count = revoke_links_for(db.session, incident_id=incident_id, account_number=account_number)
        db.session.commit()
    except ServiceError as e:
        db.session.rollback()
        raise click.ClickException(e.message)
    click.echo(f"Revoked {count} link{'' if count == 1 else 's'}.")


def register_cli(group) -> None:
    """Add `link` and `revoke-links` to the `accounts` command group."""
    group.add_command(link_command)
    group.add_command(revoke_command)
