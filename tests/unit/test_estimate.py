"""Expected wait announced to callers: follows handle times and staffing, never invented."""

from __future__ import annotations

import pytest

from acd.core.estimate import HandleTimes, announced_minutes, expected_wait


def test_no_estimate_before_the_first_handled_call() -> None:
    assert HandleTimes().aht is None
    assert expected_wait(3, 5, None) is None


def test_no_estimate_without_staffed_agents() -> None:
    assert expected_wait(1, 0, 120.0) is None


def test_wait_grows_with_position_and_shrinks_with_staff() -> None:
    assert expected_wait(1, 2, 120.0) == 60.0
    assert expected_wait(4, 2, 120.0) == 240.0
    assert expected_wait(4, 4, 120.0) == 120.0


def test_handle_time_is_the_mean_of_the_most_recent_calls() -> None:
    times = HandleTimes(size=3)
    for seconds in (600.0, 60.0, 120.0, 180.0):  # the 600 s call has aged out
        times.add(seconds)
    assert times.aht == pytest.approx(120.0)
    assert len(times) == 3


def test_negative_handle_time_is_ignored() -> None:
    times = HandleTimes()
    times.add(-5.0)  # a clock step backwards must not shorten the estimate
    assert times.aht is None


@pytest.mark.parametrize(
    ("seconds", "minutes"), [(1.0, 1), (59.0, 1), (60.0, 1), (61.0, 2), (299.0, 5)]
)
def test_minutes_announced_round_up(seconds: float, minutes: int) -> None:
    assert announced_minutes(seconds) == minutes
