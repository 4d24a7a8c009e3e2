"""Flow versions through the API: validate, upload, activate, roll back, as the running
daemon's registry sees it (what calls starting now would run)."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from tests.api.conftest import Api

pytestmark = pytest.mark.postgres

FLOW = """\
flow: api_line
version: {version}
start: bye
nodes:
  bye:
    kind: hangup
    prompt: {prompt}
"""
BROKEN = """\
flow: api_line
version: 3
start: bye
nodes:
  bye:
    kind: hangup
    prompt: goodbye
    colour: blue
"""


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


async def live(api: Api, http: aiohttp.ClientSession, name: str) -> dict[str, object]:
    async with http.get(f"{api.base}/api/v1/flows/{name}", headers=api.headers("view")) as r:
        assert r.status == 200, await r.text()
        body: dict[str, object] = await r.json()
        return body


async def test_validation_names_file_line_and_field(
    api_daemon: Api, http: aiohttp.ClientSession
) -> None:
    sup = api_daemon.headers("sup")
    async with http.post(
        f"{api_daemon.base}/api/v1/flows/validate", json={"content": BROKEN}, headers=sup
    ) as resp:
        body = await resp.json()
    assert body["ok"] is False
    [problem] = body["problems"]
    assert problem["file"] == str(api_daemon.flows_dir / "api_line.yaml")
    assert (problem["line"], problem["field"]) == (8, "nodes.bye.colour")
    assert problem["text"].startswith(f"{api_daemon.flows_dir / 'api_line.yaml'}:8:")
    async with http.post(
        f"{api_daemon.base}/api/v1/flows/api_line/versions", json={"content": BROKEN}, headers=sup
    ) as resp:
        assert resp.status == 422
        assert (await resp.json())["problems"][0]["field"] == "nodes.bye.colour"
    # A subflow that does not exist among the live flows is a problem too.
    calling = (
        FLOW.format(version=1, prompt="goodbye").replace("start: bye", "start: other")
        + "  other:\n    kind: subflow\n    flow: no_such_flow\n    next: bye\n"
    )
    async with http.post(
        f"{api_daemon.base}/api/v1/flows/validate", json={"content": calling}, headers=sup
    ) as resp:
        body = await resp.json()
    assert body["ok"] is False
    assert any("no_such_flow" in p["message"] for p in body["problems"]), body


async def test_upload_activate_rollback_round_trip(
    api_daemon: Api, http: aiohttp.ClientSession
) -> None:
    sup = api_daemon.headers("sup")
    base = f"{api_daemon.base}/api/v1/flows"
    versions = []
    for n, prompt in ((1, "goodbye"), (2, "vm-goodbye")):
        async with http.post(
            f"{base}/api_line/versions",
            json={"content": FLOW.format(version=n, prompt=prompt), "comment": f"v{n}"},
            headers=sup,
        ) as resp:
            assert resp.status == 201, await resp.text()
            versions.append(await resp.json())
    assert [v["seq"] for v in versions] == [1, 2]
    assert not any(v["active"] for v in versions)  # uploaded, not live
    async with http.get(f"{base}/api_line", headers=sup) as resp:
        assert resp.status == 404  # no such flow is live yet

    async with http.post(f"{base}/api_line/versions/1/activate", headers=sup) as resp:
        assert resp.status == 200, await resp.text()
        first = await resp.json()
    flow = await live(api_daemon, http, "api_line")
    assert (flow["version"], flow["active_seq"], flow["sha256"]) == (1, 1, first["sha256"])
    file = Path(str(flow["file"]))
    assert file == api_daemon.flows_dir / "api_line.yaml"
    assert "prompt: goodbye" in read(file)

    async with http.post(f"{base}/api_line/versions/2/activate", headers=sup) as resp:
        second = await resp.json()
    assert second["generation"] > first["generation"]
    assert (await live(api_daemon, http, "api_line"))["version"] == 2

    async with http.post(f"{base}/api_line/rollback", json={}, headers=sup) as resp:
        assert resp.status == 200, await resp.text()
        back = await resp.json()
    assert (back["seq"], back["sha256"]) == (1, first["sha256"])
    flow = await live(api_daemon, http, "api_line")
    assert (flow["version"], flow["active_seq"]) == (1, 1)
    assert [(v["seq"], v["active"]) for v in flow["versions"]] == [(1, True), (2, False)]
    # The registry recorded each version that went live (flow_versions) in the daemon log.
    activated = [e for e in api_daemon.daemon.events("ivr_flows_activated")]
    assert sum("api_line" in e["changed"] for e in activated) >= 3

    rows = api_daemon.audit_rows("flow:api_line", want=5)
    assert [r["action"] for r in rows] == [
        "flow.upload",
        "flow.upload",
        "flow.activate",
        "flow.activate",
        "flow.rollback",
    ]
    assert rows[4]["before"]["sha256"] == second["sha256"]
    assert rows[4]["after"]["sha256"] == first["sha256"]


async def test_rollback_reaches_the_file_found_on_disk(
    api_daemon: Api, http: aiohttp.ClientSession
) -> None:
    """The sample hotline was put there by hand: its first API activation keeps it, so a
    rollback restores exactly that file."""
    sup = api_daemon.headers("sup")
    base = f"{api_daemon.base}/api/v1/flows"
    before = await live(api_daemon, http, "hotline")
    original = read(api_daemon.flows_dir / "hotline.yaml")
    edited = original.replace("version: 1", "version: 7", 1)
    async with http.post(f"{base}/hotline/versions", json={"content": edited}, headers=sup) as resp:
        assert resp.status == 201, await resp.text()
        seq = (await resp.json())["seq"]
    async with http.post(f"{base}/hotline/versions/{seq}/activate", headers=sup) as resp:
        assert resp.status == 200
    assert (await live(api_daemon, http, "hotline"))["version"] == 7
    async with http.post(f"{base}/hotline/rollback", json={}, headers=sup) as resp:
        assert resp.status == 200, await resp.text()
    after = await live(api_daemon, http, "hotline")
    assert (after["version"], after["sha256"]) == (before["version"], before["sha256"])
    assert read(api_daemon.flows_dir / "hotline.yaml") == original
    kept = [v for v in after["versions"] if v["uploaded_by"] == "(flows folder)"]  # type: ignore[union-attr]
    assert len(kept) == 1 and kept[0]["active"]


async def test_uploads_need_the_name_they_declare(
    api_daemon: Api, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        f"{api_daemon.base}/api/v1/flows/other_name/versions",
        json={"content": FLOW.format(version=1, prompt="goodbye")},
        headers=api_daemon.headers("sup"),
    ) as resp:
        assert resp.status == 422
        problems = (await resp.json())["problems"]
    assert problems[0]["field"] == "flow"
    assert "other_name" in problems[0]["message"]
