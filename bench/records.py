"""Records in PostgreSQL: the batched writer against COPY, and the report on a big history.

    python bench/records.py [--url postgresql+psycopg://acd:acd@127.0.0.1:5432/acd_bench]
                            [--rows 50000] [--rounds 3] [--calls 10000000]
                            [--queue q03] [--month 2026-06] [--reuse] [--keep]

Everything happens in scratch databases (``--url``, and ``--url`` + ``_writer`` for
part 1), created and migrated here and dropped at the end (``--keep`` leaves the history;
``--reuse`` takes a kept one that holds ``--calls`` generated calls instead of generating
them again).

1. Writer throughput. ``--rows`` finished calls go through ``CallRecordWriter`` and
   their queue events (enqueue, answer, complete: three per call) through ``RowWriter``,
   both with the daemon's default batch size: ``submit()`` every row, then wait until the
   writer has confirmed them all. The baseline is PostgreSQL's ``COPY`` of the very same
   rows into the same (emptied) tables, in the same run, in one transaction, starting
   from the same Python objects (turning them into COPY rows is timed; the COPY alone is
   shown too). Rounds alternate; the best round of each side counts. Target: the writer
   at >= 0.5x COPY's rows/s.
2. The report on a big history. ``--calls`` calls with their queue and agent events are generated
   in SQL (``generate_series``): 20 queues of skewed size over 12 months, a busier
   middle of the day, exponential waits and talk times, about a fifth abandoned. The
   indexes are dropped for the load and built again afterwards, as a restore would.
   Agents wrap up for 5-30 s after each answered call: a ``wrap_up`` queue event, and
   the agent's states in ``agent_events`` (wrap_up, then ready).
   Then ``acd.reports.queries.queue_report`` for one month (``--month``), one queue
   (``--queue``), 30-minute intervals is timed, several times. Target: under 1 s.

It asserts nothing: it prints figures.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from sqlalchemy.engine import URL

from acd.config import DatabaseSettings
from acd.core.calls import CallRecord, Disposition
from acd.db.engine import make_async_engine, normalise_url
from acd.db.migrate import upgrade
from acd.db.models import queue_events
from acd.db.writer import CallRecordWriter, Row, RowWriter
from acd.queues.events import queue_event
from acd.reports.queries import ReportRequest, queue_report

DEFAULT_URL = "postgresql+psycopg://acd:acd@127.0.0.1:5432/acd_bench"
TARGET_WRITER_RATIO = 0.5
TARGET_REPORT_S = 1.0
REPORT_TZ = "Europe/Berlin"
QUEUES = 20
HISTORY_START = date(2025, 12, 1)  # 12 months of history: December 2025 - November 2026
HISTORY_DAYS = 365
CALL_COLUMNS = tuple(f.name for f in dataclasses.fields(CallRecord))  # the writer's columns
EVENT_COLUMNS = tuple(c.name for c in queue_events.columns if c.name != "id")


# --- the database ---------------------------------------------------------------------


def connect(url: URL, dbname: str | None = None) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        dbname=dbname or url.database,
        autocommit=True,
    )


def database_exists(url: URL) -> bool:
    with connect(url, "postgres") as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (url.database,))
        return found.fetchone() is not None


def create_database(url: URL) -> None:
    with connect(url, "postgres") as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(url.database or "")))


def drop_database(url: URL) -> None:
    with connect(url, "postgres") as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(url.database or "")
            )
        )


def truncate(url: URL) -> None:
    with connect(url) as conn:
        conn.execute("TRUNCATE calls, queue_events RESTART IDENTITY")


# --- 1. writer against COPY -----------------------------------------------------------


def sample_rows(n: int) -> tuple[list[CallRecord], list[Row]]:
    """``n`` finished, answered calls and their enqueue, answer and complete events."""
    start = datetime(2026, 6, 1, 8, tzinfo=UTC)
    calls: list[CallRecord] = []
    events: list[Row] = []
    for i in range(n):
        arrived = start + timedelta(seconds=i * 0.7)
        answered = arrived + timedelta(seconds=5 + i % 40)
        ended = answered + timedelta(seconds=60 + i % 300)
        uid = f"1780000000.{i}"
        queue = f"q{i % QUEUES:02d}"
        agent = f"{1000 + i % 200}"
        calls.append(
            CallRecord(
                uniqueid=uid,
                linkedid=uid,
                channel=f"PJSIP/trunk-{i:08x}",
                started_at=arrived,
                caller_number=f"+4930{5550000 + i}",
                caller_name="Caller",
                dialed_number="4930123456",
                route="flow",
                answered_at=answered,
                ended_at=ended,
                disposition=Disposition.COMPLETED,
                hangup_cause="16",
                ivr_outcome="queue",
                queue=queue,
                agent_id=agent,
                queue_outcome="connected",
            )
        )
        wait = (answered - arrived).total_seconds()
        common: dict[str, Any] = {"interaction_id": uid, "uniqueid": uid, "queue": queue}
        events.append(queue_event("enqueue", at=arrived, position=1, priority=0, **common))
        events.append(queue_event("answer", at=answered, agent_id=agent, wait_s=wait, **common))
        events.append(
            queue_event(
                "complete",
                at=ended,
                agent_id=agent,
                wait_s=wait,
                talk_s=(ended - answered).total_seconds(),
                hung_up_by="caller",
                **common,
            )
        )
    return calls, events


async def run_writers(
    url: URL, calls: Sequence[CallRecord], events: Sequence[Row], batch_size: int
) -> float:
    """Seconds from the first ``submit()`` until both writers confirmed every row."""
    engine = make_async_engine(url)
    total = len(calls) + len(events)
    call_writer = CallRecordWriter(engine, batch_size=batch_size, max_pending=total + 1)
    row_writer = RowWriter(engine, batch_size=batch_size, max_pending=total + 1)
    try:
        await call_writer.start()
        await row_writer.start()
        # warm the pool and the statements outside the clock
        async with engine.connect():
            pass
        began = time.perf_counter()
        for record in calls:
            call_writer.submit(record)
        for row in events:
            row_writer.submit(row)
        while call_writer.written < len(calls) or row_writer.written < len(events):
            if call_writer.dropped or row_writer.dropped:
                raise RuntimeError("the writer dropped rows: the figures would be wrong")
            await asyncio.sleep(0.002)
        elapsed = time.perf_counter() - began
        await call_writer.stop()
        await row_writer.stop()
        return elapsed
    finally:
        await engine.dispose()


def run_copy(url: URL, calls: Sequence[CallRecord], events: Sequence[Row]) -> tuple[float, float]:
    """Seconds to COPY the same rows (one COPY per table, one transaction): from the same
    Python objects the writer gets (turning them into rows included), and the COPY alone."""
    with connect(url) as conn:
        began = time.perf_counter()
        call_rows = [
            tuple(
                str(v) if isinstance(v, Disposition) else v
                for v in (getattr(c, f) for f in CALL_COLUMNS)
            )
            for c in calls
        ]
        event_rows = [
            tuple(Jsonb(r.values[c]) if c == "detail" else r.values[c] for c in EVENT_COLUMNS)
            for r in events
        ]
        built = time.perf_counter()
        with conn.transaction(), conn.cursor() as cur:
            calls_copy = sql.SQL("COPY calls ({}) FROM STDIN").format(
                sql.SQL(", ").join(map(sql.Identifier, CALL_COLUMNS))
            )
            with cur.copy(calls_copy) as copy:
                for row in call_rows:
                    copy.write_row(row)
            events_copy = sql.SQL("COPY queue_events ({}) FROM STDIN").format(
                sql.SQL(", ").join(map(sql.Identifier, EVENT_COLUMNS))
            )
            with cur.copy(events_copy) as copy:
                for event_row in event_rows:
                    copy.write_row(event_row)
        done = time.perf_counter()
        return done - began, done - built


def count_rows(url: URL) -> tuple[int, int]:
    with connect(url) as conn:
        calls = conn.execute("SELECT count(*) FROM calls").fetchone()
        events = conn.execute("SELECT count(*) FROM queue_events").fetchone()
        assert calls is not None and events is not None
        return int(calls[0]), int(events[0])


def bench_writer(url: URL, rows: int, rounds: int, batch_size: int) -> None:
    calls, events = sample_rows(rows)
    total = len(calls) + len(events)
    print(
        f"\n1. writer vs COPY: {len(calls):,} calls + {len(events):,} queue events"
        f" = {total:,} rows, batch size {batch_size}"
        f"{' (the default)' if batch_size == DatabaseSettings().batch_size else ''}"
    )
    writer_s: list[float] = []
    copy_s: list[float] = []
    wire_s: list[float] = []
    for n in range(1, rounds + 1):
        truncate(url)
        writer_s.append(asyncio.run(run_writers(url, calls, events, batch_size)))
        written = count_rows(url)
        truncate(url)
        with_rows, wire = run_copy(url, calls, events)
        copy_s.append(with_rows)
        wire_s.append(wire)
        copied = count_rows(url)
        if written != copied or written != (len(calls), len(events)):
            print(f"   round {n}: row counts differ: writer {written}, COPY {copied}")
        print(
            f"   round {n}: writer {total / writer_s[-1]:>8,.0f} rows/s   COPY"
            f" {total / copy_s[-1]:>8,.0f} rows/s (the COPY alone {total / wire:>8,.0f})"
            f"   writer/COPY {copy_s[-1] / writer_s[-1]:.2f}x"
        )
    print(f"   {'':<12}{'writer':>10}{'COPY':>10}{'COPY alone':>12}   (rows/s)")
    for label, pick in (("best", min), ("median", statistics.median)):
        print(
            f"   {label:<12}{total / pick(writer_s):>10,.0f}{total / pick(copy_s):>10,.0f}"
            f"{total / pick(wire_s):>12,.0f}"
        )
    ratio = min(copy_s) / min(writer_s)
    verdict = "meets" if ratio >= TARGET_WRITER_RATIO else "MISSES"
    print(
        f"   writer / COPY (best rounds): {ratio:.2f}x — {verdict} the"
        f" >= {TARGET_WRITER_RATIO}x target; against the COPY alone"
        f" {min(wire_s) / min(writer_s):.2f}x; median rounds"
        f" {statistics.median(copy_s) / statistics.median(writer_s):.2f}x"
    )


# --- 2. the report on a big history ---------------------------------------------------

STAGE = """
CREATE UNLOGGED TABLE bench_calls AS
SELECT i,
       '1700000000.' || i AS uid,
       'q' || lpad((floor({queues} * power(random(), 1.6)))::int::text, 2, '0') AS queue,
       timestamptz '{start} 00:00+00'
         + floor(random() * {days}) * interval '1 day'
         + (7 * 3600 + 12 * 3600 * (random() + random() + random()) / 3) * interval '1 second'
         AS arrived,
       -ln(1 - random()) * 30 AS wait,
       -ln(1 - random()) * 120 AS patience,
       60 + -ln(1 - random()) * 180 AS talk,
       (1000 + floor(random() * 400))::int::text AS agent
FROM generate_series(1, {calls}) AS i
"""

LOAD_CALLS = """
INSERT INTO calls (uniqueid, linkedid, channel, caller_number, dialed_number, route,
                   started_at, answered_at, ended_at, disposition, ivr_outcome,
                   queue, agent_id, queue_outcome)
SELECT uid, uid, 'PJSIP/trunk-' || to_hex(i), '+4930' || (5000000 + i % 4000000)::text,
       '4930123456', 'flow', arrived,
       CASE WHEN wait <= patience THEN arrived + wait * interval '1 second' END,
       arrived + CASE WHEN wait <= patience THEN wait + talk ELSE patience END
                 * interval '1 second',
       CASE WHEN wait <= patience THEN 'completed' ELSE 'caller_hangup' END, 'queue',
       queue, CASE WHEN wait <= patience THEN agent END,
       CASE WHEN wait <= patience THEN 'connected' ELSE 'abandoned' END
FROM bench_calls
"""

LOAD_EVENTS = """
INSERT INTO queue_events (event_id, interaction_id, uniqueid, kind, at, queue, media, agent_id,
                          position, wait_s, talk_s, wrap_up_s, hung_up_by, priority, detail)
SELECT md5(uid || e.kind), uid, uid, e.kind, e.at, queue, 'voice', e.agent, e.position,
       e.wait_s, e.talk_s, e.wrap_up_s, e.hung_up_by, e.priority, '{}'::jsonb
FROM bench_calls,
LATERAL (
    SELECT 'enqueue' AS kind, arrived AS at, NULL AS agent, 1 + (i % 7) AS position,
           0.0::float8 AS wait_s, NULL::float8 AS talk_s, NULL::float8 AS wrap_up_s,
           NULL AS hung_up_by, 0 AS priority
    UNION ALL
    SELECT 'answer', arrived + wait * interval '1 second', agent, NULL, round(wait::numeric, 3),
           NULL, NULL, NULL, NULL
    WHERE wait <= patience
    UNION ALL
    SELECT 'complete', arrived + (wait + talk) * interval '1 second', agent, NULL,
           round(wait::numeric, 3), round(talk::numeric, 3), NULL,
           CASE WHEN i % 3 = 0 THEN 'agent' ELSE 'caller' END, NULL
    WHERE wait <= patience
    UNION ALL
    SELECT 'wrap_up', arrived + (wait + talk + 5 + i % 26) * interval '1 second', agent, NULL,
           round((wait + talk + 5 + i % 26)::numeric, 3), NULL, 5 + i % 26, NULL, NULL
    WHERE wait <= patience
    UNION ALL
    SELECT 'abandon', arrived + patience * interval '1 second', NULL, 1 + (i % 5),
           round(patience::numeric, 3), NULL, NULL, NULL, NULL
    WHERE wait > patience
) AS e
"""


LOAD_AGENT_EVENTS = """
INSERT INTO agent_events (event_id, agent_id, at, state)
SELECT md5(uid || e.state), agent, e.at, e.state
FROM bench_calls,
LATERAL (
    SELECT 'wrap_up' AS state, arrived + (wait + talk) * interval '1 second' AS at
    UNION ALL
    SELECT 'ready', arrived + (wait + talk + 5 + i % 26) * interval '1 second'
) AS e
WHERE wait <= patience
"""


def _index_sql(conn: psycopg.Connection[Any], table: str) -> tuple[list[str], list[str]]:
    """Statements that drop and re-create ``table``'s unique constraints and indexes
    (the primary key stays: the load goes faster without the others)."""
    drops: list[str] = []
    creates: list[str] = []
    for name, definition in conn.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = %s::regclass AND contype = 'u'",
        (table,),
    ):
        drops.append(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        creates.append(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
    for name, definition in conn.execute(
        "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x"
        " JOIN pg_class i ON i.oid = x.indexrelid"
        " WHERE x.indrelid = %s::regclass AND NOT x.indisprimary"
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid)",
        (table,),
    ):
        drops.append(f'DROP INDEX "{name}"')
        creates.append(definition)
    return drops, creates


def generated_calls(url: URL) -> int:
    with connect(url) as conn:
        found = conn.execute("SELECT to_regclass('bench_calls') IS NOT NULL").fetchone()
        if not found or not found[0]:
            return 0
        row = conn.execute("SELECT count(*) FROM calls").fetchone()
        return int(row[0]) if row else 0


def generate(url: URL, calls: int) -> None:
    steps: list[tuple[str, float]] = []

    def step(label: str, action: Callable[[], object]) -> None:
        began = time.perf_counter()
        action()
        steps.append((label, time.perf_counter() - began))
        print(f"   {label:<40}{steps[-1][1]:>8.1f} s", flush=True)

    with connect(url) as conn:
        conn.execute("TRUNCATE calls, queue_events, agent_events RESTART IDENTITY")
        conn.execute("DROP TABLE IF EXISTS bench_calls")
        drops, creates = [], []
        for table in ("calls", "queue_events", "agent_events"):
            d, c = _index_sql(conn, table)
            drops += d
            creates += c
        for statement in drops:
            conn.execute(statement)
        fill = {"queues": QUEUES, "start": HISTORY_START.isoformat(), "days": HISTORY_DAYS}
        step(
            f"draw {calls:,} calls",
            lambda: conn.execute(STAGE.format(calls=calls, **fill)),
        )
        step("insert calls", lambda: conn.execute(LOAD_CALLS))
        step("insert queue events", lambda: conn.execute(LOAD_EVENTS))
        step("insert agent events (wrap-up, ready)", lambda: conn.execute(LOAD_AGENT_EVENTS))

        def build() -> None:
            for statement in creates:
                conn.execute(statement)

        step(f"build {len(creates)} indexes and constraints", build)
        step(
            "vacuum analyze",
            lambda: conn.execute("VACUUM ANALYZE calls, queue_events, agent_events, bench_calls"),
        )
    total = sum(s for _, s in steps)
    print(f"   {'generation in all':<40}{total:>8.1f} s")


async def time_report(url: URL, queue: str, month: str, repeat: int) -> tuple[int, list[float]]:
    """Seconds per ``queue_report`` run (one month, one queue, 30-minute intervals)."""
    year, mon = (int(p) for p in month.split("-"))
    zone = ZoneInfo(REPORT_TZ)
    request = ReportRequest(
        start=datetime(year, mon, 1, tzinfo=zone),
        end=datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=zone),
        tz=REPORT_TZ,
        interval="30m",
        queues=(queue,),
    )
    engine = make_async_engine(url)
    times: list[float] = []
    rows: list[Any] = []
    try:
        async with engine.connect():
            pass  # the pool's first connection is not the report's cost
        for _ in range(repeat):
            began = time.perf_counter()
            rows = await queue_report(engine, request)
            times.append(time.perf_counter() - began)
    finally:
        await engine.dispose()
    return len(rows), times


def bench_report(url: URL, calls: int, queue: str, month: str, repeat: int) -> None:
    with connect(url) as conn:
        sizes = conn.execute(
            "SELECT (SELECT count(*) FROM calls), (SELECT count(*) FROM queue_events),"
            " pg_size_pretty(pg_database_size(current_database())),"
            " (SELECT count(*) FROM agent_events)"
        ).fetchone()
        in_month = conn.execute(
            "SELECT count(*) FROM calls WHERE queue = %s AND started_at >= %s::date"
            " AND started_at < (%s::date + interval '1 month')",
            (queue, f"{month}-01", f"{month}-01"),
        ).fetchone()
    assert sizes is not None and in_month is not None
    print(
        f"   history: {sizes[0]:,} calls, {sizes[1]:,} queue events, {sizes[3]:,} agent events,"
        f" database {sizes[2]};"
        f" {queue} in {month}: {in_month[0]:,} calls"
    )
    count, times = asyncio.run(time_report(url, queue, month, repeat))
    print(
        f"   acd.reports.queries.queue_report: {queue}, {month} ({REPORT_TZ}),"
        f" 30-min intervals: {count} rows"
    )
    print(
        "   runs (s): "
        + "  ".join(f"{t:.3f}" for t in times)
        + f"   first {times[0]:.3f} s, best {min(times):.3f} s,"
        + f" median {statistics.median(times):.3f} s"
    )
    verdict = "meets" if statistics.median(times) < TARGET_REPORT_S else "MISSES"
    print(
        f"   median / target: {statistics.median(times) / TARGET_REPORT_S:.2f}x of"
        f" {TARGET_REPORT_S:.0f} s — {verdict} the target"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL, help="scratch database (created, dropped)")
    parser.add_argument("--rows", type=int, default=50_000, help="calls for the writer test")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--batch-size", type=int, default=DatabaseSettings().batch_size, help="writer batches"
    )
    parser.add_argument("--calls", type=int, default=10_000_000, help="generated history")
    parser.add_argument("--queue", default="q03")
    parser.add_argument("--month", default="2026-06")
    parser.add_argument("--repeat", type=int, default=5, help="report runs")
    parser.add_argument("--reuse", action="store_true", help="take a kept generated history")
    parser.add_argument("--keep", action="store_true", help="keep the generated history")
    parser.add_argument("--skip-writer", action="store_true")
    parser.add_argument("--skip-report", action="store_true")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))

    url = normalise_url(args.url)
    print(f"records bench: {url.render_as_string(hide_password=True)}")
    if not args.skip_writer:
        scratch = url.set(database=f"{url.database}_writer")
        fresh_database(scratch)
        try:
            bench_writer(scratch, args.rows, args.rounds, args.batch_size)
        finally:
            drop_database(scratch)
    if args.skip_report:
        return
    reuse = args.reuse and database_exists(url) and generated_calls(url) == args.calls
    print(f"\n2. report on {args.calls:,} generated calls")
    try:
        if reuse:
            print("   generation: reused the kept history (--reuse)")
        else:
            fresh_database(url)
            generate(url, args.calls)
        bench_report(url, args.calls, args.queue, args.month, args.repeat)
    finally:
        if not args.keep:
            drop_database(url)


def fresh_database(url: URL) -> None:
    drop_database(url)
    create_database(url)
    upgrade(url.render_as_string(hide_password=False))


if __name__ == "__main__":
    main()
