"""Talking to systemd: readiness, reloads, shutdown and the watchdog (``sd_notify``).

The protocol is one datagram of ``KEY=VALUE`` lines to the AF_UNIX socket named in
``$NOTIFY_SOCKET`` (a leading ``@`` is Linux's abstract namespace). That is a few lines
of socket code, so it is done here rather than through libsystemd's C bindings.

Nothing here may hurt a call: the socket is non-blocking and a failed send is logged
once and otherwise ignored; without ``$NOTIFY_SOCKET`` (not started by systemd) every
call is a no-op.
"""

from __future__ import annotations

import asyncio
import faulthandler
import os
import socket
import time
from collections.abc import Callable, Mapping

from acd.log import get_logger

log = get_logger(__name__)


def socket_address(value: str) -> str | bytes | None:
    """``$NOTIFY_SOCKET`` as an address for ``sendto``; None when it is not AF_UNIX."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None  # vsock:... and other transports are not used for services


def watchdog_interval(environ: Mapping[str, str], pid: int | None = None) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings: half of ``$WATCHDOG_USEC``, as systemd advises.

    None when no watchdog is armed, or when ``$WATCHDOG_PID`` names another process
    (the variable was inherited, the pings are not ours to send).
    """
    usec = environ.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    owner = environ.get("WATCHDOG_PID", "")
    if owner and owner != str(os.getpid() if pid is None else pid):
        return None
    return int(usec) / 2_000_000


class SystemdNotifier:
    """Sends state changes to the service manager; every method is safe without one."""

    def __init__(self, address: str | bytes | None, watchdog: float | None = None) -> None:
        self.address = address
        self.watchdog = watchdog
        self._sock: socket.socket | None = None
        self._failed = False
        if address is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.setblocking(False)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> SystemdNotifier:
        env = os.environ if environ is None else environ
        return cls(socket_address(env.get("NOTIFY_SOCKET", "")), watchdog_interval(env))

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, **fields: str | int) -> bool:
        """Send one message (``READY=1``, ``STATUS=...``); True when it went out."""
        if self._sock is None or self.address is None:
            return False
        message = "\n".join(f"{key}={value}" for key, value in fields.items())
        try:
            self._sock.sendto(message.encode(), self.address)
        except OSError as exc:
            if not self._failed:  # once: a missing manager must not flood the journal
                log.warning("systemd_notify_failed", error=str(exc))
                self._failed = True
            return False
        self._failed = False
        return True

    def ready(self, status: str) -> None:
        """The daemon takes calls now (systemd starts the units ordered after it)."""
        self.notify(READY=1, STATUS=status)

    def reloading(self) -> None:
        """A reload began; ``MONOTONIC_USEC`` is required by Type=notify-reload (systemd 253+)."""
        self.notify(RELOADING=1, MONOTONIC_USEC=time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000)

    def stopping(self, status: str, extend: float | None = None) -> None:
        """Shutdown began; ``extend`` asks for that many more seconds before a SIGKILL."""
        fields: dict[str, str | int] = {"STOPPING": 1, "STATUS": status}
        if extend is not None:
            fields["EXTEND_TIMEOUT_USEC"] = int(extend * 1_000_000)
        self.notify(**fields)

    def status(self, status: str) -> None:
        self.notify(STATUS=status)

    async def keep_alive(self, status: Callable[[], str] | None = None) -> None:
        """Ping the watchdog from the event loop until cancelled.

        The pings come from this task on the daemon's loop, so a blocked loop stops
        them and systemd restarts a daemon that no longer serves calls. ``status`` (if
        given) refreshes the one-line status shown by ``systemctl status``.
        """
        if self.watchdog is None:
            return
        # systemd kills a silent daemon with SIGABRT: have Python print where every
        # thread was stuck to stderr (the journal) first.
        if not faulthandler.is_enabled():
            faulthandler.enable()
        log.info("systemd_watchdog", interval=self.watchdog)
        last = ""
        while True:
            fields: dict[str, str | int] = {"WATCHDOG": 1}
            if status is not None:
                try:
                    text = status()
                except Exception:  # a status line must never stop the pings
                    log.exception("systemd_status_failed")
                    text = last
                if text != last:
                    fields["STATUS"] = last = text
            self.notify(**fields)
            await asyncio.sleep(self.watchdog)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
