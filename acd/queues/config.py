"""The contact center's queues, agents and teams, as supervisors write them in one YAML file.

The file (``acd_queues.yaml``, format in ``deploy/QUEUES.md``) is read at start and again
whenever it is edited. An edit a supervisor makes must either go live completely or not at
all, and they must learn from one attempt everything that is wrong with it: so nothing stops
at the first error. Every problem is reported as ``file:line:column: field.path: message``
(with "did you mean" for typos of keys and names), and only a file without problems becomes
a ``CenterConfig`` made of the routing core's own ``QueueConfig`` and ``AgentConfig``.

YAML 1.2 (ruamel.yaml): ``no`` stays text, a duplicate key is an error instead of silently
replacing the first, and an agent id written as a bare number (``1001:``) is the text
``"1001"``, exactly as written (``0123`` keeps its zero).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from acd.core.routing.model import (
    MAX_LEVEL,
    MIN_LEVEL,
    VOICE,
    AgentConfig,
    QueueConfig,
    Stage,
    parse_skills,
)
from acd.ivr.validate import Problem, expected

__all__ = [
    "DEFAULT_QUEUES_FILE",
    "CenterConfig",
    "Problem",
    "QueuesConfigError",
    "load_queues",
    "parse_duration",
    "parse_queues",
    "parse_service_level",
]

DEFAULT_QUEUES_FILE = "acd_queues.yaml"
MAX_FILE_BYTES = 1_000_000
MAX_VALUES = 100_000  # aliases could otherwise blow a small file up exponentially
MEDIA = ("voice", "chat", "email")
MAX_CAPACITY = 50
#: Asterisk channel drivers an agent's phone can be dialled through (case-insensitive).
CHANNEL_TECHS = (
    "PJSIP",
    "SIP",
    "IAX2",
    "DAHDI",
    "Local",
    "Skinny",
    "MGCP",
    "UNISTIM",
    "OOH323",
    "Motif",
    "Console",
    "WebSocket",
    "AudioSocket",
)
DTMF_KEYS = "0123456789*#"

_TAG = "tag:yaml.org,2002:"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}\Z")
_AGENT_ID = re.compile(r"[A-Za-z0-9]{1,64}\Z")
_SKILL = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}\Z")
_MUSIC = re.compile(r"[A-Za-z0-9_-]{1,80}\Z")
_DEVICE = re.compile(r"([A-Za-z][A-Za-z0-9_]*)/(\S+)\Z")
_DURATION_PART = re.compile(
    r"\s*(\d+(?:\.\d+)?)\s*(hours?|hrs?|h|minutes?|mins?|m|seconds?|secs?|s)(?![a-z])", re.I
)
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0}
_SERVICE_LEVEL = re.compile(r"\s*(-?\d+(?:\.\d+)?)\s*%\s*(?:in|within|/)\s*(.+?)\s*\Z", re.I)
_HINTS = (
    ("found character '\\t'", "indent with spaces, not tabs"),
    ("found undefined alias", "'*' starts a YAML alias: quote it, like drop: \"*\""),
    (
        "expected alphabetic or numeric character",
        "'*' starts a YAML alias: quote it, like drop: \"*\"",
    ),
    ("mapping values are not allowed here", "quote text that contains ': '"),
)

Path_ = tuple[str | int, ...]


# -- public values ---------------------------------------------------------------------


class QueuesConfigError(ValueError):
    """A queues file that cannot be used; ``problems`` lists every one found, in file order."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = sorted(set(problems))
        count = len(self.problems)
        super().__init__(
            f"{count} problem{'s' if count != 1 else ''} in the queues file:\n  "
            + "\n  ".join(str(p) for p in self.problems)
        )


@dataclass(frozen=True)
class CenterConfig:
    """Everything the file configures, in the routing core's terms; immutable.

    ``teams`` maps each team to its members (agent ids, in file order), ``supervisors``
    each team that names one to its supervisor's id.
    """

    queues: Mapping[str, QueueConfig]
    agents: Mapping[str, AgentConfig]
    teams: Mapping[str, tuple[str, ...]]
    supervisors: Mapping[str, str] = field(default_factory=dict)
    source: str = ""
    sha256: str = ""


def parse_duration(value: object) -> float:
    """Seconds from ``90``, ``90.5``, ``"90s"``, ``"5m"``, ``"1m30s"``, ``"2h"``.

    Raises ValueError saying what was wrong; a negative time is one of those things.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a time like 90, 90s, 5m or 1m30s (got {value})")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _duration_text(value)
    else:
        raise ValueError(f"expected a time like 90, 90s, 5m or 1m30s (got {_shown(value)})")
    if not math.isfinite(seconds):
        raise ValueError(f"must be a finite time (got {value})")
    if seconds < 0:
        raise ValueError(f"must not be negative (got {value})")
    return seconds


def _duration_text(text: str) -> float:
    stripped = text.strip()
    bare = stripped.removeprefix("-")
    if re.fullmatch(r"\d+(?:\.\d+)?", bare):
        return float(stripped)
    negative = stripped.startswith("-")
    position, total, last_unit = 0, 0.0, math.inf
    while position < len(bare):
        match = _DURATION_PART.match(bare, position)
        unit = _UNIT_SECONDS[match.group(2)[0].lower()] if match else 0.0
        if not match or unit >= last_unit:
            raise ValueError(
                f"'{text}' is not a time: write seconds (90) or with units, like 90s, 5m, 1m30s"
            )
        total += float(match.group(1)) * unit
        last_unit, position = unit, match.end()
        position += len(bare[position:]) - len(bare[position:].lstrip())
    if position == 0:
        raise ValueError("expected a time like 90, 90s, 5m or 1m30s (got nothing)")
    return -total if negative else total


def parse_service_level(text: str) -> tuple[float, float]:
    """``"80% in 20s"`` -> ``(0.8, 20.0)``: the share of calls answered within the time.

    ``within`` or ``/`` work in place of ``in``. Raises ValueError saying what was wrong.
    """
    match = _SERVICE_LEVEL.match(text)
    if not match:
        raise ValueError(f"'{text}' is not a service level: write it like \"80% in 20s\"")
    percent = float(match.group(1))
    if not 0 <= percent <= 100:
        raise ValueError(f"the percentage must be 0-100 (got {match.group(1)}%)")
    seconds = parse_duration(match.group(2))
    if seconds <= 0:
        raise ValueError(f"the time must be more than 0 s (got {match.group(2)})")
    return percent / 100, seconds


# -- YAML with positions ---------------------------------------------------------------


@dataclass(eq=False)
class _Value:
    """One value of the file and where it and its key stand (1-based)."""

    data: Any  # a scalar, dict[str, _Value] or list[_Value]
    path: Path_
    line: int
    column: int
    key_line: int
    key_column: int
    raw: str = ""  # a scalar as written: 1001 is "1001", 0123 is "0123"

    @property
    def mapping(self) -> dict[str, _Value] | None:
        return self.data if isinstance(self.data, dict) else None

    @property
    def items(self) -> list[_Value] | None:
        return self.data if isinstance(self.data, list) else None

    @property
    def null(self) -> bool:
        return self.data is None

    def child(self, key: str) -> _Value | None:
        mapping = self.mapping
        return mapping.get(key) if mapping is not None else None

    def key(self, text: str) -> _Value:
        """The key this value stands under, as a value of its own (to check it as a name)."""
        return _Value(
            text, self.path, self.key_line, self.key_column, self.key_line, self.key_column, text
        )


class _TooBig(Exception):
    pass


class _Skip(Exception):
    """The value was wrong and its problem is recorded: leave this field out."""


class _Report:
    """Problems of one file, each placed at the key or value it is about."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def at(self, line: int, column: int, path: Path_, message: str) -> None:
        self.problems.append(
            Problem(self.file, line, column, ".".join(str(p) for p in path), message)
        )

    def value(self, value: _Value, message: str, *, key: bool = False) -> None:
        """At the value itself, or at its key for a key, a mapping, a list or nothing."""
        if key or value.null or isinstance(value.data, dict | list):
            self.at(value.key_line, value.key_column, value.path, message)
        else:
            self.at(value.line, value.column, value.path, message)

    def fail(self, value: _Value, message: str, *, key: bool = False) -> _Skip:
        self.value(value, message, key=key)
        return _Skip()


def _duplicate_message(path: Path_, key: str, first_line: int) -> str:
    sections: dict[Path_, str] = {("queues",): "queue", ("agents",): "agent", ("teams",): "team"}
    what = sections.get(path)
    if what:
        return f"{what} '{key}' is defined twice (first at line {first_line})"
    return f"'{key}' is given twice (first at line {first_line}): the second would silently win"


class _Composer:
    """Turns ruamel's node tree into ``_Value``s; reports duplicate keys and odd YAML."""

    def __init__(self, report: _Report) -> None:
        self.report = report
        self.count = 0
        self.active: set[int] = set()

    def build(self, node: Node, path: Path_, key_mark: tuple[int, int] | None) -> _Value:
        line, column = node.start_mark.line + 1, node.start_mark.column + 1
        key_line, key_column = key_mark or (line, column)
        self.count += 1
        if self.count > MAX_VALUES:
            raise _TooBig
        value = _Value(None, path, line, column, key_line, key_column)
        if id(node) in self.active:
            self.report.at(line, column, path, "an alias refers to the entry that contains it")
            return value
        if isinstance(node, ScalarNode):
            value.raw = str(node.value)
            value.data = self.scalar(node, path)
            return value
        self.active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                value.data = [
                    self.build(item, (*path, i), None) for i, item in enumerate(node.value)
                ]
            elif isinstance(node, MappingNode):
                value.data = self.mapping(node, path)
        finally:
            self.active.discard(id(node))
        return value

    def scalar(self, node: ScalarNode, path: Path_) -> Any:
        tag, text = node.tag, str(node.value)
        if tag in (_TAG + "str", _TAG + "timestamp"):
            return text
        if tag == _TAG + "null":
            return None
        if tag == _TAG + "bool":
            return text.lower() == "true"
        if tag == _TAG + "int":
            clean = text.replace("_", "").lower()
            if clean.lstrip("+-").startswith(("0o", "0x", "0b")):
                return int(clean, 0)
            return int(clean)
        if tag == _TAG + "float":
            lowered = text.lower().replace("_", "")
            if lowered.lstrip("+-") in (".inf", ".nan"):
                return float(lowered.replace(".", ""))
            return float(lowered)
        line, column = node.start_mark.line + 1, node.start_mark.column + 1
        self.report.at(line, column, path, f"YAML tag '{tag}' is not supported here")
        return text

    def mapping(self, node: MappingNode, path: Path_) -> dict[str, _Value]:
        result: dict[str, _Value] = {}
        first: dict[str, int] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                merges.append(value_node)
                continue
            line, column = key_node.start_mark.line + 1, key_node.start_mark.column + 1
            if not isinstance(key_node, ScalarNode) or key_node.tag == _TAG + "null":
                self.report.at(line, column, path, "a key must be a plain name, number or text")
                continue
            key = str(key_node.value)  # as written: agent 1001 is "1001"
            if key in first:
                message = _duplicate_message(path, key, first[key])
                self.report.at(line, column, (*path, key), message)
                continue
            first[key] = line
            result[key] = self.build(value_node, (*path, key), (line, column))
        for merge in merges:
            sources = merge.value if isinstance(merge, SequenceNode) else [merge]
            for source in sources:
                if not isinstance(source, MappingNode):
                    line, column = source.start_mark.line + 1, source.start_mark.column + 1
                    self.report.at(line, column, path, "'<<' merges a mapping (&anchor) only")
                    continue
                for key_node, value_node in source.value:
                    key = str(key_node.value)
                    if key not in result:
                        mark = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                        result[key] = self.build(value_node, (*path, key), mark)
        return result


def _compose(text: str, report: _Report) -> _Value | None:
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        report.at(1, 1, (), f"file is larger than {MAX_FILE_BYTES} bytes")
        return None
    try:
        root = YAML(typ="safe", pure=True).compose(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = exc.problem or exc.context or "invalid YAML"
        hint = next((h for needle, h in _HINTS if needle in what), "")
        report.at(line, column, (), f"YAML syntax: {what}" + (f" ({hint})" if hint else ""))
        return None
    except YAMLError as exc:
        report.at(1, 1, (), f"YAML syntax: {exc}")
        return None
    if root is None:
        report.at(1, 1, (), "the file is empty: it needs at least queues: (see deploy/QUEUES.md)")
        return None
    try:
        return _Composer(report).build(root, (), None)
    except _TooBig:
        report.at(1, 1, (), f"more than {MAX_VALUES} values (aliases expanding?)")
        return None


# -- plain values ----------------------------------------------------------------------


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _expect(r: _Report, v: _Value, what: str) -> _Skip:
    return r.fail(v, f"expected {what} (got {_shown(v.data)})")


def _duration(r: _Report, v: _Value, *, positive: bool = False) -> float:
    try:
        seconds = parse_duration(v.data)
    except ValueError as exc:
        raise r.fail(v, str(exc)) from None
    if positive and seconds == 0:
        raise r.fail(v, "must be more than 0 seconds")
    return seconds


def _bool(r: _Report, v: _Value) -> bool:
    if not isinstance(v.data, bool):
        raise _expect(r, v, "true or false")
    return v.data


def _whole(r: _Report, v: _Value, low: int, high: int) -> int:
    if isinstance(v.data, bool) or not isinstance(v.data, int):
        raise _expect(r, v, f"a whole number {low}-{high}")
    if not low <= v.data <= high:
        raise r.fail(v, f"must be {low}-{high} (got {v.data})")
    return v.data


def _text(r: _Report, v: _Value, *, numbers: bool = False) -> str:
    """A text value; with ``numbers`` a bare number counts as the text it is written as."""
    if isinstance(v.data, str):
        return v.data
    if numbers and isinstance(v.data, int) and not isinstance(v.data, bool):
        return v.raw
    raise _expect(r, v, "text")


def _name(r: _Report, v: _Value, what: str) -> str:
    text = _text(r, v)
    if not _NAME.match(text):
        raise r.fail(
            v,
            f"'{text}' is not a usable {what} name: use letters, digits, '_' and '-', "
            "starting with a letter (at most 64 characters)",
        )
    return text


def _agent_id(r: _Report, v: _Value, text: str, *, key: bool = False) -> str:
    if not _AGENT_ID.match(text):
        raise r.fail(v, f"'{text}' is not a usable agent id: use letters and digits only", key=key)
    return text


def _names(r: _Report, v: _Value, what: str) -> list[tuple[str, _Value]]:
    """A list of names (or one name on its own, or nothing), each once."""
    if v.null:
        return []
    items = [v] if isinstance(v.data, str) else v.items
    if items is None:
        raise _expect(r, v, f"a list of {what} names")
    out: list[tuple[str, _Value]] = []
    seen: set[str] = set()
    for item in items:
        try:
            name = _name(r, item, what) if what != "skill" else _skill_name(r, item)
        except _Skip:
            continue
        if name in seen:
            r.value(item, f"'{name}' is listed twice")
            continue
        seen.add(name)
        out.append((name, item))
    return out


def _skill_name(r: _Report, v: _Value) -> str:
    text = _text(r, v)
    if "{" in text:
        raise r.fail(v, f"'{text}' is not a skill name: templates belong in the IVR flow")
    if not _SKILL.match(text):
        raise r.fail(
            v,
            f"'{text}' is not a usable skill name: use letters, digits, '_', '.' and '-', "
            "starting with a letter",
        )
    return text


def _skills(r: _Report, v: _Value) -> dict[str, int]:
    """``[de, "loans:3"]``, ``{de: 5, loans: 3}`` or ``loans``: name -> level 1-10."""
    out: dict[str, int] = {}
    bad = False
    if v.null:
        return out
    if (entries := v.mapping) is not None:
        for skill, given in entries.items():
            if given.null and ":" in skill:
                head = skill.partition(":")[0]
                r.value(given, f"'{skill}' needs a space after ':', like {head}: 5", key=True)
                bad = True
                continue
            try:
                _skill_name(r, given.key(skill))
                out[skill] = _whole(r, given, MIN_LEVEL, MAX_LEVEL)
            except _Skip:
                bad = True
        if bad:
            raise _Skip
        return out
    items = [v] if isinstance(v.data, str) else v.items
    if items is None:
        raise _expect(r, v, "skills: a list like [de, loans:3] or a mapping like {de: 5}")
    for item in items:
        try:
            text = _text(r, item)
            parsed = parse_skills([text])
            if not parsed:
                raise r.fail(item, "must not be empty")
            ((name, level),) = parsed.items()
            _skill_name(
                r, _Value(name, item.path, item.line, item.column, item.line, item.column, name)
            )
        except ValueError as exc:
            r.value(item, str(exc))
            bad = True
            continue
        except _Skip:
            bad = True
            continue
        if name in out:
            r.value(item, f"skill '{name}' is listed twice")
            bad = True
            continue
        out[name] = level
    if bad:
        raise _Skip
    return out


def _fields(r: _Report, v: _Value, allowed: Sequence[str], what: str) -> dict[str, _Value]:
    """The entries of a mapping; unknown keys are reported with the closest known one."""
    entries = v.mapping
    if entries is None:
        raise _expect(r, v, f"{what}: a mapping (key: value lines)")
    for key, item in entries.items():
        if key not in allowed:
            r.value(item, f"unknown field '{key}' in {what} {expected(key, allowed)}", key=True)
    return {key: item for key, item in entries.items() if key in allowed}


# -- queues ----------------------------------------------------------------------------

_SETTINGS = (
    "service_level",
    "max_wait",
    "wrap_up",
    "ring_timeout",
    "selection",
    "aging",
    "announce",
    "music",
    "callback_key",
)
QUEUE_FIELDS = ("skills", "overflow", "stages", *_SETTINGS)
AGENT_FIELDS = ("name", "skills", "queues", "teams", "capacity", "device")
TOP_FIELDS = ("defaults", "queues", "agents", "teams")
SELECTIONS = ("longest_idle", "best_skill")


@dataclass
class _QueueDraft:
    """A queue's settings as far as they could be read, and where they were written."""

    name: str
    settings: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, _Value] = field(default_factory=dict)
    overflow_to: str | None = None
    overflow_to_at: _Value | None = None
    overflow_after_at: _Value | None = None
    stage_afters: list[tuple[float, _Value]] = field(default_factory=list)
    broken: set[str] = field(default_factory=set)

    def build(self) -> QueueConfig:
        return QueueConfig(name=self.name, **self.settings)


@dataclass
class _AgentDraft:
    """An agent as read, with where each queue and team it names was written."""

    fields: dict[str, _Value]
    items: dict[str, list[tuple[str, _Value]]] = field(default_factory=dict)
    agent: AgentConfig | None = None
    broken: set[str] = field(default_factory=set)

    def listed(self, key: str, names: list[tuple[str, _Value]]) -> tuple[str, ...]:
        self.items[key] = names
        return tuple(name for name, _ in names)


class _Loader:
    def __init__(self, report: _Report, text: str) -> None:
        self.r = report
        self.lines = text.splitlines()
        self.defaults: dict[str, Any] = {}

    # -- settings a queue and the defaults share

    def settings(self, fields: Mapping[str, _Value], out: dict[str, Any]) -> set[str]:
        """Read the shared settings into ``QueueConfig`` keywords; return the broken ones."""
        r = self.r
        readers: dict[str, Callable[[_Value], dict[str, Any]]] = {
            "service_level": self.service_level,
            "max_wait": lambda v: {"max_wait": None if v.null else _duration(r, v, positive=True)},
            "wrap_up": lambda v: {"wrap_up": _duration(r, v)},
            "ring_timeout": lambda v: {"ring_timeout": _duration(r, v, positive=True)},
            "selection": self.selection,
            "aging": lambda v: {"aging": _duration(r, v)},
            "announce": self.announce,
            "music": self.music,
            "callback_key": self.callback_key,
        }
        broken = set()
        for key, read in readers.items():
            if key in fields:
                try:
                    out.update(read(fields[key]))
                except _Skip:
                    broken.add(key)
        return broken

    def service_level(self, v: _Value) -> dict[str, Any]:
        if isinstance(v.data, str):
            try:
                level, seconds = parse_service_level(v.data)
            except ValueError as exc:
                raise self.r.fail(v, str(exc)) from None
            return {"service_level": level, "service_time": seconds}
        if v.mapping is None:
            raise _expect(self.r, v, 'a service level like "80% in 20s"')
        fields = _fields(self.r, v, ("percent", "seconds"), "service_level")
        missing = [k for k in ("percent", "seconds") if k not in fields]
        if missing:
            raise self.r.fail(
                v, f"missing {' and '.join(missing)}, as in {{percent: 80, seconds: 20}}"
            )
        percent = fields["percent"]
        if isinstance(percent.data, bool) or not isinstance(percent.data, int | float):
            raise _expect(self.r, percent, "a percentage 0-100")
        if not 0 <= percent.data <= 100:
            raise self.r.fail(percent, f"must be 0-100 (got {percent.data})")
        seconds = _duration(self.r, fields["seconds"], positive=True)
        return {"service_level": percent.data / 100, "service_time": seconds}

    def selection(self, v: _Value) -> dict[str, Any]:
        text = _text(self.r, v)
        if text not in SELECTIONS:
            raise self.r.fail(v, f"unknown selection '{text}' {expected(text, SELECTIONS)}")
        return {"selection": text}

    def announce(self, v: _Value) -> dict[str, Any]:
        if v.data is False:
            return {"announce_position": False, "announce_wait": False}
        if v.mapping is None:
            raise _expect(self.r, v, "{every: 30, position: true, wait: true} or false")
        fields = _fields(self.r, v, ("every", "position", "wait"), "announce")
        out: dict[str, Any] = {}
        readers: dict[str, tuple[str, Callable[[_Value], Any]]] = {
            "every": ("announce_every", lambda x: _duration(self.r, x, positive=True)),
            "position": ("announce_position", lambda x: _bool(self.r, x)),
            "wait": ("announce_wait", lambda x: _bool(self.r, x)),
        }
        bad = False
        for key, item in fields.items():
            target, read = readers[key]
            try:
                out[target] = read(item)
            except _Skip:
                bad = True
        if bad:
            raise _Skip
        return out

    def music(self, v: _Value) -> dict[str, Any]:
        text = _text(self.r, v)
        if not _MUSIC.match(text):
            raise self.r.fail(v, f"'{text}' is not a music-on-hold class name")
        return {"music_class": text}

    def callback_key(self, v: _Value) -> dict[str, Any]:
        if v.null:
            line = self.lines[v.key_line - 1] if v.key_line <= len(self.lines) else ""
            if line[v.key_column - 1 :].partition(":")[2].strip() == "#":
                raise self.r.fail(
                    v, "'#' starts a YAML comment, so no key is set: quote it, like \"#\""
                )
            return {"callback_key": None}
        text = _text(self.r, v, numbers=True)
        if len(text) != 1 or text not in DTMF_KEYS:
            raise self.r.fail(v, f"must be one key of 0-9, * or # (got {text!r})")
        return {"callback_key": text}

    # -- queues

    def queue(self, name: str, v: _Value) -> _QueueDraft | None:
        r = self.r
        try:
            _name(r, v.key(name), "queue")
        except _Skip:
            return None
        draft = _QueueDraft(name)
        if v.null:
            draft.settings.update(self.defaults)
            return draft
        try:
            fields = _fields(r, v, QUEUE_FIELDS, f"queue '{name}'")
        except _Skip:
            return None
        draft.fields = fields
        own: dict[str, Any] = {}
        draft.broken = self.settings(fields, own)
        draft.settings = {**self.defaults, **own}
        if "skills" in fields:
            try:
                draft.settings["skills"] = MappingProxyType(_skills(r, fields["skills"]))
            except _Skip:
                draft.broken.add("skills")
        if "overflow" in fields:
            try:
                self.overflow(fields["overflow"], draft)
            except _Skip:
                draft.broken.add("overflow")
        if "stages" in fields:
            try:
                draft.settings["stages"] = self.stages(fields["stages"], draft)
            except _Skip:
                draft.broken.add("stages")
        return draft

    def overflow(self, v: _Value, draft: _QueueDraft) -> None:
        if v.null:
            return
        fields = _fields(self.r, v, ("after", "to"), "overflow")
        missing = [k for k in ("after", "to") if k not in fields]
        if missing:
            raise self.r.fail(
                v, f"missing {' and '.join(missing)}, as in {{after: 120, to: other_queue}}"
            )
        after = _duration(self.r, fields["after"], positive=True)
        target = _name(self.r, fields["to"], "queue")
        if target == draft.name:
            raise self.r.fail(fields["to"], "a queue cannot overflow to itself")
        draft.settings["overflow_after"] = after
        draft.settings["overflow_to"] = target
        draft.overflow_to, draft.overflow_to_at = target, fields["to"]
        draft.overflow_after_at = fields["after"]

    def stages(self, v: _Value, draft: _QueueDraft) -> tuple[Stage, ...]:
        items = [] if v.null else v.items
        if items is None:
            raise _expect(self.r, v, "a list of stages like - {after: 30, drop: [de]}")
        stages: list[Stage] = []
        bad = False
        previous: float | None = None
        for item in items:
            try:
                stage = self.stage(item)
            except _Skip:
                bad = True
                previous = None
                continue
            after_value = item.child("after")
            assert after_value is not None
            if previous is not None and stage.after <= previous:
                self.r.value(
                    after_value,
                    f"stages go in increasing order of 'after': {stage.after:g} s does not "
                    f"come after the previous stage's {previous:g} s",
                )
                bad = True
            previous = stage.after
            draft.stage_afters.append((stage.after, after_value))
            stages.append(stage)
        if bad:
            raise _Skip
        return tuple(stages)

    def stage(self, v: _Value) -> Stage:
        r = self.r
        fields = _fields(r, v, ("after", "drop", "min_level"), "a stage")
        if "after" not in fields:
            raise r.fail(v, "missing 'after': the seconds in the queue from which it applies")
        bad = False
        try:
            after = _duration(r, fields["after"])
        except _Skip:
            bad = True
        drop: frozenset[str] = frozenset()
        if "drop" in fields:
            try:
                drop = self.drop(fields["drop"])
            except _Skip:
                bad = True
        min_level: Mapping[str, int] = MappingProxyType({})
        if "min_level" in fields:
            try:
                min_level = MappingProxyType(_skills(r, fields["min_level"]))
            except _Skip:
                bad = True
        if bad:
            raise _Skip
        if not drop and not min_level:
            raise r.fail(v, "this stage relaxes nothing: give drop: [skills] or min_level:")
        return Stage(after=after, drop=drop, min_level=min_level)

    def drop(self, v: _Value) -> frozenset[str]:
        if v.data == "*" or (v.items is not None and [i.data for i in v.items] == ["*"]):
            return frozenset({"*"})
        return frozenset(name for name, _ in _names(self.r, v, "skill"))

    # -- agents and teams

    def agent(self, agent_id: str, v: _Value) -> _AgentDraft | None:
        r = self.r
        try:
            _agent_id(r, v, agent_id, key=True)
            fields = _fields(r, v, AGENT_FIELDS, f"agent '{agent_id}'") if not v.null else {}
        except _Skip:
            return None
        draft = _AgentDraft(fields)
        out: dict[str, Any] = {}
        readers: dict[str, Callable[[_Value], Any]] = {
            "name": lambda x: _text(r, x, numbers=True),
            "skills": lambda x: MappingProxyType(_skills(r, x)),
            "queues": lambda x: draft.listed("queues", _names(r, x, "queue")),
            "teams": lambda x: draft.listed("teams", _names(r, x, "team")),
            "capacity": self.capacity,
            "device": lambda x: None if x.null else self.device(x),
        }
        for key, item in fields.items():
            try:
                out[key] = readers[key](item)
            except _Skip:
                draft.broken.add(key)
        out.setdefault("capacity", MappingProxyType({VOICE: 1}))  # immutable, like the rest
        draft.agent = AgentConfig(id=agent_id, **out)
        return draft

    def capacity(self, v: _Value) -> Mapping[str, int]:
        fields = v.mapping
        if fields is None:
            raise _expect(self.r, v, "a mapping of media to a number, like {voice: 1, chat: 2}")
        out: dict[str, int] = {}
        bad = False
        for media, count in fields.items():
            if media not in MEDIA:
                self.r.value(count, f"unknown media '{media}' {expected(media, MEDIA)}", key=True)
                bad = True
                continue
            try:
                out[media] = _whole(self.r, count, 0, MAX_CAPACITY)
            except _Skip:
                bad = True
                continue
            if media == VOICE and out[media] > 1:
                self.r.value(count, "a phone takes one call at a time: voice capacity is 0 or 1")
                bad = True
        if bad:
            raise _Skip
        return MappingProxyType(out)

    def device(self, v: _Value) -> str:
        text = _text(self.r, v)
        match = _DEVICE.match(text)
        if not match:
            raise self.r.fail(
                v, f"'{text}' is not a dial string: write Tech/resource, like PJSIP/1001"
            )
        tech, resource = match.groups()
        known = {t.lower(): t for t in CHANNEL_TECHS}
        if tech.lower() not in known:
            raise self.r.fail(
                v, f"unknown channel technology '{tech}' {expected(tech, CHANNEL_TECHS, limit=6)}"
            )
        if re.search(r"[&,()|]", resource):
            raise self.r.fail(
                v, f"'{text}' is more than one phone: one device per agent, no '&', ',' or '|'"
            )
        return f"{known[tech.lower()]}/{resource}"

    def teams(self, v: _Value) -> dict[str, str | None]:
        """Team name -> supervisor id (None when not named)."""
        r = self.r
        out: dict[str, str | None] = {}
        if v.items is not None or isinstance(v.data, str):
            return {name: None for name, _ in _names(r, v, "team")}
        entries = v.mapping
        if entries is None:
            raise _expect(r, v, "a mapping of team names, like berlin: {supervisor: '2001'}")
        for name, item in entries.items():
            try:
                _name(r, item.key(name), "team")
                fields = {} if item.null else _fields(r, item, ("supervisor",), f"team '{name}'")
                boss = fields.get("supervisor")
                out[name] = None
                if boss is not None and not boss.null:
                    out[name] = _agent_id(r, boss, _text(r, boss, numbers=True))
            except _Skip:
                continue
        return out

    # -- the whole file

    def load(self, root: _Value, file: str, sha256: str) -> CenterConfig | None:
        r = self.r
        if root.mapping is None:
            r.at(
                root.line, root.column, (), "the queues file is a mapping: queues:, agents:, teams:"
            )
            return None
        top = _fields(r, root, TOP_FIELDS, "the queues file")
        if "defaults" in top:
            try:
                defaults = _fields(r, top["defaults"], _SETTINGS, "defaults")
                self.settings(defaults, self.defaults)
            except _Skip:
                pass
        drafts = self.queue_drafts(top, root)
        teams: dict[str, str | None] = {}
        teams_ok = True
        if "teams" in top and not top["teams"].null:
            try:
                teams = self.teams(top["teams"])
            except _Skip:
                teams_ok = False
        agents = self.agents(top, drafts, teams if teams_ok else None)
        self.check_queues(drafts)
        if r.problems:
            return None
        queues = {name: d.build() for name, d in drafts.items() if d is not None}
        members = {team: tuple(a.id for a in agents.values() if team in a.teams) for team in teams}
        return CenterConfig(
            queues=MappingProxyType(queues),
            agents=MappingProxyType(agents),
            teams=MappingProxyType(members),
            supervisors=MappingProxyType({t: s for t, s in teams.items() if s is not None}),
            source=file,
            sha256=sha256,
        )

    def queue_drafts(
        self, top: Mapping[str, _Value], root: _Value
    ) -> dict[str, _QueueDraft | None]:
        section = top.get("queues")
        if section is None:
            self.r.at(
                root.line, root.column, ("queues",), "missing 'queues:': define at least one queue"
            )
            return {}
        entries = section.mapping
        if entries is None or not entries:
            what = "a mapping of queue names" if entries is None else "at least one queue"
            self.r.value(section, f"expected {what}, like sales: {{skills: [loans]}}")
            return {}
        return {name: self.queue(name, item) for name, item in entries.items()}

    def agents(
        self,
        top: Mapping[str, _Value],
        drafts: Mapping[str, _QueueDraft | None],
        teams: Mapping[str, str | None] | None,
    ) -> dict[str, AgentConfig]:
        r = self.r
        section = top.get("agents")
        if section is None or section.null:
            return {}
        entries = section.mapping
        if entries is None:
            r.value(section, 'expected a mapping of agent ids, like "1001": {name: Anna}')
            return {}
        agents: dict[str, AgentConfig] = {}
        devices: dict[str, str] = {}
        for agent_id, item in entries.items():
            draft = self.agent(agent_id, item)
            if draft is None or draft.agent is None:
                continue
            agent = draft.agent
            agents[agent_id] = agent
            self.check_agent(draft, drafts, teams)
            if agent.device and not agent.device.startswith("Local/"):
                other = devices.setdefault(agent.device.lower(), agent_id)
                if other != agent_id:
                    r.value(
                        draft.fields["device"],
                        f"{agent.device} is also the phone of agent '{other}': "
                        "two agents on one phone would both be offered calls",
                    )
        return agents

    def check_agent(
        self,
        draft: _AgentDraft,
        drafts: Mapping[str, _QueueDraft | None],
        teams: Mapping[str, str | None] | None,
    ) -> None:
        r = self.r
        agent = draft.agent
        assert agent is not None
        for name, item in draft.items.get("queues", []):
            if name not in drafts:
                r.value(item, f"unknown queue '{name}' {expected(name, drafts)}")
                continue
            queue = drafts[name]
            if queue is None or {"skills", "stages"} & queue.broken or "skills" in draft.broken:
                continue
            lacking = _lacking(agent, queue.build())
            if lacking:
                r.value(
                    item,
                    f"agent '{agent.id}' never gets calls of '{name}': even after every "
                    f"stage, each call there requires {lacking}",
                )
        if teams is not None:
            for name, item in draft.items.get("teams", []):
                if name not in teams:
                    r.value(
                        item,
                        f"unknown team '{name}' {expected(name, teams)}: define it under teams:",
                    )

    def check_queues(self, drafts: Mapping[str, _QueueDraft | None]) -> None:
        r = self.r
        live = {name: d for name, d in drafts.items() if d is not None}
        for draft in live.values():
            max_wait = draft.settings.get("max_wait")
            self.check_overflow(draft, drafts, max_wait)
            if max_wait is not None:
                for stage_after, where in draft.stage_afters:
                    if stage_after >= max_wait:
                        r.value(
                            where,
                            f"this stage never applies: callers leave this queue at max_wait "
                            f"{max_wait:g} s",
                        )
        self.check_cycles(live)

    def check_overflow(
        self, draft: _QueueDraft, drafts: Mapping[str, _QueueDraft | None], max_wait: float | None
    ) -> None:
        r = self.r
        target, to_at, after_at = draft.overflow_to, draft.overflow_to_at, draft.overflow_after_at
        if target is None or to_at is None or after_at is None:
            return
        after = draft.settings["overflow_after"]
        if target not in drafts:
            r.value(to_at, f"unknown queue '{target}' {expected(target, drafts)}")
        if max_wait is not None and after >= max_wait:
            r.value(
                after_at,
                f"overflow after {after:g} s never happens: callers leave this queue at "
                f"max_wait {max_wait:g} s",
            )
            return
        other = drafts.get(target)
        if other is not None:
            their_wait = other.settings.get("max_wait")
            if their_wait is not None and after >= their_wait:
                r.value(
                    after_at,
                    f"calls reach '{target}' {after:g} s after they arrived, past its "
                    f"max_wait of {their_wait:g} s: they would time out at once",
                )

    def check_cycles(self, live: Mapping[str, _QueueDraft]) -> None:
        reported: set[str] = set()
        for start in live:
            chain = [start]
            while True:
                nxt = live[chain[-1]].overflow_to
                if nxt is None or nxt not in live or nxt in reported:
                    break
                if nxt in chain:
                    cycle = chain[chain.index(nxt) :]
                    if nxt == start:
                        where = live[start].overflow_to_at
                        assert where is not None
                        self.r.value(
                            where,
                            "calls overflow round in a circle: "
                            + " -> ".join([*cycle, nxt])
                            + ": end the chain in a queue without overflow",
                        )
                        reported.update(cycle)
                    break
                chain.append(nxt)


def _lacking(agent: AgentConfig, queue: QueueConfig) -> str:
    """What the agent lacks of the queue's own requirement once every stage is applied."""
    required = dict(queue.skills)
    for stage in queue.stages:
        if "*" in stage.drop:
            required.clear()
        for skill in stage.drop:
            required.pop(skill, None)
        for skill, level in stage.min_level.items():
            if skill in required:
                required[skill] = min(required[skill], level)
    missing = []
    for skill, level in sorted(required.items()):
        have = agent.skills.get(skill, 0)
        if have < level:
            has = f"this agent has {skill}:{have}" if have else "this agent lacks it"
            missing.append(f"{skill}:{level} ({has})")
    return ", ".join(missing)


# -- public API ------------------------------------------------------------------------


def parse_queues(text: str, file: str = "<queues>") -> CenterConfig:
    """Check ``text`` as a queues file named ``file``; raises ``QueuesConfigError``."""
    report = _Report(file)
    sha256 = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    root = _compose(text, report)
    config = _Loader(report, text).load(root, file, sha256) if root is not None else None
    if config is None or report.problems:
        raise QueuesConfigError(report.problems)
    return config


def load_queues(path: str | Path) -> CenterConfig:
    """Load and check the queues file; raises ``QueuesConfigError`` listing every problem.

    A missing, unreadable or empty file is one of those problems (at line 1).
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise QueuesConfigError(
            [Problem(str(file), 1, 1, "", f"not UTF-8 text ({exc.reason})")]
        ) from None
    except FileNotFoundError:
        raise QueuesConfigError(
            [Problem(str(file), 1, 1, "", "the queues file does not exist")]
        ) from None
    except OSError as exc:
        raise QueuesConfigError(
            [Problem(str(file), 1, 1, "", f"cannot read the file: {exc.strerror}")]
        ) from None
    return parse_queues(text, str(file))
