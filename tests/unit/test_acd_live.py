"""The ACD's live view: listeners told of every change, and snapshots.

The service runs on an AMI link that is not connected (no PBX in a unit test), so every
ring fails at once as ``unreachable``: what a supervisor's screen would see then.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from acd.ami import AmiLink
from acd.config import AmiSettings
from acd.core.routing import AgentConfig, QueueConfig
from acd.queues.live import AcdEvent
from acd.queues.service import AcdService, QueueRequest


def service() -> tuple[AcdService, list[Any]]:
    rows: list[Any] = []
    acd = AcdService(AmiLink(AmiSettings()), rows.append, rows.append)
    acd.configure(
        [QueueConfig("sales", service_time=20.0)],
        [AgentConfig("1001", name="Anna", queues=("sales",), device="PJSIP/1001")],
    )
    return acd, rows


def join(acd: AcdService, uniqueid: str, number: str, **attached: Any) -> Any:
    return acd.join(
        QueueRequest("sales", attached=attached),
        uniqueid=uniqueid,
        channel=f"PJSIP/x-{uniqueid}",
        caller_number=number,
        caller_name="Caller",
        record=lambda *_: None,  # type: ignore[arg-type,return-value]
    )


async def test_listeners_see_enqueue_offer_and_agent_states_with_the_call_data() -> None:
    acd, _ = service()
    seen: list[AcdEvent] = []

    def broken(_event: AcdEvent) -> None:
        raise RuntimeError("a listener with a bug")

    acd.subscribe(broken)  # logged; the others still hear everything
    unsubscribe = acd.subscribe(seen.append)
    acd.login("1001")
    join(acd, "1.1", "4930555101", customer={"segment": "vip"}, ivr_path=["welcome", "menu"])
    await asyncio.sleep(0.05)  # the (failing) ring runs as a task

    kinds = [(e.kind, e.agent_id, e.state) for e in seen]
    assert kinds == [
        ("agent_state", "1001", "ready"),
        ("enqueue", None, None),
        ("offer", "1001", None),
        ("agent_state", "1001", "not_ready"),
        ("ring_no_answer", "1001", None),
    ]
    offer = seen[2]
    assert (offer.uniqueid, offer.caller_number, offer.queue) == ("1.1", "4930555101", "sales")
    assert offer.attached == {"customer": {"segment": "vip"}, "ivr_path": ["welcome", "menu"]}
    assert seen[3].reason == "unreachable"

    unsubscribe()
    acd.ready("1001")
    await asyncio.sleep(0.05)
    assert len(seen) == 5


async def test_snapshot_shows_waiting_callers_agents_and_todays_counts() -> None:
    acd, _ = service()
    first = join(acd, "2.1", "4930555201")
    join(acd, "2.2", "4930555202")
    snap = acd.snapshot()
    assert [(w.uniqueid, w.caller_number, w.position) for w in snap.waiting] == [
        ("2.1", "4930555201", 1),
        ("2.2", "4930555202", 2),
    ]
    [queue] = snap.queues
    assert (queue.name, queue.waiting, queue.agents) == ("sales", 2, {"logged_out": 1})
    assert queue.longest_wait_s is not None and queue.longest_wait_s >= 0
    [agent] = snap.agents
    assert (agent.id, agent.name, agent.state, agent.current) == (
        "1001",
        "Anna",
        "logged_out",
        None,
    )

    acd.abandon(first)
    snap = acd.snapshot()
    assert [w.uniqueid for w in snap.waiting] == ["2.2"]
    assert snap.waiting[0].position == 1
    today = snap.queues[0].today
    assert (today.offered, today.abandoned, today.answered) == (2, 1, 0)
    assert today.service_level == 0.0  # one abandoned, none answered in time


def test_todays_counts_start_at_midnight_in_the_centers_time_zone() -> None:
    """A Berlin center's day begins at 23:00 UTC in winter: a call at 22:30 UTC is
    yesterday's, one at 23:30 UTC is today's, and the board shows only today's."""
    now = [datetime(2026, 12, 3, 22, 30, tzinfo=UTC)]
    acd = AcdService(
        AmiLink(AmiSettings()),
        lambda _row: None,
        lambda _record: None,
        wall=lambda: now[0],
        day_zone=ZoneInfo("Europe/Berlin"),
    )
    acd.configure([QueueConfig("sales", service_time=20.0)], [])
    join(acd, "3.1", "4930555301")
    (queue,) = acd.snapshot().queues
    assert queue.today.offered == 1  # 23:30 in Berlin, 3 December

    now[0] = datetime(2026, 12, 3, 23, 30, tzinfo=UTC)  # 00:30 on 4 December in Berlin
    (queue,) = acd.snapshot().queues
    assert queue.today.offered == 0
    join(acd, "3.2", "4930555302")
    (queue,) = acd.snapshot().queues
    assert queue.today.offered == 1
