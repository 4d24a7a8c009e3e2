"""The live view: queues, agents and waiting calls as the ACD has them now."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from acd.api.auth import EVERYONE
from acd.api.endpoints import ApiError, Call, endpoint
from acd.queues.live import AgentSnapshot, QueueSnapshot, Snapshot, WaitingCall


class TodayOut(BaseModel):
    offered: int
    answered: int
    answered_in_target: int
    abandoned: int
    #: Answered within the queue's service time over answered + abandoned; null: no calls.
    service_level: float | None
    average_wait_s: float | None


class QueueOut(BaseModel):
    name: str
    waiting: int
    longest_wait_s: float | None
    #: Agents serving the queue by state (ready, not_ready, wrap_up, logged_out).
    agents: dict[str, int]
    staffed: int
    service_level_target: float
    service_time: float
    today: TodayOut


class CurrentCallOut(BaseModel):
    interaction_id: str
    queue: str
    phase: str
    caller_number: str
    caller_name: str
    since_s: float


class AgentOut(BaseModel):
    id: str
    name: str
    state: str
    reason: str | None
    since: datetime
    queues: list[str]
    teams: list[str]
    device: str | None
    current: CurrentCallOut | None


class WaitingCallOut(BaseModel):
    interaction_id: str
    uniqueid: str
    queue: str
    caller_number: str
    caller_name: str
    wait_s: float
    position: int
    priority: int
    callback: bool
    offered_to: str | None


class SnapshotOut(BaseModel):
    at: datetime
    queues: list[QueueOut]
    agents: list[AgentOut]
    waiting: list[WaitingCallOut]


def queue_out(q: QueueSnapshot) -> QueueOut:
    t = q.today
    return QueueOut(
        name=q.name,
        waiting=q.waiting,
        longest_wait_s=q.longest_wait_s,
        agents=dict(q.agents),
        staffed=q.staffed,
        service_level_target=q.service_level_target,
        service_time=q.service_time,
        today=TodayOut(
            offered=t.offered,
            answered=t.answered,
            answered_in_target=t.answered_in_target,
            abandoned=t.abandoned,
            service_level=t.service_level,
            average_wait_s=round(t.wait_answered_s / t.answered, 1) if t.answered else None,
        ),
    )


def agent_out(a: AgentSnapshot) -> AgentOut:
    current = a.current
    return AgentOut(
        id=a.id,
        name=a.name,
        state=a.state,
        reason=a.reason,
        since=a.since,
        queues=list(a.queues),
        teams=list(a.teams),
        device=a.device,
        current=None
        if current is None
        else CurrentCallOut(
            interaction_id=current.interaction_id,
            queue=current.queue,
            phase=current.phase,
            caller_number=current.caller_number,
            caller_name=current.caller_name,
            since_s=current.since_s,
        ),
    )


def waiting_out(w: WaitingCall) -> WaitingCallOut:
    return WaitingCallOut(
        interaction_id=w.interaction_id,
        uniqueid=w.uniqueid,
        queue=w.queue,
        caller_number=w.caller_number,
        caller_name=w.caller_name,
        wait_s=w.wait_s,
        position=w.position,
        priority=w.priority,
        callback=w.callback,
        offered_to=w.offered_to,
    )


def snapshot_of(call: Call) -> Snapshot | None:
    return None if call.ctx.acd is None else call.ctx.acd.snapshot()


@endpoint(
    "GET",
    "/snapshot",
    summary="Queues, agents and waiting calls at once",
    tag="live",
    roles=EVERYONE,
    response=SnapshotOut,
)
async def get_snapshot(call: Call) -> SnapshotOut:
    """One consistent picture (what a wallboard draws first; changes then come by
    WebSocket). Empty lists when the daemon runs without queues."""
    snap = snapshot_of(call)
    if snap is None:
        from datetime import UTC

        return SnapshotOut(at=datetime.now(UTC), queues=[], agents=[], waiting=[])
    return SnapshotOut(
        at=snap.at,
        queues=[queue_out(q) for q in snap.queues],
        agents=[agent_out(a) for a in snap.agents],
        waiting=[waiting_out(w) for w in snap.waiting],
    )


@endpoint(
    "GET",
    "/queues",
    summary="Live queue stats",
    tag="live",
    roles=EVERYONE,
    response=list[QueueOut],
)
async def list_queues(call: Call) -> list[QueueOut]:
    """Waiting calls, longest wait, agents by state and today's service level per queue."""
    snap = snapshot_of(call)
    return [] if snap is None else [queue_out(q) for q in snap.queues]


@endpoint(
    "GET",
    "/queues/{name}",
    summary="One queue's live stats",
    tag="live",
    roles=EVERYONE,
    response=QueueOut,
    errors=(404,),
)
async def get_queue(call: Call) -> QueueOut:
    snap = snapshot_of(call)
    for q in snap.queues if snap else ():
        if q.name == call.path["name"]:
            return queue_out(q)
    raise ApiError(404, f"no queue named {call.path['name']!r}")


@endpoint(
    "GET",
    "/agents",
    summary="Agents and their state",
    tag="live",
    roles=EVERYONE,
    response=list[AgentOut],
)
async def list_agents(call: Call) -> list[AgentOut]:
    snap = snapshot_of(call)
    return [] if snap is None else [agent_out(a) for a in snap.agents]


@endpoint(
    "GET",
    "/agents/{agent_id}",
    summary="One agent's state",
    tag="live",
    roles=EVERYONE,
    response=AgentOut,
    errors=(404,),
)
async def get_agent(call: Call) -> AgentOut:
    snap = snapshot_of(call)
    for a in snap.agents if snap else ():
        if a.id == call.path["agent_id"]:
            return agent_out(a)
    raise ApiError(404, f"no agent {call.path['agent_id']!r}")


@endpoint(
    "GET",
    "/calls/waiting",
    summary="Calls waiting in the queues",
    tag="live",
    roles=EVERYONE,
    response=list[WaitingCallOut],
)
async def list_waiting(call: Call) -> list[WaitingCallOut]:
    """In queue order, then position; callback requests waiting in a caller's place too."""
    snap = snapshot_of(call)
    return [] if snap is None else [waiting_out(w) for w in snap.waiting]
