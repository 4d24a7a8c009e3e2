"""The daemon's HTTP side: one aiohttp application for the API, the pages and /metrics.

``build_app`` registers the API (``/api/v1``), then lets ``acd.web`` and ``acd.metrics``
add theirs through ``setup(app, ctx)``, then any ``ctx.extra_setup`` hook. ``HttpServer``
runs it inside the daemon's event loop, beside FastAGI: the handlers read the live ACD
directly, without a copy or a second process.
"""

from __future__ import annotations

from aiohttp import web

from acd import metrics
from acd import web as pages
from acd.api import auth, endpoints
from acd.api.context import CTX, AppContext
from acd.log import get_logger

__all__ = ["CTX", "AppContext", "HttpServer", "build_app"]

log = get_logger(__name__)


def build_app(ctx: AppContext) -> web.Application:
    """The application for ``ctx``; every part registers its routes once, here."""
    app = web.Application(
        client_max_size=ctx.settings.http.max_upload_bytes,
        middlewares=[endpoints.errors_middleware, auth.auth_middleware],
    )
    app[CTX] = ctx
    endpoints.setup(app, ctx)
    pages.setup(app, ctx)
    metrics.setup(app, ctx)
    for hook in ctx.extra_setup:
        hook(app, ctx)
    return app


class HttpServer:
    """Serves ``build_app(ctx)`` on ``[http] host:port`` (port 0: a free one)."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.app = build_app(ctx)
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> int:
        http = self.ctx.settings.http
        # shutdown_timeout bounds how long open requests (a WebSocket) delay the stop.
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=5.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, http.host, http.port)
        await site.start()
        address = self._runner.addresses[0]
        self.port = int(address[1])
        log.info(
            "http_ready", host=http.host, port=self.port, url=f"http://{http.host}:{self.port}"
        )
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            log.info("http_stopped")
