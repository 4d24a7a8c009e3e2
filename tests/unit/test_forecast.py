"""The day-ahead forecast: same weekday of recent weeks, fallback, trend, DST days."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from acd.core.forecast import (
    History,
    IntervalHistory,
    Slot,
    day_intervals,
    forecast_day,
    plan_day,
    slot_of,
    trend_factor,
)

BERLIN = ZoneInfo("Europe/Berlin")
FRIDAY = date(2026, 12, 4)
NINE: Slot = (time(9, 0), 0)
HALF_NINE: Slot = (time(9, 30), 0)


def calls(n: int, handled: int = 0, handle_s: float = 0.0) -> IntervalHistory:
    return IntervalHistory(offered=n, handled=handled, handle_s=handle_s)


def weeks_before(day: date, k: int) -> date:
    return day - timedelta(weeks=k)


def by_slot(history: History, day: date, **kw: object) -> dict[Slot, float]:
    result = forecast_day(history, day, UTC, 1800, **kw)  # type: ignore[arg-type]
    return {i.slot: i.calls for i in result.intervals}


# --- the weighted average of the same weekday ------------------------------------------


def test_the_last_four_fridays_weigh_4_3_2_1_most_recent_first() -> None:
    history: History = {
        weeks_before(FRIDAY, 1): {NINE: calls(40)},
        weeks_before(FRIDAY, 2): {NINE: calls(30)},
        weeks_before(FRIDAY, 3): {NINE: calls(20)},
        weeks_before(FRIDAY, 4): {NINE: calls(10)},
        FRIDAY - timedelta(days=1): {NINE: calls(500)},  # a Thursday: not used
    }
    result = forecast_day(history, FRIDAY, UTC, 1800)
    assert result.method == "same_weekday"
    assert [w for _, w in result.days] == [4.0, 3.0, 2.0, 1.0]
    slots = {i.slot: i.calls for i in result.intervals}
    # (4*40 + 3*30 + 2*20 + 1*10) / (4+3+2+1) = 300 / 10
    assert slots[NINE] == pytest.approx(30.0)
    assert slots[HALF_NINE] == 0.0  # recorded days without calls then: zero, not a gap
    assert len(result.intervals) == 48
    assert result.calls == pytest.approx(30.0)


def test_a_missing_week_drops_out_and_the_weights_renormalise() -> None:
    history: History = {
        weeks_before(FRIDAY, 1): {NINE: calls(40)},
        weeks_before(FRIDAY, 3): {NINE: calls(20)},
    }
    # weights 4 (one week back) and 2 (three weeks back): (160 + 40) / 6
    assert by_slot(history, FRIDAY)[NINE] == pytest.approx(200 / 6)


def test_older_weeks_than_asked_for_are_ignored() -> None:
    history: History = {
        weeks_before(FRIDAY, 1): {NINE: calls(10)},
        weeks_before(FRIDAY, 2): {NINE: calls(20)},
        weeks_before(FRIDAY, 3): {NINE: calls(1000)},
    }
    # weeks=2: weights 2, 1 -> (20 + 20) / 3
    assert by_slot(history, FRIDAY, weeks=2)[NINE] == pytest.approx(40 / 3)


def test_too_few_same_weekdays_fall_back_to_every_recorded_day() -> None:
    history: History = {
        FRIDAY - timedelta(days=1): {NINE: calls(12)},
        FRIDAY - timedelta(days=2): {NINE: calls(6)},
        FRIDAY - timedelta(days=7): {NINE: calls(30)},
        FRIDAY - timedelta(days=29): {NINE: calls(999)},  # outside 4 weeks
        FRIDAY: {NINE: calls(999)},  # the day itself is not history
    }
    result = forecast_day(history, FRIDAY, UTC, 1800, min_weeks=2)
    assert result.method == "all_days"
    assert {i.slot: i.calls for i in result.intervals}[NINE] == pytest.approx((12 + 6 + 30) / 3)


def test_no_history_at_all_is_an_error_not_a_zero_forecast() -> None:
    with pytest.raises(ValueError, match=r"no history in the 4 week\(s\) before 2026-12-04"):
        forecast_day({FRIDAY - timedelta(days=40): {}}, FRIDAY, UTC, 1800)


# --- trend -------------------------------------------------------------------------------


def full_fortnight(recent: int, earlier: int) -> dict[date, dict[Slot, IntervalHistory]]:
    history: dict[date, dict[Slot, IntervalHistory]] = {}
    for n in range(1, 15):
        history[FRIDAY - timedelta(days=n)] = {NINE: calls(recent if n <= 7 else earlier)}
    return history


def test_the_trend_is_the_last_week_over_the_week_before() -> None:
    history = full_fortnight(recent=22, earlier=20)  # 154 against 140
    assert trend_factor(history, FRIDAY) == pytest.approx(1.1)
    plain = by_slot(history, FRIDAY)[NINE]  # weights 4, 3 over 22 and 20 -> 148/7
    assert plain == pytest.approx(148 / 7)
    assert by_slot(history, FRIDAY, trend=True)[NINE] == pytest.approx(148 / 7 * 1.1)


def test_no_trend_without_two_full_weeks() -> None:
    history = full_fortnight(recent=22, earlier=20)
    del history[FRIDAY - timedelta(days=10)]
    assert trend_factor(history, FRIDAY) == 1.0
    assert trend_factor(full_fortnight(recent=5, earlier=0), FRIDAY) == 1.0


# --- handle time ---------------------------------------------------------------------------


def test_handle_time_per_interval_or_pooled_when_an_interval_handled_too_few() -> None:
    history: History = {
        weeks_before(FRIDAY, 1): {NINE: calls(12, 12, 12 * 200.0), HALF_NINE: calls(2, 2, 600.0)},
        weeks_before(FRIDAY, 2): {NINE: calls(8, 8, 8 * 150.0)},
    }
    result = forecast_day(history, FRIDAY, UTC, 1800, min_handled=10)
    aht = {i.slot: i.aht_s for i in result.intervals}
    assert aht[NINE] == pytest.approx((2400 + 1200) / 20)  # 180 s over 20 handled calls
    # 09:30 handled 2 (< 10): all intervals of those days, (2400 + 600 + 1200) / 22
    assert aht[HALF_NINE] == pytest.approx(4200 / 22)


def test_staffing_per_interval_uses_erlang_c_on_the_forecast() -> None:
    history: History = {
        weeks_before(FRIDAY, 1): {NINE: calls(100, 100, 100 * 180.0)},
        weeks_before(FRIDAY, 2): {NINE: calls(100, 100, 100 * 180.0)},
    }
    forecast = forecast_day(history, FRIDAY, UTC, 1800)
    plan = {
        p.interval.slot: p
        for p in plan_day(
            forecast, 1800, sl_target=0.8, target_s=20, max_occupancy=0.85, shrinkage=0.3
        )
    }
    assert (plan[NINE].staffing.agents, plan[NINE].staffing.scheduled) == (14, 20)
    assert plan[NINE].aht_s == pytest.approx(180.0)
    assert (plan[HALF_NINE].staffing.agents, plan[HALF_NINE].staffing.scheduled) == (0, 0)


def test_without_any_handled_call_the_handle_time_must_be_given() -> None:
    history: History = {weeks_before(FRIDAY, 1): {NINE: calls(5)}}
    forecast = forecast_day(history, FRIDAY, UTC, 1800, min_weeks=1)
    with pytest.raises(ValueError, match=r"^aht_s: "):
        plan_day(forecast, 1800, sl_target=0.8, target_s=20)
    plan = plan_day(forecast, 1800, sl_target=0.8, target_s=20, aht_s=180)
    assert sum(p.staffing.agents for p in plan) > 0


# --- the center's clock: time zones and DST -----------------------------------------------


def test_a_day_has_48_half_hours_a_spring_day_46_an_autumn_day_50() -> None:
    assert len(day_intervals(date(2026, 12, 4), BERLIN, 1800)) == 48
    spring = day_intervals(date(2026, 3, 29), BERLIN, 1800)
    autumn = day_intervals(date(2026, 10, 25), BERLIN, 1800)
    assert len(spring) == 46
    assert len(autumn) == 50
    assert (time(2, 0), 0) not in {s for s, _ in spring}
    assert [s for s, _ in autumn].count((time(2, 0), 0)) == 1
    assert (time(2, 0), 1) in {s for s, _ in autumn}
    # local midnight in Berlin is 23:00 UTC the day before in winter
    assert day_intervals(date(2026, 12, 4), BERLIN, 1800)[0][1].astimezone(UTC) == datetime(
        2026, 12, 3, 23, 0, tzinfo=UTC
    )


def test_a_moment_falls_in_its_local_interval_with_the_fold_of_the_repeated_hour() -> None:
    first = datetime(2026, 10, 25, 0, 10, tzinfo=UTC)  # 02:10 CEST
    second = datetime(2026, 10, 25, 1, 10, tzinfo=UTC)  # 02:10 CET, the hour again
    assert slot_of(first, BERLIN, 1800) == (date(2026, 10, 25), (time(2, 0), 0))
    assert slot_of(second, BERLIN, 1800) == (date(2026, 10, 25), (time(2, 0), 1))
    assert slot_of(datetime(2026, 12, 3, 23, 59, tzinfo=UTC), BERLIN, 1800) == (
        date(2026, 12, 4),
        (time(0, 30), 0),
    )


def test_the_repeated_hour_takes_the_history_of_the_same_wall_clock_hour() -> None:
    sunday = date(2026, 10, 25)
    two: Slot = (time(2, 0), 0)
    history: History = {
        weeks_before(sunday, 1): {two: calls(6)},
        weeks_before(sunday, 2): {two: calls(3)},
    }
    result = forecast_day(history, sunday, BERLIN, 1800, weeks=2)
    slots = {i.slot: i.calls for i in result.intervals}
    assert slots[two] == pytest.approx((2 * 6 + 3) / 3)
    assert slots[(time(2, 0), 1)] == pytest.approx((2 * 6 + 3) / 3)


def test_a_history_day_that_skipped_an_hour_is_left_out_of_that_interval() -> None:
    after = date(2026, 4, 5)  # the Sunday after the clocks went forward on 29 March
    two: Slot = (time(2, 0), 0)
    three: Slot = (time(3, 0), 0)
    history: History = {
        date(2026, 3, 29): {three: calls(9)},  # no 02:00 that night
        date(2026, 3, 22): {two: calls(8), three: calls(3)},
    }
    slots = by_slot_in(history, after, weeks=2)
    assert slots[two] == pytest.approx(8.0)  # only 22 March had a 02:00
    assert slots[three] == pytest.approx((2 * 9 + 3) / 3)


def by_slot_in(history: History, day: date, **kw: object) -> dict[Slot, float]:
    result = forecast_day(history, day, BERLIN, 1800, **kw)  # type: ignore[arg-type]
    return {i.slot: i.calls for i in result.intervals}


@pytest.mark.parametrize("seconds", [0, 45, 90, 7 * 60, 7200])
def test_intervals_must_be_whole_minutes_dividing_an_hour(seconds: int) -> None:
    with pytest.raises(ValueError, match=r"^interval_s must be whole minutes"):
        day_intervals(FRIDAY, UTC, seconds)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"weeks": 0}, "weeks"), ({"min_weeks": 5}, "min_weeks"), ({"min_handled": 0}, "min_handled")],
)
def test_bad_settings_name_the_field(kwargs: dict[str, int], field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field} must be"):
        forecast_day({FRIDAY - timedelta(days=7): {}}, FRIDAY, UTC, 1800, **kwargs)  # type: ignore[arg-type]
