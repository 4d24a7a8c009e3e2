"""A queue's past calls per interval, as the day-ahead forecast (``acd.core.forecast``) reads them.

The figures are the queue report's (``acd.reports.queries.queue_report``), so a forecast
is made of exactly what supervisors see in ``acd report``: offered calls counted once,
in the queue their wait ended in and the interval they arrived in; handle time is talk
plus the agent's wrap-up after it, over the calls handled.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from acd.core.forecast import IntervalHistory, Slot, check_interval, slot_of
from acd.reports.queries import IntervalName, ReportRequest, queue_report

#: The report's interval lengths the forecast can use.
REPORT_INTERVALS: dict[int, IntervalName] = {900: "15m", 1800: "30m", 3600: "60m"}

# The first call that ended a wait in the queue (the report's outcome kinds; the
# reports' partial index on (queue, at) answers it).
_FIRST = text(
    "SELECT min(at) FROM queue_events WHERE queue = :queue"
    " AND kind IN ('answer', 'abandon', 'timeout', 'callback_requested')"
)


async def queue_history(
    db: AsyncEngine | AsyncConnection,
    queue: str,
    *,
    before: date,
    days: int,
    tz: str,
    interval_s: int,
) -> dict[date, dict[Slot, IntervalHistory]]:
    """The ``days`` local days before ``before``, per interval. Only days from the
    queue's first call on are on record: earlier ones are missing, not zeros."""
    check_interval(interval_s)
    interval = REPORT_INTERVALS.get(interval_s)
    if interval is None:
        raise ValueError(f"interval_s must be 15m, 30m or 60m (the reports'), got {interval_s} s")
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    zone = ZoneInfo(tz)
    if isinstance(db, AsyncEngine):
        async with db.connect() as conn:
            first = (await conn.execute(_FIRST, {"queue": queue})).scalar()
    else:
        first = (await db.execute(_FIRST, {"queue": queue})).scalar()
    history: dict[date, dict[Slot, IntervalHistory]] = {}
    if first is None:
        return history
    day = max(before - timedelta(days=days), first.astimezone(zone).date())
    if day >= before:
        return history
    request = ReportRequest(
        start=datetime.combine(day, time(0), tzinfo=zone),
        end=datetime.combine(before, time(0), tzinfo=zone),
        tz=tz,
        interval=interval,
        queues=(queue,),
    )
    while day < before:
        history[day] = {}
        day += timedelta(days=1)
    for row in await queue_report(db, request):
        if not row.offered and not row.handled:
            continue
        local_day, slot = slot_of(row.interval_start, zone, interval_s)
        history[local_day][slot] = IntervalHistory(
            offered=row.offered, handled=row.handled, handle_s=row.talk_s + row.wrap_up_s
        )
    return history
