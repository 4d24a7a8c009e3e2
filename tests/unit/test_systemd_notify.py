"""sd_notify over a real AF_UNIX datagram socket, as systemd's manager receives it."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from acd.ops import systemd
from acd.ops.systemd import SystemdNotifier, socket_address, watchdog_interval
from tests.fixtures.logs import record_logs

pytestmark = pytest.mark.timeout(20)


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket standing in for systemd's notify socket."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify")
    sock.bind(path)
    sock.settimeout(2.0)
    yield sock, path
    sock.close()


def fields(datagram: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in datagram.decode().splitlines())


def test_ready_reaches_the_socket_named_in_notify_socket(
    manager: tuple[socket.socket, str],
) -> None:
    sock, path = manager
    notifier = SystemdNotifier.from_environ({"NOTIFY_SOCKET": path})
    notifier.ready("taking calls")
    assert fields(sock.recv(4096)) == {"READY": "1", "STATUS": "taking calls"}


def test_abstract_socket_names_start_with_at() -> None:
    name = f"acd-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(2.0)
    try:
        notifier = SystemdNotifier.from_environ({"NOTIFY_SOCKET": f"@{name}"})
        notifier.stopping("stopping: 2 calls finishing", extend=45.0)
        assert fields(sock.recv(4096)) == {
            "STOPPING": "1",
            "STATUS": "stopping: 2 calls finishing",
            "EXTEND_TIMEOUT_USEC": "45000000",
        }
    finally:
        sock.close()


def test_reloading_carries_the_monotonic_clock(manager: tuple[socket.socket, str]) -> None:
    """systemd >= 253 (Type=notify-reload) ignores RELOADING=1 without MONOTONIC_USEC."""
    sock, path = manager
    before = time.monotonic_ns() // 1000
    SystemdNotifier.from_environ({"NOTIFY_SOCKET": path}).reloading()
    got = fields(sock.recv(4096))
    after = time.monotonic_ns() // 1000
    assert got["RELOADING"] == "1"
    assert before <= int(got["MONOTONIC_USEC"]) <= after


def test_without_systemd_nothing_is_sent() -> None:
    notifier = SystemdNotifier.from_environ({})
    assert not notifier.enabled
    assert notifier.notify(READY=1) is False
    assert SystemdNotifier.from_environ({"NOTIFY_SOCKET": "vsock:2:1234"}).enabled is False


def test_a_manager_that_went_away_is_logged_once_and_never_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs = record_logs(monkeypatch, systemd)
    notifier = SystemdNotifier.from_environ({"NOTIFY_SOCKET": str(tmp_path / "nobody")})
    assert [notifier.notify(WATCHDOG=1) for _ in range(3)] == [False, False, False]
    assert len(logs.named("systemd_notify_failed")) == 1


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "20000000"}) == 10.0
    assert watchdog_interval({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(os.getpid())}) == 10
    # Inherited from a parent whose watchdog it is: not ours to ping.
    assert watchdog_interval({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
    assert watchdog_interval({}) is None


def test_socket_address_forms() -> None:
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert socket_address("@abstract") == b"\0abstract"
    assert socket_address("") is None


#: Linux asm-generic/socket.h; the socket module does not export it.
SO_TIMESTAMP = 29


def kernel_stamped(sock: socket.socket) -> list[tuple[float, dict[str, str]]]:
    """Every datagram queued on ``sock`` with the time the kernel received it."""
    sock.setblocking(False)
    out = []
    while True:
        try:
            data, ancillary, _flags, _addr = sock.recvmsg(4096, socket.CMSG_SPACE(16))
        except BlockingIOError:
            return out
        (_level, _type, stamp) = ancillary[0]
        seconds, micros = struct.unpack("@ll", stamp)
        out.append((seconds + micros / 1e6, fields(data)))


async def test_a_blocked_event_loop_stops_the_watchdog_pings(
    manager: tuple[socket.socket, str],
) -> None:
    """The pings come from the event loop, so systemd notices a loop that hangs."""
    sock, path = manager
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMP, 1)
    notifier = SystemdNotifier.from_environ({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"})
    assert notifier.watchdog == 0.05
    statuses = iter(["starting", "starting", "taking calls"])
    pinger = asyncio.create_task(notifier.keep_alive(lambda: next(statuses, "taking calls")))
    await asyncio.sleep(0.4)
    blocked_from = time.time()
    time.sleep(0.6)  # noqa: ASYNC251 - the loop is stuck: no ping may go out meanwhile
    blocked_until = time.time()
    await asyncio.sleep(0.3)
    pinger.cancel()
    arrivals = kernel_stamped(sock)

    assert all(f["WATCHDOG"] == "1" for _, f in arrivals)
    assert [f["STATUS"] for _, f in arrivals if "STATUS" in f] == ["starting", "taking calls"]
    assert len([t for t, _ in arrivals if t < blocked_from]) >= 4
    assert [t for t, _ in arrivals if blocked_from < t < blocked_until] == []
    assert len([t for t, _ in arrivals if t > blocked_until]) >= 3


BLOCKED_DAEMON = """
import asyncio, os, socket, time
from acd.ops.systemd import SystemdNotifier

def stuck_in_a_lookup():
    time.sleep(30)

async def main():
    notifier = SystemdNotifier.from_environ()
    pinger = asyncio.create_task(notifier.keep_alive())
    await asyncio.sleep(0.2)
    print("blocking", flush=True)
    stuck_in_a_lookup()

asyncio.run(main())
"""


def test_the_watchdog_kill_leaves_the_stuck_stack_in_the_log(
    manager: tuple[socket.socket, str], tmp_path: Path
) -> None:
    """What systemd does when the pings stop (WatchdogSignal=SIGABRT), and what ops read."""
    _sock, path = manager
    env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"}
    proc = subprocess.Popen(
        [sys.executable, "-c", BLOCKED_DAEMON],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    while (line := proc.stdout.readline()) != b"blocking\n":
        assert line, "the script ended before blocking"
    time.sleep(0.3)
    proc.send_signal(signal.SIGABRT)
    _out, err = proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGABRT
    assert b"Fatal Python error: Aborted" in err
    assert b"stuck_in_a_lookup" in err
