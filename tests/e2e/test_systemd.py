"""The daemon as systemd runs it, from ``deploy/acd.service``.

``systemd-analyze`` checks the unit itself. The daemon test starts the unit's
ExecStart command line with the environment systemd would give it (the unit's
``Environment=`` plus an ``EnvironmentFile=`` of secrets, ``NOTIFY_SOCKET`` and
``WATCHDOG_USEC``) and plays systemd's side of the notify socket. Two things differ from
a real install, and only those: the binary is this venv's ``acd`` instead of
``/opt/acd/venv/bin/acd``, and the secrets file points ``ACD_CONFIG`` at a copy of
``deploy/acd.toml`` (what ops install as ``/etc/acd/acd.toml``) with test-bed paths.
The PBX is down on purpose: the daemon must still report ready, since it takes calls
(Asterisk reconnects to it) whether or not AMI is up.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from acd.sim import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "acd.service"
INSTALLED_ACD = "/opt/acd/venv/bin/acd"
VENV_ACD = str(Path(sys.executable).parent / "acd")
# What systemd puts in every service's environment before the unit's own settings.
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def service_section(path: Path) -> dict[str, list[str]]:
    """``[Service]`` of a unit file: key to its values, in order (keys may repeat)."""
    section, out = "", {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.fail("systemd-analyze is missing: install Debian's systemd (./dev test does)")
    return found


def venv_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointed at this venv's acd (verify checks that it exists)."""
    text = UNIT.read_text()
    assert text.count(f"ExecStart={INSTALLED_ACD} ") == 1
    copy = tmp_path / "acd.service"
    copy.write_text(text.replace(f"ExecStart={INSTALLED_ACD} ", f"ExecStart={VENV_ACD} "))
    return copy


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    result = subprocess.run(
        [systemd_analyze(), "verify", str(venv_unit(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_the_unit_is_sandboxed(tmp_path: Path) -> None:
    """systemd's own exposure score, 0 (locked down) to 10: the unit must stay below 2."""
    unit = str(venv_unit(tmp_path))
    result = subprocess.run(
        [systemd_analyze(), "security", "--offline=true", "--threshold=20", "--no-pager", unit],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    service = service_section(UNIT)
    assert service["Type"] == ["notify"]
    assert service["NotifyAccess"] == ["main"]
    assert service["CapabilityBoundingSet"] == [""]
    assert service["StateDirectory"] == ["acd"]


class NotifySocket:
    """systemd's side of ``$NOTIFY_SOCKET``: a datagram socket the daemon writes to."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.seen: list[dict[str, str]] = []

    def next(self, timeout: float) -> dict[str, str] | None:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            return None
        message = dict(line.split("=", 1) for line in data.decode().splitlines())
        self.seen.append(message)
        return message

    def wait_for(self, key: str, timeout: float) -> tuple[dict[str, str], list[dict[str, str]]]:
        """The first message with ``key`` and those that came before it."""
        deadline = time.monotonic() + timeout
        before: list[dict[str, str]] = []
        while (left := deadline - time.monotonic()) > 0:
            message = self.next(left)
            if message is None:
                break
            if key in message:
                return message, before
            before.append(message)
        raise AssertionError(f"no {key}= within {timeout:g} s; got {before}")


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    manager = NotifySocket(tmp_path / "notify")
    yield manager
    manager.sock.close()


@dataclass
class UnitDaemon:
    proc: subprocess.Popen[bytes]
    agi_port: int
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def start_as_the_unit(
    tmp_path: Path, pg_url: str, notify: NotifySocket, wrapper: Sequence[str] = ()
) -> UnitDaemon:
    """ExecStart= with the unit's environment, the secrets file's and systemd's own."""
    service = service_section(UNIT)
    command = shlex.split(service["ExecStart"][0])
    assert command[0] == INSTALLED_ACD
    command[0] = VENV_ACD

    state = tmp_path / "state"  # stands in for StateDirectory=acd (/var/lib/acd)
    state.mkdir()
    config = tmp_path / "acd.toml"
    shutil.copy(REPO / "deploy" / "acd.toml", config)
    agi_port = free_port()
    secrets = {
        "ACD_CONFIG": str(config),
        "ACD_AGI__PORT": str(agi_port),
        "ACD_AMI__PORT": str(free_port()),  # nothing there: the PBX is down
        "ACD_AMI__SECRET": "unused",
        "ACD_DATABASE__URL": pg_url,
        "ACD_DATABASE__SPOOL_DIR": str(state / "spool"),
        "ACD_HTTP__PORT": "0",
        "ACD_IVR__FLOWS_DIR": str(REPO / "ivr_flows"),
        "ACD_ACD__QUEUES_FILE": str(REPO / "deploy" / "acd_queues.yaml"),
    }
    env = {"PATH": SYSTEMD_PATH, "LANG": "C.UTF-8"}
    for line in service["Environment"]:
        env.update(item.split("=", 1) for item in shlex.split(line))
    # EnvironmentFile= is read after Environment= and wins over it.
    assert service["EnvironmentFile"] == ["-/etc/acd/secrets.env"]
    env.update(secrets)
    env.update({"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000"})

    log_path = tmp_path / "acd.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [*wrapper, *command],
            cwd=state,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
        )
    return UnitDaemon(proc, agi_port, log_path)


def test_the_daemon_speaks_the_notify_protocol(
    tmp_path: Path, pg_url: str, notify_socket: NotifySocket
) -> None:
    service = service_section(UNIT)
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert service["KillSignal"] == ["SIGTERM"]
    daemon = start_as_the_unit(tmp_path, pg_url, notify_socket)
    proc = daemon.proc
    try:
        ready, before = notify_socket.wait_for("READY", timeout=30)
        # READY=1 means calls are taken: FastAGI accepts a connection right now.
        with socket.create_connection(("127.0.0.1", daemon.agi_port), timeout=2):
            pass
        assert ready["STATUS"] == "taking calls: 0 in progress, AMI down"
        assert '"daemon_ready"' in daemon.log()
        assert before and all(m.get("WATCHDOG") == "1" for m in before)  # pings from start

        pings = []
        end = time.monotonic() + 1.8
        while (left := end - time.monotonic()) > 0:
            message = notify_socket.next(left)
            if message is not None:
                pings.append(message)
        assert 3 <= sum(m.get("WATCHDOG") == "1" for m in pings) <= 5  # every 0.5 s

        proc.send_signal(signal.SIGHUP)  # what ExecReload does
        asked = time.monotonic_ns() // 1000
        reloading, _ = notify_socket.wait_for("RELOADING", timeout=10)
        assert reloading["RELOADING"] == "1"
        assert asked <= int(reloading["MONOTONIC_USEC"]) <= time.monotonic_ns() // 1000
        again, _ = notify_socket.wait_for("READY", timeout=10)
        assert again["STATUS"].startswith("taking calls")
        assert '"reload_done"' in daemon.log()

        proc.send_signal(signal.SIGTERM)
        stopping, _ = notify_socket.wait_for("STOPPING", timeout=10)
        assert stopping["STATUS"] == "stopping: 0 calls finishing"
        # shutdown_grace (30 s in acd.toml) + 15 s to flush: systemd must wait that long.
        assert stopping["EXTEND_TIMEOUT_USEC"] == "45000000"
        assert proc.wait(60) == 0
    finally:
        daemon.stop()
    assert '"daemon_stopped"' in daemon.log()


def filter_members(group: str) -> set[str]:
    """The system calls of a ``SystemCallFilter=`` group, nested groups expanded."""
    out = subprocess.run(
        [systemd_analyze(), "syscall-filter", group], capture_output=True, text=True, check=True
    ).stdout
    names: set[str] = set()
    for line in out.splitlines()[1:]:
        item = line.strip()
        if item.startswith("@"):
            names |= filter_members(item)
        elif item and not item.startswith("#"):
            names.add(item)
    return names


def test_the_sandbox_allows_every_system_call_the_daemon_makes(
    tmp_path: Path, pg_url: str, notify_socket: NotifySocket
) -> None:
    """The daemon under strace through start, a call, a scrape, a reload and a stop:
    every system call it made is in the unit's SystemCallFilter=, every socket in its
    RestrictAddressFamilies= (a denied call would be EPERM under systemd, or a crash)."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.fail("strace is missing: install Debian's strace (./dev test does)")
    service = service_section(UNIT)
    allowed: set[str] = set()
    for line in service["SystemCallFilter"]:
        groups = line.split()
        if groups[0].startswith("~"):
            for group in [groups[0][1:], *groups[1:]]:
                allowed -= filter_members(group) if group.startswith("@") else {group}
        else:
            for group in groups:
                allowed |= filter_members(group) if group.startswith("@") else {group}
    families = set(service["RestrictAddressFamilies"][0].split())

    trace = tmp_path / "trace"
    daemon = start_as_the_unit(
        tmp_path, pg_url, notify_socket, wrapper=[strace, "-f", "-qq", "-o", str(trace)]
    )
    try:
        notify_socket.wait_for("READY", timeout=60)
        with socket.create_connection(("127.0.0.1", daemon.agi_port), timeout=5) as agi:
            agi.sendall(b"agi_network_script: hotline\nagi_uniqueid: 1.1\n\n")
            assert agi.recv(200).startswith(b"GET FULL VARIABLE")  # the call is served
        port = next(
            json.loads(line)["port"] for line in daemon.log().splitlines() if "http_ready" in line
        )
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
            assert b"acd_ami_up 0.0" in reply.read()
        # Signals go to the daemon itself (strace keeps those sent to it).
        pid = int(Path(f"/proc/{daemon.proc.pid}/task/{daemon.proc.pid}/children").read_text())
        os.kill(pid, signal.SIGHUP)
        notify_socket.wait_for("RELOADING", timeout=20)
        notify_socket.wait_for("READY", timeout=20)
        os.kill(pid, signal.SIGTERM)
        assert daemon.proc.wait(60) == 0
    finally:
        daemon.stop()

    calls = trace.read_text(errors="replace").splitlines()
    used = {m.group(1) for line in calls if (m := re.match(r"\d+ +([a-z0-9_]+)\(", line))}
    assert {"socket", "connect", "epoll_wait"} <= used  # the trace is real
    assert sorted(used - allowed) == []
    opened = {m.group(1) for line in calls if (m := re.search(r" socket\((AF_[A-Z0-9]+)", line))}
    assert opened and opened <= families
    # MemoryDenyWriteExecute=: no writable+executable mapping, no page made executable later.
    assert service["MemoryDenyWriteExecute"] == ["yes"]
    write_exec = [
        line
        for line in calls
        if re.search(r" (mmap|mprotect|pkey_mprotect)\(", line)
        and "PROT_EXEC" in line
        and ("PROT_WRITE" in line or " mprotect(" in line)
    ]
    assert write_exec == []
