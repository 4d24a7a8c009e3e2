"""The sample "Nordbank" hotline (``ivr_flows/hotline.yaml``) on real calls.

Scripted callers go through the Asterisk test bed into ``[acd-ivr]``; each test checks
the path the daemon stored in ``ivr_steps`` (node ids in order, per uniqueid) and how the
IVR let go of the call (the dialplan's ``AcdIvrOutcome`` UserEvent, ``calls``).

The flows run from a copy of ``ivr_flows/`` whose ``office`` schedule is rewritten to be
open around the clock or closed every day, so no test depends on the time of day. Calls
of one test run side by side to keep the file short.

Timing (prompt lengths from the GSM files, 1650 bytes/s). A caller's first key goes out
``SIM_DELAY`` + about 0.5 s after the call is placed; every key then takes 0.35 s
(``SIM_GAP`` 250 ms + 100 ms tone) and every ``w`` 0.5 s:

- ``welcome`` "hello" 0.8 s, not interruptible; ``pick_language`` 7.4 s of prompts,
  then 4 s of silence: the first key (SIM_DELAY 3) lands 2.4 s into the language
  prompt; with no key it gives up (English) 23.6 s into the call;
- ``identify`` "your" 0.64 + "number" 0.92 + "followed by the pound key" 1.52 s, then
  4 s per digit: ``wwww`` after the language key puts the next key 2.25 s into it, in
  the middle of the last file (``GET DATA``). ``#`` alone skips it (nothing keyed);
- ``main_menu`` "basic-pbx-ivr-main" 25.4 s: keys ``ww`` later land early in it;
  a wrong key adds "pm-invalid-option" (3.22 s) in front, so keys ``www`` apart
  land in that one;
- ``closed_menu`` 8.7 s of prompts + 5 s silence, twice, then the mailbox (27.4 s).

Measured (``ivr_steps.at`` - ``calls.started_at``): welcome 0.8 s, language key 3.2 s,
"#" in identify 5.6 s; with no language key, identify from 23.7 s and "#" at 27.2 s.
The main menu's own fallback (three silences, about 100 s of prompts) is not run here.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from acd.ami import AmiLink
from acd.ivr.loader import load_flows
from acd.sim import CallSimulator, SimulatedCall
from tests.fixtures.daemon import REPO, DaemonProcess, call_row

pytestmark = [pytest.mark.asterisk, pytest.mark.postgres]

SAMPLE = REPO / "ivr_flows"
OPEN_ALWAYS = 'mon-sun: ["00:00-24:00"]'
CLOSED_ALWAYS = "mon-sun: closed"
TERMINAL = {"queue", "transfer", "voicemail", "hangup", "callback", "caller_hangup", "error"}

# The first key lands in the language prompt; see the module docstring for the rest.
CALL_VARS: dict[str, str | float] = {"SIM_DELAY": 3, "SIM_HOLD": 30}
# Keys after the language key: skip identification with "#", then the main menu.
SKIP_ID = "wwww#ww"

Step = tuple[str, str, str]  # (node_id, result, digits)


def sample_flows(folder: Path, weekly: str) -> Path:
    """A copy of ``ivr_flows/`` whose ``office`` schedule has only ``weekly`` hours."""
    folder.mkdir()
    for file in SAMPLE.glob("*.yaml"):
        shutil.copy(file, folder / file.name)
    hotline = folder / "hotline.yaml"
    schedule = (
        "schedules:\n"
        "  office:\n"
        "    timezone: Europe/Berlin\n"
        "    weekly:\n"
        f"      {weekly}\n"
        "\n"
        "variables:"
    )
    text, n = re.subn(r"(?ms)^schedules:\n.*?^variables:", schedule, hotline.read_text())
    assert n == 1, "hotline.yaml has no schedules: block before variables:"
    hotline.write_text(text)
    load_flows(folder)  # a broken copy fails here, with the loader's problem list
    return folder


@pytest.fixture
def open_flows(tmp_path: Path) -> Path:
    return sample_flows(tmp_path / "open", OPEN_ALWAYS)


@pytest.fixture
def closed_flows(tmp_path: Path) -> Path:
    return sample_flows(tmp_path / "closed", CLOSED_ALWAYS)


@pytest.fixture
def ivr_callers(ami_client: AmiLink) -> CallSimulator:
    return CallSimulator(ami_client, hotline_context="acd-ivr")


def run_hotline(start_daemon: Callable[..., DaemonProcess], flows: Path) -> DaemonProcess:
    return start_daemon(ACD_IVR__FLOWS_DIR=str(flows), ACD_IVR__ENTRY_FLOW="hotline")


async def place(callers: CallSimulator, script: str, **overrides: str | float) -> SimulatedCall:
    return await callers.place(
        script, caller_number="4930555200", variables={**CALL_VARS, **overrides}
    )


async def outcome(call: SimulatedCall, within: float = 45.0) -> dict[str, str]:
    """The call's ``AcdIvrOutcome`` UserEvent, once the dialplan raised it."""
    deadline = time.monotonic() + within
    while not (found := call.user_events("AcdIvrOutcome")):
        seen = [(e.get("Event"), e.get("UserEvent")) for e in call.events]
        assert time.monotonic() < deadline, f"no AcdIvrOutcome for {call.script}: {seen}"
        assert not call.ended.is_set(), f"{call.script} ended without AcdIvrOutcome: {seen}"
        await asyncio.sleep(0.1)
    return {str(k): str(v) for k, v in found[0].items()}


def steps(pg_url: str, uniqueid: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The ``ivr_steps`` rows of a call in order, once the last (terminal) one is stored."""
    engine = sa.create_engine(pg_url)
    query = sa.text("select * from ivr_steps where uniqueid = :u order by seq")
    try:
        deadline = time.monotonic() + timeout
        while True:
            with engine.connect() as conn:
                got = [dict(r) for r in conn.execute(query, {"u": uniqueid}).mappings()]
            complete = [s["seq"] for s in got] == list(range(1, len(got) + 1))
            if got and complete and got[-1]["result"] in TERMINAL:
                return got
            assert time.monotonic() < deadline, f"path of {uniqueid} incomplete: {got}"
            time.sleep(0.1)
    finally:
        engine.dispose()


def path(pg_url: str, uniqueid: str) -> list[Step]:
    """The nodes a call passed, as (node_id, result, digits)."""
    return [(s["node_id"], s["result"], s["digits"]) for s in steps(pg_url, uniqueid)]


async def routed(pg_url: str, call: SimulatedCall) -> tuple[str, str, str, str]:
    """(outcome, queue, priority, skills) the dialplan got for a call ending in a queue.

    Everything comes from the ``AcdIvrOutcome`` event (the dialplan sends the skills
    ``/``-separated: a comma would start a new UserEvent argument) and must agree with
    the queue step the daemon stored in ``ivr_steps``.
    """
    event = await outcome(call)
    last = steps(pg_url, call.uniqueid)[-1]["detail"]
    assert (last["queue"], str(last["priority"])) == (event["Queue"], event["QueuePriority"])
    assert event["Skills"] == "/".join(last["skills"])
    return (event["Outcome"], event["Queue"], event["QueuePriority"], ",".join(last["skills"]))


def head(language: str, key: str) -> list[Step]:
    """welcome -> language -> identification skipped with "#" -> open."""
    return [
        ("welcome", "played", ""),
        ("pick_language", language, key),
        ("identify", "failure", ""),
        ("check_hours", "open", ""),
    ]


async def test_language_choice_becomes_the_queue_skill(
    start_daemon: Callable[..., DaemonProcess],
    open_flows: Path,
    ivr_callers: CallSimulator,
    pg_url: str,
) -> None:
    run_hotline(start_daemon, open_flows)
    english = await place(ivr_callers, f"1{SKIP_ID}1")  # sales
    german = await place(ivr_callers, f"2{SKIP_ID}2")  # support

    assert await routed(pg_url, english) == ("queue", "sales", "3", "en,loans")
    assert await routed(pg_url, german) == ("queue", "support", "1", "de,online-banking")
    # the channel's language too (the event carries the channel snapshot)
    assert [(await outcome(c))["Language"] for c in (english, german)] == ["en", "de"]
    assert path(pg_url, english.uniqueid) == [
        *head("en", "1"),
        ("main_menu", "choice", "1"),
        ("route_sales", "else", ""),
        ("sales", "queue", ""),
    ]
    assert path(pg_url, german.uniqueid) == [
        *head("de", "2"),
        ("main_menu", "choice", "2"),
        ("route_support", "else", ""),
        ("support", "queue", ""),
    ]
    for call in (english, german):
        row = call_row(pg_url, call.uniqueid)
        assert (row["route"], row["ivr_outcome"], row["disposition"]) == (
            "flow",
            "queue",
            "completed",
        )


async def test_out_of_hours_and_silence_end_in_the_mailbox(
    start_daemon: Callable[..., DaemonProcess],
    closed_flows: Path,
    ivr_callers: CallSimulator,
    pg_url: str,
) -> None:
    """Closed: key 5 leaves a message; no key in the closed menu twice (``retries: 1``)
    ends there too. No key in the language menu twice: English, and the call goes on."""
    run_hotline(start_daemon, closed_flows)
    presses_5 = await place(ivr_callers, f"1{SKIP_ID}5")
    silent = await place(ivr_callers, f"1{SKIP_ID}", SIM_HOLD=45)
    # pick_language gives up 0.8 + 2 x (7.4 + 4) = 23.6 s in; identify listens until
    # 30.7 s, its last file from 25.2 s: "#" at about 27.2 s
    no_language = await place(ivr_callers, "#ww5", SIM_DELAY=27)

    for call in (presses_5, silent, no_language):
        event = await outcome(call, within=60)
        assert (event["Outcome"], event["Mailbox"], event["Language"]) == (
            "voicemail",
            "1000@default",
            "en",
        )
    closed = [("identify", "failure", ""), ("check_hours", "closed", "")]
    assert path(pg_url, presses_5.uniqueid) == [
        ("welcome", "played", ""),
        ("pick_language", "en", "1"),
        *closed,
        ("closed_menu", "choice", "5"),
        ("mailbox", "voicemail", ""),
    ]
    assert path(pg_url, silent.uniqueid) == [
        ("welcome", "played", ""),
        ("pick_language", "en", "1"),
        *closed,
        ("closed_menu", "failure", ""),
        ("mailbox", "voicemail", ""),
    ]
    assert steps(pg_url, silent.uniqueid)[4]["detail"] == {"timeouts": 2, "invalid": 0}
    assert path(pg_url, no_language.uniqueid) == [
        ("welcome", "played", ""),
        ("pick_language", "failure", ""),
        *closed,
        ("closed_menu", "choice", "5"),
        ("mailbox", "voicemail", ""),
    ]
    assert steps(pg_url, no_language.uniqueid)[1]["detail"] == {"timeouts": 2, "invalid": 0}
    for call in (presses_5, silent, no_language):
        row = call_row(pg_url, call.uniqueid)
        assert (row["ivr_outcome"], row["disposition"]) == ("voicemail", "completed")


async def test_wrong_keys_are_asked_again_then_the_operator_takes_over(
    start_daemon: Callable[..., DaemonProcess],
    open_flows: Path,
    ivr_callers: CallSimulator,
    pg_url: str,
) -> None:
    """A wrong key, then a right one; three wrong keys (retries: 2): extension 200."""
    run_hotline(start_daemon, open_flows)
    corrects = await place(ivr_callers, f"1{SKIP_ID}9www2")
    lost = await place(ivr_callers, f"1{SKIP_ID}9www9www9")

    assert await routed(pg_url, corrects) == ("queue", "support", "1", "en,online-banking")
    event = await outcome(lost)
    assert (event["Outcome"], event["Destination"]) == ("transfer", "200")
    assert path(pg_url, corrects.uniqueid) == [
        *head("en", "1"),
        ("main_menu", "choice", "92"),
        ("route_support", "else", ""),
        ("support", "queue", ""),
    ]
    assert steps(pg_url, corrects.uniqueid)[4]["detail"] == {"timeouts": 0, "invalid": 1}
    assert path(pg_url, lost.uniqueid) == [
        *head("en", "1"),
        ("main_menu", "failure", "999"),
        ("operator", "transfer", ""),
    ]
    assert call_row(pg_url, lost.uniqueid)["ivr_outcome"] == "transfer"


async def test_identified_vip_gets_vip_routing_others_standard(
    start_daemon: Callable[..., DaemonProcess],
    open_flows: Path,
    ivr_callers: CallSimulator,
    pg_url: str,
) -> None:
    """1001 (vip) and 1002 (standard) are found, 9999 is not: same key, other routing."""
    run_hotline(start_daemon, open_flows)
    vip_sales = await place(ivr_callers, "2wwww1001#ww1")
    unknown_sales = await place(ivr_callers, "2wwww9999#ww1")
    vip_support = await place(ivr_callers, "1wwww1001#ww2")
    standard_support = await place(ivr_callers, "1wwww1002#ww2")

    assert await routed(pg_url, vip_sales) == ("queue", "sales_vip", "9", "de,loans,vip")
    assert await routed(pg_url, unknown_sales) == ("queue", "sales", "3", "de,loans")
    assert await routed(pg_url, vip_support) == ("queue", "support", "9", "en,online-banking")
    assert await routed(pg_url, standard_support) == ("queue", "support", "1", "en,online-banking")

    def identified(language: str, key: str, account: str, found: bool) -> list[Step]:
        looked_up: list[Step] = (
            [("find_segment", "found", ""), ("remember_segment", "set", "")]
            if found
            else [("find_segment", "not_found", "")]
        )
        return [
            ("welcome", "played", ""),
            ("pick_language", language, key),
            ("identify", "collected", account),
            *looked_up,
            ("check_hours", "open", ""),
        ]

    assert path(pg_url, vip_sales.uniqueid) == [
        *identified("de", "2", "1001", found=True),
        ("main_menu", "choice", "1"),
        ("route_sales", "case 1", ""),
        ("sales_vip", "queue", ""),
    ]
    assert path(pg_url, unknown_sales.uniqueid) == [
        *identified("de", "2", "9999", found=False),
        ("main_menu", "choice", "1"),
        ("route_sales", "else", ""),
        ("sales", "queue", ""),
    ]
    assert path(pg_url, vip_support.uniqueid) == [
        *identified("en", "1", "1001", found=True),
        ("main_menu", "choice", "2"),
        ("route_support", "case 1", ""),
        ("support_vip", "queue", ""),
    ]
    assert path(pg_url, standard_support.uniqueid) == [
        *identified("en", "1", "1002", found=True),
        ("main_menu", "choice", "2"),
        ("route_support", "else", ""),
        ("support", "queue", ""),
    ]
    found = steps(pg_url, vip_sales.uniqueid)[3]["detail"]["values"]
    assert found["segment"] == "vip"
    assert "pin_hash" not in found


async def test_caller_hanging_up_in_the_main_menu(
    start_daemon: Callable[..., DaemonProcess],
    open_flows: Path,
    ivr_callers: CallSimulator,
    pg_url: str,
) -> None:
    run_hotline(start_daemon, open_flows)
    call = await place(ivr_callers, f"1{SKIP_ID}", SIM_HOLD=2)
    await call.wait_ended(30)

    assert not call.user_events("AcdIvrOutcome")
    assert path(pg_url, call.uniqueid) == [
        *head("en", "1"),
        ("main_menu", "caller_hangup", ""),
    ]
    row = call_row(pg_url, call.uniqueid)
    assert (row["disposition"], row["ivr_outcome"]) == ("caller_hangup", "caller_hangup")


async def test_balance_self_service_checks_the_pin(
    start_daemon: Callable[..., DaemonProcess],
    open_flows: Path,
    ivr_callers: CallSimulator,
    pg_url: str,
) -> None:
    """Key 3: account 1001 (keyed at identification) and its PIN hear the balance; a
    wrong PIN hears "login incorrect" and is asked for the account again. The PIN is
    never stored, neither typed nor hashed.

    "agent-pass" (3.3 s) asks for the PIN: ``ww`` after the menu key lands in it.
    """
    run_hotline(start_daemon, open_flows)
    right = await place(ivr_callers, "1wwww1001#ww3ww1234#", SIM_HOLD=8)
    wrong = await place(ivr_callers, "1wwww1001#ww3ww9999#", SIM_HOLD=8)
    await asyncio.gather(right.wait_ended(60), wrong.wait_ended(60))

    right_path = path(pg_url, right.uniqueid)
    wrong_path = path(pg_url, wrong.uniqueid)
    assert ("main_menu", "choice", "3") in right_path
    assert ("ask_pin", "collected", "****") in right_path
    assert ("find_account", "found", "") in right_path
    nodes = [node for node, _, _ in right_path]
    assert nodes.index("find_account") < nodes.index("say_you_have")
    assert "wrong_login" not in nodes

    assert ("ask_pin", "collected", "****") in wrong_path
    assert ("find_account", "pin_mismatch", "") in wrong_path
    wrong_nodes = [node for node, _, _ in wrong_path]
    assert wrong_nodes[wrong_nodes.index("find_account") + 1] == "wrong_login"
    assert "say_you_have" not in wrong_nodes

    stored = " ".join(
        f"{s['digits']} {s['result']} {s['detail']}"
        for uid in (right.uniqueid, wrong.uniqueid)
        for s in steps(pg_url, uid)
    )
    assert "1234" not in stored and "9999" not in stored
    assert "scrypt$" not in stored
