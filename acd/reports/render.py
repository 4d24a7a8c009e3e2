"""Report rows as a terminal table, CSV or JSON.

Tables are for people (local times, percentages, seconds rounded); CSV and JSON are for
spreadsheets and scripts (ISO 8601 times with offsets, ratios 0..1, full precision), so
a number can be carried on without parsing "87.5%".
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from acd.reports.queries import AgentRow, IvrFlowRow, IvrNodeRow, QueueRow

Format = Literal["table", "csv", "json"]
FORMATS: tuple[str, ...] = ("table", "csv", "json")

# Columns of the table form: (header, field, kind). Kinds: time, int, pct, secs, text.
_QUEUE_COLUMNS = (
    ("queue", "queue", "text"),
    ("interval", "interval_start", "time"),
    ("offered", "offered", "int"),
    ("answered", "answered", "int"),
    ("abandoned", "abandoned", "int"),
    ("short", "short_abandoned", "int"),
    ("timeout", "timed_out", "int"),
    ("callback", "callbacks", "int"),
    ("SL", "service_level", "pct"),
    ("SL+ab", "service_level_abandons", "pct"),
    ("aband%", "abandonment_rate", "pct"),
    ("ASA", "asa_s", "secs"),
    ("AHT", "aht_s", "secs"),
    ("longest", "longest_wait_s", "secs"),
)
_AGENT_COLUMNS = (
    ("agent", "agent_id", "text"),
    ("interval", "interval_start", "time"),
    ("calls", "calls", "int"),
    ("talk", "talk_s", "secs"),
    ("wrap-up", "wrap_up_s", "secs"),
    ("logged in", "logged_in_s", "secs"),
    ("not ready", "not_ready_s", "secs"),
    ("AHT", "aht_s", "secs"),
    ("occupancy", "occupancy", "pct"),
    ("not ready by reason", "not_ready_by_reason", "reasons"),
)
_FLOW_COLUMNS = (
    ("flow", "flow", "text"),
    ("version", "flow_version", "int"),
    ("calls", "calls", "int"),
    ("contained", "contained", "int"),
    ("dropped", "dropped", "int"),
    ("passed on", "passed_on", "int"),
    ("errors", "errors", "int"),
    ("containment", "containment", "pct"),
    ("drop-off", "drop_off_rate", "pct"),
)
_NODE_COLUMNS = (
    ("flow", "flow", "text"),
    ("version", "flow_version", "int"),
    ("node", "node_id", "text"),
    ("kind", "kind", "text"),
    ("reached", "reached", "int"),
    ("dropped", "dropped", "int"),
    ("drop-off", "drop_off_rate", "pct"),
)

Row = QueueRow | AgentRow | IvrFlowRow | IvrNodeRow


def _columns(row: Row) -> tuple[tuple[str, str, str], ...]:
    if isinstance(row, QueueRow):
        return _QUEUE_COLUMNS
    if isinstance(row, AgentRow):
        return _AGENT_COLUMNS
    if isinstance(row, IvrFlowRow):
        return _FLOW_COLUMNS
    return _NODE_COLUMNS


def _cell(value: Any, kind: str, interval: str) -> str:
    if value is None:
        return "-"
    if kind == "time":
        assert isinstance(value, datetime)
        if interval in ("day", "total"):
            return value.strftime("%Y-%m-%d")
        return value.strftime("%Y-%m-%d %H:%M%z")
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "secs":
        return f"{value:.1f}"
    if kind == "reasons":
        return " ".join(f"{k}={v:.0f}s" for k, v in value.items())
    return str(value)


def table(rows: Sequence[Row], interval: str = "30m") -> str:
    """Aligned columns, one line per row; ``-`` where a figure has nothing to divide by."""
    if not rows:
        return "(no data in this period)\n"
    columns = _columns(rows[0])
    cells = [[_cell(getattr(r, f), k, interval) for _, f, k in columns] for r in rows]
    headers = [h for h, _, _ in columns]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    numeric = [k not in ("text", "time", "reasons") for _, _, k in columns]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    out = [line(headers), "-" * len(line(headers))]
    out += [line(c) for c in cells]
    return "\n".join(out) + "\n"


def to_csv(rows: Sequence[Row]) -> str:
    """Every field of the rows, one header line; not-ready reasons as ``reason=seconds``."""
    if not rows:
        return ""
    records = [r.to_json() for r in rows]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(records[0]), lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow(
            {
                k: (
                    ";".join(f"{r}={s:g}" for r, s in v.items())
                    if isinstance(v, dict)
                    else ("" if v is None else v)
                )
                for k, v in record.items()
            }
        )
    return buffer.getvalue()


def to_json(rows: Sequence[Row]) -> str:
    return json.dumps([r.to_json() for r in rows], indent=2) + "\n"


def render(rows: Sequence[Row], fmt: str, interval: str = "30m") -> str:
    if fmt == "table":
        return table(rows, interval)
    if fmt == "csv":
        return to_csv(rows)
    if fmt == "json":
        return to_json(rows)
    raise ValueError(f"format {fmt!r}: use one of {', '.join(FORMATS)}")
