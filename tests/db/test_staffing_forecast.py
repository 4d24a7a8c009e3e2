"""The day-ahead forecast from a history the daemon's own writer stored in PostgreSQL:
four Fridays of ``queue_events`` and ``agent_events`` (wrap-up) written by ``RowWriter``,
read back per local interval through the queue report, forecast and staffed
(``acd staffing forecast``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from acd.cli import main
from acd.core.forecast import forecast_day
from acd.db.engine import make_async_engine
from acd.db.writer import Row, RowWriter
from acd.queues.events import agent_event, queue_event
from acd.reports.history import queue_history
from tests.db.test_writer import until

pytestmark = pytest.mark.postgres

BERLIN = ZoneInfo("Europe/Berlin")
FRIDAY = date(2026, 12, 4)
#: Calls that arrived in sales between 09:00 and 09:30 Berlin time, 1-4 weeks back.
#: Weighted 4-3-2-1: (4*110 + 3*100 + 2*95 + 70) / 10 = 100 calls.
NINE_OCLOCK = {1: 110, 2: 100, 3: 95, 4: 70}
TALK_S = 170.0
WRAP_S = 10.0
WAIT_S = 5.0


def one_call(uid: str, queue: str, arrived: datetime, *, answered: bool = True) -> list[Row]:
    """The rows the ACD writes for a call that waited and was answered (or abandoned)."""
    rows = [queue_event("enqueue", at=arrived, interaction_id=uid, queue=queue, position=1)]
    if not answered:
        rows.append(
            queue_event(
                "abandon",
                at=arrived + timedelta(seconds=30),
                interaction_id=uid,
                queue=queue,
                wait_s=30.0,
            )
        )
        return rows
    answer = arrived + timedelta(seconds=WAIT_S)
    agent = f"agent-{uid}"
    rows.append(
        queue_event(
            "answer", at=answer, interaction_id=uid, queue=queue, agent_id=agent, wait_s=WAIT_S
        )
    )
    rows.append(
        queue_event(
            "complete",
            at=answer + timedelta(seconds=TALK_S),
            interaction_id=uid,
            queue=queue,
            agent_id=agent,
            wait_s=WAIT_S,
            talk_s=TALK_S,
            hung_up_by="caller",
        )
    )
    # the agent wraps up for WRAP_S after the call (a state change, and the queue's
    # record of the wrap-up once it ended), then is ready again
    ended = answer + timedelta(seconds=TALK_S)
    ready = ended + timedelta(seconds=WRAP_S)
    rows.append(agent_event(agent, "wrap_up", at=ended))
    rows.append(agent_event(agent, "ready", at=ready))
    rows.append(
        queue_event(
            "wrap_up",
            at=ready,
            interaction_id=uid,
            queue=queue,
            agent_id=agent,
            wait_s=(ready - arrived).total_seconds(),
            wrap_up_s=WRAP_S,
        )
    )
    return rows


def history_rows() -> list[Row]:
    rows: list[Row] = []
    for weeks, count in NINE_OCLOCK.items():
        day = FRIDAY - timedelta(weeks=weeks)
        nine = datetime.combine(day, time(9, 0), tzinfo=BERLIN)
        for n in range(count):
            arrived = nine + timedelta(seconds=n * 1799 / count)
            rows += one_call(f"sales-{weeks}-{n}", "sales", arrived)
        # 08:59:59 is the interval before; one abandoned call is still offered.
        rows += one_call(f"early-{weeks}", "sales", nine - timedelta(seconds=1), answered=False)
        # the same hour in another queue, and a busy Thursday: neither counts
        rows += one_call(f"support-{weeks}", "support", nine + timedelta(minutes=5))
        thursday = nine - timedelta(days=1)
        for n in range(50):
            rows += one_call(f"thu-{weeks}-{n}", "sales", thursday + timedelta(seconds=n))
    return rows


@pytest.fixture
async def history(pg_url: str) -> AsyncIterator[AsyncEngine]:
    """The test database with the Fridays above, written through ``RowWriter``."""
    engine = make_async_engine(pg_url)
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE queue_events, agent_events RESTART IDENTITY"))
    writer = RowWriter(engine, flush_interval=0.02)
    await writer.start()
    rows = history_rows()
    for row in rows:
        writer.submit(row)
    await until(lambda: writer.written == len(rows), within=60)
    assert await writer.stop() == []
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_history_is_read_per_local_interval_and_forecast(history: AsyncEngine) -> None:
    days = await queue_history(
        history, "sales", before=FRIDAY, days=28, tz="Europe/Berlin", interval_s=1800
    )
    assert min(days) == FRIDAY - timedelta(weeks=4)  # the first day with calls
    assert max(days) == FRIDAY - timedelta(days=1)
    assert days[FRIDAY - timedelta(days=2)] == {}  # a Wednesday on record, without calls
    nine = days[FRIDAY - timedelta(weeks=1)][(time(9, 0), 0)]
    assert (nine.offered, nine.handled) == (110, 110)
    assert nine.handle_s == pytest.approx(110 * (TALK_S + WRAP_S))
    assert days[FRIDAY - timedelta(weeks=1)][(time(8, 30), 0)].offered == 1

    forecast = forecast_day(days, FRIDAY, BERLIN, 1800)
    assert forecast.method == "same_weekday"
    by_slot = {i.slot: i for i in forecast.intervals}
    assert by_slot[(time(9, 0), 0)].calls == pytest.approx(100.0)
    assert by_slot[(time(9, 0), 0)].aht_s == pytest.approx(180.0)
    assert by_slot[(time(8, 30), 0)].calls == pytest.approx(1.0)
    assert by_slot[(time(10, 0), 0)].calls == 0.0
    assert forecast.calls == pytest.approx(101.0)


async def invoke(pg_url: str, *args: str) -> Result:
    """``acd staffing forecast --date 2026-12-04 ARGS`` on the test database (in a thread:
    the command runs its own event loop)."""
    return await asyncio.to_thread(
        CliRunner().invoke,
        main,
        ["staffing", "forecast", "--date", "2026-12-04", *args],
        env={"ACD_DATABASE__URL": pg_url, "ACD_CONFIG": None},
    )


async def run_forecast(pg_url: str, *args: str) -> str:
    result = await invoke(pg_url, "--queue", "sales", *args)
    assert result.exit_code == 0, result.output
    return result.output


async def test_the_forecast_command_staffs_the_nine_oclock_interval(
    history: AsyncEngine, pg_url: str
) -> None:
    common = ["--tz", "Europe/Berlin", "--interval", "30m", "--sl", "80% in 20s"]
    common += ["--max-occupancy", "85%", "--shrinkage", "30%"]
    out = json.loads(await run_forecast(pg_url, *common, "--format", "json"))
    assert out["method"] == "same_weekday"
    assert [d["weight"] for d in out["days"]] == [4, 3, 2, 1]
    assert len(out["intervals"]) == 48
    nine = next(i for i in out["intervals"] if i["start"] == "2026-12-04T09:00:00+01:00")
    assert (nine["calls"], nine["aht_s"]) == (100.0, 180.0)
    assert (nine["agents"], nine["scheduled"]) == (14, 20)
    assert round(nine["service_level"] * 100, 1) == 88.8
    assert round(nine["probability_waiting"] * 100, 1) == 17.4
    assert round(nine["asa_s"], 1) == 7.8

    table = await run_forecast(pg_url, *common)
    row = next(line for line in table.splitlines() if line.startswith("09:00"))
    assert row.split() == [
        "09:00",
        "100.0",
        "180.0s",
        "14",
        "20",
        "88.8%",
        "17.4%",
        "7.8s",
        "71.4%",
    ]
    assert "peak scheduled 20" in table

    csv_lines = (await run_forecast(pg_url, *common, "--format", "csv")).splitlines()
    assert csv_lines[0].startswith("start,calls,aht_s,traffic_erl,agents,scheduled")
    assert "2026-12-04T09:00:00+01:00,100.0,180.0,10.0,14,20,0.8884,0.1741,7.84,0.7143" in csv_lines


async def test_a_queue_without_history_is_an_error_naming_it(
    history: AsyncEngine, pg_url: str
) -> None:
    result = await invoke(pg_url, "--queue", "nobody")
    assert result.exit_code == 1
    assert "queue 'nobody': no history in the 4 week(s) before 2026-12-04" in result.output


async def test_the_night_the_clocks_go_back_has_two_two_oclock_intervals(pg_url: str) -> None:
    engine = make_async_engine(pg_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("TRUNCATE queue_events, agent_events RESTART IDENTITY"))
        # 02:00-02:30 Berlin on the two Sundays before 25 October 2026: 6 and 3 calls
        rows: list[Row] = []
        for weeks, count in ((1, 6), (2, 3)):
            two = datetime.combine(date(2026, 10, 25) - timedelta(weeks=weeks), time(2), BERLIN)
            for n in range(count):
                rows += one_call(f"night-{weeks}-{n}", "night", two + timedelta(minutes=n))
        writer = RowWriter(engine, flush_interval=0.02)
        await writer.start()
        for row in rows:
            writer.submit(row)
        await until(lambda: writer.written == len(rows))
        assert await writer.stop() == []
    finally:
        await engine.dispose()
    result = await asyncio.to_thread(
        CliRunner().invoke,
        main,
        [
            "staffing",
            "forecast",
            "--date",
            "2026-10-25",
            "--queue",
            "night",
            "--weeks",
            "2",
            "--tz",
            "Europe/Berlin",
            "--format",
            "json",
        ],
        env={"ACD_DATABASE__URL": pg_url, "ACD_CONFIG": None},
    )
    assert result.exit_code == 0, result.output
    intervals = json.loads(result.output)["intervals"]
    assert len(intervals) == 50  # 25 hours
    calls = {i["start"]: i["calls"] for i in intervals}
    # weights 2 (a week back) and 1: (2*6 + 3) / 3 = 5 calls, in both 02:00 half-hours
    assert calls["2026-10-25T02:00:00+02:00"] == 5.0
    assert calls["2026-10-25T02:00:00+01:00"] == 5.0
    assert calls["2026-10-25T03:00:00+01:00"] == 0.0
