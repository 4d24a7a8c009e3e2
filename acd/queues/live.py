"""What supervisors and agents see of the ACD right now: change events and snapshots.

``AcdService`` tells listeners (the HTTP API's WebSocket, the metrics) about every change
with one small ``AcdEvent``, synchronously, on the event loop. A listener must be cheap
and must not block: it copies what it needs and returns. One that raises is logged and
the others still run, so a broken page can never stall the routing of calls.

A ``Snapshot`` is a read-only picture built on request (``AcdService.snapshot()``): the
queues with their waiting calls and agents by state, every agent, every waiting call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from types import MappingProxyType
from typing import Any

from acd.log import get_logger

log = get_logger(__name__)

#: Queue event kinds (the ``queue_events.kind`` values) plus ``agent_state``.
AGENT_STATE = "agent_state"
#: Kinds after which the interaction is gone from the ACD.
FINAL_KINDS = frozenset({"abandon", "timeout", "complete"})


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class AcdEvent:
    """One change: a queue event (``enqueue``, ``offer``, ``answer``, ``abandon``,
    ``complete``, ``timeout``, ``overflow``, ``ring_no_answer``, ``callback_*``,
    ``announce``) or an agent's state change (``agent_state``).

    ``attached`` is the call data the IVR gathered (path, customer lookup) for the
    agent's screen; it is set on every queue event of an interaction that has it.
    """

    kind: str
    at: datetime
    queue: str | None = None
    interaction_id: str | None = None
    uniqueid: str | None = None
    agent_id: str | None = None
    caller_number: str = ""
    caller_name: str = ""
    position: int | None = None
    wait_s: float | None = None
    talk_s: float | None = None
    #: For ``agent_state``: the new state and reason.
    state: str | None = None
    reason: str | None = None
    attached: Mapping[str, Any] = field(default_factory=_empty)
    detail: Mapping[str, Any] = field(default_factory=_empty)


Listener = Callable[[AcdEvent], None]


class Listeners:
    """Callbacks told of every change; each one isolated from the others' failures."""

    def __init__(self) -> None:
        self._listeners: dict[int, Listener] = {}
        self._next = 0

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Register ``listener``; returns the function that unregisters it."""
        key = self._next
        self._next += 1
        self._listeners[key] = listener

        def unsubscribe() -> None:
            self._listeners.pop(key, None)

        return unsubscribe

    def __len__(self) -> int:
        return len(self._listeners)

    def notify(self, event: AcdEvent) -> None:
        for listener in list(self._listeners.values()):
            try:
                listener(event)
            except Exception:
                log.exception("acd_listener_failed", kind=event.kind)


@dataclass(frozen=True, slots=True)
class Party:
    """Who an interaction is for, kept from enqueue to its final event."""

    uniqueid: str
    caller_number: str
    caller_name: str
    attached: Mapping[str, Any]


@dataclass(slots=True)
class DayCounts:
    """One queue's calls today: what the service level is computed from."""

    offered: int = 0
    answered: int = 0
    answered_in_target: int = 0
    abandoned: int = 0
    wait_answered_s: float = 0.0

    @property
    def service_level(self) -> float | None:
        """Answered within the target time over answered plus abandoned (None: no calls
        yet). Abandoned calls count against it, as in most contact centers' definition."""
        handled = self.answered + self.abandoned
        return None if handled == 0 else self.answered_in_target / handled


class DailyStats:
    """Per-queue counts since midnight in the center's time zone (``[reports]
    timezone``, the day the reports use), fed by events."""

    def __init__(self, zone: tzinfo = UTC) -> None:
        self.zone = zone
        self.day: date | None = None
        self.queues: dict[str, DayCounts] = {}

    def day_of(self, at: datetime) -> date:
        """The center's date at ``at`` (an aware time)."""
        return at.astimezone(self.zone).date()

    def add(self, event: AcdEvent, service_time: Callable[[str], float | None]) -> None:
        if event.queue is None or event.kind == AGENT_STATE:
            return
        today = self.day_of(event.at)
        if today != self.day:
            self.day, self.queues = today, {}
        counts = self.queues.setdefault(event.queue, DayCounts())
        if event.kind == "enqueue" or (
            event.kind == "callback_requested" and event.detail.get("source") == "ivr"
        ):
            counts.offered += 1  # a caller turned into a callback was counted at enqueue
        elif event.kind == "answer" or event.kind == "callback_placed":
            if event.kind == "answer" and event.detail.get("callback"):
                return  # the callback_placed of the same interaction counted it
            counts.answered += 1
            wait = event.wait_s or 0.0
            counts.wait_answered_s += wait
            target = service_time(event.queue)
            if target is not None and wait <= target:
                counts.answered_in_target += 1
        elif event.kind == "abandon":
            counts.abandoned += 1

    def of(self, queue: str, today: date) -> DayCounts:
        if today != self.day:
            return DayCounts()
        return self.queues.get(queue, DayCounts())


@dataclass(frozen=True, slots=True)
class CurrentCall:
    """What an agent is busy with: being rung for, or talking to."""

    interaction_id: str
    queue: str
    phase: str  # "ringing" | "talking"
    caller_number: str
    caller_name: str
    since_s: float  # seconds in this phase


@dataclass(frozen=True, slots=True)
class AgentSnapshot:
    id: str
    name: str
    state: str
    reason: str | None
    since: datetime
    queues: tuple[str, ...]
    teams: tuple[str, ...]
    device: str | None
    current: CurrentCall | None


@dataclass(frozen=True, slots=True)
class WaitingCall:
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


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    name: str
    waiting: int
    longest_wait_s: float | None
    agents: Mapping[str, int]  # state -> agents serving this queue in that state
    staffed: int
    service_level_target: float
    service_time: float
    today: DayCounts


@dataclass(frozen=True, slots=True)
class Snapshot:
    at: datetime
    queues: tuple[QueueSnapshot, ...]
    agents: tuple[AgentSnapshot, ...]
    waiting: tuple[WaitingCall, ...]
