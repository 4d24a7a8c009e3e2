"""Who may do what: every endpoint of the served OpenAPI document is tried without a
login and with a viewer's, so an endpoint added later cannot be forgotten."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest

from tests.api.conftest import PASSWORD, Api, login

pytestmark = pytest.mark.postgres

SAMPLE = {"agent_id": "1001", "name": "hotline", "seq": "1"}


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for path, item in document["paths"].items():
        concrete = re.sub(r"\{(\w+)\}", lambda m: SAMPLE[m.group(1)], path)
        for method, op in item.items():
            out.append((method.upper(), concrete, op))
    return out


async def document(api: Api, http: aiohttp.ClientSession) -> dict[str, Any]:
    async with http.get(f"{api.base}/api/v1/openapi.json") as resp:
        assert resp.status == 200
        doc: dict[str, Any] = await resp.json()
        return doc


async def test_every_mutating_endpoint_refuses_anonymous_and_viewer(
    api_daemon: Api, http: aiohttp.ClientSession
) -> None:
    doc = await document(api_daemon, http)
    mutating = [(m, p, op) for m, p, op in operations(doc) if m != "GET" and op["security"] != []]
    # The table has them all: agents' state, flows, accounts, logout.
    assert len(mutating) >= 10, [p for _, p, _ in mutating]
    refused = {}
    for method, path, op in mutating:
        async with http.request(method, api_daemon.base + path, json={}) as resp:
            anonymous = resp.status
        if "viewer" in op["x-roles"]:
            refused[(method, path)] = (anonymous, "viewer allowed")
            continue
        async with http.request(
            method, api_daemon.base + path, json={}, headers=api_daemon.headers("view")
        ) as resp:
            refused[(method, path)] = (anonymous, resp.status)
    # Logging out is the one change a viewer may make (of their own login).
    assert {k: v for k, v in refused.items() if v != (401, 403)} == {
        ("POST", "/api/v1/logout"): (401, "viewer allowed")
    }


async def test_public_mutations_are_only_login(
    api_daemon: Api, http: aiohttp.ClientSession
) -> None:
    doc = await document(api_daemon, http)
    public = [(m, p) for m, p, op in operations(doc) if m != "GET" and op["security"] == []]
    assert public == [("POST", "/api/v1/login")]


async def test_every_read_needs_a_login_except_health_and_the_document(
    api_daemon: Api, http: aiohttp.ClientSession
) -> None:
    doc = await document(api_daemon, http)
    statuses = {}
    for method, path, op in operations(doc):
        if method != "GET":
            continue
        async with http.get(api_daemon.base + path) as resp:
            statuses[path] = resp.status
        if op["security"]:
            assert statuses[path] == 401, path
    assert {p for p, s in statuses.items() if s != 401} == {
        "/api/v1/health",
        "/api/v1/openapi.json",
    }


async def test_supervisor_only_reads_refuse_viewer_and_agent(
    api_daemon: Api, http: aiohttp.ClientSession
) -> None:
    for who in ("view", "anna"):
        for path in ("/api/v1/users", "/api/v1/audit"):
            async with http.get(api_daemon.base + path, headers=api_daemon.headers(who)) as resp:
                assert resp.status == 403, (who, path)


async def test_an_agent_changes_only_their_own_state(
    api_daemon: Api, http: aiohttp.ClientSession
) -> None:
    anna = api_daemon.headers("anna")
    base = api_daemon.base + "/api/v1/agents"
    async with http.post(f"{base}/1002/login", json={}, headers=anna) as resp:
        assert resp.status == 403
        assert "own agent" in (await resp.json())["error"]
    async with http.post(f"{base}/1001/login", json={"ready": False}, headers=anna) as resp:
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["state"] == "not_ready"
    async with http.post(f"{base}/1001/ready", headers=anna) as resp:
        assert (await resp.json())["state"] == "ready"
    async with http.post(f"{base}/1001/not-ready", json={"reason": "lunch"}, headers=anna) as resp:
        body = await resp.json()
        assert (body["state"], body["reason"]) == ("not_ready", "lunch")
    async with http.post(f"{base}/1001/not-ready", json={"reason": "nap"}, headers=anna) as resp:
        assert resp.status == 422
        assert "break" in (await resp.json())["error"]
    async with http.post(f"{base}/1001/not-ready", json={"reason": "3"}, headers=anna) as resp:
        assert (await resp.json())["reason"] == "meeting"  # the phone's *443
    async with http.post(f"{base}/1001/logout", headers=anna) as resp:
        assert (await resp.json())["state"] == "logged_out"
    async with http.post(f"{base}/1001/ready", headers=anna) as resp:
        assert resp.status == 409  # logged out: log in first
    rows = api_daemon.audit_rows("agent:1001", want=5)
    assert [(r["actor"], r["action"]) for r in rows][:5] == [
        ("anna", "agent.login"),
        ("anna", "agent.ready"),
        ("anna", "agent.not_ready"),
        ("anna", "agent.not_ready"),
        ("anna", "agent.logout"),
    ]
    assert rows[2]["before"]["state"] == "ready"
    assert rows[2]["after"] == {"state": "not_ready", "reason": "lunch", "device": "PJSIP/1001"}


async def test_session_cookie_is_httponly_and_strict_and_logout_ends_it(
    api_daemon: Api, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        f"{api_daemon.base}/api/v1/login", json={"name": "view", "password": PASSWORD}
    ) as resp:
        assert resp.status == 200
        cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    async with aiohttp.ClientSession() as browser:
        browser.cookie_jar.update_cookies({"acd_session": cookie.split(";")[0].split("=", 1)[1]})
        async with browser.get(f"{api_daemon.base}/api/v1/me") as resp:
            assert (await resp.json())["name"] == "view"
        async with browser.post(f"{api_daemon.base}/api/v1/logout") as resp:
            assert resp.status == 204
        async with browser.get(f"{api_daemon.base}/api/v1/me") as resp:
            assert resp.status == 401


async def test_wrong_password_and_disabled_account_cannot_log_in(
    api_daemon: Api, http: aiohttp.ClientSession
) -> None:
    url = f"{api_daemon.base}/api/v1/login"
    async with http.post(url, json={"name": "sup", "password": "wrong password"}) as resp:
        assert resp.status == 401
    async with http.post(url, json={"name": "nobody", "password": PASSWORD}) as resp:
        assert resp.status == 401
    sup = api_daemon.headers("sup")
    users = f"{api_daemon.base}/api/v1/users"
    new = {"name": "temp", "role": "viewer", "password": PASSWORD}
    async with http.post(users, json=new, headers=sup) as resp:
        assert resp.status == 201, await resp.text()
    token = await login(api_daemon.base, "temp")
    async with http.patch(f"{users}/temp", json={"disabled": True}, headers=sup) as resp:
        assert resp.status == 200
    async with http.get(
        f"{api_daemon.base}/api/v1/me", headers={"Authorization": f"Bearer {token}"}
    ) as resp:
        assert resp.status == 401  # its login ended with the account
    async with http.post(url, json={"name": "temp", "password": PASSWORD}) as resp:
        assert resp.status == 401
    rows = api_daemon.audit_rows("user:temp", want=2)
    assert [r["action"] for r in rows] == ["user.create", "user.update"]
    assert rows[1]["after"]["disabled"] is True


async def test_the_log_holds_no_password_or_token(
    api_daemon: Api, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{api_daemon.base}/api/v1/me", headers=api_daemon.headers("sup")):
        pass
    text = api_daemon.daemon.log_path.read_text()
    assert "http_login" in text
    assert PASSWORD not in text
    for token in api_daemon.tokens.values():
        assert token not in text


async def test_guessing_a_password_is_throttled_per_name(
    api_daemon: Api, http: aiohttp.ClientSession
) -> None:
    new = {"name": "guess-me", "role": "viewer", "password": PASSWORD}
    async with http.post(
        f"{api_daemon.base}/api/v1/users", json=new, headers=api_daemon.headers("sup")
    ) as resp:
        assert resp.status == 201
    url = f"{api_daemon.base}/api/v1/login"
    for _ in range(5):
        async with http.post(url, json={"name": "guess-me", "password": "guess"}) as resp:
            assert resp.status == 401
    async with http.post(url, json={"name": "guess-me", "password": PASSWORD}) as resp:
        assert resp.status == 429  # even the right password, for now
        assert "try again" in (await resp.json())["error"]
    async with http.post(url, json={"name": "sup", "password": PASSWORD}) as resp:
        assert resp.status == 200  # other names are not affected
