"""Reports from real calls: callers wait in the daemon's queue on the Asterisk test bed,
an agent answers one and another caller gives up; ``acd report`` then shows it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.e2e.test_acd import one_queue
from tests.fixtures.acd import Acd, phone

pytestmark = [pytest.mark.asterisk, pytest.mark.postgres]

QUEUE = "reports_e2e"  # the test database is shared by the run: a queue of its own


def acd_report(pg_url: str, *args: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "acd", "report", *args, "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "ACD_DATABASE__URL": pg_url, "ACD_CONFIG": ""},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


async def test_report_shows_the_calls_that_went_through_the_queue(
    start_acd: Callable[..., Acd], pg_url: str
) -> None:
    # From this second on: the test database holds earlier tests' calls and agents.
    began = datetime.now(UTC).replace(microsecond=0)
    acd = start_acd(one_queue({"3901": "{en: 5}"}, queue=QUEUE, wrap_up="2s"))
    await acd.login("3901", phone("3901", talk=4))  # the login is a call too (route agent)

    answered = await acd.caller(QUEUE, number="5553901")
    await acd.wait_event("answer", answered.uniqueid)
    # While the agent talks, a second caller waits about 2 s and hangs up.
    leaver = await acd.caller(QUEUE, number="5553902", script="hangup", delay=2)
    abandon = await acd.wait_event("abandon", leaver.uniqueid, within=15)
    done = await acd.wait_event("complete", answered.uniqueid, within=20)
    wrap = await acd.wait_event("wrap_up", answered.uniqueid, within=15)
    assert 1.5 <= wrap["wrap_up_s"] <= 4.0

    period = [
        "--from",
        began.strftime("%Y-%m-%d %H:%M:%S"),
        "--to",
        (datetime.now(UTC) + timedelta(minutes=2)).strftime("%Y-%m-%d %H:%M"),
        "--tz",
        "UTC",
        "--interval",
        "total",
    ]
    (row,) = acd_report(pg_url, "queues", *period, "--queue", QUEUE, "--short-abandon", "0")
    assert (row["offered"], row["answered"], row["abandoned"]) == (2, 1, 1)
    assert (row["short_abandoned"], row["handled"]) == (0, 1)
    answer_wait = (await acd.wait_event("answer", answered.uniqueid))["wait_s"]
    assert row["asa_s"] == pytest.approx(answer_wait, abs=0.01)
    assert row["service_level"] == 1.0  # answered within 20 s
    assert row["abandonment_rate"] == pytest.approx(0.5)  # 1 of 2, no short abandons
    assert row["aht_s"] == pytest.approx(done["talk_s"] + wrap["wrap_up_s"], abs=0.01)
    assert row["longest_wait_s"] == pytest.approx(max(answer_wait, abandon["wait_s"]), abs=0.01)
    # With the default 5-second short-abandon threshold the 2-second caller is a short
    # abandon, left out of the abandonment rate.
    (row,) = acd_report(pg_url, "queues", *period, "--queue", QUEUE)
    assert (row["abandoned"], row["short_abandoned"], row["abandonment_rate"]) == (1, 1, 0.0)

    agents = {r["agent_id"]: r for r in acd_report(pg_url, "agents", *period)}
    agent = agents["3901"]
    assert agent["calls"] == 1
    assert agent["talk_s"] == pytest.approx(done["talk_s"], abs=0.01)
    assert agent["wrap_up_s"] == pytest.approx(wrap["wrap_up_s"], abs=0.05)
    assert 0 < agent["occupancy"] < 1
