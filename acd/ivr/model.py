"""IVR flow model: what a supervisor's YAML flow file means, checked field by field.

One file is one ``Flow``: a graph of nodes joined by node ids. Every model is frozen and
forbids unknown keys, so a typo is an error instead of a silently ignored setting. The
checks here look at one field at a time; relations between fields and nodes (dangling
references, loops, languages, schedules in use) live in ``acd.ivr.validate``, which can
name the exact line of each. Field descriptions feed the JSON Schema editors use.

Templates: text values may embed variables as ``{name}`` or ``{name.field}``; ``{{`` and
``}}`` stand for literal braces. ``set`` values starting with ``=`` are expressions.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import partial
from typing import Annotated, Any, ClassVar, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
)

# -- where things are in the source file -------------------------------------------------

PathPart = str | int
Path = tuple[PathPart, ...]


@dataclass(frozen=True, slots=True)
class Position:
    """Where a key and its value start (1-based line and column)."""

    line: int
    column: int
    key_line: int
    key_column: int
    collection: bool = False
    null: bool = False


@dataclass(frozen=True)
class SourceMap:
    """Line and column of every key and value of a loaded file, by field path.

    Kept beside a loaded ``Flow`` so later checks can point at the very line to fix.
    """

    file: str
    positions: Mapping[Path, Position] = field(default_factory=dict)

    def locate(self, path: Path, *, key: bool = False) -> tuple[int, int]:
        """Line and column for ``path``, or of its closest enclosing entry if it is absent.

        A key of its own (``key=True``), a mapping, a list or an empty value points at the
        key's line; a plain value points at the value itself.
        """
        for end in range(len(path), -1, -1):
            pos = self.positions.get(path[:end])
            if pos is None:
                continue
            if end < len(path) or key or pos.collection or pos.null:
                return pos.key_line, pos.key_column
            return pos.line, pos.column
        return 1, 1


# -- names and small value types -------------------------------------------------------

_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}\Z")
_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
_LANG = re.compile(r"[a-z]{2,3}(_[A-Z]{2})?\Z")
_PROMPT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*\Z")
SOUND_EXTENSIONS: tuple[str, ...] = ("gsm", "wav", "ulaw", "alaw", "sln", "sln16", "g722", "wav16")
DIGITS = "0123456789*#"

BUILTIN_VARIABLES: Mapping[str, frozenset[str]] = {
    "caller": frozenset({"number", "name"}),
    "dialed": frozenset({"number"}),
    "call": frozenset({"uniqueid", "channel", "language"}),
}
"""Variables every call has; their fields are fixed, so a typo in one is caught early."""

TERMINAL_KINDS: frozenset[str] = frozenset({"hangup", "queue", "transfer", "voicemail", "return"})
"""Kinds where the IVR lets go of the call: what a loop must be able to reach."""


def _check_id(value: str) -> str:
    if not _ID.match(value):
        raise ValueError(
            f"'{value}' is not a usable name: use letters, digits, '_' and '-', "
            "starting with a letter or '_' (at most 64 characters)"
        )
    return value


def _check_var(value: str) -> str:
    if not _VAR.match(value):
        raise ValueError(
            f"'{value}' is not a usable variable name: use letters, digits and '_', "
            "starting with a letter or '_'"
        )
    if value in BUILTIN_VARIABLES:
        fields = ", ".join(f"{value}.{f}" for f in sorted(BUILTIN_VARIABLES[value]))
        raise ValueError(f"'{value}' is built in ({fields}) and cannot be assigned")
    return value


def _check_lang(value: str) -> str:
    if not _LANG.match(value):
        raise ValueError(
            f"'{value}' is not a language code: use the sounds folder name, like en, de or pt_BR"
        )
    return value


def _check_prompt(value: str) -> str:
    if value.startswith("/"):
        raise ValueError(f"'{value}': prompt names are relative to the sounds directory")
    stem, dot, ext = value.rpartition(".")
    if dot and ext.lower() in SOUND_EXTENSIONS:
        raise ValueError(f"'{value}': leave out the file extension, write '{stem}'")
    if not _PROMPT.match(value) or ".." in value.split("/"):
        raise ValueError(
            f"'{value}' is not a prompt name: use letters, digits, '_', '-', '.' and '/' "
            "(like 'acme/welcome')"
        )
    return value


def _check_digit(value: str) -> str:
    if len(value) != 1 or value not in DIGITS:
        raise ValueError(f"'{value}' is not a key on the phone: use one of 0-9, * or #")
    return value


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone '{value}' (expected an IANA name like Europe/Berlin or UTC)"
        ) from None
    return value


def _as_text(value: Any) -> Any:
    """YAML reads ``1`` and ``true`` as number and boolean; compared values are text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


NodeId = Annotated[
    str,
    AfterValidator(_check_id),
    Field(json_schema_extra={"pattern": "^" + _ID.pattern[:-2] + "$"}),
]
Name = NodeId
VarName = Annotated[
    str,
    AfterValidator(_check_var),
    Field(json_schema_extra={"pattern": "^" + _VAR.pattern[:-2] + "$"}),
]
LangCode = Annotated[
    str,
    AfterValidator(_check_lang),
    Field(json_schema_extra={"pattern": "^[a-z]{2,3}(_[A-Z]{2})?$"}),
]
PromptName = Annotated[
    str,
    AfterValidator(_check_prompt),
    Field(description="sound file name without extension, relative to <sounds>/<language>/"),
]
Prompts = Annotated[
    tuple[PromptName, ...],
    BeforeValidator(_one_or_many, json_schema_input_type=str | list[str]),
    Field(min_length=1),
]
Digit = Annotated[
    str,
    BeforeValidator(_as_text),
    AfterValidator(_check_digit),
    Field(json_schema_extra={"pattern": "^[0-9*#]$"}),
]
Regex = Annotated[str, AfterValidator(_check_regex)]
Seconds = Annotated[float, Field(gt=0, le=3600)]
Retries = Annotated[int, Field(ge=0, le=9)]

# -- templates and expressions ---------------------------------------------------------

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_REF = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*\Z")


def template_refs(text: str) -> list[tuple[str, ...]]:
    """Variables a template uses, as dotted paths; raises ``ValueError`` if malformed."""
    refs: list[tuple[str, ...]] = []
    for match in _TOKEN.finditer(text):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        inner = match.group(1)
        if inner is None:
            raise ValueError(
                f"unbalanced '{token}' in '{text}' (write {{{{ or }}}} for a literal brace)"
            )
        inner = inner.strip()
        if not _REF.match(inner):
            raise ValueError(
                f"'{{{inner}}}' in '{text}' is not a variable: write {{name}} or {{name.field}}"
            )
        refs.append(tuple(inner.split(".")))
    return refs


def render_template(text: str, lookup: Mapping[str, Any]) -> str:
    """Fill a template from nested mappings; a missing variable renders as empty text."""

    def value(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        current: Any = lookup
        for part in match.group(1).strip().split("."):
            if isinstance(current, Mapping):
                current = current.get(part)
            elif isinstance(current, list | tuple) and part.isdigit() and int(part) < len(current):
                current = current[int(part)]
            else:
                return ""
        return "" if current is None else str(current)

    return _TOKEN.sub(value, text)


def _check_template(value: str) -> str:
    template_refs(value)
    return value


def _check_var_template(value: str) -> str:
    if not template_refs(value):
        raise ValueError(
            f"'{value}' is fixed text, so the result never changes: "
            f"write '{{{value}}}' to use the variable"
        )
    return value


Template = Annotated[
    str,
    BeforeValidator(_as_text),
    AfterValidator(_check_template),
    Field(json_schema_extra={"examples": ["{caller.number}", "prefix-{customer.segment}"]}),
]
VarTemplate = Annotated[str, BeforeValidator(_as_text), AfterValidator(_check_var_template)]

EXPRESSION_FUNCTIONS: frozenset[str] = frozenset(
    {"len", "int", "float", "str", "lower", "upper", "strip", "abs", "min", "max", "round"}
)
_EXPR_NODES: tuple[type[ast.AST], ...] = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.BinOp, ast.Add, ast.Sub, ast.Mult,
    ast.Div, ast.FloorDiv, ast.Mod, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd, ast.Compare,
    ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn, ast.Constant,
    ast.Name, ast.Attribute, ast.Subscript, ast.Slice, ast.Call, ast.List, ast.Tuple,
    ast.IfExp, ast.Load,
)  # fmt: skip


def expression_refs(text: str) -> list[tuple[str, ...]]:
    """Variables an ``= ...`` expression reads; raises ``ValueError`` for anything else.

    Expressions are a small, side-effect-free subset of Python: variables, numbers, text,
    arithmetic, comparisons, ``and``/``or``/``not``, ``x if c else y`` and a few functions.
    """
    source = text[1:].strip() if text.startswith("=") else text
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"expression '{source}' does not parse: {exc.msg}") from None
    refs: list[tuple[str, ...]] = []
    for node in ast.walk(tree):
        if not isinstance(node, _EXPR_NODES):
            raise ValueError(
                f"expression '{source}' uses {type(node).__name__}, which flows do not allow "
                "(allowed: variables, numbers, text, + - * / // %, comparisons, and, or, not, "
                f"x if c else y, and {', '.join(sorted(EXPRESSION_FUNCTIONS))})"
            )
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in EXPRESSION_FUNCTIONS:
                raise ValueError(
                    f"expression '{source}' calls {ast.unparse(node.func)}(), expected one "
                    f"of: {', '.join(sorted(EXPRESSION_FUNCTIONS))}"
                )
            if node.keywords:
                raise ValueError(f"expression '{source}': functions take no name=value arguments")
    calls = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    for node in ast.walk(tree):
        if id(node) in calls or id(node) in inner:
            continue
        path: list[str] = []
        current: ast.AST = node
        while isinstance(current, ast.Attribute):
            path.append(current.attr)
            current = current.value
        if isinstance(current, ast.Name) and (path or node is current):
            refs.append((current.id, *reversed(path)))
    return refs


def _check_set_value(value: Any) -> Any:
    if isinstance(value, str):
        if value.startswith("="):
            expression_refs(value)
        else:
            template_refs(value)
    elif value is not None and not isinstance(value, bool | int | float):
        raise ValueError("expected a single value: text, a number, true/false or an = expression")
    return value


SetValue = Annotated[
    str | bool | int | float | None,
    BeforeValidator(_check_set_value),
]


def value_refs(value: object) -> list[tuple[str, ...]]:
    """Variables a ``set`` value, template or expression reads."""
    if not isinstance(value, str):
        return []
    return expression_refs(value) if value.startswith("=") else template_refs(value)


# -- schedules -------------------------------------------------------------------------
# The same shape ``acd.core.hours.schedule_from_dict`` reads at run time, so a schedule
# that passes here is one the hours check can use.

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_LONG_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_NAMES = {name: i for names in (WEEKDAYS, _LONG_DAYS) for i, name in enumerate(names)}
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})\Z")
_FULL_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
_YEARLY_DATE = re.compile(r"--(\d{2})-(\d{2})\Z")


def parse_days(spec: str) -> tuple[int, ...]:
    """Weekday numbers (Monday = 0) of ``mon``, ``monday`` or a range like ``mon-fri``.

    A range may wrap past Sunday (``fri-mon``), as at run time.
    """
    names = [n.strip() for n in spec.lower().split("-")]
    if len(names) > 2 or not all(n in _DAY_NAMES for n in names):
        raise ValueError(
            f"'{spec}' is not a day: use {', '.join(WEEKDAYS)} (or monday..sunday) "
            "or a range like mon-fri"
        )
    first, last = _DAY_NAMES[names[0]], _DAY_NAMES[names[-1]]
    return tuple((first + n) % 7 for n in range((last - first) % 7 + 1))


def _check_days(value: str) -> str:
    parse_days(value)
    return value


def _clock(value: str, *, end: bool) -> str:
    match = _CLOCK.match(value.strip())
    if match:
        hours, minutes = int(match[1]), int(match[2])
        if (hours < 24 and minutes < 60) or (end and (hours, minutes) == (24, 0)):
            return f"{hours:02d}:{minutes:02d}"
    raise ValueError(
        f"'{value}' is not a time: write HH:MM, like 08:00"
        + (" (24:00 may end a day)" if end else "")
    )


def _interval(value: Any) -> Any:
    """``"08:00-12:00"`` as ``{start, end}``; the mapping form passes unchanged."""
    if isinstance(value, str):
        parts = re.split(r"\s*[-\u2013]\s*", value.strip())
        if len(parts) != 2:
            raise ValueError(f"'{value}' is not opening hours: write HH:MM-HH:MM, like 08:00-18:00")
        return {"start": parts[0], "end": parts[1]}
    return value


def _intervals(value: Any) -> Any:
    if value is None:
        raise ValueError("no hours given: write a list of HH:MM-HH:MM, or closed")
    if value == "closed":
        return []
    return [value] if isinstance(value, str | dict) else value


class _Model(BaseModel):
    """Frozen, and an unknown key is a typo, so it is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Interval(_Model):
    """Opening hours within a day; an end at or before the start runs into the next day."""

    start: Annotated[str, AfterValidator(partial(_clock, end=False))]
    end: Annotated[str, AfterValidator(partial(_clock, end=True))]

    def __str__(self) -> str:
        return f"{self.start}-{self.end}"


Intervals = Annotated[
    tuple[
        Annotated[Interval, BeforeValidator(_interval, json_schema_input_type=str | Interval)], ...
    ],
    BeforeValidator(_intervals, json_schema_input_type=str | Interval | list[str | Interval]),
]


def _check_holiday_date(value: str) -> str:
    if isinstance(value, str):
        yearly = _YEARLY_DATE.match(value)
        text = f"2000-{yearly[1]}-{yearly[2]}" if yearly else value  # 2000: --02-29 is valid
        if yearly or _FULL_DATE.match(value):
            try:
                date.fromisoformat(text)
            except ValueError:
                raise ValueError(f"'{value}' is not a day of the calendar") from None
            return value
    raise ValueError(f"'{value}' is not a date: write 2025-12-24, or --12-24 for every year")


def _date_text(value: Any) -> Any:
    if isinstance(value, datetime):
        raise ValueError(f"{value} has a time of day: give a date YYYY-MM-DD")
    return value.isoformat() if isinstance(value, date) else value


class Holiday(_Model):
    """A closed day, or a day with its own hours (Christmas Eve until noon)."""

    date: Annotated[str, BeforeValidator(_date_text), AfterValidator(_check_holiday_date)] = Field(
        description="YYYY-MM-DD for one day, --MM-DD for the same day every year"
    )
    hours: Intervals = Field(default=(), description="opening hours that day; none: closed")
    recurring: bool | None = Field(
        default=None, description="every year (implied by the --MM-DD form)"
    )
    name: str = Field(default="", description="what reports call it")

    @property
    def yearly(self) -> bool:
        return bool(self.recurring) or self.date.startswith("--")

    @property
    def day_key(self) -> str:
        """``--MM-DD`` for a yearly holiday, else the date: two equal keys are a duplicate."""
        return f"--{self.date[-5:]}" if self.yearly else self.date


def _holiday(value: Any) -> Any:
    return {"date": value} if isinstance(value, str | date) else value


class Schedule(_Model):
    """Opening times of a team: weekly hours and holidays, in one time zone."""

    timezone: Annotated[str, AfterValidator(_check_timezone)] = Field(
        description="IANA time zone the hours are in, like Europe/Berlin"
    )
    weekly: Mapping[Annotated[str, AfterValidator(_check_days)], Intervals] = Field(
        description="day or range (mon-fri) -> opening hours like 08:00-18:00, or closed; "
        "days not listed are closed"
    )
    holidays: tuple[
        Annotated[Holiday, BeforeValidator(_holiday, json_schema_input_type=str | Holiday)], ...
    ] = Field(default=(), description="dates whose hours replace the weekly ones")


class Languages(_Model):
    """Languages a flow speaks: prompts live in ``<sounds>/<language>/``."""

    default: LangCode = Field(default="en", description="language a call starts in")
    available: tuple[LangCode, ...] = Field(
        default=(), description="languages callers can choose; empty: only the default"
    )
    fallback: LangCode | None = Field(
        default=None,
        description="where a prompt missing in a language is taken from (default: default)",
    )

    @property
    def all(self) -> tuple[str, ...]:
        """Every language in use, the default first."""
        rest = tuple(lang for lang in self.available if lang != self.default)
        return (self.default, *rest)

    @property
    def fallback_language(self) -> str:
        return self.fallback or self.default


# -- nodes -----------------------------------------------------------------------------

Refs = Iterator[tuple[Path, str]]


class _Node(_Model):
    ends_call: ClassVar[bool] = False

    description: str = Field(default="", description="a note for the people who maintain the flow")

    def targets(self) -> Refs:
        """(field path, node id) of every node this one can continue with."""
        return iter(())

    def templates(self) -> Refs:
        """(field path, text) of every template or expression this node evaluates."""
        return iter(())

    def prompt_refs(self) -> Refs:
        """(field path, prompt name) of every prompt this node plays."""
        return iter(())

    def assigns(self) -> Iterator[str]:
        """Variables this node sets."""
        return iter(())


def _prompts(prefix: Path, prompts: tuple[str, ...] | None) -> Refs:
    for i, prompt in enumerate(prompts or ()):
        yield (*prefix, i), prompt


class NoInput(_Model):
    """What happens when the caller presses nothing."""

    seconds: Seconds = Field(default=5.0, description="how long to wait for a key after the prompt")
    retries: Retries = Field(default=2, description="how many more times the prompt is played")
    prompt: Prompts | None = Field(default=None, description="played before each retry")


class InvalidInput(_Model):
    """What happens when the caller presses a key that is not a choice."""

    retries: Retries = Field(default=2, description="how many more times the prompt is played")
    prompt: Prompts | None = Field(default=None, description="played before each retry")


class PlayNode(_Node):
    """Play one or more prompts, then continue."""

    kind: Literal["play"]
    prompt: Prompts = Field(description="one prompt, or a list played in order")
    interruptible: bool = Field(
        default=False, description="a key press stops the prompt (the key goes to the next menu)"
    )
    next: NodeId

    def targets(self) -> Refs:
        yield ("next",), self.next

    def prompt_refs(self) -> Refs:
        yield from _prompts(("prompt",), self.prompt)


class _Choosing(_Node):
    prompt: Prompts = Field(description="what the caller hears; it can be interrupted by a key")
    timeout: NoInput = Field(default_factory=NoInput, description="when no key is pressed")
    invalid: InvalidInput = Field(
        default_factory=InvalidInput, description="when a key is not a choice"
    )

    def prompt_refs(self) -> Refs:
        yield from _prompts(("prompt",), self.prompt)
        yield from _prompts(("timeout", "prompt"), self.timeout.prompt)
        yield from _prompts(("invalid", "prompt"), self.invalid.prompt)


class MenuNode(_Choosing):
    """Offer keys to press, each leading to a node."""

    kind: Literal["menu"]
    choices: Mapping[Digit, NodeId] = Field(min_length=1, description="key -> node")
    on_failure: NodeId = Field(description="where the call goes when the retries run out")
    into: VarName | None = Field(default=None, description="variable that keeps the key pressed")

    def targets(self) -> Refs:
        for digit, target in self.choices.items():
            yield ("choices", digit), target
        yield ("on_failure",), self.on_failure

    def assigns(self) -> Iterator[str]:
        if self.into:
            yield self.into


class LanguageNode(_Choosing):
    """A menu that sets the call's language; later prompts are played in it."""

    kind: Literal["language"]
    choices: Mapping[Digit, LangCode] = Field(min_length=1, description="key -> language")
    next: NodeId
    on_failure: NodeId | None = Field(
        default=None,
        description="when retries run out (default: go on to next in the default language)",
    )

    def targets(self) -> Refs:
        yield ("next",), self.next
        if self.on_failure:
            yield ("on_failure",), self.on_failure


class CollectNode(_Node):
    """Read several digits (an account or PIN) into a variable."""

    kind: Literal["collect"]
    prompt: Prompts
    into: VarName = Field(description="variable that receives the digits")
    min_length: int = Field(default=1, ge=1, le=64)
    max_length: int = Field(default=20, ge=1, le=64)
    terminator: Literal["#", "*"] | None = Field(
        default="#", description="key that ends the input early (null: none)"
    )
    timeout: Seconds = Field(default=5.0, description="seconds to wait for each digit")
    pattern: Regex | None = Field(
        default=None, description="regular expression the whole input must match"
    )
    retries: Retries = 2
    invalid_prompt: Prompts | None = Field(default=None, description="played before each retry")
    secret: bool = Field(
        default=False, description="a PIN or password: call records show **** instead of the digits"
    )
    next: NodeId
    on_failure: NodeId

    def targets(self) -> Refs:
        yield ("next",), self.next
        yield ("on_failure",), self.on_failure

    def prompt_refs(self) -> Refs:
        yield from _prompts(("prompt",), self.prompt)
        yield from _prompts(("invalid_prompt",), self.invalid_prompt)

    def assigns(self) -> Iterator[str]:
        yield self.into


class SayNode(_Node):
    """Speak a variable with Asterisk's built-in sounds: digits, a number or a date."""

    kind: Literal["say"]
    value: VarTemplate = Field(description="what to say, like '{account}'")
    say_as: Literal["digits", "number", "date"] = Field(alias="as")
    next: NodeId

    def targets(self) -> Refs:
        yield ("next",), self.next

    def templates(self) -> Refs:
        yield ("value",), self.value


class SetNode(_Node):
    """Give variables values: fixed, from a template, or from an ``= expression``."""

    kind: Literal["set"]
    variables: Mapping[VarName, SetValue] = Field(
        min_length=1, description="name -> value, '{template}' or '= expression'"
    )
    next: NodeId

    def targets(self) -> Refs:
        yield ("next",), self.next

    def templates(self) -> Refs:
        for name, value in self.variables.items():
            if isinstance(value, str):
                yield ("variables", name), value

    def assigns(self) -> Iterator[str]:
        yield from self.variables


OPERATORS: tuple[str, ...] = (
    "equals",
    "not_equals",
    "less_than",
    "greater_than",
    "at_least",
    "at_most",
    "in",
    "not_in",
    "matches",
)


class Case(_Model):
    """One condition of a branch: ``when`` compared with exactly one operator."""

    when: VarTemplate = Field(description="the value to test, like '{customer.segment}'")
    equals: Template | None = Field(default=None, description="same text")
    not_equals: Template | None = Field(default=None, description="different text")
    less_than: float | None = Field(default=None, description="a number below this")
    greater_than: float | None = Field(default=None, description="a number above this")
    at_least: float | None = Field(default=None, description="a number of at least this")
    at_most: float | None = Field(default=None, description="a number of at most this")
    in_: tuple[Template, ...] | None = Field(
        default=None, alias="in", description="one of these texts"
    )
    not_in: tuple[Template, ...] | None = Field(default=None, description="none of these texts")
    matches: Regex | None = Field(
        default=None, description="a regular expression searched for in the value"
    )
    then: NodeId = Field(description="where the call goes when the condition holds")

    def operators(self) -> list[str]:
        """The operators given (exactly one is valid)."""
        return [op for op in OPERATORS if getattr(self, "in_" if op == "in" else op) is not None]


class BranchNode(_Node):
    """Route on data: the first case that holds wins, otherwise ``else``."""

    kind: Literal["branch"]
    cases: tuple[Case, ...] = Field(min_length=1)
    else_: NodeId = Field(alias="else", description="where the call goes when no case holds")

    def targets(self) -> Refs:
        for i, case in enumerate(self.cases):
            yield ("cases", i, "then"), case.then
        yield ("else",), self.else_

    def templates(self) -> Refs:
        for i, case in enumerate(self.cases):
            yield ("cases", i, "when"), case.when
            for op in ("equals", "not_equals"):
                value = getattr(case, op)
                if value is not None:
                    yield ("cases", i, op), value
            for op, values in (("in", case.in_), ("not_in", case.not_in)):
                for j, value in enumerate(values or ()):
                    yield ("cases", i, op, j), value


class HoursNode(_Node):
    """Route by a schedule's opening hours."""

    kind: Literal["hours"]
    schedule: Name = Field(description="a name under schedules:")
    open: NodeId
    closed: NodeId
    holiday: NodeId | None = Field(default=None, description="on a holiday (default: closed)")

    def targets(self) -> Refs:
        yield ("open",), self.open
        yield ("closed",), self.closed
        if self.holiday:
            yield ("holiday",), self.holiday


class SqlLookup(_Model):
    """A read-only, parameterized PostgreSQL query; the first row is the result."""

    query: str = Field(
        min_length=1, description="SELECT with :name placeholders, never {templates}"
    )
    params: Mapping[VarName, Template] = Field(default={}, description="placeholder -> template")
    database: Name = Field(default="default", description="database connection the daemon knows")


class HttpLookup(_Model):
    """An HTTP call returning JSON; the decoded body is the result."""

    url: Template = Field(description="http(s) URL; {templates} are URL-encoded")
    method: Literal["GET", "POST"] = "GET"
    headers: Mapping[str, Template] = Field(default={})
    body: Mapping[str, Template] | None = Field(
        default=None, description="JSON object sent with POST"
    )


_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*\Z")


def _check_field(value: str) -> str:
    if not _FIELD.match(value):
        bare = value.strip().strip("{}").strip()
        hint = f": write {bare}" if _FIELD.match(bare) else ""
        raise ValueError(
            f"'{value}' is not a field name of the lookup's result (letters, digits and '_', "
            f"dotted for JSON, like pin_hash){hint}"
        )
    return value


class Verify(_Model):
    """Check what the caller keyed (a PIN) against a salted hash in the record found.

    The hash field never reaches the flow's variables or the call record.
    """

    secret: VarTemplate = Field(description="what the caller keyed, like '{pin}'")
    against: Annotated[str, AfterValidator(_check_field)] = Field(
        description="field of the result holding the hash (acd.ivr.pin.hash_pin), like pin_hash",
        json_schema_extra={"pattern": "^" + _FIELD.pattern[:-2] + "$"},
    )


class LookupNode(_Node):
    """Fetch data (a CRM record, an account) into a variable."""

    kind: Literal["lookup"]
    sql: SqlLookup | None = None
    http: HttpLookup | None = None
    into: VarName = Field(description="variable that receives the row or JSON object")
    timeout: Annotated[float, Field(gt=0, le=30)] = Field(
        default=3.0, description="seconds before the lookup counts as failed"
    )
    next: NodeId
    on_failure: NodeId = Field(description="on an error or timeout")
    on_not_found: NodeId | None = Field(
        default=None, description="no row, or HTTP 404 (default: next, with the variable empty)"
    )
    verify: Verify | None = Field(
        default=None,
        description="check a PIN against a hash field of the record; a mismatch is not found",
    )
    on_mismatch: NodeId | None = Field(
        default=None,
        description="when verify fails (default: on_not_found); the variable stays empty",
    )

    def targets(self) -> Refs:
        yield ("next",), self.next
        yield ("on_failure",), self.on_failure
        if self.on_not_found:
            yield ("on_not_found",), self.on_not_found
        if self.on_mismatch:
            yield ("on_mismatch",), self.on_mismatch

    def templates(self) -> Refs:
        if self.verify:
            yield ("verify", "secret"), self.verify.secret
        if self.sql:
            for name, value in self.sql.params.items():
                yield ("sql", "params", name), value
        if self.http:
            yield ("http", "url"), self.http.url
            for name, value in self.http.headers.items():
                yield ("http", "headers", name), value
            for name, value in (self.http.body or {}).items():
                yield ("http", "body", name), value

    def assigns(self) -> Iterator[str]:
        yield self.into


class GotoNode(_Node):
    """Continue at another node (to loop back to a menu, say)."""

    kind: Literal["goto"]
    to: NodeId

    def targets(self) -> Refs:
        yield ("to",), self.to


class SubflowNode(_Node):
    """Run another flow; when it reaches ``return``, continue with ``next``."""

    kind: Literal["subflow"]
    flow: Name = Field(description="the other flow's name (its flow: field)")
    next: NodeId

    def targets(self) -> Refs:
        yield ("next",), self.next


def _priority(value: Any) -> Any:
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ValueError("expected a priority: a whole number 0-99 or a template")
    if isinstance(value, str) and not template_refs(value):
        try:
            value = int(value)
        except ValueError:
            raise ValueError(f"'{value}' is not a priority: use a whole number 0-99") from None
    if isinstance(value, int) and not isinstance(value, bool) and not 0 <= value <= 99:
        raise ValueError(f"priority {value} is out of range: use 0-99 (higher is served first)")
    return value


class QueueNode(_Node):
    """Hand the call to an ACD queue, to be answered by an agent with the right skills."""

    ends_call: ClassVar[bool] = True

    kind: Literal["queue"]
    queue: Template = Field(description="queue name, may be a template like '{segment}_support'")
    skills: tuple[Template, ...] = Field(default=(), description="skills an agent needs")
    priority: Annotated[int | str, BeforeValidator(_priority)] = Field(
        default=0, description="0-99, higher is served first; may be a template"
    )
    max_wait: Seconds | None = Field(default=None, description="seconds before on_timeout")
    on_timeout: NodeId | None = Field(
        default=None, description="where a caller goes after max_wait"
    )

    def targets(self) -> Refs:
        if self.on_timeout:
            yield ("on_timeout",), self.on_timeout

    def templates(self) -> Refs:
        yield ("queue",), self.queue
        for i, skill in enumerate(self.skills):
            yield ("skills", i), skill
        if isinstance(self.priority, str):
            yield ("priority",), self.priority


_EXTENSION = re.compile(r"[A-Za-z0-9_*#+-]{1,40}\Z")
_NUMBER = re.compile(r"\+?[0-9]{3,20}\Z")


def _check_extension(value: str) -> str:
    if not template_refs(value) and not _EXTENSION.match(value):
        raise ValueError(f"'{value}' is not an extension: letters, digits, * and # only")
    return value


def _check_number(value: str) -> str:
    if not template_refs(value) and not _NUMBER.match(value):
        raise ValueError(
            f"'{value}' is not a phone number: digits with an optional leading +, "
            "no spaces or dashes (like +4930123456)"
        )
    return value


def _check_mailbox(value: str) -> str:
    if not template_refs(value) and not re.match(r"[A-Za-z0-9_-]+(@[A-Za-z0-9_-]+)?\Z", value):
        raise ValueError(f"'{value}' is not a mailbox: write 1234 or 1234@context")
    return value


class TransferNode(_Node):
    """Ring an internal extension or an external number (one of the two)."""

    ends_call: ClassVar[bool] = True

    kind: Literal["transfer"]
    extension: Annotated[Template, AfterValidator(_check_extension)] | None = None
    number: Annotated[Template, AfterValidator(_check_number)] | None = Field(
        default=None, description="external number, like +4930123456"
    )
    timeout: Seconds = Field(default=30.0, description="seconds to ring")
    on_failure: NodeId | None = Field(default=None, description="busy, no answer or unreachable")

    def targets(self) -> Refs:
        if self.on_failure:
            yield ("on_failure",), self.on_failure

    def templates(self) -> Refs:
        if self.extension is not None:
            yield ("extension",), self.extension
        if self.number is not None:
            yield ("number",), self.number


class VoicemailNode(_Node):
    """Let the caller leave a message."""

    ends_call: ClassVar[bool] = True

    kind: Literal["voicemail"]
    mailbox: Annotated[Template, AfterValidator(_check_mailbox)] = Field(
        description="1234 or 1234@context"
    )
    greeting: Literal["unavailable", "busy", "none"] = "unavailable"

    def templates(self) -> Refs:
        yield ("mailbox",), self.mailbox


class CallbackNode(_Node):
    """The caller keys a number to be called back on, hears it and confirms it."""

    kind: Literal["callback"]
    prompt: Prompts = Field(description="asks for the number")
    confirm_prompt: Prompts = Field(description="played after the number is read back")
    confirm_key: Digit = "1"
    retry_key: Digit = "2"
    min_length: int = Field(default=3, ge=1, le=20)
    max_length: int = Field(default=15, ge=1, le=20)
    timeout: Seconds = Field(default=5.0, description="seconds to wait for each digit")
    retries: Retries = 2
    queue: Template = Field(description="queue whose agents will call back")
    into: VarName | None = Field(default=None, description="variable that keeps the number")
    next: NodeId = Field(description="after the request is registered")
    on_failure: NodeId

    def targets(self) -> Refs:
        yield ("next",), self.next
        yield ("on_failure",), self.on_failure

    def templates(self) -> Refs:
        yield ("queue",), self.queue

    def prompt_refs(self) -> Refs:
        yield from _prompts(("prompt",), self.prompt)
        yield from _prompts(("confirm_prompt",), self.confirm_prompt)

    def assigns(self) -> Iterator[str]:
        if self.into:
            yield self.into


class HangupNode(_Node):
    """End the call, optionally after a last prompt."""

    ends_call: ClassVar[bool] = True

    kind: Literal["hangup"]
    prompt: Prompts | None = None

    def prompt_refs(self) -> Refs:
        yield from _prompts(("prompt",), self.prompt)


class ReturnNode(_Node):
    """Go back to the flow that called this one (from the dialplan: back to the dialplan)."""

    ends_call: ClassVar[bool] = True

    kind: Literal["return"]


NodeType = (
    PlayNode
    | MenuNode
    | CollectNode
    | SayNode
    | SetNode
    | BranchNode
    | HoursNode
    | LanguageNode
    | LookupNode
    | GotoNode
    | SubflowNode
    | QueueNode
    | TransferNode
    | VoicemailNode
    | CallbackNode
    | HangupNode
    | ReturnNode
)
Node = Annotated[NodeType, Field(discriminator="kind")]
NODE_KINDS: Mapping[str, type[_Node]] = {
    get_args(cls.model_fields["kind"].annotation)[0]: cls for cls in get_args(NodeType)
}


PromptFiles = Annotated[
    PromptName | Mapping[LangCode, PromptName],
    Field(union_mode="left_to_right"),
]


class Flow(_Model):
    """One IVR flow: a start node and the nodes it leads to."""

    flow: Name = Field(description="the flow's name, used by subflow nodes and routes")
    version: int = Field(default=1, ge=1, description="raise it with every published change")
    description: str = ""
    start: NodeId = Field(description="the first node a call reaches")
    languages: Languages = Field(default_factory=Languages)
    prompts: Mapping[PromptName, PromptFiles] = Field(
        default={}, description="prompt name -> sound file, or language -> sound file"
    )
    schedules: Mapping[Name, Schedule] = Field(default={})
    variables: Mapping[VarName, SetValue] = Field(
        default={},
        description="variables with their starting values (also those a caller flow sets)",
    )
    nodes: Mapping[NodeId, Node] = Field(min_length=1)

    _source: SourceMap | None = PrivateAttr(default=None)

    @property
    def source(self) -> SourceMap | None:
        """Where each field came from, when loaded from a file."""
        return self._source

    def with_source(self, source: SourceMap) -> Flow:
        """Attach the file positions (the model stays frozen for everything else)."""
        self._source = source
        return self

    def prompt_file(self, prompt: str, language: str) -> str:
        """The sound file a prompt name stands for in ``language``."""
        entry = self.prompts.get(prompt)
        if entry is None:
            return prompt
        if isinstance(entry, str):
            return entry
        return entry.get(language) or entry.get(self.languages.fallback_language) or prompt
