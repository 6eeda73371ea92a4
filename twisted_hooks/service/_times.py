"""
Times in the HTTP API: stored times shown as RFC 3339 text that never fails, and times
read from bodies and query strings (seconds since the epoch, or RFC 3339 date-times).
"""

from __future__ import annotations

import datetime
import math
import re

from twisted_hooks._numbers import DECIMAL, decimal
from twisted_hooks.service._errors import invalid

__all__ = ["finite", "isotime", "rfc3339", "time_value"]

_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
# The times datetime can show: 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z.
_EARLIEST = -62_135_596_800
_LATEST = 253_402_300_799
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def isotime(seconds: object) -> str | None:
    """
    A stored time (seconds since the epoch) as RFC 3339 text in UTC, whatever was stored:
    a time before the year 1 or after 9999 (infinities included) is shown as the first or
    last second datetime can show; something that is not a number (``None``, NaN, text)
    is ``None``. Never raises.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return None
    if seconds != seconds:  # NaN
        return None
    clamped = min(max(seconds, _EARLIEST), _LATEST)
    moment = _EPOCH + datetime.timedelta(seconds=float(clamped))
    return moment.isoformat().replace("+00:00", "Z")


def finite(value: object) -> object:
    """``value`` with every non-finite float (which JSON cannot carry) replaced by ``None``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to a date of the proleptic Gregorian calendar, any year."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def rfc3339(text: str) -> float | None:
    """
    Seconds since the epoch of an RFC 3339 date-time (``2024-01-31T12:00:00Z``,
    ``2024-01-31t12:00:00.5+01:00``; a leap second ``:60`` is the next second), or
    ``None`` if ``text`` is not one.
    """
    found = _RFC3339.fullmatch(text)
    if found is None:
        return None
    year, month, day, hour, minute, second = (int(found.group(i)) for i in range(1, 7))
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    days_in_month = (31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
    if not 1 <= month <= 12 or not 1 <= day <= days_in_month[month - 1]:
        return None
    if hour > 23 or minute > 59 or second > 60:
        return None
    offset = 0
    zone = found.group(8)
    if zone not in ("Z", "z"):
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 23 or minutes > 59:
            return None
        offset = (hours * 60 + minutes) * 60 * (1 if zone[0] == "+" else -1)
    fraction = float("0" + found.group(7)) if found.group(7) else 0.0
    days = _days_from_civil(year, month, day)
    return days * 86400 + hour * 3600 + minute * 60 + second + fraction - offset


def time_value(value: object, field: str, *, query: bool = False) -> float:
    """
    A time given as seconds since the epoch or as an RFC 3339 date-time: in a JSON body, a
    number or a date-time string; in a query string, a number in ASCII digits or a
    date-time.
    """
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:
            seconds = math.inf
        if not math.isfinite(seconds):
            raise invalid(field, f"{field} must be a finite number of seconds since the epoch")
        return seconds
    if isinstance(value, str):
        if query and DECIMAL.fullmatch(value.removeprefix("-")):
            seconds = decimal(value, signed=True)
            if seconds is None:
                raise invalid(field, f"{field} must be a finite number of seconds since the epoch")
            return seconds
        seconds = rfc3339(value)
        if seconds is not None:
            return seconds
    raise invalid(
        field,
        f"{field} must be seconds since the epoch (a number) or an RFC 3339 date-time such "
        f"as '2024-01-31T12:00:00Z', got {value!r}",
    )
