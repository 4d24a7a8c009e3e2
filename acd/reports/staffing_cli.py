"""``acd staffing``: Erlang C head counts for one interval, or for tomorrow from the history.

The maths is in ``acd.core.staffing`` and ``acd.core.forecast``; this module parses the
options (a bad value is refused naming its option) and prints a table, CSV or JSON.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import click

from acd.cli_options import CONFIG_OPTION, settings_from
from acd.core.forecast import DayForecast, IntervalHistory, PlannedInterval, Slot
from acd.core.staffing import StaffingResult, agents_needed
from acd.queues.config import parse_duration, parse_service_level

FORMATS = ("table", "csv", "json")

#: The core's parameter names (they lead its error messages) and the options they come from.
_OPTION_OF = {
    "calls": "--calls",
    "interval_s": "--interval",
    "aht_s": "--aht",
    "sl_target": "--sl",
    "target_s": "--sl",
    "max_occupancy": "--max-occupancy",
    "shrinkage": "--shrinkage",
    "weeks": "--weeks",
    "min_weeks": "--min-weeks",
}


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from exc


def _service_level(ctx: click.Context, param: click.Parameter, value: str) -> tuple[float, float]:
    try:
        return parse_service_level(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from exc


def _share(ctx: click.Context, param: click.Parameter, value: str) -> float:
    """``85%`` or ``0.85``; a bare number above 1 is refused rather than guessed at."""
    text = value.strip()
    try:
        share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise click.BadParameter(
            f"'{value}' is not a share: write it like 85% or 0.85", ctx, param
        ) from None
    if not math.isfinite(share) or not 0 <= share <= 1:
        raise click.BadParameter(f"'{value}' must be from 0% to 100% (or 0 to 1)", ctx, param)
    return share


def _core_error(exc: ValueError) -> click.UsageError:
    """The core's "aht_s must be > 0 ..." as a usage error naming the option."""
    text = str(exc)
    field = text.split(" ", 1)[0].rstrip(":")
    option = _OPTION_OF.get(field)
    if option is None:
        return click.UsageError(text)
    return click.BadParameter(text, param_hint=f"'{option}'")


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def _seconds(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.1f}s"


def _result_fields(result: StaffingResult) -> dict[str, Any]:
    return {
        "traffic_erl": round(result.traffic, 3),
        "agents": result.agents,
        "scheduled": result.scheduled,
        "service_level": round(result.service_level, 4),
        "probability_waiting": round(result.probability_waiting, 4),
        "asa_s": None if math.isinf(result.asa) else round(result.asa, 2),
        "occupancy": round(result.occupancy, 4),
    }


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(headers), "-" * len(line(headers)), *(line(r) for r in rows)])


def _csv(rows: Sequence[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().rstrip("\n")


_TABLE_HEADERS = ("agents", "scheduled", "SL", "P(wait)", "ASA", "occupancy")


def _table_cells(result: StaffingResult) -> list[str]:
    return [
        str(result.agents),
        str(result.scheduled),
        _pct(result.service_level),
        _pct(result.probability_waiting),
        _seconds(result.asa),
        _pct(result.occupancy),
    ]


def _check_subcommand_alone(ctx: click.Context) -> None:
    given = [
        p.opts[0]
        for p in ctx.command.params
        if isinstance(p, click.Option)
        and ctx.get_parameter_source(p.name or "") is click.core.ParameterSource.COMMANDLINE
    ]
    if given:
        raise click.UsageError(
            f"{', '.join(given)} belong(s) to the calculator; put the options after"
            f" '{ctx.invoked_subcommand}'"
        )


def _targets(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options both commands share: interval length and the service targets."""
    options = (
        click.option(
            "--interval",
            callback=_duration,
            default="30m",
            show_default=True,
            metavar="TIME",
            help="Interval length.",
        ),
        click.option(
            "--sl",
            callback=_service_level,
            default="80% in 20s",
            show_default=True,
            metavar="'PCT in TIME'",
            help="Service-level target.",
        ),
        click.option(
            "--max-occupancy",
            callback=_share,
            default="100%",
            show_default=True,
            metavar="PCT",
            help="Highest share of time agents may spend on calls.",
        ),
        click.option(
            "--shrinkage",
            callback=_share,
            default="0%",
            show_default=True,
            metavar="PCT",
            help="Share of paid time off the phones (breaks, training, absence).",
        ),
    )
    for option in reversed(options):
        command = option(command)
    return command


@click.group(invoke_without_command=True)
@click.option("--calls", type=float, help="Calls offered in the interval (e.g. 100).")
@click.option("--aht", callback=_duration, metavar="TIME", help="Average handle time: 180, 3m.")
@_targets
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.pass_context
def staffing(
    ctx: click.Context,
    calls: float | None,
    aht: float | None,
    interval: float,
    sl: tuple[float, float],
    max_occupancy: float,
    shrinkage: float,
    fmt: str,
) -> None:
    """Agents one interval needs (Erlang C), or 'forecast' for a whole day.

    \b
    acd staffing --calls 100 --aht 180 --interval 30m --sl "80% in 20s" \\
                 --max-occupancy 85% --shrinkage 30%
    """
    if ctx.invoked_subcommand is not None:
        _check_subcommand_alone(ctx)
        return
    if calls is None:
        raise click.MissingParameter(param_hint="'--calls'", param_type="option")
    if aht is None:
        raise click.MissingParameter(param_hint="'--aht'", param_type="option")
    level, target = sl
    try:
        result = agents_needed(calls, interval, aht, level, target, max_occupancy, shrinkage)
    except ValueError as exc:
        raise _core_error(exc) from exc
    inputs = {
        "calls": calls,
        "interval_s": interval,
        "aht_s": aht,
        "sl_target": level,
        "target_s": target,
        "max_occupancy": max_occupancy,
        "shrinkage": shrinkage,
    }
    row = {**inputs, **_result_fields(result)}
    if fmt == "json":
        click.echo(json.dumps(row, indent=2))
    elif fmt == "csv":
        click.echo(_csv([row]))
    else:
        headers = ("calls", "AHT", "interval", "traffic", *_TABLE_HEADERS)
        cells = [
            f"{calls:g}",
            _seconds(aht),
            f"{interval / 60:g}m" if interval % 60 == 0 else _seconds(interval),
            f"{result.traffic:.2f}",
            *_table_cells(result),
        ]
        click.echo(_table(headers, [cells], right=set(range(len(headers)))))
        click.echo(
            f"target {level * 100:g}% in {target:g}s, max occupancy {_pct(max_occupancy)},"
            f" shrinkage {_pct(shrinkage)}"
        )


@staffing.command("forecast")
@CONFIG_OPTION
@click.option(
    "--date",
    "day",
    required=True,
    type=click.DateTime(["%Y-%m-%d"]),
    help="The day to plan (YYYY-MM-DD), in the center's time zone.",
)
@click.option("--queue", required=True, help="The queue whose history to forecast from.")
@_targets
@click.option(
    "--weeks",
    type=int,
    default=4,
    show_default=True,
    help="Same weekday of this many weeks back, the latest weighing most.",
)
@click.option(
    "--min-weeks",
    type=int,
    default=2,
    show_default=True,
    help="Fewer same weekdays on record: every day of those weeks instead.",
)
@click.option(
    "--trend/--no-trend",
    default=False,
    show_default=True,
    help="Scale by the last 7 days against the 7 before.",
)
@click.option(
    "--aht",
    callback=_duration,
    metavar="TIME",
    help="Handle time to plan with (default: the history's).",
)
@click.option("--tz", help="The center's time zone (default: [reports] timezone).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
def staffing_forecast(
    config_path: Path | None,
    day: Any,
    queue: str,
    interval: float,
    sl: tuple[float, float],
    max_occupancy: float,
    shrinkage: float,
    weeks: int,
    min_weeks: int,
    trend: bool,
    aht: float | None,
    tz: str | None,
    fmt: str,
) -> None:
    """Forecast a day's calls per interval from the queue's history, and staff each one.

    Volume: the same weekday of the last --weeks weeks, weighted N, N-1 ... 1 (the latest
    most); handle time: talk plus wrap-up of those days, as 'acd report queues' shows it.
    """
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from acd.core.forecast import forecast_day, plan_day
    from acd.log import configure_logging
    from acd.reports.history import REPORT_INTERVALS

    configure_logging("ERROR", "console")
    settings = settings_from(config_path)
    zone_name = tz or settings.reports.timezone
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise click.BadParameter(
            f"unknown time zone {zone_name!r} (use an IANA name: Europe/Berlin)",
            param_hint="'--tz'",
        ) from exc
    interval_s = round(interval)
    if interval_s not in REPORT_INTERVALS or interval_s != interval:
        raise click.BadParameter(
            f"{interval:g} s: the forecast works in the reports' intervals: 15m, 30m or 60m",
            param_hint="'--interval'",
        )
    if weeks < 1:
        raise click.BadParameter(f"weeks must be at least 1, got {weeks}", param_hint="'--weeks'")
    if not 1 <= min_weeks <= weeks:
        raise click.BadParameter(
            f"min_weeks must be from 1 up to --weeks ({weeks}), got {min_weeks}",
            param_hint="'--min-weeks'",
        )
    target_day: date = day.date()
    url = settings.database.url.get_secret_value()
    history = asyncio.run(_history(url, queue, target_day, 7 * weeks, zone_name, interval_s))
    level, target = sl
    try:
        forecast = forecast_day(
            history, target_day, zone, interval_s, weeks=weeks, min_weeks=min_weeks, trend=trend
        )
        plan = plan_day(
            forecast,
            interval_s,
            sl_target=level,
            target_s=target,
            max_occupancy=max_occupancy,
            shrinkage=shrinkage,
            aht_s=aht,
        )
    except ValueError as exc:
        if str(exc).startswith("no history"):
            raise click.ClickException(f"queue {queue!r}: {exc}") from exc
        raise _core_error(exc) from exc
    click.echo(_render_plan(fmt, queue, zone_name, forecast, plan, (level, target)))


async def _history(
    url: str, queue: str, day: date, days: int, tz: str, interval_s: int
) -> dict[date, dict[Slot, IntervalHistory]]:
    from sqlalchemy.exc import SQLAlchemyError

    from acd.db.engine import make_async_engine
    from acd.log import redact_url
    from acd.reports.history import queue_history

    engine = make_async_engine(url)
    try:
        return await queue_history(
            engine, queue, before=day, days=days, tz=tz, interval_s=interval_s
        )
    except (SQLAlchemyError, OSError) as exc:
        cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise click.ClickException(
            f"cannot read the history from {redact_url(url)}: {cause[0] if cause else exc}"
        ) from exc
    finally:
        await engine.dispose()


def _interval_row(p: PlannedInterval) -> dict[str, Any]:
    return {
        "start": p.interval.start.isoformat(),
        "calls": round(p.interval.calls, 2),
        "aht_s": round(p.aht_s, 1),
        **_result_fields(p.staffing),
    }


def _render_plan(
    fmt: str,
    queue: str,
    zone: str,
    forecast: DayForecast,
    plan: Sequence[PlannedInterval],
    sl: tuple[float, float],
) -> str:
    rows = [_interval_row(p) for p in plan]
    if fmt == "csv":
        return _csv(rows)
    days = ", ".join(f"{d.isoformat()} x{w:g}" for d, w in forecast.days)
    if fmt == "json":
        return json.dumps(
            {
                "queue": queue,
                "date": forecast.day.isoformat(),
                "timezone": zone,
                "method": forecast.method,
                "days": [{"date": d.isoformat(), "weight": w} for d, w in forecast.days],
                "trend": round(forecast.trend, 4),
                "sl_target": sl[0],
                "target_s": sl[1],
                "calls": round(forecast.calls, 2),
                "intervals": rows,
            },
            indent=2,
        )
    headers = ("start", "calls", "AHT", *_TABLE_HEADERS)
    cells = [
        [
            p.interval.start.strftime("%H:%M") + ("*" if p.interval.slot[1] else ""),
            f"{p.interval.calls:.1f}",
            _seconds(p.aht_s),
            *_table_cells(p.staffing),
        ]
        for p in plan
    ]
    peak = max((p.staffing.scheduled for p in plan), default=0)
    method = "same weekday" if forecast.method == "same_weekday" else "all days (too few weeks)"
    lines = [
        f"queue {queue}, {forecast.day.isoformat()} ({zone}): {forecast.calls:.1f} calls forecast,"
        f" {method}: {days}; trend x{forecast.trend:.3f}",
        _table(headers, cells, right=set(range(1, len(headers)))),
        f"peak scheduled {peak}; target {sl[0] * 100:g}% in {sl[1]:g}s"
        + (
            "; * the repeated hour (clocks go back)"
            if any(p.interval.slot[1] for p in plan)
            else ""
        ),
    ]
    return "\n".join(lines)
