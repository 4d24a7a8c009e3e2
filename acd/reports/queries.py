"""Report queries: per queue and interval, per agent, per IVR flow and node.

Each report is one plain async function taking an engine or connection and a
``ReportRequest``; it returns dataclass rows that ``to_json()`` turns into plain dicts.
PostgreSQL does the adding up (one statement per report); ``acd.core.kpi`` divides.

What is read, and how a call is counted:

* **Queues** read ``queue_events``. A waiting call counts once, in the queue its wait
  ended in (the ``answer``, ``abandon``, ``timeout`` or ``callback_requested`` event;
  after an overflow that is the second queue, as ``calls.queue`` says), and in the
  interval in which it *arrived* (the event's time minus its ``wait_s``, so
  offered = answered + abandoned + timed out + callbacks holds per interval and the
  service level is about the calls that arrived then). Talk comes from the ``complete``
  event, wrap-up from the ``wrap_up`` event the daemon writes when the agent's wrap-up
  after that call ends (the same length as the agent's ``wrap_up`` state in
  ``agent_events``; still wrapping up: not counted yet). Callbacks the daemon places
  later and callback requests left in the IVR are not waiting callers.
  Agent feature-code calls (``route = 'agent'``) never reach a queue, so they never
  appear.
* **Agents** read ``agent_events`` (state periods, clipped to each interval) and the
  ``complete`` events (talk, clipped likewise; a call counts in the interval its talk
  ended in).
* **IVR** reads the ``calls`` that started in the period and their ``ivr_steps``.

Intervals are wall-clock intervals in the center's time zone (``date_bin`` on local
time, ``date_trunc(..., tz)`` for days), each row labelled with the instant it starts:
on the night clocks go back a 60-minute report has two rows labelled 02:00 (+02:00 and
+01:00); on the night they go forward it has no 02:00 row. Times in the database stay
UTC.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.types import DateTime, Float, Interval, Text

from acd.core import kpi

IntervalName = Literal["15m", "30m", "60m", "day", "total"]
INTERVALS: tuple[str, ...] = get_args(IntervalName)
_STEPS = {"15m": timedelta(minutes=15), "30m": timedelta(minutes=30), "60m": timedelta(hours=1)}

#: The longest a caller can stay in a queue: a wait that ended this long after the end
#: of the period may still belong to a call that arrived in it.
MAX_WAIT = timedelta(hours=12)


@dataclass(frozen=True, slots=True)
class ReportRequest:
    """What a supervisor asks for: the period ``[start, end)`` (aware datetimes), the
    center's time zone, the interval length, the queues (empty: all) and the KPI
    thresholds in seconds."""

    start: datetime
    end: datetime
    tz: str = "UTC"
    interval: IntervalName = "30m"
    queues: tuple[str, ...] = ()
    sl_threshold_s: float = 20.0
    short_abandon_s: float = 5.0

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("start and end must carry a time zone")
        if self.end <= self.start:
            raise ValueError(f"end ({self.end.isoformat()}) is not after start")
        if self.interval not in INTERVALS:
            raise ValueError(f"interval {self.interval!r}: use one of {', '.join(INTERVALS)}")
        if self.sl_threshold_s < 0 or self.short_abandon_s < 0:
            raise ValueError("thresholds must be >= 0 seconds")
        try:
            ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.tz!r}") from None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    return value


class _Row:
    """Rows serialise to plain JSON values: datetimes as ISO 8601 with their offset."""

    __slots__ = ()

    def to_json(self) -> dict[str, Any]:
        return {k: _json_value(v) for k, v in dataclasses.asdict(self).items()}  # type: ignore[call-overload]


@dataclass(frozen=True, slots=True)
class QueueRow(_Row):
    """One queue in one interval. Seconds are floats; ratios are 0..1 or None."""

    queue: str
    interval_start: datetime
    interval_end: datetime
    offered: int
    answered: int
    answered_within: int
    abandoned: int
    short_abandoned: int
    timed_out: int
    callbacks: int
    handled: int
    service_level: float | None
    service_level_abandons: float | None
    abandonment_rate: float | None
    asa_s: float | None
    aht_s: float | None
    talk_s: float
    wrap_up_s: float
    longest_wait_s: float | None


@dataclass(frozen=True, slots=True)
class AgentRow(_Row):
    """One agent in one interval: time in each state, talk, and occupancy."""

    agent_id: str
    interval_start: datetime
    interval_end: datetime
    calls: int
    talk_s: float
    wrap_up_s: float
    logged_in_s: float
    not_ready_s: float
    not_ready_by_reason: dict[str, float] = field(default_factory=dict)
    aht_s: float | None = None
    occupancy: float | None = None


@dataclass(frozen=True, slots=True)
class IvrFlowRow(_Row):
    """Calls that entered a flow version, and how the IVR let go of them."""

    flow: str
    flow_version: int
    calls: int
    contained: int
    dropped: int
    passed_on: int
    errors: int
    in_progress: int
    containment: float | None
    drop_off_rate: float | None


@dataclass(frozen=True, slots=True)
class IvrNodeRow(_Row):
    """One node of one flow version: how many callers reached it, how many hung up there."""

    flow: str
    flow_version: int
    node_id: str
    kind: str
    reached: int
    dropped: int
    drop_off_rate: float | None


Db = AsyncEngine | AsyncConnection


@contextlib.asynccontextmanager
async def _connection(db: Db) -> AsyncIterator[AsyncConnection]:
    if isinstance(db, AsyncConnection):
        yield db
    else:
        async with db.connect() as conn:
            yield conn


# --- intervals ---------------------------------------------------------------------------


def _bucket(column: str, interval: str) -> str:
    """SQL for the start (an instant) of the local interval holding ``column``.

    Sub-day intervals bin the local wall-clock time, then step back from the instant
    itself by the same amount, so the offset in force at that instant is kept: the two
    02:00 hours of the autumn night stay apart.
    """
    if interval == "total":
        return "CAST(:start AS timestamptz)"
    if interval == "day":
        return f"date_trunc('day', {column}, :tz)"
    local = f"({column} AT TIME ZONE :tz)"
    return f"({column} - ({local} - date_bin(:step, {local}, TIMESTAMP '2000-01-01')))"


def _buckets_cte(interval: str) -> str:
    """``buckets(b_start, b_end)``, every interval of the period, and ``bounds``, their
    starts plus the period's end as one array (for ``width_bucket``)."""
    if interval == "total":
        starts = "SELECT CAST(:start AS timestamptz) AS b_start"
    else:
        # Small steps find every interval, whatever the zone's offset and its DST jumps.
        probe = "interval '1 hour'" if interval == "day" else "interval '15 minutes'"
        starts = (
            f"SELECT DISTINCT {_bucket('t', interval)} AS b_start FROM generate_series("
            f"CAST(:start AS timestamptz), CAST(:end AS timestamptz) - interval '1 microsecond',"
            f" {probe}) AS t"
        )
    return f"""
    b0 AS ({starts}),
    buckets AS (
        SELECT row_number() OVER (ORDER BY b_start) AS i, b_start,
               least(coalesce(lead(b_start) OVER (ORDER BY b_start), CAST(:end AS timestamptz)),
                     CAST(:end AS timestamptz)) AS b_end
        FROM b0
    ),
    bounds AS (
        SELECT array_append(array_agg(b_start ORDER BY b_start), CAST(:end AS timestamptz)) AS v,
               count(*) AS n
        FROM b0
    )"""


def _params(request: ReportRequest) -> dict[str, Any]:
    return {
        "start": request.start,
        "end": request.end,
        "tz": request.tz,
        "step": _STEPS.get(request.interval, timedelta(minutes=30)),
        "sl": request.sl_threshold_s,
        "short": request.short_abandon_s,
        "end_slack": request.end + MAX_WAIT,
        "queues": list(request.queues),
    }


_BINDS = (
    bindparam("start", type_=DateTime(timezone=True)),
    bindparam("end", type_=DateTime(timezone=True)),
    bindparam("end_slack", type_=DateTime(timezone=True)),
    bindparam("tz", type_=Text()),
    bindparam("step", type_=Interval()),
    bindparam("sl", type_=Float()),
    bindparam("short", type_=Float()),
    bindparam("queues", type_=ARRAY(Text())),
)


async def _fetch(db: Db, sql: str, request: ReportRequest) -> Sequence[Any]:
    params = _params(request)
    names = {b.key for b in _BINDS if re.search(rf":{b.key}\b", sql)}
    statement = text(sql).bindparams(*(b for b in _BINDS if b.key in names))
    async with _connection(db) as conn:
        # The planner cannot estimate the computed arrival times and guesses a costly
        # plan, which switches JIT compilation on: that alone costs more than the query.
        await conn.execute(text("SET LOCAL jit = off"))
        # A month of one queue is some 10^5 rows to group: sort them in memory.
        await conn.execute(text("SET LOCAL work_mem = '64MB'"))
        result = await conn.execute(statement, {k: v for k, v in params.items() if k in names})
        return result.all()


# --- queues ------------------------------------------------------------------------------

_WAIT_ENDS = "('answer', 'abandon', 'timeout', 'callback_requested')"


def _queue_sql(interval: str, filtered: bool) -> str:
    queue_filter = "AND e.queue = ANY(:queues)" if filtered else ""
    return f"""
    WITH outcome AS (
        SELECT e.queue, e.kind, e.wait_s, e.talk_s, e.wrap_up_s, e.at,
               e.at - make_interval(secs => coalesce(e.wait_s, 0)
                   + CASE WHEN e.kind = 'complete' THEN coalesce(e.talk_s, 0) ELSE 0 END)
                   AS arrived
        FROM queue_events e
        WHERE e.kind IN ('answer', 'abandon', 'timeout', 'callback_requested', 'complete',
                         'wrap_up')
          {queue_filter}
          AND e.at >= :start AND e.at < :end_slack
          AND NOT (e.kind IN ('answer', 'complete', 'wrap_up') AND e.detail ? 'callback')
          AND NOT (e.kind = 'callback_requested' AND e.detail ->> 'source' = 'ivr')
          AND NOT (e.kind = 'timeout' AND EXISTS (
              SELECT 1 FROM queue_events c
              WHERE c.interaction_id = e.interaction_id AND c.kind = 'callback_requested'
                AND c.at <= e.at))
    ),
    counted AS (
        SELECT o.*, {_bucket("o.arrived", interval)} AS bucket
        FROM outcome o
        WHERE o.arrived >= :start AND o.arrived < :end
    ),
    totals AS (
        SELECT c.queue, c.bucket,
            count(*) FILTER (WHERE c.kind IN {_WAIT_ENDS}) AS offered,
            count(*) FILTER (WHERE c.kind = 'answer') AS answered,
            count(*) FILTER (WHERE c.kind = 'answer' AND c.wait_s <= :sl) AS answered_within,
            count(*) FILTER (WHERE c.kind = 'abandon') AS abandoned,
            count(*) FILTER (WHERE c.kind = 'abandon' AND c.wait_s <= :short) AS short_abandoned,
            count(*) FILTER (WHERE c.kind = 'timeout') AS timed_out,
            count(*) FILTER (WHERE c.kind = 'callback_requested') AS callbacks,
            count(*) FILTER (WHERE c.kind = 'complete') AS handled,
            coalesce(sum(c.wait_s) FILTER (WHERE c.kind = 'answer'), 0) AS answer_wait_s,
            coalesce(sum(c.talk_s) FILTER (WHERE c.kind = 'complete'), 0) AS talk_s,
            coalesce(sum(c.wrap_up_s) FILTER (WHERE c.kind = 'wrap_up'), 0) AS wrap_up_s,
            max(c.wait_s) FILTER (WHERE c.kind IN {_WAIT_ENDS}) AS longest_wait_s
        FROM counted c
        GROUP BY c.queue, c.bucket
    )
    SELECT * FROM totals
    """


async def _bucket_list(db: Db, request: ReportRequest) -> list[tuple[datetime, datetime]]:
    sql = f"WITH {_buckets_cte(request.interval).strip()} SELECT b_start, b_end FROM buckets"
    rows = await _fetch(db, sql + " ORDER BY b_start", request)
    return [(r.b_start, r.b_end) for r in rows]


def _queue_row(
    queue: str, start: datetime, end: datetime, t: Any | None, request: ReportRequest
) -> QueueRow:
    zone = request.zone
    if t is None:
        return QueueRow(
            queue, start.astimezone(zone), end.astimezone(zone), 0, 0, 0, 0, 0, 0, 0, 0,
            None, None, None, None, None, 0.0, 0.0, None,
        )  # fmt: skip
    talk_s, wrap_s = float(t.talk_s), float(t.wrap_up_s)
    return QueueRow(
        queue=queue,
        interval_start=start.astimezone(zone),
        interval_end=end.astimezone(zone),
        offered=t.offered,
        answered=t.answered,
        answered_within=t.answered_within,
        abandoned=t.abandoned,
        short_abandoned=t.short_abandoned,
        timed_out=t.timed_out,
        callbacks=t.callbacks,
        handled=t.handled,
        service_level=kpi.service_level(t.answered_within, t.answered),
        service_level_abandons=kpi.service_level_with_abandons(
            t.answered_within, t.answered, t.abandoned, t.short_abandoned
        ),
        abandonment_rate=kpi.abandonment_rate(t.abandoned, t.short_abandoned, t.offered),
        asa_s=kpi.asa(float(t.answer_wait_s), t.answered),
        aht_s=kpi.aht(talk_s, wrap_s, t.handled),
        talk_s=talk_s,
        wrap_up_s=wrap_s,
        longest_wait_s=kpi.longest_wait([t.longest_wait_s]),
    )


async def queue_report(db: Db, request: ReportRequest) -> list[QueueRow]:
    """Per queue and interval: offered, answered, abandoned (short ones apart), timed
    out, callbacks; service level both ways, abandonment rate, ASA, AHT, longest wait.

    Every interval of the period has a row for every queue asked for (or, when none is
    named, every queue with calls in the period), zeros when no call arrived.
    """
    async with _connection(db) as conn:
        buckets = await _bucket_list(conn, request)
        totals = await _fetch(conn, _queue_sql(request.interval, bool(request.queues)), request)
    by_key = {(t.queue, t.bucket): t for t in totals}
    queues = list(request.queues) or sorted({t.queue for t in totals})
    return [
        _queue_row(queue, start, end, by_key.get((queue, start)), request)
        for queue in queues
        for start, end in buckets
    ]


# --- agents ------------------------------------------------------------------------------


def _agent_sql(interval: str) -> str:
    return f"""
    WITH RECURSIVE ids(agent_id) AS (
        (SELECT agent_id FROM agent_events ORDER BY agent_id LIMIT 1)
        UNION ALL
        SELECT (SELECT a.agent_id FROM agent_events a WHERE a.agent_id > ids.agent_id
                ORDER BY a.agent_id LIMIT 1)
        FROM ids WHERE ids.agent_id IS NOT NULL
    ),
    {_buckets_cte(interval).strip()},
    changes AS (
        SELECT ids.agent_id, CAST(:start AS timestamptz) AS at, 0 AS ord, p.state, p.reason
        FROM ids CROSS JOIN LATERAL (
            SELECT a.state, a.reason FROM agent_events a
            WHERE a.agent_id = ids.agent_id AND a.at < :start
            ORDER BY a.at DESC LIMIT 1) p
        WHERE ids.agent_id IS NOT NULL
        UNION ALL
        SELECT agent_id, at, 1, state, reason FROM agent_events
        WHERE at >= :start AND at < :end
    ),
    periods AS (
        SELECT agent_id, state AS kind, reason, at AS since,
               coalesce(lead(at) OVER (PARTITION BY agent_id ORDER BY at, ord),
                        least(CAST(:end AS timestamptz), now())) AS until,
               NULL::timestamptz AS ended
        FROM changes
    ),
    talk AS (
        SELECT agent_id, 'talk' AS kind, NULL::text AS reason,
               greatest(at - make_interval(secs => coalesce(talk_s, 0)),
                        CAST(:start AS timestamptz)) AS since,
               least(at, CAST(:end AS timestamptz)) AS until,
               at AS ended
        FROM queue_events
        WHERE kind = 'complete' AND at >= :start AND at < :end_slack AND agent_id IS NOT NULL
          AND at - make_interval(secs => coalesce(talk_s, 0)) < :end
          AND NOT (detail ? 'callback' AND coalesce(talk_s, 0) = 0)
    ),
    activity AS (
        SELECT * FROM periods WHERE kind <> 'logged_out' AND until > since
        UNION ALL
        SELECT * FROM talk
    ),
    spans AS (
        SELECT a.*, greatest(width_bucket(a.since, bounds.v), 1) AS first_i,
               least(width_bucket(a.until - interval '1 microsecond', bounds.v),
                     bounds.n::int) AS last_i,
               CASE WHEN a.kind = 'talk' AND a.ended < :end
                    THEN width_bucket(a.ended, bounds.v) END AS call_i
        FROM activity a CROSS JOIN bounds
    ),
    pieces AS (
        -- Most periods lie inside one interval; only those across an edge are cut.
        SELECT agent_id, kind, reason, first_i AS i,
               extract(epoch FROM until - since) AS seconds,
               CASE WHEN call_i = first_i THEN 1 ELSE 0 END AS calls
        FROM spans WHERE first_i = last_i
        UNION ALL
        SELECT s.agent_id, s.kind, s.reason, i,
               extract(epoch FROM least(s.until, bounds.v[i + 1])
                                  - greatest(s.since, bounds.v[i])),
               CASE WHEN s.call_i = i THEN 1 ELSE 0 END
        FROM spans s CROSS JOIN bounds
        CROSS JOIN LATERAL generate_series(s.first_i, s.last_i) i
        WHERE s.first_i < s.last_i
    ),
    summed AS (
        SELECT agent_id, i, kind, reason, sum(seconds) AS seconds, sum(calls) AS calls
        FROM pieces GROUP BY agent_id, i, kind, reason
    )
    SELECT p.agent_id, b.b_start, b.b_end, p.kind, p.reason, p.seconds, p.calls
    FROM summed p JOIN buckets b ON b.i = p.i
    ORDER BY p.agent_id, b.b_start
    """


async def agent_report(db: Db, request: ReportRequest) -> list[AgentRow]:
    """Per agent and interval: calls, talk, wrap-up, logged-in and not-ready time (by
    reason), AHT and occupancy. Only agents logged in (or talking) in an interval get a
    row for it. ``request.queues`` does not apply: agents serve several queues."""
    rows = await _fetch(db, _agent_sql(request.interval), request)
    acc: dict[tuple[str, datetime], dict[str, Any]] = {}
    for r in rows:
        a = acc.setdefault(
            (r.agent_id, r.b_start),
            {"end": r.b_end, "calls": 0, "talk": 0.0, "wrap": 0.0, "in": 0.0, "nr": {}},
        )
        seconds = float(r.seconds or 0)
        if r.kind == "talk":
            a["talk"] += seconds
            a["calls"] += int(r.calls)
            continue
        a["in"] += seconds
        if r.kind == "wrap_up":
            a["wrap"] += seconds
        elif r.kind == "not_ready":
            reason = r.reason or "unknown"
            a["nr"][reason] = a["nr"].get(reason, 0.0) + seconds
    zone = request.zone
    out = []
    for (agent_id, start), a in acc.items():
        not_ready = sum(a["nr"].values())
        out.append(
            AgentRow(
                agent_id=agent_id,
                interval_start=start.astimezone(zone),
                interval_end=a["end"].astimezone(zone),
                calls=a["calls"],
                talk_s=a["talk"],
                wrap_up_s=a["wrap"],
                logged_in_s=a["in"],
                not_ready_s=not_ready,
                not_ready_by_reason=dict(sorted(a["nr"].items())),
                aht_s=kpi.aht(a["talk"], a["wrap"], a["calls"]),
                occupancy=kpi.occupancy(a["talk"], a["wrap"], a["in"], not_ready),
            )
        )
    return out


# --- IVR ---------------------------------------------------------------------------------

CONTAINED = ("hangup",)
DROPPED = ("caller_hangup",)
PASSED_ON = ("queue", "transfer", "voicemail", "callback", "return")

_IVR_FLOWS = """
    WITH entered AS (
        SELECT c.uniqueid, c.ivr_outcome, c.ended_at, s.flow, s.flow_version
        FROM calls c
        CROSS JOIN LATERAL (
            SELECT s.flow, s.flow_version FROM ivr_steps s
            WHERE s.uniqueid = c.uniqueid ORDER BY s.seq LIMIT 1) s
        WHERE c.started_at >= :start AND c.started_at < :end
          AND c.route IS DISTINCT FROM 'agent'
    )
    SELECT flow, flow_version, count(*) AS calls,
        count(*) FILTER (WHERE ivr_outcome = 'hangup') AS contained,
        count(*) FILTER (WHERE ivr_outcome = 'caller_hangup') AS dropped,
        count(*) FILTER (WHERE ivr_outcome IN
            ('queue', 'transfer', 'voicemail', 'callback', 'return')) AS passed_on,
        count(*) FILTER (WHERE ivr_outcome = 'error') AS errors,
        count(*) FILTER (WHERE ivr_outcome IS NULL) AS in_progress
    FROM entered
    GROUP BY flow, flow_version
    ORDER BY flow, flow_version
"""

_IVR_NODES = """
    SELECT s.flow, s.flow_version, s.node_id, min(s.kind) AS kind,
           count(DISTINCT s.uniqueid) AS reached,
           count(DISTINCT s.uniqueid) FILTER (WHERE s.result = 'caller_hangup') AS dropped
    FROM calls c JOIN ivr_steps s ON s.uniqueid = c.uniqueid
    WHERE c.started_at >= :start AND c.started_at < :end
      AND c.route IS DISTINCT FROM 'agent'
    GROUP BY s.flow, s.flow_version, s.node_id
    ORDER BY s.flow, s.flow_version, dropped DESC, reached DESC, s.node_id
"""


async def ivr_report(db: Db, request: ReportRequest) -> list[IvrFlowRow]:
    """Per flow version a call entered by (its first step): calls, contained in
    self-service, dropped (the caller hung up in the IVR), passed on, errors."""
    rows = await _fetch(db, _IVR_FLOWS, request)
    return [
        IvrFlowRow(
            flow=r.flow,
            flow_version=r.flow_version,
            calls=r.calls,
            contained=r.contained,
            dropped=r.dropped,
            passed_on=r.passed_on,
            errors=r.errors,
            in_progress=r.in_progress,
            containment=kpi.containment(r.contained, r.calls),
            drop_off_rate=kpi.drop_off_rate(r.dropped, r.calls),
        )
        for r in rows
    ]


async def ivr_nodes(db: Db, request: ReportRequest) -> list[IvrNodeRow]:
    """Per node of each flow version: callers who reached it and who hung up there."""
    rows = await _fetch(db, _IVR_NODES, request)
    return [
        IvrNodeRow(
            flow=r.flow,
            flow_version=r.flow_version,
            node_id=r.node_id,
            kind=r.kind,
            reached=r.reached,
            dropped=r.dropped,
            drop_off_rate=kpi.drop_off_rate(r.dropped, r.reached),
        )
        for r in rows
    ]


def rows_json(rows: Sequence[_Row]) -> list[Mapping[str, Any]]:
    """Rows as JSON-ready dicts (what the HTTP API sends)."""
    return [r.to_json() for r in rows]
