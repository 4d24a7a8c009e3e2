"""``acd staffing``: the planning example in every output format; bad values name the option."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner, Result

from acd.cli import main

EXAMPLE = [
    "--calls", "100", "--aht", "180", "--interval", "30m", "--sl", "80% in 20s",
    "--max-occupancy", "85%", "--shrinkage", "30%",
]  # fmt: skip


def staffing(*args: str) -> Result:
    return CliRunner().invoke(main, ["staffing", *args])


def test_the_table_shows_14_agents_20_scheduled_and_what_they_achieve() -> None:
    result = staffing(*EXAMPLE)
    assert result.exit_code == 0, result.output
    header, _, row, footer = result.output.splitlines()
    assert header.split() == [
        "calls", "AHT", "interval", "traffic", "agents", "scheduled", "SL", "P(wait)", "ASA",
        "occupancy",
    ]  # fmt: skip
    assert row.split() == ["100", "180.0s", "30m", "10.00", "14", "20", "88.8%", "17.4%", "7.8s",
                           "71.4%"]  # fmt: skip
    assert footer == "target 80% in 20s, max occupancy 85.0%, shrinkage 30.0%"


def test_json_carries_the_inputs_and_the_figures() -> None:
    result = staffing(*EXAMPLE, "--format", "json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["agents"] == 14 and out["scheduled"] == 20
    assert round(out["service_level"] * 100, 1) == 88.8
    assert round(out["probability_waiting"] * 100, 1) == 17.4
    assert round(out["asa_s"], 1) == 7.8
    assert out["occupancy"] == pytest.approx(10 / 14, abs=1e-4)
    assert out["traffic_erl"] == 10.0
    assert (out["calls"], out["aht_s"], out["interval_s"]) == (100, 180, 1800)
    assert (out["sl_target"], out["target_s"], out["max_occupancy"], out["shrinkage"]) == (
        0.8,
        20,
        0.85,
        0.3,
    )


def test_csv_is_one_header_and_one_row() -> None:
    result = staffing(*EXAMPLE, "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert len(rows) == 1
    row = rows[0]
    assert (row["agents"], row["scheduled"]) == ("14", "20")
    assert (row["service_level"], row["probability_waiting"], row["asa_s"]) == (
        "0.8884",
        "0.1741",
        "7.84",
    )


def test_units_and_fractions_mean_the_same() -> None:
    same = staffing(
        "--calls", "100", "--aht", "3m", "--interval", "1800", "--sl", "80% within 20s",
        "--max-occupancy", "0.85", "--shrinkage", "0.3", "--format", "json",
    )  # fmt: skip
    assert same.exit_code == 0, same.output
    assert json.loads(same.output) == json.loads(staffing(*EXAMPLE, "--format", "json").output)


def test_without_targets_only_the_service_level_decides() -> None:
    result = staffing("--calls", "100", "--aht", "180", "--format", "json")
    out = json.loads(result.output)
    assert (out["agents"], out["scheduled"]) == (14, 14)  # 80/20, no cap, no shrinkage


@pytest.mark.parametrize(
    ("args", "option", "says"),
    [
        (["--calls", "-5"], "--calls", "calls must be >= 0"),
        (["--calls", "lots"], "--calls", "'lots' is not a valid float"),
        (["--aht", "0"], "--aht", "aht_s must be > 0"),
        (["--aht", "soon"], "--aht", "is not a time"),
        (["--interval", "0s"], "--interval", "interval_s must be > 0"),
        (["--sl", "80 in 20"], "--sl", 'write it like "80% in 20s"'),
        (["--sl", "100% in 20s"], "--sl", "sl_target must be a fraction"),
        (["--max-occupancy", "85"], "--max-occupancy", "must be from 0% to 100%"),
        (["--max-occupancy", "0%"], "--max-occupancy", "max_occupancy must be"),
        (["--shrinkage", "100%"], "--shrinkage", "shrinkage must be a fraction"),
        (["--shrinkage", "a lot"], "--shrinkage", "is not a share"),
    ],
)
def test_bad_input_names_the_option(args: list[str], option: str, says: str) -> None:
    given = dict(zip(EXAMPLE[::2], EXAMPLE[1::2], strict=True))
    given.update(dict(zip(args[::2], args[1::2], strict=True)))
    result = staffing(*(part for pair in given.items() for part in pair))
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}'" in result.output
    assert says in result.output


def test_calls_and_handle_time_are_required() -> None:
    missing = staffing("--aht", "180")
    assert missing.exit_code == 2
    assert "Missing option '--calls'" in missing.output
    assert "Missing option '--aht'" in staffing("--calls", "100").output


def test_calculator_options_before_forecast_are_refused() -> None:
    result = staffing("--calls", "100", "forecast", "--date", "2026-12-04", "--queue", "sales")
    assert result.exit_code == 2
    assert "--calls belong(s) to the calculator" in result.output


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--interval", "7m"], "--interval"),
        (["--tz", "Mars/Olympus"], "--tz"),
        (["--date", "04.12.2026"], "--date"),
        (["--sl", "eighty"], "--sl"),
    ],
)
def test_bad_forecast_input_names_the_option_before_any_database_access(
    args: list[str], option: str
) -> None:
    given = {"--date": "2026-12-04", "--queue": "sales"}
    given.update(dict(zip(args[::2], args[1::2], strict=True)))
    result = CliRunner().invoke(
        main,
        ["staffing", "forecast", *(part for pair in given.items() for part in pair)],
        env={"ACD_DATABASE__URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"},
    )
    assert result.exit_code == 2, result.output
    assert f"'{option}'" in result.output
