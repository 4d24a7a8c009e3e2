"""``acd flows graph``: the DOT text names every node and edge; ``dot`` really draws it."""

from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from acd.cli import main
from acd.ivr.graph import START, edge_label, flow_to_dot, quote
from acd.ivr.loader import load_flow, load_flows
from acd.ivr.model import Flow

GOOD = Path(__file__).resolve().parents[1] / "flows" / "good"
EDGE = re.compile(r'^\s*"((?:[^"\\]|\\.)*)" -> "((?:[^"\\]|\\.)*)" \[label="((?:[^"\\]|\\.)*)"')
NODE = re.compile(r'^\s*"((?:[^"\\]|\\.)*)" \[label=')


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], text)


def _edges(dot: str) -> Counter[tuple[str, str, str]]:
    """(from, to, label) of every edge line, labels unescaped as Graphviz reads them."""
    matches = (EDGE.match(line) for line in dot.splitlines())
    return Counter((_unquote(m[1]), _unquote(m[2]), _unquote(m[3])) for m in matches if m)


def _nodes(dot: str) -> set[str]:
    return {m.group(1) for m in map(NODE.match, dot.splitlines()) if m}


def test_every_node_and_every_edge_with_its_label() -> None:
    flow = load_flow(GOOD / "hotline.yaml")
    dot = flow_to_dot(flow)
    assert _nodes(dot) == set(flow.nodes)
    assert f'"{START}" [shape=circle' in dot
    expected = Counter(
        (node_id, target, edge_label(node, path))
        for node_id, node in flow.nodes.items()
        for path, target in node.targets()
    )
    edges = _edges(dot)
    for edge, count in expected.items():
        assert edges[edge] == count, edge
    labels = Counter(label for (_src, _dst, label) in edges.elements())
    assert labels["0"] == labels["1"] == labels["2"] == labels["3"] == labels["*"] == 1
    assert labels["on_failure"] == 5  # find_customer, main_menu, account, offer_callback, operator
    assert labels["open"] == labels["closed"] == labels["holiday"] == 1
    assert labels["else"] == 1 and labels["{segment} = vip"] == 1
    assert labels["timeout, 2 retries"] == 2 and labels["invalid, 1 retry"] == 1  # menu retry loops
    assert labels["on_timeout (120s)"] == 1 and labels["not found"] == 1
    assert edges[(START, flow.start, "")] == 0  # the start edge carries no label attribute
    assert f'"{START}" -> "{flow.start}"' in dot


def test_kinds_are_told_apart() -> None:
    dot = flow_to_dot(load_flow(GOOD / "hotline.yaml"))
    lines = {m.group(1): line for line in dot.splitlines() if (m := NODE.match(line))}
    for terminal in ("sales_queue", "operator", "mailbox", "goodbye"):
        assert "peripheries=2" in lines[terminal]
    assert "peripheries=2" not in lines["main_menu"]
    assert "penwidth=2.5" in lines["welcome"]  # the start node
    assert "shape=component" in lines["billing"] and "runs flow 'billing'" in lines["billing"]
    assert "skills: german, vip" in lines["vip_queue"] and "priority 9" in lines["vip_queue"]


def test_quotes_backslashes_and_newlines_are_escaped() -> None:
    assert quote('say "hi"\nthen \\l') == '"say \\"hi\\"\\nthen \\\\l"'
    flow = Flow.model_validate(
        {
            "flow": "tricky",
            "description": 'A "quoted"\nsecond line \\N',
            "start": "a",
            "nodes": {
                "a": {
                    "kind": "branch",
                    "description": 'say "x"',
                    "cases": [{"when": "{caller.number}", "matches": r'^"\d+', "then": "b"}],
                    "else": "b",
                },
                "b": {"kind": "hangup"},
            },
        }
    )
    dot = flow_to_dot(flow)
    assert 'A \\"quoted\\"\\nsecond line \\\\N' in dot
    assert 'say \\"x\\"' in dot
    assert _edges(dot)[("a", "b", r'{caller.number} ~ /^"\d+/')] == 1
    # No raw line break or unescaped quote inside any statement: one statement per line.
    for line in dot.splitlines()[1:-1]:
        assert line.rstrip().endswith((";", "{")), line


def test_svg_through_graphviz(tmp_path: Path) -> None:
    """A real render: Graphviz is a dependency of this command, so no skip without it."""
    assert shutil.which("dot"), "Graphviz missing: apt-get install graphviz (./dev installs it)"
    out = tmp_path / "hotline.svg"
    result = CliRunner().invoke(main, ["flows", "graph", "hotline", str(GOOD), "-o", str(out)])
    assert result.exit_code == 0, result.output
    svg = out.read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    for node_id in load_flows(GOOD)["hotline"].nodes:
        assert f"<title>{node_id}</title>" in svg


def test_dot_format_to_stdout_needs_no_graphviz(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    ok = CliRunner().invoke(
        main, ["flows", "graph", "billing", str(GOOD), "-o", "-", "--format", "dot"]
    )
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith('digraph "billing" {')
    missing = CliRunner().invoke(main, ["flows", "graph", "billing", str(GOOD), "-o", "x.png"])
    assert missing.exit_code != 0
    assert "apt-get install graphviz" in missing.output and "--format dot" in missing.output


def test_unknown_flow_names_the_known_ones() -> None:
    result = CliRunner().invoke(main, ["flows", "graph", "nope", str(GOOD), "--format", "dot"])
    assert result.exit_code != 0
    assert "no flow named 'nope'" in result.output and "hotline" in result.output
