"""Erlang C staffing: the head count a forecast needs and what it achieves."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from acd.core.staffing import (
    agents_needed,
    asa,
    erlang_c,
    occupancy,
    offered_traffic,
    service_level,
)


def exact_erlang_c(agents: int, traffic: Fraction) -> Fraction:
    """The textbook factorial formula in exact rational arithmetic:
    ``Pw = (A^N/N! * N/(N-A)) / (sum_{k<N} A^k/k! + A^N/N! * N/(N-A))``."""
    waiting_term = traffic**agents / math.factorial(agents) * Fraction(agents) / (agents - traffic)
    served = sum((traffic**k / math.factorial(k) for k in range(agents)), start=Fraction(0))
    return waiting_term / (served + waiting_term)


# --- the planning example ----------------------------------------------------------------


def test_half_hour_of_100_calls_needs_14_agents_and_20_on_the_schedule() -> None:
    result = agents_needed(
        calls=100,
        interval_s=1800,
        aht_s=180,
        sl_target=0.80,
        target_s=20,
        max_occupancy=0.85,
        shrinkage=0.30,
    )
    assert result.traffic == pytest.approx(10.0)
    assert result.agents == 14
    assert result.scheduled == 20  # 14 / 0.7 is 20.000000000000004 in floating point
    assert round(result.service_level * 100, 1) == 88.8
    assert round(result.probability_waiting * 100, 1) == 17.4
    assert round(result.asa, 1) == 7.8
    assert result.occupancy == pytest.approx(10 / 14)


def test_13_agents_fall_short_of_80_in_20_so_14_is_the_smallest() -> None:
    assert service_level(13, 100, 1800, 180, 20) < 0.80 <= service_level(14, 100, 1800, 180, 20)


def test_the_example_agrees_with_the_exact_factorial_formula() -> None:
    exact = exact_erlang_c(14, Fraction(10))
    assert erlang_c(14, 10.0) == pytest.approx(float(exact), rel=1e-12)
    assert asa(14, 100, 1800, 180) == pytest.approx(float(exact * 180 / 4), rel=1e-12)
    expected_sl = 1 - float(exact) * math.exp(-4 * 20 / 180)
    assert service_level(14, 100, 1800, 180, 20) == pytest.approx(expected_sl, rel=1e-12)


# --- the recursion against exact arithmetic ------------------------------------------


@pytest.mark.parametrize(
    ("agents", "traffic"),
    [
        (1, Fraction(1, 2)),
        (2, Fraction(3, 2)),
        (5, Fraction(9, 4)),
        (7, Fraction(13, 2)),
        (20, Fraction(35, 2)),
        (31, Fraction(25)),
    ],
)
def test_probability_of_waiting_matches_the_factorial_formula(
    agents: int, traffic: Fraction
) -> None:
    assert erlang_c(agents, float(traffic)) == pytest.approx(
        float(exact_erlang_c(agents, traffic)), rel=1e-11
    )


def test_single_agent_waits_with_probability_equal_to_the_load() -> None:
    # M/M/1: a caller waits exactly when the agent is busy, i.e. with probability rho.
    assert erlang_c(1, 0.3) == pytest.approx(0.3)
    assert asa(1, 0.3, 1, 1) == pytest.approx(0.3 / 0.7)


def test_hundreds_of_agents_where_the_float_factorial_formula_overflows() -> None:
    with pytest.raises(OverflowError):
        _ = 480.0**500
    exact = exact_erlang_c(500, Fraction(480))
    assert erlang_c(500, 480.0) == pytest.approx(float(exact), rel=1e-9)
    assert 0 < erlang_c(500, 480.0) < 1


# --- the search --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("calls", "aht_s", "sl_target", "target_s"),
    [(30, 240, 0.8, 20), (250, 300, 0.9, 15), (600, 420, 0.8, 30), (7, 120, 0.95, 60)],
)
def test_the_head_count_is_the_smallest_that_meets_the_target(
    calls: int, aht_s: float, sl_target: float, target_s: float
) -> None:
    result = agents_needed(calls, 1800, aht_s, sl_target, target_s)
    assert result.service_level >= sl_target
    assert service_level(result.agents - 1, calls, 1800, aht_s, target_s) < sl_target
    assert result.service_level == service_level(result.agents, calls, 1800, aht_s, target_s)
    assert result.probability_waiting == erlang_c(result.agents, result.traffic)


def test_occupancy_cap_decides_when_the_service_level_alone_would_allow_fewer() -> None:
    # 2000 calls of 3 minutes per half hour: 200 Erlangs. Large groups reach 80/20 at
    # very high occupancy, so the 85% cap (not the service level) sets the head count.
    by_service_level = agents_needed(2000, 1800, 180, 0.8, 20)
    capped = agents_needed(2000, 1800, 180, 0.8, 20, max_occupancy=0.85)
    assert by_service_level.occupancy > 0.95
    assert capped.agents == math.ceil(200 / 0.85) == 236
    assert capped.occupancy <= 0.85 < occupancy(capped.agents - 1, 2000, 1800, 180)
    assert capped.service_level > by_service_level.service_level


def test_shrinkage_rounds_the_schedule_up_to_whole_agents() -> None:
    result = agents_needed(100, 1800, 180, 0.8, 20, shrinkage=0.25)
    assert result.agents == 14
    assert result.scheduled == 19  # 14 / 0.75 = 18.67


def test_a_higher_target_or_longer_calls_need_more_agents() -> None:
    base = agents_needed(100, 1800, 180, 0.8, 20).agents
    assert agents_needed(100, 1800, 180, 0.9, 20).agents == base + 1
    assert agents_needed(100, 1800, 240, 0.8, 20).agents > base


# --- edges -------------------------------------------------------------------------------


def test_an_interval_without_calls_needs_nobody() -> None:
    result = agents_needed(0, 1800, 180, 0.8, 20, shrinkage=0.3)
    assert (result.agents, result.scheduled) == (0, 0)
    assert result.service_level == 1.0
    assert result.probability_waiting == 0.0
    assert result.asa == 0.0
    assert erlang_c(3, 0.0) == 0.0


def test_too_few_agents_never_catch_up() -> None:
    assert erlang_c(10, 10.0) == 1.0
    assert erlang_c(9, 10.0) == 1.0
    assert service_level(10, 100, 1800, 180, 20) == 0.0
    assert asa(10, 100, 1800, 180) == math.inf
    assert occupancy(8, 100, 1800, 180) == 1.0


def test_a_zero_second_target_counts_only_calls_answered_without_waiting() -> None:
    assert service_level(14, 100, 1800, 180, 0) == pytest.approx(1 - erlang_c(14, 10.0))


def test_traffic_is_calls_times_handle_time_over_the_interval() -> None:
    assert offered_traffic(120, 3600, 300) == pytest.approx(10.0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"calls": -1}, "calls"),
        ({"interval_s": 0}, "interval_s"),
        ({"aht_s": -180}, "aht_s"),
        ({"aht_s": math.nan}, "aht_s"),
        ({"sl_target": 1.0}, "sl_target"),
        ({"sl_target": 80}, "sl_target"),
        ({"target_s": -20}, "target_s"),
        ({"max_occupancy": 0}, "max_occupancy"),
        ({"max_occupancy": 1.2}, "max_occupancy"),
        ({"shrinkage": 1.0}, "shrinkage"),
        ({"shrinkage": -0.1}, "shrinkage"),
    ],
)
def test_bad_input_names_the_parameter(kwargs: dict[str, float], field: str) -> None:
    args: dict[str, float] = {
        "calls": 100,
        "interval_s": 1800,
        "aht_s": 180,
        "sl_target": 0.8,
        "target_s": 20,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=rf"^{field} must be"):
        agents_needed(**args)


def test_negative_agents_or_traffic_are_refused() -> None:
    with pytest.raises(ValueError, match=r"^agents must be"):
        erlang_c(-1, 2.0)
    with pytest.raises(ValueError, match=r"^traffic_erlangs must be"):
        erlang_c(3, -2.0)
    with pytest.raises(TypeError, match=r"^agents must be a whole number"):
        erlang_c(3.5, 2.0)  # type: ignore[arg-type]
