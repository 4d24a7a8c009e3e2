"""Pushes the ACD's live state to the open wallboards and agent desktops.

The hub listens to ``AcdService`` events (no polling). A burst of events (a caller
enqueued, offered, the agent's state changing, all in the same millisecond) becomes one
message: the first change after a quiet spell is sent on the next loop turn, later ones
at most every ``interval`` seconds, so a wallboard is never more than ``interval``
behind and never flooded.

Every message is a whole picture (the snapshot), never a delta, so a page that missed
one is right again with the next. That is what lets the hub protect the ACD from slow
browsers: each socket has a small bounded queue; a socket whose queue is full, or whose
send takes longer than ``send_timeout``, is closed (code 1013, "try again later") and the
page reconnects and starts over with a fresh snapshot. The service's listener only ever
does ``put_nowait``, so no browser can hold up the routing of a call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import WSCloseCode, web

from acd.log import get_logger
from acd.queues.live import AGENT_STATE, AcdEvent, Snapshot
from acd.web.views import ScreenPops, agent_message, wallboard_message

log = get_logger(__name__)

View = Literal["wallboard", "agent"]

#: Kinds that change nothing a page shows (announcements are for the caller's ears).
_QUIET_KINDS = frozenset({"announce"})


@dataclass(eq=False)
class Client:
    """One open socket: what it watches and the messages waiting to go out to it."""

    ws: web.WebSocketResponse
    view: View
    agent_id: str | None = None
    user: str = ""
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(8))
    closing: bool = False


class LiveHub:
    """The fan-out from one ``AcdService`` to many sockets (event-loop thread only)."""

    def __init__(
        self,
        snapshot: Callable[[], Snapshot],
        subscribe: Callable[[Callable[[AcdEvent], None]], Callable[[], None]],
        *,
        reasons: Mapping[str, str],
        interval: float = 0.15,
        queue_size: int = 8,
        send_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._snapshot = snapshot
        self._subscribe = subscribe
        self._reasons = dict(reasons)
        self.interval = interval
        self.queue_size = queue_size
        self.send_timeout = send_timeout
        self._clock = clock
        self._clients: set[Client] = set()
        self._pops = ScreenPops()
        self._unsubscribe: Callable[[], None] | None = None
        self._pending: asyncio.Handle | None = None
        self._last_flush = float("-inf")
        self._tasks: set[asyncio.Task[Any]] = set()
        #: Messages sent and sockets dropped for being slow (for tests and metrics).
        self.sent = 0
        self.dropped = 0

    # --- life cycle --------------------------------------------------------------------

    def start(self) -> None:
        if self._unsubscribe is None:
            self._unsubscribe = self._subscribe(self._on_event)

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        for client in list(self._clients):
            await self._close(client, WSCloseCode.GOING_AWAY, "server stopping")
        for task in list(self._tasks):
            task.cancel()

    @property
    def clients(self) -> int:
        return len(self._clients)

    # --- sockets -----------------------------------------------------------------------

    async def serve(self, client: Client) -> None:
        """Run one socket until it closes: the snapshot first, then every change."""
        client.queue = asyncio.Queue(self.queue_size)
        self._clients.add(client)
        log.info("web_socket_open", view=client.view, agent=client.agent_id, user=client.user)
        pump = asyncio.create_task(self._pump(client), name="web-socket-pump")
        try:
            self._offer(client, self._message(client, self._snapshot()))
            async for _ in client.ws:  # the pages send nothing we act on; this sees close
                pass
        finally:
            self._clients.discard(client)
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            log.info("web_socket_closed", view=client.view, agent=client.agent_id)

    async def _pump(self, client: Client) -> None:
        while True:
            text = await client.queue.get()
            try:
                async with asyncio.timeout(self.send_timeout):
                    await client.ws.send_str(text)
            except (TimeoutError, ConnectionError, RuntimeError) as exc:
                self._drop(client, f"send failed: {type(exc).__name__}")
                return
            self.sent += 1

    def _offer(self, client: Client, text: str) -> None:
        if client.closing:
            return
        try:
            client.queue.put_nowait(text)
        except asyncio.QueueFull:
            self._drop(client, "queue full")

    def _drop(self, client: Client, why: str) -> None:
        """Close a socket that cannot keep up; its page reconnects and resynchronises."""
        if client.closing:
            return
        self.dropped += 1
        log.warning("web_socket_slow", view=client.view, agent=client.agent_id, why=why)
        task = asyncio.ensure_future(self._close(client, WSCloseCode.TRY_AGAIN_LATER, "slow"))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close(self, client: Client, code: int, message: str) -> None:
        client.closing = True
        self._clients.discard(client)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.send_timeout):
                await client.ws.close(code=code, message=message.encode())

    # --- events ------------------------------------------------------------------------

    def _on_event(self, event: AcdEvent) -> None:
        """The service's listener: note what changed and schedule one flush (cheap)."""
        self._pops.add(event)
        if event.kind in _QUIET_KINDS or (event.kind != AGENT_STATE and event.queue is None):
            return
        if self._pending is not None or not self._clients:
            return
        loop = asyncio.get_running_loop()
        delay = self._last_flush + self.interval - self._clock()
        if delay <= 0:
            self._pending = loop.call_soon(self._flush)  # same-turn events ride along
        else:
            self._pending = loop.call_later(delay, self._flush)

    def _flush(self) -> None:
        self._pending = None
        self._last_flush = self._clock()
        try:
            snapshot = self._snapshot()
        except Exception:
            log.exception("web_snapshot_failed")
            return
        wallboard: str | None = None
        for client in list(self._clients):
            if client.view == "wallboard":
                if wallboard is None:
                    wallboard = _dumps(wallboard_message(snapshot))
                self._offer(client, wallboard)
            else:
                self._offer(client, self._message(client, snapshot))

    def _message(self, client: Client, snapshot: Snapshot) -> str:
        if client.view == "wallboard":
            return _dumps(wallboard_message(snapshot))
        agent = client.agent_id or ""
        return _dumps(agent_message(agent, snapshot, self._pops.get(agent), self._reasons))


def _dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), default=str)
