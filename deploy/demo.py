"""Demo: real calls through the daemon on the Asterisk 22 test bed.

Run by ``./dev demo`` (which brings the test bed and PostgreSQL up first). Starts
``acd run`` as its own process, places simulated callers through AMI, and prints what
happened to each, read back from what the daemon wrote to PostgreSQL:

1. callers through the built-in greeting (``[acd-hotline]``);
2. the ACD: agents of the sample ``deploy/acd_queues.yaml`` log in from their (simulated)
   phones, callers wait in its queues and are connected agent first;
3. callers through the sample YAML flow ``ivr_flows/hotline.yaml`` (``[acd-ivr]``),
   which hands them to the same queues when the office is open.

Then stops the daemon with SIGTERM, as systemd would.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from acd.ami import AmiLink
from acd.config import AmiSettings
from acd.log import configure_logging
from acd.sim import QUEUE_CONTEXT, CallSimulator, DaemonProcess, SimulatedCall, with_testbed_phones

REPO = Path(__file__).resolve().parents[1]
TESTBED = REPO / "deploy" / "testbed" / "asterisk-testbed"


@dataclass(frozen=True)
class Caller:
    """One scripted caller of the demo."""

    story: str
    script: str
    number: str
    name: str
    exten: str = "s"
    delay: float = 1.0


CALLERS = [
    Caller("presses 1 during the greeting", "1", "4930555101", "Ada"),
    Caller("presses 2 after the greeting", "2", "4930555102", "Bob", delay=3.0),
    Caller("dials DID 4930123456, presses nothing", "silent", "4930555103", "Cleo", "4930123456"),
    Caller("hangs up in the middle of the greeting", "hangup", "4930555104", "Dan", delay=0.8),
    Caller("presses 9 (calling at the same time as Fay)", "9", "4930555105", "Eve", delay=1.2),
    Caller("presses # (calling at the same time as Eve)", "#", "4930555106", "Fay", delay=1.0),
]


# Callers of the sample flow (ivr_flows/hotline.yaml) through [acd-ivr]. Keys are timed
# against the stock prompts: language menu, then "your number, followed by the pound key",
# then the main menu. Whether the office is open depends on the time in Berlin.
IVR_CALLERS = [
    Caller("English, VIP account 1001, sales", "1ww1001#wwww1", "4930555201", "Gil", delay=2.0),
    Caller(
        "German, unknown account 9999, support", "2ww9999#wwww2", "4930555202", "Hal", delay=2.0
    ),
    Caller(
        "English, no account keyed, sales", "1" + "w" * 17 + "1", "4930555203", "Ivy", delay=2.0
    ),
    Caller("hangs up in the language menu", "hangup", "4930555204", "Jo", delay=2.0),
]


# The ACD part: agents of deploy/acd_queues.yaml on simulated phones (ring 1 s, talk 6 s),
# and callers sent straight to [acd-queue] with the skills and priority an IVR would set.
ACD_AGENTS = ["1001", "1004"]  # Anna (sales, German and English), Mehmet (support)
ACD_CALLERS = [
    (Caller("German, loans", "silent", "4930555301", "Kim"), "sales", "de,loans", 3),
    (Caller("English, loans", "silent", "4930555302", "Lea"), "sales", "en,loans", 3),
    (Caller("German, online banking", "silent", "4930555303", "Max"), "support", "de", 1),
    (
        Caller("English, loans, VIP: jumps the queue", "silent", "4930555304", "Ned"),
        "sales",
        "en,loans",
        9,
    ),
    (
        Caller("German, presses 1: call me back", "1", "4930555305", "Ola", delay=3.0),
        "sales",
        "de",
        3,
    ),
    (
        Caller("German, gives up after 4 s", "hangup", "4930555306", "Pia", delay=4.0),
        "sales",
        "de",
        3,
    ),
]


def demo_queues(path: Path) -> Path:
    """The sample queues file with each agent's phone on the test bed (a Local channel
    that answers after 1 s and talks 6 s) and wrap-up shortened to 2 s for the demo."""
    text = with_testbed_phones((REPO / "deploy" / "acd_queues.yaml").read_text(encoding="utf-8"))
    text = re.sub(r"wrap_up: \d+s", "wrap_up: 2s", text)
    path.write_text(text, encoding="utf-8")
    return path


async def run_acd(settings: AmiSettings) -> list[tuple[Caller, SimulatedCall]]:
    ami = AmiLink(settings)
    await ami.start()
    if not await ami.wait_up(10):
        raise SystemExit("cannot log in to the test bed's AMI")
    sim = CallSimulator(ami)
    placed = []
    try:
        for agent in ACD_AGENTS:
            device = f"Local/r1t6-{agent}@acd-sim-agent"
            await sim.agent_code(f"*41{agent}", device)
            print(f"  agent {agent} dialled *41{agent} on {device}: logged in, ready")
        for caller, queue, skills, priority in ACD_CALLERS:
            call = await sim.place(
                caller.script,
                caller_number=caller.number,
                caller_name=caller.name,
                context=QUEUE_CONTEXT,
                variables={
                    "ACD_QUEUE": queue,
                    "ACD_SKILLS": skills,
                    "ACD_PRIORITY": priority,
                    "SIM_DELAY": caller.delay,
                    "SIM_HOLD": 40,
                },
            )
            placed.append((caller, call))
            print(f"  calling: {caller.name:<4} {queue:<8} {caller.story}")
            await asyncio.sleep(0.5)
        await asyncio.gather(*(call.wait_ended(90) for _, call in placed))
    finally:
        await ami.stop()
    return placed


def wait_served(db_url: str, placed: list[tuple[Caller, SimulatedCall]], within: float) -> None:
    """Until every caller was served or gave up (a callback is served after the caller
    hung up: the agent's phone rings first, then the customer's)."""
    engine = sa.create_engine(db_url)
    ids = [call.uniqueid for _, call in placed]
    deadline = time.monotonic() + within
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            done = conn.execute(
                sa.text(
                    "select count(distinct interaction_id) from queue_events"
                    " where interaction_id = any(:ids) and kind in ('complete', 'abandon')"
                ),
                {"ids": ids},
            ).scalar_one()
            if done == len(ids):
                break
            conn.rollback()
            time.sleep(0.5)
    engine.dispose()


def report_acd(db_url: str, placed: list[tuple[Caller, SimulatedCall]], since: float) -> None:
    wait_served(db_url, placed, 90)
    engine = sa.create_engine(db_url)
    header = f"{'caller':<6} {'queue':<8} {'waited':>6}  {'agent':<6} {'talk':>5}  outcome"
    print("\n" + header + "\n" + "-" * len(header))
    with engine.connect() as conn:
        for caller, call in placed:
            events = conn.execute(
                sa.text(
                    "select kind, agent_id, wait_s, talk_s, hung_up_by, position from queue_events"
                    " where interaction_id = :i order by at, id"
                ),
                {"i": call.uniqueid},
            ).all()
            by_kind = {e.kind: e for e in events}
            end = by_kind.get("complete") or by_kind.get("abandon")
            answer = by_kind.get("answer")
            waited = f"{answer.wait_s:5.1f}s" if answer else f"{end.wait_s:5.1f}s" if end else "-"
            talk = f"{end.talk_s:4.1f}s" if end is not None and end.talk_s else "-"
            if "callback_requested" in by_kind:
                outcome = "callback requested, then called back" + (
                    " and connected" if answer else ""
                )
            elif answer:
                outcome = f"connected ({end.hung_up_by} hung up)" if end else "connected"
            elif "abandon" in by_kind:
                outcome = f"abandoned at position {by_kind['abandon'].position}"
            else:
                outcome = "still waiting"
            agent = answer.agent_id if answer else "-"
            queue = next((q for c, q, *_ in ACD_CALLERS if c is caller), "")
            print(f"{caller.name:<6} {queue:<8} {waited:>6}  {agent:<6} {talk:>5}  {outcome}")
        states = conn.execute(
            sa.text(
                "select agent_id, state, coalesce(reason, '') from agent_events"
                " where agent_id = any(:a) and at >= to_timestamp(:since) order by at, id"
            ),
            {"a": ACD_AGENTS, "since": since},
        ).all()
    engine.dispose()
    print("\nagent state changes (agent_events):")
    for agent in ACD_AGENTS:
        path = " > ".join(f"{s}{f' ({r})' if r else ''}" for a, s, r in states if a == agent)
        print(f"  {agent}: {path}")


def queue_report(db_url: str, since: float) -> None:
    """What a supervisor gets from ``acd report`` for the demo's minutes (UTC)."""
    start = datetime.fromtimestamp(since, UTC).replace(second=0, microsecond=0)
    span = [f"{t:%Y-%m-%d %H:%M}" for t in (start, start + timedelta(hours=1))]
    print(f"\nacd report queues --from '{span[0]}' --to '{span[1]}' --interval total --tz UTC")
    options = ["--from", span[0], "--to", span[1], "--interval", "total", "--tz", "UTC"]
    subprocess.run(
        [sys.executable, "-m", "acd", "report", "queues", *options],
        env={**os.environ, "ACD_DATABASE__URL": db_url},
        check=False,
    )


def testbed(*args: str) -> str:
    return subprocess.run([str(TESTBED), *args], check=True, capture_output=True, text=True).stdout


async def place_calls(
    settings: AmiSettings, callers: list[Caller], context: str, hold: float
) -> list[tuple[Caller, SimulatedCall]]:
    ami = AmiLink(settings)
    await ami.start()
    if not await ami.wait_up(10):
        raise SystemExit("cannot log in to the test bed's AMI")
    sim = CallSimulator(ami, hotline_context=context)
    placed = []
    try:
        for caller in callers:
            call = await sim.place(
                caller.script,
                caller_number=caller.number,
                caller_name=caller.name,
                exten=caller.exten,
                variables={"SIM_DELAY": caller.delay, "SIM_HOLD": hold},
            )
            placed.append((caller, call))
            print(f"  calling: {caller.name:<5} {caller.story}")
            if caller.name not in ("Eve",):
                await asyncio.sleep(0.7)
        await asyncio.gather(*(call.wait_ended(90) for _, call in placed))
    finally:
        await ami.stop()
    return placed


def report(db_url: str, placed: list[tuple[Caller, SimulatedCall]]) -> None:
    engine = sa.create_engine(db_url)
    rows = {}
    deadline = time.monotonic() + 5
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            rows = {
                r["uniqueid"]: r
                for r in conn.execute(
                    sa.text("select * from calls where uniqueid = any(:ids)"),
                    {"ids": [c.uniqueid for _, c in placed]},
                ).mappings()
            }
            if len(rows) == len(placed):
                break
            time.sleep(0.2)
            conn.rollback()
    engine.dispose()
    header = (
        f"{'caller':<6} {'number':<11} {'dialed':<11} {'choice':<7} {'disposition':<14} {'secs':>5}"
    )
    print("\n" + header + "\n" + "-" * len(header))
    for caller, call in placed:
        row = rows.get(call.uniqueid)
        events = call.user_events("AcdChoice")
        pressed = str(events[0].get("Choice")) if events else "-"
        if row is None:
            print(f"{caller.name:<6} {caller.number:<11} (no calls row yet)")
            continue
        secs = (row["ended_at"] - row["started_at"]).total_seconds()
        print(
            f"{caller.name:<6} {row['caller_number'] or '':<11} {row['dialed_number'] or '-':<11} "
            f"{pressed:<7} {row['disposition']:<14} {secs:>5.1f}"
        )
    print(
        "\nchoice: the AcdChoice event the dialplan raised after reading ACD_CHOICE;"
        "\nthe other columns are the daemon's rows in the calls table."
    )


def report_ivr(db_url: str, placed: list[tuple[Caller, SimulatedCall]]) -> None:
    engine = sa.create_engine(db_url)
    time.sleep(1.0)  # the writers flush in batches
    with engine.connect() as conn:
        for caller, call in placed:
            path = conn.execute(
                sa.text("select node_id from ivr_steps where uniqueid = :u order by seq"),
                {"u": call.uniqueid},
            ).scalars()
            row = conn.execute(
                sa.text(
                    "select disposition, ivr_outcome, queue, agent_id, queue_outcome from calls"
                    " where uniqueid = :u"
                ),
                {"u": call.uniqueid},
            ).first()
            where = ""
            if row and row[2]:
                where = f" queue={row[2]} -> {row[4]}" + (f" agent={row[3]}" if row[3] else "")
            ended = f"{row[1] or '-'} ({row[0]})" if row else "(no calls row)"
            print(f"\n{caller.name:<4} {caller.story}\n     path: {' > '.join(path)}")
            print(f"     outcome: {ended}{where}")
    engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "ACD_DATABASE__URL", "postgresql+psycopg://acd:acd@127.0.0.1:5432/acd"
        ),
    )
    args = parser.parse_args()
    configure_logging("WARNING", "console")
    secret = os.environ.get("ACD_TESTBED_AMI_SECRET", "acd-testbed")
    log_dir = REPO / "var" / "demo"
    log_dir.mkdir(parents=True, exist_ok=True)
    daemon = DaemonProcess.start(
        log_dir / "acd.log",
        REPO,
        ACD_AMI__SECRET=secret,
        ACD_DATABASE__URL=args.database_url,
        ACD_IVR__FLOWS_DIR=str(REPO / "ivr_flows"),
        ACD_ACD__QUEUES_FILE=str(demo_queues(log_dir / "acd_queues.yaml")),
    )
    print(f"starting the daemon (FastAGI on 127.0.0.1:{daemon.agi_port}, log in {daemon.log_path})")
    try:
        try:
            daemon.wait_event("daemon_ready", timeout=30)
        except AssertionError as exc:
            raise SystemExit(str(exc)) from None
        testbed("cli", f"dialplan set global ACD_AGI_ADDR 127.0.0.1:{daemon.agi_port}")
        print("placing calls into the hotline (greeting: hello-world, then 5 s for a key)")
        settings = AmiSettings(secret=secret)
        placed = asyncio.run(place_calls(settings, CALLERS, "acd-hotline", 8))
        report(args.database_url, placed)
        print("\nthe ACD: agents of deploy/acd_queues.yaml log in, callers wait in its queues")
        since = time.time()
        placed = asyncio.run(run_acd(settings))
        report_acd(args.database_url, placed, since)
        queue_report(args.database_url, since)
        print("\nplacing calls into the sample IVR flow ivr_flows/hotline.yaml ([acd-ivr])")
        placed = asyncio.run(place_calls(settings, IVR_CALLERS, "acd-ivr", 20))
        report_ivr(args.database_url, placed)
    finally:
        code = daemon.terminate()
        testbed("cli", "dialplan reload")
        print(f"\ndaemon stopped on SIGTERM with exit code {code}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
