"""``acd run``: wires FastAGI, the AMI link and the call-record writer together.

Start order puts the database writer first (calls are recorded from the first one),
then the AMI link (it reconnects by itself, so a PBX that is down does not stop us),
then FastAGI, which is when Asterisk's calls start arriving. Shutdown runs the
other way round: stop taking calls, let calls in progress finish within the grace
period, then flush the records.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable

from acd.agi import AGISession, FastAGIServer
from acd.ami import AmiLink
from acd.config import Settings
from acd.db.engine import make_async_engine
from acd.db.migrate import upgrade
from acd.db.writer import CallRecordWriter
from acd.inbound import CallHandler, call_logged
from acd.ivr.hotline import HotlineGreeting
from acd.log import get_logger, redact_url

log = get_logger(__name__)


def call_routes(settings: Settings) -> dict[str, CallHandler]:
    """AGI route name (``agi://host:port/<route>``) to the handler that serves it."""
    greeting = HotlineGreeting(prompt=settings.hotline.prompt, wait_ms=settings.hotline.wait_ms)
    return {"hotline": greeting}


class Daemon:
    """The running controller; ``run()`` returns the process exit code."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stopping = asyncio.Event()
        self.ready = asyncio.Event()
        self.agi: FastAGIServer | None = None
        self.ami: AmiLink | None = None
        self.writer: CallRecordWriter | None = None

    def request_stop(self) -> None:
        """Begin a graceful shutdown (SIGTERM, SIGINT)."""
        if not self._stopping.is_set():
            log.info("shutdown_requested")
            self._stopping.set()

    async def run(self) -> int:
        s = self.settings
        url = s.database.url.get_secret_value()
        migration: asyncio.Task[None] | None = None
        if s.database.migrate_on_start:
            migration = asyncio.create_task(_migrate_until_done(url), name="db-migrate")
        engine = make_async_engine(url)
        self.writer = CallRecordWriter(
            engine, batch_size=s.database.batch_size, flush_interval=s.database.flush_interval
        )
        await self.writer.start()
        self.ami = AmiLink(s.ami)
        await self.ami.start()
        routes: dict[str, Callable[[AGISession], Awaitable[None]]] = {
            name: call_logged(name, handler, self.writer)
            for name, handler in call_routes(s).items()
        }
        self.agi = FastAGIServer(
            routes,
            host=s.agi.host,
            port=s.agi.port,
            max_env_bytes=s.agi.max_env_bytes,
            max_line_bytes=s.agi.max_line_bytes,
            header_timeout=s.agi.header_timeout,
            command_timeout=s.agi.command_timeout,
        )
        await self.agi.start()
        log.info(
            "daemon_ready",
            agi=f"{s.agi.host}:{self.agi.port}",
            ami=f"{s.ami.host}:{s.ami.port}",
            routes=sorted(routes),
        )
        self.ready.set()
        try:
            await self._stopping.wait()
        finally:
            if migration is not None:
                migration.cancel()
            await self._shutdown()
            await engine.dispose()
        return 0

    async def _shutdown(self) -> None:
        grace = self.settings.daemon.shutdown_grace
        if self.agi is not None:
            log.info("agi_draining", calls=self.agi.active_sessions, grace=grace)
            await self.agi.stop(grace)
        if self.ami is not None:
            await self.ami.stop()
        if self.writer is not None:
            await self.writer.stop(timeout=10.0)
        log.info("daemon_stopped")


async def _migrate_until_done(url: str, first_delay: float = 1.0, max_delay: float = 30.0) -> None:
    """Bring the schema up to date, retrying while PostgreSQL is unreachable.

    The hotline must not go down with the database: calls are served meanwhile and
    their records wait in the writer until the schema is there.
    """
    delay = first_delay
    while True:
        try:
            await asyncio.to_thread(upgrade, url)
        except Exception as exc:
            log.error(
                "db_migrate_failed",
                url=redact_url(url),
                error=str(exc).splitlines()[0],
                retry_in=delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)
        else:
            log.info("db_schema_ready", url=redact_url(url))
            return


async def serve(settings: Settings) -> int:
    """Run the daemon until SIGTERM/SIGINT."""
    daemon = Daemon(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.request_stop)
    try:
        return await daemon.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
