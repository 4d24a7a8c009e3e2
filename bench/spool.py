"""The record spool: what journaling every record costs, and how fast a replay is.

    python bench/spool.py [--records 50000] [--rounds 3]
                          [--url postgresql+psycopg://acd:acd@127.0.0.1:5432/acd_bench_spool]

1. Accepting during an outage (the database unreachable): ``submit()`` of ``--records``
   finished call records to a ``CallRecordWriter`` with a spool, against the same writer
   without one (the baseline, in-memory only), then the time until the spool has fsync'ed
   them all; bytes on disk per record.
2. Replay, reading: a new writer on that spool directory, until every leftover is read,
   checked, decoded and queued.
3. Replay into PostgreSQL: the same writer once the database is there, until every
   replayed record is confirmed (and the spool deleted), against writing the same records
   from memory with no spool (baseline).
4. Steady state, the database up: the writer with a spool against the writer without one,
   submit until confirmed.

A scratch database (``--url``) is created, migrated and dropped. Best round of each side
counts. It asserts nothing: it prints figures.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from acd.core.calls import CallRecord, Disposition
from acd.db.engine import make_async_engine, normalise_url
from acd.db.migrate import upgrade
from acd.db.spool import Spool
from acd.db.writer import CallRecordWriter
from acd.sim import free_port

DEFAULT_URL = "postgresql+psycopg://acd:acd@127.0.0.1:5432/acd_bench_spool"
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def records(n: int, tag: str) -> list[CallRecord]:
    out = []
    for i in range(n):
        started = T0 + timedelta(seconds=i)
        out.append(
            CallRecord(
                uniqueid=f"{tag}.{i}",
                linkedid=f"{tag}.{i}",
                channel=f"PJSIP/trunk-{i:08x}",
                caller_number=f"+4930{i:08d}",
                caller_name="Bench Caller",
                route="flow",
                started_at=started,
                answered_at=started + timedelta(seconds=1),
                ended_at=started + timedelta(seconds=95),
                disposition=Disposition.COMPLETED,
                ivr_outcome="queue",
                queue="sales",
                agent_id="1001",
                queue_outcome="connected",
            )
        )
    return out


def admin(url: URL) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        dbname="postgres",
        autocommit=True,
    )


def truncate(url: URL) -> None:
    with psycopg.connect(
        host=url.host, port=url.port, user=url.username, password=url.password,
        dbname=url.database, autocommit=True,
    ) as conn:  # fmt: skip
        conn.execute("TRUNCATE calls RESTART IDENTITY")


async def until(condition: Callable[[], bool]) -> None:
    while not condition():  # noqa: ASYNC110 - the writers' counters have no event
        await asyncio.sleep(0.001)


def writer(engine: AsyncEngine, spool_dir: Path | None) -> CallRecordWriter:
    spool = Spool(spool_dir) if spool_dir is not None else None
    return CallRecordWriter(engine, retry_initial=0.05, retry_max=0.2, spool=spool)


async def accept(n: int, down: AsyncEngine, spool_dir: Path | None) -> tuple[float, float]:
    """Seconds to submit ``n`` records during an outage, and until they are durable."""
    w = writer(down, spool_dir)
    await w.start()
    batch = records(n, "outage")
    began = time.perf_counter()
    for r in batch:
        w.submit(r)
    submitted = time.perf_counter() - began
    if w.spool is not None:
        await w.spool.sync()
    durable = time.perf_counter() - began
    await w.stop(timeout=0.1)
    return submitted, durable


async def replay(n: int, url: str, spool_dir: Path) -> tuple[float, float]:
    """Seconds until the leftovers are queued, and until they are all confirmed."""
    engine = make_async_engine(url)
    w = writer(engine, spool_dir)
    began = time.perf_counter()
    await w.start()
    await until(lambda: w.replayed >= n)
    read = time.perf_counter() - began
    await until(lambda: w.written >= n and w.spooled == 0)
    written = time.perf_counter() - began
    await w.stop()
    await engine.dispose()
    return read, written


async def steady(n: int, url: str, spool_dir: Path | None, tag: str) -> float:
    """Seconds to submit ``n`` records with the database up until all are confirmed."""
    engine = make_async_engine(url)
    w = writer(engine, spool_dir)
    await w.start()
    batch = records(n, tag)
    began = time.perf_counter()
    for r in batch:
        w.submit(r)
    await until(lambda: w.written >= n and w.spooled == 0)
    took = time.perf_counter() - began
    await w.stop()
    await engine.dispose()
    return took


async def main(args: argparse.Namespace) -> None:
    url = normalise_url(args.url)
    text_url = url.render_as_string(hide_password=False)
    with admin(url) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(url.database or "")))  # fmt: skip
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(url.database or "")))
    upgrade(url)
    down = make_async_engine(url.set(port=free_port()), connect_timeout=2)
    n = args.records
    best: dict[str, float] = {}

    def keep(name: str, seconds: float) -> None:
        best[name] = min(best.get(name, seconds), seconds)

    work = Path(tempfile.mkdtemp(prefix="acd-bench-spool-"))
    try:
        for _ in range(args.rounds):
            shutil.rmtree(work / "spool", ignore_errors=True)
            keep("submit, no spool", (await accept(n, down, None))[0])
            submitted, durable = await accept(n, down, work / "spool")
            keep("submit, spool", submitted)
            keep("durable, spool", durable)
            size = sum(p.stat().st_size for p in (work / "spool").glob("*.spool"))
            truncate(url)
            read, written = await replay(n, text_url, work / "spool")
            keep("replay read", read)
            keep("replay into PostgreSQL", written)
            truncate(url)
            keep("write from memory, no spool", await steady(n, text_url, None, "mem"))
            truncate(url)
            keep("steady, spool", await steady(n, text_url, work / "steady", "steady"))
            truncate(url)
    finally:
        await down.dispose()
        shutil.rmtree(work, ignore_errors=True)
        with admin(url) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(url.database or "")))  # fmt: skip

    def rate(name: str) -> str:
        return f"{n / best[name]:>10,.0f} records/s  ({best[name]:.3f} s)"

    print(f"{n} finished call records, best of {args.rounds} rounds\n")
    print("1. accepting during an outage")
    print(f"   submit, memory only (baseline)   {rate('submit, no spool')}")
    print(f"   submit, with spool               {rate('submit, spool')}")
    print(f"   ... until fsync'ed               {rate('durable, spool')}")
    cost = best["submit, spool"] / best["submit, no spool"]
    print(f"   submit cost ratio spool/memory   {cost:.2f}x")
    print(f"   on disk                          {size / n:.0f} bytes/record ({size / 1e6:.1f} MB)")
    print("2. replay, reading the spool")
    print(f"   read + decode + queue            {rate('replay read')}")
    print("3. replay into PostgreSQL")
    print(f"   write from memory (baseline)     {rate('write from memory, no spool')}")
    print(f"   replay from the spool            {rate('replay into PostgreSQL')}")
    ratio = best["write from memory, no spool"] / best["replay into PostgreSQL"]
    print(f"   replay vs baseline               {ratio:.2f}x the baseline's rate")
    print("4. steady state, database up")
    ratio = best["write from memory, no spool"] / best["steady, spool"]
    print(f"   with spool                       {rate('steady, spool')}")
    print(f"   spool vs no spool                {ratio:.2f}x the baseline's rate")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    logging.disable(logging.WARNING)
    asyncio.run(main(parser.parse_args()))
