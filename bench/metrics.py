"""What ``acd_agi_command_seconds`` costs a call: ``observe_agi_commands`` at the end of a
session against prometheus_client's own ``Histogram.observe`` per command, and a scrape.

    python bench/metrics.py [--sessions 200000] [--commands 10] [--rounds 5]

Baseline, measured in the same run: a loop that builds the same durations and does
nothing with them (the floor). Figures only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from acd import metrics
from acd.metrics import AGI_BUCKETS, CommandLatency


def run(sessions: Sequence[list[float]], sink: Callable[[list[float]], None]) -> float:
    """Seconds to hand every session's durations to ``sink``."""
    start = time.perf_counter()
    for durations in sessions:
        sink(durations)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200_000)
    parser.add_argument("--commands", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(1)
    sessions = [
        [rng.lognormvariate(-7, 1.5) for _ in range(args.commands)] for _ in range(args.sessions)
    ]

    latency = CommandLatency()
    metrics._latencies.append(latency)  # as a running daemon app does on startup
    registry = CollectorRegistry()
    histogram = Histogram(
        "bench_agi_command_seconds", "bench", buckets=AGI_BUCKETS, registry=registry
    )

    def per_command(durations: list[float]) -> None:
        for seconds in durations:
            histogram.observe(seconds)

    contenders: dict[str, Callable[[list[float]], None]] = {
        "floor (no-op)": lambda durations: None,
        "acd observe_agi_commands": metrics.observe_agi_commands,
        "prometheus_client Histogram.observe": per_command,
    }
    results: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, sink in contenders.items():
            results[name].append(run(sessions, sink))

    floor = statistics.median(results["floor (no-op)"])
    print(f"{args.sessions} sessions x {args.commands} commands, {args.rounds} rounds")
    print(f"{'sink':40} {'ns/session (median)':>20} {'minus floor':>12}")
    cost = {}
    for name, times in results.items():
        median = statistics.median(times)
        cost[name] = (median - floor) / args.sessions * 1e9
        print(f"{name:40} {median / args.sessions * 1e9:20.0f} {cost[name]:12.0f}")
    ratio = cost["prometheus_client Histogram.observe"] / max(cost["acd observe_agi_commands"], 1)
    print(f"prometheus_client per command / acd per session (above the floor): {ratio:.1f} x")

    start = time.perf_counter()
    family = latency.family()
    took = (time.perf_counter() - start) * 1e3
    print(f"scrape-time fold + render of acd's histogram: {took:.2f} ms")
    count = next(s.value for s in family.samples if s.name.endswith("_count"))
    expected = args.sessions * args.commands * args.rounds
    print(f"counted {count:.0f} of {expected} durations")
    generate_latest(registry)


if __name__ == "__main__":
    main()
