"""Per-queue indexes that keep a routing decision independent of the queue's length.

* Waiting interactions are grouped by (media, requirement); each group is ordered by
  service key, so the best call of a group is its head.
* ``order`` holds every waiting key of the queue, for a caller's position in O(log n).
* ``available`` holds, per media type, the READY agents with a free slot for it,
  ordered by (idle_since, agent id): the longest-idle agent comes first.
"""

from __future__ import annotations

from itertools import count

from sortedcontainers import SortedList

from acd.core.routing.model import QueueConfig
from acd.core.routing.requirements import Requirement, StagePlan

#: Service order: ``(arrived - aging * priority, seq)``.
Key = tuple[float, int]
#: Agent order for longest idle: ``(idle_since, agent id)``.
IdleKey = tuple[float, str]

_versions = count(1)


class WaitingGroup:
    """Interactions of one queue that need the same media and skills."""

    __slots__ = ("head", "keys", "media", "requirement")

    def __init__(self, media: str, needed: Requirement) -> None:
        self.media = media
        self.requirement = needed
        self.keys: SortedList[Key] = SortedList()
        #: The first key, kept apart: agents compare heads of many groups per decision.
        self.head: Key | None = None

    def add(self, key: Key) -> None:
        self.keys.add(key)
        if self.head is None or key < self.head:
            self.head = key

    def discard(self, key: Key) -> None:
        keys = self.keys
        if key == self.head:  # the usual case: the head was just offered
            keys.pop(0)
            self.head = keys[0] if keys else None
        else:
            keys.discard(key)


class QueueIndex:
    """One queue's configuration, waiting interactions and free agents."""

    def __init__(self, config: QueueConfig) -> None:
        self.live = True
        self.members: set[str] = set()  # configured agents serving this queue
        self.available: dict[str, SortedList[IdleKey]] = {}
        self.order: SortedList[Key] = SortedList()
        self.groups: dict[tuple[str, Requirement], WaitingGroup] = {}
        #: The groups in order of creation; only ever appended to, until reconfigured,
        #: so an agent's list of eligible groups is brought up to date by its tail.
        self.group_list: list[WaitingGroup] = []
        self.version = next(_versions)
        self.config = config
        self.plan = StagePlan(config.stages)

    def reconfigure(self, config: QueueConfig) -> None:
        """New routing rules: every waiting interaction has to be placed again."""
        self.config = config
        self.plan = StagePlan(config.stages)
        self.order.clear()
        self.groups.clear()
        self.group_list = []
        self.version = next(_versions)

    def group(self, media: str, needed: Requirement) -> WaitingGroup:
        found = self.groups.get((media, needed))
        if found is None:
            found = self.groups[media, needed] = WaitingGroup(media, needed)
            self.group_list.append(found)
        return found

    def add(self, key: Key, media: str, needed: Requirement) -> WaitingGroup:
        placed = self.group(media, needed)
        placed.add(key)
        self.order.add(key)
        return placed

    def discard(self, key: Key, placed: WaitingGroup) -> None:
        placed.discard(key)
        self.order.discard(key)

    def position(self, key: Key) -> int:
        """1-based place of ``key`` among the waiting (where it would be, if absent)."""
        return int(self.order.bisect_left(key)) + 1

    def free_agents(self, media: str) -> SortedList[IdleKey]:
        found = self.available.get(media)
        if found is None:
            found = self.available[media] = SortedList()
        return found
