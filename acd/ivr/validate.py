"""Checks a flow needs beyond its schema, each problem pointing at the line to fix.

The schema (``acd.ivr.model``) checks each field on its own. Here we check what only the
whole file (or the whole set of flows) can tell: references to nodes, schedules, languages
and flows that do not exist, nodes no call reaches, loops a caller can never leave,
variables nobody sets, prompts missing from the sounds directory. Pure: reads no network
or database, only the sounds directory when one is given.
"""

from __future__ import annotations

import difflib
import os
import re
from collections import deque
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path as FsPath

from acd.ivr.model import (
    BUILTIN_VARIABLES,
    OPERATORS,
    SOUND_EXTENSIONS,
    BranchNode,
    CallbackNode,
    CollectNode,
    Flow,
    HoursNode,
    LanguageNode,
    LookupNode,
    MenuNode,
    Path,
    QueueNode,
    SetNode,
    SourceMap,
    SubflowNode,
    TransferNode,
    parse_days,
    template_refs,
    value_refs,
)


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """One thing wrong with a flow file, rendered as ``file:line:column: field: message``."""

    file: str
    line: int
    column: int
    field_path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return (
            f"{where}: {self.field_path}: {self.message}"
            if self.field_path
            else (f"{where}: {self.message}")
        )


class FlowError(ValueError):
    """Flows that cannot be used; ``problems`` lists every one found, in file order."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = sorted(problems)
        count = len(self.problems)
        super().__init__(
            f"{count} problem{'s' if count != 1 else ''} in IVR flows:\n  "
            + "\n  ".join(str(p) for p in self.problems)
        )


@dataclass(frozen=True)
class Gaps:
    """Parts of a file that failed the schema: checks needing them are skipped, not failed.

    This lets one run report schema errors and reference errors together, without a
    broken node also showing up as "unknown node" wherever it is used.
    """

    fields: frozenset[str] = frozenset()
    nodes: frozenset[str] = frozenset()
    schedules: frozenset[str] = frozenset()
    prompts: frozenset[str] = frozenset()
    variables: frozenset[str] = frozenset()


def field_path(path: Path) -> str:
    """``('nodes', 'menu', 'choices', '1')`` as ``nodes.menu.choices.1``."""
    return ".".join(str(part) for part in path)


def expected(name: str, choices: Collection[str], *, limit: int = 12) -> str:
    """``(did you mean 'x'? expected one of: a, b, c)`` for a name not among ``choices``."""
    ordered = sorted(choices)
    close = difflib.get_close_matches(name, ordered, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    if not ordered:
        return f"({hint}none are defined)" if hint else "(none are defined)"
    shown = ", ".join(ordered[:limit]) + (", ..." if len(ordered) > limit else "")
    return f"({hint}expected one of: {shown})"


TERMINAL_WORDS = "a hangup, queue, transfer, voicemail or return"


def _language_folder(root: FsPath, lang: str) -> FsPath:
    """``root/lang``, following a symlink whose absolute target only exists in a chroot.

    Debian links ``sounds/en`` to ``/etc/alternatives/asterisk-prompt-en``; checked from
    outside a chroot or container image (the Asterisk test bed), that target is read
    relative to the image's root, the nearest ancestor of ``root`` where it exists.
    """
    folder = root / lang
    if folder.is_dir() or not folder.is_symlink():
        return folder
    for base in root.parents:
        current = folder
        for _ in range(16):  # a chain of links, like Debian's alternatives
            if not current.is_symlink():
                break
            target = os.readlink(current)
            current = (
                base / target.lstrip("/") if os.path.isabs(target) else current.parent / target
            )
        if current.is_dir():
            return current
    return folder


class _Checker:
    def __init__(
        self,
        flow: Flow,
        *,
        sounds_dir: FsPath | None,
        flows: Collection[str] | None,
        gaps: Gaps,
    ) -> None:
        self.flow = flow
        self.source = flow.source or SourceMap(file=f"<flow {flow.flow}>")
        self.sounds_dir = sounds_dir
        self.flows = flows
        self.gaps = gaps
        self.problems: list[Problem] = []
        self.dangling = False
        self._sound_index: dict[str, frozenset[str]] = {}

    def report(self, path: Path, message: str, *, key: bool = False) -> None:
        positions = self.source.positions
        parent = positions.get(path[:-1]) if path else None
        if path not in positions and parent is not None and not parent.collection:
            path = path[:-1]  # prompt.0 of a single 'prompt: name' is the prompt itself
        line, column = self.source.locate(path, key=key)
        self.problems.append(Problem(self.source.file, line, column, field_path(path), message))

    def run(self) -> list[Problem]:
        self.check_references()
        self.check_nodes()
        self.check_languages()
        self.check_schedules()
        self.check_variables()
        if self.sounds_dir is not None:
            self.check_sounds(self.sounds_dir)
        # A dangling reference also cuts the graph: its target would look unreachable.
        if not (self.gaps.nodes or {"start", "nodes"} & self.gaps.fields or self.dangling):
            self.check_graph()
        return self.problems

    # -- references ---------------------------------------------------------------------

    def node_exists(self, node_id: str) -> bool:
        if "nodes" in self.gaps.fields:
            return True
        return node_id in self.flow.nodes or node_id in self.gaps.nodes

    def unknown_node(self, path: Path, node_id: str) -> None:
        names = set(self.flow.nodes) | self.gaps.nodes
        self.dangling = True
        self.report(path, f"unknown node '{node_id}' {expected(node_id, names)}")

    def check_references(self) -> None:
        if "start" not in self.gaps.fields and not self.node_exists(self.flow.start):
            self.unknown_node(("start",), self.flow.start)
        for node_id, node in self.flow.nodes.items():
            base: Path = ("nodes", node_id)
            for rel, target in node.targets():
                if not self.node_exists(target):
                    self.unknown_node(base + rel, target)
            if isinstance(node, HoursNode) and "schedules" not in self.gaps.fields:
                names = set(self.flow.schedules) | self.gaps.schedules
                if node.schedule not in names:
                    self.report(
                        (*base, "schedule"),
                        f"unknown schedule '{node.schedule}' {expected(node.schedule, names)}",
                    )
            if (
                isinstance(node, SubflowNode)
                and self.flows is not None
                and node.flow not in self.flows
            ):
                self.report(
                    (*base, "flow"),
                    f"unknown flow '{node.flow}' {expected(node.flow, self.flows)}",
                )

    # -- relations inside one node -------------------------------------------------------

    def check_nodes(self) -> None:
        for node_id, node in self.flow.nodes.items():
            base: Path = ("nodes", node_id)
            if isinstance(node, CollectNode | CallbackNode) and node.min_length > node.max_length:
                self.report(
                    (*base, "max_length"),
                    f"max_length {node.max_length} is below min_length {node.min_length}",
                )
            if isinstance(node, CallbackNode) and node.confirm_key == node.retry_key:
                self.report(
                    (*base, "retry_key"),
                    f"retry_key and confirm_key are both '{node.retry_key}': "
                    "use two different keys",
                )
            if isinstance(node, BranchNode):
                self.check_branch(base, node)
            if isinstance(node, LookupNode):
                self.check_lookup(base, node)
            if isinstance(node, TransferNode):
                self.exactly_one(base, node, ("extension", "number"), "whom to ring")
            if isinstance(node, QueueNode):
                if node.on_timeout and node.max_wait is None:
                    self.report(
                        (*base, "on_timeout"), "on_timeout needs max_wait: the seconds to wait"
                    )
                if node.max_wait is not None and not node.on_timeout:
                    self.report(
                        (*base, "max_wait"), "max_wait needs on_timeout: where the caller goes then"
                    )

    def exactly_one(
        self,
        base: Path,
        model: object,
        names: Sequence[str],
        what: str,
        *,
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        attr = aliases or {}
        given = [n for n in names if getattr(model, attr.get(n, n)) is not None]
        if not given:
            self.report(base, f"say {what}: add one of {', '.join(names)}")
        elif len(given) > 1:
            self.report(
                (*base, given[1]),
                f"give only one of {', '.join(names)} (found {' and '.join(given)})",
                key=True,
            )

    def check_branch(self, base: Path, node: BranchNode) -> None:
        for i, case in enumerate(node.cases):
            self.exactly_one(
                (*base, "cases", i),
                case,
                OPERATORS,
                "how to compare",
                aliases={"in": "in_"},
            )

    def check_lookup(self, base: Path, node: LookupNode) -> None:
        self.exactly_one(base, node, ("sql", "http"), "where to look")
        if node.sql is not None:
            path: Path = (*base, "sql", "query")
            query = node.sql.query
            if not re.match(r"\s*(select|with)\b", query, re.I):
                self.report(path, "lookups only read: the query must be a SELECT")
            if "{" in query:
                self.report(
                    path,
                    "caller data must not be pasted into SQL: use :name placeholders "
                    "and give their values under params",
                )
            used = set(re.findall(r"(?<![:\w]):([A-Za-z_]\w*)", _strip_sql_strings(query)))
            for name in sorted(used - set(node.sql.params)):
                self.report(path, f"placeholder :{name} has no value under params")
            for name in sorted(set(node.sql.params) - used):
                self.report(
                    (*base, "sql", "params", name),
                    f"param '{name}' is not used in the query (expected :{name} in it)",
                    key=True,
                )
        if node.verify is not None and not (node.on_mismatch or node.on_not_found):
            self.report(
                (*base, "verify"),
                "a wrong PIN would go on to next like the right one: "
                "add on_mismatch (or on_not_found)",
                key=True,
            )
        if node.on_mismatch is not None and node.verify is None:
            self.report(
                (*base, "on_mismatch"),
                "on_mismatch needs verify: what to check, like "
                "{secret: '{pin}', against: pin_hash}",
                key=True,
            )
        if node.http is not None:
            url = node.http.url
            if not re.match(r"https?://", url):
                self.report((*base, "http", "url"), f"'{url}' is not an http:// or https:// URL")
            if node.http.body is not None and node.http.method == "GET":
                self.report(
                    (*base, "http", "body"),
                    "a GET request sends no body: use method: POST",
                    key=True,
                )

    # -- languages and prompts -----------------------------------------------------------

    def check_languages(self) -> None:
        if "languages" in self.gaps.fields:
            return
        langs = self.flow.languages
        known = set(langs.all)
        if langs.available and langs.default not in langs.available:
            self.report(
                ("languages", "default"),
                f"default language '{langs.default}' is not in available "
                f"({', '.join(langs.available)})",
            )
        if langs.fallback and langs.fallback not in known:
            self.report(
                ("languages", "fallback"),
                f"fallback language '{langs.fallback}' {expected(langs.fallback, known)}",
            )
        for name, entry in self.flow.prompts.items():
            if isinstance(entry, Mapping):
                for lang in entry:
                    if lang not in known:
                        self.report(
                            ("prompts", name, lang),
                            f"language '{lang}' is not one of this flow's languages "
                            f"{expected(lang, known)}",
                            key=True,
                        )
        for node_id, node in self.flow.nodes.items():
            if isinstance(node, LanguageNode):
                for digit, lang in node.choices.items():
                    if lang not in known:
                        self.report(
                            ("nodes", node_id, "choices", digit),
                            f"language '{lang}' is not one of this flow's languages "
                            f"{expected(lang, known)}: add it under languages.available",
                        )

    def sounds(self, root: FsPath, lang: str) -> frozenset[str]:
        """Prompt names (path without extension) recorded for ``lang``."""
        if lang not in self._sound_index:
            folder = _language_folder(root, lang)
            names: set[str] = set()
            for dirpath, _dirs, files in os.walk(folder):
                rel = os.path.relpath(dirpath, folder)
                for file in files:
                    stem, _, ext = file.rpartition(".")
                    if stem and ext in SOUND_EXTENSIONS:
                        names.add(stem if rel == "." else f"{rel}/{stem}".replace(os.sep, "/"))
            self._sound_index[lang] = frozenset(names)
        return self._sound_index[lang]

    def check_sounds(self, root: FsPath) -> None:
        if not root.is_dir():
            self.report((), f"sounds directory {root} does not exist")
            return
        if {"languages", "prompts"} & self.gaps.fields:
            return
        langs = self.flow.languages
        fallback = langs.fallback_language
        exts = ",".join(SOUND_EXTENSIONS)
        for path, prompt in self.prompt_uses():
            if prompt in self.gaps.prompts:
                continue
            missing: list[str] = []
            for lang in langs.all:
                file = self.flow.prompt_file(prompt, lang)
                if file in self.sounds(root, lang):
                    continue
                if self.flow.prompt_file(prompt, fallback) in self.sounds(root, fallback):
                    continue
                missing.append(f"{root / lang / file}.{{{exts}}}")
            if missing:
                shown = (
                    prompt
                    if prompt == self.flow.prompt_file(prompt, fallback)
                    else (f"{prompt} ({self.flow.prompt_file(prompt, fallback)})")
                )
                self.report(
                    path, f"prompt '{shown}' has no sound file: looked for {'; '.join(missing)}"
                )

    def prompt_uses(self) -> Iterator[tuple[Path, str]]:
        for node_id, node in self.flow.nodes.items():
            for rel, prompt in node.prompt_refs():
                yield ("nodes", node_id, *rel), prompt

    # -- schedules -----------------------------------------------------------------------

    def check_schedules(self) -> None:
        for name, schedule in self.flow.schedules.items():
            seen: dict[int, str] = {}
            for spec in schedule.weekly:
                for day in parse_days(spec):
                    if day in seen:
                        self.report(
                            ("schedules", name, "weekly", spec),
                            f"{_DAY_WORDS[day]} is listed twice (in '{seen[day]}' and '{spec}'): "
                            "put all of a day's hours in one list",
                            key=True,
                        )
                        break
                    seen[day] = spec
            dates: dict[str, int] = {}
            for i, holiday in enumerate(schedule.holidays):
                path: Path = ("schedules", name, "holidays", i)
                if holiday.recurring is False and holiday.date.startswith("--"):
                    self.report(
                        (*path, "recurring"),
                        f"{holiday.date} recurs every year: drop recurring or set it to true",
                    )
                key = holiday.day_key
                if key in dates:
                    self.report(
                        path, f"{key} is listed twice (also item {dates[key] + 1} of holidays)"
                    )
                dates.setdefault(key, i)

    # -- variables -----------------------------------------------------------------------

    def check_variables(self) -> None:
        if "variables" in self.gaps.fields:
            return
        known = set(BUILTIN_VARIABLES) | set(self.flow.variables) | self.gaps.variables
        for node in self.flow.nodes.values():
            known.update(node.assigns())
        # Only set values (and starting values) may be "= expressions"; elsewhere a
        # leading "=" is plain text.
        uses: list[tuple[Path, list[tuple[str, ...]]]] = [
            (("variables", name), value_refs(value)) for name, value in self.flow.variables.items()
        ]
        for node_id, node in self.flow.nodes.items():
            refs = value_refs if isinstance(node, SetNode) else template_refs
            uses.extend((("nodes", node_id, *rel), refs(text)) for rel, text in node.templates())
        for path, found in uses:
            for ref in found:
                message = _ref_problem(ref, known)
                if message:
                    self.report(path, message)

    # -- the graph -----------------------------------------------------------------------

    def check_graph(self) -> None:
        nodes = self.flow.nodes
        if self.flow.start not in nodes:
            return
        edges = {
            node_id: [t for _, t in node.targets() if t in nodes] for node_id, node in nodes.items()
        }
        reached = _reachable(self.flow.start, edges)
        for node_id in nodes:
            if node_id not in reached:
                self.report(
                    ("nodes", node_id),
                    f"node '{node_id}' is never reached from start '{self.flow.start}'",
                    key=True,
                )
        reverse: dict[str, list[str]] = {n: [] for n in nodes}
        for source, targets in edges.items():
            for target in targets:
                reverse[target].append(source)
        exits = [n for n, node in nodes.items() if node.ends_call]
        can_exit = set().union(*(_reachable(n, reverse) for n in exits)) if exits else set()
        trapped = [n for n in nodes if n in reached and n not in can_exit]
        order = {n: i for i, n in enumerate(nodes)}
        for component in _bottom_components(trapped, edges):
            first = min(component, key=order.__getitem__)
            cycle = _cycle(first, component, edges)
            others = sorted(component - set(cycle), key=order.__getitem__)
            also = f" (also stuck there: {', '.join(others)})" if others else ""
            menus = any(isinstance(nodes[n], MenuNode | LanguageNode) for n in component)
            hint = " (a menu leaves a loop only through on_failure)" if menus else ""
            self.report(
                ("nodes", first),
                f"calls loop forever: {' -> '.join(cycle)}{also}; no node in the loop leads to "
                f"{TERMINAL_WORDS}{hint}",
                key=True,
            )


_DAY_WORDS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _strip_sql_strings(query: str) -> str:
    """The query without quoted text, so ':' inside a string is no placeholder."""
    return re.sub(r"'(?:[^']|'')*'", "''", query)


def _ref_problem(ref: tuple[str, ...], known: Collection[str]) -> str | None:
    root = ref[0]
    if root not in known:
        return f"unknown variable '{root}' {expected(root, known)}"
    fields = BUILTIN_VARIABLES.get(root)
    if fields is None:
        return None
    choices = ", ".join(f"{root}.{f}" for f in sorted(fields))
    if len(ref) == 1:
        return f"'{root}' has fields: write one of {choices}"
    if ref[1] not in fields:
        return f"'{root}' has no field '{ref[1]}' (expected one of: {choices})"
    if len(ref) > 2:
        return f"'{root}.{ref[1]}' is text and has no field '{ref[2]}'"
    return None


def _reachable(start: str, edges: Mapping[str, Sequence[str]]) -> set[str]:
    seen = {start}
    queue = deque([start])
    while queue:
        for target in edges.get(queue.popleft(), ()):
            if target not in seen:
                seen.add(target)
                queue.append(target)
    return seen


def _bottom_components(nodes: Sequence[str], edges: Mapping[str, Sequence[str]]) -> list[set[str]]:
    """Strongly connected components of ``nodes`` that no edge leaves (Tarjan, iterative)."""
    members = set(nodes)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    for root in nodes:
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(edges[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            advanced = False
            for succ in successors:
                if succ not in members:
                    continue
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(edges[succ])))
                    advanced = True
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: set[str] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                components.append(component)
    return [
        c
        for c in components
        if all(t in c for n in c for t in edges[n] if t in members)
        and (len(c) > 1 or any(n in edges[n] for n in c))
    ]


def _cycle(first: str, component: set[str], edges: Mapping[str, Sequence[str]]) -> list[str]:
    """A loop from ``first`` back to itself inside ``component``, through another node
    when there is one (``a -> b -> a`` says more than ``a -> a``)."""
    for skip_self in (True, False):
        parent: dict[str, str] = {}
        queue = deque([first])
        while queue:
            node = queue.popleft()
            for succ in edges[node]:
                if succ not in component or (skip_self and succ == node):
                    continue
                if succ == first:
                    path = [node]
                    while path[-1] != first:
                        path.append(parent[path[-1]])
                    return [*reversed(path), first]
                if succ not in parent:
                    parent[succ] = node
                    queue.append(succ)
    return [first, first]


def validate_flow(
    flow: Flow,
    *,
    sounds_dir: FsPath | None = None,
    flows: Collection[str] | None = None,
    gaps: Gaps | None = None,
) -> list[Problem]:
    """Every problem with ``flow`` beyond its schema, in file order.

    ``flows`` are the names of the flows a subflow may call (``None``: not checked);
    ``sounds_dir`` holds ``<language>/<prompt>.<ext>`` files (``None``: not checked).
    """
    checker = _Checker(flow, sounds_dir=sounds_dir, flows=flows, gaps=gaps or Gaps())
    return sorted(checker.run())


def validate_flow_set(flows: Sequence[Flow]) -> list[Problem]:
    """Problems only the set of flows shows: subflows that end up calling themselves."""
    calls: dict[str, list[tuple[Flow, str, str]]] = {}
    by_name = {flow.flow: flow for flow in flows}
    for flow in flows:
        calls[flow.flow] = [
            (flow, node_id, node.flow)
            for node_id, node in flow.nodes.items()
            if isinstance(node, SubflowNode) and node.flow in by_name
        ]
    problems: list[Problem] = []
    reported: set[frozenset[str]] = set()
    for name in sorted(calls):
        for flow, node_id, callee in calls[name]:
            route = _call_path(callee, name, calls)
            if route is None:
                continue
            ring = frozenset([name, *route])
            if ring in reported:
                continue
            reported.add(ring)
            source = flow.source or SourceMap(file=f"<flow {flow.flow}>")
            path: Path = ("nodes", node_id, "flow")
            line, column = source.locate(path)
            chain = " -> ".join([name, *route])
            problems.append(
                Problem(
                    source.file,
                    line,
                    column,
                    field_path(path),
                    f"flow '{name}' ends up calling itself ({chain}): a subflow must not call "
                    "back into a flow that is still waiting for it; use return instead",
                )
            )
    return sorted(problems)


def _call_path(
    start: str, goal: str, calls: Mapping[str, Sequence[tuple[Flow, str, str]]]
) -> list[str] | None:
    parent: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        name = queue.popleft()
        if name == goal:
            path = [name]
            while (prev := parent[path[-1]]) is not None:
                path.append(prev)
            return list(reversed(path))
        for _, _, callee in calls.get(name, ()):
            if callee not in parent:
                parent[callee] = name
                queue.append(callee)
    return None
