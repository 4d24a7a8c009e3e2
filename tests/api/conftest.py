"""The daemon as ops run it (``acd run`` in its own process), with its HTTP API on a free
port, the sample queues and flows, and the real test database; accounts of each role.

These tests need no Asterisk: the AMI link points at a port where nothing listens (the
daemon keeps retrying, calls are not what is tested here). The end-to-end tests with
real calls are in tests/e2e/test_api_calls.py.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa

from acd.api.accounts import add_user
from acd.db.engine import make_async_engine, normalise_url
from acd.sim import DaemonProcess, free_port

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"
ACCOUNTS = {
    "sup": ("supervisor", None),
    "view": ("viewer", None),
    "anna": ("agent", "1001"),
}


@dataclass
class Api:
    """The running daemon's HTTP API and a login token per account."""

    daemon: DaemonProcess
    base: str
    tokens: dict[str, str]
    flows_dir: Path
    queues_file: Path
    pg_url: str

    def headers(self, who: str | None) -> dict[str, str]:
        return {} if who is None else {"Authorization": f"Bearer {self.tokens[who]}"}

    def audit_rows(self, target: str, want: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """``audit_log`` rows of ``target`` once there are ``want`` (the writer batches)."""
        engine = sa.create_engine(normalise_url(self.pg_url))
        try:
            deadline = time.monotonic() + timeout
            while True:
                with engine.connect() as conn:
                    rows = [
                        dict(r)
                        for r in conn.execute(
                            sa.text("select * from audit_log where target = :t order by id"),
                            {"t": target},
                        ).mappings()
                    ]
                if len(rows) >= want or time.monotonic() > deadline:
                    return rows
                time.sleep(0.1)
        finally:
            engine.dispose()


def _reset_accounts(pg_url: str) -> None:
    engine = sa.create_engine(normalise_url(pg_url))
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("TRUNCATE users, api_tokens, audit_log, flow_uploads CASCADE"))
    finally:
        engine.dispose()


async def _create_accounts(pg_url: str) -> None:
    engine = make_async_engine(pg_url)
    try:
        for name, (role, agent_id) in ACCOUNTS.items():
            await add_user(engine, name, role, PASSWORD, agent_id)
    finally:
        await engine.dispose()


async def login(base: str, name: str, password: str = PASSWORD, kind: str = "token") -> str:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{base}/api/v1/login", json={"name": name, "password": password, "kind": kind}
        ) as resp,
    ):
        assert resp.status == 200, await resp.text()
        token: str = (await resp.json())["token"]
        return token


@pytest.fixture(scope="module")
def api_daemon(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    tmp = tmp_path_factory.mktemp("api")
    flows_dir = tmp / "flows"
    shutil.copytree(REPO / "ivr_flows", flows_dir, ignore=shutil.ignore_patterns("*.md"))
    queues = tmp / "acd_queues.yaml"
    shutil.copyfile(REPO / "deploy" / "acd_queues.yaml", queues)
    _reset_accounts(pg_url)
    asyncio.run(_create_accounts(pg_url))
    daemon = DaemonProcess.start(
        tmp / "acd.log",
        REPO,
        ACD_AMI__HOST="127.0.0.1",
        ACD_AMI__PORT=str(free_port()),  # nothing listens: no PBX needed here
        ACD_AMI__BACKOFF_MAX="5",
        ACD_DATABASE__URL=pg_url,
        ACD_DATABASE__SPOOL_DIR=str(tmp / "spool"),
        ACD_DAEMON__LOG_LEVEL="DEBUG",
        ACD_DAEMON__SHUTDOWN_GRACE="2",
        ACD_HTTP__PORT="0",
        ACD_IVR__FLOWS_DIR=str(flows_dir),
        ACD_IVR__RELOAD_POLL="0.5",
        ACD_ACD__QUEUES_FILE=str(queues),
    )
    try:
        daemon.wait_event("daemon_ready", timeout=30)
        base = f"http://127.0.0.1:{daemon.http_port}"

        async def tokens() -> dict[str, str]:
            return {name: await login(base, name) for name in ACCOUNTS}

        yield Api(daemon, base, asyncio.run(tokens()), flows_dir, queues, pg_url)
    finally:
        if daemon.proc.poll() is None:
            # SIGTERM as systemd sends it: the HTTP server stops after the calls, cleanly.
            assert daemon.terminate(30) == 0, daemon.log_tail()
            assert daemon.events("http_stopped"), daemon.log_tail()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
