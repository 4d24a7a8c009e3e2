"""Daemon configuration: a TOML file, overridden by ``ACD_*`` environment variables.

Nested fields use a double underscore: ``ACD_AMI__SECRET`` overrides ``[ami] secret``.
Secrets are ``SecretStr`` so they print as ``**********`` wherever a setting is shown.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

CONFIG_ENV = "ACD_CONFIG"


class _Section(BaseModel):
    """A ``[table]`` of the file: an unknown key is a typo, so it is an error."""

    model_config = ConfigDict(extra="forbid")


class AgiSettings(_Section):
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


class AmiSettings(_Section):
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


class DatabaseSettings(_Section):
    """PostgreSQL (SQLAlchemy URL, ``postgresql+psycopg://``)."""

    url: SecretStr = SecretStr("postgresql+psycopg://acd:acd@127.0.0.1:5432/acd")
    migrate_on_start: bool = True
    batch_size: int = Field(default=200, ge=1)
    flush_interval: float = Field(default=0.2, gt=0)
    spool_dir: Path = Field(
        default=Path("/var/lib/acd/spool"),
        description="local journal of records not yet in PostgreSQL (survives a kill)",
    )
    spool_sync_interval: float = Field(
        default=0.05, gt=0, le=5, description="seconds between fsyncs of the spool"
    )


class HotlineSettings(_Section):
    """The built-in hotline greeting (the ``hotline`` AGI route)."""

    prompt: str = Field(default="hello-world", min_length=1, description="sound file name")
    wait_ms: int = Field(default=5000, ge=0, description="how long to wait for a key after it")


class IvrSettings(_Section):
    """YAML IVR flows (the ``flow`` AGI route) and how the daemon picks up edits."""

    flows_dir: Path = Field(default=Path("ivr_flows"), description="folder of *.yaml flows")
    sounds_dir: Path | None = Field(
        default=None, description="Asterisk sounds folder: when set, prompts must exist there"
    )
    reload_poll: float = Field(
        default=2.0, gt=0, description="seconds between checks of the flow files for edits"
    )
    entry_flow: str = Field(
        default="hotline", min_length=1, description="flow run when the route names none"
    )


def _default_reasons() -> dict[str, str]:
    return {"1": "break", "2": "lunch", "3": "meeting", "4": "training", "5": "coaching"}


class AcdSettings(_Section):
    """ACD queues and agents: where they are configured and how agents are reached."""

    queues_file: Path | None = Field(
        default=None, description="YAML file of queues, agents and teams (none: no queues)"
    )
    reload_poll: float = Field(
        default=2.0, gt=0, description="seconds between checks of the queues file for edits"
    )
    callback_dial: str = Field(
        default="Local/{number}@acd-callback-out",
        min_length=3,
        description="dial string for callbacks; {number} is the customer's number",
    )
    connect_wait: float = Field(
        default=10.0, gt=0, description="seconds an agent who answered waits for the caller"
    )
    reasons: dict[str, str] = Field(
        default_factory=_default_reasons,
        description="not-ready reason codes keyed after *44 on the phone",
    )


class HttpSettings(_Section):
    """The HTTP API, supervisors' and agents' pages (``/api/v1``, ``/metrics``)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535, description="0: any free port (tests)")
    session_hours: float = Field(
        default=12.0, gt=0, description="how long a login (cookie or bearer token) lasts"
    )
    secure_cookie: bool = Field(
        default=False, description="mark the session cookie Secure (set behind a TLS proxy)"
    )
    max_upload_bytes: int = Field(
        default=1_048_576, ge=1024, description="cap on a request body (a flow upload)"
    )


def _check_timezone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (use an IANA name: Europe/Berlin)") from None
    return value


class ReportsSettings(_Section):
    """Reports (``acd report``, the HTTP API): the center's clock and the KPI thresholds."""

    timezone: Annotated[str, AfterValidator(_check_timezone)] = Field(
        default="UTC", description="the center's time zone: report dates and intervals are local"
    )
    service_level_s: float = Field(
        default=20.0, ge=0, description="service-level threshold T (answered within T seconds)"
    )
    short_abandon_s: float = Field(
        default=5.0, ge=0, description="abandons within this many seconds are short abandons"
    )


class DaemonSettings(_Section):
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
    ivr: IvrSettings = IvrSettings()
    acd: AcdSettings = AcdSettings()
    http: HttpSettings = HttpSettings()
    reports: ReportsSettings = ReportsSettings()
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


class ConfigError(ValueError):
    """The configuration cannot be used; each problem names its file, line and field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))
        self.problems = problems


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Read ``path`` (or ``$ACD_CONFIG``), then apply the environment, then ``overrides``.

    Raises ``ConfigError`` naming the file, line and field of every problem.
    """
    if path is not None:
        os.environ[CONFIG_ENV] = str(path)
    source = os.environ.get(CONFIG_ENV)
    text = ""
    if source:
        file = Path(source)
        if not file.is_file():
            raise ConfigError([f"{file}: configuration file not found"])
        text = file.read_text(encoding="utf-8")
        try:
            tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"{file}: {exc}"]) from exc
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError([_describe(err, source, text) for err in exc.errors()]) from exc


def _describe(err: Any, source: str | None, text: str) -> str:
    loc = [str(part) for part in err["loc"]]
    field = ".".join(loc)
    env_name = "ACD_" + "__".join(part.upper() for part in loc)
    if env_name in os.environ:
        where = f"environment {env_name}"
    else:
        line = _toml_line(text, loc)
        where = f"{source}:{line}" if source and line else (source or "settings")
    got = "" if _secret_field(loc) else f" (got {err.get('input')!r})"
    return f"{where}: [{field}] {err['msg']}{got}"


def _secret_field(loc: Sequence[str]) -> bool:
    return bool(loc) and loc[-1] in {"secret", "url", "password", "token"}


def _toml_line(text: str, loc: Sequence[str]) -> int | None:
    """Line number of ``key`` inside ``[table]`` for a ``(table, key)`` location."""
    if not text or not loc:
        return None
    table, key = (loc[0], loc[-1]) if len(loc) > 1 else ("", loc[0])
    current = ""
    key_re = re.compile(rf"^\s*{re.escape(key)}\s*=")
    for number, line in enumerate(text.splitlines(), start=1):
        header = re.match(r"^\s*\[([^\]]+)\]", line)
        if header:
            current = header.group(1).strip()
            if len(loc) == 1 and current == key:
                return number
            continue
        if current == table and key_re.match(line):
            return number
    return None
