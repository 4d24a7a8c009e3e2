"""FastAGI throughput: acd's server against a bare asyncio line server and panoramisk.

    python bench/agi_throughput.py [--sessions 50] [--commands 10] [--rounds 5]
    python bench/agi_throughput.py --instructions     # needs valgrind; a few minutes

This process plays Asterisk: it keeps ``--sessions`` calls connected at once, sends a
realistic ``agi_*`` header on each, answers every command line with the reply Asterisk
would give, and places a new call whenever the server ends one. It shares the machine
with the server, so it is kept cheaper per call than any of them (plain sockets in one
epoll set): a generator that costs more than the server measures itself. Each server
runs in its own subprocess on loopback and sends the same commands per call:

* raw: asyncio streams, write a line, read a line, check it starts with ``200``
  (the floor for a server on asyncio's streams: no parsing, no timeouts, no routing);
* panoramisk: ``panoramisk.fast_agi.Application`` with an async route;
* acd: ``acd.agi.FastAGIServer`` with a handler using the typed ``AGISession`` helpers
  (its sockets bypass asyncio's transports, see ``acd/agi/connection.py``).

The servers take turns, round after round; the best and median rounds are printed with
the acd ratios against the targets. Other load on the machine moves the figures (every
round is shown so outliers are visible); ``--instructions`` counts each server's
instructions per call under valgrind instead, which other load cannot move. It asserts
nothing: it is a figures printer.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import select
import shutil
import signal
import socket
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROUTE = "bench"
SERVERS = ("raw", "panoramisk", "acd")
TARGET_RAW = 0.85
TARGET_PANORAMISK = 1.2

# The command lines acd's helpers emit for the handler below, and Asterisk's replies.
SCRIPT: list[tuple[str, str]] = [
    ("ANSWER", "200 result=0"),
    ('VERBOSE "acd bench call" 1', "200 result=1"),
    ('SET VARIABLE ACD_ROUTE "bench"', "200 result=1"),
    ("GET VARIABLE CALLERID(num)", "200 result=1 (5551234)"),
    ('STREAM FILE hello-world "0123456789"', "200 result=0 endpos=20480"),
    ("GET DATA ivr-menu 5000 4", "200 result=12 (timeout)"),
    ('SAY DIGITS 1234 ""', "200 result=0"),
    ("WAIT FOR DIGIT 3000", "200 result=50"),
    ('EXEC Playback "beep"', "200 result=0"),
    ('GET FULL VARIABLE "${CHANNEL(linkedid)}"', "200 result=1 (1700000000.42)"),
]


def commands(n: int) -> list[str]:
    return [SCRIPT[i % len(SCRIPT)][0] for i in range(n)]


# --- servers (each in its own subprocess) ----------------------------------------------

_alive: list[object] = []  # keeps the server objects referenced while serving


async def serve_raw(n: int) -> int:
    lines = [(c + "\n").encode() for c in commands(n)]

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\n\n")
            for line in lines:
                writer.write(line)
                if not (await reader.readline()).startswith(b"200"):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(client, "127.0.0.1", 0)
    _alive.append(server)
    port: int = server.sockets[0].getsockname()[1]
    return port


async def serve_panoramisk(n: int) -> int:
    from panoramisk.fast_agi import Application

    cmds = commands(n)

    async def route(request: Any) -> None:
        # send_command reports failures (510, 520, result=-1, HANGUP) as an 'error' key.
        for cmd in cmds:
            if "error" in await request.send_command(cmd):
                break

    app = Application()  # inside the running loop: its constructor looks the loop up
    app.add_route(ROUTE, route)
    server = await asyncio.start_server(app.handler, "127.0.0.1", 0)
    _alive.append(server)
    port: int = server.sockets[0].getsockname()[1]
    return port


async def serve_acd(n: int) -> int:
    from acd.agi import AGISession, FastAGIServer

    async def ivr(s: AGISession) -> None:
        """The ten commands of SCRIPT, written as a route handler would write them."""
        await s.answer()
        await s.verbose("acd bench call", 1)
        await s.set_variable("ACD_ROUTE", "bench")
        await s.get_variable("CALLERID(num)")
        await s.stream_file("hello-world", "0123456789")
        await s.get_data("ivr-menu", 5000, 4)
        await s.say_digits("1234")
        await s.wait_for_digit(3000)
        await s.exec("Playback", "beep")
        await s.get_full_variable("${CHANNEL(linkedid)}")

    steps: list[Callable[[AGISession], Awaitable[object]]] = [
        lambda s: s.answer(),
        lambda s: s.verbose("acd bench call", 1),
        lambda s: s.set_variable("ACD_ROUTE", "bench"),
        lambda s: s.get_variable("CALLERID(num)"),
        lambda s: s.stream_file("hello-world", "0123456789"),
        lambda s: s.get_data("ivr-menu", 5000, 4),
        lambda s: s.say_digits("1234"),
        lambda s: s.wait_for_digit(3000),
        lambda s: s.exec("Playback", "beep"),
        lambda s: s.get_full_variable("${CHANNEL(linkedid)}"),
    ]
    rest = [steps[i % len(steps)] for i in range(n % len(steps))]

    async def handler(session: AGISession) -> None:
        for _ in range(n // len(steps)):
            await ivr(session)
        for step in rest:
            await step(session)

    from acd.metrics import CommandLatency

    # As the daemon runs it: command round trips feed the latency histogram.
    latency = CommandLatency()
    server = FastAGIServer({ROUTE: handler}, port=0, observe_commands=latency.add)
    await server.start()
    _alive.append(server)
    return server.port


async def run_server(kind: str, n: int) -> None:
    # The same log level for all three: warnings only, as none of them warns here.
    logging.basicConfig(level=logging.WARNING)
    if kind == "acd":
        from acd.log import configure_logging

        configure_logging("WARNING")
    serve = {"raw": serve_raw, "panoramisk": serve_panoramisk, "acd": serve_acd}[kind]
    print(f"PORT {await serve(n)}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()


# --- the Asterisk side ------------------------------------------------------------------

HEADER = (
    "agi_network: yes\n"
    f"agi_network_script: {ROUTE}\n"
    f"agi_request: agi://127.0.0.1/{ROUTE}\n"
    "agi_channel: PJSIP/trunk-{serial:08x}\n"
    "agi_language: en\n"
    "agi_type: PJSIP\n"
    "agi_uniqueid: 1700000000.{serial}\n"
    "agi_version: 20.5.0\n"
    "agi_callerid: 5551234\n"
    "agi_calleridname: Bench Caller\n"
    "agi_callingpres: 0\n"
    "agi_callingani2: 0\n"
    "agi_callington: 0\n"
    "agi_callingtns: 0\n"
    "agi_dnid: 8005550100\n"
    "agi_rdnis: unknown\n"
    "agi_context: from-trunk\n"
    "agi_extension: 8005550100\n"
    "agi_priority: 2\n"
    "agi_enhanced: 0.0\n"
    "agi_accountcode: \n"
    "agi_threadid: 140234567890123\n"
    "agi_arg_1: hotline\n"
    "\n"
)
REPLIES = {(cmd + "\n").encode(): (reply + "\n").encode() for cmd, reply in SCRIPT}
UNKNOWN = b"510 Invalid or unknown command\n"


class Load:
    """Counters shared by all the fake-Asterisk calls of one measurement."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.sessions = 0
        self.commands = 0
        self.errors = 0
        self.serial = 0
        self.running = True


class FakeAsterisk:
    """One call as res_agi drives it: header, then a reply per command line.

    The generator shares the machine with the server it drives, so it must cost less
    per call than the cheapest server, or it measures itself: plain sockets used with
    ``MSG_DONTWAIT`` in one epoll set (``Dialer``), no asyncio transports. Replies go out
    as soon as a command line is complete, as Asterisk answers them."""

    __slots__ = ("answered", "buf", "dialer", "fd", "sock")

    def __init__(self, dialer: Dialer, sock: socket.socket) -> None:
        self.dialer = dialer
        self.sock = sock
        self.fd = sock.fileno()
        self.buf = b""
        self.answered = 0

    def start(self, header: bytes) -> None:
        """Send the header, as soon as the (loopback) connection is up."""
        try:
            self.sock.send(header, _FLAGS)
        except (BlockingIOError, InterruptedError, OSError):
            # Not connected yet: wait until it is (rare on loopback).
            self.dialer.epoll.register(self.fd, select.EPOLLOUT)
            self.dialer.pending[self.fd] = (self, header)
            return
        self.dialer.epoll.register(self.fd, select.EPOLLIN)

    def readable(self) -> None:
        try:
            data = self.sock.recv(65536, _FLAGS)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the server ended the call
            self.dialer.ended(self)
            return
        buf = self.buf + data if self.buf else data
        load = self.dialer.load
        start = 0
        out = []
        while (end := buf.find(b"\n", start)) >= 0:
            reply = REPLIES.get(buf[start : end + 1])
            if reply is None:
                load.errors += 1
                reply = UNKNOWN
            out.append(reply)
            start = end + 1
        self.buf = buf[start:]
        if out:
            self.answered += len(out)
            load.commands += len(out)
            try:
                self.sock.send(out[0] if len(out) == 1 else b"".join(out), _FLAGS)
            except OSError:
                self.dialer.ended(self)


_FLAGS = socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL


class Dialer:
    """Keeps ``concurrent`` fake-Asterisk calls going against ``port`` while
    ``more(calls placed so far)``; ``all_done`` is set once the last call has ended."""

    def __init__(self, port: int, load: Load, concurrent: int, more: Callable[[int], bool]) -> None:
        self.loop = asyncio.get_running_loop()
        self.address = ("127.0.0.1", port)
        self.load = load
        self.more = more
        self.placed = self.open_calls = 0
        self.calls: dict[int, FakeAsterisk] = {}
        self.pending: dict[int, tuple[FakeAsterisk, bytes]] = {}
        self.all_done = asyncio.Event()
        self.epoll = select.epoll()
        self.loop.add_reader(self.epoll.fileno(), self.dispatch)
        for _ in range(concurrent):
            if more(self.placed):
                self.place()
        if self.placed == 0:
            self.finish()

    def place(self) -> None:
        self.placed += 1
        self.open_calls += 1
        self.load.serial += 1
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        err = sock.connect_ex(self.address)
        if err not in (0, errno.EINPROGRESS):
            sock.close()
            self.load.errors += 1
            self.loop.call_soon(self.call_done)
            return
        call = FakeAsterisk(self, sock)
        self.calls[call.fd] = call
        call.start(HEADER.format(serial=self.load.serial).encode())

    def dispatch(self) -> None:
        calls = self.calls
        for fd, _events in self.epoll.poll(0, 256):
            if fd in self.pending:  # connected now: send the header
                call, header = self.pending.pop(fd)
                self.epoll.unregister(fd)
                if call.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    self.load.errors += 1
                    self.ended(call, completed=False)
                else:
                    call.start(header)
            elif (call := calls.get(fd)) is not None:
                call.readable()

    def ended(self, call: FakeAsterisk, completed: bool = True) -> None:
        if self.calls.pop(call.fd, None) is None:
            return
        self.pending.pop(call.fd, None)
        call.sock.close()  # leaves the epoll set with it
        if completed and call.answered == self.load.expected:
            self.load.sessions += 1
        elif completed:
            self.load.errors += 1
        self.call_done()

    def call_done(self) -> None:
        self.open_calls -= 1
        if self.more(self.placed):
            self.place()
        elif self.open_calls == 0:
            self.finish()

    def finish(self) -> None:
        self.loop.remove_reader(self.epoll.fileno())
        self.epoll.close()
        self.all_done.set()


@dataclass
class Figures:
    sessions: float  # calls completed per second
    commands: float  # commands answered per second
    errors: int  # calls cut short, unknown commands, refused connections
    cpu_us: float  # server CPU time (user + system) per completed call, in microseconds


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux ``/proc``; 0 elsewhere).

    The load generator shares the machine with the server, so sessions/s partly measures
    the generator; the server's own CPU time per call is the cost of the server alone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def dial(port: int, load: Load, concurrent: int, more: Callable[[int], bool]) -> asyncio.Event:
    """Keep ``concurrent`` calls going while ``more(calls placed so far)``; the event is
    set once the last call has ended."""
    return Dialer(port, load, concurrent, more).all_done


async def measure(port: int, sessions: int, n: int, duration: float, pid: int) -> Figures:
    """Keep ``sessions`` calls going; count what completes in ``duration`` seconds after
    a short warm-up, and the CPU time server ``pid`` spends meanwhile."""
    load = Load(n)
    finished = dial(port, load, sessions, lambda _placed: load.running)
    await asyncio.sleep(min(1.0, duration / 3))
    s0, c0, t0, cpu0 = load.sessions, load.commands, time.perf_counter(), cpu_seconds(pid)
    await asyncio.sleep(duration)
    s1, c1, t1, cpu1 = load.sessions, load.commands, time.perf_counter(), cpu_seconds(pid)
    load.running = False
    try:
        await asyncio.wait_for(finished.wait(), 10)
    except TimeoutError:
        load.errors += 1  # calls still open 10 s after the end
    cpu_us = (cpu1 - cpu0) / max(1, s1 - s0) * 1e6
    return Figures((s1 - s0) / (t1 - t0), (c1 - c0) / (t1 - t0), load.errors, cpu_us)


# asyncio reads sockets into a fresh 256 KiB buffer every time. Whether glibc serves it
# from the heap or with mmap/mremap/munmap (three extra syscalls per read) depends on its
# dynamic mmap threshold, which a process raises the first time it frees a big enough
# block, i.e. on accidents of its history. Fixing the thresholds gives every server the
# steady state of a long-running daemon, so that the figures compare the servers.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(4 << 20), "MALLOC_TRIM_THRESHOLD_": str(16 << 20)}


async def bench_one(kind: str, args: argparse.Namespace) -> Figures:
    env = os.environ if args.malloc_default else {**os.environ, **MALLOC_ENV}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--serve",
        kind,
        "--commands",
        str(args.commands),
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        if not line.startswith("PORT "):
            raise RuntimeError(f"{kind} server did not start: {line!r}")
        port = int(line.split()[1])
        return await measure(port, args.sessions, args.commands, args.duration, proc.pid)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


# --- instructions per call (valgrind) --------------------------------------------------


async def place_calls(port: int, n: int, calls: int, concurrent: int = 20) -> Load:
    """Place exactly ``calls`` calls, ``concurrent`` at a time, and wait for all."""
    load = Load(n)
    await asyncio.wait_for(dial(port, load, concurrent, lambda placed: placed < calls).wait(), 600)
    return load


async def instructions_run(kind: str, n: int, calls: int, out: Path) -> tuple[int, Load]:
    """User-space instructions a server executes from start to exit, serving ``calls``."""
    proc = await asyncio.create_subprocess_exec(
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        sys.executable,
        __file__,
        "--serve",
        kind,
        "--commands",
        str(n),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, **MALLOC_ENV},
    )
    assert proc.stdout is not None
    first = (await asyncio.wait_for(proc.stdout.readline(), 120)).decode()
    if not first.startswith("PORT "):
        raise RuntimeError(f"{kind} server did not start under valgrind: {first!r}")
    load = await place_calls(int(first.split()[1]), n, calls)
    proc.send_signal(signal.SIGTERM)
    await proc.wait()
    return _summary(out), load


def _summary(out: Path) -> int:
    """The total instruction count callgrind wrote."""
    for line in out.read_text().splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1])
    raise RuntimeError(f"no instruction count in {out}")


async def instructions(args: argparse.Namespace) -> None:
    """Instructions per call, from two runs of each server that differ only in the number
    of calls: start-up and shut-down cancel out. Deterministic, so other work on the
    machine does not move it; it leaves out the kernel's share (the same system calls
    for all three servers), so it shows the servers' own cost of a call."""
    import tempfile

    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
    few, many = args.calls, 4 * args.calls
    print(f"user-space instructions per call ({args.commands} commands), {few} vs {many} calls")
    per_call: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in SERVERS:
            counts = []
            for calls in (few, many):
                ir, load = await instructions_run(kind, args.commands, calls, Path(tmp) / kind)
                if load.errors or load.sessions != calls:
                    got = f"{load.sessions}/{calls} calls, {load.errors} errors"
                    raise RuntimeError(f"{kind}: {got}")
                counts.append(ir)
            per_call[kind] = (counts[1] - counts[0]) / (many - few)
            print(f"  {kind:<11} {per_call[kind] / 1000:9.1f} k instructions/call")
    print()
    for name, other, target in (
        ("acd/raw", "raw", TARGET_RAW),
        ("acd/panoramisk", "panoramisk", TARGET_PANORAMISK),
    ):
        ratio = per_call[other] / per_call["acd"]
        verdict = "met" if ratio >= target else "MISSED"
        print(f"{name:<15} {ratio:5.2f} x calls per instruction   target >= {target}: {verdict}")


async def main(args: argparse.Namespace) -> None:
    if args.instructions:
        await instructions(args)
        return
    runs: dict[str, list[Figures]] = {k: [] for k in SERVERS}
    print(
        f"{args.sessions} concurrent calls, {args.commands} commands each, "
        f"{args.rounds} rounds of {args.duration:g}s per server"
        + ("" if args.malloc_default else ", malloc thresholds fixed (see MALLOC_ENV)")
    )
    for r in range(args.rounds):
        for kind in SERVERS[r % 3 :] + SERVERS[: r % 3]:
            f = await bench_one(kind, args)
            runs[kind].append(f)
            print(
                f"  round {r + 1}  {kind:<11} {f.sessions:8.0f} sessions/s "
                f"{f.commands:9.0f} commands/s {f.cpu_us:7.0f} us server CPU/call"
            )

    # Other work on the machine only ever slows a round down, so the best round is the
    # figure least disturbed by it (as timeit takes the minimum); the median is shown too.
    def best(kind: str, attr: str) -> float:
        return float(max(getattr(f, attr) for f in runs[kind]))

    def med(kind: str, attr: str) -> float:
        return float(statistics.median(getattr(f, attr) for f in runs[kind]))

    def least_cpu(kind: str) -> float:
        return float(min(f.cpu_us for f in runs[kind]))

    print()
    print(f"{'':<11} {'best round':>23}   {'median':>23}   {'server CPU/call':>15}")
    print(
        f"{'server':<11} {'sessions/s':>11} {'commands/s':>11}   {'sessions/s':>11} "
        f"{'commands/s':>11}   {'least us':>15}  {'errors':>6}"
    )
    for kind in SERVERS:
        errors = sum(f.errors for f in runs[kind])
        print(
            f"{kind:<11} {best(kind, 'sessions'):11.0f} {best(kind, 'commands'):11.0f}   "
            f"{med(kind, 'sessions'):11.0f} {med(kind, 'commands'):11.0f}   "
            f"{least_cpu(kind):15.0f}  {errors:6d}"
        )
    print()
    for name, other, target in (
        ("acd/raw", "raw", TARGET_RAW),
        ("acd/panoramisk", "panoramisk", TARGET_PANORAMISK),
    ):
        ratio = best("acd", "sessions") / best(other, "sessions")
        median_ratio = med("acd", "sessions") / med(other, "sessions")
        # Calls per server CPU-second: what each server would do with a core to itself.
        cpu_ratio = least_cpu(other) / least_cpu("acd") if least_cpu("acd") else 0.0
        verdict = "met" if ratio >= target else "MISSED"
        print(
            f"{name:<15} {ratio:5.2f} x sessions/s (median {median_ratio:4.2f}, "
            f"per CPU-second {cpu_ratio:4.2f})   target >= {target}: {verdict}"
        )


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--sessions", type=int, default=50, help="concurrent calls (default 50)")
    p.add_argument("--commands", type=int, default=10, help="AGI commands per call (10)")
    p.add_argument("--rounds", type=int, default=5, help="measurements per server (5)")
    p.add_argument("--duration", type=float, default=2.0, help="seconds per measurement (2)")
    p.add_argument(
        "--malloc-default",
        action="store_true",
        help="leave glibc's malloc thresholds alone (figures then vary from run to run)",
    )
    p.add_argument(
        "--instructions",
        action="store_true",
        help="count each server's instructions per call under valgrind instead of timing "
        "(slow, a few minutes, but unmoved by other load on the machine)",
    )
    p.add_argument("--calls", type=int, default=100, help="calls per --instructions run (100)")
    p.add_argument("--serve", choices=SERVERS, help=argparse.SUPPRESS)
    return p.parse_args()


if __name__ == "__main__":
    ns = parse_args()
    if ns.serve:
        asyncio.run(run_server(ns.serve, ns.commands))
    else:
        asyncio.run(main(ns))
