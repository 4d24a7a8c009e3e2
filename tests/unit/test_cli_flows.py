"""``acd flows check`` as a supervisor runs it before saving an edit."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from acd.cli import main

FLOWS = Path(__file__).resolve().parents[1] / "flows"


def test_good_flows_pass() -> None:
    result = CliRunner().invoke(main, ["flows", "check", str(FLOWS / "good")])
    assert result.exit_code == 0, result.output
    assert "hotline" in result.output


def test_every_problem_of_every_file_is_listed_and_the_exit_code_is_non_zero() -> None:
    broken = [FLOWS / "broken" / "duplicate_digit.yaml", FLOWS / "broken" / "goto_loop.yaml"]
    result = CliRunner().invoke(main, ["flows", "check", *map(str, broken)])
    assert result.exit_code != 0
    assert "duplicate_digit.yaml:11:7: nodes.main_menu.choices.1:" in result.output
    assert "goto_loop.yaml:10:3: nodes.again:" in result.output
    assert "2 problem(s) found" in result.output


def test_schema_is_json_schema() -> None:
    import json

    result = CliRunner().invoke(main, ["flows", "schema"])
    schema = json.loads(result.output)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert "nodes" in json.dumps(schema)
