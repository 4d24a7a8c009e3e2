"""Expected wait for a caller, from recent handle times and the agents staffing the queue.

Callers are told how long they will wait, so the figure has to follow the day: it is
``position x AHT / staffed agents``, with AHT the mean of the queue's most recent
handle times (talk plus wrap-up). Without any handle time yet there is no estimate:
announcing a made-up constant would be worse than saying nothing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable


class HandleTimes:
    """The last ``size`` handle times of one queue."""

    def __init__(self, size: int = 20, initial: Iterable[float] = ()) -> None:
        self._recent: deque[float] = deque(initial, maxlen=size)

    def add(self, seconds: float) -> None:
        if seconds >= 0:
            self._recent.append(seconds)

    @property
    def aht(self) -> float | None:
        """Average handle time in seconds, None before the first call."""
        return sum(self._recent) / len(self._recent) if self._recent else None

    def __len__(self) -> int:
        return len(self._recent)


def expected_wait(position: int, staffed: int, aht: float | None) -> float | None:
    """Seconds until the caller at ``position`` (1 = next) is likely answered; None when
    it cannot be known (no agent staffed, or no handle time yet)."""
    if aht is None or staffed <= 0 or position <= 0:
        return None
    return position * aht / staffed


def announced_minutes(seconds: float) -> int:
    """Whole minutes to announce, rounded up: "less than one minute" is 1."""
    return max(1, int(-(-seconds // 60)))
