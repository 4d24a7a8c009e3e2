"""``acd_agi_command_seconds`` bucketing and the per-app registries of ``/metrics``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from acd import __version__, metrics
from acd.api.context import AppContext
from acd.config import Settings
from acd.db.engine import make_async_engine
from acd.ivr.registry import FlowRegistry
from acd.metrics import AGI_BUCKETS, CommandLatency, observe_agi_commands

FLOWS = Path(__file__).resolve().parents[1] / "flows" / "good"
StartApp = Callable[[], Awaitable[TestClient[web.Request, web.Application]]]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_buckets_are_cumulative_and_inclusive() -> None:
    latency = CommandLatency()
    latency.add([0.0004, 0.0005, 0.003])
    latency.add([100.0])
    family = latency.family()
    buckets = {s.labels["le"]: s.value for s in family.samples if s.name.endswith("_bucket")}
    assert buckets["0.0005"] == 2  # le is "less than or equal"
    assert buckets["0.001"] == 2
    assert buckets["0.005"] == 3
    assert buckets["60.0"] == 3
    assert buckets["+Inf"] == 4
    assert len(buckets) == len(AGI_BUCKETS) + 1
    count = next(s.value for s in family.samples if s.name.endswith("_count"))
    total = next(s.value for s in family.samples if s.name.endswith("_sum"))
    assert count == 4
    assert total == pytest.approx(100.0039)


def test_many_sessions_are_folded_without_waiting_for_a_scrape() -> None:
    latency = CommandLatency()
    for _ in range(1000):
        latency.add([0.002] * 10)
    assert len(latency._pending) < 4096  # bounded between scrapes
    assert sum(latency.counts) + len(latency._pending) == 10_000


@pytest.fixture
async def start_app() -> AsyncIterator[StartApp]:
    """Apps with only ``/metrics`` over a real (idle) daemon context."""
    settings = Settings()
    engine = make_async_engine(settings.database.url.get_secret_value())
    flows = FlowRegistry(FLOWS)
    await flows.reload()
    clients: list[TestClient[web.Request, web.Application]] = []

    async def start() -> TestClient[web.Request, web.Application]:
        app = web.Application()
        metrics.setup(app, AppContext(settings=settings, engine=engine, flows=flows))
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()
    await engine.dispose()


async def test_each_app_has_its_own_registry(start_app: StartApp) -> None:
    first = await start_app()
    second = await start_app()
    observe_agi_commands([0.001, 0.002])
    for client in (first, second):
        response = await client.get("/metrics")
        assert response.status == 200
        got = samples(await response.text())
        assert got[("acd_agi_command_seconds_count", ())] == 2
        assert got[("acd_ami_up", ())] == 0  # no AMI link in this context
        assert got[("acd_ivr_flows_generation", ())] == 1
        assert ("acd_build_info", (("version", __version__),)) in got
    live = len(metrics._latencies)
    await second.close()  # a stopped app no longer takes observations
    assert len(metrics._latencies) == live - 1
    observe_agi_commands([0.001])
    got = samples(await (await first.get("/metrics")).text())
    assert got[("acd_agi_command_seconds_count", ())] == 3


async def test_openmetrics_when_the_scraper_asks(start_app: StartApp) -> None:
    client = await start_app()
    response = await client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert (await response.text()).endswith("# EOF\n")
