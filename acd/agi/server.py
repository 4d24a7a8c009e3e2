"""The FastAGI listener: Asterisk's ``AGI(agi://host:port/route)`` connects here.

Each connection is one call and gets its own task: the ``agi_*`` header is read with a
size cap and a deadline, the route's handler runs with an ``AGISession``, and whatever
happens (peer gone, garbage, handler bug) only that call ends and its socket is closed.
Connections are read by ``_Connection`` rather than a StreamReader: a reply line that
arrives on its own is handed to the waiting session as it is; ``bench/agi_throughput.py``
measures the difference.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

import structlog

from acd.agi.protocol import AgiEnv, AGIError, AGIHangup, AGIProtocolError
from acd.agi.session import AGISession
from acd.log import get_logger

log = get_logger(__name__)

Handler = Callable[[AGISession], Awaitable[None]]


class FastAGIServer:
    """Serve AGI routes (``agi_network_script``) to Asterisk over TCP."""

    _loop: asyncio.AbstractEventLoop  # set by start()

    def __init__(
        self,
        routes: Mapping[str, Handler],
        *,
        host: str = "127.0.0.1",
        port: int = 4573,
        max_env_bytes: int = 16384,
        max_line_bytes: int = 8192,
        header_timeout: float = 5.0,
        command_timeout: float = 600.0,
        observe_commands: Callable[[Sequence[float]], None] | None = None,
    ) -> None:
        """``observe_commands`` receives command round trips in seconds, in batches
        (the daemon passes the latency histogram's feed)."""
        self.routes = dict(routes)
        self.observe_commands = observe_commands
        self.host = host
        self._port = port
        self.max_env_bytes = max_env_bytes
        self.max_line_bytes = max_line_bytes
        self.header_timeout = header_timeout
        self.command_timeout = command_timeout
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # Header and reply deadlines are checked by one periodic sweep, so the hot path
        # only records a deadline instead of arming and cancelling timers.
        self._headers: dict[_Connection, float] = {}
        self._sessions: set[AGISession] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._tick = min(1.0, max(0.005, min(header_timeout, command_timeout) / 10))

    @property
    def port(self) -> int:
        """The bound port (the real one when started with ``port=0``)."""
        return self._port

    @property
    def active_sessions(self) -> int:
        """Connections being served (calls in progress)."""
        return len(self._tasks)

    async def start(self) -> None:
        """Bind and begin accepting calls."""
        self._loop = asyncio.get_running_loop()
        limit = max(self.max_env_bytes, self.max_line_bytes)
        self._server = await self._loop.create_server(
            lambda: _Connection(self._loop, limit, self._accept), self.host, self._port
        )
        self._port = self._server.sockets[0].getsockname()[1]
        self._sweeper = self._loop.create_task(self._sweep())
        log.info("agi_listening", host=self.host, port=self._port, routes=sorted(self.routes))

    def stop_accepting(self) -> None:
        """Close the listening socket; calls in progress carry on."""
        if self._server is not None:
            self._server.close()

    async def stop(self, grace: float) -> None:
        """Stop accepting, let calls in progress finish for up to ``grace`` seconds,
        then cancel the rest (their sockets are closed)."""
        self.stop_accepting()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            if pending:
                log.warning("agi_sessions_cancelled", count=len(pending), grace=grace)
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    async def _sweep(self) -> None:
        """Expire headers and replies that are overdue, a few times per timeout."""
        while True:
            await asyncio.sleep(self._tick)
            now = time.monotonic()
            try:
                for reader, deadline in list(self._headers.items()):
                    if now >= deadline:
                        del self._headers[reader]
                        reader.set_exception(_HeaderTimeout(self.header_timeout))
                for session in list(self._sessions):
                    session.check_deadline(now)
            except Exception:  # a bug here must not leave every later call unguarded
                log.exception("agi_sweep_failed")

    def _accept(self, conn: _Connection) -> None:
        task = self._loop.create_task(self._serve(conn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, conn: _Connection) -> None:
        started = time.monotonic()
        session: AGISession | None = None
        outcome = "completed"
        try:
            env = await self._read_env(conn)
            if env is None:
                return
            route = env.network_script
            structlog.contextvars.bind_contextvars(uniqueid=env.uniqueid, route=route)
            handler = self.routes.get(route)
            if handler is None:
                log.warning("agi_unknown_route", request=env.request)
                outcome = "unknown_route"
                return
            session = AGISession(
                conn,
                conn,
                env,
                max_line_bytes=self.max_line_bytes,
                command_timeout=self.command_timeout,
                self_timed=False,
                observe=self.observe_commands,
            )
            self._sessions.add(session)
            try:
                await handler(session)
            except AGIHangup as exc:
                outcome = "caller_hangup"
                log.info("agi_caller_hangup", detail=str(exc))
            except AGIError as exc:
                outcome = "agi_error"
                log.warning("agi_session_failed", error=f"{type(exc).__name__}: {exc}")
            except Exception:
                outcome = "handler_error"
                log.exception("agi_handler_failed")
        except asyncio.CancelledError:
            outcome = "cancelled"
            conn.transport.abort()
            raise
        finally:
            if session is not None:
                self._sessions.discard(session)
                session.close()
            else:
                conn.transport.close()
            # Completed calls leave a call record; the per-call line is for debugging.
            if session is not None and log.is_enabled_for(logging.DEBUG):
                log.debug(
                    "agi_session_end",
                    outcome=outcome,
                    commands=session.commands,
                    hung_up=session.hung_up,
                    seconds=round(time.monotonic() - started, 3),
                )

    async def _read_env(self, reader: _Connection) -> AgiEnv | None:
        """The ``agi_*`` header block, or None (logged) when the peer does not send one."""
        self._headers[reader] = time.monotonic() + self.header_timeout
        try:
            raw = await reader.readuntil(b"\n\n")
        except _HeaderTimeout:
            log.warning("agi_header_timeout", timeout=self.header_timeout)
            return None
        except asyncio.IncompleteReadError as exc:
            log.info("agi_header_incomplete", received=len(exc.partial))
            return None
        except asyncio.LimitOverrunError:
            log.warning("agi_header_too_large", limit=self.max_env_bytes)
            return None
        except ConnectionError as exc:
            log.info("agi_header_connection_lost", error=str(exc))
            return None
        finally:
            self._headers.pop(reader, None)
        if reader.exception() is not None:  # the deadline passed as the header came in
            log.warning("agi_header_timeout", timeout=self.header_timeout)
            return None
        if len(raw) > self.max_env_bytes:
            log.warning("agi_header_too_large", limit=self.max_env_bytes, size=len(raw))
            return None
        block = raw[:-2]
        try:
            if len(block) > self.max_line_bytes and (
                max(map(len, block.split(b"\n"))) > self.max_line_bytes
            ):
                raise AGIProtocolError(f"header line longer than {self.max_line_bytes} bytes")
            return AgiEnv.parse(block.decode(errors="replace"))
        except AGIProtocolError as exc:
            log.warning("agi_header_invalid", error=str(exc))
            return None


class _HeaderTimeout(Exception):
    """Raised inside the header read when Asterisk's header does not arrive in time."""


# Bytes asked for per read: below glibc's mmap threshold (128 KiB), above any line.
_READ_SIZE = 16384


class _Connection(asyncio.Protocol):
    """One Asterisk connection, with the StreamReader calls the server and
    ``AGISession`` use (``readuntil``, ``set_exception``, ``exception``, ``transport``).

    Nearly every read from Asterisk is exactly one reply line, arriving while the
    session waits for it: that chunk is handed over as it is, with no copy and no
    buffer bookkeeping. Anything else (a header in pieces, several lines at once, a
    HANGUP notice beside a reply) goes through a buffer. Reading pauses while more than
    ``limit`` bytes wait unread.
    """

    transport: asyncio.Transport

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        limit: int,
        on_connect: Callable[[_Connection], None],
    ) -> None:
        self._loop = loop
        self._limit = limit
        self._on_connect = on_connect
        self._buf = bytearray()  # unread data
        self._waiter: asyncio.Future[bytes] | None = None
        self._sep = b"\n"
        self._eof = False
        self._exc: BaseException | None = None
        self._paused = False

    # --- asyncio callbacks ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        # asyncio's socket transports read with recv(256 KiB): a fresh block that glibc
        # maps and unmaps for every read (mmap, mremap, munmap: ~3x the cost of a
        # 16 KiB read, measured in bench/agi_throughput.py). Asterisk's lines are short.
        if getattr(transport, "max_size", 0) > _READ_SIZE:
            with contextlib.suppress(AttributeError):  # other loops' transports
                transport.max_size = _READ_SIZE  # type: ignore[attr-defined]
        self._on_connect(self)

    def data_received(self, data: bytes) -> None:
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
        if len(buf) > self._limit and not self._paused:
            self._paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake_incomplete()
        return False  # Asterisk closing its side ends the call: close ours too

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        if exc is not None and self._exc is None:
            self._exc = exc
        if exc is not None:
            self._wake(exc)
        else:
            self._wake_incomplete()

    # --- the StreamReader calls -------------------------------------------------------

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

    # --- internals ----------------------------------------------------------------------

    def _take(self, end: int) -> bytes:
        data = bytes(self._buf[:end])
        del self._buf[:end]
        if self._paused and len(self._buf) <= self._limit:
            self._paused = False
            self.transport.resume_reading()
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
