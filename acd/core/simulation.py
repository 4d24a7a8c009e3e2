"""A discrete-event simulation of one queue, run through the real routing engine.

Erlang C (``acd.core.staffing``) predicts what a queue of ``N`` agents achieves under
random arrivals and handle times. Simulating those same arrivals through
``RoutingEngine`` checks the engine end to end against that prediction: if it ever
left an idle agent unused, served out of order or held an agent too long, the
simulated service level would fall short of the formula. It also answers what the
formula cannot: the cost of wrap-up time, or of callers who hang up.

Simulated agents answer every offer at once and hang up after an exponential handle
time; callers arrive as a Poisson stream. Time is simulated seconds, nothing sleeps,
and the same ``seed`` always gives the same result.
"""

from __future__ import annotations

import heapq
import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from acd.core.routing.engine import RoutingEngine
from acd.core.routing.model import (
    AgentConfig,
    AgentState,
    Decision,
    Interaction,
    Offer,
    QueueConfig,
    Timeout,
)

QUEUE = "simulated"


class SimulationError(RuntimeError):
    """The engine did something no contact center could carry out (an agent offered a
    second call, an offer for an unknown call, a deadline that never passes)."""


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """What callers arriving between ``warmup_s`` and ``duration_s`` experienced."""

    #: Calls that arrived in the measured window.
    calls: int
    answered: int
    abandoned: int
    #: Answered within the target, over all measured calls (abandoned ones count as
    #: missed, as on a wallboard): directly comparable with Erlang C.
    service_level: float
    #: Standard error of ``service_level`` by batch means (consecutive stretches of
    #: the window are nearly independent, single calls are not).
    service_level_se: float
    #: Average wait of the answered calls, in seconds.
    asa: float
    #: Standard error of ``asa`` by batch means.
    asa_se: float
    #: Longest wait of an answered call, in seconds.
    max_wait: float
    #: Fraction of the agents' time in the window on a call or in wrap-up, as the
    #: engine reports their state.
    occupancy: float
    #: ``abandoned / calls``.
    abandon_rate: float


class _Event(IntEnum):
    """Event kinds; at the same instant they are handled in arrival order."""

    ARRIVAL = 0
    FINISH = 1
    ABANDON = 2


@dataclass(slots=True)
class _Call:
    arrived: float
    handle_s: float
    measured: bool
    answered: float | None = None
    agent_id: str | None = None
    gone: bool = False


def simulate(
    calls_per_interval: float,
    interval_s: float,
    aht_s: float,
    agents: int,
    duration_s: float,
    target_s: float = 20.0,
    seed: int = 0,
    warmup_s: float = 0.0,
    wrap_up: float = 0.0,
    patience: float | None = None,
    batches: int = 30,
) -> SimulationResult:
    """Run one queue with ``agents`` agents for ``duration_s`` simulated seconds.

    Calls arrive at ``calls_per_interval / interval_s`` per second and last an
    exponential ``aht_s`` on average; after each one the agent has ``wrap_up`` s of
    wrap-up (the queue's setting, enforced by the engine). With ``patience`` (mean
    seconds, exponential) callers hang up while waiting; without it they wait forever,
    as Erlang C assumes. Calls arriving before ``warmup_s`` (while the queue fills from
    empty) are handled but not counted. No calls arrive after ``duration_s``; those
    still waiting are served to the end so every counted call has its outcome.
    """
    _check(calls_per_interval, interval_s, aht_s, agents, duration_s, target_s, warmup_s)
    if wrap_up < 0 or not math.isfinite(wrap_up):
        raise ValueError(f"wrap_up must be >= 0 seconds, got {wrap_up}")
    if patience is not None and not (patience > 0 and math.isfinite(patience)):
        raise ValueError(f"patience must be > 0 seconds or None, got {patience}")
    if batches < 2:
        raise ValueError(f"batches must be >= 2 (for a standard error), got {batches}")
    run = _Run(
        rate=calls_per_interval / interval_s,
        aht_s=aht_s,
        agents=agents,
        duration_s=duration_s,
        warmup_s=warmup_s,
        wrap_up=wrap_up,
        patience=patience,
        seed=seed,
    )
    run.run()
    return run.result(target_s, batches)


def _check(
    calls_per_interval: float,
    interval_s: float,
    aht_s: float,
    agents: int,
    duration_s: float,
    target_s: float,
    warmup_s: float,
) -> None:
    for name, value in (
        ("calls_per_interval", calls_per_interval),
        ("interval_s", interval_s),
        ("aht_s", aht_s),
        ("duration_s", duration_s),
        ("target_s", target_s),
        ("warmup_s", warmup_s),
    ):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value}")
    if calls_per_interval <= 0:
        raise ValueError(f"calls_per_interval must be > 0, got {calls_per_interval}")
    if interval_s <= 0:
        raise ValueError(f"interval_s must be > 0 seconds, got {interval_s}")
    if aht_s <= 0:
        raise ValueError(f"aht_s must be > 0 seconds, got {aht_s}")
    if agents < 1:
        raise ValueError(f"agents must be >= 1, got {agents}")
    if target_s < 0:
        raise ValueError(f"target_s must be >= 0 seconds, got {target_s}")
    if not 0 <= warmup_s < duration_s:
        raise ValueError(
            f"warmup_s must be >= 0 and below duration_s ({duration_s}), got {warmup_s}"
        )


class _Run:
    """One simulation: the event heap, the engine, and what each call went through."""

    def __init__(
        self,
        *,
        rate: float,
        aht_s: float,
        agents: int,
        duration_s: float,
        warmup_s: float,
        wrap_up: float,
        patience: float | None,
        seed: int,
    ) -> None:
        self.rate = rate
        self.aht_s = aht_s
        self.duration_s = duration_s
        self.warmup_s = warmup_s
        self.patience = patience
        # One stream per quantity: the same seed gives the same callers and handle
        # times whatever the wrap-up or patience, so scenarios compare like for like.
        self.arrivals = random.Random(f"{seed}:arrivals")
        self.handles = random.Random(f"{seed}:handles")
        self.patiences = random.Random(f"{seed}:patience")
        self.events: list[tuple[float, int, _Event, str]] = []
        self.seq = 0
        self.now = 0.0
        self.calls: dict[str, _Call] = {}
        self.outstanding = 0  # arrived, neither answered nor abandoned
        # Agent -> call on it; agent -> when their current stretch of work began.
        self.on_call: dict[str, str] = {}
        self.busy_since: dict[str, float] = {}
        self.wrapping: set[str] = set()
        self.busy_s = 0.0
        agent_ids = [f"agent{i:04d}" for i in range(1, agents + 1)]
        self.agent_count = agents
        self.engine = RoutingEngine(
            [QueueConfig(name=QUEUE, wrap_up=wrap_up)],
            [AgentConfig(id=agent_id, queues=(QUEUE,)) for agent_id in agent_ids],
        )
        for agent_id in agent_ids:
            self.carry_out(self.engine.login(agent_id, 0.0, ready=True), 0.0)

    def push(self, at: float, kind: _Event, call_id: str) -> None:
        self.seq += 1
        heapq.heappush(self.events, (at, self.seq, kind, call_id))

    def run(self) -> None:
        self.push(self.arrivals.expovariate(self.rate), _Event.ARRIVAL, "")
        engine = self.engine
        events = self.events
        # Waiting calls and wrap-ups still running keep the clock going once the heap is
        # empty: the engine's deadlines end them.
        while events or self.outstanding or self.wrapping:
            deadline = engine.next_deadline()
            if deadline is not None and (not events or deadline <= events[0][0]):
                if deadline < self.now:
                    raise SimulationError(f"engine deadline {deadline} before now ({self.now})")
                self.now = deadline
                self.tick(deadline)
                continue
            if not events:
                raise SimulationError(
                    f"{self.outstanding} call(s) waiting, {len(self.wrapping)} agent(s) in"
                    " wrap-up and no engine deadline"
                )
            now, _, kind, call_id = heapq.heappop(events)
            self.now = now
            if kind is _Event.ARRIVAL:
                self.arrive(now)
            elif kind is _Event.FINISH:
                self.finish(call_id, now)
            else:
                self.abandon(call_id, now)

    def arrive(self, now: float) -> None:
        call_id = f"call{len(self.calls) + 1}"
        handle_s = self.handles.expovariate(1 / self.aht_s)
        measured = now >= self.warmup_s
        self.calls[call_id] = _Call(arrived=now, handle_s=handle_s, measured=measured)
        self.outstanding += 1
        if self.patience is not None:
            self.push(now + self.patiences.expovariate(1 / self.patience), _Event.ABANDON, call_id)
        following = now + self.arrivals.expovariate(self.rate)
        if following < self.duration_s:
            self.push(following, _Event.ARRIVAL, "")
        self.carry_out(self.engine.enqueue(Interaction(call_id, QUEUE, now), now), now)

    def finish(self, call_id: str, now: float) -> None:
        call = self.calls[call_id]
        agent_id = call.agent_id
        assert agent_id is not None
        del self.on_call[agent_id]
        offers = self.engine.finish(call_id, now)
        if self.engine.agent(agent_id).state is AgentState.WRAP_UP:
            self.wrapping.add(agent_id)
        else:
            self.work_ended(agent_id, now)
        self.carry_out(offers, now)

    def abandon(self, call_id: str, now: float) -> None:
        call = self.calls[call_id]
        if call.answered is not None or call.gone:
            return
        if self.engine.remove(call_id, now) is None:
            raise SimulationError(f"{call_id} waiting since {call.arrived:.1f} s unknown")
        call.gone = True
        self.outstanding -= 1

    def tick(self, now: float) -> None:
        decisions = self.engine.tick(now)
        for agent_id in list(self.wrapping):
            if self.engine.agent(agent_id).state is not AgentState.WRAP_UP:
                self.wrapping.discard(agent_id)
                self.work_ended(agent_id, now)
        self.carry_out(decisions, now)
        following = self.engine.next_deadline()
        if following is not None and following <= now:
            raise SimulationError(f"engine deadline {following} does not pass after tick({now})")

    def carry_out(self, decisions: Sequence[Decision], now: float) -> None:
        """The simulated agent answers every offer at once; a ``Timeout`` (no queue
        here sets ``max_wait``) would be a caller leaving."""
        for decision in decisions:
            if isinstance(decision, Offer):
                self.answer(decision, now)
            elif isinstance(decision, Timeout):
                self.calls[decision.interaction_id].gone = True
                self.outstanding -= 1

    def answer(self, offer: Offer, now: float) -> None:
        call = self.calls.get(offer.interaction_id)
        if call is None or call.answered is not None or call.gone:
            raise SimulationError(f"offer of {offer.interaction_id}, which is not waiting")
        if offer.agent_id in self.on_call or offer.agent_id in self.wrapping:
            raise SimulationError(
                f"{offer.agent_id} offered {offer.interaction_id} while busy"
                f" with {self.on_call.get(offer.agent_id, 'wrap-up')}"
            )
        self.engine.offer_accepted(offer.interaction_id, now)
        call.answered = now
        call.agent_id = offer.agent_id
        self.outstanding -= 1
        self.on_call[offer.agent_id] = offer.interaction_id
        self.busy_since[offer.agent_id] = now
        self.push(now + call.handle_s, _Event.FINISH, offer.interaction_id)

    def work_ended(self, agent_id: str, now: float) -> None:
        """The agent is free again: count their busy stretch inside the window."""
        began = self.busy_since.pop(agent_id)
        self.busy_s += max(0.0, min(now, self.duration_s) - max(began, self.warmup_s))

    def result(self, target_s: float, batches: int) -> SimulationResult:
        window = self.duration_s - self.warmup_s
        width = window / batches
        within = [0] * batches
        offered = [0] * batches
        waits: list[list[float]] = [[] for _ in range(batches)]
        abandoned = 0
        for call in self.calls.values():
            if not call.measured:
                continue
            batch = min(int((call.arrived - self.warmup_s) / width), batches - 1)
            offered[batch] += 1
            if call.answered is None:
                abandoned += 1
                continue
            wait = call.answered - call.arrived
            waits[batch].append(wait)
            if wait <= target_s:
                within[batch] += 1
        calls = sum(offered)
        all_waits = [wait for batch in waits for wait in batch]
        batch_levels = [w / n for w, n in zip(within, offered, strict=True) if n]
        batch_asas = [statistics.fmean(b) for b in waits if b]
        return SimulationResult(
            calls=calls,
            answered=len(all_waits),
            abandoned=abandoned,
            service_level=sum(within) / calls if calls else 1.0,
            service_level_se=_standard_error(batch_levels),
            asa=statistics.fmean(all_waits) if all_waits else 0.0,
            asa_se=_standard_error(batch_asas),
            max_wait=max(all_waits, default=0.0),
            occupancy=self.busy_s / (self.agent_count * window),
            abandon_rate=abandoned / calls if calls else 0.0,
        )


def _standard_error(batch_means: list[float]) -> float:
    if len(batch_means) < 2:
        return math.inf
    return statistics.stdev(batch_means) / math.sqrt(len(batch_means))
