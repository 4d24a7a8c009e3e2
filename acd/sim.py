"""Simulated callers placed through AMI, for the demo, the end-to-end tests and smoke tests.

A simulated call is an AMI ``Originate`` of ``Local/<script>@acd-sim-caller`` into the
hotline context: the ``;1`` half walks through the hotline like a real caller's
channel (that is the channel the daemon serves), the ``;2`` half runs the caller's
script (keys to press, when to hang up). ``ChannelId`` fixes the ``;1`` uniqueid up
front, so the call can be followed in AMI events and found in the ``calls`` table.
The contexts live in ``deploy/testbed/extensions_testbed.conf``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acd.ami import AmiLink, Message

CALLER_CONTEXT = "acd-sim-caller"
HOTLINE_CONTEXT = "acd-hotline"
QUEUE_CONTEXT = "acd-queue"
AGENT_CODES_CONTEXT = "acd-agent-features"
_EVENTS = ("Hangup", "UserEvent", "OriginateResponse", "AGIExecStart")


@dataclass
class SimulatedCall:
    """One placed call: its uniqueid (the ``;1`` half) and the events seen for it."""

    uniqueid: str
    script: str
    caller_number: str
    events: list[Message] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    placed_at: float = field(default_factory=time.monotonic)

    def user_events(self, name: str) -> list[Message]:
        """``UserEvent`` events of this call with the given ``UserEvent:`` name."""
        return [
            e for e in self.events if e.get("Event") == "UserEvent" and e.get("UserEvent") == name
        ]

    @property
    def hangup(self) -> Message | None:
        return next((e for e in self.events if e.get("Event") == "Hangup"), None)

    async def wait_ended(self, timeout: float) -> None:  # noqa: ASYNC109
        """Wait until the hotline side of the call has hung up."""
        async with asyncio.timeout(timeout):
            await self.ended.wait()


class CallSimulator:
    """Places simulated callers and routes AMI events to the call they belong to."""

    def __init__(self, ami: AmiLink, *, hotline_context: str = HOTLINE_CONTEXT) -> None:
        self._ami = ami
        self._hotline = hotline_context
        self._calls: dict[str, SimulatedCall] = {}
        self._ids = itertools.count(1)
        self._prefix = f"acdsim-{os.getpid()}-{int(time.time())}"
        for name in _EVENTS:
            ami.on_event(name, self._on_event)

    async def place(
        self,
        script: str,
        *,
        caller_number: str = "5550100",
        caller_name: str = "Sim Caller",
        exten: str = "s",
        context: str | None = None,
        variables: Mapping[str, str | float] | None = None,
    ) -> SimulatedCall:
        """Originate a caller running ``script``: keys (``1w2``), ``hangup`` or ``silent``,
        into the hotline (or ``context``: ``acd-queue``, ``acd-agent-features`` ...)."""
        n = next(self._ids)
        uniqueid = f"{self._prefix}-{n}"
        call = SimulatedCall(uniqueid=uniqueid, script=script, caller_number=caller_number)
        self._calls[uniqueid] = call
        fields: dict[str, Any] = {
            "Action": "Originate",
            "Channel": f"Local/{script}@{CALLER_CONTEXT}",
            "Context": context or self._hotline,
            "Exten": exten,
            "Priority": "1",
            "CallerID": f'"{caller_name}" <{caller_number}>',
            "Async": "true",
            "ChannelId": uniqueid,
            "OtherChannelId": f"{uniqueid}-caller",
            "Timeout": "10000",
        }
        if variables:
            fields["Variable"] = [f"{k}={v}" for k, v in variables.items()]
        await self._ami.action(fields)
        return call

    async def agent_code(self, code: str, device: str, timeout: float = 15.0) -> SimulatedCall:  # noqa: ASYNC109
        """An agent's phone (``device``) dials a feature code (``*411001``, ``*43`` ...);
        returns once the daemon has answered it and the call has ended."""
        call = await self.place(
            "silent",
            caller_number="agent",
            caller_name="Agent phone",
            exten=code,
            context=AGENT_CODES_CONTEXT,
            variables={"ACD_DEVICE": device, "SIM_HOLD": 20},
        )
        await call.wait_ended(timeout)
        return call

    def _on_event(self, event: Message) -> None:
        call = self._calls.get(str(event.get("Uniqueid", "")))
        if call is None:
            return
        call.events.append(event)
        kind = event.get("Event")
        failed = kind == "OriginateResponse" and event.get("Response") != "Success"
        if kind == "Hangup" or failed:
            call.ended.set()


def with_testbed_phones(text: str, ring: int = 1, talk: int = 6) -> str:
    """A queues file with each agent's ``PJSIP/<id>`` phone replaced by a test-bed phone
    that rings ``ring`` s, answers and talks ``talk`` s (``[acd-sim-agent]``)."""
    return re.sub(r"device: PJSIP/(\w+)", rf"device: Local/r{ring}t{talk}-\1@acd-sim-agent", text)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class DaemonProcess:
    """``acd run`` in a process of its own, as ops run it, with its JSON log in a file."""

    proc: subprocess.Popen[bytes]
    agi_port: int
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def start(cls, log_path: Path, cwd: Path, **settings: str) -> DaemonProcess:
        """Start the daemon with ``ACD_*`` settings on a free FastAGI port."""
        port = free_port()
        env = {**os.environ, "ACD_AGI__PORT": str(port), **settings}
        env.pop("ACD_CONFIG", None)
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "acd", "run"],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        return cls(proc=proc, agi_port=port, log_path=log_path, env=env)

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """The daemon's log lines so far, optionally only those named ``name``."""
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if name is None or entry.get("event") == name:
                out.append(entry)
        return out

    def wait_event(self, name: str, count: int = 1, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Wait until the log holds ``count`` events named ``name``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.events(name)
            if len(found) >= count:
                return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(
            f"daemon log has no {count} x {name!r} (exit={self.proc.poll()}):\n{self.log_tail()}"
        )

    @property
    def http_port(self) -> int:
        """The HTTP API's port, from its ``http_ready`` log line (tests run ``port = 0``)."""
        return int(self.wait_event("http_ready")[-1]["port"])

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM, as systemd stops it, then the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
