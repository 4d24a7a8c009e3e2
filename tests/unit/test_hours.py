"""Business hours: open or closed at an instant, the next change, and YAML-shaped input."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from acd.core.hours import (
    Holiday,
    Interval,
    Schedule,
    ScheduleError,
    Weekday,
    is_open,
    next_change,
    schedule_from_dict,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def at(zone: ZoneInfo, text: str, fold: int = 0) -> datetime:
    """``'2025-03-30 08:00'`` on the clock in ``zone``."""
    return datetime.fromisoformat(text).replace(tzinfo=zone, fold=fold)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def change_utc(hours: Schedule, moment: datetime) -> datetime | None:
    """``next_change`` in UTC, where == and - compare instants.

    (Aware datetimes sharing a tzinfo compare and subtract by wall clock, and one in a
    repeated hour is never == to one of another zone: PEP 495.)
    """
    result = next_change(hours, moment)
    if result is not None:
        assert result.tzinfo == hours.zone  # announced on the schedule's clock
        return result.astimezone(UTC)
    return None


def schedule(
    weekly: dict[str, Any], holidays: list[Any] | None = None, tz: str = "Europe/Berlin"
) -> Schedule:
    return schedule_from_dict({"timezone": tz, "weekly": weekly, "holidays": holidays or []})


OFFICE = schedule(
    {"mon-fri": ["08:00-12:00", "13:00-18:00"], "sat": ["09:00-13:00"], "sun": "closed"},
    [
        {"date": "2025-12-24", "hours": ["09:00-12:00"], "name": "Christmas Eve"},
        "--12-25",
        {"date": "2024-12-26", "recurring": True},
        date(2025, 6, 9),  # Whit Monday, as YAML gives an unquoted date
    ],
)


# --- weekly hours -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("2025-06-02 07:59", False),  # Monday, before opening
        ("2025-06-02 08:00", True),  # opening minute counts
        ("2025-06-02 11:59", True),
        ("2025-06-02 12:00", False),  # lunch break
        ("2025-06-02 12:59", False),
        ("2025-06-02 13:00", True),
        ("2025-06-02 17:59", True),
        ("2025-06-02 18:00", False),  # closing minute does not
        ("2025-06-07 10:00", True),  # Saturday morning
        ("2025-06-07 13:30", False),
        ("2025-06-08 10:00", False),  # Sunday
    ],
)
def test_weekly_hours_with_a_lunch_break(when: str, expected: bool) -> None:
    assert is_open(OFFICE, at(BERLIN, when)) is expected


def test_an_instant_from_any_zone_is_read_on_the_schedules_clock() -> None:
    # 08:30 in Berlin is 07:30 UTC in winter and 06:30 UTC in summer.
    assert is_open(OFFICE, utc("2025-01-13 07:30"))
    assert not is_open(OFFICE, utc("2025-01-13 06:30"))
    assert is_open(OFFICE, utc("2025-07-14 06:30"))
    assert is_open(OFFICE, at(NEW_YORK, "2025-07-14 03:00"))  # 09:00 in Berlin


def test_next_change_announces_the_next_opening_on_the_schedules_clock() -> None:
    saturday_evening = at(NEW_YORK, "2025-06-07 12:00")  # 18:00 in Berlin
    opening = next_change(OFFICE, saturday_evening)
    assert opening == at(BERLIN, "2025-06-10 08:00")  # Mon 9 June is Whit Monday
    assert opening is not None
    assert opening.tzinfo == BERLIN and (opening.hour, opening.minute) == (8, 0)


@pytest.mark.parametrize(
    ("when", "change"),
    [
        ("2025-06-02 06:00", "2025-06-02 08:00"),
        ("2025-06-02 08:00", "2025-06-02 12:00"),  # at the opening: when it closes
        ("2025-06-02 12:00", "2025-06-02 13:00"),
        ("2025-06-02 12:30", "2025-06-02 13:00"),
        ("2025-06-02 18:00", "2025-06-03 08:00"),
        ("2025-06-07 13:00", "2025-06-10 08:00"),  # over Sunday and Whit Monday
    ],
)
def test_next_change(when: str, change: str) -> None:
    assert change_utc(OFFICE, at(BERLIN, when)) == at(BERLIN, change)


def test_interval_past_midnight_belongs_to_the_day_it_starts() -> None:
    night = schedule({"fri": ["22:00-02:00"], "sun": ["23:00-01:00"]})
    assert not is_open(night, at(BERLIN, "2025-06-06 21:59"))
    assert is_open(night, at(BERLIN, "2025-06-06 22:00"))
    assert is_open(night, at(BERLIN, "2025-06-07 01:59"))  # Saturday, small hours
    assert not is_open(night, at(BERLIN, "2025-06-07 02:00"))
    assert not is_open(night, at(BERLIN, "2025-06-07 22:30"))  # Saturday night: closed
    assert is_open(night, at(BERLIN, "2025-06-09 00:30"))  # Sunday's shift, into Monday
    assert not is_open(night, at(BERLIN, "2025-06-06 01:00"))  # Friday 01:00: Thursday's
    assert change_utc(night, at(BERLIN, "2025-06-06 23:00")) == at(BERLIN, "2025-06-07 02:00")


def test_back_to_back_intervals_are_one_opening() -> None:
    shifts = schedule({"mon": ["18:00-24:00"], "tue": ["00:00-06:00", "06:00-09:00"]})
    assert is_open(shifts, at(BERLIN, "2025-06-03 00:00"))
    assert change_utc(shifts, at(BERLIN, "2025-06-02 20:00")) == at(BERLIN, "2025-06-03 09:00")


def test_overlapping_intervals_are_their_union() -> None:
    overlap = schedule({"mon": ["08:00-12:00", "11:00-14:00"]})
    assert change_utc(overlap, at(BERLIN, "2025-06-02 09:00")) == at(BERLIN, "2025-06-02 14:00")


def test_always_open_and_never_open_have_no_next_change() -> None:
    always = schedule({"mon-sun": ["00:00-24:00"]})
    never = schedule({})
    moment = at(BERLIN, "2025-03-30 02:30")
    assert is_open(always, moment) and change_utc(always, moment) is None
    assert not is_open(never, moment) and change_utc(never, moment) is None


def test_a_special_opening_years_ahead_is_still_found() -> None:
    event = schedule({}, [{"date": "2028-02-29", "hours": ["10:00-16:00"], "name": "Gala"}])
    assert change_utc(event, at(BERLIN, "2025-06-01 12:00")) == at(BERLIN, "2028-02-29 10:00")
    assert change_utc(event, at(BERLIN, "2028-02-29 12:00")) == at(BERLIN, "2028-02-29 16:00")
    assert change_utc(event, at(BERLIN, "2028-02-29 16:00")) is None


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="no timezone"):
        is_open(OFFICE, datetime(2025, 6, 2, 9, 0))
    with pytest.raises(ValueError, match="no timezone"):
        next_change(OFFICE, datetime(2025, 6, 2, 9, 0))


# --- holidays -----------------------------------------------------------------------


def test_a_holiday_closes_a_weekday_all_day() -> None:
    whit_monday = at(BERLIN, "2025-06-09 10:00")
    assert not is_open(OFFICE, whit_monday)
    assert change_utc(OFFICE, whit_monday) == at(BERLIN, "2025-06-10 08:00")


def test_special_hours_replace_the_weekly_hours() -> None:
    # Wednesday 24 Dec 2025: 09:00-12:00 instead of 08:00-12:00 and 13:00-18:00.
    assert not is_open(OFFICE, at(BERLIN, "2025-12-24 08:30"))
    assert is_open(OFFICE, at(BERLIN, "2025-12-24 09:00"))
    assert not is_open(OFFICE, at(BERLIN, "2025-12-24 14:00"))
    assert change_utc(OFFICE, at(BERLIN, "2025-12-24 07:00")) == at(BERLIN, "2025-12-24 09:00")
    # 25 and 26 Dec are closed every year, so the next opening is Saturday the 27th.
    assert change_utc(OFFICE, at(BERLIN, "2025-12-24 09:00")) == at(BERLIN, "2025-12-24 12:00")
    assert change_utc(OFFICE, at(BERLIN, "2025-12-24 12:00")) == at(BERLIN, "2025-12-27 09:00")


@pytest.mark.parametrize("year", [2025, 2026, 2031])
def test_yearly_holidays_recur(year: int) -> None:
    for day in (25, 26):  # Mon-Sat in these years: open at 10:00 but for the holidays
        assert not is_open(OFFICE, at(BERLIN, f"{year}-12-{day} 10:00"))


def test_a_dated_holiday_only_applies_that_year() -> None:
    # 24 Dec 2026 is a Thursday with ordinary hours; Whit Monday 2025 was 9 June only.
    assert is_open(OFFICE, at(BERLIN, "2026-12-24 15:00"))
    assert is_open(OFFICE, at(BERLIN, "2026-06-08 10:00"))


def test_a_dated_holiday_wins_over_a_yearly_one() -> None:
    hours = schedule(
        {"mon-fri": ["08:00-18:00"]},
        ["--12-24", {"date": "2025-12-24", "hours": ["09:00-12:00"]}],
    )
    assert is_open(hours, at(BERLIN, "2025-12-24 10:00"))
    assert not is_open(hours, at(BERLIN, "2026-12-24 10:00"))


def test_a_holiday_cuts_weekly_hours_running_into_it_at_midnight() -> None:
    night = schedule({"fri": ["22:00-02:00"]}, ["2025-06-07"])
    assert is_open(night, at(BERLIN, "2025-06-06 23:30"))
    assert not is_open(night, at(BERLIN, "2025-06-07 00:30"))
    assert change_utc(night, at(BERLIN, "2025-06-06 23:30")) == at(BERLIN, "2025-06-07 00:00")


def test_special_hours_on_a_holiday_may_run_past_midnight() -> None:
    new_year = schedule(
        {"mon-fri": ["08:00-18:00"]},
        [{"date": "--12-31", "hours": ["20:00-01:00"]}, "--01-01"],
    )
    assert not is_open(new_year, at(BERLIN, "2025-12-31 10:00"))
    assert is_open(new_year, at(BERLIN, "2025-12-31 23:59"))
    assert is_open(new_year, at(BERLIN, "2026-01-01 00:30"))
    assert not is_open(new_year, at(BERLIN, "2026-01-01 10:00"))
    assert change_utc(new_year, at(BERLIN, "2025-12-31 21:00")) == at(BERLIN, "2026-01-01 01:00")


def test_special_hours_open_a_day_that_is_normally_closed() -> None:
    assert not is_open(OFFICE, at(BERLIN, "2025-11-30 12:00"))
    shopping_sunday = schedule(
        {"mon-sat": ["09:00-18:00"]}, [{"date": "2025-11-30", "hours": ["13:00-18:00"]}]
    )
    assert is_open(shopping_sunday, at(BERLIN, "2025-11-30 13:00"))
    assert not is_open(shopping_sunday, at(BERLIN, "2025-12-07 13:00"))


# --- daylight saving time -------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "before", "after"),
    [
        (BERLIN, "2025-03-28", "2025-03-31"),  # spring forward Sun 30 Mar
        (BERLIN, "2025-10-24", "2025-10-27"),  # fall back Sun 26 Oct
        (NEW_YORK, "2025-03-07", "2025-03-10"),  # spring forward Sun 9 Mar
        (NEW_YORK, "2025-10-31", "2025-11-03"),  # fall back Sun 2 Nov
    ],
)
def test_opening_hours_follow_the_local_clock_across_dst(
    zone: ZoneInfo, before: str, after: str
) -> None:
    hours = schedule({"mon-fri": ["09:00-17:00"]}, tz=str(zone))
    friday_close = at(zone, f"{before} 17:00")
    monday_open = at(zone, f"{after} 09:00")
    assert change_utc(hours, friday_close) == monday_open
    assert monday_open.utcoffset() != friday_close.utcoffset()
    # Friday's and Monday's openings are an hour apart in UTC: half an hour after the
    # earlier one (in UTC time of day), one day is open and the other still closed.
    three_days = timedelta(days=3)
    friday_open = at(zone, f"{before} 09:00").astimezone(UTC)
    assert abs(monday_open.astimezone(UTC) - three_days - friday_open) == timedelta(hours=1)
    probe = min(friday_open, monday_open.astimezone(UTC) - three_days) + timedelta(minutes=30)
    assert is_open(hours, probe) != is_open(hours, probe + three_days)


@pytest.mark.parametrize(
    ("zone", "saturday", "hours"),
    [
        (BERLIN, "2025-03-29", 7),
        (BERLIN, "2025-10-25", 9),
        (NEW_YORK, "2025-03-08", 7),
        (NEW_YORK, "2025-11-01", 9),
    ],
)
def test_a_night_shift_over_a_dst_change_lasts_what_the_clock_says(
    zone: ZoneInfo, saturday: str, hours: int
) -> None:
    night = schedule({"sat": ["22:00-06:00"]}, tz=str(zone))
    opens = at(zone, f"{saturday} 22:00")
    closes = change_utc(night, opens)
    assert closes == at(zone, f"{saturday} 06:00") + timedelta(days=1)
    assert closes - opens.astimezone(UTC) == timedelta(hours=hours)


def test_an_opening_skipped_by_spring_forward_happens_when_the_clock_jumps() -> None:
    # Berlin, 30 Mar 2025: 02:00 CET is followed by 03:00 CEST; 02:30 never shows.
    hours = schedule({"sun": ["02:30-10:00"]})
    jump = utc("2025-03-30 01:00")
    assert change_utc(hours, at(BERLIN, "2025-03-29 12:00")) == jump
    assert not is_open(hours, jump - timedelta(seconds=1))
    assert is_open(hours, jump)
    assert change_utc(hours, jump) == at(BERLIN, "2025-03-30 10:00")


def test_an_interval_inside_the_skipped_hour_never_opens() -> None:
    hours = schedule({"sun": ["02:10-02:50", "12:00-13:00"]})
    assert change_utc(hours, at(BERLIN, "2025-03-30 00:00")) == at(BERLIN, "2025-03-30 12:00")
    assert is_open(hours, at(BERLIN, "2025-04-06 02:30"))  # a week later it exists


def test_a_closing_in_the_repeated_hour_happens_the_first_time() -> None:
    # Berlin, 26 Oct 2025: 02:00-03:00 is lived twice (CEST, then CET).
    hours = schedule({"sun": ["00:00-02:30"]})
    assert is_open(hours, at(BERLIN, "2025-10-26 02:15", fold=0))
    assert not is_open(hours, at(BERLIN, "2025-10-26 02:45", fold=0))
    assert not is_open(hours, at(BERLIN, "2025-10-26 02:15", fold=1))
    closes = change_utc(hours, at(BERLIN, "2025-10-26 01:00"))
    assert closes == utc("2025-10-26 00:30")


def test_an_opening_in_the_repeated_hour_new_york() -> None:
    # New York, 2 Nov 2025: 01:00-02:00 is lived twice (EDT, then EST).
    hours = schedule({"sun": ["01:00-01:30"]}, tz="America/New_York")
    assert change_utc(hours, at(NEW_YORK, "2025-11-01 12:00")) == utc("2025-11-02 05:00")
    assert is_open(hours, utc("2025-11-02 05:15"))  # 01:15 EDT
    assert not is_open(hours, utc("2025-11-02 06:15"))  # 01:15 EST, the second time


@pytest.mark.parametrize(
    ("zone", "start"),
    [(BERLIN, "2025-03-24"), (BERLIN, "2025-10-20"), (NEW_YORK, "2025-03-03")],
)
def test_next_change_and_is_open_agree_through_a_dst_week(zone: ZoneInfo, start: str) -> None:
    hours = schedule(
        {
            "mon-thu": ["07:30-12:00", "12:30-18:00"],
            "fri": ["07:30-12:00", "22:00-03:30"],
            "sat": ["01:00-04:00", "22:00-02:30"],
            "sun": ["02:15-02:45", "10:00-24:00"],
        },
        [{"date": start, "hours": ["09:00-10:00"]}],
        tz=str(zone),
    )
    moment = at(zone, f"{start} 00:00").astimezone(UTC)  # UTC: arithmetic on instants
    end = moment + timedelta(days=8)
    changes = 0
    while True:
        flip = change_utc(hours, moment)
        assert flip is not None and flip > moment
        if flip > end:
            break
        state = is_open(hours, moment)
        # Constant up to the change (probed every 5 minutes), flipped right at it.
        probe = moment
        while probe < flip:
            assert is_open(hours, probe) is state, probe
            probe += timedelta(minutes=5)
        assert is_open(hours, flip - timedelta(seconds=1)) is state
        assert is_open(hours, flip) is not state
        moment = flip
        changes += 1
    assert changes > 15


# --- direct construction --------------------------------------------------------------


def test_schedule_from_plain_tuples() -> None:
    hours = Schedule(
        "America/New_York",
        {Weekday.MON: [(time(9), time(17))]},
        [Holiday(date(2025, 7, 4), recurring=True)],
    )
    assert hours.weekly[Weekday.MON] == (Interval(time(9), time(17)),)
    assert is_open(hours, at(NEW_YORK, "2025-06-30 09:00"))
    assert not is_open(hours, at(NEW_YORK, "2030-07-04 10:00"))  # a Thursday


def test_schedule_refuses_an_unknown_zone_and_duplicate_holidays() -> None:
    with pytest.raises(KeyError):
        Schedule("Mars/Olympus", {})
    with pytest.raises(ValueError, match="listed twice"):
        Schedule("UTC", {}, [Holiday(date(2025, 1, 1)), Holiday(date(2025, 1, 1))])


# --- parsing --------------------------------------------------------------------------

GOOD: dict[str, Any] = {
    "timezone": "Europe/Berlin",
    "weekly": {
        "mon-fri": ["08:00-12:00", "13:00 \u2013 18:00"],
        "Saturday": [{"start": "22:00", "end": "02:00"}],
        "sun": [],
    },
    "holidays": [
        {"date": "2025-12-24", "hours": ["09:00-12:00"], "name": "Christmas Eve"},
        "--12-25",
        {"date": date(2024, 5, 1), "recurring": True, "name": "Labour Day"},
        date(2025, 6, 9),
        {"date": "2025-11-30", "hours": {"start": time(13), "end": "24:00"}},
    ],
}


def test_parse_every_accepted_form() -> None:
    hours = schedule_from_dict(GOOD)
    assert hours.timezone == "Europe/Berlin"
    working = (Interval(time(8), time(12)), Interval(time(13), time(18)))
    assert hours.weekly == {
        **{day: working for day in (Weekday.MON, Weekday.TUE, Weekday.WED, Weekday.THU)},
        Weekday.FRI: working,
        Weekday.SAT: (Interval(time(22), time(2)),),
        Weekday.SUN: (),
    }
    assert [(h.day.month, h.day.day, h.recurring, h.name) for h in hours.holidays] == [
        (12, 24, False, "Christmas Eve"),
        (12, 25, True, ""),
        (5, 1, True, "Labour Day"),
        (6, 9, False, ""),
        (11, 30, False, ""),
    ]
    assert hours.holidays[0].hours == (Interval(time(9), time(12)),)
    assert hours.holidays[1].hours == ()
    assert hours.holidays[4].hours == (Interval(time(13), time(0)),)  # until midnight
    assert not is_open(hours, at(BERLIN, "2027-05-01 10:00"))  # yearly, a Saturday
    assert is_open(hours, at(BERLIN, "2025-11-30 23:59"))


def test_recurring_left_empty_follows_the_date_form() -> None:
    # What a model's dump gives for an optional flag nobody set.
    hours = schedule(
        {}, [{"date": "--01-06", "recurring": None}, {"date": "2025-01-07", "recurring": None}]
    )
    assert [h.recurring for h in hours.holidays] == [True, False]


def test_day_ranges_may_wrap_around_the_week() -> None:
    hours = schedule({"fri-mon": ["10:00-11:00"]})
    assert set(hours.weekly) == {Weekday.FRI, Weekday.SAT, Weekday.SUN, Weekday.MON}


def test_whole_day() -> None:
    hours = schedule({"sun": ["00:00-24:00"]})
    assert is_open(hours, at(BERLIN, "2025-06-08 00:00"))
    assert is_open(hours, at(BERLIN, "2025-06-08 23:59"))
    assert not is_open(hours, at(BERLIN, "2025-06-09 00:00"))


def edit(path: str, value: Any) -> dict[str, Any]:
    """GOOD with the item at dotted ``path`` (``weekly.mon-fri.1``) set, or removed."""
    data = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    node: Any = data
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    index: Any = int(last) if isinstance(node, list) else last
    if value is REMOVE:
        del node[index]
    else:
        node[index] = value
    return data


REMOVE = object()


@pytest.mark.parametrize(
    ("path", "value", "field", "message"),
    [
        ("weekly.mon-fri.1", "13:00-25:00", "weekly.mon-fri[1].end", "'25:00' is not a time HH:MM"),
        ("weekly.mon-fri.0", "8:00-12:60", "weekly.mon-fri[0].end", "'12:60' is not a time"),
        ("weekly.mon-fri.0", "8am-12:00", "weekly.mon-fri[0].start", "'8am' is not a time"),
        ("weekly.mon-fri.0", "24:00-02:00", "weekly.mon-fri[0].start", "'24:00' is not a time"),
        ("weekly.mon-fri.0", "08:00", "weekly.mon-fri[0]", "not an interval 'HH:MM-HH:MM'"),
        ("weekly.mon-fri.0", "08:00-08:00", "weekly.mon-fri[0]", "write 00:00-24:00"),
        ("weekly.mon-fri.0", 8, "weekly.mon-fri[0]", "expected 'HH:MM-HH:MM'"),
        ("weekly.Saturday.0.end", 120, "weekly.Saturday[0].end", "quote it"),
        ("weekly.Saturday.0.end", REMOVE, "weekly.Saturday[0].end", "missing"),
        ("weekly.Saturday.0.until", "03:00", "weekly.Saturday[0].until", "unknown key"),
        ("weekly.sun", None, "weekly.sun", "no hours given"),
        ("weekly.sun", 5, "weekly.sun", "expected a list"),
        ("weekly.funday", [], "weekly.funday", "not a weekday"),
        ("weekly.wed", [], "weekly.wed", "already given by weekly.mon-fri"),
        ("weekly", ["mon"], "weekly", "expected a mapping"),
        ("weekly", REMOVE, "weekly", "missing"),
        ("timezone", "Europe/Berln", "timezone", "'Europe/Berln' is not a known time zone"),
        ("timezone", "../../etc/passwd", "timezone", "not a known time zone"),
        ("timezone", 1, "timezone", "expected a time zone name"),
        ("timezone", REMOVE, "timezone", "missing"),
        ("holiday", [], "holiday", "unknown key (expected one of: timezone, weekly, holidays)"),
        ("holidays", "2025-12-24", "holidays", "expected a list"),
        ("holidays.1", "2025-02-30", "holidays[1]", "'2025-02-30' is not a valid date"),
        ("holidays.1", "25.12.2025", "holidays[1]", "is not a date YYYY-MM-DD"),
        ("holidays.1", "--02-30", "holidays[1]", "is not a valid date"),
        ("holidays.1", datetime(2025, 12, 25, 8), "holidays[1]", "has a time of day"),
        ("holidays.3", "2025-12-24", "holidays[3]", "2025-12-24 is already listed at holidays[0]"),
        ("holidays.3", "--05-01", "holidays[3]", "--05-01 is already listed at holidays[2]"),
        ("holidays.0.date", REMOVE, "holidays[0].date", "missing"),
        ("holidays.0.hours.0", "09:00-12:0", "holidays[0].hours[0].end", "not a time"),
        ("holidays.0.huors", [], "holidays[0].huors", "unknown key"),
        ("holidays.0.name", 5, "holidays[0].name", "expected text"),
        ("holidays.2.recurring", "yes", "holidays[2].recurring", "expected true or false"),
        (
            "holidays.1",
            {"date": "--12-25", "recurring": False},
            "holidays[1].recurring",
            "set true",
        ),
    ],
)
def test_parse_errors_name_the_field(path: str, value: Any, field: str, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        schedule_from_dict(edit(path, value))
    assert caught.value.field == field
    assert message in caught.value.message
    assert str(caught.value) == f"{field}: {caught.value.message}"


def test_the_error_path_can_be_prefixed_by_the_flow() -> None:
    with pytest.raises(ScheduleError) as caught:
        schedule_from_dict(edit("weekly.mon-fri.1", "13:00-25:00"), path="menus.main.hours")
    assert (
        str(caught.value) == "menus.main.hours.weekly.mon-fri[1].end: '25:00' is not a time HH:MM"
    )


def test_a_schedule_must_be_a_mapping() -> None:
    with pytest.raises(ScheduleError, match="expected a mapping"):
        schedule_from_dict(["timezone"], path="hours")
