"""``RowWriter`` sends each batch as binary column arrays (``acd.db.bulk``): every kind
of value the daemon writes arrives as it was given, a row already there stays one, a
refused row is set aside."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from acd.db.models import Base, queue_events
from acd.db.writer import Row, RowWriter
from acd.queues.events import queue_event
from tests.db.test_writer import until

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
AUDIT_LOG = Base.metadata.tables["audit_log"]


async def fetch(engine: AsyncEngine, sql: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(text(sql))).mappings()]


@pytest.fixture
async def empty(db_engine: AsyncEngine) -> AsyncEngine:
    async with db_engine.begin() as conn:
        await conn.execute(text("TRUNCATE queue_events, audit_log RESTART IDENTITY"))
    return db_engine


async def write(engine: AsyncEngine, rows: list[Row]) -> RowWriter:
    writer = RowWriter(engine, flush_interval=0.01)
    await writer.start()
    for row in rows:
        writer.submit(row)
    await until(lambda: writer.written + writer.dropped == len(rows))
    assert await writer.stop() == []
    return writer


async def test_values_of_every_type_arrive_as_given(empty: AsyncEngine) -> None:
    berlin = timezone(timedelta(hours=2))
    rows = [
        queue_event(
            "enqueue",
            at=T0.astimezone(berlin),
            interaction_id="i1",
            queue="sales",
            position=3,
            priority=7,
            skills=["de", "loans"],
            note='quotes " and \\ backslashes, {braces}, commas, ümlauts,\ttabs\nand lines',
        ),
        queue_event("answer", at=T0, interaction_id="i1", queue="sales", agent_id="1001"),
        queue_event(
            "complete",
            at=T0 + timedelta(seconds=61),
            interaction_id="i1",
            queue="sales",
            agent_id="1001",
            wait_s=5,  # an int, into a double precision column
            talk_s=56.25,
            hung_up_by="agent",
        ),
    ]
    writer = await write(empty, rows)
    assert writer.written == 3
    stored = await fetch(empty, "SELECT * FROM queue_events ORDER BY at, kind")
    by_kind = {r["kind"]: r for r in stored}
    enqueue = by_kind["enqueue"]
    assert enqueue["at"] == T0  # the same instant whatever the offset
    assert (enqueue["position"], enqueue["priority"], enqueue["agent_id"]) == (3, 7, None)
    assert enqueue["detail"] == {
        "skills": ["de", "loans"],
        "note": 'quotes " and \\ backslashes, {braces}, commas, ümlauts,\ttabs\nand lines',
    }
    assert by_kind["answer"]["detail"] == {}
    complete = by_kind["complete"]
    assert (complete["wait_s"], complete["talk_s"], complete["hung_up_by"]) == (5.0, 56.25, "agent")
    assert isinstance(complete["wait_s"], float)


async def test_a_row_written_twice_stays_one_and_a_bad_row_is_set_aside(empty: AsyncEngine) -> None:
    first = queue_event("enqueue", at=T0, interaction_id="i2", queue="sales")
    writer = await write(empty, [first])
    assert writer.written == 1
    # a batch sent again after a lost commit reply: i2 is skipped, i3 written
    newer = queue_event("enqueue", at=T0, interaction_id="i3", queue="sales")
    again = await write(empty, [first, newer])
    assert again.written == 2
    bad = queue_event("enqueue", at=T0, interaction_id="i4", queue="sales", hung_up_by="nobody")
    later = queue_event("enqueue", at=T0, interaction_id="i5", queue="sales")
    third = await write(empty, [bad, later])
    assert (third.written, third.dropped) == (1, 1)  # the CHECK refused the bad one
    stored = await fetch(empty, "SELECT interaction_id FROM queue_events ORDER BY id")
    assert [r["interaction_id"] for r in stored] == ["i2", "i3", "i5"]


async def test_json_none_is_stored_as_json_null_and_tables_mix_in_a_batch(
    empty: AsyncEngine,
) -> None:
    values = {
        "event_id": "a1",
        "at": T0,
        "actor": "sue",
        "role": "supervisor",
        "action": "agent.state",
        "target": "agent:1001",
        "before": None,
        "after": {"state": "ready", "n": 1, "ok": True, "none": None},
    }
    rows = [
        Row(AUDIT_LOG, ("a1",), values),
        queue_event("enqueue", at=T0, interaction_id="i4", queue="support"),
    ]
    writer = await write(empty, rows)
    assert writer.written == 2
    (entry,) = await fetch(
        empty, "SELECT before, jsonb_typeof(before) AS kind, after FROM audit_log"
    )
    # As SQLAlchemy's JSONB stored a Python None: the JSON value null, not SQL NULL.
    assert entry["kind"] == "null"
    assert entry["after"] == {"state": "ready", "n": 1, "ok": True, "none": None}
    assert len(await fetch(empty, "SELECT 1 FROM queue_events")) == 1
    assert queue_events.name == "queue_events"
