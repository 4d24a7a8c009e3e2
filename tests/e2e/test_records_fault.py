"""The acceptance fault test of the record spool: PostgreSQL is stopped for 60 s while
200 calls flow through the daemon (real Asterisk, real daemon process, a real cluster of
the test's own that is really stopped); the daemon is killed with SIGKILL once during the
outage and started again on the same spool; afterwards every call has exactly one
complete record and its IVR steps, none twice.

Calls are placed only while a daemon is up: the SIGKILL comes between two waves, one
second after the last call of the wave ended (the spool's documented bound is
``spool_sync_interval`` + one fsync, 0.05 s by default). A call placed while no daemon
runs goes to the dialplan's ``[acd-fallback]`` and never reaches acd, so it has no
record by design; ``tests/e2e/test_hotline.py`` covers that path.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from acd.ami import AmiLink
from acd.db.spool import read_segment
from acd.sim import CallSimulator, SimulatedCall
from tests.fixtures.daemon import DaemonProcess
from tests.fixtures.private_postgres import PrivatePostgres

pytestmark = [pytest.mark.asterisk, pytest.mark.postgres]

OUTAGE_S = 60.0
WAVE = 25  # calls at once
FLOW = """\
flow: fault_line
version: 1
start: menu
languages: {default: en, available: [en]}
nodes:
  menu:
    kind: menu
    prompt: beep
    choices:
      1: bye
    timeout: {seconds: 3, retries: 0}
    on_failure: bye
  bye:
    kind: hangup
    prompt: beep
"""


class Caller:
    """Places the test's calls, half into the hotline greeting, half into a YAML flow."""

    def __init__(self, ami: AmiLink) -> None:
        self.sim = CallSimulator(ami)
        self.placed: list[tuple[str, SimulatedCall]] = []

    async def wave(self, count: int) -> list[tuple[str, SimulatedCall]]:
        """``count`` calls, ``WAVE`` at a time; returns once every one has ended."""
        done: list[tuple[str, SimulatedCall]] = []
        while len(done) < count:
            batch = []
            for _ in range(min(WAVE, count - len(done))):
                n = len(self.placed)
                route = "hotline" if n % 2 == 0 else "flow"
                call = await self.sim.place(
                    "1",
                    caller_number=f"49307770{n:03d}",
                    context="acd-hotline" if route == "hotline" else "acd-ivr",
                    variables={"SIM_DELAY": 0.5},
                )
                self.placed.append((route, call))
                batch.append((route, call))
            await asyncio.gather(*(c.wait_ended(60) for _, c in batch))
            done += batch
        for route, call in done:  # each one was served by acd, not by the fallback
            event = "AcdChoice" if route == "hotline" else "AcdIvrOutcome"
            assert call.user_events(event), (route, call.uniqueid, call.events)
        return done


def query(url: str, sql: str) -> list[dict[str, Any]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.text(sql)).mappings()]
    finally:
        engine.dispose()


def spooled_ids(directory: Path) -> set[str]:
    """Uniqueids of the call records journaled in ``directory`` (as a killed daemon left it)."""
    found = set()
    for segment in sorted(directory.glob("*.spool")):
        payloads, bad = read_segment(segment)
        assert bad is None, bad
        found |= {p["uniqueid"] for p in payloads}
    return found


async def wait_for(condition: Callable[[], bool], within: float, what: str) -> float:
    began = time.monotonic()
    while not condition():
        if time.monotonic() - began > within:
            raise AssertionError(f"{what}: not within {within} s")
        await asyncio.sleep(0.5)
    return time.monotonic() - began


async def test_outage_of_60s_with_a_sigkill_loses_and_duplicates_no_record(
    start_daemon: Callable[..., DaemonProcess],
    private_postgres: PrivatePostgres,
    ami_client: AmiLink,
    tmp_path: Path,
) -> None:
    db = private_postgres.url
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "fault_line.yaml").write_text(FLOW)
    spool = tmp_path / "spool"  # shared by both daemons, as on a real host
    settings = {
        "ACD_DATABASE__URL": db,
        "ACD_DATABASE__SPOOL_DIR": str(spool),
        "ACD_HOTLINE__PROMPT": "beep",
        "ACD_HOTLINE__WAIT_MS": "3000",
        "ACD_IVR__FLOWS_DIR": str(flows),
        "ACD_IVR__ENTRY_FLOW": "fault_line",
    }
    caller = Caller(ami_client)
    first = start_daemon(**settings)

    before = await caller.wave(50)  # the database is up
    await wait_for(
        lambda: len(query(db, "select 1 from calls where ended_at is not null")) == 50,
        30,
        "the first 50 records written directly",
    )

    private_postgres.stop()
    outage_began = time.monotonic()
    killed_wave = await caller.wave(50)  # only the spool has these
    await asyncio.sleep(1.0)
    first.proc.kill()  # SIGKILL: no shutdown, no flush
    assert first.proc.wait(10) == -9
    on_disk = spooled_ids(spool / "calls")
    assert {c.uniqueid for _, c in killed_wave} <= on_disk

    second = start_daemon(**settings)
    after = await caller.wave(100)  # the new daemon, the database still down
    assert not second.events("call_records_db_restored")
    assert time.monotonic() - outage_began < OUTAGE_S, "the waves took longer than the outage"
    await asyncio.sleep(OUTAGE_S - (time.monotonic() - outage_began))

    private_postgres.start()
    recovered_s = await wait_for(
        lambda: len(query(db, "select 1 from calls where ended_at is not null")) >= 200,
        75,  # the writer's retry backoff is capped at 30 s
        "all 200 records after the outage",
    )
    await wait_for(lambda: not list(spool.glob("*/*.spool")), 15, "the spool emptied")

    placed = before + killed_wave + after
    assert len(placed) == 200
    stored = {r["uniqueid"]: r for r in query(db, "select * from calls")}
    assert len(stored) == 200  # nothing extra, and (uniqueid is unique) nothing twice
    for route, call in placed:
        row = stored[call.uniqueid]
        assert row["caller_number"] == call.caller_number
        assert row["route"] == route
        assert row["ended_at"] is not None and row["disposition"] == "completed", row
    steps = query(db, "select uniqueid, seq, node_id from ivr_steps order by uniqueid, seq")
    by_call: dict[str, list[str]] = {}
    for s in steps:
        by_call.setdefault(s["uniqueid"], []).append(s["node_id"])
    flow_calls = {c.uniqueid for route, c in placed if route == "flow"}
    assert set(by_call) == flow_calls
    assert all(path == ["menu", "bye"] for path in by_call.values()), by_call
    assert len(steps) == 2 * len(flow_calls)
    versions = query(db, "select activated_at from flow_versions where flow = 'fault_line'")
    assert len(versions) == 2  # one per daemon start, none replayed twice

    replayed = second.events("call_records_replaying")
    assert replayed and replayed[0]["records"] >= 50, second.log_tail()
    print(f"recovered {recovered_s:.1f} s after PostgreSQL came back; replayed {replayed[0]}")
