"""The sample hotline and the sample queues together: a caller goes through the YAML
flow and, in the same FastAGI session, waits for and reaches an agent.

The flows are the ``ivr_flows/`` copy that is open around the clock (see
``test_sample_hotline``); the queues are ``deploy/acd_queues.yaml`` with each agent's
phone on the test bed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from acd.sim import with_testbed_phones
from tests.e2e.test_sample_hotline import CALL_VARS, OPEN_ALWAYS, SKIP_ID, path, sample_flows
from tests.fixtures.acd import Acd, kinds
from tests.fixtures.daemon import REPO, call_row

pytestmark = [pytest.mark.asterisk, pytest.mark.postgres]


async def test_caller_goes_from_the_ivr_to_the_agent_with_the_right_skills(
    start_acd: Callable[..., Acd], tmp_path: Path, pg_url: str
) -> None:
    flows = sample_flows(tmp_path / "open", OPEN_ALWAYS)
    queues = with_testbed_phones((REPO / "deploy" / "acd_queues.yaml").read_text(), talk=3)
    acd = start_acd(queues, ACD_IVR__FLOWS_DIR=str(flows), ACD_IVR__ENTRY_FLOW="hotline")
    # Jonas (1002) speaks only German; Emily (1003) English. Jonas is longest idle.
    await acd.login("1002", "Local/r1t3-1002@acd-sim-agent")
    await acd.login("1003", "Local/r1t3-1003@acd-sim-agent")

    english = await acd.callers.place(
        f"1{SKIP_ID}1", caller_number="4930555260", context="acd-ivr", variables=CALL_VARS
    )
    answer = await acd.wait_event("answer", english.uniqueid, within=60)
    assert answer["agent_id"] == "1003"  # the English-speaking agent, though not longest idle
    assert answer["queue"] == "sales"
    done = await acd.wait_event("complete", english.uniqueid, within=20)
    assert done["hung_up_by"] == "agent"
    assert kinds(acd.queue_events(english.uniqueid))[0] == "enqueue"
    # The IVR path is stored as before, and the call has one row from prompt to agent.
    assert [node for node, _, _ in path(pg_url, english.uniqueid)][-1] == "sales"
    row = call_row(pg_url, english.uniqueid)
    assert (row["route"], row["ivr_outcome"], row["queue"], row["agent_id"]) == (
        "flow",
        "queue",
        "sales",
        "1003",
    )
    assert row["queue_outcome"] == "connected"
    assert row["ended_at"] >= done["at"]  # the record closes when the talk ended
