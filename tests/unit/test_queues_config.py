"""The queues file as supervisors write it: good ones load, broken ones say where and why,
and edits go live at run time only when they are valid.

Each file in ``tests/queues/broken`` holds one realistic mistake and says what the
supervisor must be told, as comments::

    # expect: <line> <field path, or - for none> [text the message contains]

A broken file must be rejected with exactly those problems: no fewer and no more.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
from collections.abc import Callable
from pathlib import Path

import pytest

import acd.queues.reload
from acd.core.routing.model import QueueConfig, Stage
from acd.ivr.loader import load_flows
from acd.ivr.model import CallbackNode, QueueNode
from acd.queues.config import (
    CenterConfig,
    Problem,
    QueuesConfigError,
    load_queues,
    parse_duration,
    parse_queues,
    parse_service_level,
)
from acd.queues.reload import QueuesWatcher
from tests.fixtures.logs import LogRecorder, record_logs

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "tests" / "queues"
GOOD = sorted((SAMPLES / "good").glob("*.yaml"))
BROKEN = sorted((SAMPLES / "broken").glob("*.yaml"))
EXPECT = re.compile(r"^# expect: (\d+) (\S+)(?: (.*))?$")


def expectations(path: Path) -> list[tuple[int, str, str]]:
    found = []
    for line in path.read_text().splitlines():
        match = EXPECT.match(line)
        if match:
            found.append((int(match[1]), "" if match[2] == "-" else match[2], match[3] or ""))
    return found


def problems_of(path: Path) -> list[Problem]:
    with pytest.raises(QueuesConfigError) as info:
        load_queues(path)
    return info.value.problems


def problems_in(text: str) -> list[tuple[int, str]]:
    with pytest.raises(QueuesConfigError) as info:
        parse_queues(text, "q.yaml")
    return [(p.line, p.field_path) for p in info.value.problems]


# -- broken files ----------------------------------------------------------------------


def test_there_are_enough_distinct_broken_samples() -> None:
    assert len(BROKEN) >= 30
    assert all(expectations(p) for p in BROKEN), "every broken sample says what to expect"
    named = [p for p in BROKEN if any(field for _, field, _ in expectations(p))]
    assert len(named) >= 28


@pytest.mark.parametrize("path", BROKEN, ids=lambda p: p.stem)
def test_broken_sample_is_rejected_at_its_line_and_field(path: Path) -> None:
    problems = problems_of(path)
    seen = [(p.line, p.field_path) for p in problems]
    for line, field, text in expectations(path):
        matching = [p for p in problems if (p.line, p.field_path) == (line, field)]
        assert matching, f"expected a problem at line {line}, field {field!r}; got {seen}"
        if text:
            assert any(text in p.message for p in matching), [p.message for p in matching]
    assert sorted(set(seen)) == sorted({(line, f) for line, f, _ in expectations(path)}), (
        "unexpected extra problems: " + "; ".join(str(p) for p in problems)
    )
    assert all(p.file == str(path) and p.column >= 1 for p in problems)


def test_problem_reads_file_line_column_field_and_message() -> None:
    path = SAMPLES / "broken" / "overflow_unknown_queue.yaml"
    with pytest.raises(QueuesConfigError) as info:
        load_queues(path)
    (problem,) = info.value.problems
    assert str(problem) == (
        f"{path}:6:32: queues.sales.overflow.to: unknown queue 'sales_bakup' "
        "(did you mean 'sales_backup'? expected one of: sales, sales_backup)"
    )
    assert str(info.value).startswith("1 problem in the queues file:\n  ")


def test_one_run_reports_every_problem_of_a_file() -> None:
    text = """\
queues:
  sales:
    skills: {loans: 12}
    overflow: {after: 60, to: suport}
    wrap_up: -1
  support:
    selection: best
agents:
  1001:
    queues: [sales, support, billing]
    skills: [loans]
    device: PJSIP/
"""
    assert problems_in(text) == [
        (3, "queues.sales.skills.loans"),
        (4, "queues.sales.overflow.to"),
        (5, "queues.sales.wrap_up"),
        (7, "queues.support.selection"),
        (10, "agents.1001.queues.2"),
        (12, "agents.1001.device"),
    ]


def test_missing_unreadable_and_non_mapping_files(tmp_path: Path) -> None:
    missing = tmp_path / "acd_queues.yaml"
    (problem,) = problems_of(missing)
    assert (problem.line, problem.message) == (1, "the queues file does not exist")
    missing.write_bytes(b"queues:\n  caf\xe9: {}\n")
    (problem,) = problems_of(missing)
    assert problem.message.startswith("not UTF-8 text")
    missing.write_text("- sales\n- support\n")
    (problem,) = problems_of(missing)
    assert problem.message == "the queues file is a mapping: queues:, agents:, teams:"
    missing.write_text("queues: {}\n")
    (problem,) = problems_of(missing)
    assert (problem.field_path, problem.message) == (
        "queues",
        "expected at least one queue, like sales: {skills: [loans]}",
    )


def test_mangled_files_give_problems_never_crash(tmp_path: Path) -> None:
    """Half-finished edits (lines lost, values garbled, indentation off) are reported."""
    rng = random.Random(7)
    texts = [p.read_text() for p in GOOD] + [(ROOT / "deploy" / "acd_queues.yaml").read_text()]
    garbage = ["", "x", "1", "-3", "null", "[]", "{}", "[a, b]", "'{'", "a: b", "99%", "*x"]
    for _ in range(300):
        lines = rng.choice(texts).splitlines()
        for _ in range(rng.randint(1, 3)):
            if not lines:
                break
            j = rng.randrange(len(lines))
            match rng.randrange(3):
                case 0:
                    del lines[j]
                case 1 if ":" in lines[j]:
                    lines[j] = lines[j].partition(":")[0] + ": " + rng.choice(garbage)
                case _:
                    lines[j] = lines[j].replace("  ", " ", 1)
        try:
            parse_queues("\n".join(lines) + "\n", "mangled.yaml")
        except QueuesConfigError as exc:
            assert exc.problems
            assert all(p.line >= 1 and p.column >= 1 and p.message for p in exc.problems)


# -- good files ------------------------------------------------------------------------


def test_every_field_is_converted() -> None:
    config = load_queues(SAMPLES / "good" / "full.yaml")
    assert list(config.queues) == ["sales", "sales_backup", "support", "quiet"]
    assert config.queues["sales"] == QueueConfig(
        name="sales",
        skills={"loans": 1},
        stages=(
            Stage(after=30.0, drop=frozenset({"de", "en"})),
            Stage(after=90.0, min_level={"loans": 1}),
        ),
        service_level=0.8,
        service_time=20.0,
        max_wait=300.0,
        overflow_after=120.0,
        overflow_to="sales_backup",
        wrap_up=10.0,
        ring_timeout=15.0,
        selection="longest_idle",
        aging=10.0,
        music_class="default",
        announce_every=30.0,
        announce_position=True,
        announce_wait=True,
        callback_key="1",
    )
    backup = config.queues["sales_backup"]
    assert dict(backup.skills) == {"loans": 2, "vip": 1}
    assert backup.selection == "best_skill" and backup.max_wait == 600.0
    assert backup.stages == (Stage(after=0.0, drop=frozenset({"*"})),)
    assert backup.callback_key == "#"
    # Not set in the queue: from defaults (announce merges key by key).
    assert (backup.service_level, backup.service_time, backup.wrap_up) == (0.85, 15.0, 60.0)
    assert (backup.ring_timeout, backup.aging, backup.music_class) == (20.0, 5.0, "calm")
    assert (backup.announce_every, backup.announce_position, backup.announce_wait) == (
        45.0,
        False,
        True,
    )
    support = config.queues["support"]
    assert support.callback_key == "9"  # a bare 9 in defaults
    assert support.max_wait is None and support.stages == () and dict(support.skills) == {}
    quiet = config.queues["quiet"]
    assert dict(quiet.skills) == {"online-banking": 3}
    assert (quiet.service_level, quiet.service_time) == (0.905, 3600.0)
    assert (quiet.announce_position, quiet.announce_wait, quiet.callback_key) == (
        False,
        False,
        None,
    )
    assert quiet.stages == (Stage(after=2.5, min_level={"online-banking": 1}),)

    anna, jonas, b7, idle = config.agents.values()
    assert (anna.id, anna.name, dict(anna.skills)) == (
        "1001",
        "Anna Schmidt",
        {"de": 5, "en": 3, "loans": 4},
    )
    assert (anna.queues, anna.teams, anna.device) == (
        ("sales", "support"),
        ("berlin",),
        "PJSIP/1001",
    )
    assert dict(anna.capacity) == {"voice": 1, "chat": 2}
    assert (jonas.id, dict(jonas.skills)) == ("0042", {"de": 5, "en": 1, "loans": 1, "vip": 1})
    assert (jonas.queues, jonas.teams) == (("sales_backup",), ("hamburg",))
    assert jonas.device == "Local/answer@acd-sim-agent"  # the technology as Asterisk spells it
    assert dict(b7.capacity) == {"voice": 0, "email": 10} and b7.device is None
    assert (idle.id, idle.queues, dict(idle.capacity)) == ("1004", (), {"voice": 1})
    assert dict(config.teams) == {"berlin": ("1001",), "hamburg": ("0042",), "munich": ()}
    assert dict(config.supervisors) == {"berlin": "2001"}
    assert config.source == str(SAMPLES / "good" / "full.yaml")
    assert len(config.sha256) == 64


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.stem)
def test_each_good_sample_loads(path: Path) -> None:
    assert load_queues(path).queues


def test_anchors_share_settings_and_own_keys_win() -> None:
    config = load_queues(SAMPLES / "good" / "anchors.yaml")
    sales, vip = config.queues["sales"], config.queues["sales_vip"]
    assert (vip.service_time, vip.wrap_up) == (sales.service_time, sales.wrap_up) == (20.0, 15.0)
    assert dict(vip.skills) == {"loans": 1, "vip": 1}
    assert config.agents["1002"].queues == ("sales", "sales_vip")
    assert config.agents["1002"].name == "Jonas Weber"


def test_the_config_cannot_be_changed_behind_the_engine() -> None:
    config = load_queues(SAMPLES / "good" / "full.yaml")
    with pytest.raises(TypeError):
        config.queues["x"] = config.queues["sales"]  # type: ignore[index]
    with pytest.raises(TypeError):
        config.agents["1001"].skills["de"] = 1  # type: ignore[index]


def test_agent_ids_are_text_as_written() -> None:
    config = parse_queues("queues: {q: {}}\nagents:\n  1001: {}\n  0042: {}\n  B7: {}\n")
    assert list(config.agents) == ["1001", "0042", "B7"]
    assert problems_in("queues: {q: {}}\nagents:\n  1001: {}\n  '1001': {}\n") == [
        (4, "agents.1001")
    ]


# -- the sample for the demo hotline ---------------------------------------------------


def test_deploy_sample_fits_the_demo_hotline() -> None:
    config = load_queues(ROOT / "deploy" / "acd_queues.yaml")
    assert set(config.queues) == {"sales", "sales_vip", "support", "callback"}
    assert len(config.agents) >= 6
    flows = load_flows(ROOT / "ivr_flows")
    languages = flows["hotline"].languages.available
    asked: list[tuple[str, tuple[str, ...]]] = []
    for flow in flows.values():
        for node in flow.nodes.values():
            if isinstance(node, QueueNode):
                asked.append((node.queue, tuple(s for s in node.skills if "{" not in s)))
            elif isinstance(node, CallbackNode):
                asked.append((node.queue, ()))
    assert {queue for queue, _ in asked} == set(config.queues)
    for queue, skills in asked:
        serving = [a for a in config.agents.values() if queue in a.queues]
        for language in languages:
            # A caller in each language the IVR offers finds an agent with every skill
            # the flow asks for and the queue requires, without waiting for a stage.
            needed = {language: 1, **{s: 1 for s in skills}, **config.queues[queue].skills}
            fits = [a for a in serving if all(a.skills.get(s, 0) >= n for s, n in needed.items())]
            assert fits, f"no agent in {queue} for {language} callers needing {needed}"
    assert set(config.teams) == {"berlin", "hamburg"}
    assert all(config.teams.values())


def test_the_documented_example_loads(tmp_path: Path) -> None:
    doc = (ROOT / "deploy" / "QUEUES.md").read_text()
    example = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    config = parse_queues(example, "QUEUES.md")
    assert config.queues["sales"].overflow_to == "sales_backup"
    assert config.agents["1001"].capacity == {"voice": 1, "chat": 2}


# -- values ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "level", "seconds"),
    [
        ("80% in 20s", 0.8, 20.0),
        ("80%in 20", 0.8, 20.0),
        ("90.5 % within 1m", 0.905, 60.0),
        ("100%/15s", 1.0, 15.0),
        ("0% in 1h", 0.0, 3600.0),
        ("95% IN 1m30s", 0.95, 90.0),
    ],
)
def test_service_level_reads_as_a_supervisor_says_it(
    text: str, level: float, seconds: float
) -> None:
    assert parse_service_level(text) == pytest.approx((level, seconds))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("80 in 20s", "is not a service level"),
        ("80%", "is not a service level"),
        ("101% in 20s", "must be 0-100"),
        ("-5% in 20s", "must be 0-100"),
        ("80% in 0s", "more than 0 s"),
        ("80% in soon", "is not a time"),
    ],
)
def test_service_level_mistakes_are_explained(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_service_level(text)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(90, 90.0), (2.5, 2.5), ("90", 90.0), ("90s", 90.0), ("5m", 300.0), ("1m30s", 90.0),
     ("1h 30m", 5400.0), ("2 min", 120.0), ("10 seconds", 10.0), (0, 0.0)],
)  # fmt: skip
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["-5", -1, "5x", "30s 1m", "1m1m", "", "s", True, None, [1]])
def test_bad_durations(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


# -- hot reload ------------------------------------------------------------------------

QUEUES_V1 = "queues:\n  sales:\n    wrap_up: 10\nagents:\n  1001: {queues: [sales]}\n"
QUEUES_V2 = (
    "queues:\n  sales:\n    wrap_up: 25\n  support: {}\nagents:\n  1001: {queues: [sales]}\n"
)
QUEUES_BROKEN = "queues:\n  sales:\n    wrap_up: 25\nagents:\n  1001: {queues: [sales, suport]}\n"


def write(path: Path, text: str) -> None:
    path.write_text(text)
    st = path.stat()  # a new mtime even within the file system's time resolution
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> LogRecorder:
    return record_logs(monkeypatch, acd.queues.reload)


async def until(condition: Callable[[], bool]) -> None:
    """Let the watcher run until ``condition`` holds (at most 5 s)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the watcher did not get there within 5 s")


async def test_watcher_picks_up_an_edit_and_refuses_a_broken_one(
    tmp_path: Path, logs: LogRecorder
) -> None:
    path = tmp_path / "acd_queues.yaml"
    write(path, QUEUES_V1)
    seen: list[CenterConfig] = []
    watcher = QueuesWatcher(path, seen.append)
    first = watcher.load()
    assert first.queues["sales"].wrap_up == 10.0 and seen == []
    task = asyncio.create_task(watcher.watch(poll=0.01))
    try:
        write(path, QUEUES_V2)
        await until(lambda: len(seen) == 1)
        assert seen[0].queues["sales"].wrap_up == 25.0 and "support" in seen[0].queues
        assert watcher.current is seen[0]

        write(path, QUEUES_BROKEN)
        await until(lambda: watcher.rejected == 1)
        assert len(seen) == 1 and watcher.current is seen[0]  # the good one stays live
        (problem,) = watcher.problems
        assert (problem.line, problem.field_path) == (5, "agents.1001.queues.1")
        assert [e["problem"] for e in logs.named("acd_queues_problem")] == [str(problem)]

        write(path, QUEUES_V1)  # fixed: goes live, and the problems are gone
        await until(lambda: len(seen) == 2)
        assert seen[1].queues["sales"].wrap_up == 10.0 and watcher.problems == ()
    finally:
        task.cancel()


async def test_request_reload_reads_the_file_even_if_it_looks_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "acd_queues.yaml"
    write(path, QUEUES_V1)
    seen: list[CenterConfig] = []
    watcher = QueuesWatcher(path, seen.append)
    watcher.load()
    st = path.stat()
    path.write_text(QUEUES_V1.replace("10", "20"))  # same size ...
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # ... and the old mtime
    task = asyncio.create_task(watcher.watch(poll=30))  # polling alone would not see it soon
    try:
        await asyncio.sleep(0.02)
        assert seen == []
        watcher.request_reload()
        await until(lambda: len(seen) == 1)
        assert seen[0].queues["sales"].wrap_up == 20.0
    finally:
        task.cancel()


def test_saving_the_same_content_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "acd_queues.yaml"
    write(path, QUEUES_V1)
    seen: list[CenterConfig] = []
    watcher = QueuesWatcher(path, seen.append)
    watcher.load()
    write(path, QUEUES_V1)
    assert watcher.changed()
    assert not watcher.reload_now() and seen == []
    assert not watcher.changed()


def test_a_deleted_file_keeps_the_configuration(tmp_path: Path, logs: LogRecorder) -> None:
    path = tmp_path / "acd_queues.yaml"
    write(path, QUEUES_V1)
    watcher = QueuesWatcher(path)
    live = watcher.load()
    path.unlink()
    assert watcher.changed()
    assert not watcher.reload_now()
    assert watcher.current is live and watcher.rejected == 1
    assert watcher.problems[0].message == "the queues file does not exist"
    assert logs.named("acd_queues_reload_rejected")[0]["problems"] == 1


def test_a_configuration_the_engine_refuses_is_not_made_live(tmp_path: Path) -> None:
    path = tmp_path / "acd_queues.yaml"
    write(path, QUEUES_V1)

    def refuse(config: CenterConfig) -> None:
        raise RuntimeError("queue sales still has callers")

    watcher = QueuesWatcher(path, refuse)
    live = watcher.load()
    write(path, QUEUES_V2)
    assert not watcher.reload_now()
    assert watcher.current is live and watcher.rejected == 1


def test_a_broken_file_at_start_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "acd_queues.yaml"
    write(path, QUEUES_BROKEN)
    watcher = QueuesWatcher(path)
    with pytest.raises(QueuesConfigError):
        watcher.load()
    assert watcher.current is None
    write(path, QUEUES_V1)
    assert watcher.reload_now() and watcher.current is not None
