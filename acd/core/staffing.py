"""How many agents an interval needs: the Erlang C queueing model.

Erlang C models one queue as M/M/N: calls arrive at random (Poisson), handle times are
exponential, callers wait as long as it takes (no abandonment) and are served in order
of arrival. It is the planning model contact centers use to turn a forecast (calls per
interval and average handle time) into a head count for a service-level target such as
"80% of calls answered within 20 seconds". Since callers who would abandon are assumed
to wait, it errs on the side of a few agents too many.

Traffic is measured in Erlangs: ``A = calls * aht_s / interval_s``, the number of
agents the calls keep busy on average. Fewer than ``A`` agents can never keep up.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

#: Tolerance when turning ``agents / (1 - shrinkage)`` into whole heads, so that
#: ``14 / 0.7 == 20.000000000000004`` schedules 20 and not 21.
_HEAD_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class StaffingResult:
    """Agents needed for one interval and what they achieve."""

    #: Agents on the phones (taking calls) the interval needs.
    agents: int
    #: Agents to put on the schedule so that ``agents`` remain after shrinkage.
    scheduled: int
    #: Fraction of calls answered within the target time (0-1).
    service_level: float
    #: Probability that a call has to wait at all (Erlang C), 0-1.
    probability_waiting: float
    #: Average speed of answer over all calls, in seconds.
    asa: float
    #: Fraction of the agents' time spent handling calls, 0-1.
    occupancy: float
    #: Offered traffic in Erlangs.
    traffic: float


def offered_traffic(calls: float, interval_s: float, aht_s: float) -> float:
    """Offered traffic: the average number of calls in progress at once."""
    _check_load(calls, interval_s, aht_s)
    return calls * aht_s / interval_s


def erlang_c(agents: int, traffic_erlangs: float) -> float:
    """Probability that a call has to wait, with ``agents`` agents and ``traffic_erlangs``.

    Computed through the Erlang B recursion ``B(k) = A*B(k-1) / (k + A*B(k-1))``, which
    stays within 0-1 at every step, so hundreds of agents work where the textbook
    factorial formula overflows. With no more agents than traffic the queue grows
    without bound and every call waits (1.0); with no traffic nobody waits (0.0).
    """
    _check_agents(agents)
    _check_finite("traffic_erlangs", traffic_erlangs)
    if traffic_erlangs < 0:
        raise ValueError(f"traffic_erlangs must be >= 0, got {traffic_erlangs}")
    if traffic_erlangs == 0:
        return 0.0
    if agents <= traffic_erlangs:
        return 1.0
    blocking = 1.0
    for k in range(1, agents + 1):
        blocking = traffic_erlangs * blocking / (k + traffic_erlangs * blocking)
    return _c_from_b(agents, traffic_erlangs, blocking)


def service_level(
    agents: int, calls: float, interval_s: float, aht_s: float, target_s: float
) -> float:
    """Fraction of calls answered within ``target_s``: ``1 - Pw * exp(-(N - A) * t / AHT)``.

    0.0 when the agents cannot keep up (``N <= A``): the wait grows without bound.
    """
    _check_target(target_s)
    traffic = offered_traffic(calls, interval_s, aht_s)
    return _service_level(agents, traffic, erlang_c(agents, traffic), aht_s, target_s)


def asa(agents: int, calls: float, interval_s: float, aht_s: float) -> float:
    """Average speed of answer in seconds, over all calls: ``Pw * AHT / (N - A)``.

    Infinite when the agents cannot keep up (``N <= A`` with traffic).
    """
    traffic = offered_traffic(calls, interval_s, aht_s)
    return _asa(agents, traffic, erlang_c(agents, traffic), aht_s)


def occupancy(agents: int, calls: float, interval_s: float, aht_s: float) -> float:
    """Fraction of the agents' time spent on calls: ``A / N``.

    Capped at 1.0: with fewer agents than traffic they are busy all the time (and the
    queue grows). No agents and no calls: 0.0.
    """
    _check_agents(agents)
    return _occupancy(agents, offered_traffic(calls, interval_s, aht_s))


def agents_needed(
    calls: float,
    interval_s: float,
    aht_s: float,
    sl_target: float,
    target_s: float,
    max_occupancy: float = 1.0,
    shrinkage: float = 0.0,
) -> StaffingResult:
    """The smallest number of agents that answers ``sl_target`` of the calls within
    ``target_s`` seconds while keeping occupancy at or below ``max_occupancy``.

    ``shrinkage`` is the fraction of paid time not spent on the phones (breaks,
    training, absence); ``scheduled`` rounds ``agents / (1 - shrinkage)`` up.
    An interval without calls needs no agents (0 agents, 0 scheduled, service level
    1.0): a minimum staffing floor is a scheduling policy, not a queueing result.
    """
    _check_load(calls, interval_s, aht_s)
    _check_target(target_s)
    _check_finite("sl_target", sl_target)
    if not 0 <= sl_target < 1:
        raise ValueError(
            f"sl_target must be a fraction from 0 up to (not including) 1, got {sl_target}"
            " (no finite number of agents answers every call within the target)"
        )
    _check_finite("max_occupancy", max_occupancy)
    if not 0 < max_occupancy <= 1:
        raise ValueError(
            f"max_occupancy must be a fraction above 0 and up to 1, got {max_occupancy}"
        )
    _check_finite("shrinkage", shrinkage)
    if not 0 <= shrinkage < 1:
        raise ValueError(
            f"shrinkage must be a fraction from 0 up to (not including) 1, got {shrinkage}"
        )
    traffic = calls * aht_s / interval_s
    if traffic == 0:
        return StaffingResult(0, 0, 1.0, 0.0, 0.0, 0.0, 0.0)
    for agents, waiting in _erlang_c_from(math.floor(traffic) + 1, traffic):
        level = _service_level(agents, traffic, waiting, aht_s, target_s)
        if level >= sl_target and _occupancy(agents, traffic) <= max_occupancy:
            return StaffingResult(
                agents=agents,
                scheduled=math.ceil(agents / (1 - shrinkage) - _HEAD_EPSILON),
                service_level=level,
                probability_waiting=waiting,
                asa=_asa(agents, traffic, waiting, aht_s),
                occupancy=_occupancy(agents, traffic),
                traffic=traffic,
            )
    raise AssertionError("unreachable: service level and occupancy improve without bound")


def _erlang_c_from(first: int, traffic: float) -> Iterator[tuple[int, float]]:
    """``(N, Erlang C)`` for ``N = first, first + 1, ...``, carrying the Erlang B
    recursion along so the search costs one step per extra agent."""
    blocking = 1.0
    for k in range(1, first):
        blocking = traffic * blocking / (k + traffic * blocking)
    agents = first
    while True:
        blocking = traffic * blocking / (agents + traffic * blocking)
        yield agents, _c_from_b(agents, traffic, blocking)
        agents += 1


def _c_from_b(agents: int, traffic: float, blocking: float) -> float:
    """Erlang C from Erlang B for the same ``N`` and ``A`` (``N > A``)."""
    return agents * blocking / (agents - traffic * (1 - blocking))


def _service_level(
    agents: int, traffic: float, waiting: float, aht_s: float, target_s: float
) -> float:
    if traffic == 0:
        return 1.0
    if agents <= traffic:
        return 0.0
    return 1 - waiting * math.exp(-(agents - traffic) * target_s / aht_s)


def _asa(agents: int, traffic: float, waiting: float, aht_s: float) -> float:
    if traffic == 0:
        return 0.0
    if agents <= traffic:
        return math.inf
    return waiting * aht_s / (agents - traffic)


def _occupancy(agents: int, traffic: float) -> float:
    if traffic == 0:
        return 0.0
    if agents <= traffic:
        return 1.0
    return traffic / agents


def _check_agents(agents: int) -> None:
    if isinstance(agents, bool) or not isinstance(agents, int):
        raise TypeError(f"agents must be a whole number, got {agents!r}")
    if agents < 0:
        raise ValueError(f"agents must be >= 0, got {agents}")


def _check_load(calls: float, interval_s: float, aht_s: float) -> None:
    _check_finite("calls", calls)
    _check_finite("interval_s", interval_s)
    _check_finite("aht_s", aht_s)
    if calls < 0:
        raise ValueError(f"calls must be >= 0, got {calls}")
    if interval_s <= 0:
        raise ValueError(f"interval_s must be > 0 seconds, got {interval_s}")
    if aht_s <= 0:
        raise ValueError(f"aht_s must be > 0 seconds, got {aht_s}")


def _check_target(target_s: float) -> None:
    _check_finite("target_s", target_s)
    if target_s < 0:
        raise ValueError(f"target_s must be >= 0 seconds, got {target_s}")


def _check_finite(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
