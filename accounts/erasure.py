"""Erasing one subscriber on request (GDPR Art. 17 and similar laws): their personal data goes from every place
it lives, and what must keep working keeps working.

What goes:
- the account's name, phone, email, time zone and account number (it becomes "erased-<id>");
  (`erase_subscriber` erases a status-page subscriber who has no account: everything below that names the
  address);
- the contact-change history, verification codes and personal links, and a status-page subscription of
  their address;
- their messages' recipient, texts and template fields (each message row stays, with its status and times,
  so delivery counts stay right; a message not sent yet is suppressed), and provider answers that name them;
- the SMS they sent us (inbound log) and the replies;
- recovery notes about them;
- their values wherever else they were written: the audit log's before/after records and labels, import jobs'
  error lists, the API's stored idempotent answers, and the rows of uploaded CSV files still kept on disk.

An address another account also holds (a shared family phone) is left to that account: its opt-out, the
messages sent to it for the other account and the SMS from it stay.

What stays: the account row and its affected accounts with their recovery states (counts and recovery
statistics stay right), offer grants (liability stays right; they hold no personal field), and an opt-out as a
keyed hash of the address (notifications.optouts.erased_hash), which still stops messages if the address
comes back. The erasure itself is audited with counts only.

Backups made before the erasure still hold the data: they age out with the backup retention."""
import json
import os
import tempfile
from pathlib import Path

import sqlalchemy as sa
from flask import current_app

from accounts.contact import ContactError, normalise_phone
from accounts.models import (Account, AccountChange, AffectedAccount, ImportJob, PersonalLink, RecoveryEvent,
                             RecoveryStatus, Subscription, VerificationCode)
from core.db import utcnow
from core.errors import Conflict, NotFound
from notifications import optouts, staging
from notifications.models import (Channel, InboundMessage, Notification, NotificationEvent, NotificationStatus,
                                  StagedMessage)
from ops.audit import Actor, record
from ops.models import AuditEntry, IdempotencyRecord

ERASED = "(erased)"
MIN_VALUE = 4  # shorter values (a two-letter name) would erase unrelated text; they are blanked where they are


def erase(session, *, actor: Actor, account_number: str) -> dict:
    """Erase the subscriber with this account number; returns what was done, by kind (the caller commits)."""
    account = session.scalar(sa.select(Account).where(Account.account_number == account_number))
    if account is None:
        raise NotFound(f"No account {account_number!r}.")
    values, addresses = _their_values(session, account)
    # An address another account also holds (a family's shared phone) is that account's too: it stays.
    shared = {(c, a) for c, a in addresses if session.scalar(sa.select(Account.id).where(
        Account.id != account.id, (Account.phone if c is Channel.SMS else Account.email) == a).limit(1))}
    addresses = [pair for pair in addresses if pair not in shared]
    values = [v for v in values if v not in {a for _c, a in shared}]
    affected_ids = list(session.scalars(sa.select(AffectedAccount.id).where(AffectedAccount.account_id == account.id)))

    counts = _erase_traces(session, values, addresses, account_id=account.id)
    counts["verification_codes"] = session.execute(sa.delete(VerificationCode).where(
        VerificationCode.account_id == account.id)).rowcount
    counts["personal_links"] = session.execute(sa.delete(PersonalLink).where(
        PersonalLink.affected_account_id.in_(affected_ids or [0]))).rowcount
    counts["contact_changes"] = session.execute(sa.delete(AccountChange).where(
        AccountChange.account_id == account.id)).rowcount
    for model in (RecoveryStatus, RecoveryEvent):  # free text about this person: blanked, states stay
        session.execute(sa.update(model).where(model.affected_account_id.in_(affected_ids or [0]), model.note != "")
                        .values(note="").execution_options(synchronize_session=False))
    now = utcnow()

    number = f"erased-{account.id}"
    session.execute(sa.update(Account).where(Account.id == account.id).values(
        account_number=number, name="", phone=None, email=None, time_zone=None, updated_at=now)
        .execution_options(synchronize_session=False))
    session.expire(account)
    record(session, actor=actor, action="account.erase", entity_type="account", entity_id=account.id,
           label=number, after=dict(counts))
    return counts


def _erase_traces(session, values: list[str], addresses: list[tuple[Channel, str]], *,
                  account_id: int | None = None) -> dict[str, int]:
    """What an erasure removes wherever a person's values and addresses are (their account's rows aside): the
    opt-outs become keyed hashes, their messages lose what names them (unsent ones are suppressed), the SMS
    they sent and their status-page subscriptions go, and their values leave the audit log, import jobs,
    stored API answers and kept upload files. Returns counts by kind."""
    counts: dict[str, int] = {}
    # Opt-outs keep a keyed hash, so they still hold.
    counts["opt_outs_hashed"] = sum(optouts.erase_address(session, channel, address) for channel, address in addresses)

    # Messages: the rows stay (counts, delivery record), what names the person goes. Those of a large broadcast
    # not yet moved into the outbox are moved now, and treated as any queued message below.
    staged = [sa.and_(StagedMessage.channel == c.value, StagedMessage.recipient == a) for c, a in addresses]
    if account_id is not None:
        staged.append(StagedMessage.account_id == account_id)
    if staged:
        staging.move_matching(session, sa.or_(*staged))
    mine = [sa.and_(Notification.channel == c, Notification.recipient == a) for c, a in addresses]
    if account_id is not None:
        mine.append(Notification.account_id == account_id)
    message_ids = list(session.scalars(sa.select(Notification.id).where(sa.or_(*mine)))) if mine else []
    now = utcnow()
    for chunk in _chunks(message_ids):
        session.execute(sa.update(Notification).where(Notification.id.in_(chunk),
                                                      Notification.status.in_([NotificationStatus.QUEUED,
                                                                               NotificationStatus.SENDING]))
                        .values(status=NotificationStatus.SUPPRESSED, error_code="erased",
                                error_message="The subscriber was erased; not sent.", lease_until=None)
                        .execution_options(synchronize_session=False))
        # The dedupe key names the recipient too; "erased:<message id>" keeps it unique.
        session.execute(sa.update(Notification).where(Notification.id.in_(chunk)).values(
            recipient=ERASED, account_id=None, subject="", body=ERASED, html_body=None, data=None, updated_at=now,
            dedupe_key=sa.literal("erased:") + sa.cast(Notification.id, sa.String))
            .execution_options(synchronize_session=False))
    counts["messages"] = len(message_ids)
    counts["message_events"] = _scrub(session, NotificationEvent.__table__, values,
                                      where=lambda t: t.c.notification_id.in_(message_ids or [0]))
    counts["message_errors"] = _scrub(session, Notification.__table__, values,
                                      where=lambda t: t.c.id.in_(message_ids or [0]), columns=("error_message",))

    phones = [a for c, a in addresses if c is Channel.SMS]
    counts["inbound_sms"] = session.execute(sa.delete(InboundMessage).where(
        InboundMessage.from_number.in_(phones or [""]))).rowcount
    counts["subscriptions"] = session.execute(sa.delete(Subscription).where(sa.or_(*(
        sa.and_(Subscription.channel == c.value, Subscription.address == a) for c, a in addresses)) if addresses
        else sa.false())).rowcount

    # Anywhere else their values were written.
    counts["audit_entries"] = _scrub(session, AuditEntry.__table__, values,
                                     columns=("actor", "entity_label", "before", "after"))
    counts["import_jobs"] = _scrub(session, ImportJob.__table__, values, columns=("errors", "message"))
    idempotent = IdempotencyRecord.__table__
    counts["stored_api_answers"] = session.execute(sa.delete(idempotent).where(sa.or_(
        *(idempotent.c.response_body.contains(v, autoescape=True) for v in _patterns(values))))).rowcount if values \
        else 0
    counts["upload_rows"] = _scrub_files(session, values)
    return counts


def erase_subscriber(session, *, actor: Actor, channel: Channel | str, address: str) -> dict:
    """Erase a status-page subscriber who is not an affected account (they asked to be forgotten): their
    subscription, the messages sent to the address, the SMS it sent, and the address wherever else it was
    written; its opt-out stays as a keyed hash. An address an affected account holds is that account's: erase
    the account instead (Conflict). NotFound when Lifeboat holds nothing for the address."""
    if str(getattr(channel, "value", channel)) == "sms":  # any format a person gives: stored as E.164
        try:
            address = normalise_phone(address or "", current_app.config["PHONE_DEFAULT_REGION"]) or address
        except ContactError:
            pass
    channel, address = optouts.normalise(channel, address)
    holder = session.scalar(sa.select(Account.account_number).where(
        (Account.phone if channel is Channel.SMS else Account.email) == address).limit(1))
    if holder is not None:
        raise Conflict(f"This address belongs to account {holder}: erase that account instead "
                       f"(flask accounts erase {holder}).")
    known = session.scalar(sa.select(sa.func.count()).select_from(Subscription).where(
        Subscription.channel == channel.value, Subscription.address == address)) or session.scalar(
        sa.select(sa.func.count()).select_from(Notification).where(Notification.channel == channel,
                                                                   Notification.recipient == address))
    if not known:
        raise NotFound("Lifeboat holds nothing for this address.")
    counts = _erase_traces(session, [address] if len(address) >= MIN_VALUE else [], [(channel, address)])
    record(session, actor=actor, action="subscription.erase", entity_type="subscription", label=ERASED,
           after={"channel": channel.value, **counts})
    return counts


def _their_values(session, account: Account) -> tuple[list[str], list[tuple[Channel, str]]]:
    """The strings that identify the person (now and in their contact history), and their addresses."""
    values = {account.account_number, account.name, account.phone, account.email}
    addresses = {(Channel.SMS, account.phone), (Channel.EMAIL, account.email)}
    for change in session.scalars(sa.select(AccountChange).where(AccountChange.account_id == account.id)):
        for value in (change.old_value, change.new_value):
            values.add(value)
            if change.field in ("phone", "email") and value:
                addresses.add((Channel.SMS if change.field == "phone" else Channel.EMAIL, value))
    clean = sorted({v.strip() for v in values if v and len(v.strip()) >= MIN_VALUE}, key=len, reverse=True)
    return clean, sorted((c, a) for c, a in addresses if a)


def _patterns(values: list[str]) -> list[str]:
    """Each value as text holds it, and as JSON text holds it (non-ASCII escaped)."""
    out = []
    for v in values:
        out.append(v)
        escaped = json.dumps(v)[1:-1]
        if escaped != v:
            out.append(escaped)
    return out


def _replace(value, values: list[str]):
    """`value` (text, or JSON: dicts, lists) with every occurrence of the values replaced by ERASED."""
    if isinstance(value, str):
        for v in values:
            if v in value:
                value = value.replace(v, ERASED)
        return value
    if isinstance(value, dict):
        return {k: _replace(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, values) for v in value]
    return value


def _scrub(session, table, values: list[str], *, where=None, columns=None) -> int:
    """Replace the values in the text and JSON columns of `table` (all of them, or `columns`), in the rows that
    hold them; returns how many rows changed."""
    if not values:
        return 0
    cols = [table.c[name] for name in columns] if columns else [
        c for c in table.columns if isinstance(c.type, (sa.String, sa.Text, sa.JSON))]
    if not cols:
        return 0
    patterns = _patterns(values)
    holds = [sa.cast(c, sa.Text).contains(p, autoescape=True) for c in cols for p in patterns]
    query = sa.select(table.c.id, *cols).where(sa.or_(*holds))
    if where is not None:
        query = query.where(where(table))
    changed = 0
    for row in session.execute(query).all():
        new = {c.name: _replace(getattr(row, c.name), values) for c in cols}
        if any(new[c.name] != getattr(row, c.name) for c in cols):
            session.execute(table.update().where(table.c.id == row.id).values(new))
            changed += 1
    return changed


def _scrub_files(session, values: list[str]) -> int:
    """Drop the lines holding the values from uploaded CSVs and rejected-row files still on disk (they are
    deleted after IMPORT_RETENTION_DAYS anyway); returns how many lines went."""
    paths = set()
    for source, errors in session.execute(sa.select(ImportJob.source_path, ImportJob.error_csv_path)):
        paths.update(p for p in (source, errors) if p)
    dropped = 0
    encoded = [v.encode() for v in values]
    for name in paths:
        path = Path(name)
        if not path.is_file():
            continue
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".erase-")
        removed = 0
        with os.fdopen(fd, "wb") as out, path.open("rb") as src:
            for line in src:
                if any(v in line for v in encoded):
                    removed += 1
                else:
                    out.write(line)
        if removed:
            os.replace(tmp, path)
            dropped += removed
        else:
            os.unlink(tmp)
    return dropped


def _chunks(ids: list[int], size: int = 500):
    for i in range(0, len(ids), size):
        yield ids[i:i + size]


def describe(counts: dict) -> str:
    """What an erasure did, for the operator: "12 messages, 1 opt outs hashed, ..."."""
    return ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items() if v) or "nothing beyond the account"
