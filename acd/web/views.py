"""What the wallboard and the agent desktop are sent: plain JSON built from a ``Snapshot``.

Pure functions (no I/O) so the shape of every message is tested without a browser.
Times go out as seconds *as of the snapshot* (time in state, longest wait): the page
adds the time since the message arrived, so a skewed browser clock cannot make an agent
look ten minutes in a state they entered a second ago.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from acd.queues.live import AcdEvent, AgentSnapshot, QueueSnapshot, Snapshot

#: A service level this far (or less) below its target is amber; further below, red.
AMBER_BAND = 0.10

LevelStatus = Literal["none", "ok", "warn", "bad"]
CallPhase = Literal["ringing", "talking", "ended"]


def level_status(level: float | None, target: float) -> LevelStatus:
    """Colour of a service level against its target: green at or above, amber within
    ``AMBER_BAND`` below, red under that; ``none`` before the first handled call."""
    if level is None:
        return "none"
    if level >= target - 1e-9:
        return "ok"
    if level >= target - AMBER_BAND - 1e-9:
        return "warn"
    return "bad"


def activity(agent: AgentSnapshot) -> str:
    """What a supervisor wants to see: a ready agent on a call is busy, not free."""
    if agent.current is not None:
        return agent.current.phase  # "ringing" | "talking"
    return agent.state


def queue_view(queue: QueueSnapshot, agents: Sequence[AgentSnapshot] = ()) -> dict[str, Any]:
    """One queue's tile; agents are counted by ``activity`` (logged-out ones left out)."""
    today = queue.today
    level = today.service_level
    by_activity: dict[str, int] = {}
    for agent in agents:
        if queue.name in agent.queues and agent.state != "logged_out":
            key = activity(agent)
            by_activity[key] = by_activity.get(key, 0) + 1
    return {
        "name": queue.name,
        "waiting": queue.waiting,
        "longest_wait_s": queue.longest_wait_s,
        "agents": by_activity,
        "staffed": queue.staffed,
        "service_level": None if level is None else round(level, 4),
        "target": queue.service_level_target,
        "service_time": queue.service_time,
        "status": level_status(level, queue.service_level_target),
        "offered": today.offered,
        "answered": today.answered,
        "abandoned": today.abandoned,
    }


def agent_view(agent: AgentSnapshot, snapshot: Snapshot) -> dict[str, Any]:
    """One agent's row; the time in state is that of the ``activity`` (ringing for 3 s,
    not ready for the 10 min before)."""
    current = agent.current
    in_state = (snapshot.at - agent.since).total_seconds() if current is None else current.since_s
    return {
        "id": agent.id,
        "name": agent.name,
        "state": agent.state,
        "activity": activity(agent),
        "reason": agent.reason,
        "in_state_s": round(max(0.0, in_state), 1),
        "queues": list(agent.queues),
        "teams": list(agent.teams),
        "current": None
        if current is None
        else {
            "queue": current.queue,
            "phase": current.phase,
            "caller_number": current.caller_number,
            "caller_name": current.caller_name,
            "since_s": current.since_s,
        },
    }


def wallboard_message(snapshot: Snapshot) -> dict[str, Any]:
    """Everything the wallboard shows: queues and agents."""
    return {
        "type": "wallboard",
        "at": snapshot.at.isoformat(),
        "queues": [queue_view(q, snapshot.agents) for q in snapshot.queues],
        "agents": [agent_view(a, snapshot) for a in snapshot.agents],
    }


@dataclass(slots=True)
class ScreenPop:
    """The call last offered to an agent, as the desktop shows it until the next one."""

    interaction_id: str
    uniqueid: str
    queue: str
    caller_number: str
    caller_name: str
    attached: Mapping[str, Any] = field(default_factory=dict)
    phase: CallPhase = "ringing"

    def view(self) -> dict[str, Any]:
        attached = self.attached
        path = attached.get("ivr_path")
        customer = attached.get("customer")
        return {
            "interaction_id": self.interaction_id,
            "uniqueid": self.uniqueid,
            "queue": self.queue,
            "caller_number": self.caller_number,
            "caller_name": self.caller_name,
            "phase": self.phase,
            "flow": attached.get("flow"),
            "ivr_path": [str(p) for p in path] if isinstance(path, list | tuple) else [],
            "customer": dict(customer) if isinstance(customer, Mapping) else {},
        }


class ScreenPops:
    """Follows offers and their outcome per agent, from the service's events."""

    def __init__(self) -> None:
        self._by_agent: dict[str, ScreenPop] = {}

    def get(self, agent_id: str) -> ScreenPop | None:
        return self._by_agent.get(agent_id)

    def add(self, event: AcdEvent) -> list[str]:
        """Apply one event; returns the agents whose pop changed."""
        interaction = event.interaction_id
        if interaction is None:
            return []
        if event.kind == "offer" and event.agent_id is not None:
            self._by_agent[event.agent_id] = ScreenPop(
                interaction_id=interaction,
                uniqueid=event.uniqueid or interaction,
                queue=event.queue or "",
                caller_number=event.caller_number,
                caller_name=event.caller_name,
                attached=event.attached,
            )
            return [event.agent_id]
        if event.kind in ("answer", "callback_placed"):
            phase: CallPhase = "talking"
        elif event.kind in ("complete", "ring_no_answer", "abandon", "timeout"):
            phase = "ended"
        else:
            return []
        # An abandon names no agent: every pop of that interaction ends.
        changed = []
        for agent, pop in self._by_agent.items():
            mine = event.agent_id is None or event.agent_id == agent
            if mine and pop.interaction_id == interaction and pop.phase != phase:
                pop.phase = phase
                changed.append(agent)
        return changed


def agent_message(
    agent_id: str,
    snapshot: Snapshot,
    pop: ScreenPop | None,
    reasons: Mapping[str, str],
) -> dict[str, Any]:
    """What one agent's desktop shows: their own state and the call offered to them."""
    mine = next((a for a in snapshot.agents if a.id == agent_id), None)
    return {
        "type": "agent",
        "at": snapshot.at.isoformat(),
        "agent": None if mine is None else agent_view(mine, snapshot),
        "reasons": [{"code": code, "name": name} for code, name in reasons.items()],
        "call": None if pop is None else pop.view(),
    }
