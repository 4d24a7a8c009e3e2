"""The call-record writer against the real PostgreSQL server, and through a proxy that
lets a test take the database away and give it back."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

import acd.db.writer
from acd.core.calls import CallRecord, Disposition
from acd.db.engine import make_async_engine
from acd.db.writer import CallRecordWriter
from tests.fixtures.logs import LogRecorder, record_logs
from tests.fixtures.postgres import TcpProxy

pytestmark = pytest.mark.postgres

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def call(n: int, **changes: Any) -> CallRecord:
    """A finished call; ``n`` makes it unique."""
    started = T0 + timedelta(seconds=n)
    base = CallRecord(
        uniqueid=f"1740830400.{n}",
        linkedid=f"1740830400.{n}",
        channel=f"PJSIP/trunk-{n:08x}",
        caller_number=f"+49301234{n:04d}",
        caller_name="Alice",
        dialed_number="100",
        route="hotline",
        started_at=started,
        answered_at=started + timedelta(seconds=1),
        ended_at=started + timedelta(seconds=30),
        disposition=Disposition.COMPLETED,
    )
    return dataclasses.replace(base, **changes)


async def until(condition: Callable[[], bool], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.01)


async def rows(engine: AsyncEngine) -> dict[str, dict[str, Any]]:
    async with engine.connect() as conn:
        result = await conn.execute(text("SELECT * FROM calls ORDER BY id"))
        return {r["uniqueid"]: dict(r) for r in result.mappings()}


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> LogRecorder:
    return record_logs(monkeypatch, acd.db.writer)


@pytest.fixture
async def proxied(
    pg_url: str, pg_proxy: TcpProxy, db_engine: AsyncEngine
) -> AsyncIterator[AsyncEngine]:
    """An engine whose every connection goes through ``pg_proxy`` (calls table empty)."""
    engine = make_async_engine(pg_proxy.url(pg_url), connect_timeout=2)
    try:
        yield engine
    finally:
        await engine.dispose()


def fast_retry(engine: AsyncEngine, **kw: Any) -> CallRecordWriter:
    kw = {"flush_interval": 0.02, "retry_initial": 0.05, "retry_max": 0.2, **kw}
    return CallRecordWriter(engine, **kw)


async def test_batch_is_stored_with_every_field(db_engine: AsyncEngine) -> None:
    writer = CallRecordWriter(db_engine, batch_size=100, flush_interval=0.02)
    await writer.start()
    plus3 = timezone(timedelta(hours=3))
    records = [call(n) for n in range(249)]
    records.append(
        call(
            249,
            started_at=T0.astimezone(plus3),
            answered_at=None,
            ended_at=(T0 + timedelta(seconds=5)).astimezone(plus3),
            disposition=Disposition.CALLER_HANGUP,
            caller_name=None,
            hangup_cause="caller hung up during the IVR",
        )
    )
    for r in records:
        writer.submit(r)
    await until(lambda: writer.written == 250)
    assert writer.pending == 0
    assert await writer.stop() == []

    stored = await rows(db_engine)
    assert len(stored) == 250
    first = stored["1740830400.0"]
    assert {k: first[k] for k in ("linkedid", "channel", "caller_number", "route")} == {
        "linkedid": "1740830400.0",
        "channel": "PJSIP/trunk-00000000",
        "caller_number": "+493012340000",
        "route": "hotline",
    }
    assert first["answered_at"] == T0 + timedelta(seconds=1)
    assert first["disposition"] == "completed"
    last = stored["1740830400.249"]
    # Same instant whatever offset the record carried; timestamptz keeps it in UTC.
    assert last["started_at"] == T0
    assert last["ended_at"] == T0 + timedelta(seconds=5)
    assert last["answered_at"] is None and last["caller_name"] is None
    assert last["disposition"] == "caller_hangup"
    assert last["hangup_cause"] == "caller hung up during the IVR"


async def test_call_recorded_on_answer_then_on_hangup_is_one_row(db_engine: AsyncEngine) -> None:
    writer = CallRecordWriter(db_engine, flush_interval=0.01)
    await writer.start()
    answered = call(1, ended_at=None, disposition=None)
    writer.submit(answered)
    await until(lambda: writer.written == 1)
    in_progress = (await rows(db_engine))["1740830400.1"]
    assert in_progress["ended_at"] is None and in_progress["disposition"] is None

    final = call(1, disposition=Disposition.FAILED, hangup_cause="RuntimeError: boom")
    writer.submit(final)
    await until(lambda: writer.written == 2)
    stored = await rows(db_engine)
    assert list(stored) == ["1740830400.1"]
    row = stored["1740830400.1"]
    assert row["ended_at"] == final.ended_at
    assert (row["disposition"], row["hangup_cause"]) == ("failed", "RuntimeError: boom")
    assert row["updated_at"] >= row["created_at"]

    # A stale in-progress record arriving late must not reopen the call.
    writer.submit(answered)
    await until(lambda: writer.written == 3)
    await writer.stop()
    row = (await rows(db_engine))["1740830400.1"]
    assert row["ended_at"] == final.ended_at
    assert (row["disposition"], row["hangup_cause"]) == ("failed", "RuntimeError: boom")


async def test_resubmission_within_one_batch_is_merged(db_engine: AsyncEngine) -> None:
    writer = CallRecordWriter(db_engine, flush_interval=60)
    writer.submit(call(1, ended_at=None, disposition=None, caller_name="early"))
    writer.submit(call(2))
    writer.submit(call(1, caller_name=None, disposition=Disposition.CALLER_HANGUP))
    assert writer.pending == 2
    await writer.start()
    assert await writer.stop(timeout=5) == []
    stored = await rows(db_engine)
    assert list(stored) == ["1740830400.1", "1740830400.2"]  # first submitted, first stored
    assert stored["1740830400.1"]["caller_name"] == "early"
    assert stored["1740830400.1"]["disposition"] == "caller_hangup"


async def test_submit_never_waits_for_an_unreachable_database(
    pg_proxy: TcpProxy, proxied: AsyncEngine, db_engine: AsyncEngine, logs: LogRecorder
) -> None:
    writer = fast_retry(proxied, batch_size=50)
    await writer.start()
    for n in range(10):
        writer.submit(call(n))
    await until(lambda: writer.written == 10)  # the pool now holds a live connection

    pg_proxy.down()
    slowest = 0.0
    for n in range(10, 1010):
        t = time.perf_counter()
        writer.submit(call(n))
        slowest = max(slowest, time.perf_counter() - t)
    assert slowest < 0.05
    await until(lambda: pg_proxy.refused >= 5)  # it kept retrying ...
    assert writer.pending == 1000 and writer.written == 10
    assert len(logs.named("call_records_db_unavailable")) == 1  # ... but said so once

    pg_proxy.up()
    await until(lambda: writer.pending == 0)
    assert writer.written == 1010
    assert await writer.stop() == []
    stored = await rows(db_engine)
    assert sorted(stored) == sorted(f"1740830400.{n}" for n in range(1010))
    restored = logs.named("call_records_db_restored")
    assert len(restored) == 1 and restored[0]["outage_s"] >= 0
    assert len(logs.named("call_records_db_unavailable")) == 1


async def test_connections_cut_mid_stream_lose_and_duplicate_nothing(
    pg_proxy: TcpProxy, proxied: AsyncEngine, db_engine: AsyncEngine, logs: LogRecorder
) -> None:
    writer = fast_retry(proxied, batch_size=20)
    await writer.start()
    for n in range(600):
        writer.submit(call(n))
        if n % 150 == 149:
            pg_proxy.down()
            await asyncio.sleep(0.1)
            pg_proxy.up()
        await asyncio.sleep(0)
    await until(lambda: writer.pending == 0)
    assert await writer.stop() == []
    assert len(await rows(db_engine)) == 600
    assert writer.written == 600


async def test_stop_writes_what_is_pending(db_engine: AsyncEngine, logs: LogRecorder) -> None:
    writer = CallRecordWriter(db_engine, batch_size=1000, flush_interval=60)
    await writer.start()
    for n in range(300):
        writer.submit(call(n))
    assert await writer.stop(timeout=10) == []
    assert len(await rows(db_engine)) == 300
    assert logs.named("call_records_flushed") == [{"written": 300, "dropped": 0}]


async def test_stop_gives_up_in_time_while_the_database_is_down(
    pg_proxy: TcpProxy, proxied: AsyncEngine, logs: LogRecorder
) -> None:
    pg_proxy.down()
    writer = fast_retry(proxied)
    await writer.start()
    for n in range(20):
        writer.submit(call(n))
    t = time.monotonic()
    left = await writer.stop(timeout=1.0)
    assert time.monotonic() - t < 2.5
    assert [r.uniqueid for r in left] == [f"1740830400.{n}" for n in range(20)]
    assert logs.named("call_records_unwritten") == [{"count": 20, "written": 0}]


async def test_stop_gives_up_in_time_on_a_silent_network(
    pg_proxy: TcpProxy, proxied: AsyncEngine, db_engine: AsyncEngine
) -> None:
    writer = fast_retry(proxied, write_timeout=1.0)
    await writer.start()
    writer.submit(call(0))
    await until(lambda: writer.written == 1)
    pg_proxy.stall()  # packets vanish: no error, no reply
    for n in range(1, 6):
        writer.submit(call(n))
    t = time.monotonic()
    left = await writer.stop(timeout=1.5)
    assert time.monotonic() - t < 4
    assert len(left) == 5
    assert list(await rows(db_engine)) == ["1740830400.0"]


async def test_full_queue_drops_the_oldest_records(
    pg_proxy: TcpProxy, proxied: AsyncEngine, db_engine: AsyncEngine, logs: LogRecorder
) -> None:
    pg_proxy.down()
    writer = fast_retry(proxied, max_pending=10)
    await writer.start()
    for n in range(15):
        writer.submit(call(n))
    assert (writer.pending, writer.dropped) == (10, 5)
    assert len(logs.named("call_records_overflow")) == 1
    pg_proxy.up()
    await until(lambda: writer.pending == 0)
    await writer.stop()
    assert sorted(await rows(db_engine)) == sorted(f"1740830400.{n}" for n in range(5, 15))


async def test_invalid_and_refused_records_do_not_block_the_others(
    db_engine: AsyncEngine, logs: LogRecorder
) -> None:
    writer = CallRecordWriter(db_engine, flush_interval=0.01)
    await writer.start()
    writer.submit(call(0))
    await until(lambda: writer.written == 1)

    writer.submit(call(1, ended_at=T0 - timedelta(hours=1)))  # refused at submit
    # Valid alone, but answered after the stored row's end: the database refuses the merge.
    writer.submit(call(0, answered_at=T0 + timedelta(hours=1), ended_at=None, disposition=None))
    for n in range(2, 7):
        writer.submit(call(n))
    await until(lambda: writer.pending == 0)
    await writer.stop()

    stored = await rows(db_engine)
    assert sorted(stored) == sorted(f"1740830400.{n}" for n in (0, 2, 3, 4, 5, 6))
    assert stored["1740830400.0"]["answered_at"] == T0 + timedelta(seconds=1)
    assert (writer.written, writer.dropped) == (6, 2)
    assert [kw["uniqueid"] for kw in logs.named("call_record_invalid")] == ["1740830400.1"]
    assert [kw["uniqueid"] for kw in logs.named("call_record_rejected")] == ["1740830400.0"]
    assert "ck_calls_time_order" in logs.named("call_record_rejected")[0]["error"]


async def test_submit_never_raises(db_engine: AsyncEngine, logs: LogRecorder) -> None:
    writer = CallRecordWriter(db_engine)
    writer.submit("not a record")  # type: ignore[arg-type]
    assert writer.dropped == 1 and writer.pending == 0
    assert len(logs.named("call_record_submit_failed")) == 1
