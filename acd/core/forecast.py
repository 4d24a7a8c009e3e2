"""Next day's calls per interval from the history: the same weekday of recent weeks.

Contact-center volume repeats by weekday and time of day far more than it drifts, so
the plain, well-known forecast is a weighted average of the same weekday in the last
``weeks`` weeks, per interval, the most recent week weighing most (weights ``weeks``,
``weeks - 1``, ... 1). When fewer than ``min_weeks`` of those days are on record (a new
queue), every recorded day of the last ``weeks`` weeks counts alike instead. An optional
trend factor scales the day by how the last 7 days compare with the 7 before.

Intervals are wall-clock times of the center's time zone: a day on which the clocks go
forward has 23 hours of intervals, one on which they go back 25. An interval is named by
its local start time and ``fold`` (0, or 1 for the repeated hour), so 09:00 on a DST day
lines up with 09:00 on the weeks before. The repeated hour has no history of its own and
takes that of the same wall-clock hour; a history day that skipped an hour is left out of
that interval's average.

Handle time is forecast per interval from the same days (total handle seconds over
handled calls), falling back to all intervals of those days when an interval handled
fewer than ``min_handled`` calls. Pure: the caller reads the history and the clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from acd.core.staffing import StaffingResult, agents_needed

#: An interval of a day: its local start time and fold (1 only in the repeated hour).
Slot = tuple[time, int]


@dataclass(frozen=True, slots=True)
class IntervalHistory:
    """What one interval of one past day saw in one queue."""

    #: Calls that arrived in the queue in this interval.
    offered: int = 0
    #: Of those, calls an agent talked to (handle times below).
    handled: int = 0
    #: Sum of the handled calls' handle times, seconds.
    handle_s: float = 0.0


#: The history: every day on record, each with its intervals. A recorded day without
#: calls is an empty mapping (a quiet Sunday is a zero, not a gap).
History = Mapping[date, Mapping[Slot, IntervalHistory]]


@dataclass(frozen=True, slots=True)
class ForecastInterval:
    slot: Slot
    #: Start of the interval, timezone-aware.
    start: datetime
    #: Forecast calls offered (a fraction: it is an expectation).
    calls: float
    #: Forecast average handle time in seconds; None when nothing was ever handled.
    aht_s: float | None


@dataclass(frozen=True, slots=True)
class DayForecast:
    day: date
    intervals: tuple[ForecastInterval, ...]
    #: "same_weekday" or "all_days" (the fallback).
    method: str
    #: The days the forecast is made of, with their weights, most recent first.
    days: tuple[tuple[date, float], ...]
    trend: float

    @property
    def calls(self) -> float:
        return sum(i.calls for i in self.intervals)


def day_intervals(day: date, zone: tzinfo, interval_s: int) -> list[tuple[Slot, datetime]]:
    """The intervals of ``day`` in ``zone``: from local midnight to the next, stepped in
    real (UTC) time, so DST days have 46 or 50 half-hours. ``interval_s`` must divide an
    hour, so a clock change never splits an interval."""
    check_interval(interval_s)
    start = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    out: list[tuple[Slot, datetime]] = []
    at = start
    while at < end:
        local = at.astimezone(zone)
        out.append(((local.time().replace(fold=0), local.fold), local))
        at += timedelta(seconds=interval_s)
    return out


def slot_of(at: datetime, zone: tzinfo, interval_s: int) -> tuple[date, Slot]:
    """The local day and interval a moment falls in."""
    local = at.astimezone(zone)
    seconds = local.hour * 3600 + local.minute * 60 + local.second
    start = seconds - seconds % interval_s
    return local.date(), (time(start // 3600, start % 3600 // 60), local.fold)


def check_interval(interval_s: int) -> None:
    if isinstance(interval_s, bool) or not isinstance(interval_s, int):
        raise TypeError(f"interval_s must be a whole number of seconds, got {interval_s!r}")
    if interval_s < 60 or interval_s % 60 or 3600 % interval_s:
        raise ValueError(
            f"interval_s must be whole minutes that divide an hour (15m, 30m, 60m...),"
            f" got {interval_s} s"
        )


def forecast_day(
    history: History,
    day: date,
    zone: tzinfo,
    interval_s: int,
    *,
    weeks: int = 4,
    min_weeks: int = 2,
    trend: bool = False,
    min_handled: int = 10,
) -> DayForecast:
    """Forecast ``day``'s calls and handle time per interval from ``history``.

    Only days before ``day`` count, and only those within ``weeks`` weeks.
    """
    if weeks < 1:
        raise ValueError(f"weeks must be at least 1, got {weeks}")
    if not 1 <= min_weeks <= weeks:
        raise ValueError(f"min_weeks must be from 1 up to weeks ({weeks}), got {min_weeks}")
    if min_handled < 1:
        raise ValueError(f"min_handled must be at least 1, got {min_handled}")
    same = [day - timedelta(weeks=k) for k in range(1, weeks + 1)]
    same = [d for d in same if d in history]
    if len(same) >= min_weeks:
        method = "same_weekday"
        weighted = [(d, float(weeks - (day - d).days // 7 + 1)) for d in same]
    else:
        method = "all_days"
        window = (day - timedelta(days=n) for n in range(1, 7 * weeks + 1))
        weighted = [(d, 1.0) for d in window if d in history]
    if not weighted:
        raise ValueError(f"no history in the {weeks} week(s) before {day.isoformat()}")
    factor = trend_factor(history, day) if trend else 1.0
    pooled = _pooled_aht([history[d] for d, _ in weighted], min_handled=1)
    on_clock = {d: {s for s, _ in day_intervals(d, zone, interval_s)} for d, _ in weighted}
    intervals = []
    for slot, start in day_intervals(day, zone, interval_s):
        calls, aht = _interval(history, on_clock, weighted, slot, min_handled)
        intervals.append(
            ForecastInterval(slot, start, calls * factor, aht if aht is not None else pooled)
        )
    return DayForecast(day, tuple(intervals), method, tuple(weighted), factor)


def trend_factor(history: History, day: date) -> float:
    """Calls of the 7 days before ``day`` over the 7 days before those; 1.0 unless all
    14 days are on record and the earlier week had calls."""
    recent = [day - timedelta(days=n) for n in range(1, 8)]
    earlier = [day - timedelta(days=n) for n in range(8, 15)]
    if any(d not in history for d in (*recent, *earlier)):
        return 1.0
    before = sum(_offered(history[d]) for d in earlier)
    if before == 0:
        return 1.0
    return sum(_offered(history[d]) for d in recent) / before


def _offered(intervals: Mapping[Slot, IntervalHistory]) -> int:
    return sum(i.offered for i in intervals.values())


def _interval(
    history: History,
    on_clock: Mapping[date, set[Slot]],
    weighted: Sequence[tuple[date, float]],
    slot: Slot,
    min_handled: int,
) -> tuple[float, float | None]:
    total = weight = 0.0
    handled = 0
    handle_s = 0.0
    for d, w in weighted:
        found = _lookup(history[d], on_clock[d], slot)
        if found is None:
            continue  # that day skipped this wall-clock time (clocks went forward)
        total += w * found.offered
        weight += w
        handled += found.handled
        handle_s += found.handle_s
    calls = total / weight if weight else 0.0
    aht = handle_s / handled if handled >= min_handled else None
    return calls, aht


def _lookup(
    intervals: Mapping[Slot, IntervalHistory], slots: set[Slot], slot: Slot
) -> IntervalHistory | None:
    """The day's figures for ``slot`` (zeros if it had no calls then); the repeated hour
    (fold 1) borrows the first one's on a day that had it only once. None when the day
    did not have that wall-clock time at all (the clocks skipped it)."""
    wall, fold = slot
    if slot not in slots and fold == 1:
        slot = (wall, 0)
    if slot not in slots:
        return None
    return intervals.get(slot, IntervalHistory())


def _pooled_aht(
    days: Sequence[Mapping[Slot, IntervalHistory]], *, min_handled: int
) -> float | None:
    handled = sum(i.handled for d in days for i in d.values())
    handle_s = sum(i.handle_s for d in days for i in d.values())
    return handle_s / handled if handled >= min_handled else None


@dataclass(frozen=True, slots=True)
class PlannedInterval:
    interval: ForecastInterval
    aht_s: float
    staffing: StaffingResult


def plan_day(
    forecast: DayForecast,
    interval_s: int,
    *,
    sl_target: float,
    target_s: float,
    max_occupancy: float = 1.0,
    shrinkage: float = 0.0,
    aht_s: float | None = None,
) -> list[PlannedInterval]:
    """Erlang C staffing for each forecast interval; ``aht_s`` overrides the forecast
    handle time (needed when the history never handled a call)."""
    planned = []
    for interval in forecast.intervals:
        aht = aht_s if aht_s is not None else interval.aht_s
        if aht is None:
            raise ValueError(
                "aht_s: the history has no handled calls to take a handle time from; give one"
            )
        result = agents_needed(
            interval.calls, interval_s, aht, sl_target, target_s, max_occupancy, shrinkage
        )
        planned.append(PlannedInterval(interval, aht, result))
    return planned
