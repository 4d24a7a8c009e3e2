"""Demo: real calls through the daemon on the Asterisk 22 test bed.

Run by ``./dev demo`` (which brings the test bed and PostgreSQL up first). Starts
``acd run`` as its own process, places simulated callers into the hotline through AMI,
and prints what happened to each: what Asterisk reported and the ``calls`` row the
daemon wrote. Then stops the daemon with SIGTERM, as systemd would.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from acd.ami import AmiLink
from acd.config import AmiSettings
from acd.log import configure_logging
from acd.sim import CallSimulator, DaemonProcess, SimulatedCall

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
                sa.text("select disposition, ivr_outcome from calls where uniqueid = :u"),
                {"u": call.uniqueid},
            ).first()
            outcome = call.user_events("AcdIvrOutcome")
            where = ""
            if outcome and outcome[0].get("Queue"):
                where = (
                    f" queue={outcome[0].get('Queue')} priority={outcome[0].get('QueuePriority')}"
                )
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
