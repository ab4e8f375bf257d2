"""Quiet hours: the window, local time, the fallback zone, and the worker holding night-time SMS."""
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from accounts.models import Account
from core.db import db
from notifications import quiet_hours, service, worker
from notifications.models import Channel, Notification, NotificationStatus
from notifications.providers import Sent


def utc(*args):
    return datetime(*args, tzinfo=timezone.utc)


def test_the_window_is_parsed_and_empty_turns_it_off():
    window = quiet_hours.parse("21:00-08:00")
    assert (window.start.hour, window.end.hour) == (21, 8)
    assert quiet_hours.parse("") is None and quiet_hours.parse(None) is None
    for bad in ("9pm-8am", "21:00", "21:00-21:00"):
        with pytest.raises(ValueError):
            quiet_hours.parse(bad)


def test_a_window_across_midnight_ends_the_next_morning_in_local_time():
    window = quiet_hours.parse("21:00-08:00")
    new_york = ZoneInfo("America/New_York")
    # 02:30 UTC on 15 Jan = 21:30 in New York (UTC-5): quiet until 08:00 New York = 13:00 UTC.
    assert quiet_hours.quiet_until(utc(2026, 1, 15, 2, 30), window, new_york) == utc(2026, 1, 15, 13, 0)
    # 06:00 New York, same morning: quiet until 08:00 that morning.
    assert quiet_hours.quiet_until(utc(2026, 1, 15, 11, 0), window, new_york) == utc(2026, 1, 15, 13, 0)
    # 08:00 and midday are daytime.
    assert quiet_hours.quiet_until(utc(2026, 1, 15, 13, 0), window, new_york) is None
    assert quiet_hours.quiet_until(utc(2026, 1, 15, 17, 0), window, new_york) is None


def test_a_window_within_one_day_works_too():
    window = quiet_hours.parse("12:00-13:30")
    assert quiet_hours.quiet_until(utc(2026, 6, 1, 12, 15), window, ZoneInfo("UTC")) == utc(2026, 6, 1, 13, 30)
    assert quiet_hours.quiet_until(utc(2026, 6, 1, 11, 59), window, ZoneInfo("UTC")) is None


def test_the_end_of_the_window_follows_daylight_saving_time():
    window = quiet_hours.parse("21:00-08:00")
    # 8 March 2026: New York moves to UTC-4 at 02:00; 08:00 that morning is 12:00 UTC.
    assert quiet_hours.quiet_until(utc(2026, 3, 8, 3, 0), window, ZoneInfo("America/New_York")) == \
        utc(2026, 3, 8, 12, 0)


def test_an_unknown_or_missing_zone_falls_back_to_the_page_zone_then_utc():
    assert quiet_hours.zone("Europe/Madrid") == ZoneInfo("Europe/Madrid")
    assert quiet_hours.zone("Mars/Olympus", "America/Chicago") == ZoneInfo("America/Chicago")
    assert quiet_hours.zone(None, "America/Chicago") == ZoneInfo("America/Chicago")
    assert quiet_hours.zone("nonsense", "also nonsense") == ZoneInfo("UTC")


# ---- in the worker ----------------------------------------------------------------------------------

class Recording:
    name = "rec"

    def __init__(self):
        self.sent = []

    def send(self, message):
        self.sent.append(message.recipient)
        return Sent(provider_id=f"rec-{message.id}")


def test_the_worker_holds_non_urgent_sms_until_8_local_while_urgent_sms_and_email_go_now(app):
    new_york = Account(account_number="NY", phone="+12125550100", email="ny@example.com",
                       time_zone="America/New_York")
    madrid = Account(account_number="MAD", phone="+34600000001", time_zone="Europe/Madrid")
    nowhere = Account(account_number="X", phone="+12065550100", time_zone="Mars/Olympus")
    db.session.add_all([new_york, madrid, nowhere])
    db.session.commit()

    def queue(key, account, channel=Channel.SMS, **kw):
        recipient = account.email if channel == Channel.EMAIL else account.phone
        n = service.enqueue(db.session, dedupe_key=key, channel=channel, recipient=recipient, body=key,
                            account_id=account.id, **kw)
        n.next_attempt_at = utc(2026, 1, 14)
        return n

    sms = queue("sms", new_york)
    urgent = queue("urgent", new_york, urgent=True)
    mail = queue("mail", new_york, channel=Channel.EMAIL)
    daytime = queue("madrid", madrid)
    fallback = queue("fallback", nowhere)
    db.session.commit()
    provider = Recording()
    # 02:30 UTC: 21:30 the evening before in New York, 03:30 in Madrid, 20:30 in Chicago (the page's zone).
    app.config.update(QUIET_HOURS="21:00-08:00", PAGE_TIME_ZONE="America/Chicago")
    clock = lambda: utc(2026, 1, 15, 2, 30)  # noqa: E731
    w = worker.build(app, providers={"sms": provider, "email": provider}, clock=clock)
    assert w.run(once=True) == 3
    assert sorted(provider.sent) == sorted(["+12125550100", "ny@example.com", "+12065550100"])
    db.session.expire_all()
    assert db.session.get(Notification, urgent.id).status == NotificationStatus.SENT
    assert db.session.get(Notification, mail.id).status == NotificationStatus.SENT
    # An unknown zone falls back to PAGE_TIME_ZONE: 20:30 in Chicago is not quiet yet.
    assert db.session.get(Notification, fallback.id).status == NotificationStatus.SENT
    held = db.session.get(Notification, sms.id)
    assert (held.status, held.attempts, held.lease_until) == (NotificationStatus.QUEUED, 0, None)
    assert held.next_attempt_at == utc(2026, 1, 15, 13, 0)  # 08:00 in New York
    assert db.session.get(Notification, daytime.id).next_attempt_at == utc(2026, 1, 15, 7, 0)  # 08:00 Madrid


def test_an_empty_quiet_hours_setting_sends_sms_at_night(app):
    account = Account(account_number="NY", phone="+12125550100", time_zone="America/New_York")
    db.session.add(account)
    db.session.commit()
    service.enqueue(db.session, dedupe_key="a", channel=Channel.SMS, recipient=account.phone, body="a",
                    account_id=account.id).next_attempt_at = utc(2026, 1, 14)
    db.session.commit()
    provider = Recording()
    app.config.update(QUIET_HOURS="")
    worker.build(app, providers={"sms": provider, "email": provider},
                 clock=lambda: utc(2026, 1, 15, 2, 30)).run(once=True)
    assert provider.sent == ["+12125550100"]


def test_sms_to_nobodys_account_follows_the_numbers_zone(app):
    """A status-page subscriber has no account: the number's zone decides (New York is at night, Seattle is
    not), not PAGE_TIME_ZONE."""
    assert quiet_hours.zone_of_number("+12125550100") == "America/New_York"
    assert quiet_hours.zone_of_number("+34600000001") in ("Europe/Madrid", "Atlantic/Canary")  # the plan lists both
    assert quiet_hours.zone_of_number("not a number") is None
    rows = [service.enqueue(db.session, dedupe_key=to, channel=Channel.SMS, recipient=to, body="update")
            for to in ("+12125550177", "+12065550177")]
    for n in rows:
        n.next_attempt_at = utc(2026, 1, 14)
    db.session.commit()
    provider = Recording()
    app.config.update(QUIET_HOURS="21:00-08:00", PAGE_TIME_ZONE="America/Los_Angeles")
    worker.build(app, providers={"sms": provider, "email": provider},
                 clock=lambda: utc(2026, 1, 15, 2, 30)).run(once=True)  # 21:30 in New York, 18:30 in Seattle
    assert provider.sent == ["+12065550177"]
    db.session.expire_all()
    assert db.session.get(Notification, rows[0].id).next_attempt_at == utc(2026, 1, 15, 13, 0)
