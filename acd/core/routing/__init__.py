"""ACD routing, the pure core: queues, agents, interactions and the distribution engine.

No I/O and no clock: every call takes ``now`` (seconds on any monotonic scale), so the
same inputs always give the same decisions. The adapter (``acd/queues/``) feeds it
from AMI and FastAGI and carries its decisions out.
"""

from acd.core.routing.engine import RoutingEngine
from acd.core.routing.model import (
    AgentConfig,
    AgentState,
    AgentView,
    Decision,
    Interaction,
    Offer,
    Overflow,
    QueueConfig,
    Selection,
    Stage,
    Timeout,
    WaitingView,
    parse_skills,
)

__all__ = [
    "AgentConfig",
    "AgentState",
    "AgentView",
    "Decision",
    "Interaction",
    "Offer",
    "Overflow",
    "QueueConfig",
    "RoutingEngine",
    "Selection",
    "Stage",
    "Timeout",
    "WaitingView",
    "parse_skills",
]
