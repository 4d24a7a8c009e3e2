"""``acd run``: wires FastAGI, the AMI link, the record writers and the IVR flows together.

Start order puts the database writer first (calls are recorded from the first one),
then the AMI link (it reconnects by itself, so a PBX that is down does not stop us),
then FastAGI, which is when Asterisk's calls start arriving. Shutdown runs the
other way round: stop taking calls, let calls in progress finish within the grace
period, then flush the records.

IVR flows are loaded before FastAGI starts and reloaded on SIGHUP or when their files
change; a broken edit is logged and the flows already live keep serving.

Under systemd (``deploy/acd.service``, Type=notify) the daemon says READY once it takes
calls, RELOADING/READY around a SIGHUP reload and STOPPING on shutdown, and pings the
watchdog from its event loop (``acd.ops.systemd``).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from zoneinfo import ZoneInfo

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

from acd.agi import AGISession, FastAGIServer
from acd.ami import AmiLink
from acd.api.app import AppContext, HttpServer
from acd.config import Settings
from acd.db.engine import make_async_engine
from acd.db.migrate import upgrade
from acd.db.spool import Spool
from acd.db.writer import CallRecordWriter, RowWriter
from acd.inbound import CallHandler, call_logged
from acd.ivr.hotline import HotlineGreeting
from acd.ivr.registry import FlowRegistry, FlowVersion
from acd.ivr.route import FlowRoute, build_lookups, version_row
from acd.log import get_logger, redact_url
from acd.metrics import observe_agi_commands
from acd.ops.systemd import SystemdNotifier
from acd.queues.config import CenterConfig, QueuesConfigError
from acd.queues.reload import QueuesWatcher
from acd.queues.routes import AgentCodes, QueueRoute
from acd.queues.service import AcdService

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
        self.ivr_writer: RowWriter | None = None
        self.flows: FlowRegistry | None = None
        self.acd: AcdService | None = None
        self.queues: QueuesWatcher | None = None
        self.http_server: HttpServer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.systemd = SystemdNotifier.from_environ()
        self._reloads: set[asyncio.Task[None]] = set()

    def request_stop(self) -> None:
        """Begin a graceful shutdown (SIGTERM, SIGINT)."""
        if not self._stopping.is_set():
            log.info("shutdown_requested")
            self._stopping.set()
            grace = self.settings.daemon.shutdown_grace
            calls = self.agi.active_sessions if self.agi is not None else 0
            # systemd waits for the drain and the flush, even past TimeoutStopSec.
            self.systemd.stopping(f"stopping: {calls} calls finishing", extend=grace + 15.0)

    async def run(self) -> int:
        s = self.settings
        watchdog = asyncio.create_task(self.systemd.keep_alive(self.status), name="watchdog")
        url = s.database.url.get_secret_value()
        migration: asyncio.Task[None] | None = None
        if s.database.migrate_on_start:
            migration = asyncio.create_task(_migrate_until_done(url), name="db-migrate")
        engine = make_async_engine(url)
        # Each writer journals to its own spool; leftovers of a previous run are replayed
        # in the background, so calls are taken at once.
        db = s.database
        self.writer = CallRecordWriter(
            engine,
            batch_size=db.batch_size,
            flush_interval=db.flush_interval,
            spool=Spool(db.spool_dir / "calls", sync_interval=db.spool_sync_interval),
        )
        await self.writer.start()
        self.ivr_writer = RowWriter(
            engine,
            batch_size=db.batch_size,
            flush_interval=db.flush_interval,
            spool=Spool(db.spool_dir / "rows", sync_interval=db.spool_sync_interval),
        )
        await self.ivr_writer.start()
        http = aiohttp.ClientSession()
        self.flows = self._flow_registry(engine, http, self.ivr_writer)
        await self.flows.reload()
        self._tasks.append(
            asyncio.create_task(self.flows.watch(s.ivr.reload_poll), name="ivr-flows-watch")
        )
        self.ami = AmiLink(s.ami)
        # The ACD registers for AMI events before the link starts, so none is missed.
        self.acd = AcdService(
            self.ami,
            self.ivr_writer.submit,
            self.writer.submit,
            callback_dial=s.acd.callback_dial,
            connect_wait=s.acd.connect_wait,
            day_zone=ZoneInfo(s.reports.timezone),
        )
        self.queues = self._queues_watcher()
        await self.acd.start()
        await self.ami.start()
        handlers = call_routes(s)
        handlers["flow"] = FlowRoute(
            self.flows, self.ivr_writer.submit, entry_flow=s.ivr.entry_flow, acd=self.acd
        )
        handlers["queue"] = QueueRoute(self.acd)
        handlers["agent"] = AgentCodes(self.acd, s.acd.reasons)
        routes: dict[str, Callable[[AGISession], Awaitable[None]]] = {
            name: call_logged(name, handler, self.writer) for name, handler in handlers.items()
        }
        self.agi = FastAGIServer(
            routes,
            host=s.agi.host,
            port=s.agi.port,
            max_env_bytes=s.agi.max_env_bytes,
            max_line_bytes=s.agi.max_line_bytes,
            header_timeout=s.agi.header_timeout,
            command_timeout=s.agi.command_timeout,
            observe_commands=observe_agi_commands,
        )
        await self.agi.start()
        await self._start_http(engine, handlers["flow"])
        log.info(
            "daemon_ready",
            agi=f"{s.agi.host}:{self.agi.port}",
            ami=f"{s.ami.host}:{s.ami.port}",
            routes=sorted(routes),
        )
        self.ready.set()
        self.systemd.ready(self.status())
        try:
            await self._stopping.wait()
        finally:
            if migration is not None:
                migration.cancel()
            for task in self._tasks:
                task.cancel()
            await self._shutdown()
            await http.close()
            await engine.dispose()
            watchdog.cancel()
        return 0

    async def _start_http(self, engine: AsyncEngine, ivr: CallHandler) -> None:
        """The HTTP API and pages (``[http]``); a port that cannot be bound is logged and
        the calls go on without them."""
        if not self.settings.http.enabled or self.flows is None:
            return
        ctx = AppContext(
            settings=self.settings,
            engine=engine,
            flows=self.flows,
            acd=self.acd,
            writer=self.writer,
            rows=self.ivr_writer,
            ami=self.ami,
            agi=self.agi,
            ivr=ivr if isinstance(ivr, FlowRoute) else None,
            queues=self.queues,
        )
        try:
            server = HttpServer(ctx)
            await server.start()
        except OSError as exc:
            log.error("http_failed", error=str(exc), port=self.settings.http.port)
            return
        except Exception:  # a broken page or metric must not take the calls down with it
            log.exception("http_failed", port=self.settings.http.port)
            return
        self.http_server = server

    def status(self) -> str:
        """One line for ``systemctl status``."""
        if not self.ready.is_set():
            return "starting"
        calls = self.agi.active_sessions if self.agi is not None else 0
        ami = "up" if self.ami is not None and self.ami.up else "down"
        return f"taking calls: {calls} in progress, AMI {ami}"

    def _flow_registry(
        self, engine: AsyncEngine, http: aiohttp.ClientSession, rows: RowWriter
    ) -> FlowRegistry:
        def activated(versions: Sequence[FlowVersion]) -> None:
            for version in versions:
                rows.submit(version_row(version))

        ivr = self.settings.ivr
        return FlowRegistry(
            ivr.flows_dir,
            sounds_dir=ivr.sounds_dir,
            build_lookups=partial(build_lookups, engine=engine, http=http),
            on_activate=activated,
        )

    def reload_flows(self) -> None:
        """Reload the IVR flows and the queues now (SIGHUP)."""
        log.info("ivr_flows_reload_requested")
        task = asyncio.create_task(self.reload(), name="reload")
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def reload(self) -> None:
        """Re-read flows and queues; systemd shows the unit reloading until both are done."""
        self.systemd.reloading()
        try:
            if self.flows is not None:
                await self.flows.reload()
            if self.queues is not None:
                await self.queues.reload()
        except Exception:  # a broken edit is refused inside; this is a surprise
            log.exception("reload_failed")
        finally:
            log.info("reload_done")
            self.systemd.ready(self.status())

    def reload_queues(self) -> None:
        """Re-read the queues file now; a broken edit leaves the live one in place."""
        if self.queues is not None:
            self.queues.request_reload()

    def _queues_watcher(self) -> QueuesWatcher | None:
        """Load the queues file and watch it. A broken file at start is logged problem by
        problem and the daemon serves without queues (the IVR keeps working) until an
        edit fixes it."""
        acd = self.settings.acd
        if acd.queues_file is None or self.acd is None:
            return None
        watcher = QueuesWatcher(acd.queues_file, on_change=self._configure_acd)
        try:
            self._configure_acd(watcher.load())
        except QueuesConfigError as exc:
            for problem in exc.problems:
                log.error("acd_queues_problem", problem=str(problem))
            log.error("acd_queues_not_loaded", file=str(acd.queues_file))
        self._tasks.append(asyncio.create_task(watcher.watch(acd.reload_poll), name="acd-queues"))
        return watcher

    def _configure_acd(self, center: CenterConfig) -> None:
        if self.acd is not None:
            self.acd.configure(center.queues.values(), center.agents.values())

    async def _shutdown(self) -> None:
        grace = self.settings.daemon.shutdown_grace
        if self.agi is not None:
            log.info("agi_draining", calls=self.agi.active_sessions, grace=grace)
            await self.agi.stop(grace)
        if self.http_server is not None:
            # After the calls: supervisors watch the drain. Bounded: open WebSockets are
            # closed within the runner's shutdown timeout.
            try:
                async with asyncio.timeout(10.0):
                    await self.http_server.stop()
            except TimeoutError:
                log.warning("http_stop_timeout")
        if self.acd is not None:
            await self.acd.stop()
        if self.ami is not None:
            await self.ami.stop()
        if self.writer is not None:
            await self.writer.stop(timeout=10.0)
        if self.ivr_writer is not None:
            await self.ivr_writer.stop(timeout=10.0)
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
    """Run the daemon until SIGTERM/SIGINT; SIGHUP reloads the IVR flows."""
    daemon = Daemon(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.request_stop)
    loop.add_signal_handler(signal.SIGHUP, daemon.reload_flows)
    try:
        return await daemon.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
