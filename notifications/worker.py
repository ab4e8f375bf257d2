"""The notifier worker: claim due outbox rows, send them at the providers' pace, record each outcome.

Rows are claimed with a lease (status sending + lease_until, attempts + 1) in one short transaction, sent
with no transaction open, and each result is committed on its own, only if the lease is still ours. A crash
loses nothing; only the rows in flight at that moment can be sent again, once their lease runs out.
Beside the messages, a thread drains the outbound webhook outbox the same way (notifications.outbound.delivery),
and another moves large sends' staged messages into the outbox, batch by batch (notifications.staging)."""
import contextlib
import logging
import queue
import random
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import has_app_context
from sqlalchemy.orm import sessionmaker

from core.db import SQLITE_BUSY_TIMEOUT_MS, db, utcnow
from core.periodic import run_due as run_due_tasks
from notifications import masking, optouts, quiet_hours, receipts, service, staging, telemetry
from notifications.models import Account, Channel, Notification, NotificationEvent, NotificationStatus, OptOut
from notifications.budget import SharedBudget
from notifications.outbound.delivery import Deliverer
from notifications.pacing import RateLimiter, sms_segments
from notifications.providers import (
    OPT_OUT_CODES, SUPPRESSED_CODE, LogProvider, NotSent, Provider, ProviderError,
)

log = logging.getLogger("lifeboat.notifier")

AMBIGUOUS = "ambiguous"


@dataclass
class Settings:
    """Worker settings; `from_config` reads them from the app config (see config.py)."""

    concurrency: int = 4  # sends in flight per channel
    lease_seconds: float = 60.0  # longer than a send's timeout plus its wait for the rate limiter
    max_attempts: int = 6
    backoff_base: float = 15.0  # seconds before the first retry, doubled per attempt, with jitter x0.5-1.5
    backoff_cap: float = 3600.0
    sms_rate: float = 10.0  # SMS segments per second, all workers together (notifications.budget)
    email_rate: float = 10.0  # emails per second, all workers together
    pacing_margin: float = 0.015  # seconds added to the 1-second window for request-time variation (pacing.py)
    quiet: quiet_hours.Window | None = field(default_factory=lambda: quiet_hours.parse("21:00-08:00"))
    fallback_zone: str = "UTC"  # for accounts without a (known) time zone: PAGE_TIME_ZONE
    poll_interval: float = 1.0
    periodic_interval: float = 30.0  # seconds between runs of the due periodic tasks (core.periodic); 0 = never
    secret_key: bytes = b""  # SECRET_KEY: erased subscribers' opt-outs are kept as keyed hashes (optouts.erased_hash)

    @classmethod
    def from_config(cls, config, **overrides) -> "Settings":
        """Settings from the app config, with keyword overrides (e.g. concurrency from the command line)."""
        values = dict(
            lease_seconds=float(config.get("NOTIFIER_LEASE_SECONDS") or default_lease(config)),
            max_attempts=int(config.get("NOTIFIER_MAX_ATTEMPTS", 6)),
            backoff_base=float(config.get("NOTIFIER_BACKOFF_SECONDS", 15)),
            backoff_cap=float(config.get("NOTIFIER_BACKOFF_CAP_SECONDS", 3600)),
            sms_rate=float(config.get("SMS_RATE_PER_SECOND", 10)),
            email_rate=float(config.get("EMAIL_RATE_PER_SECOND", 10)),
            pacing_margin=float(config.get("PACING_MARGIN_MS", 15)) / 1000,
            quiet=quiet_hours.parse(config.get("QUIET_HOURS", "21:00-08:00")),
            fallback_zone=config.get("PAGE_TIME_ZONE") or "UTC",
            poll_interval=float(config.get("NOTIFIER_POLL_SECONDS", 1.0)),
            periodic_interval=float(config.get("NOTIFIER_PERIODIC_SECONDS", 30)),
            secret_key=str(config.get("SECRET_KEY") or "").encode(),
        )
        if "NOTIFIER_CONCURRENCY" in config:
            values["concurrency"] = int(config["NOTIFIER_CONCURRENCY"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def default_lease(config) -> float:
    """The lease when NOTIFIER_LEASE_SECONDS is unset: above a send's timeout plus its wait for the budget
    (60 s), and on SQLite also above the busy timeout, which recording an outcome may wait out behind a long
    import or broadcast holding the write lock (and its first retry may wait as long again): a lease that
    ran out meanwhile would let another worker claim the row and send it again. 180 s with the 60 s busy
    timeout."""
    if str(config.get("SQLALCHEMY_DATABASE_URI", "")).startswith("sqlite"):
        return 60.0 + 2 * SQLITE_BUSY_TIMEOUT_MS / 1000
    return 60.0


def providers_from_config(config) -> dict[str, Provider]:
    """Channel -> provider (Twilio / SMTP when configured, else the log provider)."""
    try:
        from notifications.providers import from_config
    except ImportError:  # before the real providers landed
        return {"sms": LogProvider(), "email": LogProvider()}
    return from_config(config)


def _due(now: datetime):
    return sa.or_(
        sa.and_(Notification.status == NotificationStatus.QUEUED, Notification.next_attempt_at <= now),
        sa.and_(Notification.status == NotificationStatus.SENDING, Notification.lease_until < now),
    )


def _picks(channel: str | None, now: datetime) -> list[sa.Select]:
    """The selects of due rows, in the order they should go: rows whose lease ran out (a worker died
    mid-send) first, then queued rows by priority class and round-robin place (notifications.priorities).

    Both are index walks bounded by the claim's limit: leased rows are few (at most what is in flight), and
    queued rows are read along ix_notifications_ready for the channel, skipping rows held for later (quiet
    hours, retries) from the index alone."""
    expired = sa.select(Notification.id).where(Notification.status == NotificationStatus.SENDING,
                                               Notification.lease_until < now)
    queued = (sa.select(Notification.id)
              .where(Notification.status == NotificationStatus.QUEUED, Notification.next_attempt_at <= now)
              # The index's own order (ties in a class's round-robin place: the longer-waiting row first).
              .order_by(Notification.priority, Notification.fair_key, Notification.next_attempt_at,
                        Notification.id))
    if channel is not None:
        expired = expired.where(Notification.channel == channel)
        queued = queued.where(Notification.channel == channel)
    return [expired, queued]


def claim(session, *, limit: int, settings: Settings, now: datetime, channel: str | None = None,
          set_aside: dict | None = None) -> tuple[list[int], datetime, int]:
    """Lease up to `limit` due rows (of `channel`, or of any) in priority order and commit; returns (ids to
    send now, in that order; their lease; how many rows were taken in all, including those suppressed or
    held for quiet hours).

    Two workers can never both claim a row: on PostgreSQL the rows are picked with FOR UPDATE SKIP LOCKED
    (another worker's picks are skipped, not waited for), then leased by id; on SQLite each pick is one
    UPDATE ... RETURNING (SQLite runs one writer at a time). In the same transaction, opted-out rows are
    suppressed and SMS inside quiet hours are put back until the window ends (neither is sent); when given,
    `set_aside` is filled with how many of each, by channel ({("sms", "suppressed"): 2, ("sms", "held"): 5})."""
    lease = now + timedelta(seconds=settings.lease_seconds)
    postgres = session.get_bind().dialect.name == "postgresql"
    lease_them = (sa.update(Notification)
                  .values(status=NotificationStatus.SENDING, lease_until=lease,
                          attempts=Notification.attempts + 1, updated_at=now)
                  .returning(Notification.id, Notification.priority, Notification.fair_key)
                  .execution_options(synchronize_session=False))
    rows = []
    for pick in _picks(channel, now):
        want = limit - len(rows)
        if want <= 0:
            break
        if postgres:
            chosen = list(session.scalars(pick.limit(want).with_for_update(skip_locked=True)))
            if not chosen:
                continue
            # Locked, so still due; the re-check costs nothing (the rows are found by primary key).
            rows += session.execute(lease_them.where(Notification.id.in_(chosen), _due(now))).all()
        else:
            # One statement under SQLite's write lock: nothing can change between the pick and the lease.
            # (A re-check here made SQLite read every due row through ix_notifications_due: 200 ms, holding
            # the write lock, with a 1,000,000-message backlog.)
            picked = pick.limit(want).scalar_subquery()
            rows += session.execute(lease_them.where(Notification.id.in_(picked))).all()
    if not rows:
        session.commit()
        return [], lease, 0
    order = {r.id: (r.priority, r.fair_key, r.id) for r in rows}
    ids = _triage(session, [r.id for r in rows], settings=settings, now=now, set_aside=set_aside)
    session.commit()
    return sorted(ids, key=order.__getitem__), lease, len(rows)


def _triage(session, ids: list[int], *, settings: Settings, now: datetime,
            set_aside: dict | None = None) -> list[int]:
    """Suppress opted-out rows and push back quiet-hours SMS among the claimed `ids`; return the rest."""
    rows = session.execute(
        sa.select(Notification.id, Notification.channel, Notification.recipient, Notification.urgent,
                  Account.time_zone, Account.sms_opt_out, Account.email_opt_out, OptOut.id.label("opt_out_id"))
        .outerjoin(Account, Account.id == Notification.account_id)
        .outerjoin(OptOut, sa.and_(OptOut.channel == Notification.channel, OptOut.address == Notification.recipient))
        .where(Notification.id.in_(ids))).all()
    erased = _erased_opt_outs(session, rows, settings.secret_key)
    suppressed, later, send = [], [], []
    for row in rows:
        opted = row.opt_out_id is not None or (row.channel == Channel.SMS and row.sms_opt_out) \
            or (row.channel == Channel.EMAIL and row.email_opt_out) or row.id in erased
        until = None
        if row.channel == Channel.SMS and not row.urgent and settings.quiet:
            local = row.time_zone or quiet_hours.zone_of_number(row.recipient)  # a subscriber has no account
            until = quiet_hours.quiet_until(now, settings.quiet, quiet_hours.zone(local, settings.fallback_zone))
        if opted:
            suppressed.append(row.id)
        elif until is not None:
            later.append({"id": row.id, "next_attempt_at": until})
        else:
            send.append(row.id)
            continue
        if set_aside is not None:
            what = (Channel(row.channel).value, "suppressed" if opted else "held")
            set_aside[what] = set_aside.get(what, 0) + 1
    if suppressed:
        session.execute(sa.update(Notification).where(Notification.id.in_(suppressed)).values(
            status=NotificationStatus.SUPPRESSED, lease_until=None, error_code=SUPPRESSED_CODE,
            error_message="The address has opted out of this channel; not sent.", updated_at=now)
            .execution_options(synchronize_session=False))
        _mask_stored(session, suppressed)
    if later:
        # Not an attempt: give the attempt back, and wait for the end of the quiet window.
        table = Notification.__table__  # Core, for one executemany with a per-row next_attempt_at
        session.execute(table.update().where(table.c.id == sa.bindparam("b_id")).values(
            status=NotificationStatus.QUEUED, lease_until=None, attempts=table.c.attempts - 1,
            next_attempt_at=sa.bindparam("b_next"), updated_at=now),
            [{"b_id": r["id"], "b_next": r["next_attempt_at"]} for r in later])
    events = [{"notification_id": i, "at": now, "status": NotificationStatus.SUPPRESSED.value, "source": "opt_out",
               "error_code": SUPPRESSED_CODE, "error_message": "The address has opted out of this channel."}
              for i in suppressed]
    events += [{"notification_id": r["id"], "at": now, "status": NotificationStatus.QUEUED.value,
                "source": "quiet_hours", "error_code": None,
                "error_message": f"Held for quiet hours until {r['next_attempt_at']:%Y-%m-%d %H:%M} UTC."}
               for r in later]
    if events:
        session.execute(NotificationEvent.__table__.insert(), [{"payload": None, **e} for e in events])
    return send


def _erased_opt_outs(session, rows, key: bytes) -> set[int]:
    """The ids of `rows` whose address opted out before its subscriber was erased (accounts.erasure): such an
    opt-out keeps only a keyed hash of the address (optouts.erased_hash). One indexed read per claim."""
    if not key or not rows:
        return set()
    hashes = {optouts.erased_hash(key, Channel(r.channel).value, r.recipient): r.id for r in rows if r.recipient}
    if not hashes:
        return set()
    found = session.scalars(sa.select(OptOut.address).where(OptOut.address.in_(list(hashes))))
    return {hashes[h] for h in found}


def _mask_stored(session, ids: list[int]) -> None:
    """Mask the secrets in texts queued with their body (verification codes) that will now never be sent."""
    table = Notification.__table__
    for row in session.execute(sa.select(table.c.id, table.c.body, table.c.html_body, table.c.template)
                               .where(table.c.id.in_(ids), table.c.body.is_not(None))):
        masked = {c: masking.mask(getattr(row, c), template=row.template) for c in ("body", "html_body")}
        if masked != {"body": row.body, "html_body": row.html_body}:
            session.execute(table.update().where(table.c.id == row.id).values(**masked))


class Worker:
    """Claims and sends with bounded concurrency; `run` loops until stopped, or once through what is due."""

    def __init__(self, app, engine, providers: dict[str, Provider], settings: Settings, *, clock=utcnow,
                 jitter=random.random):
        self.app, self.providers, self.settings, self.clock, self.jitter = app, providers, settings, clock, jitter
        self.Session = sessionmaker(bind=engine, expire_on_commit=False)
        # Per channel, one budget shared with every other worker through the database (no two processes
        # together exceed the provider's limit), then this process's own hard cap on what it lets go in any
        # window (exact whatever the wake-ups, as one worker alone always was: notifications.pacing).
        # A rate of 0 means the provider sets no limit: nothing is paced.
        rates = {"sms": settings.sms_rate, "email": settings.email_rate}
        self.limiters = {channel: (SharedBudget(engine, f"{channel}:{_sender(providers.get(channel))}", rate,
                                                margin=settings.pacing_margin),
                                   RateLimiter(rate, margin=settings.pacing_margin)) if rate > 0 else ()
                         for channel, rate in rates.items()}
        self.stop = threading.Event()
        self._recorder: _Recorder | None = None  # while running: writes outcomes in batches
        self._opted_out: set[tuple[str, str]] = set()  # (channel, address) opted out at the provider meanwhile
        # Set by signal handlers (request_stop): a plain flag, because a handler runs on the main thread
        # between two bytecodes and must not take a lock that thread may hold, such as stop's own.
        self._stop_requested = False
        self.telemetry = telemetry.for_app(app, engine)  # sends by outcome and provider latency, for /metrics
        self.providers = self.telemetry.timed(providers)
        # Outbound webhooks have their own outbox (notifications.outbound): drained beside the messages.
        self.webhooks = Deliverer.from_config(app.config, engine, clock=clock)
        # A large send's staged messages are moved into the outbox beside the sends (notifications.staging).
        self.expander = staging.Expander(self.Session)

    def request_stop(self) -> None:
        """Finish the sends in flight, then stop. Safe in a signal handler: it takes no lock (Event.set from a
        handler deadlocks when the signal lands while the main thread is inside stop.wait); the main loop
        notices within a poll interval and sets `stop` for every thread."""
        self._stop_requested = True

    def claim(self, limit: int, channel: str | None = None) -> tuple[list[int], datetime, int]:
        with self.Session() as session:
            return claim(session, limit=limit, settings=self.settings, now=self.clock(), channel=channel)

    def claim_rows(self, limit: int, channel: str) -> tuple[list[Notification], datetime, int]:
        """Claim, and load the claimed rows in one more round trip (not one per message: that read was a
        third of a sender's time)."""
        set_aside: dict = {}
        with self.Session() as session:
            ids, lease, taken = claim(session, limit=limit, settings=self.settings, now=self.clock(),
                                      channel=channel, set_aside=set_aside)
            if set_aside:
                self.telemetry.set_aside(set_aside)
            if not ids:
                return [], lease, taken
            rows = {n.id: n for n in session.scalars(sa.select(Notification).where(Notification.id.in_(ids)))}
            session.commit()
        return [rows[i] for i in ids if i in rows], lease, taken

    def run(self, *, once: bool = False) -> int:
        """Send until `self.stop` is set (in-flight sends finish first), or until nothing is due when `once`."""
        self._warm_up()
        self.telemetry.start(heartbeat=not once)
        periodic = None
        if not once and self.settings.periodic_interval > 0:
            periodic = threading.Thread(target=self._periodic, name="notifier-periodic", daemon=True)
            periodic.start()
        hooks = expander = None
        if not once:
            hooks = threading.Thread(target=self._webhooks, name="notifier-webhooks", daemon=True)
            hooks.start()
            expander = threading.Thread(target=self._expand, name="notifier-expander", daemon=True)
            expander.start()
        else:
            self._move_staged(drain=True)  # what a large send staged is due now too
        try:
            # A pool of senders per channel: a slow channel never takes another's threads. The recorder
            # closes after the pools, so every send's outcome is written before run returns.
            self._recorder = _Recorder(self)
            try:
                with contextlib.ExitStack() as stack:
                    pools = {channel: stack.enter_context(ThreadPoolExecutor(
                        max_workers=self.settings.concurrency, thread_name_prefix=f"notifier-{channel}"))
                        for channel in self.providers}
                    attempted = self._loop(pools, once=once)
            finally:
                self._recorder.close()
                self._recorder = None
            if once:  # after the recorder, so the message.failed events it wrote go out too
                self._deliver_webhooks()
            return attempted
        finally:
            if hooks is not None:
                self.stop.set()
                hooks.join(timeout=self.webhooks.timeout + 5)  # a send in flight ends within its time cap
            if expander is not None:
                self.stop.set()
                expander.join(timeout=30)  # a batch is one short transaction; one cut off rolls back whole
            if periodic is not None:
                self.stop.set()
                # A task in the middle of a long pass is left to its transaction: it rolls back, and its lease
                # lets the next worker run it again. Stopping must not wait for it.
                periodic.join(timeout=5)
            for provider in self.providers.values():  # e.g. SMTP connections kept open between sends
                close = getattr(provider, "close", None)
                if close is not None:
                    try:
                        close()
                    except Exception:
                        log.warning("notifier: closing provider %s failed", provider, exc_info=True)
            self.telemetry.close()

    def _warm_up(self) -> None:
        """Load now what the first sends would load lazily (the providers' clients): an import holds
        the interpreter for tens of milliseconds, and sends paced 10 ms apart would bunch up behind it."""
        for provider in self.providers.values():
            warm_up = getattr(provider, "warm_up", None)
            if warm_up is not None:
                try:
                    warm_up()
                except Exception:
                    log.warning("notifier: warming up provider %s failed", provider, exc_info=True)

    def _periodic(self) -> None:
        """Run the due periodic tasks (offer expiry and reminders, pruning: core.periodic) every little while,
        beside the sends, until stopped. Each task is claimed in the database, so with several workers each
        due run still happens once; a failing task is recorded there and never stops the worker."""
        while not self.stop.is_set():
            try:
                with self.app.app_context():
                    run_due_tasks(now=self.clock())
                    db.session.remove()
            except Exception:
                log.exception("notifier: periodic tasks failed; trying again later")
            self.stop.wait(self.settings.periodic_interval)

    def _deliver_webhooks(self) -> int:
        """Attempt the due webhook deliveries; a failure is logged, never stops the worker."""
        try:
            return self.webhooks.run_once()
        except Exception:
            log.exception("notifier: webhook deliveries failed; trying again later")
            return 0

    def _move_staged(self, *, drain: bool = False) -> int | None:
        """Move one batch of staged messages into the outbox (all of them when `drain`); returns the rows
        moved, None when nothing waits. A failure is logged and never stops the worker (the batch rolled back
        stays staged)."""
        try:
            return self.expander.drain() if drain else self.expander.step()
        except Exception:
            log.exception("notifier: moving staged messages into the outbox failed; trying again later")
            return None

    def _expand(self) -> None:
        """Move staged messages batch after batch while there are any, then look every poll interval."""
        while not self.stop.is_set():
            if self._move_staged() is None:
                self.stop.wait(self.settings.poll_interval)

    def _webhooks(self) -> None:
        """Drain the webhook outbox every poll interval until stopped (at once again while batches are full)."""
        while not self.stop.is_set():
            if self._deliver_webhooks() < self.webhooks.batch:
                self.stop.wait(self.settings.poll_interval)

    def _loop(self, pools: dict, *, once: bool) -> int:
        """Claim per channel, so a backlog on one channel never holds up another: each channel has
        `concurrency` senders, and at most two claimed rows per sender (enough to keep them busy, few
        enough that a crash strands little and no row waits long for the budget while its lease runs).
        A channel claims again once half of its rows are done, so a claim takes several rows at a time."""
        attempted = 0
        inflight: dict[str, set] = {channel: set() for channel in self.providers}
        idle_until = {channel: 0.0 for channel in self.providers}  # a channel found empty is asked again later
        window = 2 * self.settings.concurrency
        while True:
            if self._stop_requested and not self.stop.is_set():
                log.info("notifier stopping: finishing the sends in flight (%d)",
                         sum(len(f) for f in inflight.values()))
                self.stop.set()
            taken = 0
            # Outcomes not yet written are in flight too: their rows are still leased, and a backlog there
            # (a slow database) must stop the claims, not grow what a crash would send twice. Up to a window
            # of them is the recorder's normal pace (it gathers a batch for a few milliseconds).
            unwritten = self._recorder.pending() if self._recorder is not None else 0
            held_back = False
            for channel, futures in inflight.items():
                if self.stop.is_set() or (idle_until[channel] > time.monotonic() and not once):
                    continue
                if len(futures) > self.settings.concurrency or unwritten > window:
                    held_back = held_back or not futures  # nothing of this channel to wait for: poll soon
                    continue
                try:
                    messages, lease, n = self.claim_rows(window - len(futures), channel)
                except sa.exc.OperationalError:
                    if once:
                        raise
                    log.exception("notifier: claim failed; trying again shortly")
                    self.stop.wait(self.settings.poll_interval)
                    continue
                futures |= {pools[channel].submit(self.send_one, m, lease) for m in messages}
                attempted += len(messages)
                taken += n
                idle_until[channel] = 0.0 if n else time.monotonic() + self.settings.poll_interval
            pending = set().union(*inflight.values())
            if not pending:
                if taken:  # all held for quiet hours or suppressed: more may be due right behind them
                    continue
                if held_back:  # waiting for the recorder to write what was sent, not for new work
                    self.stop.wait(0.01)
                    continue
                if self.stop.is_set() or once:
                    return attempted
                self.stop.wait(self.settings.poll_interval)
                idle_until = dict.fromkeys(idle_until, 0.0)  # waited a poll interval: ask every channel
                continue
            done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in done:
                if future.exception() is not None:
                    log.error("notifier: send failed unexpectedly", exc_info=future.exception())
            for futures in inflight.values():
                futures -= done

    def send_one(self, message: Notification, lease: datetime) -> str:
        """Send one leased row (loaded with its claim) and record the outcome; returns the status recorded."""
        notification_id = message.id
        with self.app.app_context():
            # The claim suppressed rows to opted-out addresses; an opt-out this process learnt since (a 21610
            # from the provider for an earlier message to the same number) is checked here.
            if (message.channel.value, message.recipient) in self._opted_out:
                return self._finish(message, lease, status=NotificationStatus.SUPPRESSED, error_code=SUPPRESSED_CODE,
                                    error_message="The address has opted out of this channel; not sent.")
            try:
                _render(message)
                # Rendering may issue a personal link (accounts.links): it must exist before the message does.
                db.session.commit()
            except sa.exc.OperationalError:  # the database, not the template: try again later, unsent
                db.session.rollback()
                log.warning("notifier: rendering notification %s could not be saved; given back",
                            notification_id, exc_info=True)
                return self._finish(message, lease, status=NotificationStatus.QUEUED,
                                    attempts=Notification.__table__.c.attempts - 1)
            except Exception as e:  # a template bug fails this row, not the worker
                db.session.rollback()
                log.exception("notifier: cannot render notification %s", notification_id)
                text = f"Could not render the message: {e}"[:500]
                return self._finish(message, lease, status=NotificationStatus.FAILED, error_code="render",
                                    error_message=text, then=_tell_failed(message, "render", text))
            # No connection or transaction is held during the provider call.
            channel = message.channel.value
            limiter, units = self.limiters[channel], (message.segments if channel == "sms" else 1)

            def pace():
                try:
                    for gate in limiter:
                        gate.acquire(units)
                except sa.exc.DBAPIError:  # the shared budget could not be read: nothing went out
                    log.warning("notifier: send budget unavailable; notification %s given back unsent",
                                notification_id, exc_info=True)
                    raise NotSent from None
                if (lease - self.clock()).total_seconds() < self.settings.lease_seconds / 3:
                    # Waited so long for the rate limiter that the lease could run out mid-send and another
                    # worker resend it: give the row back unsent instead (very low rates, many senders).
                    raise NotSent

            provider = self.providers[channel]
            try:
                if getattr(provider, "paces_requests", False):
                    sent = provider.send(message, pace=pace)  # paced as the request leaves
                else:
                    pace()
                    sent = provider.send(message)
            except NotSent:
                return self._finish(message, lease, status=NotificationStatus.QUEUED,
                                    attempts=Notification.__table__.c.attempts - 1)
            except ProviderError as e:
                return self._failed(message, lease, e)
            except Exception as e:  # we cannot tell whether the provider got it: do not resend blindly
                log.exception("notifier: unexpected error sending notification %s", notification_id)
                text = _ambiguous_text(f"{type(e).__name__}: {e}")
                return self._finish(message, lease, status=NotificationStatus.FAILED, error_code=AMBIGUOUS,
                                    error_message=text, then=_tell_failed(message, AMBIGUOUS, text))
            return self._finish(message, lease, status=NotificationStatus.SENT, provider=provider.name,
                                provider_id=sent.provider_id, sent_at=self.clock(), error_code=None,
                                error_message=None, segments=getattr(sent, "segments", None) or message.segments,
                                payload=getattr(sent, "raw", None))

    def _failed(self, message: Notification, lease: datetime, e: ProviderError) -> str:
        code, text = str(e.code), (e.message or "")[:500]
        payload = getattr(e, "raw", None)  # the provider's answer, for the message's status history
        if getattr(e, "ambiguous", False):
            text = _ambiguous_text(f"{code}: {text}")
            return self._finish(message, lease, status=NotificationStatus.FAILED, error_code=AMBIGUOUS,
                                error_message=text, then=_tell_failed(message, AMBIGUOUS, text), payload=payload)
        if getattr(e, "opt_out", False) or code in OPT_OUT_CODES:
            source = f"{self.providers[message.channel.value].name}:{code}"
            self._opted_out.add((message.channel.value, message.recipient))
            return self._finish(message, lease, status=NotificationStatus.SUPPRESSED, error_code=code,
                                error_message=text, then=lambda s: _record_opt_out(s, message, source),
                                at_once=True, payload=payload)
        if e.retryable and message.attempts < self.settings.max_attempts:
            delay = min(self.settings.backoff_cap, self.settings.backoff_base * 2 ** max(message.attempts - 1, 0))
            delay *= 0.5 + self.jitter()  # jitter, so a provider outage does not end in a thundering herd
            return self._finish(message, lease, status=NotificationStatus.QUEUED, error_code=code,
                                error_message=text, next_attempt_at=self.clock() + timedelta(seconds=delay),
                                payload=payload)
        return self._finish(message, lease, status=NotificationStatus.FAILED, error_code=code, error_message=text,
                            then=_tell_failed(message, code, text), payload=payload)

    def _finish(self, message: Notification, lease: datetime, *, then=None, at_once: bool = False,
                **values) -> str:
        """Record the outcome, only while the lease is still ours: handed to the recorder thread while the
        worker runs (the sender goes on to its next message); written before returning when `at_once` (an
        opt-out the next sends must see) or when the worker is not running."""
        if message.body is not None and values["status"] is not NotificationStatus.QUEUED:
            # Keep what was sent, for the message log, without its live secrets (notifications.masking): the
            # links issued while rendering it are known by id. A row given back to try later keeps what it
            # had: a text rendered at send time is rendered again then (with a fresh link).
            known = db.session.info.get(masking.ISSUED) if has_app_context() else None
            values.update(subject=message.subject,
                          body=masking.mask(message.body, known, template=message.template),
                          html_body=masking.mask(message.html_body, known, template=message.template))
        event = {"status": values["status"].value, "source": values.pop("source", "worker"),
                 "payload": values.pop("payload", None)}
        values.update(lease_until=None, updated_at=self.clock())
        self.telemetry.finished(message, values)
        outcome = (message.id, lease, values, then, event)
        if self._recorder is not None and not at_once:
            self._recorder.put(outcome)
            return values["status"].value
        return "lost" if self._record([outcome]) else values["status"].value

    def _record(self, outcomes: list) -> int:
        """Write outcomes in one transaction; if that fails for another reason than the database being
        unreachable, each in its own, so one bad row cannot keep the others from being recorded. Returns
        how many were not recorded (the lease was no longer ours, or writing failed)."""
        try:
            return self._write(outcomes)
        except Exception:
            if len(outcomes) == 1:
                log.exception("notifier: recording notification %s failed", outcomes[0][0])
                return 1
            log.warning("notifier: recording %d outcomes together failed; one by one", len(outcomes),
                        exc_info=True)
            return sum(self._record([outcome]) for outcome in outcomes)

    def _write(self, outcomes: list) -> int:
        for attempt in range(3):  # a lost result means a resend later: try hard to record it
            try:
                with self.Session() as session, session.begin():
                    return self._write_in(session, outcomes)
            except sa.exc.OperationalError:
                if attempt == 2:
                    raise
                log.warning("notifier: recording %d outcome(s) failed; retrying", len(outcomes), exc_info=True)
                self.stop.wait(0.5 * (attempt + 1))

    def _write_in(self, session, outcomes: list) -> int:
        """The outcomes whose rows are still leased as claimed are written; the others are lost (the lease ran
        out and another worker took the row). The rows still ours are found and locked in one statement; the
        outcomes that set the same columns to plain values (every sent one) are then written in one
        executemany, and the rest one by one. A statement per message, each compiled and sent on its own, was
        the larger part of the recorder's time."""
        table = Notification.__table__
        by_lease: dict = {}
        for notification_id, lease, _values, _then, _event in outcomes:
            by_lease.setdefault(lease, []).append(notification_id)
        ours = set(session.scalars(
            sa.select(table.c.id)
            .where(table.c.status == NotificationStatus.SENDING,
                   sa.or_(*(sa.and_(table.c.id.in_(ids), table.c.lease_until == lease)
                            for lease, ids in by_lease.items())))
            .order_by(table.c.id).with_for_update()))  # in id order: two recorders cannot deadlock
        lost, sent, together, events = 0, {}, {}, []
        for notification_id, lease, values, then, event in outcomes:
            if notification_id not in ours:
                lost += 1
                self.telemetry.lost(notification_id)
                log.warning("notifier: lease on notification %s lost; outcome %s not recorded",
                            notification_id, values["status"])
                continue
            if then is None and not any(isinstance(v, sa.ClauseElement) for v in values.values()):
                together.setdefault(tuple(sorted(values)), []).append({"b_id": notification_id, **{
                    f"b_{k}": v for k, v in values.items()}})
            else:
                session.execute(table.update().where(table.c.id == notification_id).values(**values))
                if then:
                    then(session)
            if values["status"] == NotificationStatus.SENT and values.get("provider_id"):
                sent[values["provider_id"]] = notification_id
            events.append({**event, "notification_id": notification_id, "at": values["updated_at"],
                           "error_code": values.get("error_code"), "error_message": values.get("error_message")})
        for columns, rows in together.items():
            session.execute(table.update().where(table.c.id == sa.bindparam("b_id"))
                            .values({c: sa.bindparam(f"b_{c}") for c in columns}), rows)
        if events:  # the status history, in the same transaction as the outcomes
            session.execute(NotificationEvent.__table__.insert(), events)
        # A delivery receipt may have beaten us to it (Twilio calls back within milliseconds): apply it now,
        # in the transaction that records the provider's ids (notifications.receipts).
        if sent:
            receipts.apply_early_many(session, sent)
        return lost


class _Recorder:
    """One thread that writes the senders' outcomes, as many per transaction as have piled up since the last
    one. A commit per message was the worker's largest cost; a sender now hands its outcome over and goes on.
    An outcome waiting here when the process is killed is like a send in flight: its row is still leased,
    and is sent again once the lease runs out."""

    BATCH = 200
    # After the first outcome, how long to wait for more before writing: a batch costs about the same few
    # statements whatever its size, and senders finish a few milliseconds apart.
    LINGER = 0.005

    def __init__(self, worker: "Worker"):
        self.worker = worker
        self.outcomes: queue.SimpleQueue = queue.SimpleQueue()
        self._pending, self._lock = 0, threading.Lock()
        self.thread = threading.Thread(target=self._run, name="notifier-recorder", daemon=True)
        self.thread.start()

    def put(self, outcome) -> None:
        with self._lock:
            self._pending += 1
        self.outcomes.put(outcome)

    def pending(self) -> int:
        """Outcomes handed over and not yet written."""
        return self._pending

    def close(self) -> None:
        """Write what is left, then stop."""
        self.outcomes.put(None)
        self.thread.join()

    def _run(self) -> None:
        while True:
            first = self.outcomes.get()
            if first is None:
                return
            batch, closing = [first], False
            until = time.monotonic() + self.LINGER
            while len(batch) < self.BATCH:
                try:
                    outcome = self.outcomes.get(timeout=max(until - time.monotonic(), 0))
                except queue.Empty:
                    break
                if outcome is None:
                    closing = True
                    break
                batch.append(outcome)
            self.worker._record(batch)
            with self._lock:
                self._pending -= len(batch)
            if closing:
                return


def _sender(provider) -> str:
    """What the provider's limit applies to: the Twilio messaging service or number, the SMTP host, or the
    provider's name (so two configurations with different senders keep separate budgets)."""
    for attribute in ("messaging_service_sid", "from_number", "host"):
        value = getattr(provider, attribute, None)
        if value:
            return str(value)
    return getattr(provider, "name", "default")


def _tell_failed(message: Notification, error_code: str, error_message: str):
    """The recorder's follow-up for a message that failed for good: the message.failed webhook event, queued in
    the transaction that records the failure (so only a failure that was recorded is told)."""
    return lambda session: service.tell_failed(session, message, error_code=error_code, error_message=error_message)


def _render(message: Notification) -> None:
    """Fill subject/body/html_body of a row queued without a body, and its SMS segments."""
    if message.body is None:
        try:
            from notifications.templates import render
        except ImportError:
            raise RuntimeError("the row has no body and notifications.templates is not available") from None
        rendered = render(message)
        message.subject = rendered.subject or message.subject or ""
        message.body, message.html_body = rendered.body, rendered.html_body
    if message.channel == Channel.SMS:
        message.segments = sms_segments(message.body or "")


def _ambiguous_text(detail: str) -> str:
    return (f"No answer after the request was sent ({detail}); the message may have been delivered, so it was "
            "not resent. Retry it explicitly if it did not arrive.")[:500]


def _record_opt_out(session, message: Notification, source: str) -> None:
    try:
        optouts.opt_out(session, message.channel.value, message.recipient, source)
        return
    except Exception:  # an address optouts cannot normalise: record it as it is
        log.warning("notifier: optouts.opt_out refused %r", message.recipient, exc_info=True)
    if session.scalar(sa.select(OptOut.id).where(OptOut.channel == message.channel,
                                                 OptOut.address == message.recipient)) is None:
        session.add(OptOut(channel=message.channel, address=message.recipient, source=source[:64],
                           created_at=utcnow()))


def build(app, *, providers: dict[str, Provider] | None = None, clock=utcnow, engine=None, **overrides) -> Worker:
    """A Worker for `app`, with its configured providers and settings (keyword overrides win)."""
    return Worker(app, engine if engine is not None else db.engine,
                  providers or providers_from_config(app.config), Settings.from_config(app.config, **overrides),
                  clock=clock)


def run_once(session=None, *, providers: dict[str, Provider] | None = None, clock=utcnow, **overrides) -> int:
    """Send every message due now and return how many were attempted (claimed to send)."""
    from flask import current_app

    app = current_app._get_current_object()
    engine = session.get_bind() if session is not None else db.engine
    attempted = build(app, providers=providers, clock=clock, engine=engine, **overrides).run(once=True)
    if session is not None:
        session.expire_all()  # the rows were updated through the worker's own sessions: reload on next access
    return attempted
