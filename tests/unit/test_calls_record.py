"""Call record invariants and the merge rule the database upsert mirrors."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pytest

from acd.core.calls import CallRecord, Disposition, InvalidCallRecord

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def record(**changes: object) -> CallRecord:
    base = CallRecord(
        uniqueid="1740830400.17",
        linkedid="1740830400.17",
        channel="PJSIP/trunk-00000011",
        caller_number="+4930123456",
        caller_name="Alice",
        dialed_number="100",
        route="hotline",
        started_at=T0,
        answered_at=T0 + timedelta(seconds=2),
        ended_at=T0 + timedelta(seconds=40),
        disposition=Disposition.COMPLETED,
        hangup_cause=None,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_disposition_values_are_the_stored_strings() -> None:
    # The calls.disposition CHECK constraint (migration 0001) lists exactly these.
    assert [d.value for d in Disposition] == ["completed", "caller_hangup", "failed"]


def test_finished_and_in_progress_records_are_valid() -> None:
    record().validate()
    in_progress = record(ended_at=None, disposition=None)
    in_progress.validate()
    assert record().is_final and not in_progress.is_final


def test_never_answered_call_is_valid() -> None:
    record(answered_at=None, disposition=Disposition.CALLER_HANGUP).validate()


def test_times_with_any_utc_offset_are_accepted() -> None:
    plus3 = timezone(timedelta(hours=3))
    record(started_at=T0.astimezone(plus3)).validate()


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"ended_at": T0 - timedelta(seconds=1)}, "ended_at is before started_at"),
        ({"answered_at": T0 - timedelta(seconds=1)}, "answered_at is before started_at"),
        ({"answered_at": T0 + timedelta(minutes=5)}, "ended_at is before answered_at"),
        ({"ended_at": None}, "ended_at and disposition must be set together"),
        ({"disposition": None}, "ended_at and disposition must be set together"),
        ({"uniqueid": ""}, "uniqueid is empty"),
        ({"started_at": T0.replace(tzinfo=None)}, "started_at has no timezone"),
        ({"ended_at": datetime(2025, 3, 1, 12, 1)}, "ended_at has no timezone"),
        ({"caller_name": "Al\x00ice"}, "caller_name is not storable text"),
        ({"caller_number": "\udcff123"}, "caller_number is not storable text"),
        ({"disposition": "transferred"}, "unknown disposition"),
    ],
)
def test_broken_invariant_is_reported(changes: dict[str, object], problem: str) -> None:
    bad = record(**changes)
    with pytest.raises(InvalidCallRecord) as excinfo:
        bad.validate()
    assert any(p.startswith(problem) for p in excinfo.value.problems), excinfo.value.problems
    assert excinfo.value.uniqueid == bad.uniqueid


def test_every_problem_is_listed_at_once() -> None:
    bad = record(uniqueid="", ended_at=T0 - timedelta(seconds=1))
    assert bad.problems() == [
        "uniqueid is empty",
        "ended_at is before started_at",
        "ended_at is before answered_at",
    ]


def test_newer_record_values_win() -> None:
    interim = record(ended_at=None, disposition=None, caller_name="Alice")
    final = record(caller_name="Alice B.", disposition=Disposition.FAILED, hangup_cause="boom")
    merged = interim.updated_by(final)
    assert merged == final


def test_late_in_progress_record_never_reopens_an_ended_call() -> None:
    final = record(disposition=Disposition.CALLER_HANGUP, hangup_cause="hung up")
    late = record(ended_at=None, disposition=None, hangup_cause=None, route="other")
    merged = final.updated_by(late)
    assert merged.ended_at == final.ended_at
    assert merged.disposition is Disposition.CALLER_HANGUP
    assert merged.hangup_cause == "hung up"
    assert merged.route == "other"
    merged.validate()


def test_records_of_different_calls_do_not_merge() -> None:
    with pytest.raises(ValueError, match="cannot merge"):
        record().updated_by(record(uniqueid="other"))
