"""Prometheus ``/metrics``: what the daemon is doing, read when Prometheus scrapes.

Nothing is updated on a call's path: a custom collector reads the daemon's parts (the
ACD's snapshot, the AMI link, the writers, the IVR route) at scrape time. The one
exception is ``acd_agi_command_seconds``, fed by ``observe_agi_commands`` at the end of
each AGI session; it only appends the durations to a list and folds them into bucket
counts now and then, so a session pays a list extend, not prometheus_client's lock and
bucket scan per command.

Each app has its own ``CollectorRegistry`` (never the process-global one), so tests can
build several daemons in one process. ``/metrics`` needs no login and is served on the
API's ``[http] host:port``: keep that address off the public network.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence

from aiohttp import web
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from acd import __version__
from acd.api.context import AppContext
from acd.core.routing.model import AgentState
from acd.log import get_logger

__all__ = ["AGI_BUCKETS", "REGISTRY", "CommandLatency", "observe_agi_commands", "setup"]

log = get_logger(__name__)

#: Seconds. SET VARIABLE answers in well under a millisecond; STREAM FILE and GET DATA
#: last as long as the prompt and the caller's typing.
AGI_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
#: The app's registry, for tests and for ``extra_setup`` hooks that add collectors.
REGISTRY: web.AppKey[CollectorRegistry] = web.AppKey("acd_metrics", CollectorRegistry)

_FOLD_AT = 4096


class CommandLatency:
    """A histogram of AGI command round trips, cheap to feed from the call path."""

    def __init__(self, buckets: Sequence[float] = AGI_BUCKETS) -> None:
        self.bounds = sorted(buckets)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.total = 0.0
        self._pending: list[float] = []

    def add(self, durations: Sequence[float]) -> None:
        self._pending.extend(durations)
        if len(self._pending) >= _FOLD_AT:
            self.fold()

    def fold(self) -> None:
        """Count the pending durations into the buckets (le = upper bound, inclusive)."""
        pending, self._pending = self._pending, []
        bounds, counts = self.bounds, self.counts
        for seconds in pending:
            counts[bisect_left(bounds, seconds)] += 1
        self.total += sum(pending)

    def family(self) -> HistogramMetricFamily:
        self.fold()
        cumulative, buckets = 0, []
        for bound, count in zip([*self.bounds, float("inf")], self.counts, strict=True):
            cumulative += count
            buckets.append((_le(bound), cumulative))
        family = HistogramMetricFamily(
            "acd_agi_command_seconds",
            "Round trip of one AGI command (daemon to Asterisk and back).",
        )
        family.add_metric([], buckets, self.total)
        return family


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


_latencies: list[CommandLatency] = []


def observe_agi_commands(durations: Sequence[float]) -> None:
    """Record one AGI session's command round trips, in seconds (the AGI server calls
    this when a session ends). A no-op while no daemon app serves ``/metrics``."""
    for latency in _latencies:
        latency.add(durations)


class DaemonCollector(Collector):
    """Reads the daemon's state at scrape time; a part that fails is logged and skipped."""

    def __init__(self, ctx: AppContext, latency: CommandLatency) -> None:
        self.ctx = ctx
        self.latency = latency

    def describe(self) -> Iterable[Metric]:
        return []  # the registry must not call collect() before the daemon is up

    def collect(self) -> Iterator[Metric]:
        parts: list[Callable[[], Iterable[Metric]]] = [
            self._info,
            self._calls,
            self._acd,
            self._ami,
            self._records,
            self._flows,
        ]
        for part in parts:
            try:
                yield from list(part())
            except Exception:
                log.exception("metrics_part_failed", part=part.__name__)
        yield self.latency.family()

    def _info(self) -> Iterable[Metric]:
        info = InfoMetricFamily("acd_build", "The running acd version.")
        info.add_metric([], {"version": __version__})
        yield info

    def _calls(self) -> Iterable[Metric]:
        agi = self.ctx.agi
        yield GaugeMetricFamily(
            "acd_agi_sessions",
            "Calls the FastAGI server is serving now (every route).",
            value=agi.active_sessions if agi is not None else 0,
        )
        route = self.ctx.ivr
        yield GaugeMetricFamily(
            "acd_ivr_calls",
            "Calls in an IVR flow now (not counting those waiting in a queue).",
            value=route.in_ivr if route is not None else 0,
        )

    def _acd(self) -> Iterable[Metric]:
        waiting = GaugeMetricFamily(
            "acd_calls_waiting", "Callers waiting in the queue now.", labels=["queue"]
        )
        callbacks = GaugeMetricFamily(
            "acd_callbacks_waiting",
            "Callback requests waiting for an agent in the queue.",
            labels=["queue"],
        )
        longest = GaugeMetricFamily(
            "acd_queue_longest_wait_seconds",
            "How long the queue's oldest waiting caller or callback has waited.",
            labels=["queue"],
        )
        queue_agents = GaugeMetricFamily(
            "acd_queue_agents", "Agents serving the queue, by state.", labels=["queue", "state"]
        )
        agents = GaugeMetricFamily("acd_agents", "Agents by state.", labels=["state"])
        busy = GaugeMetricFamily(
            "acd_agents_busy", "Agents being rung or talking now.", labels=["phase"]
        )
        states = [state.value for state in AgentState]
        acd = self.ctx.acd
        if acd is not None:
            snapshot = acd.snapshot()
            for queue in snapshot.queues:
                mine = [c for c in snapshot.waiting if c.queue == queue.name]
                waiting.add_metric([queue.name], sum(1 for c in mine if not c.callback))
                callbacks.add_metric([queue.name], sum(1 for c in mine if c.callback))
                longest.add_metric([queue.name], queue.longest_wait_s or 0.0)
                for state in states:
                    queue_agents.add_metric([queue.name, state], queue.agents.get(state, 0))
            for state in states:
                agents.add_metric([state], sum(1 for a in snapshot.agents if a.state == state))
            for phase in ("ringing", "talking"):
                count = sum(1 for a in snapshot.agents if a.current and a.current.phase == phase)
                busy.add_metric([phase], count)
        yield from (waiting, callbacks, longest, queue_agents, agents, busy)

    def _ami(self) -> Iterable[Metric]:
        ami = self.ctx.ami
        yield GaugeMetricFamily(
            "acd_ami_up",
            "1 while the AMI link to Asterisk is logged in.",
            value=1 if ami is not None and ami.up else 0,
        )
        yield CounterMetricFamily(
            "acd_ami_reconnects",
            "Times the AMI link was re-established after it went down.",
            value=ami.reconnects if ami is not None else 0,
        )

    def _records(self) -> Iterable[Metric]:
        pending = GaugeMetricFamily(
            "acd_records_pending",
            "Records accepted but not yet confirmed written to PostgreSQL.",
            labels=["writer"],
        )
        written = CounterMetricFamily(
            "acd_records_written", "Records written to PostgreSQL.", labels=["writer"]
        )
        dropped = CounterMetricFamily(
            "acd_records_dropped",
            "Records given up on (refused by the database, or over max_pending).",
            labels=["writer"],
        )
        spooled = GaugeMetricFamily(
            "acd_spool_records",
            "Records journaled in the disk spool and not yet confirmed by the database.",
            labels=["writer"],
        )
        spool_bytes = GaugeMetricFamily(
            "acd_spool_bytes", "Size of the disk spool.", labels=["writer"]
        )
        for name, writer in (("calls", self.ctx.writer), ("rows", self.ctx.rows)):
            if writer is None:
                continue
            pending.add_metric([name], writer.pending)
            written.add_metric([name], writer.written)
            dropped.add_metric([name], writer.dropped)
            spooled.add_metric([name], writer.spooled)
            spool_bytes.add_metric([name], writer.spooled_bytes)
        yield from (pending, written, dropped, spooled, spool_bytes)

    def _flows(self) -> Iterable[Metric]:
        flows = self.ctx.flows
        yield GaugeMetricFamily(
            "acd_ivr_flows_generation",
            "Version of the IVR flow set in force (goes up with each reload that went live).",
            value=flows.current.generation,
        )
        yield CounterMetricFamily(
            "acd_ivr_flows_rejected",
            "Flow reloads refused because an edit had problems.",
            value=flows.rejected,
        )


def setup(app: web.Application, ctx: AppContext) -> None:
    """Register ``/metrics`` on ``app`` (called once by ``acd.api.app.build_app``)."""
    registry = CollectorRegistry(auto_describe=False)
    latency = CommandLatency()
    registry.register(DaemonCollector(ctx, latency))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    app[REGISTRY] = registry

    async def scrape(request: web.Request) -> web.Response:
        # Prometheus text format, or OpenMetrics when the scraper asks for it.
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encode(registry), headers={"Content-Type": content_type})

    app.router.add_get("/metrics", scrape)

    async def started(_app: web.Application) -> None:
        _latencies.append(latency)

    async def stopped(_app: web.Application) -> None:
        if latency in _latencies:
            _latencies.remove(latency)

    app.on_startup.append(started)
    app.on_cleanup.append(stopped)
