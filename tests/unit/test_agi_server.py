"""FastAGIServer against fake Asterisk peers on real loopback sockets.

Each robustness test has a misbehaving peer and, while it misbehaves, a normal call that
must complete (the event loop stays responsive), then another normal call afterwards
(the server keeps serving).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import structlog
from structlog.testing import LogCapture

from acd.agi import (
    AGICommandError,
    AGIHangup,
    AGIProtocolError,
    AGISession,
    AGITimeout,
    FastAGIServer,
    Handler,
)
from acd.agi.connection import LoopPoller

pytestmark = pytest.mark.timeout(10)


def header(route: str, uniqueid: str = "1700000000.1", *extra: str) -> bytes:
    lines = [
        "agi_network: yes",
        f"agi_network_script: {route}",
        f"agi_request: agi://127.0.0.1/{route}",
        "agi_channel: PJSIP/trunk-00000001",
        "agi_language: en",
        "agi_type: PJSIP",
        f"agi_uniqueid: {uniqueid}",
        "agi_version: 20.5.0",
        "agi_callerid: 5551234",
        "agi_calleridname: Alice",
        "agi_dnid: 8005550100",
        "agi_context: from-trunk",
        "agi_extension: 8005550100",
        "agi_priority: 2",
        "agi_accountcode: ",
        *extra,
    ]
    return ("\n".join(lines) + "\n\n").encode()


class FakeAsterisk:
    """The Asterisk end of one FastAGI connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> FakeAsterisk:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    @classmethod
    async def call(cls, port: int, route: str, uniqueid: str = "1700000000.1") -> FakeAsterisk:
        peer = await cls.open(port)
        peer.send(header(route, uniqueid))
        return peer

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def expect(self, command: str, *replies: str) -> None:
        """Read the next command line, check it, answer with ``replies``."""
        line = await asyncio.wait_for(self.reader.readline(), 3)
        assert line.decode() == command + "\n"
        for reply in replies:
            self.writer.write(reply.encode() + b"\n")

    async def closed_by_server(self) -> bool:
        """True once the server has closed the connection without sending anything."""
        try:
            data = await asyncio.wait_for(self.reader.read(1), 3)
        except ConnectionResetError:
            return True
        return data == b""

    def close(self) -> None:
        self.writer.close()


async def normal_handler(session: AGISession) -> None:
    await session.answer()
    await session.set_variable("ACD_CHOICE", "1")


async def normal_call(port: int, uniqueid: str = "1700000000.99") -> None:
    """A well-behaved call; it must go through promptly whatever else is happening."""
    peer = await FakeAsterisk.call(port, "ok", uniqueid)
    await peer.expect("ANSWER", "200 result=0")
    await peer.expect('SET VARIABLE ACD_CHOICE "1"', "200 result=1")
    assert await peer.closed_by_server()
    peer.close()


StartServer = Callable[..., Awaitable[FastAGIServer]]


@pytest.fixture
async def start_server() -> AsyncIterator[StartServer]:
    servers: list[FastAGIServer] = []

    async def start(routes: dict[str, Handler], **kwargs: Any) -> FastAGIServer:
        server = FastAGIServer({"ok": normal_handler, **routes}, port=0, **kwargs)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop(0)


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    """Capture log events with the structlog contextvars merged in, as in production."""
    cap = LogCapture()
    processors = structlog.get_config()["processors"]
    saved = processors.copy()
    processors[:] = [structlog.contextvars.merge_contextvars, cap]
    try:
        yield cap
    finally:
        processors[:] = saved


async def wait_idle(server: FastAGIServer, within: float = 1.0) -> float:
    """Seconds until the server has no session left (fails if not within ``within``)."""
    start = time.monotonic()
    while server.active_sessions:
        assert time.monotonic() - start < within, "session still running"
        await asyncio.sleep(0.005)
    return time.monotonic() - start


# --- a normal call ---------------------------------------------------------------------


async def test_helpers_send_exact_commands_and_return_python_values(
    start_server: StartServer,
) -> None:
    got: dict[str, Any] = {}

    async def ivr(s: AGISession) -> None:
        got["env"] = (s.env.network_script, s.env.uniqueid, s.env.callerid, s.env.args)
        await s.answer()
        got["stream"] = await s.stream_file("hello-world", "0123456789")
        got["endpos"] = s.last_reply.extras["endpos"] if s.last_reply else None
        got["stream_offset"] = await s.stream_file("menu", offset=800)
        got["data"] = await s.get_data("enter-code", 5000, 4)
        got["data_timed_out"] = s.last_reply is not None and s.last_reply.timed_out
        got["data_none"] = await s.get_data("enter-code", max_digits=2)
        got["digit"] = await s.wait_for_digit(3000)
        got["no_digit"] = await s.wait_for_digit(100)
        got["say_digits"] = await s.say_digits("1234")
        got["say_number"] = await s.say_number(42, "#")
        await s.set_variable("ACD_CHOICE", "1")
        await s.set_variable("ACD_NOTE", 'say "hi"')
        got["var"] = await s.get_variable("CALLERID(num)")
        got["unset"] = await s.get_variable("NOPE")
        got["full"] = await s.get_full_variable("${CHANNEL(linkedid)}")
        got["exec"] = await s.exec("Dial", "PJSIP/100", "30", "tT")
        got["exec_noargs"] = await s.exec("Wait")
        await s.verbose("two\nlines", 3)
        got["raw"] = (await s.command("NOOP", '"hello"')).result
        await s.hangup()
        got["hung_up"] = s.hung_up
        got["commands"] = s.commands

    server = await start_server({"ivr": ivr})
    peer = await FakeAsterisk.open(server.port)
    peer.send(header("ivr", "1700000000.7", "agi_arg_1: vip", "agi_arg_2: fr"))
    await peer.expect("ANSWER", "200 result=0")
    await peer.expect('STREAM FILE hello-world "0123456789"', "200 result=50 endpos=1234")
    await peer.expect('STREAM FILE menu "" 800', "200 result=0 endpos=20480")
    await peer.expect("GET DATA enter-code 5000 4", "200 result=12 (timeout)")
    await peer.expect("GET DATA enter-code 0 2", "200 result= (timeout)")
    await peer.expect("WAIT FOR DIGIT 3000", "200 result=35")
    await peer.expect("WAIT FOR DIGIT 100", "200 result=0")
    await peer.expect('SAY DIGITS 1234 ""', "200 result=0")
    await peer.expect('SAY NUMBER 42 "#"', "200 result=35")
    await peer.expect('SET VARIABLE ACD_CHOICE "1"', "200 result=1")
    await peer.expect(r'SET VARIABLE ACD_NOTE "say \"hi\""', "200 result=1")
    await peer.expect("GET VARIABLE CALLERID(num)", "200 result=1 (5551234)")
    await peer.expect("GET VARIABLE NOPE", "200 result=0")
    await peer.expect('GET FULL VARIABLE "${CHANNEL(linkedid)}"', "200 result=1 (1700000000.1)")
    await peer.expect('EXEC Dial "PJSIP/100,30,tT"', "200 result=0")
    await peer.expect("EXEC Wait", "200 result=-2")
    await peer.expect('VERBOSE "two lines" 3', "200 result=1")
    await peer.expect('NOOP "hello"', "200 result=0")
    await peer.expect("HANGUP", "200 result=1", "HANGUP")
    assert await peer.closed_by_server()

    assert got == {
        "env": ("ivr", "1700000000.7", "5551234", ("vip", "fr")),
        "stream": "2",
        "endpos": "1234",
        "stream_offset": None,
        "data": "12",
        "data_timed_out": True,
        "data_none": "",
        "digit": "#",
        "no_digit": None,
        "say_digits": None,
        "say_number": "#",
        "var": "5551234",
        "unset": None,
        "full": "1700000000.1",
        "exec": 0,
        "exec_noargs": -2,
        "raw": 0,
        "hung_up": False,  # we hung up: not a caller hangup
        "commands": 19,
    }
    assert await wait_idle(server) < 1


async def test_command_errors_leave_the_session_usable(start_server: StartServer) -> None:
    errors: list[AGICommandError] = []
    result: list[int] = []

    async def route(s: AGISession) -> None:
        for parts in (("STREAM", "FILE"), ("BOGUS",)):
            try:
                await s.command(*parts)
            except AGICommandError as exc:
                errors.append(exc)
        result.append((await s.command("GOSUB", "sub", "s", "1")).result)

    server = await start_server({"r": route})
    peer = await FakeAsterisk.call(server.port, "r")
    await peer.expect(
        "STREAM FILE",
        "520-Invalid command syntax.  Proper usage follows:",
        "Usage: STREAM FILE <filename> <escape_digits> [sample offset]",
        " Send the given file, allowing playback to be interrupted.",
        "520 End of proper usage.",
    )
    await peer.expect("BOGUS", "510 Invalid or unknown command")
    await peer.expect("GOSUB sub s 1", "100 result=0 Trying...", "200 result=0 Gosub complete")
    assert await peer.closed_by_server()
    assert [e.code for e in errors] == [520, 510]
    assert errors[0].usage.startswith("Usage: STREAM FILE <filename>")
    assert result == [0]


async def test_unsafe_argument_is_refused_before_anything_is_sent(
    start_server: StartServer,
) -> None:
    async def route(s: AGISession) -> None:
        with pytest.raises(ValueError):
            await s.set_variable("X", "a\nEXEC System reboot")
        for _ in range(2):  # refused every time, not only the first
            with pytest.raises(ValueError):
                await s.stream_file("hello\rEXEC System reboot")
        with pytest.raises(ValueError):
            await s.get_variable("X\0Y")
        with pytest.raises(ValueError, match="longer than 8190 bytes"):
            await s.set_variable("X", "y" * 8190)  # res_agi would run the rest as a command
        await s.answer()

    server = await start_server({"r": route})
    peer = await FakeAsterisk.call(server.port, "r")
    await peer.expect("ANSWER", "200 result=0")
    assert await peer.closed_by_server()


async def test_concurrent_commands_on_one_session_are_refused(start_server: StartServer) -> None:
    outcome: list[object] = []

    async def route(s: AGISession) -> None:
        first = asyncio.ensure_future(s.answer())
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError):
            await s.verbose("second")
        await first
        outcome.append("ok")

    server = await start_server({"r": route})
    peer = await FakeAsterisk.call(server.port, "r")
    await peer.expect("ANSWER", "200 result=0")
    assert await peer.closed_by_server()
    assert outcome == ["ok"]


async def test_unknown_route_is_logged_and_closed(
    start_server: StartServer, logs: LogCapture
) -> None:
    server = await start_server({})
    peer = await FakeAsterisk.call(server.port, "nope", "1700000000.5")
    assert await peer.closed_by_server()
    await wait_idle(server)
    event = next(e for e in logs.entries if e["event"] == "agi_unknown_route")
    assert (event["route"], event["uniqueid"]) == ("nope", "1700000000.5")
    await normal_call(server.port)


async def test_handler_bug_ends_only_that_call(start_server: StartServer, logs: LogCapture) -> None:
    async def buggy(s: AGISession) -> None:
        await s.answer()
        raise ValueError("boom")

    server = await start_server({"buggy": buggy})
    peer = await FakeAsterisk.call(server.port, "buggy", "1700000000.6")
    await peer.expect("ANSWER", "200 result=0")
    assert await peer.closed_by_server()
    await normal_call(server.port)
    event = next(e for e in logs.entries if e["event"] == "agi_handler_failed")
    assert (event["route"], event["uniqueid"], event["log_level"]) == (
        "buggy",
        "1700000000.6",
        "error",
    )


# --- hangups ---------------------------------------------------------------------------


async def test_hangup_notice_before_the_reply(start_server: StartServer, logs: LogCapture) -> None:
    """The caller hung up while we were busy: Asterisk sends HANGUP, then still answers
    the command (511 for one not allowed on a dead channel)."""
    seen: list[object] = []

    async def route(s: AGISession) -> None:
        try:
            await s.stream_file("hello-world", "0123456789")
        except AGIHangup:
            seen.append(("hangup", s.hung_up))
            await s.set_variable("ACD_RESULT", "hangup")  # allowed on a dead channel
            seen.append("cleanup done")
            raise

    server = await start_server({"r": route})
    peer = await FakeAsterisk.call(server.port, "r", "1700000000.8")
    await peer.expect(
        'STREAM FILE hello-world "0123456789"',
        "HANGUP",
        "511 Command Not Permitted on a dead channel or intercept routine",
    )
    await normal_call(server.port)
    await peer.expect('SET VARIABLE ACD_RESULT "hangup"', "200 result=1")
    assert await peer.closed_by_server()
    assert seen == [("hangup", True), "cleanup done"]
    await wait_idle(server)
    event = next(e for e in logs.entries if e["event"] == "agi_caller_hangup")
    assert (event["log_level"], event["route"], event["uniqueid"]) == ("info", "r", "1700000000.8")
    await normal_call(server.port)


async def test_hangup_notice_before_a_normal_reply(start_server: StartServer) -> None:
    """GET VARIABLE runs on a dead channel, so the HANGUP is followed by a 200: the
    handler still learns of the hangup, once, and the reply stays readable."""
    seen: list[object] = []

    async def route(s: AGISession) -> None:
        try:
            await s.get_variable("ACD_QUEUE")
        except AGIHangup:
            seen.append(s.last_reply.data if s.last_reply else None)
        seen.append(await s.get_variable("ACD_QUEUE"))

    server = await start_server({"r": route})
    peer = await FakeAsterisk.call(server.port, "r")
    await peer.expect("GET VARIABLE ACD_QUEUE", "HANGUP", "200 result=1 (sales)")
    await normal_call(server.port)
    await peer.expect("GET VARIABLE ACD_QUEUE", "200 result=1 (sales)")
    assert await peer.closed_by_server()
    assert seen == ["sales", "sales"]
    await normal_call(server.port)


async def test_hangup_during_playback_then_notice(start_server: StartServer) -> None:
    """A hangup during STREAM FILE: result=-1 first, the HANGUP line after it; the notice
    must not spoil the next command's reply."""
    seen: list[object] = []

    async def route(s: AGISession) -> None:
        try:
            await s.stream_file("hello-world")
        except AGIHangup:
            seen.append(s.hung_up)
        seen.append(await s.get_variable("HANGUPCAUSE"))

    server = await start_server({"r": route})
    peer = await FakeAsterisk.call(server.port, "r")
    await peer.expect('STREAM FILE hello-world ""', "200 result=-1 endpos=960", "HANGUP")
    await normal_call(server.port)
    await peer.expect("GET VARIABLE HANGUPCAUSE", "200 result=1 (16)")
    assert await peer.closed_by_server()
    assert seen == [True, "16"]
    await normal_call(server.port)


async def test_hangup_then_asterisk_closes(start_server: StartServer) -> None:
    """With AGIEXITONHANGUP=yes Asterisk sends HANGUP and closes without answering."""
    seen: list[object] = []

    async def route(s: AGISession) -> None:
        try:
            await s.wait_for_digit(5000)
        except AGIHangup as exc:
            seen.append((s.hung_up, type(exc).__name__))
            raise

    server = await start_server({"r": route})
    peer = await FakeAsterisk.call(server.port, "r")
    await peer.expect("WAIT FOR DIGIT 5000", "HANGUP", "HANGUP")
    await normal_call(server.port)
    peer.close()
    await wait_idle(server)
    assert seen == [(True, "AGIHangup")]
    await normal_call(server.port)


# --- misbehaving peers -----------------------------------------------------------------


async def test_peer_closing_before_the_blank_line(start_server: StartServer) -> None:
    """panoramisk spins at 100% CPU here; the session must just end."""
    server = await start_server({})
    peer = await FakeAsterisk.open(server.port)
    peer.send(header("ok")[:-1])  # no blank line
    await normal_call(server.port)
    assert server.active_sessions == 1
    peer.writer.write_eof()
    assert await wait_idle(server, within=0.5) < 0.5
    cpu_before = time.process_time()
    await asyncio.sleep(0.2)
    assert time.process_time() - cpu_before < 0.1
    peer.close()
    await normal_call(server.port)


async def test_garbage_header(start_server: StartServer) -> None:
    server = await start_server({})
    peer = await FakeAsterisk.open(server.port)
    peer.send(b"GET / HTTP/1.0\nHost: pbx\n\n")
    assert await peer.closed_by_server()
    await normal_call(server.port)
    await normal_call(server.port)


async def test_header_line_over_the_limit(start_server: StartServer) -> None:
    server = await start_server({})
    peer = await FakeAsterisk.open(server.port)
    peer.send(b"agi_network: yes\nagi_request: " + b"x" * 10_000 + b"\n")
    await normal_call(server.port)
    peer.send(b"agi_channel: PJSIP/x\n\n")
    assert await peer.closed_by_server()
    await normal_call(server.port)


async def test_endless_header_is_cut_at_max_env_bytes(start_server: StartServer) -> None:
    server = await start_server({}, max_env_bytes=2048)
    peer = await FakeAsterisk.open(server.port)
    peer.send(b"agi_network: yes\n" + b"agi_x: y\n" * 1000)
    assert await peer.closed_by_server()
    await normal_call(server.port)


async def test_reply_line_over_the_limit(start_server: StartServer) -> None:
    seen: list[BaseException] = []

    async def route(s: AGISession) -> None:
        try:
            await s.get_variable("BIG")
        except AGIProtocolError as exc:
            seen.append(exc)
            raise

    server = await start_server({"r": route})
    peer = await FakeAsterisk.call(server.port, "r")
    await peer.expect("GET VARIABLE BIG", "200 result=1 (" + "x" * 10_000 + ")")
    await normal_call(server.port)
    assert await peer.closed_by_server()
    assert len(seen) == 1
    assert "longer than 8192 bytes" in str(seen[0])
    await normal_call(server.port)


async def test_header_that_never_ends_times_out(start_server: StartServer) -> None:
    server = await start_server({}, header_timeout=0.3)
    peer = await FakeAsterisk.open(server.port)
    started = time.monotonic()
    peer.send(b"agi_network: yes\nagi_channel: PJSIP/trunk-0000")  # and then nothing
    await normal_call(server.port)
    assert await peer.closed_by_server()
    assert 0.25 < time.monotonic() - started < 1.5
    await normal_call(server.port)


async def test_reply_timeout_ends_the_session(start_server: StartServer) -> None:
    seen: list[tuple[str, float]] = []

    async def route(s: AGISession) -> None:
        await s.answer()
        started = time.monotonic()
        try:
            await s.get_data("enter-code", 5000, 4)
        except AGITimeout as exc:
            seen.append((str(exc), time.monotonic() - started))
            with pytest.raises(AGIProtocolError):
                await s.answer()  # the session is unusable now
            raise

    server = await start_server({"r": route}, command_timeout=0.3)
    peer = await FakeAsterisk.call(server.port, "r")
    await peer.expect("ANSWER", "200 result=0")
    await peer.expect("GET DATA enter-code 5000 4")  # never answered
    await normal_call(server.port)
    assert await peer.closed_by_server()
    assert len(seen) == 1
    message, waited = seen[0]
    assert "GET DATA enter-code" in message
    assert 0.25 < waited < 1.5
    await normal_call(server.port)


async def test_slow_replies_within_the_timeout_are_fine(start_server: StartServer) -> None:
    """The deadline follows each command: many commands may outlast one timeout."""
    got: list[str | None] = []

    async def route(s: AGISession) -> None:
        for _ in range(4):
            got.append(await s.wait_for_digit(1000))

    server = await start_server({"r": route}, command_timeout=0.3)
    peer = await FakeAsterisk.call(server.port, "r")
    for _ in range(4):
        line = await peer.reader.readline()
        assert line == b"WAIT FOR DIGIT 1000\n"
        await asyncio.sleep(0.15)
        peer.send(b"200 result=49\n")
    assert await peer.closed_by_server()
    assert got == ["1"] * 4


# --- shutdown --------------------------------------------------------------------------


async def test_stop_lets_a_call_finish_within_grace(start_server: StartServer) -> None:
    finished = asyncio.Event()

    async def route(s: AGISession) -> None:
        await asyncio.sleep(0.2)
        await s.verbose("finishing")
        finished.set()

    server = await start_server({"r": route})
    peer = await FakeAsterisk.call(server.port, "r")
    await asyncio.sleep(0.05)
    assert server.active_sessions == 1
    answer = asyncio.ensure_future(peer.expect('VERBOSE "finishing" 1', "200 result=1"))
    started = time.monotonic()
    await server.stop(grace=3)
    assert time.monotonic() - started < 1.5
    assert finished.is_set()
    await answer
    assert await peer.closed_by_server()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", server.port)


async def test_stop_cancels_a_call_that_outlasts_grace(start_server: StartServer) -> None:
    cancelled = asyncio.Event()

    async def route(s: AGISession) -> None:
        try:
            await s.wait_for_digit(-1)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    server = await start_server({"r": route})
    peer = await FakeAsterisk.call(server.port, "r")
    await peer.expect("WAIT FOR DIGIT -1")  # the caller never presses anything
    started = time.monotonic()
    await server.stop(grace=0.3)
    assert 0.25 < time.monotonic() - started < 1.5
    assert cancelled.is_set()
    assert server.active_sessions == 0
    assert await peer.closed_by_server()


# --- a session on its own ---------------------------------------------------------------


async def test_session_outside_the_server_times_itself_out() -> None:
    """AGISession used directly (no FastAGIServer sweeping it) keeps its own timer."""
    from acd.agi import AgiEnv

    accepted: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

    async def on_connect(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await accepted.put((r, w))

    listener = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    peer = await FakeAsterisk.open(port)
    reader, writer = await accepted.get()
    session = AGISession(reader, writer, AgiEnv({}), command_timeout=0.3)
    try:
        answered = asyncio.ensure_future(session.wait_for_digit(1000))
        assert await peer.reader.readline() == b"WAIT FOR DIGIT 1000\n"
        await asyncio.sleep(0.2)
        peer.send(b"200 result=0\n")  # in time
        assert await answered is None
        started = time.monotonic()
        unanswered = asyncio.ensure_future(session.wait_for_digit(1000))
        assert await peer.reader.readline() == b"WAIT FOR DIGIT 1000\n"
        with pytest.raises(AGITimeout):
            await unanswered
        assert 0.25 < time.monotonic() - started < 1.5
        assert await peer.closed_by_server()
    finally:
        session.close()
        peer.close()
        listener.close()


# --- how bytes arrive -------------------------------------------------------------------


async def test_lines_split_across_reads_and_run_together(start_server: StartServer) -> None:
    got: list[object] = []

    async def route(s: AGISession) -> None:
        got.append(s.env.uniqueid)
        got.append(await s.get_variable("A"))
        got.append(await s.stream_file("x"))
        try:
            await s.answer()
        except AGIHangup:
            got.append("hangup")

    server = await start_server({"r": route})
    peer = await FakeAsterisk.open(server.port)
    for i, byte in enumerate(header("r", "1700000000.3")):
        peer.send(bytes([byte]))
        if i % 50 == 0:
            await peer.writer.drain()
            await asyncio.sleep(0.001)
    assert await peer.reader.readline() == b"GET VARIABLE A\n"
    for part in (b"200 res", b"ult=1 (a b", b")\n"):
        peer.send(part)
        await peer.writer.drain()
        await asyncio.sleep(0.01)
    await peer.expect('STREAM FILE x ""', "200 result=0 endpos=5")
    await peer.expect("ANSWER")
    peer.send(b"HANGUP\n200 result=0\n")  # two lines in one segment
    assert await peer.closed_by_server()
    assert got == ["1700000000.3", "a b", None, "hangup"]


async def test_replies_far_ahead_of_the_reader(start_server: StartServer) -> None:
    """More unread data than the line limit: reading pauses, then resumes as the
    session consumes it, and nothing is lost."""
    count = 3000
    results: list[int] = []

    async def route(s: AGISession) -> None:
        await asyncio.sleep(0.1)  # let the replies pile up
        for _ in range(count):
            results.append((await s.command("NOOP")).result)

    server = await start_server({"r": route}, max_env_bytes=2048, max_line_bytes=1024)
    peer = await FakeAsterisk.call(server.port, "r")
    peer.send(b"200 result=1\n" * count)  # 39 kB, far beyond the 2 kB limit
    received = b""
    while len(received) < count * len(b"NOOP\n"):
        chunk = await asyncio.wait_for(peer.reader.read(65536), 3)
        assert chunk
        received += chunk
    assert received == b"NOOP\n" * count
    assert await peer.closed_by_server()
    assert results == [1] * count
    await normal_call(server.port)


async def test_command_round_trips_reach_the_latency_observer(
    start_server: StartServer,
) -> None:
    """Each answered command's round trip is handed over (for acd_agi_command_seconds):
    a reply that takes 50 ms shows up as about 50 ms, and nothing is lost at call end."""
    batches: list[list[float]] = []
    server = await start_server({}, observe_commands=lambda d: batches.append(list(d)))
    peer = await FakeAsterisk.call(server.port, "ok")
    line = await asyncio.wait_for(peer.reader.readline(), 3)
    assert line == b"ANSWER\n"
    await asyncio.sleep(0.05)
    peer.send(b"200 result=0\n")
    await peer.expect('SET VARIABLE ACD_CHOICE "1"', "200 result=1")
    assert await peer.closed_by_server()
    peer.close()
    await wait_idle(server)
    durations = [d for batch in batches for d in batch]
    assert len(durations) == 2
    assert 0.045 <= durations[0] < 1.0
    assert 0 <= durations[1] < durations[0]


async def test_commands_wait_while_asterisk_reads_slowly(start_server: StartServer) -> None:
    """Commands the socket cannot take yet (Asterisk not reading) are sent later, whole
    and in order, also those still unsent when the handler has ended."""
    count = 1500
    text = "x" * 4000  # 6 MB: more than the server's send buffer grows to (4 MB)

    async def route(s: AGISession) -> None:
        for i in range(count):
            await s.verbose(f"{i} {text}", 1)

    server = await start_server({"slow": route})
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a receiver that lags
    sock.connect(("127.0.0.1", server.port))
    sock.setblocking(False)
    peer = FakeAsterisk(*await asyncio.open_connection(sock=sock))
    peer.send(header("slow"))
    peer.send(b"200 result=1\n" * count)  # answered ahead; nothing read for now
    await asyncio.sleep(0.3)
    received = b""
    while received.count(b"\n") < count:
        chunk = await asyncio.wait_for(peer.reader.read(1 << 20), 3)
        assert chunk
        received += chunk
    assert received.splitlines() == [f'VERBOSE "{i} {text}" 1'.encode() for i in range(count)]
    assert await peer.closed_by_server()
    await wait_idle(server)
    await normal_call(server.port)


async def test_asterisk_closing_while_the_handler_is_busy(start_server: StartServer) -> None:
    """Asterisk goes away while the handler awaits something else (a lookup): the loop
    does not spin on the closed socket, and the next command reports the hangup."""
    outcome: list[str] = []

    async def route(s: AGISession) -> None:
        await s.answer()
        await asyncio.sleep(0.4)  # a slow customer-data lookup, say
        try:
            await s.set_variable("ACD_CHOICE", "1")
        except AGIHangup:
            outcome.append("hangup")

    server = await start_server({"busy": route})
    peer = await FakeAsterisk.call(server.port, "busy")
    await peer.expect("ANSWER", "200 result=0")
    await asyncio.sleep(0.05)
    peer.close()
    cpu_before = time.process_time()
    await normal_call(server.port)
    await asyncio.sleep(0.2)
    assert time.process_time() - cpu_before < 0.1
    await wait_idle(server)
    assert outcome == ["hangup"]


async def test_calls_work_where_there_is_no_epoll(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Off Linux the sockets are watched by the event loop's own selector: calls, a
    paused read and a misbehaving peer behave the same."""
    monkeypatch.setattr("acd.agi.server.make_poller", LoopPoller)
    await test_replies_far_ahead_of_the_reader(start_server)
    await test_peer_closing_before_the_blank_line(start_server)
