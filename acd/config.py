"""Daemon configuration: a TOML file, overridden by ``ACD_*`` environment variables.

Nested fields use a double underscore: ``ACD_AMI__SECRET`` overrides ``[ami] secret``.
Secrets are ``SecretStr`` so they print as ``**********`` wherever a setting is shown.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

CONFIG_ENV = "ACD_CONFIG"


class AgiSettings(BaseModel):
    """FastAGI server: where Asterisk's ``AGI(agi://host:port/route)`` connects."""

    host: str = "127.0.0.1"
    port: int = Field(default=4573, ge=0, le=65535)
    max_env_bytes: int = Field(default=16384, ge=1024, description="cap on the agi_ header block")
    max_line_bytes: int = Field(default=8192, ge=256, description="cap on one reply line")
    header_timeout: float = Field(
        default=5.0, gt=0, description="seconds to receive the agi_ header"
    )
    command_timeout: float = Field(
        default=600.0, gt=0, description="seconds to wait for a reply to one AGI command"
    )


class AmiSettings(BaseModel):
    """Asterisk Manager Interface link."""

    host: str = "127.0.0.1"
    port: int = Field(default=5038, ge=1, le=65535)
    username: str = "acd"
    secret: SecretStr = SecretStr("")
    events: str = "call,dtmf,agi,user"
    action_timeout: float = Field(default=5.0, gt=0)
    ping_interval: float = Field(default=10.0, gt=0, description="seconds between Ping actions")
    pong_timeout: float = Field(default=5.0, gt=0, description="no Pong within this: link is dead")
    backoff_initial: float = Field(default=0.5, gt=0)
    backoff_max: float = Field(default=30.0, gt=0)


class DatabaseSettings(BaseModel):
    """PostgreSQL (SQLAlchemy URL, ``postgresql+psycopg://``)."""

    url: SecretStr = SecretStr("postgresql+psycopg://acd:acd@127.0.0.1:5432/acd")
    migrate_on_start: bool = True
    batch_size: int = Field(default=200, ge=1)
    flush_interval: float = Field(default=0.2, gt=0)


class HotlineSettings(BaseModel):
    """The built-in hotline greeting (the ``hotline`` AGI route)."""

    prompt: str = Field(default="hello-world", min_length=1, description="sound file name")
    wait_ms: int = Field(default=5000, ge=0, description="how long to wait for a key after it")


class DaemonSettings(BaseModel):
    """Process-wide behaviour."""

    shutdown_grace: float = Field(
        default=30.0, ge=0, description="seconds calls in progress get to finish on SIGTERM"
    )
    log_level: str = "INFO"
    log_format: str = Field(default="json", pattern="^(json|console)$")


class Settings(BaseSettings):
    """Everything ``acd run`` needs."""

    model_config = SettingsConfigDict(env_prefix="ACD_", env_nested_delimiter="__", extra="forbid")

    agi: AgiSettings = AgiSettings()
    ami: AmiSettings = AmiSettings()
    database: DatabaseSettings = DatabaseSettings()
    hotline: HotlineSettings = HotlineSettings()
    daemon: DaemonSettings = DaemonSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = os.environ.get(CONFIG_ENV)
        if path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(path)))
        return tuple(sources)


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Read ``path`` (or ``$ACD_CONFIG``), then apply the environment, then ``overrides``."""
    if path is not None:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: configuration file not found")
        os.environ[CONFIG_ENV] = str(path)
    return Settings(**overrides)
