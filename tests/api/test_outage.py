"""PostgreSQL goes away under a running daemon: the API says so (503) instead of
failing, what needs no database keeps answering, and logins work again once it is back.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import aiohttp
import pytest

from acd.api.accounts import add_user
from acd.db.engine import make_async_engine
from acd.sim import DaemonProcess, free_port
from tests.api.conftest import PASSWORD, REPO, login
from tests.fixtures.postgres import TcpProxy

pytestmark = pytest.mark.postgres


async def wait_event(daemon: DaemonProcess, name: str, within: float = 30.0) -> None:
    """Like ``DaemonProcess.wait_event``, but the test's loop (the proxy) keeps running."""
    for _ in range(int(within / 0.1)):
        if daemon.events(name):
            return
        assert daemon.proc.poll() is None, daemon.log_tail()
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {name}:\n{daemon.log_tail()}")


async def test_database_outage_gives_503_and_recovers(
    pg_url: str, pg_proxy: TcpProxy, tmp_path: Path
) -> None:
    name = f"sup-{uuid.uuid4().hex[:6]}"
    engine = make_async_engine(pg_url)
    try:
        await add_user(engine, name, "supervisor", PASSWORD)
    finally:
        await engine.dispose()
    daemon = DaemonProcess.start(
        tmp_path / "acd.log",
        REPO,
        ACD_AMI__PORT=str(free_port()),
        ACD_DATABASE__URL=pg_proxy.url(pg_url),
        ACD_DATABASE__SPOOL_DIR=str(tmp_path / "spool"),
        ACD_HTTP__PORT="0",
        ACD_IVR__FLOWS_DIR=str(REPO / "ivr_flows"),
        ACD_DAEMON__SHUTDOWN_GRACE="1",
    )
    try:
        await wait_event(daemon, "daemon_ready")
        await wait_event(daemon, "db_schema_ready")
        base = f"http://127.0.0.1:{daemon.http_port}"
        token = await login(base, name)
        auth = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession() as http:
            pg_proxy.down()
            async with http.get(f"{base}/api/v1/flows", headers=auth) as resp:
                assert resp.status == 503
                assert "database" in (await resp.json())["error"]
            async with http.post(
                f"{base}/api/v1/login", json={"name": name, "password": PASSWORD}
            ) as resp:
                assert resp.status == 503
            async with http.get(f"{base}/api/v1/health") as resp:
                assert resp.status == 200
            pg_proxy.up()
            async with http.get(f"{base}/api/v1/flows", headers=auth) as resp:
                assert resp.status == 200, await resp.text()
                assert "hotline" in {f["name"] for f in await resp.json()}
        assert daemon.events("http_handler_failed") == []
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.terminate()
            await asyncio.to_thread(daemon.proc.wait, 30)
