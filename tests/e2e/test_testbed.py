"""The Asterisk test bed itself: AMI login, simulated calls, and the project's dialplan.

These talk to Asterisk with panoramisk directly (no acd code), so a failure here points
at the test bed or the dialplan, not at the daemon.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest
from panoramisk import Manager

from tests.fixtures.testbed import Testbed

pytestmark = pytest.mark.asterisk

EVENT_TIMEOUT = 10.0
DEFAULT_AGI_PORT = 4573

Event = Any  # panoramisk.Message (untyped)


class AmiSession:
    """A panoramisk connection as the acd AMI user that records every event it sees."""

    def __init__(self, manager: Any) -> None:
        self.manager = manager
        self.events: list[Event] = []
        self._arrived = asyncio.Event()
        manager.register_event("*", self._on_event)

    def _on_event(self, _manager: Any, event: Event) -> None:
        self.events.append(event)
        self._arrived.set()

    async def action(self, **fields: str | list[str]) -> Any:
        return await asyncio.wait_for(self.manager.send_action(fields), EVENT_TIMEOUT)

    async def wait_event(self, predicate: Callable[[Event], bool]) -> Event:
        """The first event (already seen or still to come) that matches."""
        seen = 0
        try:
            async with asyncio.timeout(EVENT_TIMEOUT):
                while True:
                    for event in self.events[seen:]:
                        if predicate(event):
                            return event
                    seen = len(self.events)
                    self._arrived.clear()
                    await self._arrived.wait()
        except TimeoutError:
            seen_names = [f"{e.get('Event')}:{e.get('Uniqueid')}" for e in self.events]
            message = f"no matching AMI event in {EVENT_TIMEOUT} s; saw {seen_names}"
            raise AssertionError(message) from None


@asynccontextmanager
async def ami(bed: Testbed) -> AsyncIterator[AmiSession]:
    manager = Manager(
        loop=asyncio.get_running_loop(),
        host=bed.ami_host,
        port=bed.ami_port,
        username=bed.ami_username,
        secret=bed.ami_secret,
        events="on",
        ping_delay=3600,
    )
    session = AmiSession(manager)
    await asyncio.wait_for(manager.connect(), EVENT_TIMEOUT)
    try:
        login = manager.authenticated_future  # None once the Login reply has been handled
        if login is not None:
            await asyncio.wait_for(login, EVENT_TIMEOUT)
            await asyncio.sleep(0)  # let panoramisk's own done-callback record the result
        assert manager.authenticated, f"AMI login as {bed.ami_username} was refused"
        yield session
    finally:
        manager.close()


def event(name: str, uniqueid: str, **headers: str) -> Callable[[Event], bool]:
    """Matches an event by name, channel uniqueid and any further headers."""

    def match(ev: Event) -> bool:
        return (
            ev.get("Event") == name
            and ev.get("Uniqueid") == uniqueid
            and all(ev.get(k) == v for k, v in headers.items())
        )

    return match


async def originate_sim_call(
    session: AmiSession, script: str, context: str, exten: str = "s", **variables: str
) -> tuple[str, str]:
    """A simulated caller (Local/SCRIPT@acd-sim-caller) whose ;1 half enters CONTEXT.

    Returns the uniqueids of the ;1 (the call as Asterisk sees it) and ;2 (the caller) halves.
    """
    call = f"tb-{uuid.uuid4().hex[:12]}"
    one, two = f"{call}-1", f"{call}-2"
    fields: dict[str, str | list[str]] = {
        "Action": "Originate",
        "Channel": f"Local/{script}@acd-sim-caller",
        "Context": context,
        "Exten": exten,
        "Priority": "1",
        "Async": "true",
        "ChannelId": one,
        "OtherChannelId": two,
    }
    if variables:
        fields["Variable"] = [f"{k}={v}" for k, v in variables.items()]
    responses = await session.action(**fields)
    if not isinstance(responses, list):
        responses = [responses]
    assert all(r.success for r in responses), f"Originate failed: {responses}"
    return one, two


@contextmanager
def closed_port() -> Iterator[int]:
    """A local TCP port that refuses connections while the block runs (bound, not listening)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@asynccontextmanager
async def agi_address(bed: Testbed, port: int) -> AsyncIterator[None]:
    bed.set_agi_port(port)
    try:
        yield
    finally:
        bed.set_agi_port(DEFAULT_AGI_PORT)


async def test_local_call_shows_newchannel_and_hangup(asterisk: Testbed) -> None:
    async with ami(asterisk) as session:
        one, two = await originate_sim_call(session, "silent", "acd-testbed-echo", SIM_HOLD="0.5")
        await session.wait_event(event("Newchannel", one))
        await session.wait_event(event("Newchannel", two, Context="acd-sim-caller", Exten="silent"))
        await session.wait_event(event("UserEvent", one, UserEvent="AcdTestbed"))
        await session.wait_event(event("Hangup", one))
        await session.wait_event(event("Hangup", two))


async def test_originate_variables_reach_the_caller_half(asterisk: Testbed) -> None:
    """Originate's Variable: lands on ;1 and is copied to ;2, where the caller script runs."""
    async with ami(asterisk) as session:
        one, two = await originate_sim_call(session, "silent", "acd-testbed-echo", SIM_HOLD="7")
        await session.wait_event(event("Newchannel", two))
        reply = await session.action(Action="Getvar", Channel=two, Variable="SIM_HOLD")
        assert reply.success and reply.get("Value") == "7", reply
        hangup = await session.action(Action="Hangup", Channel=one)
        assert hangup.success, hangup
        await session.wait_event(event("Hangup", two))


async def test_hotline_falls_back_when_the_daemon_is_unreachable(asterisk: Testbed) -> None:
    with closed_port() as port:
        async with agi_address(asterisk, port), ami(asterisk) as session:
            one, two = await originate_sim_call(session, "silent", "acd-hotline", SIM_HOLD="20")
            fallback = await session.wait_event(event("UserEvent", one, UserEvent="AcdFallback"))
            assert fallback.get("Reason") == "FAILURE"
            # all-circuits-busy-now (about 2 s), then the fallback hangs up on the caller
            await session.wait_event(event("Hangup", one))
            await session.wait_event(event("Hangup", two))


async def test_hotline_acts_on_the_choice_the_agi_server_sets(asterisk: Testbed) -> None:
    """A minimal FastAGI server stands in for the daemon: it reads one key and sets ACD_CHOICE."""
    seen: dict[str, str] = {}

    async def fastagi(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def command(line: str) -> str:
            writer.write(f"{line}\n".encode())
            await writer.drain()
            return (await reader.readline()).decode().strip()

        while line := (await reader.readline()).decode().strip():
            key, _, value = line.partition(": ")
            seen[key] = value
        await command("ANSWER")
        reply = await command("WAIT FOR DIGIT 5000")
        code = int(reply.split("result=")[1].split()[0])
        seen["digit"] = chr(code) if code > 0 else ""
        await command(f'SET VARIABLE ACD_CHOICE "{seen["digit"]}"')
        writer.close()

    server = await asyncio.start_server(fastagi, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with agi_address(asterisk, port), ami(asterisk) as session:
            one, two = await originate_sim_call(
                session, "4", "acd-hotline", SIM_DELAY="0.2", SIM_HOLD="3"
            )
            await session.wait_event(event("DTMFEnd", one, Digit="4", Direction="Received"))
            choice = await session.wait_event(event("UserEvent", one, UserEvent="AcdChoice"))
            assert choice.get("Choice") == "4"
            await session.wait_event(event("Hangup", two))
    finally:
        server.close()
        await server.wait_closed()
    assert seen.get("agi_network_script") == "hotline"
    assert seen.get("agi_uniqueid") == one
    assert seen.get("digit") == "4"


async def test_ami_user_has_what_the_daemon_needs_and_no_more(asterisk: Testbed) -> None:
    async with ami(asterisk) as session:
        pong = await session.action(Action="Ping")
        assert pong.get("Ping") == "Pong"
        channels = await session.action(Action="CoreShowChannels")
        assert isinstance(channels, list) and channels[0].success, channels
        agi_addr = await session.action(Action="Getvar", Variable="ACD_AGI_ADDR")
        assert agi_addr.success and agi_addr.get("Value"), agi_addr
        command = await session.action(Action="Command", Command="core show version")
        assert not command.success and "Permission denied" in command.get("Message", "")
        system = await session.action(
            Action="Originate", Channel="Local/silent@acd-sim-caller", Application="System"
        )
        if isinstance(system, list):
            system = system[0]
        assert not system.success, system
