"""The FastAGI listener: Asterisk's ``AGI(agi://host:port/route)`` connects here.

Each connection is one call and gets its own task: the ``agi_*`` header is read with a
size cap and a deadline, the route's handler runs with an ``AGISession``, and whatever
happens (peer gone, garbage, handler bug) only that call ends and its socket is closed.
Sockets are accepted and read without asyncio transports (``acd.agi.connection``).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

import structlog

from acd.agi.connection import AgiConnection, ReadyPoller, listen, make_poller
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
        self._listeners: list[socket.socket] = []
        self._poller: ReadyPoller | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # Header and reply deadlines are checked by one periodic sweep, so the hot path
        # only records a deadline instead of arming and cancelling timers.
        self._headers: dict[AgiConnection, float] = {}
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
        self._listeners = listen(self.host, self._port, _BACKLOG)
        self._port = self._listeners[0].getsockname()[1]
        self._poller = make_poller(self._loop)
        for listener in self._listeners:
            self._loop.add_reader(listener.fileno(), self._on_accept, listener)
        self._sweeper = self._loop.create_task(self._sweep())
        log.info("agi_listening", host=self.host, port=self._port, routes=sorted(self.routes))

    def stop_accepting(self) -> None:
        """Close the listening sockets; calls in progress carry on."""
        for listener in self._listeners:
            self._loop.remove_reader(listener.fileno())
            listener.close()
        self._listeners = []

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
        if self._poller is not None:
            self._poller.close()
            self._poller = None
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

    def _on_accept(self, listener: socket.socket) -> None:
        """Take every waiting connection (up to a backlog's worth), one task per call."""
        assert self._poller is not None
        limit = max(self.max_env_bytes, self.max_line_bytes)
        for _ in range(_BACKLOG):
            try:
                sock, peer = listener.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    raise
                # Out of descriptors or memory: stop accepting for a second, as asyncio
                # does, instead of spinning on a listener that stays readable.
                log.error("agi_accept_failed", error=str(exc))
                self._loop.remove_reader(listener.fileno())
                self._loop.call_later(1.0, self._resume_accepting, listener)
                return
            conn = AgiConnection(self._loop, sock, peer, self._poller, limit)
            task = self._loop.create_task(self._serve(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _resume_accepting(self, listener: socket.socket) -> None:
        if listener in self._listeners:
            self._loop.add_reader(listener.fileno(), self._on_accept, listener)

    async def _serve(self, conn: AgiConnection) -> None:
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
            conn.abort()
            raise
        finally:
            if session is not None:
                self._sessions.discard(session)
                session.close()
            else:
                conn.close()
            # Completed calls leave a call record; the per-call line is for debugging.
            if session is not None and log.is_enabled_for(logging.DEBUG):
                log.debug(
                    "agi_session_end",
                    outcome=outcome,
                    commands=session.commands,
                    hung_up=session.hung_up,
                    seconds=round(time.monotonic() - started, 3),
                )

    async def _read_env(self, reader: AgiConnection) -> AgiEnv | None:
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


# Connections the kernel queues before accept, and accepted per wake-up.
_BACKLOG = 128


class _HeaderTimeout(Exception):
    """Raised inside the header read when Asterisk's header does not arrive in time."""
