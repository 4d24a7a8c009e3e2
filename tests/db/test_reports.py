"""Reports against the real PostgreSQL: a small hand-built day, every figure worked out
by hand in the comments next to the rows.

The center is in Europe/Berlin. 10 March 2026 is a plain winter day (CET, UTC+1);
25 October 2026 is the night the clocks go back (03:00 CEST -> 02:00 CET) and 29 March
2026 the night they go forward (02:00 CET -> 03:00 CEST).
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from acd.cli import main
from acd.db.engine import make_async_engine, normalise_url
from acd.db.models import agent_events, calls, ivr_steps, queue_events
from acd.reports.queries import (
    AgentRow,
    QueueRow,
    ReportRequest,
    agent_report,
    ivr_nodes,
    ivr_report,
    queue_report,
)

pytestmark = pytest.mark.postgres

BERLIN = ZoneInfo("Europe/Berlin")
US = timedelta(microseconds=7)  # state changes are written a few microseconds after events


def local(day: str, hms: str) -> datetime:
    return datetime.fromisoformat(f"{day}T{hms}").replace(tzinfo=BERLIN)


def at(hms: str) -> datetime:
    return local("2026-03-10", hms)


def qe(
    kind: str,
    when: datetime,
    interaction: str,
    queue: str = "sales",
    *,
    wait: float | None = None,
    talk: float | None = None,
    agent: str | None = None,
    **detail: Any,
) -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4().hex,
        "interaction_id": interaction,
        "uniqueid": interaction,
        "kind": kind,
        "at": when,
        "queue": queue,
        "media": "voice",
        "agent_id": agent,
        "position": None,
        "wait_s": wait,
        "talk_s": talk,
        "hung_up_by": "caller" if kind == "complete" else None,
        "priority": 0,
        "wrap_up_s": None,
        "detail": detail,
    }


def wrap(
    interaction: str,
    arrived: str,
    ended: str,
    seconds: float,
    agent: str,
    queue: str = "sales",
    **detail: Any,
) -> dict[str, Any]:
    """The ``wrap_up`` event the daemon writes when an agent's wrap-up after a call ends
    (its ``wait_s`` counts from the caller's arrival, like every event's)."""
    wait = (at(ended) - at(arrived)).total_seconds()
    row = qe("wrap_up", at(ended), interaction, queue, wait=wait, agent=agent, **detail)
    return {**row, "wrap_up_s": seconds}


def ae(agent: str, when: datetime, state: str, reason: str | None = None) -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4().hex,
        "agent_id": agent,
        "at": when,
        "state": state,
        "reason": reason,
        "device": f"PJSIP/{agent}",
    }


# --- 10 March, queue sales (and one support call), 09:00-10:30 in 30-minute intervals -----
#
# T = 20 s (service level), S = 5 s (short abandon).
QUEUE_EVENTS = [
    # Arrived 08:59:50, before the period: not counted anywhere (arrival decides).
    qe("enqueue", at("08:59:50"), "c0"),
    qe("answer", at("09:00:05"), "c0", wait=15, agent="a3"),
    # c1 arrives 09:00:00, answered after 10 s by a1, talks 120 s, wraps up 30 s.
    qe("enqueue", at("09:00:00"), "c1"),
    qe("announce", at("09:00:05"), "c1", wait=5),
    qe("offer", at("09:00:06"), "c1", agent="a1", wait=6),
    qe("answer", at("09:00:10"), "c1", wait=10, agent="a1"),
    qe("complete", at("09:02:10"), "c1", wait=10, talk=120, agent="a1"),
    wrap("c1", "09:00:00", "09:02:40", 30, "a1"),
    # c2 arrives 09:05, a1's colleague a2 answers after 30 s (not within T), talk 120 s,
    # wrap-up ended early by the agent after 20 s.
    qe("enqueue", at("09:05:00"), "c2"),
    qe("answer", at("09:05:30"), "c2", wait=30, agent="a2"),
    qe("complete", at("09:07:30"), "c2", wait=30, talk=120, agent="a2"),
    wrap("c2", "09:05:00", "09:07:50", 20, "a2"),
    # c3 hangs up after 3 s: a short abandon.
    qe("enqueue", at("09:10:00"), "c3"),
    qe("abandon", at("09:10:03"), "c3", wait=3),
    # c11 asks for a callback after 60 s; the callback waits until 09:50 and times out:
    # that timeout is the callback's, not a second outcome of the caller.
    qe("enqueue", at("09:12:00"), "c11"),
    qe("callback_requested", at("09:13:00"), "c11", wait=60, number="4930555", source="queue"),
    qe("timeout", at("09:50:00"), "c11", wait=2280, limit="queue"),
    # c4 gives up after 40 s: an abandon that counts.
    qe("enqueue", at("09:20:00"), "c4"),
    qe("abandon", at("09:20:40"), "c4", wait=40),
    # c5 arrives 09:25, answered after exactly 20 s (within T), talks 600 s into the next
    # interval (counted where it arrived), wrap-up 40 s.
    qe("enqueue", at("09:25:00"), "c5"),
    qe("answer", at("09:25:20"), "c5", wait=20, agent="a1"),
    qe("complete", at("09:35:20"), "c5", wait=20, talk=600, agent="a1"),
    wrap("c5", "09:25:00", "09:36:00", 40, "a1"),
    # c6 asks for a callback after 60 s (the longest wait of the interval); a2 calls back
    # at 10:10 and talks 120 s: agent work, but not an answered waiting caller.
    qe("enqueue", at("09:28:00"), "c6"),
    qe("callback_requested", at("09:29:00"), "c6", wait=60, number="4930556", source="queue"),
    qe("callback_placed", at("10:10:00"), "c6", wait=2520, agent="a2", number="4930556"),
    qe("answer", at("10:10:15"), "c6", wait=2535, agent="a2", callback=True),
    qe("complete", at("10:12:15"), "c6", wait=2535, talk=120, agent="a2", callback=True),
    wrap("c6", "09:28:00", "10:12:45", 30, "a2", callback=True),
    # c7 times out after 120 s.
    qe("enqueue", at("09:40:00"), "c7"),
    qe("timeout", at("09:42:00"), "c7", wait=120, limit="queue"),
    # A callback request left in the IVR: nobody waited.
    qe("callback_requested", at("09:45:00"), "ivr1", wait=0, number="4930557", source="ivr"),
    # c8 arrives in support at 09:50, overflows to sales at 09:51 and is answered there
    # after 90 s in all (wait counts from the first queue): a sales call.
    qe("enqueue", at("09:50:00"), "c8", queue="support"),
    qe("overflow", at("09:51:00"), "c8", queue="support", wait=60, to_queue="sales"),
    qe("answer", at("09:51:30"), "c8", wait=90, agent="a1"),
    qe("complete", at("09:53:30"), "c8", wait=90, talk=120, agent="a1"),
    wrap("c8", "09:50:00", "09:54:00", 30, "a1"),
    # c10: support, arrives 09:15, answered after 5 s by a3, talk 120 s, wrap-up 30 s.
    qe("enqueue", at("09:15:00"), "c10", queue="support"),
    qe("answer", at("09:15:05"), "c10", queue="support", wait=5, agent="a3"),
    qe("complete", at("09:17:05"), "c10", queue="support", wait=5, talk=120, agent="a3"),
    wrap("c10", "09:15:00", "09:17:35", 30, "a3", queue="support"),
    # Nothing arrives 10:00-10:30.
]

AGENT_EVENTS = [
    # a1: ready since before the period, wrap-ups of 30, 40 and 30 s, a 5-minute break,
    # lunch from 10:00, logged out at 10:20.
    ae("a1", at("08:55:00"), "ready"),
    ae("a1", at("09:02:10") + US, "wrap_up"),
    ae("a1", at("09:02:40"), "ready"),
    ae("a1", at("09:35:20") + US, "wrap_up"),
    ae("a1", at("09:36:00"), "ready"),
    ae("a1", at("09:40:00"), "not_ready", "break"),
    ae("a1", at("09:45:00"), "ready"),
    ae("a1", at("09:53:30") + US, "wrap_up"),
    ae("a1", at("09:54:00"), "ready"),
    ae("a1", at("10:00:00"), "not_ready", "lunch"),
    ae("a1", at("10:20:00"), "logged_out"),
    # a2: logs in at 09:00:00 sharp, wrap-up 20 s (pressed ready), the callback's wrap-up
    # 30 s, logged out at 10:15.
    ae("a2", at("09:00:00"), "ready"),
    ae("a2", at("09:07:30") + US, "wrap_up"),
    ae("a2", at("09:07:50"), "ready"),
    ae("a2", at("10:12:15") + US, "wrap_up"),
    ae("a2", at("10:12:45"), "ready"),
    ae("a2", at("10:15:00"), "logged_out"),
    # a3: support, wrap-up 30 s, logged out at 09:30.
    ae("a3", at("08:58:00"), "ready"),
    ae("a3", at("09:17:05") + US, "wrap_up"),
    ae("a3", at("09:17:35"), "ready"),
    ae("a3", at("09:30:00"), "logged_out"),
]


def dst_events() -> list[dict[str, Any]]:
    """25 October: one call at 02:30 summer time, one at 02:30 winter time."""
    summer = datetime.fromisoformat("2026-10-25T00:30:00+00:00")  # 02:30 CEST
    winter = datetime.fromisoformat("2026-10-25T01:30:00+00:00")  # 02:30 CET
    spring = datetime.fromisoformat("2026-03-29T01:10:00+00:00")  # 03:10 CEST
    return [
        qe("answer", summer + timedelta(seconds=10), "d1", wait=10, agent="a1"),
        qe("abandon", winter + timedelta(seconds=30), "d2", wait=30),
        qe("answer", spring + timedelta(seconds=8), "d3", wait=8, agent="a1"),
    ]


@pytest.fixture
async def engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_async_engine(pg_url)
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE calls, queue_events, agent_events, ivr_steps"))
        await conn.execute(insert(queue_events), QUEUE_EVENTS + dst_events())
        await conn.execute(insert(agent_events), AGENT_EVENTS)
    try:
        yield engine
    finally:
        await engine.dispose()


def request(**changes: Any) -> ReportRequest:
    fields: dict[str, Any] = {
        "start": at("09:00:00"),
        "end": at("10:30:00"),
        "tz": "Europe/Berlin",
        "interval": "30m",
        "queues": ("sales",),
        "sl_threshold_s": 20.0,
        "short_abandon_s": 5.0,
    }
    fields.update(changes)
    return ReportRequest(**fields)


def by_interval(rows: list[QueueRow]) -> dict[str, QueueRow]:
    return {f"{r.queue} {r.interval_start:%H:%M}": r for r in rows}


async def test_queue_report_known_answers(engine: AsyncEngine) -> None:
    rows = by_interval(await queue_report(engine, request()))
    assert list(rows) == ["sales 09:00", "sales 09:30", "sales 10:00"]

    first = rows["sales 09:00"]
    # Arrived 09:00-09:30: c1 answer 10 s, c2 answer 30 s, c3 abandon 3 s (short),
    # c11 callback 60 s, c4 abandon 40 s, c5 answer 20 s, c6 callback 60 s.
    assert (first.offered, first.answered, first.abandoned, first.short_abandoned) == (7, 3, 2, 1)
    assert (first.timed_out, first.callbacks, first.handled) == (0, 2, 3)
    assert first.answered_within == 2  # c1 (10 s) and c5 (exactly 20 s)
    assert first.service_level == pytest.approx(2 / 3)  # 2 within T / 3 answered
    assert first.service_level_abandons == pytest.approx(2 / 4)  # 2 / (3 + 2 - 1 short)
    assert first.abandonment_rate == pytest.approx(1 / 6)  # (2 - 1) / (7 - 1)
    assert first.asa_s == pytest.approx(20.0)  # (10 + 30 + 20) / 3
    assert first.talk_s == pytest.approx(840.0)  # 120 + 120 + 600 (c6's callback not)
    assert first.wrap_up_s == pytest.approx(90.0, abs=1e-3)  # 30 + 20 + 40
    assert first.aht_s == pytest.approx(930 / 3, abs=1e-3)  # (840 + 90) / 3 = 310
    assert first.longest_wait_s == pytest.approx(60.0)

    second = rows["sales 09:30"]
    # c7 timeout after 120 s, c8 (overflowed in from support) answered after 90 s.
    assert (second.offered, second.answered, second.abandoned, second.timed_out) == (2, 1, 0, 1)
    assert second.service_level == 0.0  # 0 of 1 answered within 20 s
    assert second.service_level_abandons == 0.0  # 0 / (1 + 0 - 0)
    assert second.abandonment_rate == 0.0  # 0 / 2
    assert second.asa_s == pytest.approx(90.0)
    assert second.aht_s == pytest.approx(150.0, abs=1e-3)  # 120 talk + 30 wrap-up
    assert second.longest_wait_s == pytest.approx(120.0)

    empty = rows["sales 10:00"]  # no calls: zeros, and no ratio pretends to be perfect
    assert (empty.offered, empty.answered, empty.abandoned, empty.handled) == (0, 0, 0, 0)
    assert empty.service_level is None and empty.asa_s is None and empty.aht_s is None
    assert empty.abandonment_rate is None and empty.longest_wait_s is None
    assert empty.interval_end == at("10:30:00")


async def test_queue_report_all_queues_and_thresholds(engine: AsyncEngine) -> None:
    rows = by_interval(await queue_report(engine, request(queues=(), sl_threshold_s=30.0)))
    # Every queue with calls, each with all three intervals.
    assert sorted(rows) == [
        "sales 09:00",
        "sales 09:30",
        "sales 10:00",
        "support 09:00",
        "support 09:30",
        "support 10:00",
    ]
    assert rows["sales 09:00"].answered_within == 3  # with T = 30 s c2 counts too
    support = rows["support 09:00"]
    # c10 only (c8's overflow out of support is not an outcome there).
    assert (support.offered, support.answered, support.answered_within) == (1, 1, 1)
    assert support.aht_s == pytest.approx(150.0, abs=1e-3)  # 120 talk + 30 wrap-up
    assert rows["support 09:30"].offered == 0
    # A 60-minute interval and a short-abandon threshold of 0 s.
    hour = by_interval(
        await queue_report(engine, request(interval="60m", short_abandon_s=0.0, queues=("sales",)))
    )
    assert list(hour) == ["sales 09:00", "sales 10:00"]
    assert hour["sales 09:00"].offered == 9 and hour["sales 09:00"].short_abandoned == 0
    # (2 abandons - 0 short) / (9 offered - 0)
    assert hour["sales 09:00"].abandonment_rate == pytest.approx(2 / 9)


async def test_queue_report_dst_autumn_night(engine: AsyncEngine) -> None:
    day = request(
        start=local("2026-10-25", "00:00"), end=local("2026-10-26", "00:00"), interval="60m"
    )
    rows = await queue_report(engine, day)
    # The day has 25 hours: 02:00 comes twice, first in summer time, then in winter time.
    assert len(rows) == 25
    labels = [r.interval_start.isoformat() for r in rows if r.offered]
    assert labels == ["2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00"]
    two = [r for r in rows if r.interval_start.hour == 2]
    assert [(r.answered, r.abandoned) for r in two] == [(1, 0), (0, 1)]
    # (in UTC: Python subtracts two times of one zone by their wall clocks)
    assert all(utc(r.interval_end) - utc(r.interval_start) == timedelta(hours=1) for r in rows)
    # The 15-minute report has 100 intervals; the day report one 25-hour day.
    assert (
        len(await queue_report(engine, ReportRequest(**{**vars_of(day), "interval": "15m"}))) == 100
    )
    (whole,) = await queue_report(engine, ReportRequest(**{**vars_of(day), "interval": "day"}))
    assert (whole.offered, whole.answered, whole.abandoned) == (2, 1, 1)
    assert utc(whole.interval_end) - utc(whole.interval_start) == timedelta(hours=25)


async def test_queue_report_dst_spring_night(engine: AsyncEngine) -> None:
    day = request(
        start=local("2026-03-29", "00:00"), end=local("2026-03-30", "00:00"), interval="60m"
    )
    rows = await queue_report(engine, day)
    # 23 hours: there is no 02:00; the call at 03:10 summer time is in the 03:00 hour.
    assert len(rows) == 23
    assert [r.interval_start.hour for r in rows][:4] == [0, 1, 3, 4]
    (busy,) = [r for r in rows if r.offered]
    assert busy.interval_start.isoformat() == "2026-03-29T03:00:00+02:00"
    assert busy.answered_within == 1


def utc(t: datetime) -> datetime:
    return t.astimezone(UTC)


def vars_of(r: ReportRequest) -> dict[str, Any]:
    return {f: getattr(r, f) for f in ReportRequest.__dataclass_fields__}


async def test_agent_report_known_answers(engine: AsyncEngine) -> None:
    rows = await agent_report(engine, request())
    got: dict[str, AgentRow] = {f"{r.agent_id} {r.interval_start:%H:%M}": r for r in rows}
    # a3 logged out at 09:30: no rows after that.
    assert sorted(got) == [
        "a1 09:00",
        "a1 09:30",
        "a1 10:00",
        "a2 09:00",
        "a2 09:30",
        "a2 10:00",
        "a3 09:00",
    ]
    a1 = got["a1 09:00"]
    # Talk: c1 120 s + c5's first 280 s (09:25:20-09:30); c1 ended here, c5 did not.
    assert a1.calls == 1
    assert a1.talk_s == pytest.approx(400.0)
    assert a1.wrap_up_s == pytest.approx(30.0, abs=1e-3)
    assert a1.logged_in_s == pytest.approx(1800.0)
    assert a1.not_ready_s == 0.0
    assert a1.occupancy == pytest.approx(430 / 1800, abs=1e-6)  # (400 + 30) / (1800 - 0)
    assert a1.aht_s == pytest.approx(430.0, abs=1e-3)

    a1 = got["a1 09:30"]
    # Talk: c5's last 320 s + c8 120 s; wrap-up 40 + 30; break 300 s.
    assert a1.calls == 2
    assert a1.talk_s == pytest.approx(440.0)
    assert a1.wrap_up_s == pytest.approx(70.0, abs=1e-3)
    assert a1.not_ready_by_reason == {"break": pytest.approx(300.0)}
    assert a1.occupancy == pytest.approx(510 / 1500, abs=1e-6)  # (440 + 70) / (1800 - 300)
    assert a1.aht_s == pytest.approx(255.0, abs=1e-3)  # 510 / 2

    a1 = got["a1 10:00"]
    # Lunch 10:00-10:20, then logged out: no available time, so no occupancy.
    assert a1.logged_in_s == pytest.approx(1200.0)
    assert a1.not_ready_by_reason == {"lunch": pytest.approx(1200.0)}
    assert a1.occupancy is None and a1.calls == 0

    a2 = got["a2 09:00"]
    assert (a2.calls, a2.talk_s) == (1, pytest.approx(120.0))
    assert a2.occupancy == pytest.approx(140 / 1800, abs=1e-6)  # (120 + 20) / 1800
    assert got["a2 09:30"].occupancy == 0.0
    a2 = got["a2 10:00"]
    # Logged in 10:00-10:15 = 900 s; the callback's 120 s talk and 30 s wrap-up.
    assert a2.logged_in_s == pytest.approx(900.0)
    assert a2.occupancy == pytest.approx(150 / 900, abs=1e-6)
    # The whole period as one row: a1 talked 840 s and wrapped up 100 s, in 4800 s
    # logged in (09:00-10:20) minus 1500 s not ready.
    totals = {r.agent_id: r for r in await agent_report(engine, request(interval="total"))}
    assert totals["a1"].calls == 3
    assert totals["a1"].occupancy == pytest.approx(940 / 3300, abs=1e-6)
    assert totals["a1"].not_ready_by_reason == {
        "break": pytest.approx(300.0),
        "lunch": pytest.approx(1200.0),
    }


async def test_ivr_containment_and_drop_off(engine: AsyncEngine) -> None:
    start = at("08:00:00")

    def call(uid: str, outcome: str | None, route: str = "flow") -> dict[str, Any]:
        ended = None if outcome is None else start + timedelta(minutes=1)
        return {
            "uniqueid": uid,
            "linkedid": uid,
            "channel": f"PJSIP/trunk-{uid}",
            "route": route,
            "started_at": start,
            "ended_at": ended,
            "disposition": None if ended is None else "completed",
            "ivr_outcome": outcome,
        }

    def steps(uid: str, version: int, *nodes: tuple[str, str, str]) -> list[dict[str, Any]]:
        return [
            {
                "uniqueid": uid,
                "seq": n,
                "flow": "hotline",
                "flow_version": version,
                "flow_hash": f"h{version}",
                "node_id": node,
                "kind": kind,
                "at": start + timedelta(seconds=n),
                "digits": "",
                "result": result,
                "detail": {},
            }
            for n, (node, kind, result) in enumerate(nodes, 1)
        ]

    welcome = ("welcome", "play", "done")
    async with engine.begin() as conn:
        await conn.execute(
            insert(calls),
            [
                call("i1", "queue"),  # v1, passed on to a queue
                call("i2", "caller_hangup"),  # v1, hung up in the main menu
                call("i3", "hangup"),  # v1, self-service: contained
                call("i4", "caller_hangup"),  # v2, hung up during the welcome
                call("i5", "hangup"),  # v2, contained
                call("i6", None),  # v2, still in the IVR
                call("agent1", None, route="agent"),  # a feature-code call: never counted
            ],
        )
        rows = [
            *steps("i1", 1, welcome, ("main_menu", "menu", "1"), ("sales", "queue", "queue")),
            *steps("i2", 1, welcome, ("main_menu", "menu", "caller_hangup")),
            *steps("i3", 1, welcome, ("balance", "say", "done"), ("bye", "hangup", "hangup")),
            *steps("i4", 2, ("welcome", "play", "caller_hangup")),
            *steps("i5", 2, welcome, ("bye", "hangup", "hangup")),
            *steps("i6", 2, welcome),
            *steps("agent1", 2, welcome),
        ]
        await conn.execute(insert(ivr_steps), rows)

    period = request(start=at("00:00:00"), end=at("23:59:00"), interval="total")
    flows = {r.flow_version: r for r in await ivr_report(engine, period)}
    v1, v2 = flows[1], flows[2]
    assert (v1.calls, v1.contained, v1.dropped, v1.passed_on) == (3, 1, 1, 1)
    assert v1.containment == pytest.approx(1 / 3) and v1.drop_off_rate == pytest.approx(1 / 3)
    assert (v2.calls, v2.contained, v2.dropped, v2.in_progress) == (3, 1, 1, 1)
    assert v2.containment == pytest.approx(1 / 3)

    nodes = {(r.flow_version, r.node_id): r for r in await ivr_nodes(engine, period)}
    assert (nodes[1, "welcome"].reached, nodes[1, "welcome"].dropped) == (3, 0)
    assert (nodes[1, "main_menu"].reached, nodes[1, "main_menu"].dropped) == (2, 1)
    assert nodes[1, "main_menu"].drop_off_rate == pytest.approx(0.5)
    assert (nodes[2, "welcome"].reached, nodes[2, "welcome"].dropped) == (3, 1)
    assert nodes[2, "welcome"].drop_off_rate == pytest.approx(1 / 3)
    assert nodes[2, "bye"].drop_off_rate == 0.0


async def test_rows_serialise_to_json(engine: AsyncEngine) -> None:
    rows = await queue_report(engine, request())
    data = json.loads(json.dumps([r.to_json() for r in rows]))
    assert data[0]["interval_start"] == "2026-03-10T09:00:00+01:00"
    assert data[0]["offered"] == 7 and data[2]["service_level"] is None


# --- acd report (the CLI) on the same day ---------------------------------------------------


@pytest.fixture
def loaded(pg_url: str) -> Iterator[dict[str, str]]:
    """The hand-built day in the database; the environment ``acd report`` runs with."""
    engine = sa.create_engine(normalise_url(pg_url), poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE calls, queue_events, agent_events, ivr_steps"))
        conn.execute(insert(queue_events), QUEUE_EVENTS + dst_events())
        conn.execute(insert(agent_events), AGENT_EVENTS)
    engine.dispose()
    yield {"ACD_DATABASE__URL": pg_url, "ACD_REPORTS__TIMEZONE": "Europe/Berlin", "ACD_CONFIG": ""}


MORNING = ["--from", "2026-03-10 09:00", "--to", "2026-03-10 10:30"]


def run_cli(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, ["report", *args], env=env, catch_exceptions=False)


def test_cli_table(loaded: dict[str, str]) -> None:
    result = run_cli(loaded, "queues", *MORNING, "--queue", "sales")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert (
        lines[0]
        == "queues (SL threshold 20 s), 2026-03-10 09:00 to 2026-03-10 10:30 (Europe/Berlin)"
    )
    assert lines[1].split() == [
        "queue", "interval", "offered", "answered", "abandoned", "short", "timeout",
        "callback", "SL", "SL+ab", "aband%", "ASA", "AHT", "longest",
    ]  # fmt: skip
    first, second, empty = (line.split() for line in lines[3:])
    assert first == [
        "sales", "2026-03-10", "09:00+0100", "7", "3", "2", "1", "0", "2",
        "66.7%", "50.0%", "16.7%", "20.0", "310.0", "60.0",
    ]  # fmt: skip
    assert second[3:6] == ["2", "1", "0"]
    assert empty[3:] == ["0", "0", "0", "0", "0", "0", "-", "-", "-", "-", "-", "-"]


def test_cli_csv_and_json_carry_the_same_figures(loaded: dict[str, str]) -> None:
    result = run_cli(loaded, "queues", *MORNING, "--queue", "sales", "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [r["interval_start"] for r in rows] == [
        "2026-03-10T09:00:00+01:00",
        "2026-03-10T09:30:00+01:00",
        "2026-03-10T10:00:00+01:00",
    ]
    assert (rows[0]["offered"], rows[0]["service_level"], rows[0]["aht_s"]) == (
        "7",
        str(round(2 / 3, 6)),
        "310.0",
    )
    assert rows[2]["service_level"] == ""  # nothing to divide by

    result = run_cli(loaded, "queues", *MORNING, "--queue", "sales", "--format", "json")
    data = json.loads(result.output)
    assert [d["offered"] for d in data] == [7, 2, 0]
    assert data[0]["service_level_abandons"] == 0.5 and data[2]["asa_s"] is None

    result = run_cli(loaded, "agents", *MORNING, "--interval", "30m", "--format", "csv")
    agents = {
        (r["agent_id"], r["interval_start"][11:16]): r
        for r in csv.DictReader(io.StringIO(result.output))
    }
    assert agents["a1", "09:30"]["not_ready_by_reason"] == "break=300"
    assert float(agents["a1", "09:30"]["occupancy"]) == pytest.approx(0.34)


def test_cli_agents_and_ivr_tables(loaded: dict[str, str]) -> None:
    result = run_cli(loaded, "agents", *MORNING, "--interval", "total")
    assert result.exit_code == 0, result.output
    a1 = next(line for line in result.output.splitlines() if line.startswith("a1 "))
    assert a1.split()[2:] == [
        "3",
        "840.0",
        "100.0",
        "4800.0",
        "1500.0",
        "313.3",
        "28.5%",
        "break=300s",
        "lunch=1200s",
    ]
    result = run_cli(loaded, "ivr", *MORNING)
    assert result.exit_code == 0 and "(no data in this period)" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["queues", "--interval", "7m"], "'7m' is not one of '15m', '30m', '60m', 'day', 'total'"),
        (["queues", "--from", "10.03.2026"], "'10.03.2026' is not a date or time"),
        (["queues", "--from", "2026-03-10", "--to", "2026-03-09"], "must be after --from"),
        (["agents", "--tz", "Europe/Berlim"], "unknown time zone 'Europe/Berlim'"),
        (["queues", "--sl", "-1"], "-1.0 is not in the range x>=0"),
    ],
)
def test_cli_bad_arguments_are_named(loaded: dict[str, str], args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["report", *args], env=loaded)
    assert result.exit_code == 2
    assert message in result.output


def test_cli_bad_time_zone_setting_is_named(loaded: dict[str, str]) -> None:
    env = {**loaded, "ACD_REPORTS__TIMEZONE": "Mars/Olympus"}
    result = CliRunner().invoke(main, ["report", "queues"], env=env)
    assert result.exit_code == 1
    assert "reports.timezone" in result.output and "Mars/Olympus" in result.output


def test_cli_unreachable_database_is_a_clear_error(loaded: dict[str, str]) -> None:
    env = {**loaded, "ACD_DATABASE__URL": "postgresql://acd:secret@127.0.0.1:1/acd"}
    result = CliRunner().invoke(main, ["report", "queues", *MORNING], env=env)
    assert result.exit_code == 1
    assert "database postgresql" in result.output and "secret" not in result.output
