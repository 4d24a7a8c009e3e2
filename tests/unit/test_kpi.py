"""KPI definitions on hand-worked numbers: each figure a supervisor reads, computed once."""

from __future__ import annotations

import pytest

from acd.core import kpi


def test_service_level_counts_answered_calls_only() -> None:
    # 80 answered, 68 of them within T: 85 %; abandons do not enter this variant.
    assert kpi.service_level(68, 80) == pytest.approx(0.85)
    assert kpi.service_level(0, 0) is None  # no answered call: no figure, not 0 or 100 %


def test_service_level_with_abandons_counts_abandons_after_the_threshold() -> None:
    # 68 within T of 80 answered; 20 abandoned, 5 of them short: 68 / (80 + 15) = 71.6 %.
    assert kpi.service_level_with_abandons(68, 80, 20, 5) == pytest.approx(68 / 95)
    # Only short abandons: the same as the answered-only figure.
    assert kpi.service_level_with_abandons(68, 80, 5, 5) == kpi.service_level(68, 80)
    assert kpi.service_level_with_abandons(0, 0, 3, 3) is None


def test_asa_is_the_mean_wait_of_answered_calls() -> None:
    assert kpi.asa(10 + 30 + 20, 3) == pytest.approx(20.0)
    assert kpi.asa(0.0, 0) is None


def test_aht_adds_wrap_up_to_talk() -> None:
    # 3 calls: talk 840 s, wrap-up 90 s -> 310 s each.
    assert kpi.aht(840.0, 90.0, 3) == pytest.approx(310.0)
    assert kpi.aht(0.0, 0.0, 0) is None


def test_abandonment_rate_leaves_short_abandons_out_of_both_sides() -> None:
    # 100 offered, 12 abandoned of which 4 short: 8 / 96.
    assert kpi.abandonment_rate(12, 4, 100) == pytest.approx(8 / 96)
    assert kpi.abandonment_rate(0, 0, 10) == 0.0
    assert kpi.abandonment_rate(2, 2, 2) is None  # only short abandons: nothing offered


def test_longest_wait_ignores_missing_values() -> None:
    assert kpi.longest_wait([12.5, None, 60.0, 3.0]) == 60.0
    assert kpi.longest_wait([None]) is None
    assert kpi.longest_wait([]) is None


def test_occupancy_is_handling_time_over_available_time() -> None:
    # Logged in 1800 s, 300 s on a break: 1500 s available; 440 s talk + 70 s wrap-up.
    assert kpi.occupancy(440.0, 70.0, 1800.0, 300.0) == pytest.approx(510 / 1500)
    assert kpi.occupancy(0.0, 0.0, 1200.0, 1200.0) is None  # not ready the whole time
    assert kpi.occupancy(0.0, 0.0, 1800.0, 0.0) == 0.0  # ready and idle


def test_containment_and_drop_off() -> None:
    assert kpi.containment(1, 3) == pytest.approx(1 / 3)
    assert kpi.containment(0, 0) is None
    assert kpi.drop_off_rate(1, 2) == pytest.approx(0.5)
    assert kpi.drop_off_rate(0, 0) is None


def test_ratio_refuses_an_empty_base() -> None:
    assert kpi.ratio(3, 4) == 0.75
    assert kpi.ratio(1, 0) is None
    assert kpi.ratio(1, -1) is None
