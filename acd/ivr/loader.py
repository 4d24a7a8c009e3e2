"""Load IVR flow files: YAML with line numbers, the schema, then ``acd.ivr.validate``.

A supervisor must learn from one run everything wrong with an edit, each at its line and
column, so nothing stops at the first error: YAML is composed into nodes that keep their
positions (ruamel.yaml, YAML 1.2: ``no`` stays text and ``17:30`` is not a number),
duplicate keys are reported instead of silently overwritten, every pydantic error is
mapped back to the key or value it is about, and the parts of a file that did pass the
schema still go through the reference checks.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path as FsPath
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from acd.ivr.model import NODE_KINDS, Flow, Path, Position, SourceMap
from acd.ivr.validate import (
    FlowError,
    Gaps,
    Problem,
    expected,
    field_path,
    validate_flow,
    validate_flow_set,
)
from acd.log import get_logger

__all__ = ["FlowError", "FlowSet", "Problem", "load_flow", "load_flows", "parse_flow"]

log = get_logger(__name__)

FLOW_SUFFIXES = (".yaml", ".yml")
MAX_FILE_BYTES = 2_000_000
MAX_VALUES = 200_000  # aliases could otherwise blow a small file up exponentially
_TAG = "tag:yaml.org,2002:"


# -- YAML with positions ---------------------------------------------------------------


@dataclass
class Parsed:
    """A YAML file as plain data, where each part of it was, and what was wrong."""

    file: str
    data: Any
    source: SourceMap
    problems: list[Problem] = field(default_factory=list)

    @property
    def flow_name(self) -> str | None:
        name = self.data.get("flow") if isinstance(self.data, dict) else None
        return name if isinstance(name, str) else None


class _Composer:
    """Turns ruamel's node tree into dicts, lists and scalars, recording positions."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.positions: dict[Path, Position] = {}
        self.problems: list[Problem] = []
        self.count = 0
        self.active: set[int] = set()

    def problem(self, path: Path, line: int, column: int, message: str) -> None:
        self.problems.append(Problem(self.file, line, column, field_path(path), message))

    def build(self, node: Node, path: Path, key_mark: tuple[int, int] | None) -> Any:
        line, column = node.start_mark.line + 1, node.start_mark.column + 1
        key_line, key_column = key_mark or (line, column)
        self.count += 1
        if self.count > MAX_VALUES:
            raise _TooBig
        if id(node) in self.active:
            self.problem(path, line, column, "an alias refers to the entry that contains it")
            return None
        is_null = isinstance(node, ScalarNode) and node.tag == _TAG + "null"
        self.positions[path] = Position(
            line,
            column,
            key_line,
            key_column,
            collection=isinstance(node, MappingNode | SequenceNode),
            null=is_null,
        )
        if isinstance(node, ScalarNode):
            return self.scalar(node, path)
        self.active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return [self.build(item, (*path, i), None) for i, item in enumerate(node.value)]
            assert isinstance(node, MappingNode)
            return self.mapping(node, path)
        finally:
            self.active.discard(id(node))

    def scalar(self, node: ScalarNode, path: Path) -> Any:
        tag, text = node.tag, node.value
        if tag in (_TAG + "str", _TAG + "timestamp"):
            return text
        if tag == _TAG + "null":
            return None
        if tag == _TAG + "bool":
            return text.lower() == "true"
        if tag == _TAG + "int":
            # 0301234567 and +4930123456 are phone numbers, not 301234567 and 4930123456.
            if re.fullmatch(r"[-+]?[0-9]+", text) and str(int(text)) != text:
                return text
            clean = text.replace("_", "").lower()
            if clean.startswith(("0o", "0x", "0b")):
                return int(clean, 0)
            return int(clean)
        if tag == _TAG + "float":
            lowered = text.lower().replace("_", "")
            if lowered.lstrip("+-") in (".inf", ".nan"):
                return float(lowered.replace(".", ""))
            return float(lowered)
        line, column = node.start_mark.line + 1, node.start_mark.column + 1
        self.problem(path, line, column, f"YAML tag '{tag}' is not supported in flows")
        return text

    def mapping(self, node: MappingNode, path: Path) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first: dict[str, int] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                merges.append(value_node)
                continue
            line, column = key_node.start_mark.line + 1, key_node.start_mark.column + 1
            if not isinstance(key_node, ScalarNode) or key_node.tag == _TAG + "null":
                self.problem(path, line, column, "a key must be a plain name, number or text")
                continue
            key = str(self.scalar(key_node, path))
            if key in result or key in first:
                self.problem(
                    (*path, key), line, column, _duplicate_message(path, key, first.get(key))
                )
                continue
            first[key] = line
            result[key] = self.build(value_node, (*path, key), (line, column))
        for merge in merges:
            sources = merge.value if isinstance(merge, SequenceNode) else [merge]
            for source in sources:
                if not isinstance(source, MappingNode):
                    line, column = source.start_mark.line + 1, source.start_mark.column + 1
                    self.problem(path, line, column, "'<<' merges a mapping (&anchor) only")
                    continue
                for key_node, value_node in source.value:
                    key = str(key_node.value)
                    if key not in result:
                        mark = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                        result[key] = self.build(value_node, (*path, key), mark)
        return result


class _TooBig(Exception):
    pass


def _duplicate_message(path: Path, key: str, first_line: int | None) -> str:
    where = f" (first at line {first_line})" if first_line else ""
    if path == ("nodes",):
        return f"node '{key}' is defined twice{where}: give one of them another id"
    if path and path[-1] == "choices":
        return f"key '{key}' is used twice in this menu{where}"
    return f"'{key}' is given twice{where}: the second would silently win"


_HINTS = (
    ("found character '\\t'", "indent with spaces, not tabs"),
    ("found undefined alias", "'*' starts a YAML alias: quote it, like '*': node_id"),
    ("mapping values are not allowed here", "quote text that contains ': '"),
)
_COMMENTED_CHOICE = re.compile(r"^(\s+)#\s*:\s*\S")


def parse_flow(text: str, file: str) -> Parsed:
    """Compose ``text`` into plain data with positions; syntax errors become problems."""
    yaml = YAML(typ="safe", pure=True)
    composer = _Composer(file)
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        composer.problem((), 1, 1, f"file is larger than {MAX_FILE_BYTES} bytes")
        return Parsed(file, None, SourceMap(file), composer.problems)
    try:
        root = yaml.compose(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = exc.problem or exc.context or "invalid YAML"
        hint = next((h for needle, h in _HINTS if needle in what), "")
        message = f"YAML syntax: {what}" + (f" ({hint})" if hint else "")
        composer.problem((), line, column, message)
        return Parsed(file, None, SourceMap(file), composer.problems)
    except YAMLError as exc:
        composer.problem((), 1, 1, f"YAML syntax: {exc}")
        return Parsed(file, None, SourceMap(file), composer.problems)
    if root is None:
        composer.problem((), 1, 1, "the file is empty: a flow needs flow:, start: and nodes:")
        return Parsed(file, None, SourceMap(file), composer.problems)
    try:
        data = composer.build(root, (), None)
    except _TooBig:
        composer.problem((), 1, 1, f"more than {MAX_VALUES} values (aliases expanding?)")
        return Parsed(file, None, SourceMap(file), composer.problems)
    source = SourceMap(file, composer.positions)
    _find_commented_keys(text, source, composer)
    return Parsed(file, data, source, composer.problems)


def _find_commented_keys(text: str, source: SourceMap, composer: _Composer) -> None:
    """``#: node`` in a menu looks like a choice but is a comment: say so."""
    for number, line in enumerate(text.splitlines(), start=1):
        match = _COMMENTED_CHOICE.match(line)
        if not match:
            continue
        column = len(match.group(1)) + 1
        parent = max(
            (
                (pos.key_line, path)
                for path, pos in source.positions.items()
                if pos.collection and pos.key_line < number and pos.key_column < column
            ),
            default=(0, ()),
        )[1]
        composer.problem(
            (*parent, "#"),
            number,
            column,
            "'#' starts a YAML comment, so this line is ignored: quote the key, like '#': node_id",
        )


# -- schema errors, in a supervisor's words --------------------------------------------

_TYPE_WORDS = {
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping (key: value lines)",
    "mapping_type": "a mapping (key: value lines)",
    "model_type": "a mapping (key: value lines)",
    "model_attributes_type": "a mapping (key: value lines)",
    "list_type": "a list",
    "tuple_type": "a list",
}
_LIMITS = {
    "greater_than": ("gt", "greater than"),
    "greater_than_equal": ("ge", "at least"),
    "less_than": ("lt", "less than"),
    "less_than_equal": ("le", "at most"),
}


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _strip_annotation(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is typing.Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(tp) if a is not type(None)]
            if len(members) != 1:
                return tp
            tp = members[0]
        else:
            return tp


def _fields_by_key(model: type[BaseModel]) -> dict[str, FieldInfo]:
    return {(info.alias or name): info for name, info in model.model_fields.items()}


def _raw_parent(loc: Sequence[str | int]) -> list[str | int]:
    return [part for part in loc if part != "[key]"][:-1]


def _model_at(loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model a (raw pydantic) location ends in, to name its fields in a message."""
    tp: Any = Flow
    for part in loc:
        tp = _strip_annotation(tp)
        origin = get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            info = _fields_by_key(tp).get(str(part))
            if info is None:
                return None
            tp = info.annotation
        elif origin in (dict, Mapping):
            tp = get_args(tp)[1]
        elif origin in (tuple, list):
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            members = [_strip_annotation(m) for m in get_args(tp)]
            if part in NODE_KINDS:
                tp = NODE_KINDS[str(part)]
            else:  # a member named like 'str' or 'dict[...]': the one whose name it starts
                named = [m for m in members if str(part).startswith(getattr(m, "__name__", "?"))]
                if len(named) != 1:
                    return None
                tp = named[0]
        else:
            return None
    tp = _strip_annotation(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


@dataclass
class _Located:
    path: Path
    key: bool
    union_at: int | None


def _locate_error(loc: Sequence[str | int], data: Any, missing: bool) -> _Located:
    """Map a pydantic location onto the file's data, dropping union tags and members."""
    path: list[str | int] = []
    current = data
    union_at: int | None = None
    key = False
    tagged = False
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if part == "[key]":
            key = True
            continue
        if isinstance(current, dict):
            is_node = len(path) == 2 and path[0] == "nodes"
            if is_node and not tagged and current.get("kind") == part:
                tagged = True
                continue
            if str(part) in current:
                path.append(str(part))
                current = current[str(part)]
                continue
            if last and missing:
                path.append(str(part))
                break
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            path.append(part)
            current = current[part]
            continue
        if union_at is None:
            union_at = len(path)
    return _Located(tuple(path), key, union_at)


def _describe(err: Mapping[str, Any], data: Any, source: SourceMap) -> tuple[Problem, _Located]:
    kind: str = err["type"]
    located = _locate_error(err["loc"], data, kind == "missing")
    path = located.path
    got = err.get("input")
    ctx = err.get("ctx") or {}
    key = located.key or kind == "extra_forbidden"
    if kind == "missing":
        name = str(path[-1]) if path else "?"
        model = _model_at(_raw_parent(err["loc"]))
        info = _fields_by_key(model).get(name) if model else None
        what = f": {info.description}" if info and info.description else ""
        owner = _owner(model)
        message = f"missing field '{name}'{owner}{what}"
    elif kind == "extra_forbidden":
        name = str(path[-1]) if path else "?"
        model = _model_at(_raw_parent(err["loc"]))
        allowed = sorted(_fields_by_key(model)) if model else []
        message = f"unknown field '{name}'{_owner(model)} {expected(name, allowed, limit=30)}"
    elif kind == "union_tag_invalid":
        tag = str(ctx.get("tag", got))
        message = f"unknown kind '{tag}' {expected(tag, NODE_KINDS, limit=30)}"
        if isinstance(got, dict) and "kind" in got:
            path = (*path, "kind")
            key = False
    elif kind == "union_tag_not_found":
        message = f"missing 'kind' {expected('', NODE_KINDS, limit=30)}"
        key = True
    elif kind in _TYPE_WORDS:
        word = _TYPE_WORDS[kind]
        if kind == "model_attributes_type" and len(path) == 2 and path[0] == "nodes":
            word = "a node: a mapping with kind: and its fields"
        message = f"expected {word} (got {_shown(got)})"
    elif kind == "literal_error":
        options = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        guess = _did_you_mean(str(got), options)
        message = f"expected {ctx.get('expected')} (got {_shown(got)}){guess}"
    elif kind in _LIMITS:
        name, words = _LIMITS[kind]
        message = f"must be {words} {ctx.get(name)} (got {_shown(got)})"
    elif kind in ("too_short", "string_too_short"):
        need = ctx.get("min_length", 1)
        message = "must not be empty" if need == 1 else f"needs at least {need} entries"
    elif kind in ("too_long", "string_too_long"):
        message = f"too long: at most {ctx.get('max_length')} allowed"
    elif kind in ("value_error", "assertion_error"):
        message = re.sub(r"^(Value error|Assertion failed), ", "", str(err["msg"]))
    else:
        message = f"{err['msg']} (got {_shown(got)})"
    line, column = source.locate(path, key=key)
    return Problem(source.file, line, column, field_path(path), message), located


def _did_you_mean(value: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(value, options, n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def _owner(model: type[BaseModel] | None) -> str:
    if model is None:
        return ""
    kind = model.model_fields.get("kind")
    if kind is not None:
        return f" in a {get_args(kind.annotation)[0]} node"
    return ""


def _schema_problems(exc: ValidationError, parsed: Parsed) -> list[Problem]:
    errors = exc.errors()
    described = [_describe(err, parsed.data, parsed.source) for err in errors]
    kinds = [str(err["type"]) for err in errors]
    # A value that fits none of a union's shapes fails once per shape; keep the error that
    # went deepest, or one "expected a or b" when every shape failed on the value itself.
    deeper = {
        (loc.path[: loc.union_at])
        for problem, loc in described
        if loc.union_at is not None and len(loc.path) > loc.union_at
    }
    # A list whose items failed is also "too short"; a typo is also a missing field.
    inside = {loc.path[:n] for _, loc in described for n in range(len(loc.path))}
    unknown: dict[Path, list[str]] = {}
    for (_, loc), kind in zip(described, kinds, strict=True):
        if kind == "extra_forbidden" and loc.path:
            unknown.setdefault(loc.path[:-1], []).append(str(loc.path[-1]))
    kept = [
        (problem, loc)
        for (problem, loc), kind in zip(described, kinds, strict=True)
        if not (kind == "too_short" and loc.path in inside)
        and not (
            kind == "missing"
            and loc.path
            and difflib.get_close_matches(str(loc.path[-1]), unknown.get(loc.path[:-1], []), n=1)
        )
        and not (loc.union_at is not None and len(loc.path) == loc.union_at and loc.path in deeper)
    ]
    merged: dict[tuple[str, int, int, str], list[str]] = {}
    for problem, _ in kept:
        slot = (problem.file, problem.line, problem.column, problem.field_path)
        if problem.message not in merged.setdefault(slot, []):
            merged[slot].append(problem.message)
    problems = []
    for (file, line, column, path), messages in merged.items():
        if len(messages) > 1 and all(m.startswith("expected ") for m in messages):
            wants = [m.split(" (got ")[0].removeprefix("expected ") for m in messages]
            message = f"expected {' or '.join(wants)} (got{messages[0].split(' (got', 1)[1]}"
            problems.append(Problem(file, line, column, path, message))
        else:
            problems.extend(Problem(file, line, column, path, m) for m in messages)
    return problems


# -- partial flows: what passed the schema still gets checked --------------------------


@cache
def _adapter(tp: Any) -> TypeAdapter[Any]:
    return TypeAdapter(tp)


_ENTRY_FIELDS = ("nodes", "schedules", "prompts", "variables")


def _partial_flow(data: dict[str, Any]) -> tuple[Flow, Gaps]:
    fields: dict[str, Any] = {}
    broken_fields: set[str] = set()
    broken: dict[str, set[str]] = {name: set() for name in _ENTRY_FIELDS}
    assigned: set[str] = set()
    for name, info in Flow.model_fields.items():
        key = info.alias or name
        if key not in data:
            continue
        raw = data[key]
        if name in _ENTRY_FIELDS and isinstance(raw, dict):
            key_type, value_type = get_args(_strip_annotation(info.annotation))
            good: dict[str, Any] = {}
            for entry, value in raw.items():
                try:
                    good[_adapter(key_type).validate_python(entry)] = _adapter(
                        value_type
                    ).validate_python(value)
                except ValidationError:
                    broken[name].add(entry)
                    if name == "variables":
                        assigned.add(entry)
                    elif name == "nodes" and isinstance(value, dict):
                        assigned.update(_raw_assigns(value))
            fields[name] = good
            continue
        try:
            fields[name] = _adapter(info.rebuild_annotation()).validate_python(raw)
        except ValidationError:
            broken_fields.add(name)
    placeholders: tuple[tuple[str, Any], ...] = (("flow", ""), ("start", ""), ("nodes", {}))
    for name, placeholder in placeholders:
        if name not in fields:
            fields[name] = placeholder
            broken_fields.add(name)
    gaps = Gaps(
        fields=frozenset(broken_fields),
        nodes=frozenset(broken["nodes"]),
        schedules=frozenset(broken["schedules"]),
        prompts=frozenset(broken["prompts"]),
        variables=frozenset(assigned),
    )
    return Flow.model_construct(**fields), gaps


def _raw_assigns(node: Mapping[str, Any]) -> Iterator[str]:
    if isinstance(node.get("into"), str):
        yield node["into"]
    variables = node.get("variables")
    if isinstance(variables, dict):
        yield from variables


# -- public API ------------------------------------------------------------------------


def _build(
    parsed: Parsed, *, sounds_dir: FsPath | None, flows: Iterable[str] | None
) -> tuple[Flow | None, list[Problem]]:
    problems = list(parsed.problems)
    if parsed.data is None:
        return None, problems
    if not isinstance(parsed.data, dict):
        problems.append(
            Problem(parsed.file, 1, 1, "", "a flow file is a mapping: flow:, start:, nodes: ...")
        )
        return None, problems
    known = None if flows is None else set(flows)
    try:
        flow = Flow.model_validate(parsed.data).with_source(parsed.source)
    except ValidationError as exc:
        problems.extend(_schema_problems(exc, parsed))
        partial, gaps = _partial_flow(parsed.data)
        partial.with_source(parsed.source)
        problems.extend(validate_flow(partial, sounds_dir=sounds_dir, flows=known, gaps=gaps))
        return None, _unique(problems)
    problems.extend(validate_flow(flow, sounds_dir=sounds_dir, flows=known))
    return (None if problems else flow), _unique(problems)


def _unique(problems: Iterable[Problem]) -> list[Problem]:
    return sorted(set(problems))


def _read(path: FsPath) -> tuple[str | None, Problem | None]:
    try:
        return path.read_text(encoding="utf-8"), None
    except UnicodeDecodeError as exc:
        return None, Problem(str(path), 1, 1, "", f"not UTF-8 text ({exc.reason})")
    except OSError as exc:
        return None, Problem(str(path), 1, 1, "", f"cannot read the file: {exc.strerror}")


def load_flow(path: str | FsPath, *, sounds_dir: str | FsPath | None = None) -> Flow:
    """Load and check one flow file; raises ``FlowError`` listing every problem.

    Subflow names are not checked here (that needs the other files): ``load_flows`` does.
    """
    file = FsPath(path)
    text, problem = _read(file)
    if text is None:
        raise FlowError([problem] if problem else [])
    sounds = FsPath(sounds_dir) if sounds_dir is not None else None
    flow, problems = _build(parse_flow(text, str(file)), sounds_dir=sounds, flows=None)
    if flow is None or problems:
        raise FlowError(problems)
    return flow


@dataclass(frozen=True)
class FlowSet(Mapping[str, Flow]):
    """Every flow of a directory by name; built only when all of them are valid."""

    flows: Mapping[str, Flow]
    files: tuple[FsPath, ...] = ()

    def __getitem__(self, name: str) -> Flow:
        return self.flows[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.flows)

    def __len__(self) -> int:
        return len(self.flows)

    def __repr__(self) -> str:
        return f"FlowSet({', '.join(sorted(self.flows))})"


def flow_files(paths: str | FsPath | Iterable[str | FsPath]) -> list[FsPath]:
    """The flow files named, with directories standing for their ``*.yaml``/``*.yml``."""
    items = [paths] if isinstance(paths, str | FsPath) else list(paths)
    files: list[FsPath] = []
    for item in map(FsPath, items):
        if item.is_dir():
            files.extend(sorted(p for p in item.iterdir() if p.suffix in FLOW_SUFFIXES))
        else:
            files.append(item)
    return files


def load_flows(
    paths: str | FsPath | Iterable[str | FsPath], *, sounds_dir: str | FsPath | None = None
) -> FlowSet:
    """Load and check every flow, and how they call each other; all-or-nothing.

    Raises ``FlowError`` with the problems of all files, so a reload can keep serving the
    flows it had and show the supervisor the complete list.
    """
    files = flow_files(paths)
    sounds = FsPath(sounds_dir) if sounds_dir is not None else None
    problems: list[Problem] = []
    parsed: list[Parsed] = []
    for file in files:
        text, problem = _read(file)
        if text is None:
            problems.extend([problem] if problem else [])
            continue
        parsed.append(parse_flow(text, str(file)))
    names: dict[str, Parsed] = {}
    for item in parsed:
        name = item.flow_name
        if name is None:
            continue
        if name in names:
            line, column = item.source.locate(("flow",))
            problems.append(
                Problem(
                    item.file,
                    line,
                    column,
                    "flow",
                    f"flow '{name}' is also defined in {names[name].file}: "
                    "flow names must be unique",
                )
            )
        else:
            names[name] = item
    flows: list[Flow] = []
    for item in parsed:
        flow, found = _build(item, sounds_dir=sounds, flows=names)
        problems.extend(found)
        if flow is not None:
            flows.append(flow)
    problems.extend(validate_flow_set(flows))
    if problems:
        log.warning("ivr_flows_rejected", files=len(files), problems=len(problems))
        raise FlowError(problems)
    log.info("ivr_flows_loaded", files=len(files), flows=len(flows))
    return FlowSet({flow.flow: flow for flow in flows}, tuple(files))
