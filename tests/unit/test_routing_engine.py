"""The distribution engine in situations a contact-center supervisor would recognise."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import pytest

from acd.core.routing.engine import RoutingEngine, UnknownAgent, UnknownQueue
from acd.core.routing.model import (
    AgentConfig,
    AgentState,
    Decision,
    Interaction,
    Offer,
    Overflow,
    QueueConfig,
    Stage,
    Timeout,
    WaitingView,
    parse_skills,
)


def agent(
    agent_id: str,
    *skills: str,
    queues: Sequence[str] = ("support",),
    capacity: Mapping[str, int] | None = None,
) -> AgentConfig:
    return AgentConfig(
        id=agent_id,
        skills=parse_skills(skills),
        queues=tuple(queues),
        capacity={"voice": 1} if capacity is None else capacity,
    )


def call(
    call_id: str,
    arrived: float,
    *skills: str,
    queue: str = "support",
    media: str = "voice",
    priority: int = 0,
) -> Interaction:
    return Interaction(
        call_id, queue, arrived, media=media, skills=parse_skills(skills), priority=priority
    )


def position(engine: RoutingEngine, call_id: str) -> int:
    view = engine.waiting(call_id)
    assert view is not None, f"{call_id} is not waiting"
    return view.position


def ringing_agent(engine: RoutingEngine, call_id: str) -> str | None:
    view = engine.waiting(call_id)
    assert view is not None, f"{call_id} is not waiting"
    return view.offered_to


def ready_engine(
    queues: Iterable[QueueConfig], agents: Iterable[AgentConfig], ready_at: dict[str, float]
) -> RoutingEngine:
    """Agents log in READY at the given times, in that order (no calls yet)."""
    engine = RoutingEngine(queues, agents)
    for agent_id, at in sorted(ready_at.items(), key=lambda item: item[1]):
        assert engine.login(agent_id, at, ready=True) == []
    return engine


def offers(decisions: Iterable[Decision]) -> list[tuple[str, str]]:
    return [(d.interaction_id, d.agent_id) for d in decisions if isinstance(d, Offer)]


SUPPORT = QueueConfig(name="support")


# --- who gets the call ----------------------------------------------------------------


def test_longest_idle_agent_gets_the_call() -> None:
    engine = ready_engine(
        [SUPPORT],
        [agent("anna"), agent("ben"), agent("cleo")],
        {"anna": 10.0, "ben": 5.0, "cleo": 7.0},
    )
    assert offers(engine.enqueue(call("c1", 20.0), 20.0)) == [("c1", "ben")]
    assert offers(engine.enqueue(call("c2", 21.0), 21.0)) == [("c2", "cleo")]
    assert engine.agent("ben").active == {"voice": 1}


def test_not_ready_and_logged_out_agents_get_nothing() -> None:
    engine = RoutingEngine([SUPPORT], [agent("anna"), agent("ben")])
    engine.login("anna", 0.0)
    engine.set_ready("anna", 1.0)
    engine.set_not_ready("anna", 2.0, "break")
    assert engine.enqueue(call("c1", 3.0), 3.0) == []
    assert engine.agent("anna").reason == "break"
    assert engine.staffed("support") == 0
    assert engine.queue_length("support") == 1
    assert offers(engine.login("ben", 4.0, ready=True)) == [("c1", "ben")]


def test_best_skill_prefers_the_expert_then_the_longest_idle() -> None:
    loans = QueueConfig(name="loans", skills={"loans": 1}, selection="best_skill")
    agents = [
        agent("anna", "loans:3", queues=["loans"]),
        agent("ben", "loans:8", queues=["loans"]),
        agent("cleo", "loans:8", queues=["loans"]),
    ]
    engine = ready_engine([loans], agents, {"anna": 1.0, "ben": 3.0, "cleo": 2.0})
    # ben and cleo are level 8; cleo has been idle longer.
    assert offers(engine.enqueue(call("c1", 5.0, queue="loans"), 5.0)) == [("c1", "cleo")]
    assert offers(engine.enqueue(call("c2", 6.0, queue="loans"), 6.0)) == [("c2", "ben")]
    assert offers(engine.enqueue(call("c3", 7.0, queue="loans"), 7.0)) == [("c3", "anna")]


def test_best_skill_counts_the_callers_own_skills_too() -> None:
    queue = QueueConfig(name="support", skills={"loans": 1}, selection="best_skill")
    agents = [agent("anna", "loans:9", "es:2"), agent("ben", "loans:4", "es:9")]
    engine = ready_engine([queue], agents, {"anna": 1.0, "ben": 2.0})
    # 9 + 2 = 11 against 4 + 9 = 13: the Spanish expert takes the Spanish caller.
    assert offers(engine.enqueue(call("c1", 5.0, "es"), 5.0)) == [("c1", "ben")]


# --- skills and relaxation ----------------------------------------------------------


def test_spanish_caller_waits_for_spanish_agent_until_relaxation_opens() -> None:
    queue = QueueConfig(name="support", stages=(Stage(after=60.0, drop=frozenset({"es"})),))
    engine = ready_engine([queue], [agent("emma", "en")], {"emma": 0.0})
    assert engine.enqueue(call("maria", 10.0, "es"), 10.0) == []
    assert engine.waiting("maria") == WaitingView(call("maria", 10.0, "es"), "support", 1, None)
    assert engine.next_deadline() == 70.0
    assert engine.tick(69.9) == []
    assert offers(engine.tick(70.0)) == [("maria", "emma")]
    assert engine.next_deadline() is None


def test_spanish_agent_takes_the_spanish_caller_before_relaxation() -> None:
    queue = QueueConfig(name="support", stages=(Stage(after=60.0, drop=frozenset({"es"})),))
    engine = ready_engine([queue], [agent("emma", "en"), agent("pablo", "es")], {"emma": 0.0})
    engine.enqueue(call("maria", 10.0, "es"), 10.0)
    assert offers(engine.login("pablo", 30.0, ready=True)) == [("maria", "pablo")]
    assert engine.tick(70.0) == []  # the relaxation no longer matters


def test_min_level_stage_lowers_a_level_and_stages_apply_cumulatively() -> None:
    stages = (
        Stage(after=120.0, drop=frozenset({"*"})),
        Stage(after=30.0, min_level={"loans": 2}),
    )
    queue = QueueConfig(name="support", skills={"loans": 5}, stages=stages)
    engine = ready_engine(
        [queue], [agent("junior", "loans:2"), agent("trainee")], {"junior": 0.0, "trainee": 1.0}
    )
    engine.enqueue(call("c1", 0.0), 0.0)
    engine.enqueue(call("c2", 0.0), 0.0)
    assert offers(engine.tick(30.0)) == [("c1", "junior")]
    assert offers(engine.tick(119.0)) == []
    assert offers(engine.tick(120.0)) == [("c2", "trainee")]


# --- service order ------------------------------------------------------------------


def serve_in_turn(engine: RoutingEngine, first: list[Offer], now: float) -> list[str]:
    """One agent answers and finishes each offer in turn: the order callers are served."""
    served = []
    pending = first
    while pending:
        (offer,) = pending
        served.append(offer.interaction_id)
        engine.offer_accepted(offer.interaction_id, now)
        now += 60.0
        pending = engine.finish(offer.interaction_id, now)
    return served


def test_vip_jumps_the_queue_but_a_long_waiting_caller_goes_first() -> None:
    queue = QueueConfig(name="support", aging=10.0)  # 9 priority points = 90 s
    engine = RoutingEngine([queue], [agent("anna")])
    engine.enqueue(call("early", 0.0), 0.0)  # waited 100 s more than the VIP: goes first
    engine.enqueue(call("normal", 50.0), 50.0)  # only 50 s more: the VIP goes before
    engine.enqueue(call("vip", 100.0, priority=9), 100.0)
    positions = [position(engine, c) for c in ("early", "vip", "normal")]
    assert positions == [1, 2, 3]
    first = engine.login("anna", 101.0, ready=True)
    assert serve_in_turn(engine, first, 101.0) == ["early", "vip", "normal"]


def test_multi_queue_agent_takes_the_longest_waiting_eligible_call_across_queues() -> None:
    queues = [QueueConfig(name="sales"), QueueConfig(name="support")]
    engine = RoutingEngine(queues, [agent("anna", "en", queues=["sales", "support"])])
    engine.enqueue(call("german", 1.0, "de", queue="support"), 1.0)  # anna cannot take it
    engine.enqueue(call("sales2", 9.0, queue="sales"), 9.0)
    engine.enqueue(call("support5", 5.0, queue="support"), 5.0)
    assert offers(engine.login("anna", 10.0, ready=True)) == [("support5", "anna")]


# --- ring-no-answer, wrap-up, removal ----------------------------------------------


def test_ring_no_answer_sets_agent_not_ready_and_caller_keeps_place() -> None:
    engine = ready_engine([SUPPORT], [agent("anna"), agent("ben")], {"anna": 0.0})
    engine.enqueue(call("first", 1.0), 1.0)
    engine.enqueue(call("second", 2.0), 2.0)
    assert ringing_agent(engine, "first") == "anna"
    assert engine.offer_rejected("first", 16.0) == []
    anna = engine.agent("anna")
    assert (anna.state, anna.reason, anna.since, anna.active) == (
        AgentState.NOT_READY,
        "ring_no_answer",
        16.0,
        {},
    )
    assert engine.waiting("first") == WaitingView(call("first", 1.0), "support", 1, None)
    assert position(engine, "second") == 2
    assert offers(engine.login("ben", 20.0, ready=True)) == [("first", "ben")]


def test_rejected_offer_goes_to_the_next_free_agent_at_once() -> None:
    engine = ready_engine([SUPPORT], [agent("anna"), agent("ben")], {"anna": 0.0, "ben": 1.0})
    assert offers(engine.enqueue(call("c1", 5.0), 5.0)) == [("c1", "anna")]
    assert offers(engine.offer_rejected("c1", 20.0, reason="busy")) == [("c1", "ben")]
    assert engine.agent("anna").reason == "busy"


def test_wrap_up_is_respected_and_ends_with_an_offer_through_tick() -> None:
    queue = QueueConfig(name="support", wrap_up=30.0)
    engine = ready_engine([queue], [agent("anna")], {"anna": 0.0})
    engine.enqueue(call("c1", 1.0), 1.0)
    engine.offer_accepted("c1", 5.0)
    assert engine.finish("c1", 100.0) == []
    view = engine.agent("anna")
    assert (view.state, view.wrap_up_until) == (AgentState.WRAP_UP, 130.0)
    assert engine.staffed("support") == 1
    assert engine.enqueue(call("c2", 110.0), 110.0) == []
    assert engine.next_deadline() == 130.0
    assert engine.tick(129.0) == []
    assert offers(engine.tick(130.0)) == [("c2", "anna")]
    assert engine.agent("anna").state is AgentState.READY


def test_ready_during_wrap_up_ends_it_early() -> None:
    queue = QueueConfig(name="support", wrap_up=30.0)
    engine = ready_engine([queue], [agent("anna")], {"anna": 0.0})
    engine.enqueue(call("c1", 1.0), 1.0)
    engine.offer_accepted("c1", 5.0)
    engine.finish("c1", 100.0)
    engine.enqueue(call("c2", 101.0), 101.0)
    assert offers(engine.set_ready("anna", 105.0)) == [("c2", "anna")]
    assert engine.tick(130.0) == []  # the old wrap-up end is moot


def test_agent_not_ready_during_the_call_stays_not_ready_after_it() -> None:
    engine = ready_engine([SUPPORT], [agent("anna")], {"anna": 0.0})
    engine.enqueue(call("c1", 1.0), 1.0)
    engine.offer_accepted("c1", 5.0)
    engine.set_not_ready("anna", 50.0, "lunch")
    engine.enqueue(call("c2", 60.0), 60.0)
    assert engine.finish("c1", 100.0) == []
    assert engine.agent("anna").reason == "lunch"
    assert position(engine, "c2") == 1


def test_removing_a_ringing_call_frees_the_agent_for_the_next_caller() -> None:
    engine = ready_engine([SUPPORT], [agent("anna")], {"anna": 0.0})
    engine.enqueue(call("c1", 1.0), 1.0)
    engine.enqueue(call("c2", 2.0), 2.0)
    gone = engine.remove("c1", 8.0)
    assert gone == WaitingView(call("c1", 1.0), "support", 1, "anna")
    assert engine.agent("anna").active == {"voice": 1}  # already reserved for c2
    assert engine.next_deadline() == 8.0
    assert offers(engine.tick(8.0)) == [("c2", "anna")]
    assert engine.remove("c1", 9.0) is None


def test_removing_a_waiting_caller_reports_the_position_it_had() -> None:
    engine = RoutingEngine([SUPPORT], [agent("anna")])
    for number in range(1, 5):
        engine.enqueue(call(f"c{number}", float(number)), float(number))
    gone = engine.remove("c3", 10.0)
    assert gone is not None and gone.position == 3
    assert position(engine, "c4") == 3
    assert engine.queue_length("support") == 3


# --- overflow and timeout -----------------------------------------------------------


def test_overflow_keeps_arrival_order_in_the_new_queue_and_restarts_stages() -> None:
    first = QueueConfig(name="first", overflow_after=60.0, overflow_to="backup")
    backup = QueueConfig(name="backup", stages=(Stage(after=30.0, drop=frozenset({"es"})),))
    engine = RoutingEngine([first, backup], [agent("ben", "en", queues=["backup"])])
    engine.enqueue(call("early", 0.0, queue="first"), 0.0)
    engine.enqueue(call("spanish", 5.0, "es", queue="first"), 5.0)
    engine.enqueue(call("direct", 30.0, queue="backup"), 30.0)
    assert engine.tick(65.0) == [
        Overflow("early", "first", "backup"),
        Overflow("spanish", "first", "backup"),
    ]
    order = {c: position(engine, c) for c in ("early", "spanish", "direct")}
    assert order == {"early": 1, "spanish": 2, "direct": 3}
    engine.login("ben", 70.0, ready=True)
    engine.offer_accepted("early", 71.0)
    # "spanish" entered backup at 65: its "es" is dropped at 95, so ben takes "direct".
    assert engine.finish("early", 80.0) == [Offer("direct", "ben", "backup")]
    engine.offer_accepted("direct", 81.0)
    engine.finish("direct", 90.0)
    assert offers(engine.tick(94.0)) == []
    assert offers(engine.tick(95.0)) == [("spanish", "ben")]


def test_timeout_at_max_wait_since_arrival() -> None:
    queue = QueueConfig(name="support", max_wait=120.0)
    engine = RoutingEngine([queue], [agent("anna")])
    engine.enqueue(call("c1", 10.0), 15.0)  # 5 s in the IVR before the queue
    assert engine.next_deadline() == 130.0
    assert engine.tick(129.9) == []
    assert engine.tick(200.0) == [Timeout("c1", "support", 120.0)]
    assert engine.waiting("c1") is None
    assert engine.queue_length("support") == 0
    assert engine.next_deadline() is None


def test_a_callback_request_never_times_out_and_keeps_its_place() -> None:
    queue = QueueConfig(name="support", max_wait=60.0)
    engine = RoutingEngine([queue], [agent("anna")])
    engine.enqueue(call("waiting", 0.0), 0.0)
    engine.enqueue(dataclasses.replace(call("promised", 5.0), callback=True), 5.0)
    engine.enqueue(call("later", 10.0), 10.0)
    assert [d.interaction_id for d in engine.tick(100.0) if isinstance(d, Timeout)] == [
        "waiting",
        "later",
    ]
    assert position(engine, "promised") == 1
    assert engine.login("anna", 200.0, ready=True) == [Offer("promised", "anna", "support")]


def test_a_ringing_call_does_not_time_out_until_the_offer_fails() -> None:
    queue = QueueConfig(name="support", max_wait=60.0)
    engine = ready_engine([queue], [agent("anna")], {"anna": 0.0})
    engine.enqueue(call("c1", 50.0), 50.0)
    assert engine.tick(115.0) == []  # still ringing at 110
    assert engine.offer_rejected("c1", 115.0) == []
    assert engine.tick(115.0) == [Timeout("c1", "support", 65.0)]


# --- media and capacity -------------------------------------------------------------


def test_capacity_per_media_two_chats_never_two_calls() -> None:
    both = QueueConfig(name="support")
    anna = agent("anna", capacity={"voice": 1, "chat": 2})
    engine = RoutingEngine([both], [anna])
    for number in range(1, 4):
        engine.enqueue(call(f"chat{number}", float(number), media="chat"), float(number))
    engine.enqueue(call("voice1", 4.0), 4.0)
    engine.enqueue(call("voice2", 5.0), 5.0)
    # One offer per media type at a time.
    assert offers(engine.login("anna", 10.0, ready=True)) == [("chat1", "anna"), ("voice1", "anna")]
    engine.offer_accepted("chat1", 11.0)
    assert engine.next_deadline() == 11.0
    assert offers(engine.tick(11.0)) == [("chat2", "anna")]
    engine.offer_accepted("chat2", 12.0)
    engine.offer_accepted("voice1", 13.0)
    assert engine.tick(20.0) == []
    assert engine.agent("anna").active == {"chat": 2, "voice": 1}
    assert offers(engine.finish("chat1", 30.0)) == [("chat3", "anna")]
    assert offers(engine.finish("voice1", 31.0)) == [("voice2", "anna")]


def test_media_missing_from_capacity_is_never_offered() -> None:
    engine = ready_engine([SUPPORT], [agent("anna")], {"anna": 0.0})
    assert engine.enqueue(call("chat1", 1.0, media="chat"), 1.0) == []
    assert offers(engine.enqueue(call("voice1", 2.0), 2.0)) == [("voice1", "anna")]


# --- configuration at run time ------------------------------------------------------


def test_configure_at_runtime_changes_skills_and_keeps_agent_state() -> None:
    engine = ready_engine([SUPPORT], [agent("anna", "en"), agent("ben", "en")], {"anna": 5.0})
    engine.enqueue(call("maria", 10.0, "es"), 10.0)
    assert engine.agent("anna").state is AgentState.READY
    decisions = engine.configure([SUPPORT], [agent("anna", "en", "es"), agent("ben", "en")], 20.0)
    assert decisions == [Offer("maria", "anna", "support")]
    assert engine.agent("anna").since == 5.0
    assert engine.agent("ben").state is AgentState.LOGGED_OUT
    engine.offer_accepted("maria", 21.0)
    engine.configure([SUPPORT], [agent("anna", "en"), agent("ben", "en")], 30.0)
    engine.enqueue(call("jose", 35.0, "es"), 35.0)
    assert engine.finish("maria", 40.0) == []  # anna no longer speaks Spanish


def test_removed_agent_finishes_the_call_then_is_gone() -> None:
    engine = ready_engine([SUPPORT], [agent("anna")], {"anna": 0.0})
    engine.enqueue(call("c1", 1.0), 1.0)
    engine.offer_accepted("c1", 2.0)
    engine.configure([SUPPORT], [], 3.0)
    assert engine.agent("anna").active == {"voice": 1}
    with pytest.raises(UnknownAgent):
        engine.set_ready("anna", 4.0)
    engine.enqueue(call("c2", 5.0), 5.0)
    assert engine.finish("c1", 10.0) == []
    with pytest.raises(UnknownAgent):
        engine.agent("anna")
    assert position(engine, "c2") == 1


def test_calls_of_a_removed_queue_wait_until_it_returns() -> None:
    engine = RoutingEngine([SUPPORT], [agent("anna")])
    engine.enqueue(call("c1", 1.0), 1.0)
    engine.configure([], [agent("anna")], 2.0)
    engine.login("anna", 3.0, ready=True)
    with pytest.raises(UnknownQueue):
        engine.queue_length("support")
    assert position(engine, "c1") == 1
    assert engine.configure([SUPPORT], [agent("anna")], 4.0) == [Offer("c1", "anna", "support")]


def test_bad_configuration_names_the_queue_and_field() -> None:
    with pytest.raises(ValueError, match="queue 'first': overflow_to 'nowhere'"):
        RoutingEngine([QueueConfig(name="first", overflow_after=5.0, overflow_to="nowhere")], [])
    with pytest.raises(ValueError, match="queue 'support': configured twice"):
        RoutingEngine([SUPPORT, SUPPORT], [])
    with pytest.raises(ValueError, match=r"agent 'anna': skills: 'es' level 11"):
        RoutingEngine([SUPPORT], [AgentConfig(id="anna", skills={"es": 11})])
    with pytest.raises(ValueError, match="queue 'support': wrap_up must not be negative"):
        RoutingEngine([QueueConfig(name="support", wrap_up=-1.0)], [])


def test_bad_calls_and_agent_actions_are_refused() -> None:
    engine = RoutingEngine([SUPPORT], [agent("anna")])
    engine.enqueue(call("c1", 1.0), 1.0)
    with pytest.raises(ValueError, match="already in the engine"):
        engine.enqueue(call("c1", 2.0), 2.0)
    with pytest.raises(UnknownQueue):
        engine.enqueue(call("c2", 2.0, queue="sales"), 2.0)
    with pytest.raises(ValueError, match="priority 100"):
        engine.enqueue(call("c3", 2.0, priority=100), 2.0)
    with pytest.raises(ValueError, match="logged out"):
        engine.set_ready("anna", 3.0)
    with pytest.raises(ValueError, match="not being offered"):
        engine.offer_accepted("c1", 3.0)
    with pytest.raises(UnknownAgent):
        engine.login("zoe", 3.0)


# --- determinism --------------------------------------------------------------------


# A small contact center driven by seeded random operations. The test keeps its own
# account of every call and agent, and after each step checks the engine against it:
# no agent over capacity, no call offered twice, no free agent left beside a call it
# could take, and in the end every call ended exactly once.

RANDOM_QUEUES = [
    QueueConfig(
        name="general",
        stages=(Stage(after=20.0, drop=frozenset({"fr"})),),
        max_wait=150.0,
        wrap_up=3.0,
    ),
    QueueConfig(
        name="billing",
        skills={"billing": 3},
        selection="best_skill",
        overflow_after=30.0,
        overflow_to="general",
        stages=(Stage(after=10.0, min_level={"billing": 1}),),
    ),
    QueueConfig(name="chat", aging=5.0, wrap_up=1.0),
]
LANGUAGES = ("en", "fr", "de")


def random_agents(rng: random.Random, count: int) -> list[AgentConfig]:
    agents = []
    for n in range(count):
        skills = {lang: rng.randint(1, 10) for lang in rng.sample(LANGUAGES, rng.randint(1, 2))}
        if rng.random() < 0.6:
            skills["billing"] = rng.randint(1, 10)
        queues = tuple(rng.sample([q.name for q in RANDOM_QUEUES], rng.randint(1, 3)))
        capacity = {"voice": 1, "chat": 2} if "chat" in queues else {"voice": 1}
        agents.append(AgentConfig(id=f"a{n}", skills=skills, queues=queues, capacity=capacity))
    return agents


def needed(queue: QueueConfig, interaction: Interaction, in_queue: float) -> dict[str, int]:
    """What the call requires, worked out here independently of the engine."""
    levels = dict(queue.skills)
    for name, level in interaction.skills.items():
        levels[name] = max(level, levels.get(name, 0))
    for stage in sorted(queue.stages, key=lambda s: s.after):
        if stage.after <= in_queue:
            levels = (
                {}
                if "*" in stage.drop
                else {k: v for k, v in levels.items() if k not in stage.drop}
            )
            for name, level in stage.min_level.items():
                if name in levels:
                    levels[name] = min(levels[name], level)
    return levels


class Center:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.now = 0.0
        self.agent_configs = {a.id: a for a in random_agents(self.rng, 8)}
        self.queues = {q.name: q for q in RANDOM_QUEUES}
        self.engine = RoutingEngine(RANDOM_QUEUES, self.agent_configs.values())
        self.log: list[object] = []
        self.calls: dict[str, Interaction] = {}
        self.where: dict[str, tuple[str, float]] = {}  # waiting or ringing: queue, entered
        self.ringing: dict[str, str] = {}  # call -> agent
        self.connected: dict[str, str] = {}
        self.held: dict[str, Counter[str]] = {a: Counter() for a in self.agent_configs}
        self.pending: dict[str, set[str]] = {a: set() for a in self.agent_configs}
        self.ended: Counter[str] = Counter()

    # --- carrying out decisions, with the checks each one allows ---

    def apply(self, decisions: Iterable[Decision]) -> None:
        for decision in decisions:
            self.log.append(decision)
            if isinstance(decision, Offer):
                call_id, agent_id = decision.interaction_id, decision.agent_id
                media = self.calls[call_id].media
                assert call_id in self.where and call_id not in self.ringing, decision
                assert media not in self.pending[agent_id], f"two {media} offers to {agent_id}"
                assert self.held[agent_id][media] < self.agent_configs[agent_id].capacity[media]
                self.ringing[call_id] = agent_id
                self.held[agent_id][media] += 1
                self.pending[agent_id].add(media)
            elif isinstance(decision, Overflow):
                assert self.where[decision.interaction_id][0] == decision.from_queue
                assert decision.interaction_id not in self.ringing
                self.where[decision.interaction_id] = (decision.to_queue, self.now)
            else:
                assert decision.interaction_id not in self.ringing, decision
                self.end(decision.interaction_id)
                del self.where[decision.interaction_id]

    def end(self, call_id: str) -> None:
        self.ended[call_id] += 1

    def release(self, call_id: str, agent_id: str, *, ringing: bool) -> None:
        media = self.calls[call_id].media
        self.held[agent_id][media] -= 1
        if ringing:
            self.pending[agent_id].discard(media)

    # --- random operations ---

    def step(self) -> None:
        rng, engine = self.rng, self.engine
        self.now += rng.choice((0.0, 1.0, 1.0, 2.0, 5.0))
        now = self.now
        choice = rng.random()
        if choice < 0.3:
            number = len(self.calls) + 1
            queue = rng.choice(list(self.queues))
            interaction = Interaction(
                f"c{number}",
                queue,
                now - rng.choice((0.0, 3.0)),
                media="chat" if queue == "chat" and rng.random() < 0.7 else "voice",
                skills={rng.choice(LANGUAGES): rng.randint(1, 6)},
                priority=rng.randint(0, 3),
            )
            self.calls[interaction.id] = interaction
            self.where[interaction.id] = (queue, now)
            self.apply(engine.enqueue(interaction, now))
        elif choice < 0.45 and self.ringing:
            call_id = rng.choice(sorted(self.ringing))
            engine.offer_accepted(call_id, now)
            agent_id = self.ringing.pop(call_id)
            self.pending[agent_id].discard(self.calls[call_id].media)
            self.connected[call_id] = agent_id
            del self.where[call_id]
        elif choice < 0.5 and self.ringing:
            call_id = rng.choice(sorted(self.ringing))
            agent_id = self.ringing.pop(call_id)
            self.release(call_id, agent_id, ringing=True)
            self.apply(engine.offer_rejected(call_id, now))
            # A logged-out agent stays logged out.
            assert engine.agent(agent_id).state in (AgentState.NOT_READY, AgentState.LOGGED_OUT)
        elif choice < 0.65 and self.connected:
            call_id = rng.choice(sorted(self.connected))
            self.release(call_id, self.connected.pop(call_id), ringing=False)
            self.end(call_id)
            self.apply(engine.finish(call_id, now))
        elif choice < 0.72 and self.where:
            call_id = rng.choice(sorted(self.where))
            assert engine.remove(call_id, now) is not None
            if call_id in self.ringing:
                self.release(call_id, self.ringing.pop(call_id), ringing=True)
            del self.where[call_id]
            self.end(call_id)
        elif choice < 0.98:
            agent_id = rng.choice(sorted(self.agent_configs))
            state = engine.agent(agent_id).state
            action = rng.random()
            if state is AgentState.LOGGED_OUT:
                self.apply(engine.login(agent_id, now, ready=action < 0.7))
            elif action < 0.6:
                self.apply(engine.set_ready(agent_id, now))
            elif action < 0.9:
                engine.set_not_ready(agent_id, now, "break")
            else:
                engine.logout(agent_id, now)
        else:
            self.agent_configs = {a.id: a for a in random_agents(self.rng, 8)}
            self.apply(engine.configure(RANDOM_QUEUES, self.agent_configs.values(), now))
        self.apply(engine.tick(now))
        self.check()

    def check(self) -> None:
        engine = self.engine
        for agent_id, config in self.agent_configs.items():
            view = engine.agent(agent_id)
            held = {m: n for m, n in self.held[agent_id].items() if n}
            assert view.active == held, agent_id
            # (Capacity is checked at each offer: a new configuration may lower it
            # below what the agent already holds.)
            if view.state is not AgentState.READY:
                continue
            free = {
                m
                for m, slots in config.capacity.items()
                if held.get(m, 0) < slots and m not in self.pending[agent_id]
            }
            for call_id, (queue, entered) in self.where.items():
                interaction = self.calls[call_id]
                if call_id in self.ringing or interaction.media not in free:
                    continue
                if queue not in config.queues:
                    continue
                levels = needed(self.queues[queue], interaction, self.now - entered)
                assert not all(config.skills.get(k, 0) >= v for k, v in levels.items()), (
                    f"{agent_id} free beside {call_id} at {self.now}"
                )
        for call_id, (queue, _) in self.where.items():
            waiting = engine.waiting(call_id)
            assert waiting is not None and waiting.queue == queue
            assert waiting.offered_to == self.ringing.get(call_id)

    def drain(self) -> None:
        for call_id in sorted(self.ringing):
            self.engine.offer_accepted(call_id, self.now)
            self.connected[call_id] = self.ringing.pop(call_id)
            del self.where[call_id]
        for call_id in sorted(self.connected):
            self.end(call_id)
            self.engine.finish(call_id, self.now)
        for call_id in sorted(self.where):
            if self.engine.remove(call_id, self.now) is not None:
                self.end(call_id)
        self.engine.tick(self.now + 1000.0)


@pytest.mark.parametrize("seed", range(12))
def test_random_operations_keep_the_invariants(seed: int) -> None:
    center = Center(seed)
    for _ in range(600):
        center.step()
    assert sum(isinstance(d, Offer) for d in center.log) > 50
    center.drain()
    assert set(center.ended) == set(center.calls)
    assert set(center.ended.values()) == {1}
    assert all(center.engine.waiting(c) is None for c in center.calls)
    assert [center.engine.queue_length(q) for q in center.queues] == [0, 0, 0]


def test_same_script_gives_the_same_decisions() -> None:
    first, second = Center(seed=7), Center(seed=7)
    for _ in range(400):
        first.step()
        second.step()
    assert first.log == second.log
    assert any(isinstance(d, Overflow) for d in first.log)
    assert any(isinstance(d, Timeout) for d in first.log)
