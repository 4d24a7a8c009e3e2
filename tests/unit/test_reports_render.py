"""Report requests refuse what cannot be answered; rows print as table, CSV and JSON."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from acd.reports.queries import AgentRow, QueueRow, ReportRequest
from acd.reports.render import render

BERLIN = ZoneInfo("Europe/Berlin")
T0 = datetime(2026, 10, 25, 2, 0, tzinfo=BERLIN)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"start": datetime(2026, 1, 1)}, "must carry a time zone"),
        ({"end": datetime(2025, 12, 31, tzinfo=UTC)}, "is not after start"),
        ({"interval": "7m"}, "interval '7m': use one of 15m, 30m, 60m, day, total"),
        ({"tz": "Europe/Berlim"}, "unknown time zone 'Europe/Berlim'"),
        ({"sl_threshold_s": -1.0}, "thresholds must be >= 0"),
    ],
)
def test_request_refuses_bad_input(changes: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {
        "start": datetime(2026, 1, 1, tzinfo=UTC),
        "end": datetime(2026, 1, 2, tzinfo=UTC),
    }
    with pytest.raises(ValueError, match=message):
        ReportRequest(**{**fields, **changes})  # type: ignore[arg-type]


def queue_row(offered: int, start: datetime, sl: float | None) -> QueueRow:
    return QueueRow(
        "sales", start, start, offered, offered, offered, 0, 0, 0, 0, offered,
        sl, sl, None if not offered else 0.0, 12.25 if offered else None, None, 0.0, 0.0, None,
    )  # fmt: skip


def test_table_marks_missing_ratios_and_keeps_the_offset() -> None:
    # The night the clocks go back: two intervals at 02:00, told apart by their offset.
    summer = T0.replace(fold=0)
    winter = T0.replace(fold=1)
    text = render([queue_row(4, summer, 0.875), queue_row(0, winter, None)], "table", "60m")
    lines = text.splitlines()
    assert lines[2].split()[1:5] == ["2026-10-25", "02:00+0200", "4", "4"]
    assert "87.5%" in lines[2] and "12.2" in lines[2]
    assert lines[3].split()[2] == "02:00+0100"
    assert lines[3].split()[-6:] == ["-"] * 6
    assert render([], "table") == "(no data in this period)\n"


def test_csv_and_json_carry_iso_times_and_plain_numbers() -> None:
    rows = [queue_row(4, T0, 0.875)]
    (record,) = csv.DictReader(io.StringIO(render(rows, "csv")))
    assert record["interval_start"] == "2026-10-25T02:00:00+02:00"
    assert (record["service_level"], record["aht_s"]) == ("0.875", "")
    (data,) = json.loads(render(rows, "json"))
    assert data["service_level"] == 0.875 and data["aht_s"] is None
    agent = AgentRow(
        "1001", T0, T0, 2, 300.0, 60.0, 1800.0, 600.0, {"break": 300.0, "lunch": 300.0}
    )
    (record,) = csv.DictReader(io.StringIO(render([agent], "csv")))
    assert record["not_ready_by_reason"] == "break=300;lunch=300"
    with pytest.raises(ValueError, match="format 'xml'"):
        render(rows, "xml")
