"""The live view and the queues file through the API (no calls: those are in
tests/e2e/test_api_calls.py)."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from tests.api.conftest import PASSWORD, Api

pytestmark = pytest.mark.postgres


def edit(path: Path, old: str, new: str) -> str:
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return text


async def test_live_queues_and_agents_from_the_queues_file(
    api_daemon: Api, http: aiohttp.ClientSession
) -> None:
    view = api_daemon.headers("view")
    async with http.get(f"{api_daemon.base}/api/v1/queues", headers=view) as resp:
        queues = {q["name"]: q for q in await resp.json()}
    assert set(queues) == {"sales_vip", "sales", "support", "callback"}
    assert (queues["sales_vip"]["service_level_target"], queues["sales_vip"]["service_time"]) == (
        0.9,
        10.0,
    )
    assert queues["sales"]["waiting"] == 0
    async with http.get(f"{api_daemon.base}/api/v1/agents/1004", headers=view) as resp:
        agent = await resp.json()
    assert (agent["name"], agent["queues"], agent["current"]) == (
        "Mehmet Yilmaz",
        ["support"],
        None,
    )
    async with http.get(f"{api_daemon.base}/api/v1/queues/nope", headers=view) as resp:
        assert resp.status == 404


async def test_queues_reload_refuses_a_broken_edit_and_applies_a_good_one(
    api_daemon: Api, http: aiohttp.ClientSession
) -> None:
    sup = api_daemon.headers("sup")
    url = f"{api_daemon.base}/api/v1/queues/reload"
    original = edit(api_daemon.queues_file, "max_wait: 2m", "max_wait: soon")
    try:
        async with http.post(url, headers=sup) as resp:
            assert resp.status == 409
            [problem] = (await resp.json())["problems"]
        assert problem["file"] == str(api_daemon.queues_file)
        assert problem["field"].endswith("max_wait")
        assert problem["line"] == original.splitlines().index("    max_wait: 2m") + 1

        api_daemon.queues_file.write_text(
            original.replace("  callback:", "  loans:\n    skills: [loans]\n  callback:", 1),
            encoding="utf-8",
        )
        async with http.post(url, headers=sup) as resp:
            assert resp.status == 200, await resp.text()
            body = await resp.json()
        assert "loans" in body["queues"]
        async with http.get(f"{api_daemon.base}/api/v1/queues/loans", headers=sup) as resp:
            assert resp.status == 200
    finally:
        api_daemon.queues_file.write_text(original, encoding="utf-8")
        async with http.post(url, headers=sup) as resp:
            assert resp.status == 200
    rows = api_daemon.audit_rows("queues:acd_queues.yaml", want=2)
    assert [r["action"] for r in rows][:2] == ["queues.reload", "queues.reload"]
    assert "loans" in rows[0]["after"]["queues"] and "loans" not in rows[0]["before"]["queues"]


async def test_a_cross_site_change_with_the_session_cookie_is_refused(
    api_daemon: Api,
) -> None:
    # unsafe=True: the jar keeps cookies of an IP address host (127.0.0.1), as browsers do.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        async with browser.post(
            f"{api_daemon.base}/api/v1/login", json={"name": "sup", "password": PASSWORD}
        ) as resp:
            assert resp.status == 200
        reload = f"{api_daemon.base}/api/v1/agents/1006/login"
        async with browser.post(
            reload, json={"ready": False}, headers={"Origin": "https://evil.example"}
        ) as resp:
            assert resp.status == 403
            assert "cross-site" in (await resp.json())["error"]
        async with browser.post(
            reload, json={"ready": False}, headers={"Origin": api_daemon.base}
        ) as resp:
            assert resp.status == 200, await resp.text()
        async with browser.post(f"{api_daemon.base}/api/v1/agents/1006/logout") as resp:
            assert resp.status == 200
