"""The engine's mutable state of one agent and one interaction.

Kept apart from the frozen views in ``model`` so the hot path mutates plain slots and
the outside world only ever sees snapshots.
"""

from __future__ import annotations

from enum import Enum
from types import MappingProxyType

from acd.core.routing.index import IdleKey, Key, WaitingGroup
from acd.core.routing.model import AgentConfig, AgentState, AgentView, Interaction
from acd.core.routing.requirements import Requirement, meets


class AgentRecord:
    __slots__ = (
        "config",
        "eligible",
        "held",
        "idle_since",
        "indexed",
        "indexed_key",
        "interactions",
        "pending",
        "reason",
        "retiring",
        "served",
        "since",
        "skills",
        "state",
        "wrap_up_until",
    )

    def __init__(self, config: AgentConfig, now: float) -> None:
        self.config = config
        self.skills = dict(config.skills)  # a plain dict: the hot path looks up levels
        self.state = AgentState.LOGGED_OUT
        self.reason: str | None = None
        self.since = now
        self.idle_since: float | None = None
        self.wrap_up_until: float | None = None
        self.held: dict[str, int] = {}  # offered or connected, per media
        self.pending: dict[str, str] = {}  # media -> interaction being offered
        self.interactions: set[str] = set()
        #: No longer configured: takes nothing new, leaves once it holds nothing.
        self.retiring = False
        #: Configured queues this agent serves, in its order, without repeats.
        self.served: tuple[str, ...] = ()
        #: (queue, media) lists of free agents this agent is in, under ``indexed_key``.
        self.indexed: tuple[tuple[str, str], ...] = ()
        self.indexed_key: IdleKey | None = None
        #: queue -> (queue index version, the queue's groups this agent may serve). Built
        #: at the first look; groups created later are added as they are created.
        self.eligible: dict[str, tuple[int, list[WaitingGroup]]] = {}

    def reconfigure(self, config: AgentConfig) -> None:
        self.config = config
        self.skills = dict(config.skills)
        self.eligible.clear()

    def meets(self, needed: Requirement) -> bool:
        return meets(self.skills, needed)

    def free_media(self) -> list[str]:
        """Media types this agent may be offered now (READY, a slot free, none ringing)."""
        if self.state is not AgentState.READY or self.retiring:
            return []
        held, pending = self.held, self.pending
        return [
            media
            for media, slots in self.config.capacity.items()
            if slots > held.get(media, 0) and media not in pending
        ]

    def take(self, media: str, interaction_id: str) -> None:
        self.held[media] = self.held.get(media, 0) + 1
        self.interactions.add(interaction_id)

    def release(self, media: str, interaction_id: str) -> None:
        self.held[media] -= 1
        self.interactions.discard(interaction_id)
        if self.pending.get(media) == interaction_id:
            del self.pending[media]

    def view(self) -> AgentView:
        return AgentView(
            id=self.config.id,
            state=self.state,
            reason=self.reason,
            since=self.since,
            idle_since=self.idle_since,
            active=MappingProxyType({m: n for m, n in sorted(self.held.items()) if n}),
            wrap_up_until=self.wrap_up_until,
        )


class Phase(Enum):
    WAITING = "waiting"
    RINGING = "ringing"
    CONNECTED = "connected"


class InteractionRecord:
    __slots__ = (
        "agent",
        "applied",
        "entered",
        "epoch",
        "group",
        "interaction",
        "key",
        "phase",
        "queue",
        "requirement",
        "seq",
    )

    def __init__(self, interaction: Interaction, seq: int, now: float) -> None:
        self.interaction = interaction
        self.seq = seq
        self.queue = interaction.queue  # current queue, after overflows
        self.entered = now  # when it entered the current queue: the stage clock
        self.key: Key = (interaction.arrived, seq)
        self.requirement: Requirement = ()
        self.applied = 0  # stages applied
        self.group: WaitingGroup | None = None
        self.phase = Phase.WAITING
        self.agent: str | None = None
        #: Bumped whenever its deadlines are recomputed; older ones are stale.
        self.epoch = 0
