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
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from acd.ami import AmiLink
from acd.config import AmiSettings
from acd.log import configure_logging
from acd.sim import CallSimulator, SimulatedCall

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def testbed(*args: str) -> str:
    return subprocess.run([str(TESTBED), *args], check=True, capture_output=True, text=True).stdout


def wait_for_log(path: Path, event: str, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        for line in path.read_text(errors="replace").splitlines():
            if f'"event": "{event}"' in line:
                return
        time.sleep(0.1)
    raise SystemExit(f"daemon did not log {event}; see {path}")


async def place_calls(settings: AmiSettings) -> list[tuple[Caller, SimulatedCall]]:
    ami = AmiLink(settings)
    await ami.start()
    if not await ami.wait_up(10):
        raise SystemExit("cannot log in to the test bed's AMI")
    sim = CallSimulator(ami)
    placed = []
    try:
        for caller in CALLERS:
            call = await sim.place(
                caller.script,
                caller_number=caller.number,
                caller_name=caller.name,
                exten=caller.exten,
                variables={"SIM_DELAY": caller.delay, "SIM_HOLD": 8},
            )
            placed.append((caller, call))
            print(f"  calling: {caller.name:<5} {caller.story}")
            if caller.name not in ("Eve",):
                await asyncio.sleep(0.7)
        await asyncio.gather(*(call.wait_ended(60) for _, call in placed))
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
    port = free_port()
    log_dir = REPO / "var" / "demo"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "acd.log"
    env = {
        **os.environ,
        "ACD_AGI__PORT": str(port),
        "ACD_AMI__SECRET": secret,
        "ACD_DATABASE__URL": args.database_url,
    }
    print(f"starting the daemon (FastAGI on 127.0.0.1:{port}, log in {log_path})")
    with log_path.open("wb") as log_file:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "acd", "run"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_log(log_path, "daemon_ready", 30, daemon)
        testbed("cli", f"dialplan set global ACD_AGI_ADDR 127.0.0.1:{port}")
        print("placing calls into the hotline (greeting: hello-world, then 5 s for a key)")
        settings = AmiSettings(secret=secret)
        placed = asyncio.run(place_calls(settings))
        report(args.database_url, placed)
    finally:
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(60)
        testbed("cli", "dialplan reload")
        print(f"\ndaemon stopped on SIGTERM with exit code {code}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
