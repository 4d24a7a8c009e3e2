"""PIN checks in flows: a lookup's ``verify`` and a ``secret`` collect.

The sample ``ivr_flows/account.yaml`` runs against a fake ``demo_customers`` row whose
``pin_hash`` comes from the real ``hash_pin``: the right PIN says the balance, a wrong one
says "login incorrect", and neither the PIN nor the hash reaches variables or steps.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from acd.ivr import interpreter as interpreter_module
from acd.ivr.interpreter import MASK, Interpreter, Step
from acd.ivr.loader import load_flow
from acd.ivr.lookup import BAD_RESPONSE
from acd.ivr.model import Flow
from acd.ivr.pin import hash_pin, verify_pin
from tests.unit.test_interpreter import CALLER, FakeLookup, FakePort, inline, path

ACCOUNT = Path(__file__).resolve().parents[2] / "ivr_flows" / "account.yaml"
PIN = "2580"
PIN_HASH = hash_pin(PIN, salt=b"nordbank-test-16")
ROW = {
    "name": "Ada",
    "segment": "standard",
    "overdrawn": "false",
    "units": "1875",
    "cents": "5",
    "currency": "EUR",
    "pin_hash": PIN_HASH,
}


@pytest.fixture(scope="module")
def account() -> dict[str, Flow]:
    flow = load_flow(ACCOUNT)
    return {flow.flow: flow}


def run_account(
    flows: dict[str, Flow], script: list[object], row: dict[str, str] | None
) -> tuple[Interpreter, FakePort, list[Step]]:
    port = FakePort(script)
    recorded: list[Step] = []
    interp = Interpreter(
        flows,
        port,
        lookups={"account.find_account": FakeLookup(row)},
        variables=CALLER,
        on_step=recorded.append,
    )
    return interp, port, recorded


def step(steps: list[Step], node_id: str) -> Step:
    return next(s for s in steps if s.node_id == node_id)


def assert_no_secrets(interp: Interpreter, steps: list[Step]) -> None:
    """Neither the PIN's digits nor the hash are in the call record or the variables."""
    record = repr(steps)
    assert PIN not in record
    assert PIN_HASH not in record and PIN_HASH not in repr(interp.variables)
    assert PIN_HASH.split("$")[-1] not in record  # not even the digest alone


async def test_right_pin_says_the_balance(account: dict[str, Flow]) -> None:
    interp, port, steps = run_account(account, ["1003#", PIN + "#"], ROW)
    outcome = await interp.run("account")
    assert outcome.kind == "return"
    assert path(interp) == [
        "known_account",
        "ask_account",
        "ask_pin",
        "count_attempt",
        "find_account",
        "say_you_have",
        "sign",
        "say_units",
        "say_and",
        "say_cents",
        "done",
    ]
    assert port.said == [("number", "1875"), ("number", "5")]
    found = step(steps, "find_account")
    assert found.result == "found"
    assert found.detail["verified"] is True
    assert "pin_hash" not in found.detail["values"]
    assert step(steps, "ask_pin").digits == MASK
    assert step(steps, "ask_account").digits == "1003"  # only the PIN is secret
    assert interp.variables["customer"]["units"] == "1875"
    assert "pin_hash" not in interp.variables["customer"]
    assert interp.secrets["customer"] == {"pin_hash": PIN_HASH}
    assert_no_secrets(interp, steps)


async def test_wrong_pin_is_login_incorrect(account: dict[str, Flow]) -> None:
    # a wrong PIN, then the caller gives up when asked for the account again
    interp, port, steps = run_account(account, ["1003#", "0000#", None, None, None], ROW)
    outcome = await interp.run("account")
    assert outcome.kind == "return"
    assert path(interp) == [
        "known_account",
        "ask_account",
        "ask_pin",
        "count_attempt",
        "find_account",
        "wrong_login",
        "again",
        "ask_account",
        "done",
    ]
    mismatch = step(steps, "find_account")
    assert (mismatch.result, mismatch.digits, dict(mismatch.detail)) == ("pin_mismatch", "", {})
    assert "vm-incorrect" in port.heard
    assert port.said == []  # no balance for a wrong PIN
    assert interp.variables["customer"] == {}  # nothing of the account leaks to the flow
    assert "customer" not in interp.secrets
    assert step(steps, "ask_pin").digits == MASK
    assert "0000" not in repr(steps)
    assert_no_secrets(interp, steps)


async def test_three_wrong_pins_end_the_self_service(account: dict[str, Flow]) -> None:
    script: list[object] = ["1003#", "1111#", "1003#", "2222#", "1003#", "3333#"]
    interp, _, steps = run_account(account, script, ROW)
    assert (await interp.run("account")).kind == "return"
    results = [s.result for s in steps if s.node_id == "find_account"]
    assert results == ["pin_mismatch"] * 3
    assert path(interp)[-2:] == ["again", "done"]
    assert interp.variables["attempts"] == 3
    assert [s.digits for s in steps if s.node_id == "ask_pin"] == [MASK] * 3
    assert not any(pin in repr(steps) for pin in ("1111", "2222", "3333"))


async def test_row_without_hash_field_takes_the_failure_path(account: dict[str, Flow]) -> None:
    row = {k: v for k, v in ROW.items() if k != "pin_hash"}
    interp, port, steps = run_account(account, ["1003#", PIN + "#"], row)
    assert (await interp.run("account")).kind == "return"
    assert path(interp)[-3:] == ["find_account", "unavailable", "done"]
    failed = step(steps, "find_account")
    assert failed.result == "failed"
    assert failed.detail["reason"] == BAD_RESPONSE
    assert "pin_hash" in failed.detail["error"]
    assert port.said == []
    assert interp.variables["customer"] == {}
    assert_no_secrets(interp, steps)


async def test_unknown_account_is_not_found(account: dict[str, Flow]) -> None:
    interp, _, steps = run_account(account, ["9999#", PIN + "#", None], None)
    await interp.run("account")
    assert step(steps, "find_account").result == "not_found"
    assert path(interp)[5] == "wrong_login"


async def test_account_from_the_caller_flow_skips_the_account_question(
    account: dict[str, Flow],
) -> None:
    interp, _, steps = run_account(account, [PIN + "#"], ROW)
    interp.variables["account"] = "1003"
    assert (await interp.run("account", node="known_account")).kind == "return"
    assert path(interp)[:2] == ["known_account", "ask_pin"]
    assert step(steps, "find_account").result == "found"


async def test_verify_pin_runs_off_the_event_loop(
    account: dict[str, Flow], monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[threading.Thread] = []

    def spy(pin: str, stored: str) -> bool:
        threads.append(threading.current_thread())
        return verify_pin(pin, stored)

    monkeypatch.setattr(interpreter_module, "verify_pin", spy)
    interp, _, _ = run_account(account, ["1003#", PIN + "#"], ROW)
    await interp.run("account")
    assert len(threads) == 1 and threads[0] is not threading.main_thread()


VERIFY_FLOW = """
flow: verify
start: ask_pin
nodes:
  ask_pin:
    kind: collect
    prompt: enter-pin
    into: pin
    min_length: 4
    max_length: 4
    retries: 1
    secret: true
    next: find
    on_failure: failed
  find:
    kind: lookup
    http: {url: "https://bank.example.com/accounts/{caller.number}"}
    verify: {secret: "{pin}", against: credentials.hash}
    into: customer
    next: welcome
    on_not_found: unknown
    on_failure: failed
  welcome:
    kind: queue
    queue: private_banking
  unknown:
    kind: hangup
    prompt: unknown
  failed:
    kind: hangup
    prompt: failed
"""


async def test_mismatch_without_on_mismatch_goes_to_on_not_found(tmp_path: Path) -> None:
    flows = inline(tmp_path, VERIFY_FLOW)
    row = {"segment": "vip", "credentials.hash": PIN_HASH}
    for typed, expected in ((PIN, "queue"), ("1111", "hangup")):
        interp = Interpreter(
            flows, FakePort([typed]), lookups={"find": FakeLookup(row)}, variables=CALLER
        )
        outcome = await interp.run("verify")
        assert outcome.kind == expected
        if expected == "hangup":
            assert path(interp) == ["ask_pin", "find", "unknown"]
            assert interp.steps[1].result == "pin_mismatch"
        else:
            # a hash field is withheld by being the one verified, whatever its name
            assert interp.variables["customer"] == {"segment": "vip"}
            assert interp.secrets["customer"] == {"credentials.hash": PIN_HASH}
        assert PIN_HASH not in repr(interp.steps) + repr(interp.variables)


async def test_secret_collect_masks_failed_attempts_too(tmp_path: Path) -> None:
    flows = inline(tmp_path, VERIFY_FLOW)
    interp = Interpreter(flows, FakePort(["12", "34"]), variables=CALLER)
    assert (await interp.run("verify")).kind == "hangup"
    assert (interp.steps[0].result, interp.steps[0].digits) == ("failure", MASK)
    silent = Interpreter(flows, FakePort([None, None]), variables=CALLER)
    await silent.run("verify")
    assert silent.steps[0].digits == ""  # nothing typed, nothing to hide
