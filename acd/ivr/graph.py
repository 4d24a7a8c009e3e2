"""Flow pictures: a flow as Graphviz DOT, for supervisors to see what callers go through.

Pure: builds text only. ``acd flows graph`` hands the text to Graphviz's ``dot`` to get
SVG or PNG. Every node is one box (id, kind, a short summary); every way a call can go
on is one edge, labelled with what makes it go there (a key, a condition, ``timeout``,
``on_failure``...). Nodes where the IVR lets go of the call are drawn doubled and
coloured, so the exits stand out; the start node hangs off a black dot.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from acd.ivr.model import (
    BranchNode,
    CallbackNode,
    Case,
    CollectNode,
    Flow,
    HangupNode,
    HoursNode,
    LanguageNode,
    LookupNode,
    MenuNode,
    Path,
    PlayNode,
    QueueNode,
    ReturnNode,
    SayNode,
    SetNode,
    SubflowNode,
    TransferNode,
    VoicemailNode,
)

__all__ = ["START", "edge_label", "flow_to_dot", "quote"]

START = "@start"
"""DOT id of the start marker: ``@`` cannot occur in a node id, so it never collides."""

MAX_TEXT = 44
"""Summary lines are cut here so boxes stay narrow enough to read."""

_TERMINAL_FILL = {
    "queue": "#c8e6c9",
    "transfer": "#bbdefb",
    "voicemail": "#ffe0b2",
    "hangup": "#e0e0e0",
    "return": "#e1bee7",
}
_DECISION_FILL = "#fff8e1"  # branch, hours, lookup: where the data decides
_PLAIN_FILL = "#ffffff"
_RETRY = ("retries", "retry")
_DECISIONS = frozenset({"branch", "hours", "lookup"})


def quote(text: str) -> str:
    """``text`` as a double-quoted DOT string; line breaks become centred DOT lines.

    Backslashes are doubled first, so a ``\\l`` or ``\\N`` typed in a flow stays literal
    text instead of turning into a Graphviz escape.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    escaped = (line.replace("\\", "\\\\").replace('"', '\\"') for line in lines)
    return '"' + "\\n".join(escaped) + '"'


def _cut(text: str, limit: int = MAX_TEXT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _prompts(prompts: Sequence[str] | None) -> str:
    return "♪ " + ", ".join(prompts) if prompts else ""


def _condition(case: Case) -> str:
    """A branch case as a short formula, like ``{segment} = vip``."""
    for op in ("equals", "not_equals", "less_than", "greater_than", "at_least", "at_most"):
        value = getattr(case, op)
        if value is not None:
            symbol = {"equals": "=", "not_equals": "≠", "less_than": "<"}.get(op)
            symbol = symbol or {"greater_than": ">", "at_least": "≥", "at_most": "≤"}[op]
            shown = f"{value:g}" if isinstance(value, float) else value
            return f"{case.when} {symbol} {shown}"
    if case.in_ is not None:
        return f"{case.when} in [{', '.join(case.in_)}]"
    if case.not_in is not None:
        return f"{case.when} not in [{', '.join(case.not_in)}]"
    return f"{case.when} ~ /{case.matches}/"


def edge_label(node: object, path: Path) -> str:
    """What sends a call along the edge at field ``path`` of ``node``."""
    head = path[0]
    if head == "choices":
        return str(path[1])
    if head == "cases" and isinstance(node, BranchNode):
        return _cut(_condition(node.cases[int(path[1])]), 36)
    if head == "next":
        if isinstance(node, LookupNode):
            return "found"
        if isinstance(node, SubflowNode):
            return "returned"
        if isinstance(node, CallbackNode):
            return "confirmed"
        return ""
    if head == "on_timeout" and isinstance(node, QueueNode) and node.max_wait:
        return f"on_timeout ({node.max_wait:g}s)"
    if head == "on_not_found":
        return "not found"
    if head == "on_mismatch":
        return "wrong PIN"
    if head == "to":
        return ""
    return str(head)


def _summary(flow: Flow, node: object) -> Iterator[str]:
    """The few facts about a node a supervisor needs to follow a call."""
    match node:
        case PlayNode():
            yield _prompts(node.prompt)
            if node.interruptible:
                yield "(a key skips it)"
        case MenuNode():
            yield _prompts(node.prompt)
            if node.into:
                yield f"key → {node.into}"
        case LanguageNode():
            yield _prompts(node.prompt)
            yield ", ".join(f"{key}: {lang}" for key, lang in node.choices.items())
        case CollectNode():
            yield _prompts(node.prompt)
            yield f"{node.min_length}-{node.max_length} digits → {node.into}"
        case SayNode():
            yield f"say {node.value} as {node.say_as}"
        case SetNode():
            for name, value in list(node.variables.items())[:4]:
                shown = value[1:].strip() if isinstance(value, str) and value[:1] == "=" else value
                yield f"{name} = {shown}"
            if len(node.variables) > 4:
                yield f"(+{len(node.variables) - 4} more)"
        case BranchNode():
            yield f"{len(node.cases)} case(s), first match wins"
        case HoursNode():
            schedule = flow.schedules.get(node.schedule)
            zone = f" ({schedule.timezone})" if schedule is not None else ""
            yield f"schedule {node.schedule}{zone}"
        case LookupNode():
            if node.sql is not None:
                yield f"SQL ({node.sql.database}) → {node.into}"
                yield node.sql.query
            elif node.http is not None:
                yield f"HTTP {node.http.method} → {node.into}"
                yield node.http.url
            if node.verify is not None:
                yield f"checks {node.verify.secret} against {node.verify.against}"
            yield f"timeout {node.timeout:g}s"
        case SubflowNode():
            yield f"runs flow '{node.flow}'"
        case QueueNode():
            yield f"queue {node.queue}"
            if node.skills:
                yield "skills: " + ", ".join(node.skills)
            yield f"priority {node.priority}"
            if node.max_wait:
                yield f"max wait {node.max_wait:g}s"
        case TransferNode():
            yield f"to {node.number or node.extension}, ring {node.timeout:g}s"
        case VoicemailNode():
            yield f"mailbox {node.mailbox}"
        case CallbackNode():
            yield _prompts(node.prompt)
            yield f"call back from queue {node.queue}"
        case HangupNode():
            yield _prompts(node.prompt)
        case ReturnNode():
            yield "back to the calling flow"


def _node_lines(flow: Flow, node_id: str, node: object) -> list[str]:
    kind = str(getattr(node, "kind", "?"))
    lines = [node_id, f"[{kind}]"]
    description = str(getattr(node, "description", ""))
    if description:
        lines.append(_cut(description))
    lines.extend(_cut(line) for line in _summary(flow, node) if line)
    return lines


def _node_attrs(kind: str, *, start: bool, ends_call: bool) -> str:
    if ends_call:
        attrs = f'peripheries=2, style="rounded,filled,bold", fillcolor="{_TERMINAL_FILL[kind]}"'
    elif kind == "subflow":
        attrs = 'shape=component, style="filled", fillcolor="#e8eaf6"'
    else:
        fill = _DECISION_FILL if kind in _DECISIONS else _PLAIN_FILL
        attrs = f'fillcolor="{fill}"'
    if start:
        attrs += ", penwidth=2.5"
    return attrs


def _retry_edges(node_id: str, node: object) -> Iterator[str]:
    """Self-loops for "ask again": a menu's timeout and invalid key, a collect's retries."""
    cases: tuple[tuple[str, int], ...]
    if isinstance(node, MenuNode | LanguageNode):
        cases = (("timeout", node.timeout.retries), ("invalid", node.invalid.retries))
    elif isinstance(node, CollectNode):
        cases = (("invalid", node.retries),)
    else:
        return
    # Separate sides keep the two loops and their labels apart.
    for (label, retries), side in zip(cases, ("e", "w"), strict=False):
        if retries:
            yield (
                f"  {quote(node_id)} -> {quote(node_id)} "
                f"[label={quote(f'{label}, {retries} {_RETRY[retries == 1]}')}, "
                f"tailport={side}, headport={side}, "
                'style=dashed, color="#9e9e9e", fontcolor="#616161"];'
            )


def flow_to_dot(flow: Flow) -> str:
    """Graphviz DOT text of ``flow``: one box per node, one labelled edge per way on."""
    title = f"flow {flow.flow} (version {flow.version})"
    if flow.description:
        title += "\n" + flow.description
    out = [
        f"digraph {quote(flow.flow)} {{",
        f"  label={quote(title)};",
        "  labelloc=t; fontsize=18; fontname=Helvetica; rankdir=TB; nodesep=0.35; ranksep=0.5;",
        '  node [shape=box, style="rounded,filled", fontname=Helvetica, fontsize=11, '
        'margin="0.15,0.06"];',
        "  edge [fontname=Helvetica, fontsize=10];",
        f'  {quote(START)} [shape=circle, label="start", style=filled, fillcolor=black, '
        "fontcolor=white, fontsize=9, width=0.5, fixedsize=true];",
    ]
    for node_id, node in flow.nodes.items():
        attrs = _node_attrs(node.kind, start=node_id == flow.start, ends_call=node.ends_call)
        label = "\n".join(_node_lines(flow, node_id, node))
        out.append(f"  {quote(node_id)} [label={quote(label)}, {attrs}];")
    out.append(f"  {quote(START)} -> {quote(flow.start)} [penwidth=2];")
    for node_id, node in flow.nodes.items():
        for path, target in node.targets():
            label = edge_label(node, path)
            style = ', style=dashed, color="#c62828", fontcolor="#c62828"'
            extra = style if path[0] in ("on_failure", "on_timeout") else ""
            out.append(f"  {quote(node_id)} -> {quote(target)} [label={quote(label)}{extra}];")
        out.extend(_retry_edges(node_id, node))
    out.append("}")
    return "\n".join(out) + "\n"
