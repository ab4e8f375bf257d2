"""Quiet hours: SMS that is not urgent waits for daytime in the subscriber's time zone.

QUIET_HOURS is "HH:MM-HH:MM" in local time (default "21:00-08:00", may span midnight); empty turns it off."""
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from typing import Callable
from zoneinfo import ZoneInfo

from core.i18n import zone  # noqa: F401  (the subscriber's zone, falling back to PAGE_TIME_ZONE, then UTC)

_zone_resolver: Callable[[str], str | None] | None = None


def register_zone_resolver(resolver: Callable[[str], str | None]) -> None:
    """`resolver(e164)` -> the number's time zone or None (accounts.contact.time_zone_for knows numbering plans):
    used for SMS to nobody's account (a status-page subscriber), so quiet hours follow the number, not
    PAGE_TIME_ZONE."""
    global _zone_resolver
    _zone_resolver = resolver


def zone_of_number(e164: str | None) -> str | None:
    """The registered resolver's zone for a number; None without one, or when the plan does not say."""
    if not e164 or _zone_resolver is None:
        return None
    try:
        return _zone_resolver(e164)
    except ValueError:  # not a number the plan knows (accounts.contact.ContactError is one)
        return None


@dataclass(frozen=True)
class Window:
    start: time
    end: time

    def contains(self, local: time) -> bool:
        """Whether a local wall-clock time falls inside the window (start inclusive, end exclusive)."""
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end  # spans midnight


def parse(text: str | None) -> Window | None:
    """Window from "21:00-08:00"; None when empty; ValueError on anything else."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        start, end = (time.fromisoformat(part.strip()) for part in text.split("-"))
    except ValueError:
        raise ValueError(f"QUIET_HOURS must look like 21:00-08:00 (or be empty), not {text!r}") from None
    if start == end:
        raise ValueError(f"QUIET_HOURS {text!r} starts and ends at the same time; leave it empty to turn it off")
    return Window(start, end)


def quiet_until(now: datetime, window: Window | None, tz: ZoneInfo) -> datetime | None:
    """When `now` (aware) is inside the window in zone `tz`, the UTC moment the window ends; else None."""
    if window is None:
        return None
    local = now.astimezone(tz)
    if not window.contains(local.time().replace(tzinfo=None)):
        return None
    end_date = local.date()
    if local.time().replace(tzinfo=None) >= window.end:
        end_date += timedelta(days=1)  # evening part of a window that spans midnight: ends tomorrow morning
    end = datetime.combine(end_date, window.end, tzinfo=tz)
    return end.astimezone(timezone.utc)
