"""``acd report queues|agents|ivr``: the reports from the command line.

Dates and times on the command line are the center's local time (``[reports] timezone``
or ``--tz``); the period is ``[--from, --to)``, so ``--from 2026-12-01 --to 2026-12-02``
is the whole of 1 December.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from acd.cli_options import CONFIG_OPTION, settings_from
from acd.reports import queries
from acd.reports.render import FORMATS, render

T = TypeVar("T")

_FORMATS_HELP = "table (people), csv or json (spreadsheets, scripts)"


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(
            f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin)",
            param_hint="'--tz'",
        ) from None


def _local(text: str, option: str, zone: ZoneInfo) -> datetime:
    """``2026-12-01`` (midnight) or ``2026-12-01 08:30`` / ``2026-12-01T08:30``, local."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a date or time: use YYYY-MM-DD or 'YYYY-MM-DD HH:MM'",
            param_hint=f"'{option}'",
        ) from None
    if parsed.tzinfo is not None:
        return parsed
    return parsed.replace(tzinfo=zone)


def _period(start: str | None, end: str | None, zone: ZoneInfo) -> tuple[datetime, datetime]:
    if start is None:
        begin = datetime.combine(datetime.now(zone).date(), time(), zone)
    else:
        begin = _local(start, "--from", zone)
    if end is None:
        day = begin.astimezone(zone).date() + timedelta(days=1)
        finish = datetime.combine(day, time(), zone)
    else:
        finish = _local(end, "--to", zone)
    if finish <= begin:
        raise click.BadParameter(
            f"--to ({finish.isoformat()}) must be after --from ({begin.isoformat()})",
            param_hint="'--to'",
        )
    return begin, finish


def _options(default_interval: str | None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The options every report takes (``None``: the report has no intervals)."""

    def wrap(f: Callable[..., Any]) -> Callable[..., Any]:

        interval = click.option(
            "--interval",
            type=click.Choice(queries.INTERVALS),
            default=default_interval,
            show_default=True,
            help="length of each row: minutes, a local day, or the whole period",
        )
        for decorator in reversed(
            [
                CONFIG_OPTION,
                click.option("--from", "start", metavar="DATE", help="first day/time (local)"),
                click.option(
                    "--to", "end", metavar="DATE", help="end, not included (default: +1 day)"
                ),
                *([interval] if default_interval else []),
                click.option("--tz", help="time zone (default: [reports] timezone)"),
                click.option(
                    "--format",
                    "fmt",
                    type=click.Choice(FORMATS),
                    default="table",
                    help=_FORMATS_HELP,
                ),
            ]
        ):
            f = decorator(f)
        return f

    return wrap


def _request(
    config_path: Path | None,
    start: str | None,
    end: str | None,
    interval: str,
    tz: str | None,
    queues: Sequence[str] = (),
    sl: float | None = None,
    short: float | None = None,
) -> tuple[queries.ReportRequest, str]:
    settings = settings_from(config_path)
    zone_name = tz or settings.reports.timezone
    zone = _zone(zone_name)
    begin, finish = _period(start, end, zone)
    request = queries.ReportRequest(
        start=begin,
        end=finish,
        tz=zone_name,
        interval=interval,  # type: ignore[arg-type]
        queues=tuple(queues),
        sl_threshold_s=settings.reports.service_level_s if sl is None else sl,
        short_abandon_s=settings.reports.short_abandon_s if short is None else short,
    )
    return request, settings.database.url.get_secret_value()


def _run(url: str, report: Callable[[Any], Awaitable[T]]) -> T:
    from sqlalchemy.exc import DBAPIError, OperationalError

    from acd.db.engine import make_async_engine
    from acd.log import redact_url

    async def go() -> T:
        engine = make_async_engine(url, pool_size=1, max_overflow=0)
        try:
            return await report(engine)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(go())
    except (OperationalError, DBAPIError) as exc:
        first = str(exc.orig or exc).strip().splitlines()[0]
        if "does not exist" in first:
            first += " (an older schema? run: acd db upgrade)"
        raise click.ClickException(f"database {redact_url(url)}: {first}") from exc


def _header(request: queries.ReportRequest, fmt: str, what: str) -> None:
    if fmt == "table":
        zone = request.zone
        click.echo(
            f"{what}, {request.start.astimezone(zone):%Y-%m-%d %H:%M} to "
            f"{request.end.astimezone(zone):%Y-%m-%d %H:%M} ({request.tz})"
        )


@click.group("report")
def report() -> None:
    """Reports from the call records: queues, agents, IVR."""


@report.command("queues")
@_options("30m")
@click.option("--queue", "queues", multiple=True, help="queue name (repeat; default: all)")
@click.option("--sl", type=click.FloatRange(min=0), help="service-level threshold T, seconds")
@click.option(
    "--short-abandon", type=click.FloatRange(min=0), help="short-abandon threshold, seconds"
)
def report_queues(
    config_path: Path | None,
    start: str | None,
    end: str | None,
    interval: str,
    tz: str | None,
    fmt: str,
    queues: tuple[str, ...],
    sl: float | None,
    short_abandon: float | None,
) -> None:
    """Per queue and interval: offered, answered, abandoned, service level, ASA, AHT.

    SL = answered within T / answered; SL+ab = answered within T / (answered +
    abandoned after the short-abandon threshold); aband% leaves short abandons out.
    """
    request, url = _request(config_path, start, end, interval, tz, queues, sl, short_abandon)
    rows = _run(url, lambda db: queries.queue_report(db, request))
    _header(request, fmt, f"queues (SL threshold {request.sl_threshold_s:g} s)")
    click.echo(render(rows, fmt, interval), nl=False)


@report.command("agents")
@_options("day")
def report_agents(
    config_path: Path | None,
    start: str | None,
    end: str | None,
    interval: str,
    tz: str | None,
    fmt: str,
) -> None:
    """Per agent and interval: calls, talk, wrap-up, not ready by reason, occupancy.

    Occupancy = (talk + wrap-up) / (logged in - not ready).
    """
    request, url = _request(config_path, start, end, interval, tz)
    rows = _run(url, lambda db: queries.agent_report(db, request))
    _header(request, fmt, "agents")
    click.echo(render(rows, fmt, interval), nl=False)


@report.command("ivr")
@_options(None)
@click.option("--nodes", is_flag=True, help="per node: callers who reached it, who hung up there")
def report_ivr(
    config_path: Path | None,
    start: str | None,
    end: str | None,
    tz: str | None,
    fmt: str,
    nodes: bool,
) -> None:
    """Per flow version: containment (ended in self-service) and drop-off, for the calls
    that started in the period."""
    interval = "total"
    request, url = _request(config_path, start, end, interval, tz)
    if nodes:
        node_rows = _run(url, lambda db: queries.ivr_nodes(db, request))
        _header(request, fmt, "IVR nodes")
        click.echo(render(node_rows, fmt, interval), nl=False)
        return
    rows = _run(url, lambda db: queries.ivr_report(db, request))
    _header(request, fmt, "IVR flows")
    click.echo(render(rows, fmt, interval), nl=False)
