"""First calls end to end: the real Asterisk test bed places simulated callers into the
hotline, the daemon (its own process) serves them over FastAGI, and each call leaves a
``calls`` row in PostgreSQL.

The greeting here is a long prompt (queue-periodic-announce, 7.8 s) so that a caller
can press a key or hang up while it plays.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import pytest

from acd.ami import AmiLink
from acd.sim import CallSimulator, SimulatedCall
from tests.fixtures.daemon import DaemonProcess, call_row
from tests.fixtures.postgres import TcpProxy
from tests.fixtures.testbed import Testbed

pytestmark = [pytest.mark.asterisk, pytest.mark.postgres]

LONG_PROMPT = "queue-periodic-announce"


def prompts_played(call: SimulatedCall) -> list[str]:
    """AGI commands the daemon ran on the call, as Asterisk reports them (AGIExecStart)."""
    return [str(e.get("Command", "")) for e in call.events if e.get("Event") == "AGIExecStart"]


def choice(call: SimulatedCall) -> str | None:
    found = call.user_events("AcdChoice")
    return str(found[0].get("Choice")) if found else None


@pytest.fixture
def daemon(start_daemon: Callable[..., DaemonProcess]) -> DaemonProcess:
    return start_daemon(ACD_HOTLINE__PROMPT=LONG_PROMPT, ACD_HOTLINE__WAIT_MS="2000")


async def test_caller_presses_a_key_and_the_dialplan_acts_on_it(
    daemon: DaemonProcess, callers: CallSimulator, pg_url: str
) -> None:
    call = await callers.place(
        "4", caller_number="4930555100", caller_name="Ada Caller", variables={"SIM_DELAY": 1}
    )
    await call.wait_ended(30)

    assert any(c.startswith(f"STREAM FILE {LONG_PROMPT}") for c in prompts_played(call)), (
        prompts_played(call)
    )
    # The dialplan read ACD_CHOICE (set by the daemon) and went to the key's extension.
    assert choice(call) == "4"
    row = call_row(pg_url, call.uniqueid)
    assert row["disposition"] == "completed"
    assert row["route"] == "hotline"
    assert row["caller_number"] == "4930555100"
    assert row["caller_name"] == "Ada Caller"
    assert row["dialed_number"] is None
    assert row["answered_at"] is not None
    assert row["started_at"] <= row["answered_at"] <= row["ended_at"]
    # The key interrupted the 7.8 s prompt: the session was short.
    assert row["ended_at"] - row["started_at"] < timedelta(seconds=6)


async def test_two_callers_at_once_get_their_own_choice(
    daemon: DaemonProcess, callers: CallSimulator, pg_url: str
) -> None:
    first = await callers.place("2", caller_number="100", variables={"SIM_DELAY": 1.5})
    second = await callers.place("9", caller_number="200", variables={"SIM_DELAY": 1})
    await asyncio.gather(first.wait_ended(30), second.wait_ended(30))
    assert (choice(first), choice(second)) == ("2", "9")
    assert call_row(pg_url, first.uniqueid)["caller_number"] == "100"
    assert call_row(pg_url, second.uniqueid)["caller_number"] == "200"


async def test_caller_who_presses_nothing_gets_no_choice(
    start_daemon: Callable[..., DaemonProcess], callers: CallSimulator, pg_url: str
) -> None:
    start_daemon(ACD_HOTLINE__PROMPT="beep", ACD_HOTLINE__WAIT_MS="1000")
    call = await callers.place("silent", exten="4930123456")
    await call.wait_ended(30)
    assert choice(call) == "none"
    row = call_row(pg_url, call.uniqueid)
    assert row["disposition"] == "completed"
    assert row["dialed_number"] == "4930123456"


async def test_caller_hangs_up_during_the_prompt(
    daemon: DaemonProcess, callers: CallSimulator, pg_url: str
) -> None:
    call = await callers.place("hangup", variables={"SIM_DELAY": 2})
    await call.wait_ended(30)
    hangup_seen = asyncio.get_running_loop().time()

    assert choice(call) is None  # the dialplan never got to act on a choice
    row = call_row(pg_url, call.uniqueid)
    assert row["disposition"] == "caller_hangup"
    # Ended when the caller hung up (2 s + answer), well before the 7.8 s prompt's end.
    duration = row["ended_at"] - row["started_at"]
    assert timedelta(seconds=1.5) < duration < timedelta(seconds=5), duration
    assert hangup_seen - call.placed_at < 8
    # The daemon logged a clean caller hangup for that call, and no failure.
    hangups = [e for e in daemon.events("agi_caller_hangup") if e.get("uniqueid") == call.uniqueid]
    assert hangups, daemon.log_tail()
    assert not [
        e
        for e in daemon.events()
        if e.get("uniqueid") == call.uniqueid and e.get("level") in ("error", "critical")
    ]


async def test_daemon_down_sends_callers_to_the_fallback(
    start_daemon: Callable[..., DaemonProcess], callers: CallSimulator, asterisk: Testbed
) -> None:
    daemon = start_daemon()
    assert daemon.terminate() == 0
    call = await callers.place("silent", variables={"SIM_HOLD": 5})
    await call.wait_ended(30)
    fallback = call.user_events("AcdFallback")
    assert fallback and fallback[0].get("Reason") == "FAILURE"


async def test_sigterm_lets_the_call_in_progress_finish_and_refuses_new_ones(
    start_daemon: Callable[..., DaemonProcess], callers: CallSimulator, pg_url: str
) -> None:
    daemon = start_daemon(ACD_HOTLINE__PROMPT=LONG_PROMPT)
    in_progress = await callers.place("7", variables={"SIM_DELAY": 4})
    await asyncio.sleep(2)  # the caller is listening to the greeting now
    daemon.proc.send_signal(15)
    daemon.wait_event("shutdown_requested")

    late = await callers.place("silent", variables={"SIM_HOLD": 5})
    await asyncio.gather(in_progress.wait_ended(30), late.wait_ended(30))
    exit_code = await asyncio.to_thread(daemon.proc.wait, 30)

    assert exit_code == 0
    assert choice(in_progress) == "7"  # the call in progress was served to its end
    assert call_row(pg_url, in_progress.uniqueid)["disposition"] == "completed"
    assert late.user_events("AcdFallback")  # the new call went to the fallback
    assert daemon.events("daemon_stopped")


async def test_ami_link_comes_back_after_asterisk_restarts(
    daemon: DaemonProcess,
    asterisk: Testbed,
    ami_client: AmiLink,
    callers: CallSimulator,
    pg_url: str,
) -> None:
    daemon.wait_event("ami_up")
    await asyncio.to_thread(asterisk.restart)
    asterisk.set_agi_port(daemon.agi_port)  # a restart reloads the dialplan's default

    daemon.wait_event("ami_down")
    daemon.wait_event("ami_up", count=2, timeout=30)
    assert daemon.proc.poll() is None
    assert await ami_client.wait_up(30)  # the test's own link came back the same way

    call = await callers.place("3", variables={"SIM_DELAY": 1})
    await call.wait_ended(30)
    assert choice(call) == "3"
    assert call_row(pg_url, call.uniqueid)["disposition"] == "completed"


async def test_calls_are_served_while_postgres_is_down_and_recorded_when_it_is_back(
    start_daemon: Callable[..., DaemonProcess],
    callers: CallSimulator,
    pg_url: str,
    pg_proxy: TcpProxy,
) -> None:
    pg_proxy.down()
    daemon = start_daemon(ACD_DATABASE__URL=pg_proxy.url(pg_url), ACD_HOTLINE__PROMPT="beep")
    call = await callers.place("5", variables={"SIM_DELAY": 1})
    await call.wait_ended(30)
    assert choice(call) == "5"  # the hotline worked without its database
    assert daemon.events("db_migrate_failed")

    pg_proxy.up()
    row = await asyncio.to_thread(call_row, pg_url, call.uniqueid, 60.0)
    assert row["disposition"] == "completed"
    assert row["caller_number"] == "5550100"
