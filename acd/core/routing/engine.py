"""The distribution engine: who gets which interaction, and when.

Pure and deterministic: no clock, no I/O, no randomness. Ties are broken by arrival
order (``seq``) and then agent id, so the same calls give the same decisions.

Rules, in the order they decide:

* **Eligibility**: an agent is eligible for an interaction when they are READY, serve
  its current queue, have spare capacity for its media type, hold no pending offer for
  that media type, and meet every skill requirement of its current stage.
* **Service order** of waiting interactions: smallest ``arrived - aging * priority``
  first (priority with aging: a VIP jumps the queue, but a normal caller who has waited
  ``aging * Δpriority`` seconds longer goes first, so nobody starves), then ``seq``.
  An agent serving several queues takes the first eligible interaction across all of
  them by that same key.
* **Agent choice** when an interaction arrives and several agents are eligible: the
  queue's ``selection``: ``longest_idle`` (smallest ``idle_since``) or ``best_skill``
  (highest sum of the agent's levels over the required skills, then longest idle).
* **Stages**: the requirements are the queue's skills merged with the interaction's
  (max level), then each stage with ``after <= time in current queue`` applied in order.
* **Overflow**: after ``overflow_after`` s in a queue the interaction moves to
  ``overflow_to``, keeping ``arrived``; stages restart from 0 in the new queue.
* **Timeout**: after ``max_wait`` s since ``arrived`` (of the current queue's config)
  a caller leaves with a ``Timeout`` decision; a callback request never times out
  (nobody is holding the line, and the customer was promised a call).
* **Wrap-up**: after ``finish`` the agent is in WRAP_UP for the queue's ``wrap_up`` s,
  then READY again (``tick`` reports the offers this makes possible).

Every method that can make agents and interactions meet returns the ``Offer``s it made;
the adapter rings those agents. An agent never holds two offers of one media type.
``offer_accepted`` and ``remove`` return no offers, yet can free a slot (a chat agent's
second chat, an agent whose caller hung up while ringing): the offers they make are
reported by the next ``tick``, and ``next_deadline`` is then the time of that call.

Deadlines take effect in ``tick``: a relaxation due at 30 s opens to agents when the
adapter ticks at (or after) 30 s. Overflow and timeout wait while the call is being
offered; if the offer fails they apply at the next tick. An agent who went NOT_READY
during a call stays NOT_READY when it ends (no wrap-up, no offer).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import count

from acd.core.routing.deadlines import Deadline, Deadlines, Due
from acd.core.routing.index import QueueIndex, WaitingGroup
from acd.core.routing.model import (
    AgentConfig,
    AgentState,
    AgentView,
    Decision,
    Interaction,
    Offer,
    Overflow,
    QueueConfig,
    Timeout,
    WaitingView,
)
from acd.core.routing.records import AgentRecord, InteractionRecord, Phase
from acd.core.routing.requirements import meets, requirement, skill_score
from acd.core.routing.validate import check_agents, check_interaction, check_queues

_WORKING = (AgentState.READY, AgentState.WRAP_UP)


class UnknownAgent(KeyError):
    """No agent with that id is configured."""


class UnknownQueue(KeyError):
    """No queue with that name is configured."""


class UnknownInteraction(KeyError):
    """No waiting, ringing or connected interaction with that id."""


class RoutingEngine:
    """All queues, agents and waiting interactions of one contact center."""

    def __init__(self, queues: Iterable[QueueConfig], agents: Iterable[AgentConfig]) -> None:
        self._queues: dict[str, QueueIndex] = {}
        self._agents: dict[str, AgentRecord] = {}
        self._by_id: dict[str, InteractionRecord] = {}
        self._by_seq: dict[int, InteractionRecord] = {}
        self._seq = 0
        self._deadlines = Deadlines(self._valid)
        #: Offers made by calls that return none, until ``tick`` reports them.
        self._deferred: dict[int, Offer] = {}
        self._tokens = count(1)
        self.configure(queues, agents, 0.0)

    # --- configuration (changeable at run time) ---------------------------------------

    def configure(
        self, queues: Iterable[QueueConfig], agents: Iterable[AgentConfig], now: float
    ) -> list[Decision]:
        """Replace the configuration without a restart. Agents keep their state; an
        agent no longer configured is logged out once idle (held interactions finish);
        interactions of a queue that disappeared stay where they are until they end
        (they take part in no new decisions). Returns offers the change made possible."""
        queue_configs = check_queues(queues)
        agent_configs = check_agents(agents)
        changed: set[str] = set()
        for name, config in queue_configs.items():
            index = self._queues.get(name)
            if index is None:
                self._queues[name] = QueueIndex(config)
            elif not index.live or index.config != config:
                index.live = True
                index.reconfigure(config)
                changed.add(name)
        holding = {
            entry.queue for entry in self._by_id.values() if entry.phase is not Phase.CONNECTED
        }
        for name in list(self._queues):
            if name not in queue_configs:
                if name in holding:
                    self._queues[name].live = False
                else:
                    del self._queues[name]
        for agent_id, agent_config in agent_configs.items():
            record = self._agents.get(agent_id)
            if record is None:
                self._agents[agent_id] = AgentRecord(agent_config, now)
            elif record.retiring or record.config != agent_config:
                record.retiring = False
                record.reconfigure(agent_config)
        for agent_id, record in list(self._agents.items()):
            if agent_id not in agent_configs:
                record.retiring = True
                if not record.interactions:
                    del self._agents[agent_id]
        self._rebuild_agent_indexes()
        for entry in sorted(self._by_id.values(), key=lambda e: e.seq):
            if entry.queue in changed and entry.phase is Phase.WAITING:
                entry.group = None
                self._wait(entry, now)
        free = [record for record in self._agents.values() if record.free_media()]
        free.sort(key=lambda r: (_idle(r), r.config.id))
        decisions: list[Decision] = []
        for record in free:
            decisions.extend(self._match_agent(record))
        return decisions

    def queue_config(self, name: str) -> QueueConfig:
        return self._live_queue(name).config

    def agent_config(self, agent_id: str) -> AgentConfig:
        return self._configured(agent_id).config

    # --- agent session ----------------------------------------------------------------

    def login(self, agent_id: str, now: float, *, ready: bool = False) -> list[Offer]:
        """Log in (NOT_READY with reason ``login``, or READY when ``ready``)."""
        record = self._configured(agent_id)
        if ready:
            if record.state is not AgentState.READY:
                self._become_ready(record, now)
            return self._match_agent(record)
        if record.state is AgentState.LOGGED_OUT:
            self._set_state(record, AgentState.NOT_READY, now, "login")
        return []

    def logout(self, agent_id: str, now: float) -> None:
        """Log out. Interactions the agent holds are unaffected (they finish normally)."""
        record = self._record(agent_id)
        if record.state is not AgentState.LOGGED_OUT:
            self._set_state(record, AgentState.LOGGED_OUT, now, None)

    def set_ready(self, agent_id: str, now: float) -> list[Offer]:
        """READY (also ends wrap-up early). Raises ValueError when logged out."""
        record = self._configured(agent_id)
        if record.state is AgentState.LOGGED_OUT:
            raise ValueError(f"agent {agent_id!r}: logged out, log in first")
        if record.state is not AgentState.READY:
            self._become_ready(record, now)
        return self._match_agent(record)

    def set_not_ready(self, agent_id: str, now: float, reason: str) -> None:
        """NOT_READY with a reason code (``break``, ``lunch``, ``ring_no_answer`` ...).
        Raises ValueError when logged out."""
        record = self._record(agent_id)
        if record.state is AgentState.LOGGED_OUT:
            raise ValueError(f"agent {agent_id!r}: logged out, log in first")
        if record.state is not AgentState.NOT_READY or record.reason != reason:
            self._set_state(record, AgentState.NOT_READY, now, reason)

    def agent(self, agent_id: str) -> AgentView:
        return self._record(agent_id).view()

    def agents(self) -> list[AgentView]:
        return [self._agents[agent_id].view() for agent_id in sorted(self._agents)]

    # --- interactions -----------------------------------------------------------------

    def enqueue(self, interaction: Interaction, now: float) -> list[Offer]:
        """Add a waiting interaction (ids are unique; raises ValueError on a repeat,
        UnknownQueue for an unknown queue). Returns the offer if an agent is free."""
        if interaction.id in self._by_id:
            raise ValueError(f"interaction {interaction.id!r}: already in the engine")
        self._live_queue(interaction.queue)
        check_interaction(interaction)
        self._seq += 1
        entry = InteractionRecord(interaction, self._seq, now)
        self._by_id[interaction.id] = entry
        self._by_seq[entry.seq] = entry
        self._wait(entry, now)
        return self._match_interaction(entry)

    def offer_accepted(self, interaction_id: str, now: float) -> None:
        """The agent answered: the interaction is connected and leaves the queue."""
        entry = self._ringing(interaction_id)
        record = self._agents[entry.agent or ""]
        record.pending.pop(entry.interaction.media, None)
        entry.phase = Phase.CONNECTED
        self._reindex(record)
        self._defer(self._match_agent(record), now)

    def offer_rejected(
        self, interaction_id: str, now: float, *, reason: str = "ring_no_answer"
    ) -> list[Offer]:
        """The agent did not answer (or was busy): the agent goes NOT_READY with
        ``reason`` and the interaction waits again at its original place; returns the
        next offer (to another agent) if one can be made."""
        entry = self._ringing(interaction_id)
        record = self._agents[entry.agent or ""]
        record.release(entry.interaction.media, interaction_id)
        if record.state is not AgentState.LOGGED_OUT:
            self._set_state(record, AgentState.NOT_READY, now, reason)
        else:
            self._reindex(record)
        self._retire_if_idle(record)
        self._wait(entry, now)
        return self._match_interaction(entry)

    def finish(self, interaction_id: str, now: float) -> list[Offer]:
        """A connected interaction ended: its agent starts wrap-up (or becomes READY at
        once when the queue has none, and may get the next offer)."""
        entry = self._entry(interaction_id)
        if entry.phase is not Phase.CONNECTED:
            raise ValueError(f"interaction {interaction_id!r}: not connected, nothing to finish")
        self._forget(entry)
        record = self._agents[entry.agent or ""]
        record.release(entry.interaction.media, interaction_id)
        if self._retire_if_idle(record) or record.state not in _WORKING:
            return []
        index = self._queues.get(entry.queue)
        wrap_up = index.config.wrap_up if index is not None else 0.0
        if wrap_up > 0:
            until = now + wrap_up
            if record.state is AgentState.WRAP_UP and record.wrap_up_until is not None:
                until = max(until, record.wrap_up_until)
            else:
                self._set_state(record, AgentState.WRAP_UP, now, None)
            record.wrap_up_until = until
            self._deadlines.push((until, Due.WRAP_UP_END, 0, record.config.id, 0))
            return []
        if record.state is not AgentState.READY:
            return []  # wrap-up of another interaction still running
        record.idle_since = now
        # Match before indexing the agent as free: usually a caller is waiting, and the
        # offer would take the agent straight out of the free lists again.
        offers = self._match_agent(record)
        if not offers:
            self._reindex(record)
        return offers

    def remove(self, interaction_id: str, now: float) -> WaitingView | None:
        """The interaction left while waiting or ringing (caller hung up, took a callback
        instead): returns what it was (position at that moment), None if unknown. An
        agent being rung for it becomes free again."""
        entry = self._by_id.get(interaction_id)
        if entry is None or entry.phase is Phase.CONNECTED:
            return None
        view = self._view(entry)
        self._forget(entry)
        if entry.phase is Phase.WAITING:
            self._unplace(entry)
        else:
            record = self._agents[entry.agent or ""]
            record.release(entry.interaction.media, interaction_id)
            self._reindex(record)
            if not self._retire_if_idle(record):
                self._defer(self._match_agent(record), now)
        return view

    def tick(self, now: float) -> list[Decision]:
        """Apply everything due by ``now``: wrap-ups ending, stage relaxations,
        overflows, timeouts; return the resulting decisions in time order."""
        decisions: list[Decision] = []
        while (deadline := self._deadlines.pop_due(now)) is not None:
            self._fire(deadline, decisions)
        return decisions

    def next_deadline(self) -> float | None:
        """The earliest ``now`` at which ``tick`` would do something (None: nothing)."""
        deadline = self._deadlines.peek()
        return None if deadline is None else deadline[0]

    # --- what callers and supervisors are told ----------------------------------------

    def waiting(self, interaction_id: str) -> WaitingView | None:
        """A waiting (or ringing) interaction's queue and position; None otherwise."""
        entry = self._by_id.get(interaction_id)
        if entry is None or entry.phase is Phase.CONNECTED:
            return None
        return self._view(entry)

    def queue_length(self, queue: str) -> int:
        """Interactions waiting in ``queue`` (not counting those being offered)."""
        return len(self._live_queue(queue).order)

    def staffed(self, queue: str) -> int:
        """Logged-in agents serving ``queue`` (READY, WRAP_UP or busy; not NOT_READY)."""
        members = self._live_queue(queue).members
        return sum(1 for agent_id in members if self._agents[agent_id].state in _WORKING)

    # --- lookups ----------------------------------------------------------------------

    def _live_queue(self, name: str) -> QueueIndex:
        index = self._queues.get(name)
        if index is None or not index.live:
            raise UnknownQueue(name)
        return index

    def _record(self, agent_id: str) -> AgentRecord:
        record = self._agents.get(agent_id)
        if record is None:
            raise UnknownAgent(agent_id)
        return record

    def _configured(self, agent_id: str) -> AgentRecord:
        record = self._record(agent_id)
        if record.retiring:
            raise UnknownAgent(agent_id)
        return record

    def _entry(self, interaction_id: str) -> InteractionRecord:
        entry = self._by_id.get(interaction_id)
        if entry is None:
            raise UnknownInteraction(interaction_id)
        return entry

    def _ringing(self, interaction_id: str) -> InteractionRecord:
        entry = self._entry(interaction_id)
        if entry.phase is not Phase.RINGING:
            raise ValueError(f"interaction {interaction_id!r}: not being offered")
        return entry

    def _view(self, entry: InteractionRecord) -> WaitingView:
        ringing = entry.phase is Phase.RINGING
        return WaitingView(
            interaction=entry.interaction,
            queue=entry.queue,
            position=self._queues[entry.queue].position(entry.key),
            offered_to=entry.agent if ringing else None,
        )

    # --- agents -----------------------------------------------------------------------

    def _set_state(
        self, record: AgentRecord, state: AgentState, now: float, reason: str | None
    ) -> None:
        record.state = state
        record.reason = reason
        record.since = now
        record.wrap_up_until = None
        self._reindex(record)

    def _become_ready(self, record: AgentRecord, now: float) -> None:
        record.idle_since = now
        self._set_state(record, AgentState.READY, now, None)

    def _retire_if_idle(self, record: AgentRecord) -> bool:
        """An agent no longer configured leaves once it holds nothing."""
        if not record.retiring or record.interactions:
            return False
        self._reindex(record)  # out of every list of free agents
        del self._agents[record.config.id]
        return True

    def _rebuild_agent_indexes(self) -> None:
        members: dict[str, list[tuple[str, Mapping[str, int], Mapping[str, int]]]] = {}
        for index in self._queues.values():
            index.available.clear()
        for agent_id in sorted(self._agents):
            record = self._agents[agent_id]
            record.indexed = ()
            record.indexed_key = None
            served = []
            for name in record.config.queues:
                serving = self._queues.get(name)
                if serving is not None and serving.live and name not in served:
                    served.append(name)
                    if not record.retiring:
                        config = record.config
                        members.setdefault(name, []).append(
                            (agent_id, config.skills, config.capacity)
                        )
            record.served = tuple(served)
            self._reindex(record)
        for name, index in self._queues.items():
            index.set_members(members.get(name, ()))

    def _reindex(self, record: AgentRecord) -> None:
        """Keep the agent in exactly the lists of free agents it belongs to."""
        media = record.free_media()
        if media and record.served:
            key = (_idle(record), record.config.id)
            wanted = tuple((queue, m) for queue in record.served for m in media)
        else:
            key, wanted = None, ()
        if wanted == record.indexed and key == record.indexed_key:
            return
        queues = self._queues
        if record.indexed_key is not None:
            for queue, m in record.indexed:
                queues[queue].available[m].discard(record.indexed_key)
        if key is not None:
            for queue, m in wanted:
                queues[queue].free_agents(m).add(key)
        record.indexed = wanted
        record.indexed_key = key

    # --- matching ---------------------------------------------------------------------

    def _eligible_groups(self, record: AgentRecord, queue: str) -> list[WaitingGroup]:
        """The queue's groups this agent may serve: worked out at the agent's first look
        (again after a change of configuration), then kept up by ``_group_added``."""
        index = self._queues[queue]
        cached = record.eligible.get(queue)
        if cached is not None and cached[0] == index.version:
            return cached[1]
        capacity, skills = record.config.capacity, record.skills
        groups = [
            group
            for group in index.groups.values()
            if capacity.get(group.media, 0) > 0 and meets(skills, group.requirement)
        ]
        record.eligible[queue] = (index.version, groups)
        return groups

    def _group_added(self, queue: str, index: QueueIndex, group: WaitingGroup) -> None:
        """Hand a new group to the members who may serve it (and have a list already),
        found by masks: the agents who may not serve it cost nothing."""
        mask = index.eligible_members(group.media, group.requirement)
        member_ids, agents, version = index.member_ids, self._agents, index.version
        while mask:
            lowest = mask & -mask
            mask ^= lowest
            cached = agents[member_ids[lowest.bit_length() - 1]].eligible.get(queue)
            if cached is not None and cached[0] == version:
                cached[1].append(group)

    def _match_agent(self, record: AgentRecord) -> list[Offer]:
        """Offer the agent the first eligible interaction across its queues, once per
        media type it has a free slot for: the smallest head of its eligible groups."""
        offers: list[Offer] = []
        while media := record.free_media():
            best = None
            for queue in record.served:
                groups = self._eligible_groups(record, queue)
                dead = 0
                for group in groups:
                    head = group.head
                    if head is None:
                        dead += group.dead
                    elif (best is None or head < best) and group.media in media:
                        best = head
                if dead > 8 and dead * 2 > len(groups):
                    groups[:] = [group for group in groups if not group.dead]
            if best is None:
                break
            offers.append(self._offer(self._by_seq[best[1]], record))
        return offers

    def _match_interaction(self, entry: InteractionRecord) -> list[Offer]:
        """Offer a waiting interaction to the agent its queue's selection prefers."""
        index = self._queues[entry.queue]
        if entry.phase is not Phase.WAITING or not index.live:
            return []
        free = index.available.get(entry.interaction.media)
        if not free:
            return []
        needed = entry.requirement
        agents = self._agents
        chosen: AgentRecord | None = None
        if index.config.selection == "best_skill":
            best_score = -1
            for _, agent_id in free:  # longest idle first: ties keep the longest idle
                record = agents[agent_id]
                if record.meets(needed):
                    score = skill_score(record.config.skills, needed)
                    if score > best_score:
                        chosen, best_score = record, score
        else:
            for _, agent_id in free:
                record = agents[agent_id]
                if record.meets(needed):
                    chosen = record
                    break
        return [] if chosen is None else [self._offer(entry, chosen)]

    def _offer(self, entry: InteractionRecord, record: AgentRecord) -> Offer:
        self._unplace(entry)
        entry.phase = Phase.RINGING
        entry.agent = record.config.id
        interaction = entry.interaction
        record.take(interaction.media, interaction.id)
        record.pending[interaction.media] = interaction.id
        self._reindex(record)
        return Offer(interaction.id, record.config.id, entry.queue)

    def _defer(self, offers: list[Offer], now: float) -> None:
        for offer in offers:
            token = next(self._tokens)
            self._deferred[token] = offer
            self._deadlines.push((now, Due.OFFER, 0, "", token))

    # --- waiting interactions ---------------------------------------------------------

    def _wait(self, entry: InteractionRecord, now: float, at_least: int = 0) -> None:
        """Place the interaction among the waiting (by its requirement as of ``now``)
        and schedule what can happen to it next."""
        index = self._queues[entry.queue]
        config, plan, interaction = index.config, index.plan, entry.interaction
        entry.applied = max(plan.due(now - entry.entered), at_least)
        entry.requirement = requirement(config, plan, interaction, entry.applied)
        entry.key = (interaction.arrived - config.aging * interaction.priority, entry.seq)
        entry.group, created = index.add(entry.key, interaction.media, entry.requirement)
        if created:
            self._group_added(entry.queue, index, entry.group)
        entry.phase = Phase.WAITING
        entry.agent = None
        entry.epoch += 1
        if not index.live:
            return
        push, seq, epoch = self._deadlines.push, entry.seq, entry.epoch
        after = plan.next_after(entry.applied)
        if after is not None:
            push((entry.entered + after, Due.STAGE, seq, "", epoch))
        if config.overflow_after is not None and config.overflow_to is not None:
            push((max(entry.entered + config.overflow_after, now), Due.OVERFLOW, seq, "", epoch))
        if config.max_wait is not None and not interaction.callback:
            push((max(interaction.arrived + config.max_wait, now), Due.TIMEOUT, seq, "", epoch))

    def _unplace(self, entry: InteractionRecord) -> None:
        if entry.group is not None:
            self._queues[entry.queue].discard(entry.key, entry.group)
            entry.group = None

    def _forget(self, entry: InteractionRecord) -> None:
        del self._by_id[entry.interaction.id]
        del self._by_seq[entry.seq]

    # --- deadlines --------------------------------------------------------------------

    def _valid(self, deadline: Deadline) -> bool:
        at, due, seq, agent_id, token = deadline
        if due is Due.OFFER:
            offer = self._deferred.get(token)
            if offer is None:
                return False
            entry = self._by_id.get(offer.interaction_id)
            if entry is None or entry.phase is not Phase.RINGING or entry.agent != offer.agent_id:
                del self._deferred[token]  # the caller left or the offer failed meanwhile
                return False
            return True
        if due is Due.WRAP_UP_END:
            record = self._agents.get(agent_id)
            return (
                record is not None
                and record.state is AgentState.WRAP_UP
                and record.wrap_up_until == at
            )
        entry = self._by_seq.get(seq)
        return (
            entry is not None
            and entry.epoch == token
            and entry.phase is Phase.WAITING
            and self._queues[entry.queue].live
        )

    def _fire(self, deadline: Deadline, decisions: list[Decision]) -> None:
        at, due, seq, agent_id, token = deadline
        if due is Due.OFFER:
            decisions.append(self._deferred.pop(token))
            return
        if due is Due.WRAP_UP_END:
            record = self._agents[agent_id]
            self._become_ready(record, at)
            decisions.extend(self._match_agent(record))
            return
        entry = self._by_seq[seq]
        config = self._queues[entry.queue].config
        self._unplace(entry)
        if due is Due.STAGE:
            self._wait(entry, at, at_least=entry.applied + 1)
        elif due is Due.TIMEOUT:
            self._forget(entry)
            waited = at - entry.interaction.arrived
            decisions.append(Timeout(entry.interaction.id, entry.queue, waited))
            return
        else:  # overflow (scheduled only when overflow_to is set)
            target = config.overflow_to or entry.queue
            decisions.append(Overflow(entry.interaction.id, entry.queue, target))
            entry.queue = target
            entry.entered = at
            self._wait(entry, at)
        decisions.extend(self._match_interaction(entry))


def _idle(record: AgentRecord) -> float:
    return record.since if record.idle_since is None else record.idle_since
