"""IVR interpreter: runs one flow for one caller against an abstract call port.

Pure core: every effect on the call goes through ``CallPort`` (shaped after what AGI
offers), data comes from ``Lookup`` objects handed in, and the clock is the port's, so
the whole thing runs in unit tests without Asterisk and is later driven by FastAGI.

``Interpreter.run`` walks the nodes until one lets go of the call and returns an
``Outcome`` saying how the IVR ended (queue, transfer, voicemail, callback, hangup,
return to the dialplan, the caller hanging up, or an error). Every node visited is a
``Step`` appended to ``Interpreter.steps`` and passed to ``on_step``, so the path a caller
took can be stored and shown. Secrets a lookup returns (``pin_hash`` and the like) never
reach the flow's variables or the steps; a lookup's ``verify`` checks the caller's PIN
against such a hash (``acd.ivr.pin.verify_pin``, in a worker thread), and a ``secret``
collect records ``****`` instead of the digits.

Variables are nested: ``caller.number`` is ``variables["caller"]["number"]``, a lookup
into ``customer`` is ``variables["customer"]`` (a mapping; dotted result keys such as
``items.0.id`` are nested too).
"""

from __future__ import annotations

import ast
import asyncio
import math
import re
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal, Protocol

from acd.core.hours import Schedule, is_open, schedule_from_dict
from acd.ivr.lookup import (
    BAD_RESPONSE,
    TIMEOUT,
    UNAVAILABLE,
    Lookup,
    LookupFailed,
    LookupResult,
)
from acd.ivr.model import (
    DIGITS,
    BranchNode,
    CallbackNode,
    Case,
    CollectNode,
    Flow,
    GotoNode,
    HangupNode,
    HoursNode,
    LanguageNode,
    LookupNode,
    MenuNode,
    PlayNode,
    QueueNode,
    ReturnNode,
    SayNode,
    SetNode,
    SubflowNode,
    TransferNode,
    VoicemailNode,
)
from acd.ivr.model import Schedule as ScheduleModel
from acd.ivr.pin import verify_pin

__all__ = [
    "MASK",
    "MAX_DEPTH",
    "MAX_STEPS",
    "CallPort",
    "CallerHangup",
    "Interpreter",
    "Outcome",
    "OutcomeKind",
    "SayAs",
    "Step",
    "evaluate",
    "is_secret",
    "render",
]

MAX_STEPS = 500
"""Nodes one call may visit: a loop the validator could not rule out ends as an error."""
MAX_DEPTH = 8
"""Nested subflows one call may be in."""
MASK = "****"
"""What the call record shows for the digits of a ``secret`` collect (the same for any length)."""

SayAs = Literal["digits", "number", "date"]
OutcomeKind = Literal[
    "queue",
    "transfer",
    "voicemail",
    "callback",
    "hangup",
    "return",
    "caller_hangup",
    "error",
]


class CallerHangup(Exception):
    """Raised by a port when the caller has hung up; ends the run as ``caller_hangup``."""


class CallPort(Protocol):
    """What the interpreter does to a call; an AGI session or a test fake implements it."""

    async def play(self, prompts: Sequence[str], interrupt: str) -> str | None:
        """Play sound files in order; the key in ``interrupt`` that stopped them, or None."""
        ...

    async def read_digits(
        self, prompt: str | None, max_digits: int, timeout_ms: int, terminator: str | None
    ) -> tuple[str, bool]:
        """Play ``prompt`` (if any) and read up to ``max_digits`` keys: (digits, timed_out).

        ``terminator`` ends the input early and is not part of the digits.
        """
        ...

    async def say(self, kind: SayAs, value: str) -> None:
        """Speak ``value`` with the built-in sounds."""
        ...

    async def set_channel_variable(self, name: str, value: str) -> None: ...

    async def set_language(self, language: str) -> None:
        """Switch the channel's language: later sound files come from that folder."""
        ...

    def now(self) -> datetime:
        """The current time, timezone-aware (injected so business hours are testable)."""
        ...


@dataclass(frozen=True, slots=True)
class Step:
    """One node a call went through, as the call record keeps it."""

    seq: int
    flow: str
    flow_version: int
    node_id: str
    kind: str
    at: datetime
    digits: str = ""
    result: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How the IVR let go of the call; the fields that apply to ``kind`` are filled.

    ``on_timeout`` / ``on_failure`` name the node to resume at (``Interpreter.run(flow,
    node=...)``) when the queue wait runs out or the transfer fails. ``callback_number``
    is set whenever a callback was confirmed; a flow that ends with a hangup after it
    ends as ``callback``.
    """

    kind: OutcomeKind
    flow: str = ""
    node_id: str = ""
    queue: str = ""
    skills: tuple[str, ...] = ()
    priority: int = 0
    max_wait: float | None = None
    on_timeout: str | None = None
    destination: str = ""
    external: bool = False
    timeout: float | None = None
    on_failure: str | None = None
    mailbox: str = ""
    greeting: str = ""
    callback_number: str = ""
    callback_queue: str = ""
    reason: str = ""


# -- values, templates, expressions ------------------------------------------------------

_SECRET = re.compile(r"(^|[._])(pin|pin_hash|password|passwd|secret|token|api_key)$|_hash$", re.I)


def is_secret(key: str) -> bool:
    """Whether a lookup field must stay out of variables and records (``pin_hash``...)."""
    return bool(_SECRET.search(key))


def _text(value: Any) -> str:
    """A variable as a caller or a queue sees it: YAML and expression values as text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _get(variables: Mapping[str, Any], path: Sequence[str]) -> Any:
    current: Any = variables
    for part in path:
        if isinstance(current, Mapping):
            current = current.get(part)
        elif isinstance(current, list | tuple) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
    return current


_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")


def render(template: str, variables: Mapping[str, Any]) -> str:
    """Fill ``{name.field}`` from nested variables; an unset variable is empty text."""
    if "{" not in template and "}" not in template:
        return template

    def value(match: re.Match[str]) -> str:
        if match.group(1) is None:
            return match.group(0)[0]
        return _text(_get(variables, match.group(1).strip().split(".")))

    return _TOKEN.sub(value, template)


class ExpressionError(ValueError):
    """An ``= expression`` could not be computed for this call (bad types, bad value)."""


_MAX_TEXT = 10_000  # longest text or list an expression may build ("x" * digits)

_FUNCTIONS: Mapping[str, Callable[..., Any]] = {
    "len": len,
    "int": int,
    "float": float,
    "str": _text,
    "lower": lambda s: _text(s).lower(),
    "upper": lambda s: _text(s).upper(),
    "strip": lambda s: _text(s).strip(),
    "abs": abs,
    "min": min,
    "max": max,
    "round": round,
}

_BINARY: Mapping[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Mod: lambda a, b: a % b,
}
_COMPARE: Mapping[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: lambda a, b: bool(a == b),
    ast.NotEq: lambda a, b: bool(a != b),
    ast.Lt: lambda a, b: bool(a < b),
    ast.LtE: lambda a, b: bool(a <= b),
    ast.Gt: lambda a, b: bool(a > b),
    ast.GtE: lambda a, b: bool(a >= b),
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}


@lru_cache(maxsize=1024)
def _parse(source: str) -> ast.expr:
    return ast.parse(source, mode="eval").body


def evaluate(expression: str, variables: Mapping[str, Any]) -> Any:
    """Value of a ``set`` expression (``= attempts + 1``); raises ``ExpressionError``.

    The model has already restricted the syntax; this walks the tree itself instead of
    calling ``eval``, so nothing outside the allowed subset can ever run.
    """
    source = expression[1:].strip() if expression.startswith("=") else expression
    try:
        return _eval(_parse(source), variables)
    except ExpressionError:
        raise
    except (ArithmeticError, TypeError, ValueError, IndexError, KeyError, SyntaxError) as exc:
        raise ExpressionError(f"{type(exc).__name__}: {exc}") from None


def _repeats_too_far(a: Any, b: Any) -> bool:
    """``"x" * n`` would build more than ``_MAX_TEXT`` items (checked before building)."""
    for seq, n in ((a, b), (b, a)):
        if isinstance(seq, str | list) and isinstance(n, int) and len(seq) * n > _MAX_TEXT:
            return True
    return False


def _eval(node: ast.AST, env: Mapping[str, Any]) -> Any:
    match node:
        case ast.Constant(value=value):
            return value
        case ast.Name(id=name):
            return env.get(name)
        case ast.Attribute():
            path: list[str] = []
            current: ast.AST = node
            while isinstance(current, ast.Attribute):
                path.append(current.attr)
                current = current.value
            base = _eval(current, env)
            return _get({"": base}, ["", *reversed(path)])
        case ast.BoolOp(op=op, values=values):
            result: Any = None
            for item in values:
                result = _eval(item, env)
                if isinstance(op, ast.And) != bool(result):
                    return result
            return result
        case ast.UnaryOp(op=op, operand=operand):
            value = _eval(operand, env)
            if isinstance(op, ast.Not):
                return not value
            return -value if isinstance(op, ast.USub) else +value
        case ast.BinOp(left=left, op=op, right=right):
            a, b = _eval(left, env), _eval(right, env)
            if isinstance(op, ast.Mult) and _repeats_too_far(a, b):
                raise ExpressionError(f"result longer than {_MAX_TEXT}")
            result = _BINARY[type(op)](a, b)
            if isinstance(result, str | list | tuple) and len(result) > _MAX_TEXT:
                raise ExpressionError(f"result longer than {_MAX_TEXT}")
            return result
        case ast.Compare(left=left, ops=ops, comparators=comparators):
            a = _eval(left, env)
            for cmp, right in zip(ops, comparators, strict=True):
                b = _eval(right, env)
                if not _COMPARE[type(cmp)](a, b):
                    return False
                a = b
            return True
        case ast.IfExp(test=test, body=body, orelse=orelse):
            return _eval(body if _eval(test, env) else orelse, env)
        case ast.List(elts=elts) | ast.Tuple(elts=elts):
            return [_eval(item, env) for item in elts]
        case ast.Subscript(value=value, slice=index):
            container = _eval(value, env)
            if isinstance(index, ast.Slice):
                bounds = [None if b is None else _eval(b, env) for b in (index.lower, index.upper)]
                return container[bounds[0] : bounds[1]]
            return container[_eval(index, env)]
        case ast.Call(func=ast.Name(id=name), args=args) if name in _FUNCTIONS:
            return _FUNCTIONS[name](*(_eval(arg, env) for arg in args))
    raise ExpressionError(f"{type(node).__name__} is not allowed in an expression")


def _value(raw: Any, variables: Mapping[str, Any]) -> Any:
    """A ``set`` or starting value: fixed, ``{template}`` or ``= expression``."""
    if isinstance(raw, str):
        return evaluate(raw, variables) if raw.startswith("=") else render(raw, variables)
    return raw


def _nested(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` as ``{"a": {"b": 1}}``; a plain key wins over a dotted one."""
    out: dict[str, Any] = {}
    for key in sorted(flat, key=lambda k: -k.count(".")):
        value = flat[key]
        if isinstance(value, Mapping):
            value = _nested(value)
        *parents, last = key.split(".")
        target = out
        for part in parents:
            child = target.get(part)
            if not isinstance(child, dict):
                child = target[part] = {}
            target = child
        target[last] = value
    return out


def _flat(variables: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """Nested variables as the dotted text mapping lookups read."""
    for key, value in variables.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _flat(value, f"{name}.")
        else:
            yield name, _text(value)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _holds(case: Case, variables: Mapping[str, Any]) -> bool:
    """Whether one branch case holds; a non-number never satisfies a number comparison."""
    value = render(case.when, variables)
    if case.equals is not None:
        return value == render(case.equals, variables)
    if case.not_equals is not None:
        return value != render(case.not_equals, variables)
    if case.in_ is not None:
        return value in {render(item, variables) for item in case.in_}
    if case.not_in is not None:
        return value not in {render(item, variables) for item in case.not_in}
    if case.matches is not None:
        return re.search(case.matches, value) is not None
    number = _number(value)
    if number is None:
        return False
    if case.less_than is not None:
        return number < case.less_than
    if case.greater_than is not None:
        return number > case.greater_than
    if case.at_least is not None:
        return number >= case.at_least
    if case.at_most is not None:
        return number <= case.at_most
    return False


# Flow models are unhashable (they hold mappings), so the cache is keyed by identity and
# an entry goes when its flow is dropped (a reload), via the weak reference's callback.
_SCHEDULES: dict[int, tuple[weakref.ref[ScheduleModel], Schedule]] = {}


def _compiled_schedule(model: ScheduleModel, name: str) -> Schedule:
    """The evaluable form of a flow's schedule, built once per loaded flow, not per call."""
    key = id(model)
    entry = _SCHEDULES.get(key)
    if entry is not None and entry[0]() is model:
        return entry[1]

    def forget(ref: weakref.ref[ScheduleModel]) -> None:
        if key in _SCHEDULES and _SCHEDULES[key][0] is ref:
            del _SCHEDULES[key]

    data = model.model_dump(mode="json", exclude_none=True)
    schedule = schedule_from_dict(data, path=name)
    _SCHEDULES[key] = (weakref.ref(model, forget), schedule)
    return schedule


# -- the interpreter ---------------------------------------------------------------------


class _Stop(Exception):
    """Internal: the run ends with ``outcome``."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.kind)
        self.outcome = outcome


@dataclass(slots=True)
class _Visit:
    """What a node handler reports for its step and where the call goes next."""

    next: str | None = None
    result: str = ""
    digits: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    outcome: Outcome | None = None


@dataclass(frozen=True, slots=True)
class _Frame:
    flow: Flow
    resume: str  # node id in ``flow`` to continue at when the subflow returns


class Interpreter:
    """Runs flows for one call: its variables, language and path live here.

    ``lookups`` maps ``"flow.node"`` or plain ``"node"`` ids to the ``Lookup`` that
    serves that lookup node. ``variables`` are the call's starting values, nested or
    dotted (``{"caller.number": "+4930..."}``).
    """

    def __init__(
        self,
        flows: Mapping[str, Flow],
        port: CallPort,
        *,
        lookups: Mapping[str, Lookup] | None = None,
        variables: Mapping[str, Any] | None = None,
        on_step: Callable[[Step], None] | None = None,
        hangup_exceptions: tuple[type[BaseException], ...] = (),
        max_steps: int = MAX_STEPS,
        max_depth: int = MAX_DEPTH,
    ) -> None:
        self.flows = flows
        self.port = port
        self.lookups: Mapping[str, Lookup] = lookups or {}
        self.variables: dict[str, Any] = _nested(variables or {})
        for builtin in ("caller", "dialed", "call"):
            self.variables.setdefault(builtin, {})
        self.on_step = on_step
        self.hangup_exceptions: tuple[type[BaseException], ...] = (
            CallerHangup,
            *hangup_exceptions,
        )
        self.max_steps = max_steps
        self.max_depth = max_depth
        self.steps: list[Step] = []
        self.language = ""
        self.callback: tuple[str, str] | None = None  # (number, queue) once confirmed
        self.secrets: dict[str, dict[str, str]] = {}  # lookup variable -> withheld fields
        self._stack: list[_Frame] = []
        self._pending = ""  # a key that interrupted a play node, for the next input node

    # -- running ---------------------------------------------------------------------

    async def run(self, flow_name: str, *, node: str | None = None) -> Outcome:
        """Run ``flow_name`` from its start (or ``node``) until the IVR lets go of the call."""
        flow = self.flows.get(flow_name)
        if flow is None:
            return Outcome("error", flow=flow_name, reason=f"unknown flow '{flow_name}'")
        self._stack.clear()
        self._starting_values(flow, overwrite=node is None)
        current = node or flow.start
        try:
            if node is None:
                await self._start(flow)
            while True:
                if len(self.steps) >= self.max_steps:
                    return self._error(flow, current, f"step limit {self.max_steps} reached")
                flow, current = await self._step(flow, current)
        except _Stop as stop:
            return stop.outcome

    async def _start(self, flow: Flow) -> None:
        """Put the channel in the flow's default language before the first prompt."""
        try:
            await self._set_language(flow.languages.default)
        except self.hangup_exceptions:
            raise _Stop(Outcome("caller_hangup", flow=flow.flow, node_id=flow.start)) from None
        except Exception as exc:
            raise _Stop(self._error(flow, flow.start, f"{type(exc).__name__}: {exc}")) from exc

    def _starting_values(self, flow: Flow, *, overwrite: bool) -> None:
        """A flow's ``variables:``; a subflow's only fill in what its caller left unset."""
        for name, raw in flow.variables.items():
            if overwrite or name not in self.variables:
                try:
                    self.variables[name] = _value(raw, self.variables)
                except ExpressionError:
                    self.variables[name] = None

    def _error(self, flow: Flow, node_id: str, reason: str) -> Outcome:
        return Outcome("error", flow=flow.flow, node_id=node_id, reason=reason)

    async def _step(self, flow: Flow, node_id: str) -> tuple[Flow, str]:
        """Visit one node, record it, and say which node comes next."""
        node = flow.nodes.get(node_id)
        if node is None:
            self._record(flow, node_id, "?", _Visit(result="error"))
            raise _Stop(self._error(flow, node_id, f"unknown node '{node_id}'"))
        try:
            visit = await self._visit(flow, node_id, node)
        except self.hangup_exceptions:
            self._record(flow, node_id, node.kind, _Visit(result="caller_hangup"))
            raise _Stop(Outcome("caller_hangup", flow=flow.flow, node_id=node_id)) from None
        except _Stop:
            raise
        except Exception as exc:  # a bug or a broken port must not leave the caller hanging
            reason = f"{type(exc).__name__}: {exc}"
            self._record(flow, node_id, node.kind, _Visit(result="error", detail={"error": reason}))
            raise _Stop(self._error(flow, node_id, reason)) from exc
        self._record(flow, node_id, node.kind, visit)
        if visit.outcome is not None:
            raise _Stop(visit.outcome)
        if isinstance(node, SubflowNode):
            return self._enter(flow, node_id, node)
        if isinstance(node, ReturnNode):
            if not self._stack:
                raise _Stop(Outcome("return", flow=flow.flow, node_id=node_id))
            frame = self._stack.pop()
            return frame.flow, frame.resume
        assert visit.next is not None
        return flow, visit.next

    def _enter(self, flow: Flow, node_id: str, node: SubflowNode) -> tuple[Flow, str]:
        sub = self.flows.get(node.flow)
        if sub is None:
            raise _Stop(self._error(flow, node_id, f"unknown flow '{node.flow}'"))
        if len(self._stack) >= self.max_depth:
            raise _Stop(self._error(flow, node_id, f"subflow depth {self.max_depth} reached"))
        self._stack.append(_Frame(flow, node.next))
        self._starting_values(sub, overwrite=False)
        return sub, sub.start

    def _record(self, flow: Flow, node_id: str, kind: str, visit: _Visit) -> None:
        step = Step(
            seq=len(self.steps) + 1,
            flow=flow.flow,
            flow_version=flow.version,
            node_id=node_id,
            kind=kind,
            at=self.port.now(),
            digits=visit.digits,
            result=visit.result,
            detail=visit.detail,
        )
        self.steps.append(step)
        if self.on_step is not None:
            self.on_step(step)

    async def _visit(self, flow: Flow, node_id: str, node: Any) -> _Visit:
        match node:
            case PlayNode():
                return await self._play(flow, node)
            case MenuNode() | LanguageNode():
                return await self._choose(flow, node)
            case CollectNode():
                return await self._collect(flow, node)
            case SayNode():
                value = render(node.value, self.variables)
                if value:
                    await self.port.say(node.say_as, value)
                return _Visit(node.next, "said" if value else "empty")
            case SetNode():
                return self._set(node)
            case BranchNode():
                for i, case in enumerate(node.cases):
                    if _holds(case, self.variables):
                        return _Visit(case.then, f"case {i + 1}")
                return _Visit(node.else_, "else")
            case HoursNode():
                return self._hours(flow, node)
            case LookupNode():
                return await self._lookup(flow, node_id, node)
            case GotoNode():
                return _Visit(node.to, "goto")
            case SubflowNode():
                return _Visit(None, "call", detail={"flow": node.flow})
            case ReturnNode():
                return _Visit(None, "return")
            case CallbackNode():
                return await self._callback(flow, node)
            case QueueNode() | TransferNode() | VoicemailNode() | HangupNode():
                return await self._finish(flow, node_id, node)
        raise TypeError(f"no interpreter for node kind '{node.kind}'")

    # -- prompts and input -----------------------------------------------------------

    def _files(self, flow: Flow, prompts: Sequence[str] | None) -> list[str]:
        return [flow.prompt_file(p, self.language) for p in prompts or ()]

    async def _set_language(self, language: str) -> None:
        self.language = language
        self.variables["call"]["language"] = language
        await self.port.set_language(language)

    async def _ask(
        self,
        files: Sequence[str],
        max_digits: int,
        wait_s: float,
        terminator: str | None,
    ) -> tuple[str, bool]:
        """Prompt and read up to ``max_digits`` keys; a key may barge into the prompts."""
        timeout_ms = round(wait_s * 1000)
        first = self._pending
        self._pending = ""
        if not first and len(files) > 1:
            first = await self.port.play(files[:-1], DIGITS) or ""
        if first:
            if first == terminator:
                return "", False
            if max_digits == 1:
                return first, False
            rest, _ = await self.port.read_digits(None, max_digits - 1, timeout_ms, terminator)
            return first + rest, False
        return await self.port.read_digits(
            files[-1] if files else None, max_digits, timeout_ms, terminator
        )

    async def _play(self, flow: Flow, node: PlayNode) -> _Visit:
        key = await self.port.play(
            self._files(flow, node.prompt), DIGITS if node.interruptible else ""
        )
        if key:
            self._pending = key
        return _Visit(node.next, "interrupted" if key else "played", digits=key or "")

    async def _choose(self, flow: Flow, node: MenuNode | LanguageNode) -> _Visit:
        """A menu or language choice: one key, with separate retries for silence and
        wrong keys, each with its own prompt."""
        timeouts = invalids = 0
        pressed: list[str] = []
        prompt = files = self._files(flow, node.prompt)
        while True:
            key, _ = await self._ask(files, 1, node.timeout.seconds, None)
            if key in node.choices:
                pressed.append(key)
                choice = node.choices[key]
                detail = {"timeouts": timeouts, "invalid": invalids}
                if isinstance(node, LanguageNode):
                    await self._set_language(choice)
                    return _Visit(node.next, choice, "".join(pressed), detail)
                if node.into:
                    self.variables[node.into] = key
                return _Visit(choice, "choice", "".join(pressed), detail)
            if key:
                pressed.append(key)
                invalids += 1
                retries, retry_prompt = node.invalid.retries, node.invalid.prompt
                over = invalids > retries
            else:
                timeouts += 1
                retries, retry_prompt = node.timeout.retries, node.timeout.prompt
                over = timeouts > retries
            if over:
                detail = {"timeouts": timeouts, "invalid": invalids}
                if isinstance(node, LanguageNode):
                    target = node.on_failure or node.next
                    if self.language != flow.languages.default:
                        await self._set_language(flow.languages.default)
                else:
                    target = node.on_failure
                return _Visit(target, "failure", "".join(pressed), detail)
            files = [*self._files(flow, retry_prompt), *prompt]

    async def _collect(self, flow: Flow, node: CollectNode) -> _Visit:
        attempts: list[str] = []
        files = self._files(flow, node.prompt)
        for _ in range(node.retries + 1):
            digits, _ = await self._ask(files, node.max_length, node.timeout, node.terminator)
            attempts.append(digits)
            ok = node.min_length <= len(digits) <= node.max_length and (
                node.pattern is None or re.fullmatch(node.pattern, digits) is not None
            )
            if ok:
                self.variables[node.into] = digits
                shown = MASK if node.secret else digits
                return _Visit(node.next, "collected", shown, {"attempts": len(attempts)})
            files = [*self._files(flow, node.invalid_prompt), *self._files(flow, node.prompt)]
        typed = "".join(attempts)
        shown = MASK if node.secret and typed else typed
        return _Visit(node.on_failure, "failure", shown, {"attempts": len(attempts)})

    async def _callback(self, flow: Flow, node: CallbackNode) -> _Visit:
        """Read a number, say it back, and let the caller confirm or key it again."""
        prompt = self._files(flow, node.prompt)
        confirm = self._files(flow, node.confirm_prompt)
        keys = node.confirm_key + node.retry_key
        tried: list[str] = []
        for _ in range(node.retries + 1):
            number, _ = await self._ask(prompt, node.max_length, node.timeout, "#")
            tried.append(number)
            if not node.min_length <= len(number) <= node.max_length:
                continue
            await self.port.say("digits", number)
            answer = await self.port.play(confirm, keys)
            if not answer:
                answer, _ = await self.port.read_digits(None, 1, round(node.timeout * 1000), None)
            if answer == node.confirm_key:
                queue = render(node.queue, self.variables)
                self.callback = (number, queue)
                if node.into:
                    self.variables[node.into] = number
                return _Visit(node.next, "confirmed", number, {"queue": queue})
        return _Visit(node.on_failure, "failure", ",".join(tried), {"attempts": len(tried)})

    # -- data ------------------------------------------------------------------------

    def _set(self, node: SetNode) -> _Visit:
        detail: dict[str, Any] = {}
        for name, raw in node.variables.items():
            try:
                self.variables[name] = _value(raw, self.variables)
            except ExpressionError as exc:
                self.variables[name] = None
                detail[name] = f"expression failed: {exc}"
        return _Visit(node.next, "set", detail=detail)

    def _schedule(self, flow: Flow, name: str) -> Schedule:
        return _compiled_schedule(flow.schedules[name], name)

    def _hours(self, flow: Flow, node: HoursNode) -> _Visit:
        schedule = self._schedule(flow, node.schedule)
        now = self.port.now()
        if is_open(schedule, now):
            return _Visit(node.open, "open")
        if schedule.holiday(now.astimezone(schedule.zone).date()) is not None:
            return _Visit(node.holiday or node.closed, "holiday")
        return _Visit(node.closed, "closed")

    async def _lookup(self, flow: Flow, node_id: str, node: LookupNode) -> _Visit:
        lookup = self.lookups.get(f"{flow.flow}.{node_id}") or self.lookups.get(node_id)
        self.variables[node.into] = {}
        self.secrets.pop(node.into, None)
        try:
            if lookup is None:
                raise LookupFailed(UNAVAILABLE, "no lookup configured for this node")
            try:
                async with asyncio.timeout(node.timeout):
                    result: LookupResult = await lookup.lookup(dict(_flat(self.variables)))
            except TimeoutError:
                raise LookupFailed(TIMEOUT, f"no answer within {node.timeout:g}s") from None
        except LookupFailed as failure:
            detail = {"reason": failure.reason, "error": failure.detail}
            return _Visit(node.on_failure, "failed", detail=detail)
        if not result.found:
            return _Visit(node.on_not_found or node.next, "not_found")
        withheld = {node.verify.against} if node.verify else set()

        def hidden(key: str) -> bool:
            return key in withheld or is_secret(key)

        if node.verify is not None:
            stored = result.values.get(node.verify.against)
            if not stored:
                error = f"the result has no '{node.verify.against}' to verify against"
                return _Visit(
                    node.on_failure, "failed", detail={"reason": BAD_RESPONSE, "error": error}
                )
            typed = render(node.verify.secret, self.variables)
            matches = bool(typed) and await asyncio.to_thread(verify_pin, typed, stored)
            if not matches:
                target = node.on_mismatch or node.on_not_found or node.on_failure
                return _Visit(target, "pin_mismatch")
        public = {k: v for k, v in result.values.items() if not hidden(k)}
        self.secrets[node.into] = {k: v for k, v in result.values.items() if hidden(k)}
        self.variables[node.into] = _nested(public)
        found: dict[str, Any] = {"values": public}
        if node.verify is not None:
            found["verified"] = True
        return _Visit(node.next, "found", detail=found)

    # -- the end ---------------------------------------------------------------------

    async def _finish(
        self, flow: Flow, node_id: str, node: QueueNode | TransferNode | VoicemailNode | HangupNode
    ) -> _Visit:
        number, queue = self.callback or ("", "")
        common: dict[str, Any] = {
            "flow": flow.flow,
            "node_id": node_id,
            "callback_number": number,
            "callback_queue": queue,
        }
        v = self.variables
        match node:
            case QueueNode():
                priority, note = self._priority(node.priority)
                skills = tuple(s for s in (render(t, v) for t in node.skills) if s)
                outcome = Outcome(
                    "queue",
                    queue=render(node.queue, v),
                    skills=skills,
                    priority=priority,
                    max_wait=node.max_wait,
                    on_timeout=node.on_timeout,
                    **common,
                )
                detail = {"queue": outcome.queue, "skills": list(skills), "priority": priority}
                if note:
                    detail["note"] = note
                return _Visit(result="queue", detail=detail, outcome=outcome)
            case TransferNode():
                external = node.number is not None
                target = render(node.number or node.extension or "", v)
                outcome = Outcome(
                    "transfer",
                    destination=target,
                    external=external,
                    timeout=node.timeout,
                    on_failure=node.on_failure,
                    **common,
                )
                return _Visit(result="transfer", detail={"destination": target}, outcome=outcome)
            case VoicemailNode():
                box = render(node.mailbox, v)
                outcome = Outcome("voicemail", mailbox=box, greeting=node.greeting, **common)
                return _Visit(result="voicemail", detail={"mailbox": box}, outcome=outcome)
            case HangupNode():
                if node.prompt:
                    await self.port.play(self._files(flow, node.prompt), "")
                kind: OutcomeKind = "callback" if self.callback else "hangup"
                return _Visit(result=kind, outcome=Outcome(kind, **common))
        raise TypeError(node.kind)

    def _priority(self, raw: int | str) -> tuple[int, str]:
        """A queue priority from a number or template; what is not 0-99 becomes 0 or 99."""
        if isinstance(raw, int):
            return raw, ""
        text = render(raw, self.variables)
        number = _number(text)
        if number is None:
            return 0, f"priority '{text}' is not a number: 0"
        clamped = max(0, min(99, int(number)))
        return clamped, "" if clamped == number else f"priority {text} taken as {clamped}"
