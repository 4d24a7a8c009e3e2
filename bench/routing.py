"""Routing decisions with a full contact center: the engine against a naive scan.

    python bench/routing.py [--agents 2000] [--waiting 20000] [--queues 20]
                            [--decisions 20000] [--naive 200] [--seed 1]

The center: 50 skills (10 languages, 40 products), ``--queues`` queues that each need
a product (a few need nothing), callers who need a language and sometimes a second
product (1-3 skills in all, with levels), relaxation stages after 90 s and 300 s, a
tenth of the callers with a priority, agents with 3-8 skills serving 1-4 queues.
Every agent is on a call and ``--waiting`` callers wait; then, over and over, a random
agent finishes (the decision measured: who gets the freed agent), answers the offer,
and a new caller arrives (the second decision: offer or wait).

The naive baseline, written here, keeps the waiting callers in a dict and scans them
all when an agent frees up. It replays the same script from the same state for
``--naive`` cycles; both must pick the same caller every time. Figures only: it
asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from acd.core.routing.engine import RoutingEngine
from acd.core.routing.model import (
    AgentConfig,
    Decision,
    Interaction,
    Offer,
    QueueConfig,
    Stage,
)

LANGUAGES = ("en", "es", "de", "fr", "it", "pt", "nl", "pl", "tr", "ar")
LANGUAGE_SHARE = (50, 15, 10, 7, 5, 4, 3, 3, 2, 1)
PRODUCTS = tuple(f"p{n:02d}" for n in range(40))
TARGET_P99_MS = 1.0
TARGET_PER_S = 20_000


# --- the contact center -------------------------------------------------------------


def related(queue_number: int) -> tuple[str, str]:
    """Two products (of the upper 20) a caller of this queue may also need."""
    return PRODUCTS[20 + queue_number % 20], PRODUCTS[20 + (queue_number + 7) % 20]


def make_queues(count: int, rng: random.Random) -> list[QueueConfig]:
    queues = []
    for n in range(count):
        extra = related(n)
        stages = (
            Stage(after=90.0, min_level={p: 1 for p in (*PRODUCTS[:20], *extra)}),
            Stage(after=300.0, drop=frozenset(extra)),
        )
        queues.append(
            QueueConfig(
                name=f"q{n:02d}",
                skills={} if n % 5 == 4 else {PRODUCTS[n % 20]: rng.randint(1, 3)},
                stages=stages,
                selection="best_skill" if n % 4 == 3 else "longest_idle",
            )
        )
    return queues


def make_agents(count: int, queues: Sequence[QueueConfig], rng: random.Random) -> list[AgentConfig]:
    agents = []
    for n in range(count):
        served = rng.sample(range(len(queues)), rng.randint(1, 4))
        skills = {"en": rng.randint(3, 10)}
        if rng.random() < 0.6:
            other = rng.choices(LANGUAGES[1:], LANGUAGE_SHARE[1:])[0]
            skills[other] = rng.randint(3, 10)
        for q in served:
            for product in queues[q].skills:
                skills[product] = rng.randint(3, 10)
        extras = [p for q in served for p in related(q)]
        while len(skills) < 8 and extras and (len(skills) < 3 or rng.random() < 0.5):
            skills.setdefault(extras.pop(rng.randrange(len(extras))), rng.randint(1, 10))
        agents.append(
            AgentConfig(
                id=f"agent{n:05d}", skills=skills, queues=tuple(queues[q].name for q in served)
            )
        )
    return agents


def make_call(number: int, arrived: float, queue_count: int, rng: random.Random) -> Interaction:
    q = rng.randrange(queue_count)
    skills = {rng.choices(LANGUAGES, LANGUAGE_SHARE)[0]: rng.randint(1, 3)}
    if rng.random() < 0.35:
        skills[rng.choice(related(q))] = rng.randint(1, 5)
    priority = rng.randint(3, 9) if rng.random() < 0.1 else 0
    return Interaction(f"call{number:06d}", f"q{q:02d}", arrived, skills=skills, priority=priority)


# --- the naive router ---------------------------------------------------------------


@dataclass
class NaiveCall:
    interaction: Interaction
    seq: int
    entered: float
    base: dict[str, int]


@dataclass
class NaiveAgent:
    config: AgentConfig
    idle_since: float = 0.0
    busy: bool = False
    queues: frozenset[str] = field(default_factory=frozenset)


class NaiveRouter:
    """The same rules as the engine, by scanning every waiting caller (voice only)."""

    def __init__(self, queues: Sequence[QueueConfig], agents: Sequence[AgentConfig]) -> None:
        self.queues = {q.name: q for q in queues}
        self.stages = {q.name: sorted(q.stages, key=lambda s: s.after) for q in queues}
        self.agents = {a.id: NaiveAgent(a, queues=frozenset(a.queues)) for a in agents}
        self.waiting: dict[str, NaiveCall] = {}
        self.connected: dict[str, str] = {}

    def add_waiting(self, interaction: Interaction, seq: int, entered: float) -> None:
        base = dict(self.queues[interaction.queue].skills)
        for name, level in interaction.skills.items():
            base[name] = max(level, base.get(name, 0))
        self.waiting[interaction.id] = NaiveCall(interaction, seq, entered, base)

    def needed(self, call: NaiveCall, now: float) -> dict[str, int]:
        levels = call.base
        for stage in self.stages[call.interaction.queue]:
            if stage.after > now - call.entered:
                break
            levels = {k: v for k, v in levels.items() if k not in stage.drop}
            if "*" in stage.drop:
                levels = {}
            for name, level in stage.min_level.items():
                if name in levels and level < levels[name]:
                    levels[name] = level
        return levels

    def key(self, call: NaiveCall) -> tuple[float, int]:
        aging = self.queues[call.interaction.queue].aging
        return (call.interaction.arrived - aging * call.interaction.priority, call.seq)

    def offer(self, call: NaiveCall, agent: NaiveAgent) -> Offer:
        del self.waiting[call.interaction.id]
        agent.busy = True
        self.connected[call.interaction.id] = agent.config.id
        return Offer(call.interaction.id, agent.config.id, call.interaction.queue)

    def for_agent(self, agent: NaiveAgent, now: float) -> list[Offer]:
        skills = agent.config.skills
        best: tuple[float, int] | None = None
        chosen = None
        for call in self.waiting.values():
            if call.interaction.queue not in agent.queues:
                continue
            needed = self.needed(call, now)
            if all(skills.get(k, 0) >= v for k, v in needed.items()):
                key = self.key(call)
                if best is None or key < best:
                    best, chosen = key, call
        return [] if chosen is None else [self.offer(chosen, agent)]

    def free_agents(self) -> list[NaiveAgent]:
        free = [a for a in self.agents.values() if not a.busy]
        return sorted(free, key=lambda a: (a.idle_since, a.config.id))

    def finish(self, call_id: str, now: float) -> list[Offer]:
        agent = self.agents[self.connected.pop(call_id)]
        agent.busy = False
        agent.idle_since = now
        return self.for_agent(agent, now)

    def enqueue(self, interaction: Interaction, seq: int, now: float) -> list[Offer]:
        self.add_waiting(interaction, seq, now)
        call = self.waiting[interaction.id]
        needed = self.needed(call, now)
        queue = self.queues[interaction.queue]
        best: tuple[int, float, str] | None = None
        chosen = None
        for agent in self.free_agents():
            if interaction.queue not in agent.queues:
                continue
            skills = agent.config.skills
            if not all(skills.get(k, 0) >= v for k, v in needed.items()):
                continue
            score = sum(skills.get(k, 0) for k in needed) if queue.selection == "best_skill" else 0
            rank = (-score, agent.idle_since, agent.config.id)
            if best is None or rank < best:
                best, chosen = rank, agent
        return [] if chosen is None else [self.offer(call, chosen)]

    def tick(self, now: float) -> list[Offer]:
        """A relaxation may open a caller to an idle agent: try every idle agent."""
        offers = []
        for agent in self.free_agents():
            offers += self.for_agent(agent, now)
        return offers


# --- one script, two routers ----------------------------------------------------------


@dataclass
class Timings:
    freed_s: list[float] = field(default_factory=list)
    arrived_s: list[float] = field(default_factory=list)
    other_s: float = 0.0  # tick and offer_accepted
    choices: list[str | None] = field(default_factory=list)  # caller given to the freed agent


class Script:
    """Finish a random busy agent's call, answer the offer, let a new caller in."""

    def __init__(
        self,
        finish: Callable[[str, float], Sequence[Decision]],
        enqueue: Callable[[Interaction, int, float], Sequence[Decision]],
        accept: Callable[[str, float], None],
        tick: Callable[[float], Sequence[Decision]],
        on_call: Mapping[str, str],
        seed: int,
    ) -> None:
        self.finish, self.enqueue, self.accept, self.tick = finish, enqueue, accept, tick
        self.on_call = dict(on_call)  # agent -> call
        self.busy = sorted(self.on_call)
        self.rng = random.Random(seed)

    def answer(self, decisions: Sequence[Decision], now: float) -> str | None:
        chosen = None
        for decision in decisions:
            if isinstance(decision, Offer):
                self.accept(decision.interaction_id, now)
                if decision.agent_id not in self.on_call:
                    self.busy.append(decision.agent_id)
                self.on_call[decision.agent_id] = decision.interaction_id
                chosen = decision.interaction_id
        return chosen

    def run(self, new_calls: Sequence[Interaction], first_seq: int, start: float) -> Timings:
        timings = Timings()
        clock = time.perf_counter
        for n, interaction in enumerate(new_calls):
            now = start + n * 0.01
            began = clock()
            self.answer(self.tick(now), now)
            timings.other_s += clock() - began
            index = self.rng.randrange(len(self.busy))
            agent_id = self.busy[index]
            self.busy[index] = self.busy[-1]
            self.busy.pop()
            call_id = self.on_call.pop(agent_id)
            began = clock()
            offers = self.finish(call_id, now)
            timings.freed_s.append(clock() - began)
            began = clock()
            timings.choices.append(self.answer(offers, now))
            timings.other_s += clock() - began
            arrived = replace(interaction, arrived=now)
            began = clock()
            offers = self.enqueue(arrived, first_seq + n, now)
            timings.arrived_s.append(clock() - began)
            began = clock()
            self.answer(offers, now)
            timings.other_s += clock() - began
        return timings


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=2000)
    parser.add_argument("--waiting", type=int, default=20_000)
    parser.add_argument("--queues", type=int, default=20)
    parser.add_argument("--decisions", type=int, default=20_000)
    parser.add_argument("--naive", type=int, default=200, help="cycles replayed by the naive scan")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    queues = make_queues(args.queues, rng)
    agents = make_agents(args.agents, queues, rng)
    backlog = args.waiting + args.agents
    calls = [make_call(n, -900.0 + 900.0 * n / backlog, args.queues, rng) for n in range(backlog)]
    new_calls = [make_call(backlog + n, 0.0, args.queues, rng) for n in range(args.decisions)]

    # The engine: callers first, then every agent READY and answering.
    started = time.perf_counter()
    engine = RoutingEngine(queues, agents)
    for agent in agents:
        engine.login(agent.id, -900.0)
    for interaction in calls:
        engine.enqueue(interaction, interaction.arrived)
    engine.tick(0.0)
    on_call: dict[str, str] = {}
    for agent in agents:
        for offer in engine.set_ready(agent.id, 0.0):
            engine.offer_accepted(offer.interaction_id, 0.0)
            on_call[offer.agent_id] = offer.interaction_id
    setup_s = time.perf_counter() - started
    waiting = sum(engine.queue_length(q.name) for q in queues)

    # The naive router from the very same state.
    naive = NaiveRouter(queues, agents)
    for seq, interaction in enumerate(calls, 1):
        if engine.waiting(interaction.id) is not None:
            naive.add_waiting(interaction, seq, interaction.arrived)
    for agent_id, call_id in on_call.items():
        naive.agents[agent_id].busy = True
        naive.connected[call_id] = agent_id
    groups = len(
        {
            (c.interaction.queue, tuple(sorted(naive.needed(c, 0.0).items())))
            for c in naive.waiting.values()
        }
    )
    idle = [a.id for a in agents if a.id not in on_call]
    for agent_id in idle:
        naive.agents[agent_id].idle_since = 0.0

    first_seq = backlog + 1
    engine_script = Script(
        engine.finish,
        lambda interaction, seq, now: engine.enqueue(interaction, now),
        engine.offer_accepted,
        engine.tick,
        on_call,
        args.seed,
    )
    naive_script = Script(
        naive.finish, naive.enqueue, lambda c, now: None, naive.tick, on_call, args.seed
    )
    started = time.perf_counter()
    fast = engine_script.run(new_calls, first_seq, 0.01)
    engine_s = time.perf_counter() - started
    slow = naive_script.run(new_calls[: args.naive], first_seq, 0.01)

    sample = min(args.naive, len(fast.choices))
    same = sum(a == b for a, b in zip(fast.choices[:sample], slow.choices, strict=True))
    offered = sum(choice is not None for choice in fast.choices)

    def row(label: str, engine_value: float, naive_value: float, unit: str) -> None:
        ratio = naive_value / engine_value if unit != "/s" else engine_value / naive_value
        print(f"{label:<34}{engine_value:>14,.1f}{naive_value:>14,.1f}  {unit:<4}{ratio:>10,.0f}x")

    def per_s(figures: Timings) -> float:
        return (len(figures.freed_s) + len(figures.arrived_s)) / (
            sum(figures.freed_s) + sum(figures.arrived_s)
        )

    freed_p99_ms = percentile(fast.freed_s, 0.99) * 1000
    decisions_per_s = per_s(fast)
    print(
        f"python {sys.version.split()[0]}: {args.agents} agents (all busy), {waiting} waiting,"
        f" {len(PRODUCTS) + len(LANGUAGES)} skills, {args.queues} queues,"
        f" {groups} requirement groups; setup {setup_s:.1f} s"
    )
    print(
        f"engine: {args.decisions} cycles in {engine_s:.1f} s, freed agent offered a caller in"
        f" {offered}/{len(fast.choices)}; naive: {len(slow.choices)} cycles of the same script"
    )
    print(f"{'':<34}{'engine':>14}{'naive':>14}  {'':<4}{'speed-up':>11}")
    for label, share in (
        ("agent frees up -> offer, p50", 0.5),
        ("agent frees up -> offer, p99", 0.99),
    ):
        row(
            label,
            percentile(fast.freed_s, share) * 1e6,
            percentile(slow.freed_s, share) * 1e6,
            "us",
        )
    row("agent frees up -> offer, max", max(fast.freed_s) * 1e6, max(slow.freed_s) * 1e6, "us")
    for label, share in (
        ("caller arrives -> offer, p50", 0.5),
        ("caller arrives -> offer, p99", 0.99),
    ):
        row(
            label,
            percentile(fast.arrived_s, share) * 1e6,
            percentile(slow.arrived_s, share) * 1e6,
            "us",
        )
    row("decisions (both kinds) per second", decisions_per_s, per_s(slow), "/s")
    row(
        "  of which agent frees up, per s",
        len(fast.freed_s) / sum(fast.freed_s),
        len(slow.freed_s) / sum(slow.freed_s),
        "/s",
    )
    cycles_per_s = len(fast.freed_s) / (sum(fast.freed_s) + sum(fast.arrived_s) + fast.other_s)
    print(f"{'cycles/s incl. tick + accept':<34}{cycles_per_s:>14,.1f}")
    print(f"same caller chosen as the naive scan: {same}/{sample}")
    p99_met = "met" if freed_p99_ms < TARGET_P99_MS else "NOT met"
    print(
        f"targets: p99 < {TARGET_P99_MS:g} ms: {p99_met}"
        f" ({freed_p99_ms:.3f} ms); >= {TARGET_PER_S:,} decisions/s:"
        f" {'met' if decisions_per_s >= TARGET_PER_S else 'NOT met'} ({decisions_per_s:,.0f}/s)"
    )


if __name__ == "__main__":
    main()
