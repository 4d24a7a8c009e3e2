"""Asterisk's AGI sockets, read and written without asyncio transports.

A FastAGI call is a strict ping-pong of short lines: one command out, one reply in.
asyncio's socket transports spend about six system calls per connection on things this
dialogue does not use (peer and socket names, non-blocking mode, TCP_NODELAY, and a
selector registration and removal each) and a layer of Python per read and write. Here:

* the listening socket carries TCP_NODELAY, which Linux copies to every accepted socket;
* sockets stay in blocking mode and every ``recv``/``send`` passes ``MSG_DONTWAIT``;
* all connections share one epoll set (``ReadyPoller``), which the event loop watches as
  a single descriptor; a socket leaves the set by being closed, with no call of its own.

Nearly every read is exactly one reply line arriving while the session waits for it:
that chunk is handed over as it is. Anything else (a header in pieces, several lines at
once, a HANGUP notice beside a reply) goes through a buffer. ``bench/agi_throughput.py``
measures the difference.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
from collections.abc import Callable
from typing import Protocol

from acd.log import get_logger

log = get_logger(__name__)

# Bytes asked for per read: more than any line the limits admit, and below glibc's mmap
# threshold (128 KiB) so a read does not map and unmap a block of its own.
READ_SIZE = 16384
_FLAGS = socket.MSG_DONTWAIT | getattr(socket, "MSG_NOSIGNAL", 0)
# Events taken per epoll_wait; more wait for the next turn of the loop.
_MAX_EVENTS = 256
# How long a closed connection may take to send what Asterisk has not read yet.
FLUSH_SECONDS = 10.0


class ReadyPoller(Protocol):
    """Tells connections when their socket has something to read."""

    def add(self, fd: int, on_readable: Callable[[], None]) -> None: ...

    def forget(self, fd: int) -> None:
        """Stop calling back; the caller closes the socket next (which leaves epoll)."""

    def pause(self, fd: int) -> None: ...

    def resume(self, fd: int) -> None: ...

    def close(self) -> None: ...


class EpollPoller:
    """One epoll set for all AGI sockets, watched by the loop as one descriptor."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._epoll = select.epoll()
        self._callbacks: dict[int, Callable[[], None]] = {}
        loop.add_reader(self._epoll.fileno(), self._dispatch)

    def add(self, fd: int, on_readable: Callable[[], None]) -> None:
        self._epoll.register(fd, select.EPOLLIN)
        self._callbacks[fd] = on_readable

    def forget(self, fd: int) -> None:
        # No epoll_ctl: closing the socket removes it from the set.
        self._callbacks.pop(fd, None)

    def pause(self, fd: int) -> None:
        # Out of the set altogether: a registration with no events would still report
        # a hang-up over and over.
        with contextlib.suppress(OSError):
            self._epoll.unregister(fd)

    def resume(self, fd: int) -> None:
        with contextlib.suppress(OSError):
            self._epoll.register(fd, select.EPOLLIN)

    def close(self) -> None:
        self._loop.remove_reader(self._epoll.fileno())
        self._epoll.close()
        self._callbacks.clear()

    def _dispatch(self) -> None:
        callbacks = self._callbacks
        for fd, _ in self._epoll.poll(0, _MAX_EVENTS):
            callback = callbacks.get(fd)
            if callback is not None:  # else its socket closed after this poll began
                try:
                    callback()
                except Exception:  # one call's bug must not starve the others
                    log.exception("agi_read_failed")


class LoopPoller:
    """Where there is no epoll: each socket is a reader of the event loop itself."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._callbacks: dict[int, Callable[[], None]] = {}

    def add(self, fd: int, on_readable: Callable[[], None]) -> None:
        self._callbacks[fd] = on_readable
        self._loop.add_reader(fd, on_readable)

    def forget(self, fd: int) -> None:
        if self._callbacks.pop(fd, None) is not None:
            self._loop.remove_reader(fd)

    def pause(self, fd: int) -> None:
        self._loop.remove_reader(fd)

    def resume(self, fd: int) -> None:
        if (callback := self._callbacks.get(fd)) is not None:
            self._loop.add_reader(fd, callback)

    def close(self) -> None:
        for fd in list(self._callbacks):
            self.forget(fd)


def make_poller(loop: asyncio.AbstractEventLoop) -> ReadyPoller:
    """epoll where the platform has it, the loop's own selector elsewhere."""
    return EpollPoller(loop) if hasattr(select, "epoll") else LoopPoller(loop)


def listen(host: str, port: int, backlog: int) -> list[socket.socket]:
    """Listening sockets for every address ``host`` resolves to, as asyncio binds them
    (with ``port=0``, one ephemeral port for all of them)."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, type_, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, type_, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            with contextlib.suppress(OSError):  # inherited by accepted sockets (Linux)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if port == 0 and len(sockets) > 1:
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            try:
                sock.bind(address)
            except OSError as exc:
                where = f"{host or '*'}:{port}"
                raise OSError(
                    exc.errno, f"cannot listen for FastAGI on {where}: {exc.strerror}"
                ) from None
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class AgiConnection:
    """One Asterisk connection: the reads ``AGISession`` and the server make
    (``readuntil``, ``set_exception``, ``exception``) and the writes (``write``,
    ``close``, ``abort``; ``transport`` is the connection itself).

    Reading pauses while more than ``limit`` bytes wait unread. When Asterisk closes its
    side the socket is closed at once, as asyncio's transports do.
    """

    __slots__ = (
        "_buf",
        "_closed",
        "_eof",
        "_exc",
        "_fd",
        "_flush_timer",
        "_limit",
        "_loop",
        "_out",
        "_paused",
        "_poller",
        "_sep",
        "_sock",
        "_waiter",
        "peer",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        peer: object,
        poller: ReadyPoller,
        limit: int,
    ) -> None:
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self.peer = peer
        self._poller = poller
        self._limit = limit
        self._buf = bytearray()  # unread data
        self._out = bytearray()  # unsent data (only when the send buffer was full)
        self._waiter: asyncio.Future[bytes] | None = None
        self._sep = b"\n"
        self._eof = False
        self._closed = False
        self._exc: BaseException | None = None
        self._paused = False
        self._flush_timer: asyncio.TimerHandle | None = None
        poller.add(self._fd, self._on_readable)

    @property
    def transport(self) -> AgiConnection:
        return self

    # --- reading ----------------------------------------------------------------------

    def _on_readable(self) -> None:
        try:
            data = self._sock.recv(READ_SIZE, _FLAGS)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lost(exc)
            return
        if not data:
            self._eof = True
            self._wake_incomplete()
            self._close_socket()
            return
        waiter = self._waiter
        if waiter is not None and waiter.done():  # its reader was cancelled
            waiter = self._waiter = None
        if (
            waiter is not None
            and not self._buf
            and self._sep == b"\n"
            and data.find(b"\n") == len(data) - 1
        ):
            self._waiter = None
            waiter.set_result(data)
            return
        buf = self._buf
        buf += data
        if waiter is not None:
            if (i := buf.find(self._sep)) >= 0:
                self._waiter = None
                waiter.set_result(self._take(i + len(self._sep)))
            elif len(buf) > self._limit:
                self._wake(asyncio.LimitOverrunError("separator not found", self._limit))
        if len(buf) > self._limit and not self._paused and not self.is_closing():
            self._paused = True
            self._poller.pause(self._fd)

    def readuntil(self, separator: bytes = b"\n") -> asyncio.Future[bytes]:
        """A future for the data up to and including ``separator``."""
        if self._waiter is not None:
            if not self._waiter.done():
                raise RuntimeError("readuntil() called while another read is waiting")
            self._waiter = None
        fut = self._loop.create_future()
        if self._exc is not None:
            fut.set_exception(self._exc)
        elif self._buf and (i := self._buf.find(separator)) >= 0:
            fut.set_result(self._take(i + len(separator)))
        elif len(self._buf) > self._limit:
            fut.set_exception(asyncio.LimitOverrunError("separator not found", self._limit))
        elif self._eof:
            fut.set_exception(self._incomplete())
        elif self._closed:
            fut.set_exception(ConnectionResetError("AGI connection closed"))
        else:
            self._sep = separator
            self._waiter = fut
        return fut

    def set_exception(self, exc: Exception) -> None:
        """Fail the pending read and every later one (timeouts use this)."""
        self._exc = exc
        self._wake(exc)

    def exception(self) -> BaseException | None:
        return self._exc

    def _take(self, end: int) -> bytes:
        data = bytes(self._buf[:end])
        del self._buf[:end]
        if self._paused and len(self._buf) <= self._limit and not self.is_closing():
            self._paused = False
            self._poller.resume(self._fd)
        return data

    def _incomplete(self) -> asyncio.IncompleteReadError:
        return asyncio.IncompleteReadError(bytes(self._buf), None)

    def _wake_incomplete(self) -> None:
        if self._waiter is not None:
            self._wake(self._incomplete())

    def _wake(self, exc: BaseException) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    # --- writing ----------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Send now; what the socket does not take is sent when it can."""
        if self._closed or self._flush_timer is not None:
            return
        if self._out:
            self._out += data
            return
        try:
            sent = self._sock.send(data, _FLAGS)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self._lost(exc)
            return
        if sent < len(data):
            self._out += data[sent:]
            self._loop.add_writer(self._fd, self._on_writable)

    def _on_writable(self) -> None:
        try:
            sent = self._sock.send(self._out, _FLAGS)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lost(exc)
            return
        del self._out[:sent]
        if not self._out:
            self._loop.remove_writer(self._fd)
            if self._flush_timer is not None:
                self._close_socket()

    def close(self) -> None:
        """End the call's connection once what is unsent has gone out (for at most
        ``FLUSH_SECONDS``), as ``asyncio.Transport.close`` does."""
        if self._closed or self._flush_timer is not None:
            return
        if not self._out:
            self._close_socket()
            return
        self._poller.pause(self._fd)  # nothing more is read; level-triggered: stop it
        self._flush_timer = self._loop.call_later(FLUSH_SECONDS, self._close_socket)

    def abort(self) -> None:
        """Close at once, dropping anything unsent."""
        self._close_socket()

    def is_closing(self) -> bool:
        return self._closed or self._flush_timer is not None

    # --- internals ----------------------------------------------------------------------

    def _lost(self, exc: OSError) -> None:
        self._eof = True
        if self._exc is None:
            self._exc = exc
        self._wake(exc)
        self._close_socket()

    def _close_socket(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        self._poller.forget(self._fd)
        if self._out:
            self._out.clear()
            self._loop.remove_writer(self._fd)
        self._sock.close()
        if self._waiter is not None:  # our own close, with a read pending
            self._wake(ConnectionResetError("AGI connection closed"))
