"""Supervisors' wallboard and the agent desktop: two static pages and one WebSocket.

``GET /wallboard`` and ``GET /agent`` are plain HTML + JS + CSS from this package
(``static/``: no build step, nothing from a CDN). The pages hold no data: everything
comes over ``/ws?view=wallboard`` (any logged-in role) or ``/ws?view=agent`` (an account
linked to an agent; it sees only that agent), authenticated by the session cookie.
The server pushes (``hub.LiveHub``); the pages never poll.

A socket that is not logged in is accepted and closed at once with code 4401 (4403:
logged in without the right), so the page can tell a login problem from a network one
and show its login form.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from acd.api.auth import Role, current_user
from acd.api.context import AppContext
from acd.log import get_logger
from acd.queues.live import Listener, Snapshot
from acd.web.hub import Client, LiveHub, View

__all__ = ["HUB", "setup"]

log = get_logger(__name__)

STATIC = Path(str(files("acd.web") / "static"))
HUB: web.AppKey[LiveHub] = web.AppKey("acd_web_hub", LiveHub)

CLOSE_LOGIN = 4401
CLOSE_FORBIDDEN = 4403
_PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def setup(app: web.Application, ctx: AppContext) -> None:
    """Register the pages' routes on ``app`` (called once by ``acd.api.app.build_app``)."""

    def snapshot() -> Snapshot:
        if ctx.acd is None:  # a daemon without queues: an empty board, not an error
            return Snapshot(datetime.now(UTC), (), (), ())
        return ctx.acd.snapshot()

    def subscribe(listener: Listener) -> Callable[[], None]:
        if ctx.acd is None:
            return _nothing
        return ctx.acd.subscribe(listener)

    hub = LiveHub(snapshot, subscribe, reasons=ctx.settings.acd.reasons)
    app[HUB] = hub

    async def start(_app: web.Application) -> None:
        hub.start()

    async def stop(_app: web.Application) -> None:
        await hub.stop()

    app.on_startup.append(start)
    app.on_shutdown.append(stop)  # before the runner waits for open sockets
    app.router.add_get("/wallboard", _page("wallboard.html"))
    app.router.add_get("/agent", _page("agent.html"))
    app.router.add_get("/ws", _socket)
    app.router.add_static("/static", STATIC, append_version=False)


def _nothing() -> None:
    return None


def _page(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def page(_request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / name, headers=_PAGE_HEADERS)

    page.__name__ = name.replace(".", "_")
    return page


async def _socket(request: web.Request) -> web.StreamResponse:
    # The session cookie goes with any page's request: refuse sockets opened by other
    # sites' pages (cross-site WebSocket hijacking).
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc != request.host:
        raise web.HTTPForbidden(text="cross-origin WebSocket refused")
    view = request.query.get("view", "wallboard")
    if view not in ("wallboard", "agent"):
        raise web.HTTPBadRequest(text="view must be wallboard or agent")
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=4096)
    await ws.prepare(request)
    user = current_user(request)
    if user is None:
        await ws.close(code=CLOSE_LOGIN, message=b"log in first")
        return ws
    if view == "agent" and (user.agent_id is None or user.role is Role.VIEWER):
        await ws.close(code=CLOSE_FORBIDDEN, message=b"this login is not an agent's")
        return ws
    chosen: View = "agent" if view == "agent" else "wallboard"
    client = Client(ws, chosen, agent_id=user.agent_id if chosen == "agent" else None)
    client.user = user.name
    await request.app[HUB].serve(client)
    return ws
