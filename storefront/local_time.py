"""Wall-clock times in an event's own timezone, as organisers type them, and back.

An event's times are stored in UTC; the back office shows and takes them as the clock
on the venue's wall reads (``datetime-local`` inputs, no zone). Turning a wall-clock
time into an instant is ambiguous twice a year where the zone has daylight saving:

* a time the clocks skip (02:30 on the night they go forward in Europe/Paris) names no
  instant: it is refused (``NonexistentLocalTime``) with a message saying why;
* a time the clocks pass twice (02:30 on the night they go back) names two: the first
  one is taken (``fold=0``, still summer time), as most calendars do. The event page
  names the zone with the time, so what was chosen can be read back.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from .event_errors import NonexistentLocalTime

INPUT_FORMAT = "%Y-%m-%dT%H:%M"


@cache
def timezone_names() -> tuple[str, ...]:
    """Every IANA zone name this machine knows, sorted (the form's choices)."""
    return tuple(sorted(name for name in available_timezones() if "/" in name or name == "UTC"))


def is_timezone(name: str | None) -> bool:
    return bool(name) and name in timezone_names()


def to_utc(local: datetime | None, timezone: str, field: str) -> datetime | None:
    """A naive wall-clock time in ``timezone`` as an aware UTC instant (see the module
    docstring for the two daylight-saving cases)."""
    if local is None:
        return None
    zone = ZoneInfo(timezone)
    first = local.replace(tzinfo=zone, fold=0)
    instant = first.astimezone(UTC)
    # A skipped time does not come back as itself from UTC.
    if instant.astimezone(zone).replace(tzinfo=None) != local.replace(tzinfo=None):
        raise NonexistentLocalTime(field, local.strftime("%Y-%m-%d %H:%M"), timezone)
    return instant


def to_local(instant: datetime | None, timezone: str) -> datetime | None:
    """An aware instant as the naive wall-clock time in ``timezone`` (for a form)."""
    if instant is None:
        return None
    return instant.astimezone(ZoneInfo(timezone)).replace(tzinfo=None)


def day_start(day: date, timezone: str) -> datetime:
    """The UTC instant the local ``day`` begins in ``timezone`` (a day filter's bound)."""
    return datetime.combine(day, time(0, 0), tzinfo=ZoneInfo(timezone)).astimezone(UTC)
