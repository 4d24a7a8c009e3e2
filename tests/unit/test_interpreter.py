"""The IVR interpreter against a scripted fake call: what callers press, what they reach.

The fake port takes a script of what the caller does, one entry per time the IVR waits
for keys: digits (``"1"``, ``"123456#"``), ``None`` for silence until the timeout,
``Barge("5")`` for a key pressed during an interruptible prompt, or ``HANGUP``. Each test
asserts the outcome and the path (node ids) the call took.
"""

from __future__ import annotations

import asyncio
import gc
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from acd.ivr.interpreter import (
    _SCHEDULES,
    CallerHangup,
    ExpressionError,
    Interpreter,
    Outcome,
    Step,
    evaluate,
    is_secret,
    render,
)
from acd.ivr.loader import FlowSet, load_flow, load_flows
from acd.ivr.lookup import UNAVAILABLE, LookupFailed, LookupResult
from acd.ivr.model import Flow

GOOD = Path(__file__).resolve().parents[1] / "flows" / "good"
BERLIN = ZoneInfo("Europe/Berlin")
MONDAY_10 = datetime(2025, 11, 24, 10, 0, tzinfo=BERLIN)
SUNDAY_10 = datetime(2025, 11, 23, 10, 0, tzinfo=BERLIN)


@dataclass(frozen=True)
class Barge:
    """A key pressed while an interruptible prompt plays."""

    key: str


HANGUP = object()


class FakePort:
    """A call scripted by the test; records what the caller would have heard."""

    def __init__(self, script: Sequence[object] = (), now: datetime = MONDAY_10) -> None:
        self.script: deque[object] = deque(script)
        self.clock = now
        self.heard: list[str] = []
        self.said: list[tuple[str, str]] = []
        self.languages: list[str] = []
        self.channel_vars: dict[str, str] = {}

    def _hangup_next(self) -> None:
        if self.script and self.script[0] is HANGUP:
            self.script.popleft()
            raise CallerHangup

    async def play(self, prompts: Sequence[str], interrupt: str) -> str | None:
        self._hangup_next()
        self.heard.extend(prompts)
        head = self.script[0] if self.script else None
        if interrupt and isinstance(head, Barge) and head.key in interrupt:
            self.script.popleft()
            return head.key
        return None

    async def read_digits(
        self, prompt: str | None, max_digits: int, timeout_ms: int, terminator: str | None
    ) -> tuple[str, bool]:
        self._hangup_next()
        if prompt:
            self.heard.append(prompt)
        item = self.script.popleft() if self.script else None
        if item is None:
            return "", True
        assert isinstance(item, str), f"unexpected script entry {item!r}"
        if terminator and terminator in item:
            return item.split(terminator, 1)[0][:max_digits], False
        return item[:max_digits], len(item) < max_digits

    async def say(self, kind: str, value: str) -> None:
        self.said.append((kind, value))

    async def set_channel_variable(self, name: str, value: str) -> None:
        self.channel_vars[name] = value

    async def set_language(self, language: str) -> None:
        self.languages.append(language)

    def now(self) -> datetime:
        return self.clock


class FakeLookup:
    """A lookup that answers from a table, fails, or stalls."""

    def __init__(
        self,
        values: Mapping[str, str] | None = None,
        *,
        fail: str | None = None,
        delay: float = 0.0,
    ) -> None:
        self.values = values
        self.fail = fail
        self.delay = delay
        self.seen: list[dict[str, str]] = []

    @property
    def required_variables(self) -> frozenset[str]:
        return frozenset()

    async def lookup(self, variables: Mapping[str, str]) -> LookupResult:
        self.seen.append(dict(variables))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail:
            raise LookupFailed(self.fail, "fake")
        if self.values is None:
            return LookupResult(found=False)
        return LookupResult(found=True, values=dict(self.values))


@pytest.fixture(scope="module")
def flows() -> FlowSet:
    return load_flows(GOOD)


CALLER = {"caller.number": "+4930555101", "caller.name": "Ada", "dialed.number": "4930123456"}


def interpreter(
    flows: Mapping[str, Flow],
    port: FakePort,
    lookups: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> Interpreter:
    return Interpreter(flows, port, lookups=lookups, variables=CALLER, **kwargs)


def path(interp: Interpreter) -> list[str]:
    return [step.node_id for step in interp.steps]


def inline(tmp_path: Path, text: str) -> dict[str, Flow]:
    """A flow written in the test, loaded and checked like a supervisor's file."""
    file = tmp_path / "inline.yaml"
    file.write_text(text)
    flow = load_flow(file)
    return {flow.flow: flow}


def unchecked(data: Mapping[str, Any]) -> dict[str, Flow]:
    """A flow the validator would refuse (runaway loops): built from the model directly."""
    flow = Flow.model_validate(data)
    return {flow.flow: flow}


HOTLINE_HEAD = ["welcome", "pick_language", "find_customer"]


# -- the hotline: every menu branch ---------------------------------------------------------


async def test_hotline_sales_branch_standard_customer(flows: FlowSet) -> None:
    port = FakePort(["1", "1"])
    crm = FakeLookup({"segment": "standard", "name": "Ada", "open_tickets": "2"})
    interp = interpreter(flows, port, {"find_customer": crm})
    outcome = await interp.run("hotline")
    assert outcome.kind == "queue"
    assert (outcome.queue, outcome.skills, outcome.priority) == ("sales", ("de",), 0)
    assert path(interp) == [
        *HOTLINE_HEAD,
        "remember_segment",
        "check_hours",
        "main_menu",
        "route_sales",
        "sales_queue",
    ]
    assert crm.seen[0]["caller.number"] == "+4930555101"
    assert interp.variables["tickets"] == 2
    assert port.heard[:3] == ["acme/welcome", "acme/choose-language", "acme/hauptmenue"]
    assert port.languages == ["de", "de"]


async def test_hotline_support_branch_uses_segment_template(flows: FlowSet) -> None:
    interp = interpreter(flows, FakePort(["1", "2"]), {"find_customer": FakeLookup()})
    outcome = await interp.run("hotline")
    assert (outcome.kind, outcome.queue) == ("queue", "standard_support")
    assert path(interp) == [*HOTLINE_HEAD, "check_hours", "main_menu", "support_queue"]


async def test_hotline_account_branch_runs_billing_subflow(flows: FlowSet) -> None:
    port = FakePort(["2", "3", "123456#"])
    lookups = {"find_customer": FakeLookup(), "billing.balance": FakeLookup({"amount": "42"})}
    interp = interpreter(flows, port, lookups)
    outcome = await interp.run("hotline")
    assert outcome.kind == "hangup"
    assert path(interp) == [
        *HOTLINE_HEAD,
        "check_hours",
        "main_menu",
        "account",
        "read_back",
        "billing",
        "balance",
        "say_balance",
        "done",
        "goodbye",
    ]
    assert [s.flow for s in interp.steps][-4:] == ["billing", "billing", "billing", "hotline"]
    assert port.said == [("digits", "123456"), ("number", "42")]
    assert port.heard[2] == "acme/main-menu"  # English chosen: the per-language file
    assert port.heard[-1] == "acme/goodbye"


async def test_hotline_operator_and_star_back_to_welcome(flows: FlowSet) -> None:
    interp = interpreter(flows, FakePort(["1", "*", "1", "0"]), {"find_customer": FakeLookup()})
    outcome = await interp.run("hotline")
    assert (outcome.kind, outcome.destination, outcome.external) == ("transfer", "200", False)
    assert (outcome.timeout, outcome.on_failure) == (25.0, "mailbox")
    menu_twice = [*HOTLINE_HEAD, "check_hours", "main_menu"]
    assert path(interp) == [*menu_twice, *menu_twice, "operator"]


async def test_invalid_key_then_valid_one(flows: FlowSet) -> None:
    port = FakePort(["1", "7", "2"])
    interp = interpreter(flows, port, {"find_customer": FakeLookup()})
    outcome = await interp.run("hotline")
    assert outcome.queue == "standard_support"
    menu = interp.steps[-2]
    assert (menu.node_id, menu.digits, menu.result) == ("main_menu", "72", "choice")
    assert menu.detail == {"timeouts": 0, "invalid": 1}
    assert port.heard[-2:] == ["acme/invalid-choice", "acme/hauptmenue"]


async def test_too_many_invalid_keys_go_to_on_failure(flows: FlowSet) -> None:
    interp = interpreter(flows, FakePort(["1", "7", "8"]), {"find_customer": FakeLookup()})
    outcome = await interp.run("hotline")
    assert (outcome.kind, outcome.node_id) == ("transfer", "operator")
    assert interp.steps[-2].result == "failure"


async def test_two_timeouts_then_the_fallback(flows: FlowSet) -> None:
    port = FakePort([None, None])
    interp = interpreter(flows, port)
    outcome = await interp.run("reception")
    assert (outcome.kind, outcome.node_id, outcome.destination) == ("transfer", "front_desk", "100")
    assert path(interp) == ["menu", "front_desk"]
    assert interp.steps[0].detail == {"timeouts": 2, "invalid": 0}
    assert port.heard == ["acme/reception-menu", "acme/still-there", "acme/reception-menu"]


async def test_timeout_then_key_keeps_menu_choice_in_variable(flows: FlowSet) -> None:
    interp = interpreter(flows, FakePort([None, "9", "1"]))
    outcome = await interp.run("reception")
    assert (outcome.destination, outcome.external) == ("+4930123456", True)
    assert path(interp) == ["menu", "repeat", "menu", "accounting"]
    assert interp.variables["reception_choice"] == "1"


async def test_hash_key_in_menu(flows: FlowSet) -> None:
    outcome = await interpreter(flows, FakePort(["#"])).run("reception")
    assert (outcome.kind, outcome.mailbox, outcome.greeting) == ("voicemail", "100", "busy")


# -- business hours --------------------------------------------------------------------


async def test_out_of_hours_goes_to_voicemail(flows: FlowSet) -> None:
    port = FakePort(["1"], now=SUNDAY_10)
    interp = interpreter(flows, port, {"find_customer": FakeLookup()})
    outcome = await interp.run("hotline")
    assert (outcome.kind, outcome.mailbox) == ("voicemail", "1000@hotline")
    assert path(interp) == [*HOTLINE_HEAD, "check_hours", "after_hours", "mailbox"]
    assert interp.steps[3].result == "closed"


@pytest.mark.parametrize(
    ("at", "node", "result"),
    [
        (datetime(2025, 11, 24, 9, 0, tzinfo=BERLIN), "desk_queue", "open"),
        (datetime(2025, 11, 24, 13, 0, tzinfo=BERLIN), "closed_notice", "closed"),  # lunch
        (datetime(2025, 11, 29, 23, 30, tzinfo=BERLIN), "desk_queue", "open"),  # Sat night
        (datetime(2025, 11, 30, 1, 30, tzinfo=BERLIN), "desk_queue", "open"),  # past midnight
        (datetime(2025, 11, 30, 3, 0, tzinfo=BERLIN), "closed_notice", "closed"),
        (datetime(2025, 12, 26, 10, 0, tzinfo=BERLIN), "holiday_notice", "holiday"),
        (datetime(2025, 12, 24, 10, 0, tzinfo=BERLIN), "desk_queue", "open"),  # short day
        (datetime(2025, 12, 24, 13, 0, tzinfo=BERLIN), "holiday_notice", "holiday"),
        (datetime(2026, 10, 2, 23, 30, tzinfo=UTC), "holiday_notice", "holiday"),  # 01:30 CEST
    ],
)
async def test_hours_open_closed_holiday(
    flows: FlowSet, at: datetime, node: str, result: str
) -> None:
    interp = interpreter(flows, FakePort(now=at))
    await interp.run("service_desk")
    assert path(interp) == ["open_now", node]
    assert interp.steps[0].result == result


# -- languages ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "language", "menu_file"),
    [
        (["2", "1"], "de", "acme/menue"),
        (["3", "1"], "fr", "acme/menu"),  # no French file: the fallback language's
        ([None, None, "1"], "en", "acme/menu"),  # silence: on in the default language
    ],
)
async def test_language_choice(
    flows: FlowSet, script: list[str | None], language: str, menu_file: str
) -> None:
    port = FakePort(script)
    interp = interpreter(flows, port)
    outcome = await interp.run("multilingual")
    assert (outcome.kind, outcome.skills) == ("queue", (language,))
    assert path(interp) == ["choose", "menu", "support"]
    assert port.languages[-1] == language
    assert interp.variables["call"]["language"] == language
    assert menu_file in port.heard


# -- lookups ---------------------------------------------------------------------------


async def test_lookup_found_feeds_next_lookup_and_queue(flows: FlowSet) -> None:
    tickets = FakeLookup({"open": "3", "items.0.id": "T-7"})
    lookups = {"by_phone": FakeLookup({"segment": "gold", "id": "17"}), "tickets": tickets}
    interp = interpreter(flows, FakePort(), lookups)
    outcome = await interp.run("crm_routing")
    assert (outcome.queue, outcome.priority) == ("gold_tickets", 5)
    assert path(interp) == ["by_phone", "tickets", "route", "ticket_queue"]
    assert tickets.seen[0]["customer.id"] == "17"
    assert interp.variables["tickets"] == {"open": "3", "items": {"0": {"id": "T-7"}}}
    assert render("{tickets.items.0.id}", interp.variables) == "T-7"
    assert interp.steps[0].result == "found"


async def test_lookup_not_found(flows: FlowSet) -> None:
    interp = interpreter(flows, FakePort(), {"by_phone": FakeLookup(None)})
    outcome = await interp.run("crm_routing")
    assert outcome.queue == "general"
    assert path(interp) == ["by_phone", "general"]
    assert interp.steps[0].result == "not_found"


async def test_lookup_failed(flows: FlowSet) -> None:
    interp = interpreter(flows, FakePort(), {"by_phone": FakeLookup(fail=UNAVAILABLE)})
    outcome = await interp.run("crm_routing")
    assert outcome.queue == "general"
    assert interp.steps[0].result == "failed"
    assert interp.steps[0].detail["reason"] == UNAVAILABLE


async def test_lookup_without_provider_counts_as_failed(flows: FlowSet) -> None:
    interp = interpreter(flows, FakePort())
    assert (await interp.run("crm_routing")).queue == "general"
    assert interp.steps[0].detail["reason"] == UNAVAILABLE


LOOKUP_FLOW = """
flow: slow
start: find
nodes:
  find:
    kind: lookup
    http: {url: "https://crm.example.com/{caller.number}"}
    into: customer
    timeout: 0.05
    next: vip_check
    on_failure: general
  vip_check:
    kind: branch
    cases:
      - {when: "{customer.segment}", equals: vip, then: vip}
    else: general
  vip:
    kind: queue
    queue: sales
    skills: [vip]
    priority: 90
  general:
    kind: queue
    queue: sales
"""


async def test_slow_lookup_times_out(tmp_path: Path) -> None:
    flows = inline(tmp_path, LOOKUP_FLOW)
    interp = interpreter(flows, FakePort(), {"slow.find": FakeLookup({}, delay=5)})
    outcome = await interp.run("slow")
    assert (outcome.queue, outcome.priority) == ("sales", 0)
    assert interp.steps[0].detail["reason"] == "timeout"


@pytest.mark.parametrize(
    ("segment", "priority", "skills"), [("vip", 90, ("vip",)), ("standard", 0, ())]
)
async def test_vip_versus_standard_routing(
    tmp_path: Path, segment: str, priority: int, skills: tuple[str, ...]
) -> None:
    flows = inline(tmp_path, LOOKUP_FLOW)
    crm = FakeLookup({"segment": segment, "pin_hash": "scrypt$secret", "name": "Ada"})
    interp = interpreter(flows, FakePort(), {"find": crm})
    outcome = await interp.run("slow")
    assert (outcome.priority, outcome.skills) == (priority, skills)
    assert path(interp)[:2] == ["find", "vip_check"]


async def test_lookup_secrets_stay_out_of_variables_and_steps(tmp_path: Path) -> None:
    flows = inline(tmp_path, LOOKUP_FLOW)
    crm = FakeLookup({"segment": "vip", "pin_hash": "scrypt$secret", "api.token": "t"})
    recorded: list[Step] = []
    interp = interpreter(flows, FakePort(), {"find": crm}, on_step=recorded.append)
    await interp.run("slow")
    assert interp.variables["customer"] == {"segment": "vip"}
    assert interp.secrets["customer"] == {"pin_hash": "scrypt$secret", "api.token": "t"}
    assert "secret" not in repr(recorded) and "secret" not in repr(interp.variables)
    assert recorded == interp.steps


def test_secret_field_names() -> None:
    assert all(map(is_secret, ["pin_hash", "PIN", "password", "auth.token", "x_hash"]))
    assert not any(map(is_secret, ["segment", "pinned", "hashtag", "tokens_left"]))


async def test_hotline_vip_then_callback_after_queue_timeout(flows: FlowSet) -> None:
    crm = FakeLookup({"segment": "vip", "name": "Ada", "open_tickets": "0"})
    port = FakePort(["1", "1"])
    interp = interpreter(flows, port, {"find_customer": crm})
    outcome = await interp.run("hotline")
    assert (outcome.queue, outcome.skills, outcome.priority) == ("sales", ("german", "vip"), 9)
    assert (outcome.max_wait, outcome.on_timeout) == (120, "offer_callback")
    assert path(interp)[-2:] == ["route_sales", "vip_queue"]
    # the wait ran out: the driver resumes the flow where the queue node says
    port.script.extend(["030123456#", "1"])
    outcome = await interp.run("hotline", node=outcome.on_timeout)
    assert (outcome.kind, outcome.callback_number) == ("callback", "030123456")
    assert outcome.callback_queue == "sales"
    assert path(interp)[-2:] == ["offer_callback", "goodbye"]
    assert interp.variables["segment"] == "vip"  # resuming keeps the call's variables


# -- callback, collect, set, play --------------------------------------------------------


async def test_callback_retry_key_then_confirm(flows: FlowSet) -> None:
    port = FakePort(["1", "12#", "0301234#", "2", "030555666#", "1"])
    interp = interpreter(flows, port)
    outcome = await interp.run("busy_callback")
    assert (outcome.kind, outcome.callback_number) == ("callback", "030555666")
    assert path(interp) == ["offer", "callback", "thanks"]
    assert port.said == [("digits", "0301234"), ("digits", "030555666")]
    assert interp.variables["callback_number"] == "030555666"


async def test_callback_gives_up(flows: FlowSet) -> None:
    interp = interpreter(flows, FakePort(["1", None, "1#", None]))
    outcome = await interp.run("busy_callback")
    assert (outcome.kind, outcome.queue, outcome.callback_number) == ("queue", "support", "")
    assert path(interp) == ["offer", "callback", "wait"]


async def test_collect_retries_and_pattern(flows: FlowSet) -> None:
    port = FakePort(["12", "5678"])
    interp = interpreter(flows, port)
    outcome = await interp.run("pin_check")
    assert outcome.kind == "return"
    assert path(interp) == ["init", "ask_pin", "read_back", "check", "done"]
    assert interp.steps[1].detail == {"attempts": 2}
    assert port.heard == ["acme/enter-pin", "acme/pin-invalid", "acme/enter-pin"]
    assert interp.variables["attempts"] == 1


async def test_collect_weak_pin_loops_with_counter(flows: FlowSet) -> None:
    interp = interpreter(flows, FakePort(["1234", "0000", "4321"]))
    outcome = await interp.run("pin_check")
    assert outcome.kind == "hangup"  # third attempt: the counter reached 3
    assert path(interp)[-3:] == ["read_back", "check", "too_many"]
    assert interp.variables["attempts"] == 3


async def test_collect_failure(flows: FlowSet) -> None:
    interp = interpreter(flows, FakePort([None, "abc"]))
    assert (await interp.run("pin_check")).kind == "hangup"
    assert path(interp) == ["init", "ask_pin", "too_many"]


async def test_barge_in_key_goes_to_next_menu(tmp_path: Path) -> None:
    flows = inline(
        tmp_path,
        """
flow: barge
start: intro
nodes:
  intro: {kind: play, prompt: [a/one, a/two], interruptible: true, next: menu}
  menu:
    kind: menu
    prompt: a/menu
    choices: {1: one, 2: two}
    on_failure: one
  one: {kind: hangup}
  two: {kind: transfer, extension: "2"}
""",
    )
    port = FakePort([Barge("2")])
    interp = interpreter(flows, port)
    outcome = await interp.run("barge")
    assert outcome.destination == "2"
    assert interp.steps[0].digits == "2" and interp.steps[1].digits == "2"
    assert "a/menu" not in port.heard


async def test_play_announcement(flows: FlowSet) -> None:
    port = FakePort()
    outcome = await interpreter(flows, port).run("announcement")
    assert outcome.kind == "hangup"
    assert port.heard == ["acme/outage-notice", "acme/check-website", "acme/goodbye"]


async def test_queue_priority_that_is_not_a_number(flows: FlowSet) -> None:
    interp = interpreter(flows, FakePort())
    outcome = await interp.run("sales")
    assert (outcome.queue, outcome.priority, outcome.skills) == ("sales", 0, ())
    assert "not a number" in interp.steps[-1].detail["note"]


# -- ends: hangups, subflows, runaway loops, errors -------------------------------------


async def test_caller_hangs_up_mid_menu(flows: FlowSet) -> None:
    interp = interpreter(flows, FakePort(["1", None, HANGUP]), {"find_customer": FakeLookup()})
    outcome = await interp.run("hotline")
    assert (outcome.kind, outcome.node_id) == ("caller_hangup", "main_menu")
    assert path(interp)[-1] == "main_menu"
    assert interp.steps[-1].result == "caller_hangup"


async def test_port_specific_hangup_exception(flows: FlowSet) -> None:
    class AgiHangup(Exception):
        pass

    class HangingPort(FakePort):
        async def read_digits(
            self, prompt: str | None, max_digits: int, timeout_ms: int, terminator: str | None
        ) -> tuple[str, bool]:
            raise AgiHangup

    interp = interpreter(flows, HangingPort(), hangup_exceptions=(AgiHangup,))
    assert (await interp.run("reception")).kind == "caller_hangup"


async def test_broken_port_ends_as_error(flows: FlowSet) -> None:
    class BrokenPort(FakePort):
        async def say(self, kind: str, value: str) -> None:
            raise RuntimeError("channel gone odd")

    interp = interpreter(flows, BrokenPort(["1234"]))
    outcome = await interp.run("pin_check")
    assert (outcome.kind, outcome.node_id) == ("error", "read_back")
    assert "channel gone odd" in outcome.reason


async def test_hangup_before_the_first_node(flows: FlowSet) -> None:
    class GonePort(FakePort):
        async def set_language(self, language: str) -> None:
            raise CallerHangup

    interp = interpreter(flows, GonePort())
    assert (await interp.run("reception")).kind == "caller_hangup"
    assert interp.steps == []


async def test_compiled_schedules_go_with_their_flow(tmp_path: Path) -> None:
    text = (GOOD / "hours.yaml").read_text().replace("service_desk", "desk_copy")
    flows = inline(tmp_path, text)
    await interpreter(flows, FakePort()).run("desk_copy")
    assert any(ref() is flows["desk_copy"].schedules["desk"] for ref, _ in _SCHEDULES.values())
    before = len(_SCHEDULES)
    del flows
    gc.collect()
    assert len(_SCHEDULES) == before - 1


async def test_subflow_returns_to_caller(flows: FlowSet) -> None:
    billing = FakeLookup({"amount": "12.50"})
    interp = interpreter(flows, FakePort(["987654#"]), {"balance": billing})
    outcome = await interp.run("account_line")
    assert (outcome.kind, outcome.queue) == ("queue", "billing")
    assert path(interp) == ["ask_account", "billing", "balance", "say_balance", "done", "agent"]
    assert billing.seen[0]["account"] == "987654"  # the subflow sees the caller's variable


async def test_flow_run_from_dialplan_returns(flows: FlowSet) -> None:
    interp = interpreter(flows, FakePort(), {"balance": FakeLookup(fail="timeout")})
    outcome = await interp.run("billing")
    assert (outcome.kind, outcome.flow) == ("return", "billing")
    assert path(interp) == ["balance", "done"]


async def test_step_cap_stops_runaway_loop() -> None:
    flows = unchecked(
        {
            "flow": "loop",
            "start": "a",
            "nodes": {"a": {"kind": "goto", "to": "b"}, "b": {"kind": "goto", "to": "a"}},
        }
    )
    interp = interpreter(flows, FakePort(), max_steps=50)
    outcome = await interp.run("loop")
    assert outcome.kind == "error" and "step limit" in outcome.reason
    assert len(interp.steps) == 50


async def test_default_step_cap() -> None:
    flows = unchecked({"flow": "loop", "start": "a", "nodes": {"a": {"kind": "goto", "to": "a"}}})
    interp = interpreter(flows, FakePort())
    assert (await interp.run("loop")).kind == "error"
    assert len(interp.steps) == 500


async def test_subflow_depth_limit() -> None:
    flows = unchecked(
        {
            "flow": "deep",
            "start": "again",
            "nodes": {
                "again": {"kind": "subflow", "flow": "deep", "next": "end"},
                "end": {"kind": "hangup"},
            },
        }
    )
    interp = interpreter(flows, FakePort(), max_depth=3)
    outcome = await interp.run("deep")
    assert outcome.kind == "error" and "depth" in outcome.reason
    assert path(interp) == ["again"] * 4


async def test_unknown_flow_is_an_error(flows: FlowSet) -> None:
    outcome = await interpreter(flows, FakePort()).run("nope")
    assert outcome == Outcome("error", flow="nope", reason="unknown flow 'nope'")


async def test_steps_carry_flow_version_clock_and_sequence(flows: FlowSet) -> None:
    recorded: list[Step] = []
    port = FakePort(["1", "2"])
    interp = interpreter(flows, port, {"find_customer": FakeLookup()}, on_step=recorded.append)
    await interp.run("hotline")
    assert [s.seq for s in recorded] == list(range(1, len(recorded) + 1))
    assert {s.flow_version for s in recorded} == {3}
    assert {s.at for s in recorded} == {MONDAY_10}
    assert [s.kind for s in recorded][:3] == ["play", "language", "lookup"]


# -- expressions and templates -----------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("= attempts + 1", 3),
        ("= int(customer.open_tickets) * 2", 8),
        ("= upper(customer.segment) + '!'", "VIP!"),
        ("= 'big' if attempts >= 2 and not missing else 'small'", "big"),
        ("= 1 < attempts <= 2", True),
        ("= len(items) + items[1] + max(items[:2])", 11),
        ("= customer.segment in ['vip', 'gold']", True),
        ("= missing or 'default'", "default"),
        ("= round(7 / 2) + 7 // 2 + 7 % 2 - -1", 9),
    ],
)
def test_expressions(expression: str, value: object) -> None:
    variables = {
        "attempts": 2,
        "customer": {"open_tickets": "4", "segment": "vip"},
        "items": [1, 4, 2],
    }
    assert evaluate(expression, variables) == value


@pytest.mark.parametrize(
    "expression", ["= 1 / 0", "= int('x')", "= 'x' * 100000", "= missing + 1", "= [1] * 99999"]
)
def test_expression_errors(expression: str) -> None:
    with pytest.raises(ExpressionError):
        evaluate(expression, {})


def test_render_templates() -> None:
    variables = {"a": {"b": True}, "n": 2.0, "s": None}
    assert render("{a.b}-{n}-{s}-{{x}}-{missing.x}", variables) == "true-2--{x}-"
