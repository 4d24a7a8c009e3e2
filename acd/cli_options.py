"""What every ``acd`` subcommand shares: the ``--config`` option and loading settings
from it. A module of its own so the subcommand modules need not import ``acd.cli``
(which imports them)."""

from __future__ import annotations

from pathlib import Path

import click

from acd.config import ConfigError, Settings, load_settings

CONFIG_OPTION = click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="ACD_CONFIG",
    help="TOML configuration file (default: $ACD_CONFIG; ACD_* variables override it).",
)


def settings_from(config_path: Path | None) -> Settings:
    """Load settings, turning file and validation errors into one clear message."""
    try:
        return load_settings(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
