"""What an interaction requires of an agent at a given moment, as a hashable value.

Waiting interactions are grouped by their requirement so that an agent who frees up
compares a handful of group heads instead of every caller; that needs a requirement
to be a small immutable value: skill names sorted, each with its minimum level.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping

from acd.core.routing.model import Interaction, QueueConfig, Stage

#: ``(("es", 3), ("loans", 1))``: sorted by skill name.
Requirement = tuple[tuple[str, int], ...]

DROP_ALL = "*"


class StagePlan:
    """A queue's stages in the order of ``after``, with the times ready for bisecting."""

    __slots__ = ("afters", "stages")

    def __init__(self, stages: tuple[Stage, ...]) -> None:
        self.stages = tuple(sorted(stages, key=lambda stage: stage.after))
        self.afters = [stage.after for stage in self.stages]

    def due(self, in_queue: float) -> int:
        """How many stages apply after ``in_queue`` seconds in the queue."""
        return bisect_right(self.afters, in_queue)

    def next_after(self, applied: int) -> float | None:
        """Seconds in the queue at which the next stage applies (None: no more)."""
        return self.afters[applied] if applied < len(self.afters) else None


def requirement(
    queue: QueueConfig, plan: StagePlan, interaction: Interaction, applied: int
) -> Requirement:
    """Queue and interaction skills (max level), relaxed by the first ``applied`` stages."""
    levels = dict(queue.skills)
    for name, level in interaction.skills.items():
        if level > levels.get(name, 0):
            levels[name] = level
    for stage in plan.stages[:applied]:
        if DROP_ALL in stage.drop:
            levels.clear()
        for name in stage.drop:
            levels.pop(name, None)
        for name, level in stage.min_level.items():
            if name in levels and level < levels[name]:
                levels[name] = level
    return tuple(sorted(levels.items()))


def meets(skills: Mapping[str, int], needed: Requirement) -> bool:
    # A plain loop: this runs for every (agent, requirement group) pair once.
    get = skills.get
    for name, level in needed:  # noqa: SIM110 (all() with a generator is 2x slower here)
        if get(name, 0) < level:
            return False
    return True


def skill_score(skills: Mapping[str, int], needed: Requirement) -> int:
    """For ``best_skill``: the agent's levels summed over the required skills."""
    return sum(skills.get(name, 0) for name, _ in needed)
