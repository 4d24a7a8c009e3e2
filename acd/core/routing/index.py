"""Per-queue indexes that keep a routing decision independent of the queue's length.

* Waiting interactions are grouped by (media, requirement); each group is ordered by
  service key, so the best call of a group is its head.
* ``order`` holds every waiting key of the queue, for a caller's position in O(log n).
* ``available`` holds, per media type, the READY agents with a free slot for it,
  ordered by (idle_since, agent id): the longest-idle agent comes first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import count

from sortedcontainers import SortedList

from acd.core.routing.model import MAX_LEVEL, QueueConfig
from acd.core.routing.requirements import Requirement, StagePlan

#: Service order: ``(arrived - aging * priority, seq)``.
Key = tuple[float, int]
#: Agent order for longest idle: ``(idle_since, agent id)``.
IdleKey = tuple[float, str]

_versions = count(1)


class WaitingGroup:
    """Interactions of one queue that need the same media and skills."""

    __slots__ = ("dead", "head", "keys", "media", "requirement")

    def __init__(self, media: str, needed: Requirement) -> None:
        self.media = media
        self.requirement = needed
        self.keys: SortedList[Key] = SortedList()
        #: The first key, kept apart: agents compare heads of many groups per decision.
        self.head: Key | None = None
        #: Emptied and dropped from its queue; agents drop it from their lists in time.
        self.dead = False

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
        #: The members again, in bit order for the masks below.
        self.member_ids: list[str] = []
        #: skill -> [mask of members with that skill at level >= n, for n in 0..10].
        self.skill_masks: dict[str, list[int]] = {}
        #: media -> mask of members who take that media type at all.
        self.media_masks: dict[str, int] = {}
        self.available: dict[str, SortedList[IdleKey]] = {}
        self.order: SortedList[Key] = SortedList()
        self.groups: dict[tuple[str, Requirement], WaitingGroup] = {}
        self.version = next(_versions)
        self.config = config
        self.plan = StagePlan(config.stages)

    def reconfigure(self, config: QueueConfig) -> None:
        """New routing rules: every waiting interaction has to be placed again."""
        self.config = config
        self.plan = StagePlan(config.stages)
        self.order.clear()
        self.groups.clear()
        self.version = next(_versions)

    def set_members(
        self, members: Iterable[tuple[str, Mapping[str, int], Mapping[str, int]]]
    ) -> None:
        """(agent id, skills, capacity) of every agent serving the queue."""
        self.members.clear()
        self.member_ids = []
        self.skill_masks = {}
        self.media_masks = {}
        for bit, (agent_id, skills, capacity) in enumerate(members):
            self.members.add(agent_id)
            self.member_ids.append(agent_id)
            flag = 1 << bit
            for name, level in skills.items():
                masks = self.skill_masks.setdefault(name, [0] * (MAX_LEVEL + 1))
                for at_least in range(level + 1):
                    masks[at_least] |= flag
            for media, slots in capacity.items():
                if slots > 0:
                    self.media_masks[media] = self.media_masks.get(media, 0) | flag

    def eligible_members(self, media: str, needed: Requirement) -> int:
        """Mask of the members who may serve a group: a few integer ANDs, not a scan."""
        mask = self.media_masks.get(media, 0)
        masks = self.skill_masks
        for name, level in needed:
            found = masks.get(name)
            mask &= found[level] if found is not None else 0
        return mask

    def add(self, key: Key, media: str, needed: Requirement) -> tuple[WaitingGroup, bool]:
        """Place a key in its group; True when the group had to be created."""
        placed = self.groups.get((media, needed))
        created = placed is None
        if placed is None:
            placed = self.groups[media, needed] = WaitingGroup(media, needed)
        placed.add(key)
        self.order.add(key)
        return placed, created

    def discard(self, key: Key, placed: WaitingGroup) -> None:
        placed.discard(key)
        self.order.discard(key)
        if placed.head is None:
            # Requirements seen once (a rare language and product) would otherwise pile
            # up as empty groups that every eligible agent keeps looking at.
            placed.dead = True
            del self.groups[placed.media, placed.requirement]

    def position(self, key: Key) -> int:
        """1-based place of ``key`` among the waiting (where it would be, if absent)."""
        return int(self.order.bisect_left(key)) + 1

    def free_agents(self, media: str) -> SortedList[IdleKey]:
        found = self.available.get(media)
        if found is None:
            found = self.available[media] = SortedList()
        return found
