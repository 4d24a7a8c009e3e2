"""The live hub on real sockets: snapshot first, bursts coalesced, slow browsers cut off.

The ACD side is a scripted event source (the hub only needs ``snapshot`` and
``subscribe``); the sockets are real aiohttp WebSockets on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from acd.queues.live import AcdEvent, AgentSnapshot, DayCounts, QueueSnapshot, Snapshot
from acd.web.hub import Client, LiveHub


@dataclass
class Source:
    """Stands in for ``AcdService``: a queue whose waiting count the test sets."""

    waiting: int = 0
    agents: int = 0
    listeners: list[Callable[[AcdEvent], None]] = field(default_factory=list)
    snapshots: int = 0

    def snapshot(self) -> Snapshot:
        self.snapshots += 1
        now = datetime.now(UTC)
        queue = QueueSnapshot("sales", self.waiting, None, {}, 0, 0.8, 20.0, DayCounts())
        agents = tuple(
            AgentSnapshot(str(i), "x" * 150, "ready", None, now, ("sales",), (), None, None)
            for i in range(self.agents)
        )
        return Snapshot(now, (queue,), agents, ())

    def subscribe(self, listener: Callable[[AcdEvent], None]) -> Callable[[], None]:
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener)

    def emit(self, kind: str = "enqueue") -> None:
        for listener in list(self.listeners):
            listener(AcdEvent(kind, datetime.now(UTC), queue="sales", interaction_id="u1"))


@dataclass
class Served:
    hub: LiveHub
    source: Source
    url: str


@pytest.fixture
async def served(request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    options: dict[str, Any] = getattr(request, "param", {})
    source = Source()
    hub = LiveHub(source.snapshot, source.subscribe, reasons={"1": "break"}, **options)

    async def ws(request: web.Request) -> web.StreamResponse:
        socket_ = web.WebSocketResponse()
        await socket_.prepare(request)
        await hub.serve(Client(socket_, "wallboard"))
        return socket_

    app = web.Application()
    app.router.add_get("/ws", ws)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    hub.start()
    try:
        yield Served(hub, source, str(server.make_url("/ws")))
    finally:
        await hub.stop()
        await server.close()


async def next_message(ws: aiohttp.ClientWebSocketResponse, within: float = 2.0) -> Any:
    msg = await ws.receive(timeout=within)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data)


def waiting(message: Any) -> int:
    (queue,) = message["queues"]
    return int(queue["waiting"])


async def test_snapshot_on_connect_then_each_change(served: Served) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(served.url) as ws:
        first = await next_message(ws)
        assert first["type"] == "wallboard" and waiting(first) == 0
        served.source.waiting = 1
        served.source.emit()
        assert waiting(await next_message(ws)) == 1
        served.source.waiting = 0
        served.source.emit("abandon")
        assert waiting(await next_message(ws)) == 0


@pytest.mark.parametrize("served", [{"interval": 0.2}], indirect=True)
async def test_a_burst_of_events_is_one_message(served: Served) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(served.url) as ws:
        await next_message(ws)
        for n in range(1, 51):  # 50 callers in the same loop turn
            served.source.waiting = n
            served.source.emit()
        assert waiting(await next_message(ws)) == 50
        with pytest.raises(asyncio.TimeoutError):
            await ws.receive(timeout=0.5)
        # A second burst soon after waits for the interval, then goes out as one message.
        for n in range(51, 61):
            served.source.waiting = n
            served.source.emit()
        assert waiting(await next_message(ws)) == 60
    assert served.source.snapshots == 3  # connect + one per burst


def raw_websocket(url: str) -> socket.socket:
    """A browser that opens the socket and then never reads (a tiny receive buffer)."""
    parsed = URL(url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((parsed.host, parsed.port))
    sock.sendall(
        (
            f"GET {parsed.path} HTTP/1.1\r\nHost: {parsed.host}:{parsed.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


@pytest.mark.parametrize(
    "served", [{"interval": 0.01, "queue_size": 2, "send_timeout": 0.5}], indirect=True
)
async def test_a_slow_browser_is_closed_and_the_others_keep_up(served: Served) -> None:
    served.source.agents = 3000  # about 0.6 MB a message: the stuck socket fills fast
    stuck = await asyncio.to_thread(raw_websocket, served.url)
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(served.url, max_msg_size=0) as ws,
        ):
            await next_message(ws)
            last = 0
            for n in range(1, 41):
                served.source.waiting = n
                served.source.emit()  # returns at once: nothing waits for a socket
                await asyncio.sleep(0.02)
                while True:  # the live browser reads everything that came
                    try:
                        last = waiting(await next_message(ws, within=0.01))
                    except TimeoutError:
                        break
            while last != 40:
                last = waiting(await next_message(ws))
            assert served.hub.dropped == 1
            assert served.hub.clients == 1  # the stuck one is gone, the live one stays
    finally:
        stuck.close()
