"""YAML flows on real calls: the Asterisk test bed sends simulated callers into
``[acd-ivr]``, the daemon runs a flow from a temporary flows folder, the dialplan acts
on the outcome (``AcdIvrOutcome`` UserEvent), and PostgreSQL holds the path each caller
took. A broken edit while the daemon runs must not reach callers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from acd.ami import AmiLink
from acd.sim import CallSimulator, SimulatedCall
from tests.fixtures.daemon import DaemonProcess, call_row

pytestmark = [pytest.mark.asterisk, pytest.mark.postgres]

FLOW = """\
flow: support_line
version: 1
start: menu
languages: {default: en, available: [en]}
nodes:
  menu:
    kind: menu
    prompt: queue-periodic-announce   # 7.8 s: the caller presses during it
    choices:
      1: sales
      2: support
    timeout: {seconds: 3, retries: 0}
    on_failure: bye
  sales:
    kind: queue
    queue: sales
    skills: [en]
    priority: 5
  support:
    kind: queue
    queue: support
  bye:
    kind: hangup
    prompt: goodbye
"""

BROKEN = FLOW.replace("version: 1", "version: 2").replace("queue: support", "queue: [support")


def outcome(call: SimulatedCall) -> dict[str, Any]:
    found = call.user_events("AcdIvrOutcome")
    assert found, [e.get("Event") for e in call.events]
    return dict(found[0])


def rows(pg_url: str, query: str, params: dict[str, Any], want: int) -> list[dict[str, Any]]:
    """Rows of ``query`` once there are ``want`` of them (the writer batches)."""
    engine = sa.create_engine(pg_url)
    try:
        deadline = time.monotonic() + 10
        while True:
            with engine.connect() as conn:
                got = [dict(r) for r in conn.execute(sa.text(query), params).mappings()]
            if len(got) >= want or time.monotonic() > deadline:
                return got
            time.sleep(0.1)
    finally:
        engine.dispose()


@pytest.fixture
def flows_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "support_line.yaml").write_text(FLOW)
    return folder


@pytest.fixture
def ivr_callers(ami_client: AmiLink) -> CallSimulator:
    return CallSimulator(ami_client, hotline_context="acd-ivr")


async def test_menu_key_reaches_the_queue_and_the_path_is_stored(
    start_daemon: Callable[..., DaemonProcess],
    flows_dir: Path,
    ivr_callers: CallSimulator,
    pg_url: str,
) -> None:
    start_daemon(ACD_IVR__FLOWS_DIR=str(flows_dir), ACD_IVR__ENTRY_FLOW="support_line")
    call = await ivr_callers.place("1", caller_number="4930555101", variables={"SIM_DELAY": 1})
    await call.wait_ended(30)

    event = outcome(call)
    assert (event["Outcome"], event["Queue"], event["Skills"], event["QueuePriority"]) == (
        "queue",
        "sales",
        "en",
        "5",
    )
    row = call_row(pg_url, call.uniqueid)
    assert (row["route"], row["ivr_outcome"], row["disposition"]) == ("flow", "queue", "completed")
    steps = rows(
        pg_url,
        "select * from ivr_steps where uniqueid = :u order by seq",
        {"u": call.uniqueid},
        want=2,
    )
    assert [(s["node_id"], s["kind"], s["result"], s["digits"]) for s in steps] == [
        ("menu", "menu", "choice", "1"),
        ("sales", "queue", "queue", ""),
    ]
    assert {s["flow"] for s in steps} == {"support_line"}
    versions = rows(
        pg_url,
        "select * from flow_versions where flow = 'support_line' and sha256 = :h",
        {"h": steps[0]["flow_hash"]},
        want=1,
    )
    assert versions and versions[0]["version"] == 1


async def test_a_broken_edit_leaves_callers_on_the_old_version(
    start_daemon: Callable[..., DaemonProcess],
    flows_dir: Path,
    ivr_callers: CallSimulator,
    pg_url: str,
) -> None:
    daemon = start_daemon(
        ACD_IVR__FLOWS_DIR=str(flows_dir),
        ACD_IVR__ENTRY_FLOW="support_line",
        ACD_IVR__RELOAD_POLL="0.2",
    )
    flow_file = flows_dir / "support_line.yaml"
    flow_file.write_text(BROKEN)
    st = flow_file.stat()
    os.utime(flow_file, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    daemon.wait_event("ivr_flows_reload_rejected")
    problems = [e["problem"] for e in daemon.events("ivr_flow_problem")]
    assert any(p.startswith(f"{flow_file}:") for p in problems), problems

    call = await ivr_callers.place("2", variables={"SIM_DELAY": 1, "ACD_FLOW": "support_line"})
    await call.wait_ended(30)
    assert (outcome(call)["Outcome"], outcome(call)["Queue"]) == ("queue", "support")
    steps = rows(
        pg_url,
        "select flow_version from ivr_steps where uniqueid = :u",
        {"u": call.uniqueid},
        want=2,
    )
    assert {s["flow_version"] for s in steps} == {1}
