"""Business hours: is the hotline open at a given moment, and when does that change?

A ``Schedule`` is read in local wall-clock time of its own zone, so "08:00-18:00" means
08:00 on the office clock in winter and in summer. Rules, chosen so a supervisor's YAML
means what it says:

* An interval belongs to the day it starts on. ``end <= start`` runs past midnight into
  the next day (``22:00-02:00``); ``00:00-24:00`` is the whole day.
* A holiday governs its whole calendar date: that day's weekly hours do not apply, and
  weekly hours running past midnight into it stop at midnight. Its own special hours
  (``09:00-12:00`` on Dec 24) apply as written, past midnight too (New Year's Eve).
* A dated holiday wins over a yearly recurring one on the same date.
* On DST change days a boundary is the first instant the wall clock shows that time:
  a time skipped by spring-forward (02:30 in Berlin) is the moment the clock jumps
  (03:00 CEST), a time repeated at fall-back counts at its first occurrence.

``schedule_from_dict`` turns what YAML gives into a ``Schedule`` and names the exact
field of any error, so a supervisor can find the line to fix.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import IntEnum
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class Weekday(IntEnum):
    """Same numbering as ``date.weekday()``."""

    MON = 0
    TUE = 1
    WED = 2
    THU = 3
    FRI = 4
    SAT = 5
    SUN = 6


class Interval(NamedTuple):
    """Opening hours within one day; ``end <= start`` means it ends on the next day."""

    start: time
    end: time


@dataclass(frozen=True, slots=True)
class Holiday:
    """A closed date, or a date with special hours.

    For a ``recurring`` holiday only month and day of ``day`` count (every year).
    """

    day: date
    hours: Sequence[tuple[time, time]] = ()  # stored as a tuple of Interval
    recurring: bool = False
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "hours", _intervals_of(self.hours))


@dataclass(frozen=True, slots=True)
class Schedule:
    """Weekly opening hours in ``timezone`` (IANA name), with holidays overriding them."""

    timezone: str
    weekly: Mapping[Weekday, Sequence[tuple[time, time]]]  # stored as tuples of Interval
    holidays: Sequence[Holiday] = ()
    zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _dated: dict[date, Holiday] = field(init=False, repr=False, compare=False)
    _yearly: dict[tuple[int, int], Holiday] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        weekly = {Weekday(day): _intervals_of(hours) for day, hours in self.weekly.items()}
        dated: dict[date, Holiday] = {}
        yearly: dict[tuple[int, int], Holiday] = {}
        for h in self.holidays:
            if h.recurring:
                if (h.day.month, h.day.day) in yearly:
                    raise ValueError(f"yearly holiday {h.day:--%m-%d} is listed twice")
                yearly[h.day.month, h.day.day] = h
            else:
                if h.day in dated:
                    raise ValueError(f"holiday {h.day} is listed twice")
                dated[h.day] = h
        object.__setattr__(self, "weekly", weekly)
        object.__setattr__(self, "holidays", tuple(self.holidays))
        object.__setattr__(self, "zone", ZoneInfo(self.timezone))
        object.__setattr__(self, "_dated", dated)
        object.__setattr__(self, "_yearly", yearly)

    def holiday(self, day: date) -> Holiday | None:
        """The holiday governing ``day`` (a local date), if any."""
        return self._dated.get(day) or self._yearly.get((day.month, day.day))


def _intervals_of(hours: Sequence[tuple[time, time]]) -> tuple[Interval, ...]:
    """Plain ``(start, end)`` pairs as intervals; wall-clock times carry no tzinfo."""
    intervals = tuple(Interval(*pair) for pair in hours)
    for interval in intervals:
        if interval.start.tzinfo is not None or interval.end.tzinfo is not None:
            raise ValueError("interval times are wall-clock times: they must not carry a tzinfo")
    return intervals


# --- evaluation ---------------------------------------------------------------------

_MIDNIGHT = time(0)
_DAY = timedelta(days=1)
# Past the last dated holiday the schedule repeats every year (weekly hours and yearly
# holidays), so a change that does not come within a year and a week never comes.
_HORIZON = timedelta(days=366 + 8)


def is_open(schedule: Schedule, at: datetime) -> bool:
    """Whether the schedule is open at the instant ``at`` (timezone-aware)."""
    _require_aware(at)
    now = at.astimezone(UTC)
    local_day = at.astimezone(schedule.zone).date()
    return any(
        start <= now < end
        for day in (local_day - _DAY, local_day)
        for start, end in _windows(schedule, day)
    )


def next_change(schedule: Schedule, at: datetime) -> datetime | None:
    """The first instant after ``at`` where ``is_open`` flips, in the schedule's zone.

    When closed that is the next opening ("we open at 8"), when open the closing.
    None when nothing changes for more than a year (always open, or never opens again).
    """
    _require_aware(at)
    now = at.astimezone(UTC)
    first = at.astimezone(schedule.zone).date() - _DAY
    last = first + _HORIZON
    if schedule._dated:
        last = max(last, max(schedule._dated) + timedelta(days=8))
    horizon = _instant(datetime.combine(last, _MIDNIGHT), schedule.zone)
    for start, end in _merged(_windows(schedule, day) for day in _days(first, last)):
        if now < start:
            return start.astimezone(schedule.zone)
        if now < end:  # open: a span reaching the horizon may go on beyond it
            return end.astimezone(schedule.zone) if end < horizon else None
    return None


def _require_aware(at: datetime) -> None:
    if at.utcoffset() is None:
        raise ValueError(f"{at!r} has no timezone: the schedule needs an instant")


def _days(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += _DAY


def _windows(schedule: Schedule, day: date) -> list[tuple[datetime, datetime]]:
    """Opening windows starting on local ``day``, as UTC instants (may be empty ones)."""
    holiday = schedule.holiday(day)
    intervals = holiday.hours if holiday else schedule.weekly.get(Weekday(day.weekday()), ())
    next_is_holiday = holiday is None and schedule.holiday(day + _DAY) is not None
    windows = []
    for start, end in intervals:
        begins = datetime.combine(day, start)
        ends = datetime.combine(day if end > start else day + _DAY, end)
        if next_is_holiday:  # weekly hours stop at midnight before a holiday
            ends = min(ends, datetime.combine(day + _DAY, _MIDNIGHT))
        windows.append((_instant(begins, schedule.zone), _instant(ends, schedule.zone)))
    return sorted(windows)


def _merged(
    days: Iterator[list[tuple[datetime, datetime]]],
) -> Iterator[tuple[datetime, datetime]]:
    """Windows of consecutive days (each sorted, days in order) as disjoint open spans."""
    current: tuple[datetime, datetime] | None = None
    for windows in days:
        for start, end in windows:
            if end <= start:
                continue  # all of it skipped by DST, or cut away by a holiday
            if current is None:
                current = (start, end)
            elif start <= current[1]:
                current = (current[0], max(current[1], end))
            else:
                yield current
                current = (start, end)
    if current is not None:
        yield current


def _instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The first UTC instant at which the local clock in ``zone`` shows ``wall`` or later."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first  # exists; fold=0 is its first occurrence when it is repeated
    # Skipped by a forward jump: the answer is the jump itself, between the two readings
    # (fold=1 reads the skipped time with the offset after the jump: an earlier instant).
    low = int(wall.replace(tzinfo=zone, fold=1).timestamp())
    high = int(first.timestamp())
    while high - low > 1:
        mid = (low + high) // 2
        if datetime.fromtimestamp(mid, zone).replace(tzinfo=None) >= wall:
            high = mid
        else:
            low = mid
    return datetime.fromtimestamp(high, UTC)


# --- parsing ------------------------------------------------------------------------


class ScheduleError(ValueError):
    """A schedule that cannot be used; ``field`` is the dotted path of the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


_DAY_NAMES = {
    **{d.name.lower(): d for d in Weekday},
    "monday": Weekday.MON,
    "tuesday": Weekday.TUE,
    "wednesday": Weekday.WED,
    "thursday": Weekday.THU,
    "friday": Weekday.FRI,
    "saturday": Weekday.SAT,
    "sunday": Weekday.SUN,
}
_TIME = re.compile(r"(\d{1,2}):(\d{2})")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_YEARLY_DATE = re.compile(r"--(\d{2})-(\d{2})")
_TOP_KEYS = ("timezone", "weekly", "holidays")
_HOLIDAY_KEYS = ("date", "hours", "recurring", "name")
_INTERVAL_KEYS = ("start", "end")


def schedule_from_dict(data: object, *, path: str = "") -> Schedule:
    """A ``Schedule`` from plain data (parsed YAML); ``path`` prefixes error fields.

    Accepted shape::

        timezone: Europe/Berlin
        weekly:
          mon-fri: ["08:00-18:00"]          # ranges, 3-letter or full day names
          sat: [{start: "22:00", end: "02:00"}]
          sun: closed                       # or []; days not listed are closed
        holidays:
          - 2025-12-26                      # closed all day
          - "--01-01"                       # every year
          - {date: 2025-12-24, hours: ["09:00-12:00"], name: Christmas Eve}
          - {date: 2025-05-01, recurring: true}
    """
    where = _Path(path)
    mapping = _mapping(data, where)
    _known_keys(mapping, _TOP_KEYS, where)
    for key in ("timezone", "weekly"):
        if key not in mapping:
            raise where.key(key).error("missing")
    timezone = _timezone(mapping["timezone"], where.key("timezone"))
    weekly = _weekly(mapping["weekly"], where.key("weekly"))
    holidays = _holidays(mapping.get("holidays", []), where.key("holidays"))
    return Schedule(timezone, weekly, holidays)


@dataclass(frozen=True)
class _Path:
    text: str

    def key(self, name: str) -> _Path:
        return _Path(f"{self.text}.{name}" if self.text else name)

    def index(self, n: int) -> _Path:
        return _Path(f"{self.text}[{n}]")

    def error(self, message: str) -> ScheduleError:
        return ScheduleError(self.text, message)


def _mapping(value: object, where: _Path) -> Mapping[str, object]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise where.error(f"expected a mapping with text keys, got {_shown(value)}")
    return value


def _list(value: object, where: _Path) -> list[object]:
    if not isinstance(value, list | tuple):
        raise where.error(f"expected a list, got {_shown(value)}")
    return list(value)


def _known_keys(mapping: Mapping[str, object], known: Sequence[str], where: _Path) -> None:
    for key in mapping:
        if key not in known:
            raise where.key(key).error(f"unknown key (expected one of: {', '.join(known)})")


def _shown(value: object) -> str:
    return "nothing" if value is None else f"{value!r} ({type(value).__name__})"


def _timezone(value: object, where: _Path) -> str:
    if not isinstance(value, str) or not value:
        raise where.error(f"expected a time zone name like 'Europe/Berlin', got {_shown(value)}")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise where.error(f"{value!r} is not a known time zone (IANA name)") from None
    return value


def _weekly(value: object, where: _Path) -> dict[Weekday, tuple[Interval, ...]]:
    weekly: dict[Weekday, tuple[Interval, ...]] = {}
    given_by: dict[Weekday, str] = {}
    for key, hours in _mapping(value, where).items():
        days = _day_range(key, where.key(key))
        intervals = _intervals(hours, where.key(key))
        for day in days:
            if day in given_by:
                raise where.key(key).error(
                    f"{day.name.lower()} is already given by {where.key(given_by[day]).text}"
                )
            given_by[day] = key
            weekly[day] = intervals
    return weekly


def _day_range(key: str, where: _Path) -> list[Weekday]:
    names = key.lower().split("-")
    if len(names) > 2 or not all(n.strip() in _DAY_NAMES for n in names):
        raise where.error("not a weekday: use mon..sun, monday..sunday or a range like mon-fri")
    first, last = _DAY_NAMES[names[0].strip()], _DAY_NAMES[names[-1].strip()]
    count = (last - first) % 7 + 1
    return [Weekday((first + n) % 7) for n in range(count)]


def _intervals(value: object, where: _Path) -> tuple[Interval, ...]:
    if value == "closed":
        return ()
    if value is None:
        raise where.error("no hours given: write a list of 'HH:MM-HH:MM', or closed")
    if isinstance(value, str | Mapping):  # a single interval
        value = [value]
    return tuple(_interval(item, where.index(n)) for n, item in enumerate(_list(value, where)))


def _interval(value: object, where: _Path) -> Interval:
    if isinstance(value, str):
        parts = re.split(r"\s*[-\u2013]\s*", value.strip())
        if len(parts) != 2:
            raise where.error(f"{value!r} is not an interval 'HH:MM-HH:MM'")
        start_text, end_text = parts
        start_value: object = start_text
        end_value: object = end_text
    elif isinstance(value, Mapping):
        mapping = _mapping(value, where)
        _known_keys(mapping, _INTERVAL_KEYS, where)
        for key in _INTERVAL_KEYS:
            if key not in mapping:
                raise where.key(key).error("missing")
        start_value, end_value = mapping["start"], mapping["end"]
    else:
        raise where.error(
            f"expected 'HH:MM-HH:MM' or {{start: 'HH:MM', end: 'HH:MM'}}, got {_shown(value)}"
        )
    start = _time(start_value, where.key("start"), end=False)
    end = _time(end_value, where.key("end"), end=True)
    if start == end and str(end_value).strip() != "24:00":
        raise where.error("start and end are the same: write 00:00-24:00 for a whole day")
    return Interval(start, end)


def _time(value: object, where: _Path, *, end: bool) -> time:
    if isinstance(value, time):
        if value.tzinfo is not None:
            raise where.error(f"{value} carries a time zone: the schedule's timezone applies")
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        raise where.error(
            f"{value} is a number, not a time: quote it ('HH:MM'); YAML reads an unquoted"
            f" 18:00 as the number 1080"
        )
    if isinstance(value, str):
        match = _TIME.fullmatch(value.strip())
        if match:
            hours, minutes = int(match[1]), int(match[2])
            if end and (hours, minutes) == (24, 0):
                return _MIDNIGHT
            if hours < 24 and minutes < 60:
                return time(hours, minutes)
    raise where.error(f"{value!r} is not a time HH:MM")


def _holidays(value: object, where: _Path) -> list[Holiday]:
    holidays: list[Holiday] = []
    seen: dict[tuple[bool, date], str] = {}
    for n, item in enumerate(_list(value, where)):
        here = where.index(n)
        holiday = _holiday(item, here)
        key = (holiday.recurring, holiday.day)
        if key in seen:
            raise here.error(f"{_day_text(holiday)} is already listed at {seen[key]}")
        seen[key] = here.text
        holidays.append(holiday)
    return holidays


def _day_text(holiday: Holiday) -> str:
    return holiday.day.strftime("--%m-%d") if holiday.recurring else holiday.day.isoformat()


def _holiday(value: object, where: _Path) -> Holiday:
    if not isinstance(value, Mapping):  # a bare date: closed all day
        day, yearly = _date(value, where)
        return Holiday(day, (), recurring=yearly)
    mapping = _mapping(value, where)
    _known_keys(mapping, _HOLIDAY_KEYS, where)
    if "date" not in mapping:
        raise where.key("date").error("missing")
    day, yearly_form = _date(mapping["date"], where.key("date"))
    recurring = mapping.get("recurring")
    if recurring is None:  # not given: the --MM-DD form alone says "every year"
        recurring = yearly_form
    if not isinstance(recurring, bool):
        raise where.key("recurring").error(f"expected true or false, got {_shown(recurring)}")
    if yearly_form and not recurring:
        raise where.key("recurring").error(
            "a --MM-DD date recurs every year: drop this or set true"
        )
    name = mapping.get("name", "")
    if not isinstance(name, str):
        raise where.key("name").error(f"expected text, got {_shown(name)}")
    hours = _intervals(mapping.get("hours", "closed"), where.key("hours"))
    return Holiday(_yearly_day(day) if recurring else day, hours, recurring, name)


def _yearly_day(day: date) -> date:
    """A recurring holiday's month and day, on a leap year so that --02-29 is valid."""
    return date(2000, day.month, day.day)


def _date(value: object, where: _Path) -> tuple[date, bool]:
    """The date and whether it was written in the yearly ``--MM-DD`` form."""
    if isinstance(value, datetime):
        raise where.error(f"{value} has a time of day: give a date YYYY-MM-DD")
    if isinstance(value, date):
        return value, False
    if isinstance(value, str):
        text = value.strip()
        try:
            if _ISO_DATE.fullmatch(text):
                return date.fromisoformat(text), False
            yearly = _YEARLY_DATE.fullmatch(text)
            if yearly:
                return date(2000, int(yearly[1]), int(yearly[2])), True
        except ValueError:
            raise where.error(f"{value!r} is not a valid date") from None
    raise where.error(f"{_shown(value)} is not a date YYYY-MM-DD or a yearly date --MM-DD")
