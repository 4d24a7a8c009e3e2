"""``/metrics`` of a real daemon while real calls go through it: a caller in an IVR
flow, a caller waiting in a queue until an agent logs in and takes the call.

What is read is what Prometheus would scrape, without a login, from the API's port.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from acd.ami import AmiLink
from acd.sim import CallSimulator
from tests.fixtures.acd import Acd, phone

pytestmark = [pytest.mark.asterisk, pytest.mark.postgres]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

QUEUES = """\
queues:
  metrics_q:
    ring_timeout: 5s
    wrap_up: 0s
    announce: {every: 30s}
agents:
  "3901":
    skills: {en: 5}
    queues: [metrics_q]
"""

FLOW = """\
flow: metrics_line
version: 1
start: menu
languages: {default: en, available: [en]}
nodes:
  menu:
    kind: menu
    prompt: queue-periodic-announce   # 7.8 s, then 3 s for a key: the caller stays a while
    choices:
      1: bye
    timeout: {seconds: 3, retries: 0}
    on_failure: bye
  bye:
    kind: hangup
"""


def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


class Scraper:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"

    async def scrape(self) -> Samples:
        async with aiohttp.ClientSession() as http, http.get(self.url) as response:
            assert response.status == 200  # no login for /metrics
            text = await response.text()
        out: Samples = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    async def until(
        self, what: str, check: Callable[[Samples], bool], within: float = 20
    ) -> Samples:
        deadline = time.monotonic() + within
        while True:
            got = await self.scrape()
            if check(got):
                return got
            if time.monotonic() > deadline:
                shown = {k: v for k, v in got.items() if k[0].startswith("acd_")}
                raise AssertionError(f"/metrics never showed {what} within {within:g} s: {shown}")
            await asyncio.sleep(0.2)


async def test_metrics_follow_real_calls(
    start_acd: Callable[..., Acd], ami_client: AmiLink, tmp_path: Path
) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "metrics_line.yaml").write_text(FLOW)
    acd = start_acd(QUEUES, ACD_IVR__FLOWS_DIR=str(flows), ACD_IVR__ENTRY_FLOW="metrics_line")
    metrics = Scraper(acd.daemon.http_port)
    waiting = key("acd_calls_waiting", queue="metrics_q")
    agi_count = key("acd_agi_command_seconds_count")

    start = await metrics.until("the AMI link up", lambda m: m[key("acd_ami_up")] == 1)
    assert start[waiting] == 0
    assert start[key("acd_agents", state="logged_out")] == 1
    assert start[key("acd_agents", state="ready")] == 0
    assert start[key("acd_ivr_calls")] == 0

    # A caller in the IVR flow's menu.
    ivr = CallSimulator(ami_client, hotline_context="acd-ivr")
    in_flow = await ivr.place("silent", variables={"ACD_FLOW": "metrics_line"})
    await metrics.until("a call in the IVR", lambda m: m[key("acd_ivr_calls")] == 1)

    # A caller in the queue; nobody is ready, so they wait.
    caller = await acd.caller("metrics_q", number="5553901")
    during = await metrics.until("a caller waiting", lambda m: m[waiting] == 1)
    assert during[key("acd_agi_sessions")] >= 2
    assert during[key("acd_queue_longest_wait_seconds", queue="metrics_q")] >= 0

    # The agent logs in from their phone, is rung, answers and talks.
    await acd.login("3901", phone("3901", ring=1, talk=3))
    await metrics.until(
        "the agent talking, nobody waiting",
        lambda m: m[waiting] == 0 and m[key("acd_agents_busy", phase="talking")] == 1,
    )
    await acd.wait_event("complete", caller.uniqueid)
    await in_flow.wait_ended(20)
    end = await metrics.until(
        "the agent ready again, the IVR empty",
        lambda m: m[key("acd_agents", state="ready")] == 1 and m[key("acd_ivr_calls")] == 0,
    )
    assert end[key("acd_queue_agents", queue="metrics_q", state="ready")] == 1
    assert end[key("acd_records_written_total", writer="calls")] >= 1
    assert end[key("acd_records_dropped_total", writer="calls")] == 0
    assert key("acd_spool_records", writer="calls") in end
    assert end[key("process_open_fds")] > 0
    # Every AGI session reports its command round trips when it ends.
    assert end[agi_count] > start[agi_count]
    assert end[key("acd_agi_command_seconds_bucket", le="+Inf")] == end[agi_count]
