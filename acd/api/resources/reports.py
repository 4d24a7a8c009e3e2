"""Reports over HTTP: the same queries and parameters as ``acd report``.

``from``/``to`` are the center's local time (``[reports] timezone`` or ``tz``) unless
they carry an offset; the period is ``[from, to)``, default today.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from acd.api.auth import EVERYONE
from acd.api.endpoints import ApiError, Call, endpoint
from acd.reports import queries
from acd.reports.render import Row, to_csv

#: Longest period one request may ask for, and most intervals per queue or agent.
MAX_DAYS = 400
MAX_BUCKETS = 5000
#: A date, or a date and time, with an optional offset (ISO 8601, as fromisoformat reads).
_WHEN = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?)?$"
_STEP = {"15m": timedelta(minutes=15), "30m": timedelta(minutes=30), "60m": timedelta(hours=1)}


class _Period(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    start: str | None = Field(
        default=None,
        alias="from",
        pattern=_WHEN,
        max_length=40,
        description="first day/time, local: YYYY-MM-DD or YYYY-MM-DDTHH:MM (default: today)",
    )
    end: str | None = Field(
        default=None,
        alias="to",
        pattern=_WHEN,
        max_length=40,
        description="end, not included (default: from + 1 day)",
    )
    tz: str | None = Field(
        default=None, max_length=64, description="time zone (default: [reports] timezone)"
    )
    format: Literal["json", "csv"] = "json"


class QueueReportQuery(_Period):
    interval: Literal["15m", "30m", "60m", "day", "total"] = "30m"
    queues: str | None = Field(
        default=None, max_length=2000, description="queue names, comma separated (default: all)"
    )
    sl: float | None = Field(default=None, ge=0, le=86400, description="service-level T, s")
    short_abandon: float | None = Field(default=None, ge=0, le=86400)


class AgentReportQuery(_Period):
    interval: Literal["15m", "30m", "60m", "day", "total"] = "day"


class IvrReportQuery(_Period):
    nodes: bool = Field(default=False, description="per node instead of per flow version")


def _local(text: str, name: str, zone: ZoneInfo) -> datetime:
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ApiError(
            422,
            f"{name}: {text!r} is not a date or time (YYYY-MM-DD or YYYY-MM-DDTHH:MM)",
            problems=[{"field": name, "message": "not a date or time", "in": "query"}],
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=zone)


def _request(
    call: Call,
    q: _Period,
    interval: str,
    queues: tuple[str, ...] = (),
    sl: float | None = None,
    short: float | None = None,
) -> queries.ReportRequest:
    settings = call.ctx.settings.reports
    zone_name = q.tz or settings.timezone
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ApiError(
            422,
            f"tz: unknown time zone {zone_name!r} (an IANA name such as Europe/Berlin)",
            problems=[{"field": "tz", "message": "unknown time zone", "in": "query"}],
        ) from None
    if q.start is None:
        start = datetime.combine(datetime.now(zone).date(), time(), zone)
    else:
        start = _local(q.start, "from", zone)
    if q.end is None:
        end = datetime.combine(start.astimezone(zone).date() + timedelta(days=1), time(), zone)
    else:
        end = _local(q.end, "to", zone)
    if end <= start:
        raise ApiError(422, f"to ({end.isoformat()}) must be after from ({start.isoformat()})")
    if end - start > timedelta(days=MAX_DAYS):
        raise ApiError(422, f"the period is longer than {MAX_DAYS} days")
    step = _STEP.get(interval)
    if step is not None and (end - start) / step > MAX_BUCKETS:
        raise ApiError(422, f"more than {MAX_BUCKETS} intervals: ask for a longer interval")
    try:
        return queries.ReportRequest(
            start=start,
            end=end,
            tz=zone_name,
            interval=interval,  # type: ignore[arg-type]
            queues=queues,
            sl_threshold_s=settings.service_level_s if sl is None else sl,
            short_abandon_s=settings.short_abandon_s if short is None else short,
        )
    except ValueError as exc:
        raise ApiError(422, str(exc)) from None


def _csv(rows: Sequence[Row], name: str) -> web.Response:
    return web.Response(
        text=to_csv(rows),
        content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


@endpoint(
    "GET",
    "/reports/queues",
    summary="Queue report (acd report queues)",
    tag="reports",
    roles=EVERYONE,
    media=("text/csv",),
    query=QueueReportQuery,
    response=list[queries.QueueRow],
)
async def report_queues(call: Call) -> list[queries.QueueRow] | web.Response:
    """Per queue and interval: offered, answered, abandoned, service level, ASA, AHT."""
    q: QueueReportQuery = call.query
    names = tuple(n.strip() for n in (q.queues or "").split(",") if n.strip())
    request = _request(call, q, q.interval, names, q.sl, q.short_abandon)
    rows = await queries.queue_report(call.ctx.engine, request)
    return _csv(rows, "queues") if q.format == "csv" else rows


@endpoint(
    "GET",
    "/reports/agents",
    summary="Agent report (acd report agents)",
    tag="reports",
    roles=EVERYONE,
    media=("text/csv",),
    query=AgentReportQuery,
    response=list[queries.AgentRow],
)
async def report_agents(call: Call) -> list[queries.AgentRow] | web.Response:
    """Per agent and interval: calls, talk, wrap-up, not ready by reason, occupancy."""
    q: AgentReportQuery = call.query
    rows = await queries.agent_report(call.ctx.engine, _request(call, q, q.interval))
    return _csv(rows, "agents") if q.format == "csv" else rows


@endpoint(
    "GET",
    "/reports/ivr",
    summary="IVR report (acd report ivr)",
    tag="reports",
    roles=EVERYONE,
    media=("text/csv",),
    query=IvrReportQuery,
    response=list[queries.IvrFlowRow] | list[queries.IvrNodeRow],
)
async def report_ivr(
    call: Call,
) -> list[queries.IvrFlowRow] | list[queries.IvrNodeRow] | web.Response:
    """Per flow version: containment and drop-off; with ``nodes=true`` per node."""
    q: IvrReportQuery = call.query
    request = _request(call, q, "total")
    if q.nodes:
        node_rows = await queries.ivr_nodes(call.ctx.engine, request)
        return _csv(node_rows, "ivr-nodes") if q.format == "csv" else node_rows
    rows = await queries.ivr_report(call.ctx.engine, request)
    return _csv(rows, "ivr") if q.format == "csv" else rows
