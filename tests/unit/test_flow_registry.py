"""Hot reload of IVR flows: good edits go live, broken ones are refused with every
problem logged, and a call keeps the flows it started with."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any, cast

import pytest

import acd.ivr.registry
from acd.agi import AGISession
from acd.db.writer import Row
from acd.inbound import InboundCall
from acd.ivr.interpreter import Outcome
from acd.ivr.registry import FlowRegistry, FlowVersion
from acd.ivr.route import FlowRoute, outcome_variables
from tests.fixtures.logs import LogRecorder, record_logs
from tests.unit.test_agi_port import FakeSession


def flow_text(queue: str, version: int = 1, prompt: str = "vm-press") -> str:
    return (
        f"flow: t\nversion: {version}\nstart: menu\n"
        "languages: {default: en, available: [en]}\n"
        "nodes:\n"
        f"  menu:\n    kind: menu\n    prompt: {prompt}\n"
        "    choices: {1: q}\n    on_failure: bye\n"
        f"  q:\n    kind: queue\n    queue: {queue}\n"
        "  bye:\n    kind: hangup\n"
    )


BROKEN = "flow: t\nversion: 3\nstart: menu\nnodes:\n  menu:\n    kind: menu\n    promt: x\n"


def write(path: Path, text: str) -> None:
    path.write_text(text)
    st = path.stat()  # a new mtime even within the file system's time resolution
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> LogRecorder:
    return record_logs(monkeypatch, acd.ivr.registry)


def test_a_good_edit_goes_live_and_each_version_is_reported_once(
    tmp_path: Path, logs: LogRecorder
) -> None:
    versions: list[FlowVersion] = []
    registry = FlowRegistry(tmp_path, on_activate=versions.extend)
    write(tmp_path / "t.yaml", flow_text("sales"))
    assert registry.reload_now()
    first = registry.current
    assert first.flows["t"].nodes["q"].queue == "sales"  # type: ignore[union-attr]

    assert registry.reload_now()  # nothing changed: same content, no new version row
    write(tmp_path / "t.yaml", flow_text("support", version=2))
    assert registry.reload_now()
    assert registry.current.flows["t"].nodes["q"].queue == "support"  # type: ignore[union-attr]
    assert [(v.flow, v.version) for v in versions] == [("t", 1), ("t", 2)]
    assert versions[0].sha256 != versions[1].sha256
    assert versions[1].file == str(tmp_path / "t.yaml")
    assert registry.current.hash_of("t") == versions[1].sha256
    # The object a call took at its start still holds the old flow.
    assert first.flows["t"].nodes["q"].queue == "sales"  # type: ignore[union-attr]


def test_a_broken_edit_is_refused_with_every_problem_and_the_old_flows_stay(
    tmp_path: Path, logs: LogRecorder
) -> None:
    versions: list[FlowVersion] = []
    registry = FlowRegistry(tmp_path, on_activate=versions.extend)
    write(tmp_path / "t.yaml", flow_text("sales"))
    registry.reload_now()
    live = registry.current

    write(tmp_path / "t.yaml", BROKEN)
    assert not registry.reload_now()
    assert registry.current is live
    problems = [p["problem"] for p in logs.named("ivr_flow_problem")]
    assert any(
        p.startswith(f"{tmp_path / 't.yaml'}:7:5: nodes.menu.promt: unknown field")
        for p in problems
    ), problems
    assert len(problems) >= 2  # the typo and the missing prompt/choices, all at once
    assert logs.named("ivr_flows_reload_rejected")[0]["keeping_generation"] == live.generation
    assert len(versions) == 1


async def test_the_watcher_picks_up_edits_and_sighup_forces_a_reload(tmp_path: Path) -> None:
    registry = FlowRegistry(tmp_path)
    write(tmp_path / "t.yaml", flow_text("sales"))
    await registry.reload()
    watcher = asyncio.create_task(registry.watch(0.05))
    try:
        write(tmp_path / "t.yaml", flow_text("support", version=2))
        for _ in range(100):
            if registry.current.generation == 2:
                break
            await asyncio.sleep(0.02)
        assert registry.current.generation == 2

        registry.request_reload()  # same files, but ops asked: loaded again
        for _ in range(100):
            if registry.current.generation == 3:
                break
            await asyncio.sleep(0.02)
        assert registry.current.generation == 3
    finally:
        watcher.cancel()


class BlockingSession(FakeSession):
    """Holds the caller in the menu prompt until the test lets go."""

    def __init__(self, release: asyncio.Event) -> None:
        super().__init__(["1"])
        self.release = release
        self.in_prompt = asyncio.Event()

    async def stream_file(self, name: str, escape_digits: str = "") -> str | None:
        self.in_prompt.set()
        await self.release.wait()
        return await super().stream_file(name, escape_digits)


async def test_a_call_in_progress_finishes_on_the_version_it_started_with(
    tmp_path: Path,
) -> None:
    registry = FlowRegistry(tmp_path)
    write(tmp_path / "t.yaml", flow_text("sales", prompt="hello-world"))
    registry.reload_now()
    rows: list[Row] = []
    route = FlowRoute(registry, rows.append, entry_flow="t")

    release = asyncio.Event()
    session = BlockingSession(release)
    call = InboundCall(agi=cast(AGISession, session), route="flow")
    running = asyncio.create_task(route(call))
    await session.in_prompt.wait()
    old_hash = registry.current.hash_of("t")
    write(tmp_path / "t.yaml", flow_text("support", version=2, prompt="hello-world"))
    assert registry.reload_now()
    release.set()
    await running

    assert session.variables["ACD_OUTCOME"] == "queue"
    assert session.variables["ACD_QUEUE"] == "sales"  # the old version, to the end
    assert call.ivr_outcome == "queue"
    steps = [r.values for r in rows]
    assert [(s["node_id"], s["result"]) for s in steps] == [("menu", "choice"), ("q", "queue")]
    assert {s["flow_hash"] for s in steps} == {old_hash}
    assert {s["uniqueid"] for s in steps} == {"1.1"}

    # The next call gets the new version.
    session = FakeSession(["1"], uniqueid="1.2")
    await route(InboundCall(agi=cast(AGISession, session), route="flow"))
    assert session.variables["ACD_QUEUE"] == "support"


async def test_an_unknown_flow_name_tells_the_dialplan_error(tmp_path: Path) -> None:
    registry = FlowRegistry(tmp_path)
    write(tmp_path / "t.yaml", flow_text("sales"))
    registry.reload_now()
    session = FakeSession()
    session.env.raw["agi_network_script"] = "flow?name=nope"
    await FlowRoute(registry, lambda row: None, entry_flow="t")(
        InboundCall(agi=cast(AGISession, session), route="flow")
    )
    assert session.variables["ACD_OUTCOME"] == "error"


def test_outcome_variables_clear_what_does_not_apply() -> None:
    got: dict[str, Any] = outcome_variables(
        Outcome("queue", queue="sales", skills=("de", "vip"), priority=9)
    )
    assert got["ACD_OUTCOME"] == "queue"
    assert (got["ACD_QUEUE"], got["ACD_SKILLS"], got["ACD_PRIORITY"]) == ("sales", "de,vip", "9")
    assert got["ACD_DESTINATION"] == got["ACD_MAILBOX"] == got["ACD_CALLBACK"] == ""
    transfer = outcome_variables(Outcome("transfer", destination="200"))
    assert (transfer["ACD_DESTINATION"], transfer["ACD_PRIORITY"]) == ("200", "")
