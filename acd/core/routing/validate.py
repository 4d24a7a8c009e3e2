"""Reject configuration and interactions the engine could only route wrongly.

Each error names the queue, agent or interaction and the field, so whoever wrote the
configuration (or the adapter that built it) can find the mistake.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import get_args

from acd.core.routing.model import (
    MAX_LEVEL,
    MIN_LEVEL,
    AgentConfig,
    Interaction,
    QueueConfig,
    Selection,
)

MAX_PRIORITY = 99


def _levels(where: str, field: str, skills: Mapping[str, int]) -> None:
    for name, level in skills.items():
        if not name:
            raise ValueError(f"{where}: {field}: empty skill name")
        if not MIN_LEVEL <= level <= MAX_LEVEL:
            raise ValueError(
                f"{where}: {field}: {name!r} level {level} is not {MIN_LEVEL}-{MAX_LEVEL}"
            )


def _not_negative(where: str, field: str, value: float | None) -> None:
    if value is not None and value < 0:
        raise ValueError(f"{where}: {field} must not be negative (got {value})")


def check_queues(queues: Iterable[QueueConfig]) -> dict[str, QueueConfig]:
    by_name: dict[str, QueueConfig] = {}
    for queue in queues:
        where = f"queue {queue.name!r}"
        if not queue.name:
            raise ValueError("queue with an empty name")
        if queue.name in by_name:
            raise ValueError(f"{where}: configured twice")
        by_name[queue.name] = queue
        _levels(where, "skills", queue.skills)
        for number, stage in enumerate(queue.stages, 1):
            _not_negative(where, f"stages[{number}].after", stage.after)
            _levels(where, f"stages[{number}].min_level", stage.min_level)
        for field in ("max_wait", "overflow_after", "wrap_up", "aging"):
            _not_negative(where, field, getattr(queue, field))
        if queue.selection not in get_args(Selection):
            raise ValueError(
                f"{where}: selection {queue.selection!r} is not one of "
                f"{', '.join(get_args(Selection))}"
            )
        if (queue.overflow_after is None) != (queue.overflow_to is None):
            raise ValueError(f"{where}: overflow_after and overflow_to go together")
    for queue in by_name.values():
        target = queue.overflow_to
        if target is not None and (target not in by_name or target == queue.name):
            raise ValueError(
                f"queue {queue.name!r}: overflow_to {target!r} is not another configured queue"
            )
    return by_name


def check_agents(agents: Iterable[AgentConfig]) -> dict[str, AgentConfig]:
    by_id: dict[str, AgentConfig] = {}
    for agent in agents:
        where = f"agent {agent.id!r}"
        if not agent.id:
            raise ValueError("agent with an empty id")
        if agent.id in by_id:
            raise ValueError(f"{where}: configured twice")
        by_id[agent.id] = agent
        _levels(where, "skills", agent.skills)
        for media, slots in agent.capacity.items():
            if slots < 0:
                raise ValueError(f"{where}: capacity {media!r} must not be negative")
    return by_id


def check_interaction(interaction: Interaction) -> None:
    where = f"interaction {interaction.id!r}"
    if not interaction.id:
        raise ValueError("interaction with an empty id")
    if not interaction.media:
        raise ValueError(f"{where}: empty media")
    if not 0 <= interaction.priority <= MAX_PRIORITY:
        raise ValueError(f"{where}: priority {interaction.priority} is not 0-{MAX_PRIORITY}")
    _levels(where, "skills", interaction.skills)
