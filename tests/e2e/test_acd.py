"""The ACD with real calls: Asterisk's simulated callers wait in the daemon's queues and
its simulated agents' phones ring, answer and hang up.

Each test runs its own daemon with its own queues file; agent ids are unique per test
because the test database is shared by the whole run. What is asserted is what a
supervisor would see in the records: who answered, in which order, how long callers
waited, which agent went not ready and why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from tests.fixtures.acd import Acd, kinds, phone

pytestmark = [pytest.mark.asterisk, pytest.mark.postgres]


def one_queue(agents: dict[str, str], queue: str = "general", **queue_fields: str) -> str:
    """A queues file: one queue and some agents (id -> skills YAML) on test-bed phones."""
    fields = {"ring_timeout": "5s", "wrap_up": "0s", "announce": "{every: 30s}", **queue_fields}
    lines = ["queues:", f"  {queue}:"]
    lines += [f"    {k}: {v}" for k, v in fields.items()]
    lines.append("agents:")
    for agent, skills in agents.items():
        lines += [
            f'  "{agent}":',
            f"    skills: {skills}",
            f"    queues: [{queue}]",
        ]
    return "\n".join(lines) + "\n"


async def test_longest_idle_agent_gets_the_call(start_acd: Callable[..., Acd]) -> None:
    acd = start_acd(one_queue({"3101": "{en: 5}", "3102": "{en: 5}"}))
    await acd.login("3101", phone("3101", talk=2))
    await acd.login("3102", phone("3102", talk=2))

    first = await acd.caller("general", number="5553101")
    answer = await acd.wait_event("answer", first.uniqueid)
    assert answer["agent_id"] == "3101"  # idle since its login, before 3102's
    await acd.wait_event("complete", first.uniqueid)

    # 3101 just finished a call; 3102 has been idle since its login: 3102 is next.
    second = await acd.caller("general", number="5553102")
    assert (await acd.wait_event("answer", second.uniqueid))["agent_id"] == "3102"
    done = await acd.wait_event("complete", second.uniqueid)
    assert done["talk_s"] >= 1.5
    assert done["hung_up_by"] == "agent"  # the simulated agent hangs up after talking
    row = acd.call(first.uniqueid)
    assert row is not None
    assert (row["queue"], row["agent_id"], row["queue_outcome"]) == (
        "general",
        "3101",
        "connected",
    )


async def test_spanish_caller_waits_for_spanish_agent_until_relaxation(
    start_acd: Callable[..., Acd],
) -> None:
    acd = start_acd(
        one_queue(
            {"3201": "{en: 5}", "3202": "{es: 5, en: 2}"},
            stages="[{after: 6s, drop: [es]}]",
        )
    )
    await acd.login("3201", phone("3201", talk=2))  # longest idle, but speaks no Spanish
    await acd.login("3202", phone("3202", talk=10))

    first = await acd.caller("general", number="5553201", skills="es")
    assert (await acd.wait_event("answer", first.uniqueid))["agent_id"] == "3202"

    # The Spanish agent is now talking for 10 s; the English one is free.
    second = await acd.caller("general", number="5553202", skills="es")
    answer = await acd.wait_event("answer", second.uniqueid, within=20)
    assert answer["agent_id"] == "3201"
    assert answer["wait_s"] >= 6.0  # not before the relaxation stage opened
    assert answer["wait_s"] < 10.0  # and not only when the Spanish agent was free again
    offers = [e for e in acd.queue_events(second.uniqueid) if e["kind"] == "offer"]
    assert [e["agent_id"] for e in offers] == ["3201"]


async def test_vip_caller_is_answered_before_earlier_callers(
    start_acd: Callable[..., Acd],
) -> None:
    acd = start_acd(one_queue({"3301": "{en: 5}"}, aging="60s"))
    await acd.login("3301", phone("3301", talk=3))
    busy = await acd.caller("general", number="5553300")
    await acd.wait_event("answer", busy.uniqueid)

    normal1 = await acd.caller("general", number="5553301", priority=0)
    await acd.wait_event("enqueue", normal1.uniqueid)
    normal2 = await acd.caller("general", number="5553302", priority=0)
    await acd.wait_event("enqueue", normal2.uniqueid)
    vip = await acd.caller("general", number="5553309", priority=9)
    enqueued = await acd.wait_event("enqueue", vip.uniqueid)
    assert enqueued["position"] == 1  # told at once it is next

    order = []
    for call in (vip, normal1, normal2):
        answer = await acd.wait_event("answer", call.uniqueid, within=30)
        order.append((answer["at"], call.caller_number))
    assert [number for _, number in sorted(order)] == ["5553309", "5553301", "5553302"]


async def test_agent_who_does_not_answer_goes_not_ready_and_caller_keeps_place(
    start_acd: Callable[..., Acd],
) -> None:
    acd = start_acd(one_queue({"3401": "{en: 5}", "3402": "{en: 5}"}, ring_timeout="3s"))
    await acd.login("3401", "Local/noanswer-3401@acd-sim-agent")  # longest idle, never answers
    await acd.code("*44", "Local/noanswer-3401@acd-sim-agent")  # not ready for now
    await acd.login("3402", phone("3402", talk=6))
    busy = await acd.caller("general", number="5553400")
    assert (await acd.wait_event("answer", busy.uniqueid))["agent_id"] == "3402"

    first = await acd.caller("general", number="5553401")
    await acd.wait_event("enqueue", first.uniqueid)
    second = await acd.caller("general", number="5553402")
    await acd.wait_event("enqueue", second.uniqueid)
    await acd.code("*43", "Local/noanswer-3401@acd-sim-agent")  # 3401 ready: rings for first

    rna = await acd.wait_event("ring_no_answer", first.uniqueid, within=15)
    assert rna["agent_id"] == "3401"
    assert rna["position"] == 1  # back at the head of the queue, ahead of the second caller
    await acd.wait_agent_state("3401", "not_ready", reason="ring_no_answer")

    # 3402 frees up next and takes the first caller, then the second.
    assert (await acd.wait_event("answer", first.uniqueid, within=20))["agent_id"] == "3402"
    assert (await acd.wait_event("answer", second.uniqueid, within=20))["agent_id"] == "3402"
    steps = [k for k in kinds(acd.queue_events(first.uniqueid)) if k != "announce"]
    assert steps[:5] == ["enqueue", "offer", "ring_no_answer", "offer", "answer"]


async def test_caller_who_abandons_is_recorded_with_wait_and_position(
    start_acd: Callable[..., Acd],
) -> None:
    acd = start_acd(one_queue({"3501": "{en: 5}"}))
    await acd.login("3501", phone("3501", talk=8))
    busy = await acd.caller("general", number="5553500")
    await acd.wait_event("answer", busy.uniqueid)
    ahead = await acd.caller("general", number="5553501")
    await acd.wait_event("enqueue", ahead.uniqueid)

    leaver = await acd.caller("general", number="5553502", script="hangup", delay=3)
    abandon = await acd.wait_event("abandon", leaver.uniqueid, within=15)
    assert abandon["position"] == 2
    assert 2.5 <= abandon["wait_s"] <= 6.0
    row = await acd.wait_for(lambda: acd.call(leaver.uniqueid), 5, "no calls row")
    assert row["queue_outcome"] == "abandoned"
    assert row["disposition"] == "caller_hangup"


async def test_wrap_up_time_is_respected(start_acd: Callable[..., Acd]) -> None:
    acd = start_acd(one_queue({"3601": "{en: 5}"}, wrap_up="4s"))
    await acd.login("3601", phone("3601", talk=1))
    first = await acd.caller("general", number="5553601")
    await acd.wait_event("answer", first.uniqueid)
    second = await acd.caller("general", number="5553602")
    done = await acd.wait_event("complete", first.uniqueid)
    answer = await acd.wait_event("answer", second.uniqueid, within=20)
    gap = (answer["at"] - done["at"]).total_seconds()
    assert gap >= 4.0  # no offer during wrap-up
    assert gap < 4.0 + 1.5 + 2.0  # and the next caller right after it (ring 1 s + answer)
    states = [e["state"] for e in acd.agent_events("3601")]
    assert "wrap_up" in states
    assert states[states.index("wrap_up") + 1] == "ready"

    # Stopping the daemon ends the agent's session, and the records say so.
    await acd.wait_event("complete", second.uniqueid)
    assert acd.daemon.terminate() == 0
    last = acd.agent_events("3601")[-1]
    assert (last["state"], last["reason"]) == ("logged_out", "daemon_stopped")


async def test_callback_keeps_the_place_and_is_placed_agent_first(
    start_acd: Callable[..., Acd],
) -> None:
    acd = start_acd(one_queue({"3701": "{en: 5}"}, callback_key='"1"'))
    await acd.login("3701", phone("3701", talk=4))
    busy = await acd.caller("general", number="5553700")
    await acd.wait_event("answer", busy.uniqueid)

    # Presses 1 after 2 s of waiting, hears the confirmation, hangs up.
    asker = await acd.caller("general", number="5553701", script="1", delay=2, hold=4)
    await acd.wait_event("enqueue", asker.uniqueid)
    later = await acd.caller("general", number="5553702")
    requested = await acd.wait_event("callback_requested", asker.uniqueid, within=15)
    assert requested["position"] == 1
    await asker.wait_ended(15)

    placed = await acd.wait_event("callback_placed", asker.uniqueid, within=20)
    assert placed["agent_id"] == "3701"
    answer = await acd.wait_event("answer", asker.uniqueid, within=15)
    assert answer["detail"].get("callback") is True
    later_answer = await acd.wait_event("answer", later.uniqueid, within=30)
    assert later_answer["at"] > answer["at"]  # the callback kept its place ahead
    done = await acd.wait_event("complete", asker.uniqueid, within=15)
    assert done["talk_s"] > 1.0
    row = acd.call(asker.uniqueid)
    assert row is not None and row["queue_outcome"] == "callback"


async def test_fifty_callers_ten_agents_nobody_lost_no_double_offer(
    start_acd: Callable[..., Acd],
) -> None:
    agents = {str(3800 + i): "{en: 5}" for i in range(10)}
    acd = start_acd(one_queue(agents, announce="{every: 5s}"))
    await asyncio.gather(*(acd.login(a, phone(a, ring=1, talk=2)) for a in agents))

    calls = []
    for i in range(50):
        # Every fifth caller gives up after 4 s; the others wait up to a minute.
        if i % 5 == 4:
            calls.append(
                await acd.caller("general", number=f"55538{i:02d}", script="hangup", delay=4)
            )
        else:
            calls.append(await acd.caller("general", number=f"55538{i:02d}", hold=60))
        await asyncio.sleep(0.05)

    async def outcome(uniqueid: str) -> str:
        def ended() -> str | None:
            found = set(kinds(acd.queue_events(uniqueid)))
            return "complete" if "complete" in found else "abandon" if "abandon" in found else None

        result: str = await acd.wait_for(ended, 90, f"{uniqueid} neither answered nor abandoned")
        return result

    outcomes = await asyncio.gather(*(outcome(c.uniqueid) for c in calls))
    assert len(outcomes) == 50
    assert outcomes.count("complete") >= 30
    # Each agent holds one offer at a time: between an offer and its end (ring no answer,
    # the caller hanging up while it rang, or the call's completion) comes no other offer.
    events = [e for e in acd.queue_events() if e["agent_id"] in agents or e["kind"] == "abandon"]
    holding: dict[str, str] = {}
    for event in events:
        agent, interaction = event["agent_id"], event["interaction_id"]
        if event["kind"] == "offer":
            assert agent not in holding, f"{agent} offered {interaction} while holding {holding}"
            holding[agent] = interaction
        elif event["kind"] in ("ring_no_answer", "complete"):
            holding.pop(agent, None)
        elif event["kind"] == "abandon":
            for who, held in list(holding.items()):
                if held == interaction:
                    del holding[who]
    for call in calls:
        row = await acd.wait_for(lambda c=call: acd.call(c.uniqueid), 10, "no calls row")
        assert row["queue_outcome"] in ("connected", "abandoned")


async def test_agent_drives_the_session_from_the_phone(start_acd: Callable[..., Acd]) -> None:
    acd = start_acd(one_queue({"4001": "{en: 5}"}))
    desk = phone("4001", talk=2)
    await acd.login("4001", desk)
    await acd.code("*442", desk)  # not ready: 2 = lunch in the default reason codes
    await acd.wait_agent_state("4001", "not_ready", reason="lunch")

    caller = await acd.caller("general", number="5554001")
    await acd.wait_event("enqueue", caller.uniqueid)
    await asyncio.sleep(2.0)
    assert acd.offers(caller.uniqueid) == []  # nobody rings an agent at lunch

    await acd.code("*43", desk)
    assert (await acd.wait_event("answer", caller.uniqueid))["agent_id"] == "4001"
    await acd.wait_event("complete", caller.uniqueid)
    await acd.code("*42", desk)
    await acd.wait_agent_state("4001", "logged_out")

    after = await acd.caller("general", number="5554002")
    await acd.wait_event("enqueue", after.uniqueid)
    await asyncio.sleep(2.0)
    assert acd.offers(after.uniqueid) == []
    states = [(e["state"], e["reason"]) for e in acd.agent_events("4001")]
    assert states == [
        ("ready", None),
        ("not_ready", "lunch"),
        ("ready", None),
        ("logged_out", None),
    ]
    assert {e["device"] for e in acd.agent_events("4001")[:-1]} == {desk}

    # An id nobody configured is refused, and nothing is recorded for it.
    await acd.code("*419999", phone("9999"))
    assert acd.daemon.wait_event("acd_agent_code_refused", timeout=5)
    assert acd.agent_events("9999") == []


async def test_queues_file_edit_changes_routing_without_restart(
    start_acd: Callable[..., Acd],
) -> None:
    text = one_queue({"4101": "{en: 5}"})
    acd = start_acd(text)
    await acd.login("4101", phone("4101", talk=2))
    caller = await acd.caller("general", number="5554101", skills="fr")
    await acd.wait_event("enqueue", caller.uniqueid)

    # A broken edit (level 11) is refused with file, line and field; nothing changes.
    acd.queues_file.write_text(text.replace("{en: 5}", "{en: 5, fr: 11}"), encoding="utf-8")
    problems = acd.daemon.wait_event("acd_queues_problem", timeout=10)
    assert str(acd.queues_file) in problems[0]["problem"]
    assert "agents.4101.skills.fr" in problems[0]["problem"]
    await asyncio.sleep(1.0)
    assert acd.offers(caller.uniqueid) == []

    # The agent learned French: the waiting caller is offered without a restart.
    acd.queues_file.write_text(text.replace("{en: 5}", "{en: 5, fr: 3}"), encoding="utf-8")
    answer = await acd.wait_event("answer", caller.uniqueid, within=15)
    assert answer["agent_id"] == "4101"
    assert acd.daemon.proc.poll() is None


async def test_announcements_give_position_then_wait_from_handle_times(
    start_acd: Callable[..., Acd],
) -> None:
    acd = start_acd(one_queue({"4201": "{en: 5}"}, announce="{every: 3s}"))
    desk = phone("4201", talk=3)
    await acd.login("4201", desk)
    await acd.code("*441", desk)  # on a break: the first caller has to wait

    early = await acd.caller("general", number="5554201")
    first = await acd.wait_event("announce", early.uniqueid)
    assert first["position"] == 1
    assert "expected_wait_s" not in first["detail"]  # no call handled yet: no guess
    await acd.code("*43", desk)
    handled = await acd.wait_event("complete", early.uniqueid, within=20)

    busy = await acd.caller("general", number="5554202")
    await acd.wait_event("answer", busy.uniqueid)
    waiting = await acd.caller("general", number="5554203")
    told = await acd.wait_event("announce", waiting.uniqueid)
    # One staffed agent, one caller ahead of nobody: the wait is one recent handle time.
    assert told["position"] == 1
    assert told["detail"]["expected_wait_s"] == pytest.approx(handled["talk_s"], abs=0.2)
    await acd.wait_event("answer", waiting.uniqueid, within=20)


async def test_overflow_to_another_queue_and_timeout_at_max_wait(
    start_acd: Callable[..., Acd],
) -> None:
    queues = """\
queues:
  front:
    overflow: {after: 3s, to: backup}
    announce: false
  backup:
    ring_timeout: 5s
    announce: false
  night:
    max_wait: 3s
    announce: false
agents:
  "4301":
    skills: {en: 5}
    queues: [backup]
"""
    acd = start_acd(queues)
    await acd.login("4301", phone("4301", talk=2))

    moved = await acd.caller("front", number="5554301")
    overflow = await acd.wait_event("overflow", moved.uniqueid)
    assert overflow["detail"]["to_queue"] == "backup"
    assert 2.8 <= overflow["wait_s"] <= 4.5
    answer = await acd.wait_event("answer", moved.uniqueid)
    assert (answer["queue"], answer["agent_id"]) == ("backup", "4301")

    late = await acd.caller("night", number="5554302")
    timeout = await acd.wait_event("timeout", late.uniqueid)
    assert 2.8 <= timeout["wait_s"] <= 4.5
    await late.wait_ended(15)  # the dialplan thanks the caller and hangs up
    said = late.user_events("AcdIvrOutcome")
    assert said and said[0].get("Outcome") == "queue_timeout"
    row = await acd.wait_for(lambda: acd.call(late.uniqueid), 5, "no calls row")
    assert row["queue_outcome"] == "timeout"


async def test_agent_in_two_queues_takes_the_longest_waiting_call_across_them(
    start_acd: Callable[..., Acd],
) -> None:
    queues = """\
queues:
  sales: {announce: false}
  support: {announce: false}
agents:
  "4401": {skills: {en: 5}, queues: [sales, support]}
"""
    acd = start_acd(queues)
    await acd.login("4401", phone("4401", talk=3))
    busy = await acd.caller("sales", number="5554400")
    await acd.wait_event("answer", busy.uniqueid)

    support = await acd.caller("support", number="5554401")  # waits longest
    await acd.wait_event("enqueue", support.uniqueid)
    sales = await acd.caller("sales", number="5554402")
    await acd.wait_event("enqueue", sales.uniqueid)

    first = await acd.wait_event("answer", support.uniqueid, within=20)
    second = await acd.wait_event("answer", sales.uniqueid, within=20)
    assert first["at"] < second["at"]
    assert (first["queue"], second["queue"]) == ("support", "sales")
