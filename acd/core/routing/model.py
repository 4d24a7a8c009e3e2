"""What the distribution engine reasons about: queues, agents, interactions, decisions.

Skills are names (``en``, ``es``, ``loans``, ``vip``, ``chat``) with a proficiency level
from 1 (can do it) to 10 (expert). A requirement ``{"es": 3}`` is met by an agent whose
``es`` level is 3 or more. Every interaction has a media type (``voice`` now; ``chat``
and ``email`` later through the API) and agents have a capacity per media type.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Literal

MIN_LEVEL = 1
MAX_LEVEL = 10
VOICE = "voice"

Selection = Literal["longest_idle", "best_skill"]


def _no_skills() -> Mapping[str, int]:
    return MappingProxyType({})


def parse_skills(items: Iterable[str]) -> dict[str, int]:
    """``["es", "loans:3"]`` -> ``{"es": 1, "loans": 3}`` (the form ``ACD_SKILLS`` uses).

    Raises ValueError naming the bad item: a level that is not 1-10, an empty name.
    """
    out: dict[str, int] = {}
    for raw in items:
        item = raw.strip()
        if not item:
            continue
        name, sep, level_text = item.partition(":")
        name = name.strip()
        if not name:
            raise ValueError(f"skill {raw!r}: empty name")
        level = MIN_LEVEL
        if sep:
            try:
                level = int(level_text)
            except ValueError:
                raise ValueError(f"skill {raw!r}: level must be a whole number") from None
        if not MIN_LEVEL <= level <= MAX_LEVEL:
            raise ValueError(f"skill {raw!r}: level must be {MIN_LEVEL}-{MAX_LEVEL}")
        out[name] = max(level, out.get(name, 0))
    return out


@dataclass(frozen=True, slots=True)
class Stage:
    """From ``after`` seconds in the queue on, the call's requirements are relaxed.

    ``drop`` names skills no longer required (``"*"``: all of them); ``min_level`` sets
    the level still required of a skill (only ever lowers it). Stages apply cumulatively,
    in the order of ``after``.
    """

    after: float
    drop: frozenset[str] = frozenset()
    min_level: Mapping[str, int] = field(default_factory=_no_skills)


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """One queue. The engine uses the routing fields; the adapter the announcement ones."""

    name: str
    #: Required of every call in this queue, on top of the call's own skills.
    skills: Mapping[str, int] = field(default_factory=_no_skills)
    stages: tuple[Stage, ...] = ()
    #: Service-level target: ``service_level`` of calls answered within ``service_time`` s.
    service_level: float = 0.8
    service_time: float = 20.0
    #: Seconds since the call arrived (first queue) after which it leaves with a Timeout.
    max_wait: float | None = None
    #: Seconds in this queue after which the call moves to ``overflow_to``.
    overflow_after: float | None = None
    overflow_to: str | None = None
    #: Seconds of wrap-up an agent gets after a call of this queue.
    wrap_up: float = 0.0
    #: Seconds an agent's phone rings before the offer counts as not answered.
    ring_timeout: float = 15.0
    selection: Selection = "longest_idle"
    #: Seconds of waiting worth one priority point: a call of priority p that arrived at
    #: t is served before every call whose ``arrived - aging * priority`` is larger.
    aging: float = 10.0
    # --- for the adapter (callers waiting in Asterisk) ---
    music_class: str = "default"
    announce_every: float = 30.0
    announce_position: bool = True
    announce_wait: bool = True
    #: Key a waiting caller presses to be called back instead (None: no callbacks).
    callback_key: str | None = None


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """One agent as configured (who they are and what they can do), not their state."""

    id: str
    name: str = ""
    skills: Mapping[str, int] = field(default_factory=_no_skills)
    #: Queues this agent serves; a multi-queue agent takes the best call across them.
    queues: tuple[str, ...] = ()
    teams: tuple[str, ...] = ()
    #: Interactions at once per media type; a media type absent here is never offered.
    capacity: Mapping[str, int] = field(default_factory=lambda: {VOICE: 1})
    #: Dial string of the agent's phone (``PJSIP/1001``); login from a phone may set it.
    device: str | None = None


class AgentState(StrEnum):
    LOGGED_OUT = "logged_out"
    NOT_READY = "not_ready"
    READY = "ready"  # may take interactions (while below capacity)
    WRAP_UP = "wrap_up"  # after an interaction; back to READY when wrap-up ends


@dataclass(frozen=True, slots=True)
class Interaction:
    """A caller (or chat, or email) to be routed. ``arrived`` is kept through overflow
    and a ring-no-answer, so the caller keeps their place."""

    id: str
    queue: str
    arrived: float
    media: str = VOICE
    skills: Mapping[str, int] = field(default_factory=_no_skills)
    #: 0-99, higher first (VIP, segment from the IVR lookup).
    priority: int = 0
    #: True for a callback request waiting in the queue in the caller's place.
    callback: bool = False


@dataclass(frozen=True, slots=True)
class Offer:
    """Ring ``agent_id`` for ``interaction_id``; the agent is reserved until the
    adapter reports accepted, rejected or removed."""

    interaction_id: str
    agent_id: str
    queue: str


@dataclass(frozen=True, slots=True)
class Overflow:
    """The interaction moved to another queue (its place by arrival is kept)."""

    interaction_id: str
    from_queue: str
    to_queue: str


@dataclass(frozen=True, slots=True)
class Timeout:
    """The interaction waited ``max_wait``: it has left the engine."""

    interaction_id: str
    queue: str
    waited: float


Decision = Offer | Overflow | Timeout


@dataclass(frozen=True, slots=True)
class AgentView:
    id: str
    state: AgentState
    reason: str | None  # not-ready reason code
    since: float  # when the state began
    idle_since: float | None  # for longest-idle: last time it became free
    active: Mapping[str, int]  # interactions held (offered or connected) per media
    wrap_up_until: float | None


@dataclass(frozen=True, slots=True)
class WaitingView:
    interaction: Interaction
    queue: str  # current queue (after overflows)
    position: int  # 1-based in its queue, in service order
    offered_to: str | None  # agent being rung, None while waiting
