"""IVR interpreter cost per node, and load-and-check time of a big flow.

    python bench/ivr_interpreter.py [--calls 2000] [--nodes 500] [--rounds 5]

* per node: whole calls through ``acd.ivr.interpreter.Interpreter`` against a port that
  answers at once (no audio, no network), so the figure is the interpreter's own cost:
  the sample hotline (play, language, lookup, set, hours, menu, branch, queue) and a
  generated chain of ``--nodes`` nodes (set, branch, play, menu in turn);
* load: ``load_flow`` (YAML parse, model, every check) of that generated flow.

Best and median of ``--rounds`` are printed. It asserts nothing: it is a figures printer.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from acd.ivr.interpreter import Interpreter
from acd.ivr.loader import load_flow, load_flows
from acd.ivr.lookup import LookupResult
from acd.ivr.model import Flow

GOOD = Path(__file__).resolve().parent.parent / "tests" / "flows" / "good"
OPEN = datetime(2025, 11, 24, 9, 0, tzinfo=UTC)  # a Monday, 10:00 in Berlin


class ZeroPort:
    """Answers every key read with the next scripted key, instantly."""

    def __init__(self, keys: str) -> None:
        self.keys = keys
        self.pos = 0

    async def play(self, prompts: Sequence[str], interrupt: str) -> str | None:
        return None

    async def read_digits(
        self, prompt: str | None, max_digits: int, timeout_ms: int, terminator: str | None
    ) -> tuple[str, bool]:
        key = self.keys[self.pos % len(self.keys)]
        self.pos += 1
        return key, False

    async def say(self, kind: str, value: str) -> None:
        return None

    async def set_channel_variable(self, name: str, value: str) -> None:
        return None

    async def set_language(self, language: str) -> None:
        return None

    def now(self) -> datetime:
        return OPEN


class InstantLookup:
    @property
    def required_variables(self) -> frozenset[str]:
        return frozenset()

    async def lookup(self, variables: Mapping[str, str]) -> LookupResult:
        return LookupResult(True, {"segment": "vip", "name": "Ada", "open_tickets": "2"})


def generated_flow(nodes: int) -> str:
    """A valid flow of ``nodes`` nodes in a chain, cycling through four node kinds."""
    lines = ["flow: generated", "start: n0", "variables:", "  counter: 0", "nodes:"]
    for i in range(nodes - 1):
        nxt = f"n{i + 1}"
        match i % 4:
            case 0:
                lines += [
                    f"  n{i}:",
                    "    kind: set",
                    '    variables: {counter: "= counter + 1", label: "n-{counter}"}',
                    f"    next: {nxt}",
                ]
            case 1:
                lines += [
                    f"  n{i}:",
                    "    kind: branch",
                    "    cases:",
                    f'      - {{when: "{{counter}}", greater_than: 1000000, then: {nxt}}}',
                    f'      - {{when: "{{label}}", matches: "^n-", then: {nxt}}}',
                    f"    else: {nxt}",
                ]
            case 2:
                lines += [f"  n{i}:", "    kind: play", "    prompt: acme/beep", f"    next: {nxt}"]
            case _:
                lines += [
                    f"  n{i}:",
                    "    kind: menu",
                    "    prompt: acme/menu",
                    f"    choices: {{1: {nxt}, 2: {nxt}}}",
                    f"    on_failure: {nxt}",
                ]
    lines += [f"  n{nodes - 1}:", "    kind: queue", '    queue: "q{counter}"']
    return "\n".join(lines) + "\n"


async def calls(flows: Mapping[str, Flow], flow: str, keys: str, count: int) -> tuple[float, int]:
    """Seconds and nodes visited for ``count`` calls of ``flow``."""
    lookups = {"find_customer": InstantLookup()}
    variables = {"caller.number": "+4930555101", "dialed.number": "4930123456"}
    nodes = 0
    started = time.perf_counter()
    for _ in range(count):
        interp = Interpreter(
            flows, ZeroPort(keys), lookups=lookups, variables=variables, max_steps=100_000
        )
        outcome = await interp.run(flow)
        assert outcome.kind == "queue", outcome
        nodes += len(interp.steps)
    return time.perf_counter() - started, nodes


def show(label: str, figures: list[float], unit: str) -> None:
    print(f"{label:<44} best {min(figures):9.1f} {unit}   median {statistics.median(figures):9.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)

    good = load_flows(GOOD)
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "generated.yaml"
        file.write_text(generated_flow(args.nodes))
        load_ms = []
        for _ in range(args.rounds):
            started = time.perf_counter()
            big = load_flow(file)
            load_ms.append((time.perf_counter() - started) * 1000)

    per_node: dict[str, list[float]] = {"hotline": [], "generated": []}
    nodes_per_call: dict[str, int] = {}
    for _ in range(args.rounds):
        seconds, nodes = asyncio.run(calls(good, "hotline", "11", args.calls))
        per_node["hotline"].append(seconds / nodes * 1e6)
        nodes_per_call["hotline"] = nodes // args.calls
        few = max(1, args.calls // 20)
        seconds, nodes = asyncio.run(calls({"generated": big}, "generated", "1", few))
        per_node["generated"].append(seconds / nodes * 1e6)
        nodes_per_call["generated"] = nodes // few

    print(f"python {sys.version.split()[0]}, {args.rounds} rounds")
    for name, figures in per_node.items():
        show(f"interpreter, {name} ({nodes_per_call[name]} nodes/call)", figures, "us/node")
    show(f"load_flow + checks, generated {args.nodes}-node flow", load_ms, "ms")


if __name__ == "__main__":
    main()
