"""The ACD at run time: the pure routing engine, fed by live calls and agents.

One ``AcdService`` per daemon. Callers join from their FastAGI session (``waiting.py``)
and agents from their phones (``agent_codes.py``; the HTTP API will call the same
methods). The service turns the engine's decisions into Asterisk actions and records
every step:

* ``Offer``: ring the agent's device with an AMI ``Originate`` into
  ``[acd-agent-answered]`` (agent first: the caller keeps hearing music). The agent's
  answer (``OriginateResponse`` Success) connects the call: the caller's wait loop is
  woken at once with a ``PlayDTMF`` on its channel and bridges in the dialplan. No
  answer within the queue's ``ring_timeout``: the agent goes not ready and the caller
  keeps their place for the next agent.
* A callback request waits in the caller's place; when it is offered, the agent's phone
  rings first and ``[acd-agent-callback]`` then dials the customer.
* ``Overflow`` / ``Timeout``: the waiting caller is told (``Waiter.result``).

Talk ends with the first ``Hangup`` of either side, which tells who hung up; the agent
then wraps up. Everything goes to ``queue_events`` and ``agent_events``, and the caller's
``calls`` row gets the queue, the agent and how the wait ended.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Literal

from acd.ami import AmiError, AmiLink, Message
from acd.ami.channels import Channel
from acd.core.calls import CallRecord
from acd.core.estimate import HandleTimes, expected_wait
from acd.core.routing import (
    AgentConfig,
    AgentState,
    Decision,
    Interaction,
    Offer,
    Overflow,
    QueueConfig,
    RoutingEngine,
    Timeout,
)
from acd.db.writer import Row
from acd.log import get_logger
from acd.queues.events import agent_event, queue_event
from acd.queues.live import (
    AGENT_STATE,
    FINAL_KINDS,
    AcdEvent,
    AgentSnapshot,
    CurrentCall,
    DailyStats,
    Listener,
    Listeners,
    Party,
    QueueSnapshot,
    Snapshot,
    WaitingCall,
)

log = get_logger(__name__)

RowSink = Callable[[Row], None]
RecordSink = Callable[[CallRecord], None]
#: The digit the service "presses" on a waiting caller's channel to wake its wait loop.
WAKE_DIGIT = "D"
ANSWERED_CONTEXT = "acd-agent-answered"
CALLBACK_CONTEXT = "acd-agent-callback"
# OriginateResponse Reason codes (Asterisk's AST_CONTROL_*): what an unanswered ring was.
_REASONS = {"5": "busy", "8": "unreachable"}
# An Originate whose response never comes (lost AMI link) is given up after this margin.
_RING_GRACE = 15.0

QueueOutcome = Literal["connected", "timeout", "callback", "abandoned", "unavailable"]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class QueueRequest:
    """What a caller asks of the ACD (from a flow's queue node or ``[acd-queue]``)."""

    queue: str
    skills: Mapping[str, int] = field(default_factory=dict)
    priority: int = 0
    #: The flow's own limit, on top of the queue's ``max_wait``.
    max_wait: float | None = None
    #: Call data for the agent's screen (IVR path, customer lookup): ``AcdEvent.attached``.
    attached: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class QueueResult:
    outcome: QueueOutcome
    queue: str
    agent_id: str | None = None
    agent_channel: str | None = None


@dataclass(eq=False)
class Waiter:
    """A voice caller holding in their AGI session while the engine finds an agent."""

    interaction: Interaction
    uniqueid: str
    channel: str
    caller_number: str
    caller_name: str
    joined: float
    #: Builds the caller's ``calls`` record at a given end time (the call's final update).
    record: Callable[[datetime, str | None, str | None], CallRecord]
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    result: QueueResult | None = None
    queue: str = ""
    ringing: str | None = None  # agent id being rung

    def finish(self, result: QueueResult) -> None:
        if self.result is None:
            self.result = result
        self.wake.set()


@dataclass(eq=False)
class _Callback:
    """A callback request: the customer's number, waiting in the caller's place."""

    interaction: Interaction
    number: str
    name: str
    uniqueid: str  # of the call that asked for it


@dataclass(eq=False)
class _Leg:
    """One ring of one agent's phone for one offer."""

    offer: Offer
    channel_id: str
    other_id: str
    started: float
    device: str
    answered: bool = False
    channel: str | None = None
    timer: asyncio.TimerHandle | None = None


@dataclass(eq=False)
class _Talk:
    """A connected interaction, until the first side hangs up."""

    interaction: Interaction
    agent_id: str
    queue: str
    caller_ids: set[str]
    agent_ids: set[str]
    answered: float
    wait_s: float
    waiter: Waiter | None = None
    callback: _Callback | None = None
    customer_answered: bool = False


class AcdService:
    """Queues, agents and waiting callers of one daemon (event-loop thread only)."""

    def __init__(
        self,
        ami: AmiLink,
        rows: RowSink,
        records: RecordSink,
        *,
        callback_dial: str = "Local/{number}@acd-callback-out",
        connect_wait: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utcnow,
        day_zone: tzinfo = UTC,
    ) -> None:
        """``day_zone``: where today's live counts start at midnight (the reports' zone)."""
        self._ami = ami
        self._rows = rows
        self._records = records
        self._callback_dial = callback_dial
        self._connect_wait = connect_wait
        self._clock = clock
        self._wall = wall
        self.engine = RoutingEngine((), ())
        self._waiters: dict[str, Waiter] = {}
        self._callbacks: dict[str, _Callback] = {}
        self._legs: dict[str, _Leg] = {}  # by the agent channel's uniqueid (ChannelId)
        self._legs_by_interaction: dict[str, _Leg] = {}
        self._talks: dict[str, _Talk] = {}  # by every channel uniqueid of either side
        self._handle_times: dict[str, HandleTimes] = {}
        self._devices: dict[str, str] = {}  # agent id -> device the agent logged in with
        self._agent_states: dict[str, tuple[AgentState, str | None]] = {}
        # agent id -> the call the agent is wrapping up after: interaction, queue, since
        # (clock), callback; its wrap-up length is recorded when the wrap-up ends.
        self._wrapping: dict[str, tuple[Interaction, str, float, bool]] = {}
        self._ring_ids = itertools.count(1)
        # Live view for supervisors (acd/queues/live.py): listeners, who each call is for.
        self._listeners = Listeners()
        self._parties: dict[str, Party] = {}
        self._queue_configs: dict[str, QueueConfig] = {}
        self._stats = DailyStats(day_zone)
        self._reschedule = asyncio.Event()
        self._timer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        for name, handler in (
            ("OriginateResponse", self._on_originate_response),
            ("Hangup", self._on_hangup),
            ("DialBegin", self._on_dial_begin),
            ("DialEnd", self._on_dial_end),
        ):
            ami.on_event(name, handler)
        ami.on_up(self._on_ami_up)

    # --- life cycle and configuration -------------------------------------------------

    async def start(self) -> None:
        self._timer = asyncio.create_task(self._run_timer(), name="acd-timer")

    async def stop(self) -> None:
        """Log every agent out (their session lives in this process) and stop the timers;
        call before the row writer stops, so the logouts are written."""
        for view in self.engine.agents():
            if view.state is not AgentState.LOGGED_OUT:
                self._rows(
                    agent_event(
                        view.id,
                        AgentState.LOGGED_OUT.value,
                        at=self._wall(),
                        reason="daemon_stopped",
                        device=self._devices.get(view.id),
                    )
                )
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in list(self._tasks):
            task.cancel()

    def configure(self, queues: Iterable[QueueConfig], agents: Iterable[AgentConfig]) -> None:
        """Apply a (re)loaded configuration; agents logged in stay logged in."""
        queues, agents = list(queues), list(agents)
        decisions = self.engine.configure(queues, agents, self._clock())
        self._queue_configs = {q.name: q for q in queues}
        log.info("acd_configured", queues=len(queues), agents=len(agents))
        self._apply(decisions)

    def has_queue(self, name: str) -> bool:
        try:
            self.engine.queue_config(name)
        except KeyError:
            return False
        return True

    def queue_config(self, name: str) -> QueueConfig:
        return self.engine.queue_config(name)

    # --- agents (phone feature codes; the HTTP API calls the same) ---------------------

    def login(self, agent_id: str, device: str | None = None, *, ready: bool = True) -> str:
        """Log an agent in on ``device`` (default: the configured one); returns the device.
        Raises KeyError for an unknown agent, ValueError when there is no device."""
        config = self.engine.agent_config(agent_id)
        chosen = device or config.device
        if not chosen:
            raise ValueError(f"agent {agent_id} has no device: log in from a phone")
        self._devices[agent_id] = chosen
        offers = self.engine.login(agent_id, self._clock(), ready=ready)
        self._note_agent(agent_id)
        self._apply(offers)
        return chosen

    def logout(self, agent_id: str) -> None:
        self.engine.logout(agent_id, self._clock())
        self._note_agent(agent_id)
        self._devices.pop(agent_id, None)

    def ready(self, agent_id: str) -> None:
        offers = self.engine.set_ready(agent_id, self._clock())
        self._note_agent(agent_id)
        self._apply(offers)

    def not_ready(self, agent_id: str, reason: str) -> None:
        self.engine.set_not_ready(agent_id, self._clock(), reason)
        self._note_agent(agent_id)

    def agent_on_device(self, device: str) -> str | None:
        """The agent logged in on ``device``, if any."""
        return next((a for a, d in self._devices.items() if d == device), None)

    def device_of(self, agent_id: str) -> str | None:
        return self._devices.get(agent_id) or self.engine.agent_config(agent_id).device

    # --- callers --------------------------------------------------------------------------

    def join(
        self,
        request: QueueRequest,
        *,
        uniqueid: str,
        channel: str,
        caller_number: str,
        caller_name: str,
        record: Callable[[datetime, str | None, str | None], CallRecord],
    ) -> Waiter:
        """Put a caller in the queue (raises KeyError for an unknown queue)."""
        now = self._clock()
        interaction = Interaction(
            id=uniqueid,
            queue=request.queue,
            arrived=now,
            skills=dict(request.skills),
            priority=request.priority,
        )
        waiter = Waiter(
            interaction=interaction,
            uniqueid=uniqueid,
            channel=channel,
            caller_number=caller_number,
            caller_name=caller_name,
            joined=now,
            record=record,
            queue=request.queue,
        )
        offers = self.engine.enqueue(interaction, now)
        self._waiters[uniqueid] = waiter
        attached = dict(request.attached)
        self._parties[uniqueid] = Party(uniqueid, caller_number, caller_name, attached)
        self._event(
            "enqueue",
            interaction,
            request.queue,
            position=self.position(waiter),
            priority=request.priority,
            skills=sorted(interaction.skills),
        )
        self._apply(offers)
        self._reschedule.set()
        return waiter

    def position(self, waiter: Waiter) -> int | None:
        view = self.engine.waiting(waiter.interaction.id)
        return None if view is None else view.position

    def expected_wait(self, waiter: Waiter) -> float | None:
        position = self.position(waiter)
        times = self._handle_times.get(waiter.queue)
        staffed = self.engine.staffed(waiter.queue)
        return expected_wait(position or 0, staffed, times.aht if times else None)

    def announced(self, waiter: Waiter, position: int | None, wait: float | None) -> None:
        self._event(
            "announce",
            waiter.interaction,
            waiter.queue,
            position=position,
            expected_wait_s=None if wait is None else round(wait, 1),
        )

    def abandon(self, waiter: Waiter) -> None:
        """The caller hung up while waiting (or while an agent was ringing)."""
        if waiter.result is not None and waiter.result.outcome != "abandoned":
            return  # already connected, timed out or turned into a callback
        view = self._leave(waiter)
        waiter.finish(QueueResult("abandoned", waiter.queue))
        self._event(
            "abandon",
            waiter.interaction,
            waiter.queue,
            position=None if view is None else view.position,
        )
        self._final_record(waiter, "abandoned", None)

    def give_up(self, waiter: Waiter) -> None:
        """The flow's own ``max_wait`` ran out (the queue's is the engine's Timeout)."""
        if waiter.result is not None:
            return
        view = self._leave(waiter)
        self._event(
            "timeout",
            waiter.interaction,
            waiter.queue,
            position=None if view is None else view.position,
            limit="flow",
        )
        waiter.finish(QueueResult("timeout", waiter.queue))

    def request_callback(self, waiter: Waiter) -> bool:
        """Turn a waiting caller into a callback request in the same place."""
        if waiter.result is not None or not waiter.caller_number:
            return False
        view = self._leave(waiter)
        old = waiter.interaction
        self._add_callback(
            Interaction(
                id=old.id,
                queue=waiter.queue,
                arrived=old.arrived,
                media=old.media,
                skills=old.skills,
                priority=old.priority,
                callback=True,
            ),
            waiter.caller_number,
            waiter.caller_name,
            position=view.position if view else None,
        )
        waiter.finish(QueueResult("callback", waiter.queue))
        return True

    def leave_callback(
        self,
        queue: str,
        number: str,
        *,
        uniqueid: str,
        name: str = "",
        skills: Mapping[str, int] | None = None,
        priority: int = 0,
        attached: Mapping[str, Any] | None = None,
    ) -> None:
        """A callback request left in the IVR (the flow's callback node): it queues from
        now like a caller would. Raises KeyError for an unknown queue."""
        self.engine.queue_config(queue)
        interaction = Interaction(
            id=uniqueid,
            queue=queue,
            arrived=self._clock(),
            skills=dict(skills or {}),
            priority=priority,
            callback=True,
        )
        self._parties[uniqueid] = Party(uniqueid, number, name, dict(attached or {}))
        self._add_callback(interaction, number, name, position=None, source="ivr")

    def _add_callback(
        self,
        interaction: Interaction,
        number: str,
        name: str,
        *,
        position: int | None,
        source: str = "queue",
    ) -> None:
        self._callbacks[interaction.id] = _Callback(interaction, number, name, interaction.id)
        offers = self.engine.enqueue(interaction, self._clock())
        if position is None:
            view = self.engine.waiting(interaction.id)
            position = None if view is None else view.position
        self._event(
            "callback_requested",
            interaction,
            interaction.queue,
            position=position,
            number=number,
            source=source,
        )
        self._apply(offers)
        self._reschedule.set()

    def _leave(self, waiter: Waiter) -> Any:
        """Take the caller out of the engine; stop ringing an agent for them."""
        self._waiters.pop(waiter.uniqueid, None)
        view = self.engine.remove(waiter.interaction.id, self._clock())
        leg = self._legs_by_interaction.pop(waiter.interaction.id, None)
        if leg is not None and not leg.answered:
            self._drop_leg(leg)
            self._hang_up(leg.channel_id)
            self._note_agent(leg.offer.agent_id)
        self._reschedule.set()
        return view

    # --- decisions --------------------------------------------------------------------------

    def _apply(self, decisions: Iterable[Decision]) -> None:
        for decision in decisions:
            match decision:
                case Offer():
                    self._ring(decision)
                case Overflow():
                    self._overflowed(decision)
                case Timeout():
                    self._timed_out(decision)

    def _overflowed(self, d: Overflow) -> None:
        interaction = self._interaction(d.interaction_id)
        if interaction is None:
            return
        waiter = self._waiters.get(d.interaction_id)
        if waiter is not None:
            waiter.queue = d.to_queue
        self._event("overflow", interaction, d.from_queue, to_queue=d.to_queue)

    def _timed_out(self, d: Timeout) -> None:
        interaction = self._interaction(d.interaction_id)
        waiter = self._waiters.pop(d.interaction_id, None)
        self._callbacks.pop(d.interaction_id, None)
        if interaction is None:
            return
        self._event("timeout", interaction, d.queue, limit="queue")
        if waiter is not None:
            waiter.finish(QueueResult("timeout", d.queue))

    def _ring(self, offer: Offer) -> None:
        waiter = self._waiters.get(offer.interaction_id)
        callback = self._callbacks.get(offer.interaction_id)
        interaction = self._interaction(offer.interaction_id)
        if interaction is None:  # not ours (cannot happen: decisions apply at once)
            log.error("acd_offer_without_interaction", interaction=offer.interaction_id)
            self.engine.remove(offer.interaction_id, self._clock())
            return
        device = self.device_of(offer.agent_id)
        channel_id = f"{offer.interaction_id}-ring{next(self._ring_ids)}"
        leg = _Leg(offer, channel_id, f"{channel_id}-2", self._clock(), device or "")
        self._legs[channel_id] = leg
        self._legs_by_interaction[offer.interaction_id] = leg
        if waiter is not None:
            waiter.ringing = offer.agent_id
        queue = self.engine.queue_config(offer.queue)
        self._event("offer", interaction, offer.queue, agent_id=offer.agent_id, device=device)
        variables = [
            f"ACD_AGENT={offer.agent_id}",
            f"ACD_INTERACTION={offer.interaction_id}",
            f"ACD_QUEUE={offer.queue}",
            f"ACD_CONNECT_WAIT={self._connect_wait:g}",
        ]
        number, name = (waiter.caller_number, waiter.caller_name) if waiter else ("", "")
        context = ANSWERED_CONTEXT
        if callback is not None:
            context = CALLBACK_CONTEXT
            number, name = callback.number, callback.name
            variables += [
                f"ACD_CALLBACK={callback.number}",
                f"ACD_CALLBACK_DIAL={self._callback_dial.format(number=callback.number)}",
            ]
        fields: dict[str, str | list[str]] = {
            "Action": "Originate",
            "Channel": device or "",
            "Context": context,
            "Exten": "s",
            "Priority": "1",
            "Timeout": str(int(queue.ring_timeout * 1000)),
            "CallerID": f'"{name}" <{number}>' if number else "",
            "Async": "true",
            "ChannelId": channel_id,
            "OtherChannelId": leg.other_id,
            "Variable": variables,
        }
        loop = asyncio.get_running_loop()
        leg.timer = loop.call_later(queue.ring_timeout + _RING_GRACE, self._ring_lost, leg)
        self._spawn(self._originate(leg, fields))

    async def _originate(self, leg: _Leg, fields: dict[str, str | list[str]]) -> None:
        if not leg.device:
            self._ring_failed(leg, "no_device")
            return
        try:
            await self._ami.action(fields)
        except (AmiError, ValueError) as exc:
            log.warning("acd_ring_failed", agent=leg.offer.agent_id, error=str(exc))
            self._ring_failed(leg, "unreachable")

    def _ring_lost(self, leg: _Leg) -> None:
        if self._legs.get(leg.channel_id) is leg and not leg.answered:
            log.warning("acd_ring_no_response", agent=leg.offer.agent_id)
            self._ring_failed(leg, "ring_no_answer")

    def _drop_leg(self, leg: _Leg) -> None:
        self._legs.pop(leg.channel_id, None)
        if self._legs_by_interaction.get(leg.offer.interaction_id) is leg:
            del self._legs_by_interaction[leg.offer.interaction_id]
        if leg.timer is not None:
            leg.timer.cancel()

    def _ring_failed(self, leg: _Leg, reason: str) -> None:
        if self._legs.get(leg.channel_id) is not leg:
            return
        self._drop_leg(leg)
        offer = leg.offer
        waiter = self._waiters.get(offer.interaction_id)
        if waiter is not None:
            waiter.ringing = None
        interaction = self._interaction(offer.interaction_id)
        now = self._clock()
        decisions = self.engine.offer_rejected(offer.interaction_id, now, reason=reason)
        self._note_agent(offer.agent_id)
        if interaction is not None:
            view = self.engine.waiting(offer.interaction_id)
            self._event(
                "ring_no_answer",
                interaction,
                offer.queue,
                agent_id=offer.agent_id,
                position=None if view is None else view.position,
                reason=reason,
                rang_s=round(now - leg.started, 2),
            )
        self._apply(decisions)
        self._reschedule.set()

    def _interaction(self, interaction_id: str) -> Interaction | None:
        waiter = self._waiters.get(interaction_id)
        if waiter is not None:
            return waiter.interaction
        callback = self._callbacks.get(interaction_id)
        return None if callback is None else callback.interaction

    # --- AMI events ---------------------------------------------------------------------------

    def _on_originate_response(self, event: Message) -> None:
        leg = self._legs.get(str(event.get("Uniqueid", "")))
        if leg is None:
            return
        if str(event.get("Response", "")).lower() != "success":
            self._ring_failed(leg, _REASONS.get(str(event.get("Reason", "")), "ring_no_answer"))
            return
        leg.answered = True
        leg.channel = str(event.get("Channel", ""))
        if leg.timer is not None:
            leg.timer.cancel()
        self._legs.pop(leg.channel_id, None)
        self._legs_by_interaction.pop(leg.offer.interaction_id, None)
        self._answered(leg)

    def _answered(self, leg: _Leg) -> None:
        offer = leg.offer
        now = self._clock()
        waiter = self._waiters.pop(offer.interaction_id, None)
        callback = self._callbacks.pop(offer.interaction_id, None)
        if waiter is None and callback is None:
            # The caller hung up while the phone rang: release the agent's line.
            log.info("acd_agent_answered_too_late", agent=offer.agent_id)
            self._hang_up(leg.channel_id)
            return
        interaction = waiter.interaction if waiter else callback.interaction  # type: ignore[union-attr]
        self.engine.offer_accepted(offer.interaction_id, now)
        self._note_agent(offer.agent_id)
        wait_s = now - interaction.arrived
        talk = _Talk(
            interaction=interaction,
            agent_id=offer.agent_id,
            queue=offer.queue,
            caller_ids=set() if waiter is None else {waiter.uniqueid},
            agent_ids={leg.channel_id, leg.other_id},
            answered=now,
            wait_s=wait_s,
            waiter=waiter,
            callback=callback,
        )
        for uid in talk.caller_ids | talk.agent_ids:
            self._talks[uid] = talk
        if callback is not None:
            self._event(
                "callback_placed",
                interaction,
                offer.queue,
                agent_id=offer.agent_id,
                wait_s=wait_s,
                number=callback.number,
            )
            return
        assert waiter is not None
        self._event("answer", interaction, offer.queue, agent_id=offer.agent_id, wait_s=wait_s)
        waiter.finish(QueueResult("connected", offer.queue, offer.agent_id, leg.channel))
        self._spawn(self._wake(waiter))

    async def _wake(self, waiter: Waiter) -> None:
        """Interrupt the caller's WAIT FOR DIGIT so the bridge follows at once (the loop
        also looks every second, so a failed wake only costs a moment)."""
        try:
            await self._ami.action(
                {
                    "Action": "PlayDTMF",
                    "Channel": waiter.channel,
                    "Digit": WAKE_DIGIT,
                    "Receive": "true",
                }
            )
        except AmiError as exc:
            log.info("acd_wake_failed", error=str(exc))

    def _on_dial_begin(self, event: Message) -> None:
        talk = self._talks.get(str(event.get("Uniqueid", "")))
        if talk is not None and talk.callback is not None:
            dest = str(event.get("DestUniqueid", ""))
            if dest:
                talk.caller_ids.add(dest)
                self._talks[dest] = talk

    def _on_dial_end(self, event: Message) -> None:
        talk = self._talks.get(str(event.get("Uniqueid", "")))
        if talk is None or talk.callback is None:
            return
        status = str(event.get("DialStatus", ""))
        if status == "ANSWER":
            talk.customer_answered = True
            talk.answered = self._clock()
            self._event(
                "answer",
                talk.interaction,
                talk.queue,
                agent_id=talk.agent_id,
                wait_s=talk.answered - talk.interaction.arrived,
                callback=True,
            )
        elif status:
            self._event(
                "callback_failed",
                talk.interaction,
                talk.queue,
                agent_id=talk.agent_id,
                dial_status=status,
            )

    def _on_hangup(self, event: Message) -> None:
        self._hung_up(str(event.get("Uniqueid", "")))

    def _on_ami_up(self, vanished: list[Channel]) -> None:
        """Channels that hung up while the link was down lost their Hangup events."""
        for channel in vanished:
            self._hung_up(channel.uniqueid)

    def _hung_up(self, uniqueid: str) -> None:
        talk = self._talks.get(uniqueid)
        if talk is None:
            return
        for uid in talk.caller_ids | talk.agent_ids:
            self._talks.pop(uid, None)
        now = self._clock()
        by = "caller" if uniqueid in talk.caller_ids else "agent"
        connected = talk.callback is None or talk.customer_answered
        talk_s = now - talk.answered if connected else 0.0
        self._event(
            "complete",
            talk.interaction,
            talk.queue,
            agent_id=talk.agent_id,
            wait_s=talk.wait_s,
            talk_s=talk_s,
            hung_up_by=by,
            **({"callback": True} if talk.callback is not None else {}),
        )
        config = self.engine.queue_config(talk.queue)
        if connected:
            self._handle_times.setdefault(talk.queue, HandleTimes()).add(talk_s + config.wrap_up)
        decisions = self.engine.finish(talk.interaction.id, now)
        self._note_agent(talk.agent_id)
        if connected and self._agent_states.get(talk.agent_id, (None,))[0] is AgentState.WRAP_UP:
            callback = talk.callback is not None
            self._wrapping[talk.agent_id] = (talk.interaction, talk.queue, now, callback)
        if talk.waiter is not None:
            self._final_record(talk.waiter, "connected", talk.agent_id)
        self._apply(decisions)
        self._reschedule.set()

    def _final_record(self, waiter: Waiter, outcome: str, agent_id: str | None) -> None:
        try:
            self._records(waiter.record(self._wall(), outcome, agent_id))
        except Exception:
            log.exception("acd_call_record_failed", uniqueid=waiter.uniqueid)

    # --- timers ---------------------------------------------------------------------------

    async def _run_timer(self) -> None:
        """Sleep until the engine's next deadline (or a change), then apply what is due."""
        while True:
            deadline = self.engine.next_deadline()
            self._reschedule.clear()
            delay = None if deadline is None else max(0.0, deadline - self._clock())
            try:
                async with asyncio.timeout(delay):
                    await self._reschedule.wait()
                continue
            except TimeoutError:
                pass
            try:
                wrapping = [a.id for a in self.engine.agents() if a.state is AgentState.WRAP_UP]
                decisions = self.engine.tick(self._clock())
                for agent_id in wrapping:
                    self._note_agent(agent_id)
                self._apply(decisions)
            except Exception:
                log.exception("acd_tick_failed")
                await asyncio.sleep(0.5)

    # --- records ----------------------------------------------------------------------------

    def _event(
        self,
        kind: str,
        interaction: Interaction,
        queue: str,
        *,
        agent_id: str | None = None,
        position: int | None = None,
        wait_s: float | None = None,
        talk_s: float | None = None,
        hung_up_by: str | None = None,
        priority: int | None = None,
        **detail: Any,
    ) -> None:
        if wait_s is None:
            wait_s = self._clock() - interaction.arrived
        callback = self._callbacks.get(interaction.id)
        self._rows(
            queue_event(
                kind,
                at=self._wall(),
                interaction_id=interaction.id,
                queue=queue,
                uniqueid=callback.uniqueid if callback else interaction.id,
                media=interaction.media,
                agent_id=agent_id,
                position=position,
                wait_s=wait_s,
                talk_s=talk_s,
                hung_up_by=hung_up_by,
                priority=priority,
                **detail,
            )
        )
        log.info(
            f"acd_{kind}",
            interaction=interaction.id,
            queue=queue,
            agent=agent_id,
            position=position,
            wait_s=round(wait_s, 2),
            **{k: v for k, v in detail.items() if v is not None},
        )
        party = (
            self._parties.pop(interaction.id, None)
            if kind in FINAL_KINDS
            else self._parties.get(interaction.id)
        )
        self._notify(
            AcdEvent(
                kind,
                self._wall(),
                queue=queue,
                interaction_id=interaction.id,
                uniqueid=party.uniqueid if party else interaction.id,
                agent_id=agent_id,
                caller_number=party.caller_number if party else "",
                caller_name=party.caller_name if party else "",
                position=position,
                wait_s=wait_s,
                talk_s=talk_s,
                attached=party.attached if party else {},
                detail=detail,
            )
        )

    def _wrapped(self, agent_id: str, ended: float) -> None:
        """The agent's wrap-up after a call is over: a ``wrap_up`` queue event carries its
        length, so each call's handle time (talk + wrap-up) is in the queue's records."""
        wrap = self._wrapping.pop(agent_id, None)
        if wrap is None:
            return
        interaction, queue, since, callback = wrap
        wrap_up_s = max(0.0, ended - since)
        self._rows(
            queue_event(
                "wrap_up",
                at=self._wall() - timedelta(seconds=max(0.0, self._clock() - ended)),
                interaction_id=interaction.id,
                queue=queue,
                uniqueid=interaction.id,
                media=interaction.media,
                agent_id=agent_id,
                wait_s=ended - interaction.arrived,
                wrap_up_s=wrap_up_s,
                callback=True if callback else None,
            )
        )
        log.info("acd_wrap_up", interaction=interaction.id, agent=agent_id, wrap_up_s=wrap_up_s)

    def _note_agent(self, agent_id: str) -> None:
        """Record the agent's state if it changed since last recorded."""
        try:
            view = self.engine.agent(agent_id)
        except KeyError:
            return
        now_state = (view.state, view.reason)
        before = self._agent_states.get(agent_id)
        if before == now_state:
            return
        self._agent_states[agent_id] = now_state
        if before is not None and before[0] is AgentState.WRAP_UP:
            self._wrapped(agent_id, view.since)
        wall = self._wall() - timedelta(seconds=max(0.0, self._clock() - view.since))
        self._rows(
            agent_event(
                agent_id,
                view.state.value,
                at=wall,
                reason=view.reason,
                device=self._devices.get(agent_id),
            )
        )
        log.info("acd_agent_state", agent=agent_id, state=view.state.value, reason=view.reason)
        self._notify(
            AcdEvent(
                AGENT_STATE, wall, agent_id=agent_id, state=view.state.value, reason=view.reason
            )
        )

    # --- live view (HTTP API, WebSocket, metrics) --------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` on every change (sync, on the event loop: keep it cheap; an
        exception is logged, never raised here). Returns the unsubscribe function."""
        return self._listeners.subscribe(listener)

    def _notify(self, event: AcdEvent) -> None:
        if event.queue is not None:
            self._stats.add(event, self._service_time)
        if len(self._listeners):
            self._listeners.notify(event)

    def _service_time(self, queue: str) -> float | None:
        config = self._queue_configs.get(queue)
        return None if config is None else config.service_time

    def queue_names(self) -> list[str]:
        return sorted(self._queue_configs)

    def snapshot(self) -> Snapshot:
        """The queues, agents and waiting calls as they are now (read-only copies)."""
        now, wall = self._clock(), self._wall()
        current: dict[str, CurrentCall] = {}
        for leg in self._legs.values():
            party = self._parties.get(leg.offer.interaction_id)
            current[leg.offer.agent_id] = CurrentCall(
                leg.offer.interaction_id,
                leg.offer.queue,
                "ringing",
                party.caller_number if party else "",
                party.caller_name if party else "",
                round(now - leg.started, 1),
            )
        for talk in self._talks.values():
            party = self._parties.get(talk.interaction.id)
            current[talk.agent_id] = CurrentCall(
                talk.interaction.id,
                talk.queue,
                "talking",
                party.caller_number if party else "",
                party.caller_name if party else "",
                round(now - talk.answered, 1),
            )
        agents = []
        for view in self.engine.agents():
            try:
                config = self.engine.agent_config(view.id)
            except KeyError:  # retiring after a reload, still finishing a call
                continue
            agents.append(
                AgentSnapshot(
                    id=view.id,
                    name=config.name,
                    state=view.state.value,
                    reason=view.reason,
                    since=wall - timedelta(seconds=max(0.0, now - view.since)),
                    queues=config.queues,
                    teams=config.teams,
                    device=self._devices.get(view.id),
                    current=current.get(view.id),
                )
            )
        waiting = []
        for interaction_id in [*self._waiters, *self._callbacks]:
            w = self.engine.waiting(interaction_id)
            party = self._parties.get(interaction_id)
            if w is None:
                continue
            waiting.append(
                WaitingCall(
                    interaction_id=interaction_id,
                    uniqueid=party.uniqueid if party else interaction_id,
                    queue=w.queue,
                    caller_number=party.caller_number if party else "",
                    caller_name=party.caller_name if party else "",
                    wait_s=round(now - w.interaction.arrived, 1),
                    position=w.position,
                    priority=w.interaction.priority,
                    callback=w.interaction.callback,
                    offered_to=w.offered_to,
                )
            )
        waiting.sort(key=lambda c: (c.queue, c.position))
        waiting_in: dict[str, list[WaitingCall]] = {}
        for item in waiting:
            waiting_in.setdefault(item.queue, []).append(item)
        states_in: dict[str, dict[str, int]] = {}
        for agent in agents:
            for queue_name in agent.queues:
                by = states_in.setdefault(queue_name, {})
                by[agent.state] = by.get(agent.state, 0) + 1
        queues = []
        for name, queue in sorted(self._queue_configs.items()):
            mine = waiting_in.get(name, [])
            by_state = states_in.get(name, {})
            try:
                staffed = self.engine.staffed(name)
            except KeyError:
                staffed = 0
            queues.append(
                QueueSnapshot(
                    name=name,
                    waiting=len(mine),
                    longest_wait_s=max((c.wait_s for c in mine), default=None),
                    agents=by_state,
                    staffed=staffed,
                    service_level_target=queue.service_level,
                    service_time=queue.service_time,
                    today=self._stats.of(name, self._stats.day_of(wall)),
                )
            )
        return Snapshot(wall, tuple(queues), tuple(agents), tuple(waiting))

    # --- helpers --------------------------------------------------------------------------

    def _hang_up(self, channel: str) -> None:
        async def hang_up() -> None:
            try:
                await self._ami.action({"Action": "Hangup", "Channel": channel})
            except AmiError as exc:
                log.info("acd_hangup_failed", channel=channel, error=str(exc))

        self._spawn(hang_up())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
