"""What the wallboard and the agent desktop are sent, built from a snapshot by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from acd.ivr.interpreter import Step
from acd.ivr.route import attached_data
from acd.queues.live import (
    AcdEvent,
    AgentSnapshot,
    CurrentCall,
    DayCounts,
    QueueSnapshot,
    Snapshot,
)
from acd.web.views import ScreenPops, agent_message, level_status, wallboard_message

NOW = datetime(2026, 12, 3, 10, 0, 0, tzinfo=UTC)


def agent(
    id: str, state: str, *, ago: float = 0, queues: tuple[str, ...] = ("sales",), **kw: object
) -> AgentSnapshot:
    return AgentSnapshot(
        id=id,
        name=f"Agent {id}",
        state=state,
        reason=kw.get("reason"),  # type: ignore[arg-type]
        since=NOW - timedelta(seconds=ago),
        queues=queues,
        teams=(),
        device=None,
        current=kw.get("current"),  # type: ignore[arg-type]
    )


def queue(name: str, counts: DayCounts, target: float = 0.8) -> QueueSnapshot:
    return QueueSnapshot(
        name=name,
        waiting=2,
        longest_wait_s=42.5,
        agents={},
        staffed=1,
        service_level_target=target,
        service_time=20.0,
        today=counts,
    )


@pytest.mark.parametrize(
    ("level", "status"),
    [(None, "none"), (0.95, "ok"), (0.8, "ok"), (0.75, "warn"), (0.70, "warn"), (0.69, "bad")],
)
def test_service_level_colour_against_the_target(level: float | None, status: str) -> None:
    assert level_status(level, 0.8) == status


def test_wallboard_counts_busy_agents_apart_from_free_ones() -> None:
    talking = CurrentCall("u1", "sales", "talking", "4930555", "Kim", 12.0)
    snapshot = Snapshot(
        NOW,
        (queue("sales", DayCounts(offered=5, answered=3, answered_in_target=3, abandoned=1)),),
        (
            agent("1001", "ready", ago=30, current=talking),
            agent("1002", "ready", ago=5),
            agent("1003", "not_ready", ago=61.25, reason="lunch"),
            agent("1004", "logged_out"),
            agent("1005", "ready", queues=("support",)),
        ),
        (),
    )
    message = wallboard_message(snapshot)
    (sales,) = message["queues"]
    assert sales["agents"] == {"talking": 1, "ready": 1, "not_ready": 1}
    assert (sales["waiting"], sales["longest_wait_s"]) == (2, 42.5)
    assert sales["service_level"] == 0.75  # 3 in target of 3 answered + 1 abandoned
    assert sales["status"] == "warn"
    by_id = {a["id"]: a for a in message["agents"]}
    assert by_id["1001"]["activity"] == "talking"
    assert by_id["1001"]["current"]["caller_number"] == "4930555"
    assert by_id["1001"]["in_state_s"] == 12.0  # on this call for 12 s, ready for 30 s
    assert by_id["1003"]["in_state_s"] == 61.2
    assert by_id["1003"]["reason"] == "lunch"


def offer(interaction: str, agent_id: str, **kw: object) -> AcdEvent:
    return AcdEvent(
        "offer",
        NOW,
        queue="sales",
        interaction_id=interaction,
        uniqueid=interaction,
        agent_id=agent_id,
        caller_number="4930555260",
        attached={"flow": "hotline", "ivr_path": ["welcome", "sales"], "customer": {"x": 1}},
        **kw,  # type: ignore[arg-type]
    )


def test_screen_pop_follows_the_offer_to_its_end() -> None:
    pops = ScreenPops()
    assert pops.add(offer("u1", "1001")) == ["1001"]
    pop = pops.get("1001")
    assert pop is not None and pop.view()["ivr_path"] == ["welcome", "sales"]
    assert pop.view()["customer"] == {"x": 1}
    assert pop.phase == "ringing"
    assert pops.add(AcdEvent("answer", NOW, interaction_id="u1", agent_id="1001")) == ["1001"]
    assert pop.phase == "talking"
    # Another interaction's events leave this pop alone.
    assert pops.add(AcdEvent("complete", NOW, interaction_id="u2", agent_id="1001")) == []
    assert pops.add(AcdEvent("complete", NOW, interaction_id="u1", agent_id="1001")) == ["1001"]
    assert pop.phase == "ended"


def test_caller_hanging_up_while_the_agent_rings_ends_the_pop() -> None:
    pops = ScreenPops()
    pops.add(offer("u1", "1001"))
    assert pops.add(AcdEvent("abandon", NOW, interaction_id="u1")) == ["1001"]
    pop = pops.get("1001")
    assert pop is not None and pop.phase == "ended"


def test_agent_message_shows_only_that_agent() -> None:
    snapshot = Snapshot(NOW, (), (agent("1001", "wrap_up", ago=3), agent("1002", "ready")), ())
    pops = ScreenPops()
    pops.add(offer("u1", "1002"))
    message = agent_message("1001", snapshot, pops.get("1001"), {"1": "break", "2": "lunch"})
    assert message["agent"]["id"] == "1001"
    assert message["agent"]["state"] == "wrap_up"
    assert message["call"] is None  # 1002's call is not 1001's business
    assert [r["name"] for r in message["reasons"]] == ["break", "lunch"]


def test_ivr_path_and_lookup_results_go_with_the_call() -> None:
    def step(seq: int, node: str, kind: str, result: str, **detail: object) -> Step:
        return Step(seq, "hotline", 1, node, kind, NOW, result=result, detail=detail)

    steps = [
        step(1, "welcome", "play", "played"),
        step(2, "identify", "collect", "collected"),
        step(3, "find_segment", "lookup", "found", values={"name": "Anna", "segment": "vip"}),
        step(4, "sales_vip", "queue", "queue"),
    ]
    attached = attached_data("hotline", steps)
    assert attached["ivr_path"] == ["welcome", "identify", "find_segment", "sales_vip"]
    assert attached["customer"] == {"name": "Anna", "segment": "vip"}
    not_found = [step(1, "find_segment", "lookup", "not_found")]
    assert attached_data("hotline", not_found)["customer"] == {}
