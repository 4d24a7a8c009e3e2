"""The HTTP API on real calls: what a supervisor or agent does through the API is what
the next caller through the Asterisk test bed gets.

* An agent logs in and becomes ready through the API (no phone feature code), and the
  caller waiting in the queue reaches that agent's phone; the live view shows the
  caller waiting, then the agent on the call.
* A supervisor uploads and activates a new version of a flow: the next caller follows
  it; after a rollback the next caller follows the old one again.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from acd.api.accounts import add_user
from acd.db.engine import make_async_engine
from acd.sim import CallSimulator
from tests.e2e.test_acd import one_queue
from tests.e2e.test_ivr import FLOW, outcome, rows
from tests.fixtures.acd import Acd, phone
from tests.fixtures.daemon import DaemonProcess

pytestmark = [pytest.mark.asterisk, pytest.mark.postgres]

PASSWORD = "e2e password 123"


async def account(pg_url: str, role: str, agent_id: str | None = None) -> str:
    """A new account of ``role``; its name is unique in the run's shared database."""
    name = f"{role}-{uuid.uuid4().hex[:8]}"
    engine = make_async_engine(pg_url)
    try:
        await add_user(engine, name, role, PASSWORD, agent_id)
    finally:
        await engine.dispose()
    return name


class Client:
    """A logged-in API client (bearer token) of one daemon."""

    def __init__(self, http: aiohttp.ClientSession, daemon: DaemonProcess) -> None:
        self.http = http
        self.base = f"http://127.0.0.1:{daemon.http_port}/api/v1"
        self.headers: dict[str, str] = {}

    async def login(self, name: str) -> None:
        body = await self.call("POST", "/login", {"name": name, "password": PASSWORD})
        self.headers = {"Authorization": f"Bearer {body['token']}"}

    async def call(
        self, method: str, path: str, json: dict[str, Any] | None = None, want: int = 200
    ) -> Any:
        async with self.http.request(
            method, self.base + path, json=json, headers=self.headers
        ) as resp:
            text = await resp.text()
            assert resp.status == want, f"{method} {path}: {resp.status} {text}"
            return await resp.json() if text else None


async def test_agent_ready_through_the_api_takes_the_waiting_call(
    start_acd: Callable[..., Acd], pg_url: str
) -> None:
    acd = start_acd(one_queue({"4501": "{en: 5}"}))
    desk = phone("4501", talk=3)
    # This test's calls only: earlier tests used the same queue name today.
    since = f"from={datetime.now(UTC).replace(microsecond=0):%Y-%m-%dT%H:%M:%S}Z"
    async with aiohttp.ClientSession() as http:
        agent = Client(http, acd.daemon)
        await agent.login(await account(pg_url, "agent", "4501"))
        state = await agent.call("POST", "/agents/4501/login", {"device": desk, "ready": False})
        assert (state["state"], state["device"]) == ("not_ready", desk)

        caller = await acd.caller("general", number="5554501")
        await acd.wait_event("enqueue", caller.uniqueid)
        waiting = await agent.call("GET", "/calls/waiting")
        assert [(w["uniqueid"], w["caller_number"], w["position"]) for w in waiting] == [
            (caller.uniqueid, "5554501", 1)
        ]
        await asyncio.sleep(1.5)
        assert acd.offers(caller.uniqueid) == []  # not ready: nobody rings

        assert (await agent.call("POST", "/agents/4501/ready"))["state"] == "ready"
        answer = await acd.wait_event("answer", caller.uniqueid, within=20)
        assert answer["agent_id"] == "4501"
        on_call = await agent.call("GET", "/agents/4501")
        assert on_call["current"]["phase"] == "talking", on_call
        assert on_call["current"]["caller_number"] == "5554501"
        queue = await agent.call("GET", "/queues/general")
        assert (queue["waiting"], queue["today"]["answered"]) == (0, 1)
        await acd.wait_event("complete", caller.uniqueid, within=20)

        assert (await agent.call("POST", "/agents/4501/logout"))["state"] == "logged_out"
        # The same call in the queue report, as `acd report queues` would show it.
        report = await agent.call("GET", f"/reports/queues?interval=total&queues=general&{since}")
        assert [(r["queue"], r["offered"], r["answered"]) for r in report] == [("general", 1, 1)]
        async with http.get(
            agent.base + f"/reports/queues?interval=total&queues=general&format=csv&{since}",
            headers=agent.headers,
        ) as resp:
            assert resp.content_type == "text/csv"
            header, row = (await resp.text()).splitlines()
        assert header.startswith("queue,interval_start,interval_end,offered,answered")
        assert row.startswith("general,")
    await acd.wait_agent_state("4501", "logged_out")
    states = [(e["state"], e["device"]) for e in acd.agent_events("4501")]
    assert states[:2] == [("not_ready", desk), ("ready", desk)]


NEW_VERSION = FLOW.replace("version: 1", "version: 2").replace(
    "      1: sales\n      2: support", "      1: support\n      2: sales"
)


async def test_flow_activated_through_the_api_is_what_the_next_caller_gets(
    start_daemon: Callable[..., DaemonProcess],
    ami_client: Any,
    pg_url: str,
    tmp_path: Path,
) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "support_line.yaml").write_text(FLOW)
    daemon = start_daemon(
        ACD_IVR__FLOWS_DIR=str(flows),
        ACD_IVR__ENTRY_FLOW="support_line",
        ACD_DATABASE__FLUSH_INTERVAL="0.05",
    )
    callers = CallSimulator(ami_client, hotline_context="acd-ivr")

    async def caller_presses_1() -> tuple[str, set[int]]:
        call = await callers.place("1", caller_number="4930555901", variables={"SIM_DELAY": 1})
        await call.wait_ended(30)
        steps = rows(
            pg_url,
            "select flow_version from ivr_steps where uniqueid = :u",
            {"u": call.uniqueid},
            want=2,
        )
        return outcome(call)["Queue"], {s["flow_version"] for s in steps}

    assert await caller_presses_1() == ("sales", {1})
    async with aiohttp.ClientSession() as http:
        sup = Client(http, daemon)
        await sup.login(await account(pg_url, "supervisor"))
        upload = await sup.call(
            "POST",
            "/flows/support_line/versions",
            {"content": NEW_VERSION, "comment": "1 and 2 swapped"},
            want=201,
        )
        await sup.call("POST", f"/flows/support_line/versions/{upload['seq']}/activate")
        assert await caller_presses_1() == ("support", {2})

        back = await sup.call("POST", "/flows/support_line/rollback", {})
        assert back["version"] == 1
        assert await caller_presses_1() == ("sales", {1})
        audit = await sup.call("GET", "/audit?target=flow:support_line")
    assert [a["action"] for a in reversed(audit)] == [
        "flow.upload",
        "flow.activate",
        "flow.rollback",
    ]
