"""Timed work of the engine (wrap-up ends, stages, overflows, timeouts) in time order.

Entries are never removed when they become moot (a call answered before its overflow):
the engine checks each one as it comes due and skips it when stale. The heap is
rebuilt from the entries still valid once stale ones outnumber them, so a long run
does not grow it without bound.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from enum import IntEnum


class Due(IntEnum):
    """What comes due; at the same instant, in this order."""

    OFFER = 0  # an offer made by a call that returns none (accept, remove), reported by tick
    WRAP_UP_END = 1
    STAGE = 2
    OVERFLOW = 3
    TIMEOUT = 4


#: ``(at, what, interaction seq, agent id, token)``; ``token`` tells a stale one apart.
Deadline = tuple[float, Due, int, str, int]
Valid = Callable[[Deadline], bool]


class Deadlines:
    """A heap of deadlines; ``valid`` tells whether one still means something."""

    def __init__(self, valid: Valid) -> None:
        self._valid = valid
        self._heap: list[Deadline] = []
        self._compact_at = 1024

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, entry: Deadline) -> None:
        heapq.heappush(self._heap, entry)
        if len(self._heap) >= self._compact_at:
            # Stale ones have at least doubled the heap since the last rebuild.
            self._heap = [entry for entry in self._heap if self._valid(entry)]
            heapq.heapify(self._heap)
            self._compact_at = max(1024, 2 * len(self._heap))

    def peek(self) -> Deadline | None:
        """The earliest valid entry (stale ones before it are dropped)."""
        heap, valid = self._heap, self._valid
        while heap and not valid(heap[0]):
            heapq.heappop(heap)
        return heap[0] if heap else None

    def pop_due(self, now: float) -> Deadline | None:
        entry = self.peek()
        if entry is None or entry[0] > now:
            return None
        return heapq.heappop(self._heap)
