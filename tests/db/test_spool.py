"""The record spool: what a writer accepted survives an outage, a stop and a SIGKILL, and
is written exactly once, in order, when the database is back (real PostgreSQL, through a
proxy that takes it away)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sys
import textwrap
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

import acd.db.spool
import acd.db.writer
from acd.core.calls import Disposition
from acd.db.engine import make_async_engine
from acd.db.models import ivr_steps
from acd.db.spool import Spool, SpoolError, frame, from_json, read_segment, to_json
from acd.db.writer import CallRecordWriter, Row, RowWriter
from tests.db.test_writer import T0, call, rows, until
from tests.fixtures.logs import LogRecorder, record_logs
from tests.fixtures.postgres import TcpProxy

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parents[2]
FAST = {"flush_interval": 0.02, "retry_initial": 0.05, "retry_max": 0.2}


def step(uniqueid: str, seq: int) -> Row:
    at = T0 + timedelta(seconds=seq)
    return Row(
        ivr_steps,
        (uniqueid, seq),
        {
            "uniqueid": uniqueid,
            "seq": seq,
            "flow": "hotline",
            "flow_version": 1,
            "flow_hash": "ab" * 32,
            "node_id": f"node{seq}",
            "kind": "menu",
            "at": at,
            "digits": "1",
            "result": "ok",
            "detail": {"when": at.isoformat(), "n": seq, "nested": [1, None, "x"]},
        },
    )


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.spool"))


def size_of(path: Path) -> int:
    return path.stat().st_size


async def step_rows(engine: AsyncEngine) -> list[tuple[str, int]]:
    async with engine.connect() as conn:
        result = await conn.execute(text("SELECT uniqueid, seq FROM ivr_steps ORDER BY id"))
        return [(r[0], r[1]) for r in result]


@pytest.fixture
async def clean(db_engine: AsyncEngine) -> AsyncEngine:
    async with db_engine.begin() as conn:
        await conn.execute(text("TRUNCATE ivr_steps, queue_events, agent_events RESTART IDENTITY"))
    return db_engine


@pytest.fixture
async def proxied(
    pg_url: str, pg_proxy: TcpProxy, clean: AsyncEngine
) -> AsyncIterator[AsyncEngine]:
    engine = make_async_engine(pg_proxy.url(pg_url), connect_timeout=2)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> LogRecorder:
    recorder = record_logs(monkeypatch, acd.db.spool)
    monkeypatch.setattr(acd.db.writer, "log", recorder)
    return recorder


def call_writer(engine: AsyncEngine, directory: Path, **kw: Any) -> CallRecordWriter:
    return CallRecordWriter(engine, **{**FAST, **kw}, spool=Spool(directory, sync_interval=0.01))


def row_writer(engine: AsyncEngine, directory: Path, **kw: Any) -> RowWriter:
    return RowWriter(engine, **{**FAST, **kw}, spool=Spool(directory, sync_interval=0.01))


# -- the format ---------------------------------------------------------------------------


def test_datetimes_round_trip_with_their_zone() -> None:
    plus3 = timezone(timedelta(hours=3), "MSK")
    value = {"a": T0.astimezone(plus3), "b": [T0, None, 1.5, True], "c": {"d": "x"}}
    back = from_json(to_json(value))
    assert back == value
    assert back["a"].utcoffset() == timedelta(hours=3)
    assert back["b"][0].tzinfo is not None
    with pytest.raises(TypeError, match="cannot spool a set"):
        to_json({"bad": {1}})


def test_a_torn_or_flipped_frame_ends_the_file_after_the_good_ones(tmp_path: Path) -> None:
    good = b"".join(frame({"n": n}) for n in range(3))
    last = frame({"n": 3})
    path = tmp_path / "000000000001.spool"
    for damaged, reason in (
        (last[:-2], "truncated record"),
        (last[:5], "truncated header"),
        (last[:-1] + b"X", "checksum mismatch"),
    ):
        path.write_bytes(good + damaged)
        payloads, bad = read_segment(path)
        assert payloads == [{"n": 0}, {"n": 1}, {"n": 2}]
        assert bad is not None and bad.offset == len(good) and bad.reason.startswith(reason)
    path.write_bytes(good + last)
    assert read_segment(path) == ([{"n": n} for n in range(4)], None)


async def test_one_directory_one_writer(tmp_path: Path) -> None:
    first = Spool(tmp_path / "s")
    first.open()
    with pytest.raises(SpoolError, match="in use by another process"):
        Spool(tmp_path / "s").open()
    await first.close()
    again = Spool(tmp_path / "s")
    again.open()  # released by close (and by the kernel when a process dies)
    await again.close()


async def test_segments_go_oldest_first_and_only_once_confirmed(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", segment_bytes=1, sync_interval=0.01)  # one record each
    spool.open()
    first, second, third = (spool.append({"n": n}) for n in range(3))
    assert (first, second, third) == (1, 2, 3)
    await spool.sync()
    assert spool.records == 3 and spool.segments == 3
    # The oldest and the newest are in the database, the middle one not yet: the newest
    # must stay too, or a replay would end on the middle one's (older) state.
    spool.confirm([first, third])
    await spool.sync()
    assert [p.name for p in segments(tmp_path / "s")] == [
        "000000000002.spool",
        "000000000003.spool",
    ]
    assert spool.records == 1
    spool.confirm([second])
    await spool.sync()
    assert segments(tmp_path / "s") == [] and spool.bytes == 0  # an idle spool keeps no file
    assert spool.append({"n": 3}) == 4  # a fresh segment, never the deleted ones
    await spool.close()
    (left,) = segments(tmp_path / "s")
    assert read_segment(left) == ([{"n": 3}], None)


# -- outage, stop, kill ---------------------------------------------------------------------


async def test_outage_records_are_on_disk_then_written_exactly_once(
    proxied: AsyncEngine, pg_proxy: TcpProxy, clean: AsyncEngine, tmp_path: Path
) -> None:
    pg_proxy.down()
    spool_dir = tmp_path / "calls"
    writer = call_writer(proxied, spool_dir)
    await writer.start()
    for n in range(300):
        writer.submit(call(n))
    assert writer.spool is not None
    await writer.spool.sync()
    assert writer.spooled == 300 and writer.spooled_bytes > 300 * 200
    on_disk = [p for f in segments(spool_dir) for p in read_segment(f)[0]]
    assert len(on_disk) == 300
    await asyncio.sleep(0.3)  # a few failed attempts
    assert writer.written == 0

    pg_proxy.up()
    await until(lambda: writer.written == 300)
    await until(lambda: writer.spooled == 0)
    await writer.spool.sync()
    assert segments(spool_dir) == []  # confirmed: the journal is gone
    assert await writer.stop() == []
    stored = await rows(clean)
    assert len(stored) == 300 and stored["1740830400.7"]["caller_number"] == "+493012340007"


async def test_stop_during_an_outage_leaves_the_records_for_the_next_start(
    proxied: AsyncEngine, pg_proxy: TcpProxy, clean: AsyncEngine, tmp_path: Path
) -> None:
    pg_proxy.down()
    first = row_writer(proxied, tmp_path / "rows")
    await first.start()
    for seq in range(50):
        first.submit(step("u1", seq))
    left = await first.stop(timeout=0.3)
    assert len(left) == 50

    pg_proxy.up()
    second = row_writer(clean, tmp_path / "rows")
    await second.start()
    await until(lambda: second.written == 50)
    assert second.replayed == 50
    assert await second.stop() == []
    assert await step_rows(clean) == [("u1", s) for s in range(50)]
    assert segments(tmp_path / "rows") == []


KILLED_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from acd.db.engine import make_async_engine
    from acd.db.spool import Spool
    from acd.db.writer import CallRecordWriter, RowWriter
    from acd.queues.events import agent_event, queue_event
    from tests.db.test_spool import step
    from tests.db.test_writer import call

    async def main(url, spool_dir, up_to):
        engine = make_async_engine(url, connect_timeout=2)
        calls = CallRecordWriter(engine, flush_interval=0.02, retry_initial=0.05,
                                 retry_max=0.2, spool=Spool(spool_dir + "/calls"))
        steps = RowWriter(engine, flush_interval=0.02, retry_initial=0.05,
                          retry_max=0.2, spool=Spool(spool_dir + "/rows"))
        await calls.start()
        await steps.start()
        for n in range(200):
            calls.submit(call(n))
            steps.submit(step("killed", n))
        while calls.written < up_to:
            await asyncio.sleep(0.01)
        print("written", calls.written, flush=True)
        await asyncio.to_thread(sys.stdin.readline)  # the database is taken away now
        for n in range(200, 400):
            calls.submit(call(n, ended_at=None, disposition=None))  # in progress ...
            calls.submit(call(n))  # ... then ended
            steps.submit(step("killed", n))
            at = call(n).started_at
            steps.submit(queue_event("abandon", at=at, interaction_id=f"i{n}", queue="sales",
                                     uniqueid=call(n).uniqueid, position=2, wait_s=n / 7,
                                     priority=5, note="killed"))
            steps.submit(agent_event("1001", "not_ready", at=at, reason="break"))
        await calls.spool.sync()
        await steps.spool.sync()
        print("synced", flush=True)
        await asyncio.sleep(3600)  # SIGKILL arrives here: no stop(), no flush

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


async def line_starting(stream: asyncio.StreamReader, prefix: bytes) -> None:
    """Read the child's output (its log lines too) up to a line starting with ``prefix``."""
    while not (line := await stream.readline()).startswith(prefix):
        assert line, f"the child ended before printing {prefix!r}"


async def test_sigkill_loses_nothing_and_the_next_writer_replays_it_exactly_once(
    pg_url: str, pg_proxy: TcpProxy, clean: AsyncEngine, tmp_path: Path, logs: LogRecorder
) -> None:
    spool_dir = tmp_path / "spool"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        KILLED_WRITER,
        pg_proxy.url(pg_url),
        str(spool_dir),
        "200",
        cwd=REPO,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        # The first 200 reach the database (and may or may not be confirmed in the spool
        # when the kill comes: replaying them again must not duplicate anything).
        await asyncio.wait_for(line_starting(proc.stdout, b"written"), 30)
        pg_proxy.down()
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
        await asyncio.wait_for(line_starting(proc.stdout, b"synced"), 30)
        os.kill(proc.pid, signal.SIGKILL)
        assert await proc.wait() == -signal.SIGKILL
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert len(await rows(clean)) == 200  # the rest is only on disk

    pg_proxy.up()
    calls = call_writer(clean, spool_dir / "calls")
    steps = row_writer(clean, spool_dir / "rows")
    await calls.start()
    await steps.start()
    await until(lambda: calls.replayed >= 400 and calls.spooled == 0 and steps.spooled == 0)
    await calls.stop()
    await steps.stop()

    stored = await rows(clean)
    assert len(stored) == 400
    assert all(
        r["ended_at"] is not None and r["disposition"] == "completed" for r in stored.values()
    )
    assert await step_rows(clean) == [("killed", s) for s in range(400)]
    async with clean.connect() as conn:
        events = (await conn.execute(text(
            "SELECT interaction_id, wait_s, detail, at FROM queue_events ORDER BY id"
        ))).all()  # fmt: skip
        agents = (await conn.execute(text("SELECT count(*) FROM agent_events"))).scalar()
    assert [e[0] for e in events] == [f"i{n}" for n in range(200, 400)]
    assert events[3][1] == round(203 / 7, 3) and events[3][2] == {"note": "killed"}
    assert events[3][3] == call(203).started_at
    assert agents == 200
    assert not logs.named("spool_corrupt_tail")
    assert segments(spool_dir / "calls") == [] and segments(spool_dir / "rows") == []


async def test_corrupt_tail_is_skipped_with_its_file_and_offset(
    proxied: AsyncEngine, pg_proxy: TcpProxy, clean: AsyncEngine, tmp_path: Path, logs: LogRecorder
) -> None:
    pg_proxy.down()
    spool_dir = tmp_path / "calls"
    first = call_writer(proxied, spool_dir)
    await first.start()
    for n in range(20):
        first.submit(call(n))
    await first.stop(timeout=0.2)
    (segment,) = segments(spool_dir)
    size = segment.stat().st_size
    with segment.open("r+b") as f:  # killed in the middle of the last record
        f.truncate(size - 7)

    pg_proxy.up()
    second = call_writer(clean, spool_dir)
    await second.start()
    await until(lambda: second.written == 19)
    await until(lambda: second.spooled == 0)
    await second.stop()
    stored = await rows(clean)
    assert sorted(stored) == sorted(call(n).uniqueid for n in range(19))
    (bad,) = logs.named("spool_corrupt_tail")
    assert bad["file"] == str(segment) and bad["records_before"] == 19
    assert bad["offset"] == size - len(frame(to_json(second._encode(call(19)))))
    assert bad["reason"].startswith("truncated record")
    # The torn bytes are kept beside the file for a post-mortem.
    assert size_of(Path(bad["kept_as"])) == size - 7 - bad["offset"]


async def test_replay_keeps_the_order_across_restarts(
    proxied: AsyncEngine, pg_proxy: TcpProxy, clean: AsyncEngine, tmp_path: Path
) -> None:
    pg_proxy.down()
    spool_dir = tmp_path / "rows"
    expected = []
    for run in range(3):  # three runs, each stopped during the outage
        writer = row_writer(proxied, spool_dir, batch_size=37)
        await writer.start()
        for seq in range(run * 100, run * 100 + 100):
            writer.submit(step(f"call-{seq % 7}", seq))
            expected.append((f"call-{seq % 7}", seq))
        await writer.stop(timeout=0.2)
    pg_proxy.up()
    last = row_writer(clean, spool_dir, batch_size=37)
    await last.start()
    await until(lambda: last.written == 300)
    await last.stop()
    assert await step_rows(clean) == expected


async def test_a_calls_later_state_wins_after_replay(
    proxied: AsyncEngine, pg_proxy: TcpProxy, clean: AsyncEngine, tmp_path: Path
) -> None:
    ended = call(1, disposition=Disposition.FAILED, hangup_cause="boom", queue="sales")
    answered = dataclasses.replace(ended, ended_at=None, disposition=None, hangup_cause=None)
    # Already in the database: the call's final record.
    direct = CallRecordWriter(clean, **FAST)
    await direct.start()
    direct.submit(ended)
    await direct.stop()

    pg_proxy.down()
    spool_dir = tmp_path / "calls"
    first = call_writer(proxied, spool_dir)
    await first.start()
    first.submit(answered)  # a stale in-progress record of call 1, replayed later
    second_call = call(2, ended_at=None, disposition=None)
    first.submit(second_call)  # call 2: in progress, then ended, then a late stale copy
    first.submit(call(2, disposition=Disposition.CALLER_HANGUP, agent_id="1001"))
    first.submit(second_call)
    await first.stop(timeout=0.2)

    pg_proxy.up()
    replay = call_writer(clean, spool_dir)
    await replay.start()
    await until(lambda: replay.replayed == 4 and replay.spooled == 0)
    await replay.stop()
    stored = await rows(clean)
    one = stored[ended.uniqueid]
    assert (one["disposition"], one["hangup_cause"], one["queue"]) == ("failed", "boom", "sales")
    assert one["ended_at"] == ended.ended_at
    two = stored[call(2).uniqueid]
    assert (two["disposition"], two["agent_id"]) == ("caller_hangup", "1001")
    assert two["ended_at"] == call(2).ended_at


async def test_calls_submitted_during_the_replay_are_not_overwritten_by_it(
    proxied: AsyncEngine, pg_proxy: TcpProxy, clean: AsyncEngine, tmp_path: Path
) -> None:
    pg_proxy.down()
    spool_dir = tmp_path / "calls"
    first = call_writer(proxied, spool_dir)
    await first.start()
    for n in range(1000):
        first.submit(call(n, ended_at=None, disposition=None))
    await first.stop(timeout=0.2)

    pg_proxy.up()
    second = call_writer(clean, spool_dir)
    await second.start()
    second.submit(call(5, disposition=Disposition.COMPLETED))  # before the replay is read
    await until(lambda: second.written >= 1000 and second.spooled == 0)
    await second.stop()
    stored = await rows(clean)
    assert len(stored) == 1000
    assert stored[call(5).uniqueid]["disposition"] == "completed"
    assert sum(r["ended_at"] is None for r in stored.values()) == 999


async def test_an_unusable_spool_directory_is_logged_and_calls_go_on(
    clean: AsyncEngine, tmp_path: Path, logs: LogRecorder
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    writer = call_writer(clean, blocker / "calls")
    await writer.start()
    writer.submit(call(1))
    await until(lambda: writer.written == 1)
    await writer.stop()
    (problem,) = logs.named("call_records_spool_unavailable")
    assert str(blocker / "calls") in problem["error"]


def test_naive_datetime_stays_naive_and_aware_stays_aware() -> None:
    naive = datetime(2025, 1, 1, 12, 0)
    aware = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    assert from_json(to_json([naive, aware])) == [naive, aware]
