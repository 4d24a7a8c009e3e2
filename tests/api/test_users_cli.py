"""``acd users``: the first supervisor is made on the command line, and can log in."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from acd.api.auth import Role, authenticate
from acd.db.engine import make_async_engine
from tests.api.conftest import REPO

pytestmark = pytest.mark.postgres


def acd(
    pg_url: str, *args: str, stdin: str = "", password: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ACD_DATABASE__URL": pg_url}
    env.pop("ACD_CONFIG", None)
    env.pop("ACD_USER_PASSWORD", None)
    if password is not None:
        env["ACD_USER_PASSWORD"] = password
    return subprocess.run(
        [sys.executable, "-m", "acd", "users", *args],
        cwd=REPO,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_first_supervisor_from_stdin_logs_in(pg_url: str) -> None:
    name = f"boss-{uuid.uuid4().hex[:6]}"
    done = acd(
        pg_url, "add", name, "--role", "supervisor", "--password-stdin", stdin="s3cret pass\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"account {name}: supervisor"
    listed = acd(pg_url, "list")
    assert any(line.split()[:2] == [name, "supervisor"] for line in listed.stdout.splitlines())
    assert "s3cret" not in done.stdout + done.stderr + listed.stdout + listed.stderr
    engine = make_async_engine(pg_url)
    try:
        user = await authenticate(engine, name, "s3cret pass")
        assert user is not None and user.role is Role.SUPERVISOR
        assert await authenticate(engine, name, "wrong") is None
    finally:
        await engine.dispose()


def test_agent_account_needs_its_agent_and_names_are_unique(pg_url: str) -> None:
    name = f"agent-{uuid.uuid4().hex[:6]}"
    refused = acd(pg_url, "add", name, "--role", "agent", password="long enough")
    assert refused.returncode != 0
    assert "agent_id" in refused.stderr
    ok = acd(pg_url, "add", name, "--role", "agent", "--agent-id", "1001", password="long enough")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == f"account {name}: agent (agent 1001)"
    again = acd(pg_url, "add", name, "--role", "viewer", password="long enough")
    assert again.returncode != 0 and "already exists" in again.stderr
    short = acd(pg_url, "add", f"x{name}", "--role", "viewer", password="short")
    assert short.returncode != 0 and "at least 8" in short.stderr
