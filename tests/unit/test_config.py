"""Configuration as ops meet it: TOML file, environment overrides, clear errors, masked secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from acd.cli import main
from acd.config import ConfigError, load_settings

GOOD = """
[agi]
port = 4600

[ami]
username = "acd"
secret = "s3cr3t-ami"

[database]
url = "postgresql+psycopg://acd:db-pass@db.example:5432/acd"
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ACD_CONFIG", "ACD_AGI__PORT", "ACD_AMI__SECRET", "ACD_DATABASE__URL"):
        monkeypatch.delenv(name, raising=False)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "acd.toml"
    path.write_text(text)
    return path


def test_file_values_and_environment_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, GOOD)
    assert load_settings(path).agi.port == 4600
    monkeypatch.setenv("ACD_AGI__PORT", "4700")
    monkeypatch.setenv("ACD_AMI__SECRET", "from-env")
    settings = load_settings(path)
    assert settings.agi.port == 4700
    assert settings.ami.secret.get_secret_value() == "from-env"
    assert settings.ami.username == "acd"  # untouched values still come from the file


def test_every_problem_is_named_with_file_line_and_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[agi]\nport = "x"\n\n[ami]\nping_interval = -1\ntypo_key = 1\n\n[nosuch]\na = 1\n',
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    problems = info.value.problems
    assert f"{path}:2: [agi.port]" in problems[0]
    assert any(p.startswith(f"{path}:5: [ami.ping_interval]") for p in problems)
    assert any(p.startswith(f"{path}:6: [ami.typo_key]") for p in problems)
    assert any(p.startswith(f"{path}:8: [nosuch]") for p in problems)


def test_a_bad_environment_override_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACD_AGI__PORT", "70000")
    with pytest.raises(ConfigError, match=r"environment ACD_AGI__PORT: \[agi.port\]"):
        load_settings()


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[agi]\nport = = 1\n")
    with pytest.raises(ConfigError, match=rf"{path}: .*line 2"):
        load_settings(path)


def test_a_wrong_secret_type_does_not_echo_the_value(tmp_path: Path) -> None:
    path = write(tmp_path, "[ami]\nsecret = 12345678\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert "12345678" not in str(info.value)


def test_config_show_masks_secrets(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    result = CliRunner().invoke(main, ["config", "show", "-c", str(path)])
    assert result.exit_code == 0, result.output
    assert '"port": 4600' in result.output
    assert "s3cr3t-ami" not in result.output
    assert "db-pass" not in result.output


def test_cli_reports_a_broken_file_and_exits_non_zero(tmp_path: Path) -> None:
    path = write(tmp_path, "[agi]\nport = 'x'\n")
    result = CliRunner().invoke(main, ["config", "show", "-c", str(path)])
    assert result.exit_code != 0
    assert f"{path}:2: [agi.port]" in result.output
